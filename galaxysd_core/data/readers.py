"""Readers of galaxy sources: the only code that knows file layouts.

Three layouts are understood, all producing :class:`GalaxyRecord` objects (id, image path, caption,
1/0/NaN answer targets, extra columns such as ra/dec):

* :func:`read_gz2_release`: the full Galaxy Zoo 2 release as users download it, i.e. the Hart et
  al. (2016, MNRAS 461, 3663) table ``gz2_hart16.csv`` (or ``.csv.gz``), the image-name mapping
  ``gz2_filename_mapping.csv`` and the image set ``images_gz2/images/<asset_id>.jpg`` (Zenodo record
  3565489). Captions come from the vote fractions through :class:`~galaxysd_core.schema.captioning.Captioner`.
* :func:`read_catalog`: a catalog CSV plus an image folder. Understands the Galaxy Zoo 1 class
  column ``gz1_class_name`` (Lintott et al. 2008), a single GZ2 answer column ``gz2_column``, a
  generic answer column, or GZ2 vote-fraction columns (``<answer>_debiased`` / ``_fraction``).
  Image paths are relative to the CSV's folder unless an image folder is given.
* :func:`read_vote_table`: a GZ2 vote table without images (Willett et al. 2013, MNRAS 435, 2835,
  Table 5); records have ``image_path = None`` (used for morphology statistics).

Readers know nothing of models and never open images (that is :mod:`galaxysd_core.data.cache`).
"""
from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence

import numpy as np
import pandas as pd

from galaxysd_core.schema.captioning import (GZ1_CLASS_ANSWERS, Captioner, answer_targets, caption_for_gz1_class,
                         caption_from_answers, gz1_class_key)
from galaxysd_core.errors import GalaxySDDataError, GalaxySDError, GalaxySDFileError, GalaxySDValueError
from galaxysd_core.schema.gz2 import ANSWER_BY_COLUMN, ANSWER_BY_PHRASE, ANSWERS, SUFFIX_COUNT

__all__ = ["GalaxyRecord", "GZ2ReleasePaths", "read_gz2_release", "read_catalog", "read_vote_table",
           "find_gz2_release", "detect_label_kind",
           "records_to_frame", "LABEL_KINDS"]

#: How a record's caption was obtained (``GalaxyRecord.label_kind``).
LABEL_KINDS = ("votes", "gz1_class", "gz2_answer", "answers")

#: Candidate id columns of catalogs, in order of preference.
ID_COLUMNS = ("dr7objid", "objid", "id", "galaxy_id", "iauname")
#: Candidate image-path columns of catalogs, in order of preference.
IMAGE_COLUMNS = ("filename", "image_path", "file", "path", "image", "file_loc")
#: Extra columns kept in ``GalaxyRecord.extra`` when present.
EXTRA_COLUMNS = ("ra", "dec", "sample", "gz2_class", "total_classifications", "total_votes",
                 "gz1_class_name", "gz2_column", "redshift", "z")

#: File names of the GZ2 release (Hart et al. 2016; Zenodo record 3565489).
GZ2_TABLE_NAMES = ("gz2_hart16.csv", "gz2_hart16.csv.gz")
GZ2_MAPPING_NAME = "gz2_filename_mapping.csv"
GZ2_IMAGE_DIRS = ("images_gz2/images", "images_gz2", "images")


@dataclass
class GalaxyRecord:
    """One galaxy of a source, ready for caption statistics or image preparation.

    Attributes
    ----------
    id : str
        Identifier (SDSS DR7 objid where known, otherwise the image file stem).
    image_path : pathlib.Path or None
        Image file; ``None`` for vote tables without images.
    caption : str
        GalaxySD caption, e.g. ``"sdss, smooth, completely round galaxy"``.
    targets : dict of str to float
        1.0 / 0.0 / NaN per GZ2 answer column stem (all 37), see
        :func:`galaxysd_core.schema.captioning.answer_targets`.
    source : str
        Name of the source (e.g. ``"gz1_sdss"``, ``"gz2_hart16"``).
    label_kind : str
        How the caption was made: one of :data:`LABEL_KINDS`.
    extra : dict
        Other columns of interest (``ra``, ``dec`` in degrees, ``sample``, ...).
    """

    id: str
    image_path: Optional[Path]
    caption: str
    targets: Dict[str, float]
    source: str = ""
    label_kind: str = "votes"
    extra: Dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# helpers


def _check_file(path: os.PathLike | str, what: str) -> Path:
    path = Path(path).expanduser()
    if not path.is_file():
        raise GalaxySDFileError(f"{what} {str(path)!r} does not exist or is not a file; check the path "
                                f"(command-line flag or $GALAXYSD_DATA_DIR)")
    return path


def _read_header(path: Path) -> List[str]:
    try:
        return list(pd.read_csv(path, nrows=0).columns)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as exc:
        raise GalaxySDFileError(f"cannot read {str(path)!r} as CSV: {exc}") from exc


def _read_csv(path: Path, *, usecols: Optional[Sequence[str]] = None, str_cols: Sequence[str] = (),
              limit: Optional[int] = None) -> pd.DataFrame:
    try:
        return pd.read_csv(path, usecols=list(usecols) if usecols is not None else None,
                           dtype={c: str for c in str_cols}, nrows=limit)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError, ValueError) as exc:
        raise GalaxySDFileError(f"cannot read {str(path)!r} as CSV: {exc}") from exc


def _first(columns: Sequence[str], candidates: Sequence[str]) -> Optional[str]:
    lower = {c.lower(): c for c in columns}
    for cand in candidates:
        if cand in lower:
            return lower[cand]
    return None


def _clean(value: Any) -> Any:
    """numpy scalars -> Python scalars, NaN kept."""
    if isinstance(value, np.generic):
        return value.item()
    return value


def _extra(row: Dict[str, Any]) -> Dict[str, Any]:
    return {k: _clean(row[k]) for k in EXTRA_COLUMNS if k in row and not _isnan(row[k])}


def _isnan(value: Any) -> bool:
    try:
        return bool(isinstance(value, float) and math.isnan(value)) or value is None
    except TypeError:  # pragma: no cover - defensive
        return False


def _vote_columns(header: Sequence[str], captioner: Captioner) -> List[str]:
    """Columns the captioner reads (fractions always, counts when present)."""
    cols = list(captioner.required_columns())
    missing = [c for c in cols if c not in header]
    if missing:
        kind = "debiased" if captioner.debiased else "raw vote"
        raise GalaxySDDataError(
            f"table has no {kind} fraction column {missing[0]!r} ({len(missing)} of 37 missing); "
            f"a GZ2 vote table (Willett 2013 Table 5 or Hart 2016 gz2_hart16.csv) is needed"
            + ("; try raw fractions (--raw-fractions / debiased=False)" if captioner.debiased else ""))
    counts = [a.column + SUFFIX_COUNT for a in ANSWERS]
    if all(c in header for c in counts):
        cols += counts
    return cols


def _iter_rows(df: pd.DataFrame) -> Iterator[Dict[str, Any]]:
    """Rows as plain dicts (much faster than ``DataFrame.iterrows`` for the captioner)."""
    cols = list(df.columns)
    for values in df.itertuples(index=False, name=None):
        yield dict(zip(cols, values))


def _caption_votes(row: Dict[str, Any], captioner: Captioner) -> tuple:
    answers = captioner.answers(row)
    caption = caption_from_answers(answers, shuffle=captioner.shuffle)
    return caption, answer_targets(answers)


def _handle(on_error: str, exc: GalaxySDError, where: str, skipped: List[str]) -> None:
    if on_error == "raise":
        raise type(exc)(f"{where}: {exc}") from exc
    skipped.append(f"{where}: {exc}")


def _check_on_error(on_error: str) -> None:
    if on_error not in ("raise", "skip"):
        raise GalaxySDValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")


def _warn_skipped(skipped: List[str], source: str) -> None:
    if skipped:
        warnings.warn(f"{source}: {len(skipped)} rows could not be captioned and were left out "
                      f"(first: {skipped[0]})", UserWarning, stacklevel=3)


# --------------------------------------------------------------------------------------------
# vote table without images


def read_vote_table(path: os.PathLike | str, *, captioner: Optional[Captioner] = None,
                    source: Optional[str] = None, limit: Optional[int] = None,
                    on_error: str = "raise") -> List[GalaxyRecord]:
    """Records of a GZ2 vote table without images (e.g. Willett et al. 2013 Table 5).

    Parameters
    ----------
    path : path-like
        CSV (optionally gzip-compressed) with an ``objid`` or ``dr7objid`` column and the
        ``<answer>_debiased`` (or ``_fraction``) columns of all 37 GZ2 answers.
    captioner : Captioner, optional
        Captioning settings; default :class:`Captioner()` (debiased fractions).
    source : str, optional
        Source name; default the file name without extensions.
    limit : int, optional
        Read only the first ``limit`` rows.
    on_error : {"raise", "skip"}
        What to do with a row that cannot be captioned (NaN fraction): raise
        :class:`GalaxySDDataError` naming the row and column, or leave it out with a warning.

    Returns
    -------
    list of GalaxyRecord
        ``image_path`` is None; ``extra`` holds ra/dec (degrees) and sample where present.
    """
    _check_on_error(on_error)
    path = _check_file(path, "vote table")
    captioner = captioner or Captioner()
    header = _read_header(path)
    id_col = _first(header, ID_COLUMNS)
    if id_col is None:
        raise GalaxySDDataError(f"vote table {str(path)!r} has no id column; expected one of {ID_COLUMNS}")
    cols = _vote_columns(header, captioner)
    keep = [id_col] + [c for c in EXTRA_COLUMNS if c in header and c != id_col] + cols
    df = _read_csv(path, usecols=keep, str_cols=[id_col], limit=limit)
    source = source or path.name.split(".")[0]
    records: List[GalaxyRecord] = []
    skipped: List[str] = []
    for row in _iter_rows(df):
        try:
            caption, targets = _caption_votes(row, captioner)
        except GalaxySDDataError as exc:
            _handle(on_error, exc, f"{path.name} row {id_col}={row[id_col]}", skipped)
            continue
        records.append(GalaxyRecord(id=str(row[id_col]), image_path=None, caption=caption,
                                    targets=targets, source=source, label_kind="votes",
                                    extra=_extra(row)))
    _warn_skipped(skipped, source)
    return records


# --------------------------------------------------------------------------------------------
# full GZ2 release


@dataclass(frozen=True)
class GZ2ReleasePaths:
    """Files of a GZ2 release folder (see :func:`find_gz2_release`)."""

    table: Path
    mapping: Path
    images: Path


def find_gz2_release(root: os.PathLike | str, images: Optional[os.PathLike | str] = None) -> GZ2ReleasePaths:
    """Locate ``gz2_hart16.csv[.gz]``, ``gz2_filename_mapping.csv`` and the image folder in ``root``.

    Raises
    ------
    GalaxySDFileError
        When a part is missing; the message names the file and where to get it
        (``python -m galaxysd_core data download``).
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise GalaxySDFileError(f"GZ2 release folder {str(root)!r} does not exist; download it with "
                                f"'python -m galaxysd_core data download --out {root}'")
    table = next((root / n for n in GZ2_TABLE_NAMES if (root / n).is_file()), None)
    if table is None:
        raise GalaxySDFileError(f"{str(root)!r} has no {' or '.join(GZ2_TABLE_NAMES)} (Hart et al. 2016 table); "
                                f"download it with 'python -m galaxysd_core data download --out {root}'")
    mapping = root / GZ2_MAPPING_NAME
    if not mapping.is_file():
        raise GalaxySDFileError(f"{str(root)!r} has no {GZ2_MAPPING_NAME} (Zenodo record 3565489); download it "
                                f"with 'python -m galaxysd_core data download --out {root}'")
    if images is not None:
        img_dir = Path(images).expanduser()
        if not img_dir.is_dir():
            raise GalaxySDFileError(f"image folder {str(img_dir)!r} does not exist")
    else:
        img_dir = next((root / d for d in GZ2_IMAGE_DIRS if (root / d).is_dir()), None)
        if img_dir is None:
            raise GalaxySDFileError(
                f"{str(root)!r} has no image folder ({', '.join(GZ2_IMAGE_DIRS)}); unzip images_gz2.zip "
                f"there or pass the folder explicitly (--images)")
    return GZ2ReleasePaths(table=table, mapping=mapping, images=img_dir)


def read_gz2_release(root: os.PathLike | str, *, captioner: Optional[Captioner] = None,
                     images: Optional[os.PathLike | str] = None, limit: Optional[int] = None,
                     source: str = "gz2_hart16", on_error: str = "raise") -> List[GalaxyRecord]:
    """Records of the full GZ2 release (Hart et al. 2016 table + Zenodo 3565489 images).

    Parameters
    ----------
    root : path-like
        Folder holding ``gz2_hart16.csv`` (or ``.csv.gz``), ``gz2_filename_mapping.csv`` (columns
        ``objid, sample, asset_id``) and ``images_gz2/images/<asset_id>.jpg``.
    captioner : Captioner, optional
        Default :class:`Captioner()` (debiased fractions); ``Captioner(debiased=False)`` for raw.
    images : path-like, optional
        Image folder when it is not inside ``root``.
    limit : int, optional
        Read only the first ``limit`` rows of the table.
    source : str
        Source name written to the records.
    on_error : {"raise", "skip"}
        Handling of rows that cannot be captioned (see :func:`read_vote_table`).

    Returns
    -------
    list of GalaxyRecord
        One per table row, in table order. Galaxies without an entry in the mapping get
        ``image_path = None`` (preparation lists them as skipped).
    """
    _check_on_error(on_error)
    paths = find_gz2_release(root, images)
    captioner = captioner or Captioner()
    header = _read_header(paths.table)
    id_col = _first(header, ("dr7objid", "objid"))
    if id_col is None:
        raise GalaxySDDataError(f"{paths.table.name} has no dr7objid column; is it the Hart et al. 2016 table?")
    cols = _vote_columns(header, captioner)
    keep = [id_col] + [c for c in EXTRA_COLUMNS if c in header and c != id_col] + cols
    df = _read_csv(paths.table, usecols=keep, str_cols=[id_col], limit=limit)

    map_header = _read_header(paths.mapping)
    if not {"objid", "asset_id"} <= set(map_header):
        raise GalaxySDDataError(f"{paths.mapping.name} must have columns objid and asset_id, has {map_header}")
    mapping = _read_csv(paths.mapping, usecols=["objid", "asset_id"], str_cols=["objid", "asset_id"])
    mapping = mapping.dropna().drop_duplicates("objid")
    asset_of = dict(zip(mapping["objid"].str.strip(), mapping["asset_id"].str.strip()))

    records: List[GalaxyRecord] = []
    skipped: List[str] = []
    for row in _iter_rows(df):
        oid = str(row[id_col]).strip()
        try:
            caption, targets = _caption_votes(row, captioner)
        except GalaxySDDataError as exc:
            _handle(on_error, exc, f"{paths.table.name} row {id_col}={oid}", skipped)
            continue
        asset = asset_of.get(oid)
        image = paths.images / f"{asset}.jpg" if asset else None
        extra = _extra(row)
        if asset:
            extra["asset_id"] = asset
        records.append(GalaxyRecord(id=oid, image_path=image, caption=caption, targets=targets,
                                    source=source, label_kind="votes", extra=extra))
    _warn_skipped(skipped, source)
    return records


# --------------------------------------------------------------------------------------------
# catalog CSV + image folder


def _parse_answers(value: Any, where: str) -> List[str]:
    """A generic answer cell: GZ2 answer columns or caption phrases separated by ';' or '|'."""
    text = str(value).replace("|", ";")
    out = []
    for part in (p.strip() for p in text.split(";")):
        if not part:
            continue
        if part in ANSWER_BY_COLUMN:
            out.append(part)
        elif part.lower() in ANSWER_BY_PHRASE:
            out.append(ANSWER_BY_PHRASE[part.lower()].column)
        else:
            raise GalaxySDDataError(
                f"{where}: {part!r} is neither a GZ2 answer column (e.g. 't03_bar_a06_bar') nor a "
                f"caption phrase (e.g. 'dust lane')")
    if not out:
        raise GalaxySDDataError(f"{where}: empty answer cell")
    return out


def detect_label_kind(header: Sequence[str], answer_column: Optional[str] = None,
                      captioner: Optional[Captioner] = None) -> str:
    """How a catalog is labelled: ``"gz1_class"``, ``"gz2_answer"``, ``"answers"`` or ``"votes"``."""
    if answer_column is not None:
        if answer_column not in header:
            raise GalaxySDDataError(f"catalog has no column {answer_column!r}; columns: {list(header)}")
        return "answers"
    if "gz1_class_name" in header:
        return "gz1_class"
    if "gz2_column" in header:
        return "gz2_answer"
    captioner = captioner or Captioner()
    if any(c in header for c in captioner.required_columns()):
        return "votes"
    for name in ("answer", "answers", "gz2_answer_column", "label"):
        if name in header:
            return "answers"
    raise GalaxySDDataError(
        "cannot tell how the catalog is labelled: expected a 'gz1_class_name' column (Galaxy Zoo 1 "
        "classes), a 'gz2_column' column (one GZ2 answer per image), an answer column (pass "
        "answer_column / --answer-column) or GZ2 vote-fraction columns such as "
        "'t01_smooth_or_features_a01_smooth_debiased'")


def read_catalog(catalog: os.PathLike | str, *, images: Optional[os.PathLike | str] = None,
                 source: Optional[str] = None, captioner: Optional[Captioner] = None,
                 answer_column: Optional[str] = None, limit: Optional[int] = None,
                 on_error: str = "raise") -> List[GalaxyRecord]:
    """Records of a catalog CSV plus image folder.

    Parameters
    ----------
    catalog : path-like
        CSV with an image-path column (one of :data:`IMAGE_COLUMNS`, e.g. ``filename``) and labels:
        ``gz1_class_name`` (Galaxy Zoo 1 class, see
        :data:`~galaxysd_core.schema.captioning.GZ1_CLASS_ANSWERS`), ``gz2_column`` (one GZ2 answer per
        image), an answer column (``answer_column``; GZ2 answer columns or caption phrases,
        several separated by ``;``) or GZ2 vote-fraction columns.
    images : path-like, optional
        Folder the image paths are relative to; default the CSV's folder.
    source : str, optional
        Source name; default the name of the CSV's folder (e.g. ``"gz1_sdss"``).
    captioner : Captioner, optional
        Used for vote-fraction catalogs.
    answer_column : str, optional
        Name of a generic answer column.
    limit : int, optional
        Read only the first ``limit`` rows.
    on_error : {"raise", "skip"}
        Handling of rows whose label cannot be captioned (unknown class, NaN fraction).

    Returns
    -------
    list of GalaxyRecord
        ``label_kind`` tells how the caption was made; rows without an image path get
        ``image_path = None``.
    """
    _check_on_error(on_error)
    path = _check_file(catalog, "catalog")
    captioner = captioner or Captioner()
    header = _read_header(path)
    kind = detect_label_kind(header, answer_column, captioner)
    if kind == "answers" and answer_column is None:
        answer_column = next(n for n in ("answer", "answers", "gz2_answer_column", "label") if n in header)
    img_col = _first(header, IMAGE_COLUMNS)
    if img_col is None:
        raise GalaxySDDataError(f"catalog {str(path)!r} has no image-path column; expected one of {IMAGE_COLUMNS}")
    id_col = _first(header, ID_COLUMNS)
    base = Path(images).expanduser() if images is not None else path.parent
    source = source or path.parent.name
    str_cols = [c for c in (id_col, img_col, answer_column, "gz1_class_name", "gz2_column") if c in header]
    df = _read_csv(path, str_cols=str_cols, limit=limit)

    records: List[GalaxyRecord] = []
    skipped: List[str] = []
    for i, row in enumerate(_iter_rows(df)):
        raw_img = row[img_col]
        has_img = isinstance(raw_img, str) and raw_img.strip() != ""
        image_path = (base / raw_img.strip()) if has_img else None
        if id_col is not None and isinstance(row[id_col], str) and row[id_col].strip():
            rid = row[id_col].strip()
        elif has_img:
            rid = Path(raw_img).stem
        else:
            rid = f"row{i}"
        where = f"{path.name} line {i + 2}"
        try:
            if kind == "gz1_class":
                name = row["gz1_class_name"]
                if not isinstance(name, str):
                    raise GalaxySDDataError("column 'gz1_class_name' is empty")
                try:
                    caption = caption_for_gz1_class(name)
                except GalaxySDValueError as exc:
                    raise GalaxySDDataError(str(exc)) from None
                targets = answer_targets(GZ1_CLASS_ANSWERS[gz1_class_key(name)])
            elif kind == "gz2_answer":
                answers = _parse_answers(row["gz2_column"], "column 'gz2_column'")
                caption, targets = caption_from_answers(answers), answer_targets(answers)
            elif kind == "answers":
                answers = _parse_answers(row[answer_column], f"column {answer_column!r}")
                caption, targets = caption_from_answers(answers), answer_targets(answers)
            else:
                caption, targets = _caption_votes(row, captioner)
        except GalaxySDDataError as exc:
            _handle(on_error, exc, where, skipped)
            continue
        records.append(GalaxyRecord(id=rid, image_path=image_path, caption=caption, targets=targets,
                                    source=source, label_kind=kind, extra=_extra(row)))
    _warn_skipped(skipped, source)
    return records


def records_to_frame(records: Sequence[GalaxyRecord]) -> pd.DataFrame:
    """Records as a DataFrame: ``id, caption, source, image_path`` then the 37 answer targets."""
    cols = [a.column for a in ANSWERS]
    data = {
        "id": [r.id for r in records],
        "caption": [r.caption for r in records],
        "source": [r.source for r in records],
        "image_path": [str(r.image_path) if r.image_path is not None else "" for r in records],
    }
    for c in cols:
        data[c] = np.array([r.targets.get(c, math.nan) for r in records], dtype=np.float64)
    return pd.DataFrame(data)
