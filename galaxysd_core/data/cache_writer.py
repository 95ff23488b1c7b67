"""Writing a prepared cache: decode every record's image in parallel into shards, write the tables.

:func:`prepare_dataset` (``galaxysd data prepare``) is the writer of the layout described in
:mod:`galaxysd_core.data.cache`; a re-run keeps the finished shards
(:mod:`galaxysd_core.data.prepare_shards`), and a refused image never stops a run.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Tuple

import pandas as pd

from galaxysd_core._utils import library_versions
from galaxysd_core.data.cache_layout import (ANSWER_COLUMNS, CACHE_FORMAT_VERSION, CONFIG_FILE, INDEX_COLUMNS,
                                             SKIPPED_FILE, VOTE_COLUMNS, write_cache_files)
from galaxysd_core.data.decode import DEFAULT_MAX_PIXELS, check_decode_settings, default_crop_fraction
from galaxysd_core.data.prepare_shards import default_shard_size, finished_marker, run_shards, shard_fingerprint
from galaxysd_core.errors import GalaxySDDataError, GalaxySDFileError, GalaxySDValueError

__all__ = ["PrepareReport", "SkippedFile", "prepare_dataset"]


@dataclass(frozen=True)
class SkippedFile:
    """A record that gave no image: its path (or ``""``), the reason, and its id."""

    path: str
    reason: str
    id: str = ""


@dataclass
class PrepareReport:
    """Outcome of :func:`prepare_dataset`.

    Attributes
    ----------
    out_dir : pathlib.Path
        The cache folder.
    seen, written : int
        Records offered and images written.
    skipped : list of SkippedFile
        Records that gave no image, with reasons.
    seconds : float
        Wall time of the preparation.
    shards, shards_reused : int
        Image shards of the cache, and how many of them a re-run found finished and kept.
    """

    out_dir: Path
    seen: int
    written: int
    skipped: List[SkippedFile] = field(default_factory=list)
    seconds: float = 0.0
    shards: int = 0
    shards_reused: int = 0

    @property
    def n_skipped(self) -> int:
        return len(self.skipped)

    def summary(self, max_lines: int = 20) -> str:
        """Human-readable report, listing at most ``max_lines`` skipped files."""
        reused = f", {self.shards_reused} of {self.shards} shards already done" if self.shards_reused else ""
        lines = [f"prepared {self.written} of {self.seen} images in {self.seconds:.1f} s -> {self.out_dir}{reused}",
                 f"skipped {self.n_skipped}" + (":" if self.skipped else "")]
        for s in self.skipped[:max_lines]:
            lines.append(f"  {s.path or s.id}: {s.reason}")
        if self.n_skipped > max_lines:
            lines.append(f"  ... {self.n_skipped - max_lines} more in {self.out_dir / SKIPPED_FILE}")
        return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# atomic writers


def _record_fields(rec: Any) -> Tuple[str, Optional[str], str, str, Dict[str, float], Optional[str]]:
    """(id, image_path, caption, source, targets, label_kind) of a GalaxyRecord or mapping."""
    get = _getter(rec)
    path = get("image_path")
    return (str(get("id", "")), None if path is None or str(path) == "" else str(path), str(get("caption", "")),
            str(get("source", "") or ""), dict(get("targets", {}) or {}), get("label_kind"))


def _getter(rec: Any):
    return (lambda k, d=None: rec.get(k, d)) if isinstance(rec, dict) else (lambda k, d=None: getattr(rec, k, d))


def _record_votes(rec: Any) -> Dict[str, float]:
    """``GalaxyRecord.votes`` (``<answer>_count`` / ``<answer>_fraction``) of a record or mapping."""
    return dict(_getter(rec)("votes", {}) or {})


def prepare_dataset(records: Iterable[Any], out_dir: os.PathLike | str, resolution: int = 64,
                    crop_fraction: Optional[float] = None, show_progress: bool = True, *,
                    max_pixels: int = DEFAULT_MAX_PIXELS, source_info: Optional[Dict[str, Any]] = None,
                    caption_settings: Optional[Dict[str, Any]] = None, workers: int = 1,
                    shard_size: Optional[int] = None, resume: bool = True) -> PrepareReport:
    """Decode, crop and resize the images of ``records`` and write a prepared cache folder.

    Parameters
    ----------
    records : iterable of GalaxyRecord
        From :mod:`galaxysd_core.data.gz2_release` or :mod:`galaxysd_core.data.catalog` (or mappings
        with ``id, image_path, caption, source, targets``). Records without an image path are
        skipped and reported.
    out_dir : path-like
        Cache folder, created if needed; existing cache files in it are replaced atomically.
    resolution : int
        Output side in pixels (default 64, the GalaxySD-mini model).
    crop_fraction : float, optional
        Central crop side as a fraction of the shorter image side. Default: see
        :func:`~galaxysd_core.data.decode.default_crop_fraction` (0.35 for GZ1 cutouts, 0.5 for GZ2
        images), decided from the first record.
    show_progress : bool
        Show a tqdm progress bar (images).
    max_pixels : int
        Larger images are skipped as possible decompression bombs.
    source_info : dict, optional
        Description of the source (kind, paths) stored in ``prepare_config.json``.
    caption_settings : dict, optional
        Caption settings (thresholds, debiased or raw) stored in ``prepare_config.json``.
    workers : int
        Processes decoding shards in parallel (1: in this process).
    shard_size : int, optional
        Records per shard (default :func:`~galaxysd_core.data.prepare_shards.default_shard_size`,
        about 256 MiB of images).
    resume : bool
        Keep the shards an earlier run of the same records and settings finished (default); False
        decodes everything again.

    Returns
    -------
    PrepareReport
        Counts, skipped files with reasons, output folder, shards and wall time.

    Raises
    ------
    GalaxySDValueError
        For invalid settings.
    GalaxySDDataError
        When no record gave an image (nothing to write); the message shows the first reasons.
    """
    from tqdm.auto import tqdm

    records = list(records)
    start = time.perf_counter()
    out = Path(out_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise GalaxySDFileError(f"output {str(out)!r} exists and is not a folder; choose another --out")
    if crop_fraction is None:
        first = _record_fields(records[0]) if records else ("", None, "", "", {}, None)
        crop_fraction = default_crop_fraction(first[5], first[3])
    check_decode_settings(resolution, crop_fraction, max_pixels)
    if int(workers) < 1:
        raise GalaxySDValueError(f"workers must be >= 1, got {workers}")
    shard_size = int(shard_size or default_shard_size(resolution))
    if shard_size < 1:
        raise GalaxySDValueError(f"shard size must be >= 1 image, got {shard_size}")

    fields = [_record_fields(r) for r in records]
    settings = {"resolution": int(resolution), "crop_fraction": float(crop_fraction), "max_pixels": int(max_pixels),
                "resample": "LANCZOS", "format_version": CACHE_FORMAT_VERSION}
    markers: Dict[int, Dict[str, Any]] = {}
    todo: List[Dict[str, Any]] = []
    for k, lo in enumerate(range(0, len(fields), shard_size)):
        items = [(f[0], f[1]) for f in fields[lo:lo + shard_size]]
        fp = shard_fingerprint(settings, items)
        done = finished_marker(out, k, fp) if resume else None
        if done is not None:
            markers[k] = done
        else:
            todo.append({"folder": str(out), "shard": k, "fingerprint": fp, "items": items, **settings})
    n_shards, reused = len(markers) + len(todo), len(markers)
    if todo:
        (out / CONFIG_FILE).unlink(missing_ok=True)  # the folder is no complete cache until the end
    bar = tqdm(total=len(records), initial=sum(m["n_records"] for m in markers.values()),
               desc=f"prepare {out.name}", unit="img", disable=not show_progress)
    for marker in run_shards(todo, int(workers), bar):
        markers[marker["shard"]] = marker
    bar.close()

    has_votes = False
    rows: List[Dict[str, Any]] = []
    skipped: List[SkippedFile] = []
    for k in range(n_shards):
        base = k * shard_size
        for j, path, reason in markers[k]["skipped"]:
            skipped.append(SkippedFile(path=path, reason=reason, id=fields[base + j][0]))
        for j in markers[k]["kept"]:
            rid, path, caption, source, targets, _ = fields[base + j]
            row = {"id": rid, "caption": caption, "source": source, "image_path": path}
            for col in ANSWER_COLUMNS:
                v = targets.get(col, math.nan)
                row[col] = math.nan if v is None else float(v)
            votes = _record_votes(records[base + j])
            if votes:
                has_votes = True
                for col in VOTE_COLUMNS:
                    v = votes.get(col, math.nan)
                    row[col] = math.nan if v is None else float(v)
            rows.append(row)

    if not rows:
        reasons = "; ".join(f"{s.path or s.id}: {s.reason}" for s in skipped[:3]) or "no records given"
        raise GalaxySDDataError(f"no usable image among {len(records)} records ({reasons}); check the "
                                f"image folder (--images / --root) and the catalog paths")

    index = pd.DataFrame(rows, columns=list(INDEX_COLUMNS) + (list(VOTE_COLUMNS) if has_votes else []))
    skipped_df = pd.DataFrame([{"path": s.path, "reason": s.reason, "id": s.id} for s in skipped],
                              columns=["path", "reason", "id"])
    seconds = time.perf_counter() - start
    config = {
        "format": "galaxysd-prepared",
        "format_version": CACHE_FORMAT_VERSION,
        "resolution": int(resolution),
        "crop_fraction": float(crop_fraction),
        "resample": "LANCZOS",
        "jpeg_draft": True,
        "max_pixels": int(max_pixels),
        "source": source_info or {"sources": sorted(set(index["source"]))},
        "caption_settings": caption_settings or {},
        "vote_columns": bool(has_votes),
        "counts": {"seen": len(records), "written": len(rows), "skipped": len(skipped)},
        "shard_size": shard_size,
        "shards": [{"file": markers[k]["file"], "n": markers[k]["n"]} for k in range(n_shards) if markers[k]["n"]],
        "workers": int(workers),
        "shards_reused": reused,
        "seconds": round(seconds, 3),
        "versions": library_versions(),
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    write_cache_files(out, index, config, skipped_df, n_shards)
    return PrepareReport(out_dir=out, seen=len(records), written=len(rows), skipped=skipped, seconds=seconds,
                         shards=n_shards, shards_reused=reused)
