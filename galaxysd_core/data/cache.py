"""Prepared training cache: images at model resolution, captions, targets, config and skip report.

A prepared cache is a folder holding

``shards/images-NNNNN.npy``
    the images, ``uint8`` arrays ``(n, H, W, 3)`` (RGB, ``H = W = resolution``), one per shard of
    ``shard_size`` consecutive records (fewer images where records were skipped), in ``index.csv``
    order, each with a marker ``images-NNNNN.json`` that makes preparation resumable
    (:mod:`~galaxysd_core.data.prepare_shards`); plain ``.npy`` (no pickle), read lazily here
    (:class:`~galaxysd_core.data.shards.ShardedArray`): loading costs memory for the table only;
``index.csv``
    one row per image, same order: ``id, caption, source, image_path`` and then one column per GZ2
    answer (the 37 :data:`galaxysd_core.schema.gz2.ANSWERS` column stems) with 1.0 / 0.0 / NaN
    targets (:func:`galaxysd_core.schema.captioning.answer_targets`, the majority-gated labels);
    when the source has votes (a vote table such as ``gz2_cutouts`` or the GZ2 release), also
    :data:`VOTE_COLUMNS`: ``<answer>_count`` (volunteers who gave the answer) and
    ``<answer>_fraction`` (the fraction the caption was made from, see
    :attr:`galaxysd_core.data.records.GalaxyRecord.votes`), NaN for questions the table lacks and for
    rows of sources without votes;
``prepare_config.json``
    the settings, the source, the shards and their image counts, the counts (seen, written,
    skipped), library versions and a UTC timestamp; written last, so its presence marks a complete
    cache;
``skipped.csv``
    ``path, reason, id`` of every record that gave no image.

Caches of the earlier format (one ``images.safetensors``, ``format_version`` 1) still load, into
memory; :func:`convert_to_shards` (``galaxysd data convert``) rewrites one as shards.

Images are decoded, centre-cropped and resized by :func:`galaxysd_core.data.decode.load_image`, in
``workers`` processes; a record whose image is refused (missing, corrupt, oversized) never stops a
run: it is skipped and listed with the reason. Files are written atomically (temporary file and
:func:`os.replace`). No pickle is used anywhere: images are ``.npy``, tables CSV, settings JSON.
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from galaxysd_core._utils import library_versions
from galaxysd_core.data.decode import DEFAULT_MAX_PIXELS, check_decode_settings, default_crop_fraction
from galaxysd_core.data.prepare_shards import (IMAGES_FILE, SHARDS_DIR, default_shard_size, finished_marker,
                                               load_format1_images, load_image_shards, remove_stale_shards,
                                               run_shards, shard_fingerprint, shard_name)
from galaxysd_core.data.records import VOTE_COUNT_SUFFIX, VOTE_FRACTION_SUFFIX
from galaxysd_core.data.shards import NpyWriter, ShardedArray, atomic_write
from galaxysd_core.errors import GalaxySDDataError, GalaxySDFileError, GalaxySDValueError
from galaxysd_core.schema.gz2 import ANSWERS

__all__ = ["PreparedDataset", "PrepareReport", "SkippedFile", "prepare_dataset", "concat", "convert_to_shards",
           "INDEX_COLUMNS", "ANSWER_COLUMNS", "VOTE_COLUMNS", "COUNT_COLUMNS", "FRACTION_COLUMNS",
           "CACHE_FORMAT_VERSION"]

#: Version of the cache layout written to ``prepare_config.json`` (2: image shards; 1: one
#: ``images.safetensors``, still read).
CACHE_FORMAT_VERSION = 2
INDEX_FILE = "index.csv"
CONFIG_FILE = "prepare_config.json"
SKIPPED_FILE = "skipped.csv"

#: The 37 GZ2 answer column stems, in table order (target columns of ``index.csv``).
ANSWER_COLUMNS: Tuple[str, ...] = tuple(a.column for a in ANSWERS)
#: All columns of ``index.csv`` in order.
INDEX_COLUMNS: Tuple[str, ...] = ("id", "caption", "source", "image_path", *ANSWER_COLUMNS)
#: Optional vote columns of ``index.csv`` (written when a record has votes), after INDEX_COLUMNS.
COUNT_COLUMNS: Tuple[str, ...] = tuple(c + VOTE_COUNT_SUFFIX for c in ANSWER_COLUMNS)
FRACTION_COLUMNS: Tuple[str, ...] = tuple(c + VOTE_FRACTION_SUFFIX for c in ANSWER_COLUMNS)
VOTE_COLUMNS: Tuple[str, ...] = COUNT_COLUMNS + FRACTION_COLUMNS


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


def _write_csv(target: Path, df: pd.DataFrame) -> None:
    atomic_write(target, lambda p: df.to_csv(p, index=False))


def _write_json(target: Path, obj: dict) -> None:
    def w(p: Path) -> None:
        p.write_text(json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n", encoding="utf-8")

    atomic_write(target, w)


# --------------------------------------------------------------------------------------------
# preparation


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
    _write_cache_files(out, index, config, skipped_df, n_shards)
    return PrepareReport(out_dir=out, seen=len(records), written=len(rows), skipped=skipped, seconds=seconds,
                         shards=n_shards, shards_reused=reused)


def _write_cache_files(out: Path, index: Optional[pd.DataFrame], config: Dict[str, Any],
                       skipped: Optional[pd.DataFrame], n_shards: int) -> None:
    """Write the tables and, last, ``prepare_config.json``; remove what a format-1 or larger run left."""
    out.mkdir(parents=True, exist_ok=True)
    for name, table in ((INDEX_FILE, index), (SKIPPED_FILE, skipped)):
        if table is not None:
            _write_csv(out / name, table)
    (out / IMAGES_FILE).unlink(missing_ok=True)  # a format-1 cache rewritten as shards
    remove_stale_shards(out, n_shards)
    _write_json(out / CONFIG_FILE, config)  # last: its presence marks a complete cache


def convert_to_shards(folder: os.PathLike | str, shard_size: Optional[int] = None) -> Path:
    """Rewrite a format-1 cache (one ``images.safetensors``) as image shards, in place.

    The images are copied, not decoded again, so the source images are not needed; ``index.csv``,
    ``skipped.csv`` and the settings are kept (``prepare_config.json`` gains the shards and
    ``converted_from_format: 1``). A cache that is already sharded is left as it is.

    Raises
    ------
    GalaxySDFileError, GalaxySDDataError
        As :meth:`PreparedDataset.load`.
    """
    ds = PreparedDataset.load(folder)
    folder = Path(folder).expanduser()
    if isinstance(ds.images, ShardedArray):
        return folder
    shard_size = int(shard_size or default_shard_size(ds.resolution))
    config = dict(ds.config)
    config["shards"] = []
    for k, lo in enumerate(range(0, len(ds), shard_size)):
        part = ds.images[lo:lo + shard_size]
        name = shard_name(k)
        with NpyWriter(folder / SHARDS_DIR / name, len(part), part.shape[1:], np.uint8) as w:
            w.write(part)
        config["shards"].append({"file": name, "n": len(part)})
    config.update(format_version=CACHE_FORMAT_VERSION, shard_size=shard_size, converted_from_format=1)
    (folder / CONFIG_FILE).unlink()
    _write_cache_files(folder, None, config, None, len(config["shards"]))
    return folder


# --------------------------------------------------------------------------------------------
# loading


@dataclass
class PreparedDataset:
    """A prepared cache: its table in memory, its images read lazily.

    Attributes
    ----------
    images : ShardedArray or numpy.ndarray
        ``uint8`` ``(N, H, W, 3)``, RGB: a :class:`~galaxysd_core.data.shards.ShardedArray` over
        the image shards (indexing reads only the rows asked for and returns a NumPy array;
        ``np.asarray(ds.images)`` reads them all), a NumPy array for a format-1 cache.
    index : pandas.DataFrame
        :data:`INDEX_COLUMNS`, one row per image (``id`` is a string).
    config : dict
        Content of ``prepare_config.json`` (for a concatenation: ``{"concatenated_from": [...]}``).
    folder : pathlib.Path or None
        Folder it was loaded from.

    Examples
    --------
    >>> ds = PreparedDataset.load("cache/gz1_64")          # doctest: +SKIP
    >>> both = PreparedDataset.concat([ds, PreparedDataset.load("cache/gz2ex_64")])  # doctest: +SKIP
    >>> both.images.shape, both.captions[:2], both.targets().shape  # doctest: +SKIP
    """

    images: Any
    index: pd.DataFrame
    config: Dict[str, Any]
    folder: Optional[Path] = None

    def __post_init__(self) -> None:
        if self.images.ndim != 4 or self.images.shape[-1] != 3 or self.images.dtype != np.uint8:
            raise GalaxySDDataError(f"images must be uint8 (N, H, W, 3), got {self.images.dtype} {self.images.shape}")
        if len(self.images) != len(self.index):
            raise GalaxySDDataError(f"cache has {len(self.images)} images but {len(self.index)} index rows; "
                                    f"prepare it again")

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> Tuple[np.ndarray, pd.Series]:
        return self.images[i], self.index.iloc[i]

    @property
    def resolution(self) -> int:
        return int(self.images.shape[1])

    @property
    def captions(self) -> List[str]:
        return self.index["caption"].tolist()

    def targets(self) -> np.ndarray:
        """``float32`` array ``(N, 37)`` of 1/0/NaN answer targets in :data:`ANSWER_COLUMNS` order."""
        return self.index[list(ANSWER_COLUMNS)].to_numpy(dtype=np.float32)

    @property
    def has_votes(self) -> bool:
        """Whether ``index`` holds vote columns (:data:`VOTE_COLUMNS`) for at least one row."""
        return all(c in self.index.columns for c in VOTE_COLUMNS) and bool(
            self.index[list(COUNT_COLUMNS + FRACTION_COLUMNS)].notna().any().any())

    def votes(self) -> Tuple[np.ndarray, np.ndarray]:
        """``(counts, fractions)``: ``float32 (N, 37)`` arrays in :data:`ANSWER_COLUMNS` order, NaN
        where a row has no votes for that answer (a source without votes, a question not asked)."""
        def block(cols: Tuple[str, ...]) -> np.ndarray:
            if not all(c in self.index.columns for c in cols):
                return np.full((len(self.index), len(cols)), np.nan, dtype=np.float32)
            return self.index[list(cols)].to_numpy(dtype=np.float32)

        return block(COUNT_COLUMNS), block(FRACTION_COLUMNS)

    @property
    def is_sharded(self) -> bool:
        """Whether the images are read lazily from shards (False: a format-1 cache, in memory)."""
        return isinstance(self.images, ShardedArray)

    @classmethod
    def load(cls, folder: os.PathLike | str) -> "PreparedDataset":
        """Load a cache folder written by :func:`prepare_dataset` (format 2, or format 1 into memory).

        Raises
        ------
        GalaxySDFileError
            If the folder or one of its files is missing.
        GalaxySDDataError
            If the files disagree (counts, columns, shapes).
        """
        folder = Path(folder).expanduser()
        for name in (INDEX_FILE, CONFIG_FILE):
            if not (folder / name).is_file():
                raise GalaxySDFileError(
                    f"{str(folder)!r} is not a prepared cache ({name} missing); create it with "
                    f"'galaxysd data prepare --out {folder} ...' (a re-run keeps the finished shards)")
        config = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
        version = int(config.get("format_version", 1))
        if version > CACHE_FORMAT_VERSION:
            raise GalaxySDDataError(f"{str(folder)!r} has cache format {version}, newer than this galaxysd "
                                    f"({CACHE_FORMAT_VERSION}); upgrade galaxysd-studio or prepare it again")
        images = load_image_shards(folder, config) if version >= 2 else load_format1_images(folder)
        index = pd.read_csv(folder / INDEX_FILE, dtype={"id": str, "caption": str, "source": str,
                                                         "image_path": str}, keep_default_na=False,
                            na_values={c: ["", "nan", "NaN"] for c in (*ANSWER_COLUMNS, *VOTE_COLUMNS)})
        missing = [c for c in INDEX_COLUMNS if c not in index.columns]
        if missing:
            raise GalaxySDDataError(f"{INDEX_FILE} lacks columns {missing}; prepare the cache again")
        numeric = list(ANSWER_COLUMNS) + [c for c in VOTE_COLUMNS if c in index.columns]
        index[numeric] = index[numeric].astype(np.float64)
        return cls(images=images, index=index, config=config, folder=folder)

    @classmethod
    def concat(cls, datasets: Sequence["PreparedDataset"]) -> "PreparedDataset":
        """Concatenate caches of the same resolution (e.g. several sources) into one.

        Raises
        ------
        GalaxySDValueError
            For an empty list or different resolutions.
        """
        datasets = list(datasets)
        if not datasets:
            raise GalaxySDValueError("concat needs at least one prepared dataset")
        shapes = {d.images.shape[1:] for d in datasets}
        if len(shapes) != 1:
            raise GalaxySDValueError(f"cannot concatenate caches of different image shapes {sorted(shapes)}; "
                                     f"prepare them with the same --resolution")
        if all(isinstance(d.images, np.ndarray) for d in datasets):
            images = np.concatenate([d.images for d in datasets], axis=0)
        else:  # stays lazy: nothing is read
            images = ShardedArray.concat([d.images for d in datasets])
        index = pd.concat([d.index for d in datasets], ignore_index=True)
        config = {"concatenated_from": [{"folder": str(d.folder) if d.folder else None, **d.config}
                                        for d in datasets],
                  "resolution": int(images.shape[1])}
        return cls(images=images, index=index, config=config, folder=None)


def concat(datasets: Sequence[PreparedDataset]) -> PreparedDataset:
    """Function form of :meth:`PreparedDataset.concat`."""
    return PreparedDataset.concat(datasets)

