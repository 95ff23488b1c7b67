"""Prepared training cache: images at model resolution, captions, targets, config and skip report.

A prepared cache is a folder holding

``images.safetensors``
    one ``uint8`` tensor named ``"images"`` of shape ``(N, H, W, 3)`` (RGB, ``H = W = resolution``);
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
    the settings, the source, the counts (seen, written, skipped), library versions and a UTC
    timestamp;
``skipped.csv``
    ``path, reason, id`` of every record that gave no image.

Images are decoded, centre-cropped and resized by :func:`galaxysd_core.data.decode.load_image`;
a record whose image is refused (missing, corrupt, oversized) never stops a run: it is skipped and
listed with the reason. Files are written atomically (temporary file and :func:`os.replace`). No
pickle is used anywhere: images are safetensors, tables CSV, settings JSON.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from galaxysd_core._utils import library_versions
from galaxysd_core.data.decode import DEFAULT_MAX_PIXELS, check_decode_settings, default_crop_fraction, load_image
from galaxysd_core.errors import GalaxySDDataError, GalaxySDFileError, GalaxySDValueError, ImageRejected
from galaxysd_core.data.records import VOTE_COUNT_SUFFIX, VOTE_FRACTION_SUFFIX
from galaxysd_core.schema.gz2 import ANSWERS

__all__ = ["PreparedDataset", "PrepareReport", "SkippedFile", "prepare_dataset", "concat", "INDEX_COLUMNS",
           "ANSWER_COLUMNS", "VOTE_COLUMNS", "COUNT_COLUMNS", "FRACTION_COLUMNS", "CACHE_FORMAT_VERSION"]

#: Version of the cache layout written to ``prepare_config.json``.
CACHE_FORMAT_VERSION = 1
IMAGES_FILE = "images.safetensors"
INDEX_FILE = "index.csv"
CONFIG_FILE = "prepare_config.json"
SKIPPED_FILE = "skipped.csv"
#: Name of the tensor in ``images.safetensors``.
IMAGES_KEY = "images"

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
    """

    out_dir: Path
    seen: int
    written: int
    skipped: List[SkippedFile] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def n_skipped(self) -> int:
        return len(self.skipped)

    def summary(self, max_lines: int = 20) -> str:
        """Human-readable report, listing at most ``max_lines`` skipped files."""
        lines = [f"prepared {self.written} of {self.seen} images in {self.seconds:.1f} s -> {self.out_dir}",
                 f"skipped {self.n_skipped}" + (":" if self.skipped else "")]
        for s in self.skipped[:max_lines]:
            lines.append(f"  {s.path or s.id}: {s.reason}")
        if self.n_skipped > max_lines:
            lines.append(f"  ... {self.n_skipped - max_lines} more in {self.out_dir / SKIPPED_FILE}")
        return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# atomic writers


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def _atomic_write(target: Path, write) -> None:
    """Call ``write(tmp_path)`` then move the temporary file onto ``target`` atomically."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the usual permissions
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _write_images(target: Path, images: np.ndarray) -> None:
    from safetensors.numpy import save_file

    _atomic_write(target, lambda p: save_file({IMAGES_KEY: np.ascontiguousarray(images)}, str(p),
                                              metadata={"format": "galaxysd-prepared",
                                                        "layout": "NHWC uint8 RGB"}))


def _write_csv(target: Path, df: pd.DataFrame) -> None:
    _atomic_write(target, lambda p: df.to_csv(p, index=False))


def _write_json(target: Path, obj: dict) -> None:
    def w(p: Path) -> None:
        p.write_text(json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n", encoding="utf-8")

    _atomic_write(target, w)


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
                    caption_settings: Optional[Dict[str, Any]] = None) -> PrepareReport:
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
        Show a tqdm progress bar.
    max_pixels : int
        Larger images are skipped as possible decompression bombs.
    source_info : dict, optional
        Description of the source (kind, paths) stored in ``prepare_config.json``.
    caption_settings : dict, optional
        Caption settings (thresholds, debiased or raw) stored in ``prepare_config.json``.

    Returns
    -------
    PrepareReport
        Counts, skipped files with reasons, output folder and wall time.

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

    buffer = np.empty((len(records), resolution, resolution, 3), dtype=np.uint8)
    has_votes = False
    rows: List[Dict[str, Any]] = []
    skipped: List[SkippedFile] = []
    bar = tqdm(records, desc=f"prepare {out.name}", unit="img", disable=not show_progress)
    for rec in bar:
        rid, path, caption, source, targets, _ = _record_fields(rec)
        if path is None:
            skipped.append(SkippedFile(path="", reason="no image for this galaxy", id=rid))
            continue
        try:
            buffer[len(rows)] = load_image(path, resolution, crop_fraction, max_pixels=max_pixels)
        except ImageRejected as exc:
            skipped.append(SkippedFile(path=path, reason=str(exc), id=rid))
            continue
        row = {"id": rid, "caption": caption, "source": source, "image_path": path}
        for col in ANSWER_COLUMNS:
            v = targets.get(col, math.nan)
            row[col] = math.nan if v is None else float(v)
        votes = _record_votes(rec)
        if votes:
            has_votes = True
            for col in VOTE_COLUMNS:
                v = votes.get(col, math.nan)
                row[col] = math.nan if v is None else float(v)
        rows.append(row)
    bar.close()

    if not rows:
        reasons = "; ".join(f"{s.path or s.id}: {s.reason}" for s in skipped[:3]) or "no records given"
        raise GalaxySDDataError(f"no usable image among {len(records)} records ({reasons}); check the "
                                f"image folder (--images / --root) and the catalog paths")

    images = buffer[: len(rows)]
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
        "seconds": round(seconds, 3),
        "versions": library_versions(),
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    out.mkdir(parents=True, exist_ok=True)
    _write_images(out / IMAGES_FILE, images)
    _write_csv(out / INDEX_FILE, index)
    _write_csv(out / SKIPPED_FILE, skipped_df)
    _write_json(out / CONFIG_FILE, config)  # last: its presence marks a complete cache
    return PrepareReport(out_dir=out, seen=len(records), written=len(rows), skipped=skipped, seconds=seconds)


# --------------------------------------------------------------------------------------------
# loading


@dataclass
class PreparedDataset:
    """A prepared cache in memory.

    Attributes
    ----------
    images : numpy.ndarray
        ``uint8`` array ``(N, H, W, 3)``, RGB.
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

    images: np.ndarray
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

    @classmethod
    def load(cls, folder: os.PathLike | str) -> "PreparedDataset":
        """Load a cache folder written by :func:`prepare_dataset`.

        Raises
        ------
        GalaxySDFileError
            If the folder or one of its files is missing.
        GalaxySDDataError
            If the files disagree (counts, columns, shapes).
        """
        from safetensors import SafetensorError
        from safetensors.numpy import load_file

        folder = Path(folder).expanduser()
        for name in (IMAGES_FILE, INDEX_FILE, CONFIG_FILE):
            if not (folder / name).is_file():
                raise GalaxySDFileError(
                    f"{str(folder)!r} is not a prepared cache ({name} missing); create it with "
                    f"'galaxysd data prepare --out {folder} ...'")
        try:
            tensors = load_file(str(folder / IMAGES_FILE))
        except (SafetensorError, OSError) as exc:
            raise GalaxySDFileError(f"cannot read {str(folder / IMAGES_FILE)!r}: {exc}; prepare it again") from exc
        if IMAGES_KEY not in tensors:
            raise GalaxySDDataError(f"{IMAGES_FILE} has no tensor {IMAGES_KEY!r}; prepare it again")
        index = pd.read_csv(folder / INDEX_FILE, dtype={"id": str, "caption": str, "source": str,
                                                         "image_path": str}, keep_default_na=False,
                            na_values={c: ["", "nan", "NaN"] for c in (*ANSWER_COLUMNS, *VOTE_COLUMNS)})
        missing = [c for c in INDEX_COLUMNS if c not in index.columns]
        if missing:
            raise GalaxySDDataError(f"{INDEX_FILE} lacks columns {missing}; prepare the cache again")
        numeric = list(ANSWER_COLUMNS) + [c for c in VOTE_COLUMNS if c in index.columns]
        index[numeric] = index[numeric].astype(np.float64)
        config = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
        return cls(images=tensors[IMAGES_KEY], index=index, config=config, folder=folder)

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
        images = np.concatenate([d.images for d in datasets], axis=0)
        index = pd.concat([d.index for d in datasets], ignore_index=True)
        config = {"concatenated_from": [{"folder": str(d.folder) if d.folder else None, **d.config}
                                        for d in datasets],
                  "resolution": int(images.shape[1])}
        return cls(images=images, index=index, config=config, folder=None)


def concat(datasets: Sequence[PreparedDataset]) -> PreparedDataset:
    """Function form of :meth:`PreparedDataset.concat`."""
    return PreparedDataset.concat(datasets)
