"""The record every galaxy reader produces, and the table-reading steps the readers share.

:class:`GalaxyRecord` is what :mod:`galaxysd_core.data.gz2_release` (the GZ2 release, vote tables)
and :mod:`galaxysd_core.data.catalog` (catalog CSV + image folder) return: id, image path,
caption, 1/0/NaN answer targets, the votes of vote tables (counts and fractions per answer, for
the classifier's vote-count loss) and extra columns such as ra/dec. The helpers below read CSV
headers and tables with clear errors, pick id/image columns, caption vote-fraction rows, keep
their votes (:func:`vote_values`) and collect or raise the rows that cannot be captioned
(``on_error``).

Readers know nothing of models and never open images (that is :mod:`galaxysd_core.data.decode`).
"""
from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from galaxysd_core.errors import GalaxySDDataError, GalaxySDError, GalaxySDFileError, GalaxySDValueError
from galaxysd_core.schema.captioning import Captioner, answer_targets, caption_from_answers
from galaxysd_core.schema.gz2 import ANSWERS, QUESTIONS, SUFFIX_COUNT, SUFFIX_WEIGHTED_FRACTION

#: How a record's caption was obtained (``GalaxyRecord.label_kind``).
LABEL_KINDS = ("votes", "gz1_class", "gz2_answer", "answers")

#: Candidate id columns of catalogs, in order of preference.
ID_COLUMNS = ("dr7objid", "objid", "id", "galaxy_id", "iauname")
#: Candidate image-path columns of catalogs, in order of preference.
IMAGE_COLUMNS = ("filename", "image_path", "file", "path", "image", "file_loc")
#: How a galaxy's votes are named in ``GalaxyRecord.votes`` and in a prepared cache's ``index.csv``:
#: ``<answer column><suffix>``, e.g. ``t03_bar_a06_bar_count``.
VOTE_COUNT_SUFFIX = SUFFIX_COUNT
VOTE_FRACTION_SUFFIX = "_fraction"
#: Label kind of records read without labels (classification of any image list).
IMAGES_ONLY = "images"
#: Extra columns kept in ``GalaxyRecord.extra`` when present.
EXTRA_COLUMNS = ("ra", "dec", "sample", "gz2_class", "total_classifications", "total_votes",
                 "gz1_class_name", "gz2_column", "redshift", "z")


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
        How the caption was made: one of :data:`LABEL_KINDS` (or :data:`IMAGES_ONLY` for records
        read without labels: empty caption and targets).
    votes : dict of str to float
        Vote tables only (empty for single-label sources such as Galaxy Zoo 1): per answer of every
        question the table has, ``<answer>_count`` (number of volunteers who gave it, where the
        table has counts) and ``<answer>_fraction`` (the fraction the caption was made from:
        debiased, falling back to the weighted fraction where it is NaN, or the raw fraction with
        ``Captioner(debiased=False)``); see :func:`vote_values`.
    extra : dict
        Other columns of interest (``ra``, ``dec`` in degrees, ``sample``, ...).
    line : int or None
        Line of the catalog file the record was read from (the header is line 1), for messages
        that name a row; None where the reader does not know it.
    """

    id: str
    image_path: Optional[Path]
    caption: str
    targets: Dict[str, float]
    source: str = ""
    label_kind: str = "votes"
    extra: Dict[str, Any] = field(default_factory=dict)
    votes: Dict[str, float] = field(default_factory=dict)
    line: Optional[int] = None


# --------------------------------------------------------------------------------------------
# shared reading steps


def check_file(path: os.PathLike | str, what: str) -> Path:
    """``path`` as a :class:`~pathlib.Path`; :class:`GalaxySDFileError` naming ``what`` when it is not a file."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise GalaxySDFileError(f"{what} {str(path)!r} does not exist or is not a file; check the path "
                                f"(command-line flag or $GALAXYSD_DATA_DIR)")
    return path


def first_non_utf8_line(path: Path) -> Optional[int]:
    """Line (1-based) of the first byte sequence of ``path`` that is not UTF-8 (``.gz`` read through
    gzip), or None when every line decodes or the file cannot be read line by line."""
    import codecs
    import gzip

    try:
        with (gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")) as fh:
            decoder = codecs.getincrementaldecoder("utf-8")()
            for number, raw in enumerate(fh, start=1):
                try:
                    decoder.decode(raw)
                except UnicodeDecodeError:
                    return number
    except (OSError, EOFError):
        return None
    return None


def _csv_error(path: Path, exc: Exception) -> GalaxySDFileError:
    """The error of a CSV that pandas cannot read, naming the file (and the line where known)."""
    if isinstance(exc, UnicodeDecodeError):
        line = first_non_utf8_line(path)
        where = f" (line {line} has bytes that are not UTF-8)" if line else ""
        return GalaxySDFileError(f"{str(path)!r} is not UTF-8 text{where}; save the catalog as UTF-8 CSV")
    if isinstance(exc, pd.errors.EmptyDataError):
        return GalaxySDFileError(f"{str(path)!r} is empty: a catalog needs a header line (column names) and rows")
    if isinstance(exc, pd.errors.ParserWarning):  # the first data line has more fields than the header
        return GalaxySDFileError(f"cannot read {str(path)!r} as CSV: its first data line has more fields than "
                                 f"the header; quote fields that contain commas")
    return GalaxySDFileError(f"cannot read {str(path)!r} as CSV: {exc}")


_CSV_ERRORS = (pd.errors.ParserError, pd.errors.ParserWarning, pd.errors.EmptyDataError, UnicodeDecodeError,
               OSError, ValueError)


def read_header(path: Path) -> List[str]:
    """Column names of a CSV (no rows read); :class:`GalaxySDFileError` when it is not readable CSV."""
    try:
        return list(pd.read_csv(path, nrows=0).columns)
    except _CSV_ERRORS as exc:
        raise _csv_error(path, exc) from exc


def read_csv(path: Path, *, usecols: Optional[Sequence[str]] = None, str_cols: Sequence[str] = (),
             limit: Optional[int] = None) -> pd.DataFrame:
    """A CSV table (``str_cols`` read as strings, at most ``limit`` rows); :class:`GalaxySDFileError` on failure.

    A line with more fields than the header is an error naming the line (pandas would otherwise take
    the first column of such a file as its index and shift every column, or drop the extra fields).
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            return pd.read_csv(path, usecols=list(usecols) if usecols is not None else None,
                               dtype={c: str for c in str_cols}, nrows=limit, index_col=False)
    except _CSV_ERRORS as exc:
        raise _csv_error(path, exc) from exc


def first_column(columns: Sequence[str], candidates: Sequence[str]) -> Optional[str]:
    """The first of ``candidates`` present in ``columns`` (case-insensitive), or None."""
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


def extra_fields(row: Dict[str, Any]) -> Dict[str, Any]:
    """The :data:`EXTRA_COLUMNS` of a row that have a value (numpy scalars made Python scalars)."""
    return {k: _clean(row[k]) for k in EXTRA_COLUMNS if k in row and not _isnan(row[k])}


def _isnan(value: Any) -> bool:
    try:
        return bool(isinstance(value, float) and math.isnan(value)) or value is None
    except TypeError:  # pragma: no cover - defensive
        return False


def vote_columns(header: Sequence[str], captioner: Captioner) -> List[str]:
    """Columns the captioner reads from a table with this header (:meth:`Captioner.bind`).

    Fractions of every question present (with the weighted fractions to fall back on for NaN
    debiased values), counts where a question has them all. Questions without columns are "not
    asked" and recorded in ``captioner.report.absent_tasks``.
    """
    return captioner.bind(header)


def iter_rows(df: pd.DataFrame) -> Iterator[Dict[str, Any]]:
    """Rows as plain dicts (much faster than ``DataFrame.iterrows`` for the captioner)."""
    cols = list(df.columns)
    for values in df.itertuples(index=False, name=None):
        yield dict(zip(cols, values))


def caption_votes(row: Dict[str, Any], captioner: Captioner) -> Tuple[str, Dict[str, float]]:
    """``(caption, targets)`` of a vote-fraction row through ``captioner``."""
    answers = captioner.answers(row)
    caption = caption_from_answers(answers, shuffle=captioner.shuffle)
    return caption, answer_targets(answers)


def _float_or_nan(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def vote_values(row: Dict[str, Any], captioner: Captioner) -> Dict[str, float]:
    """Votes of a vote-table row: ``<answer>_count`` and ``<answer>_fraction`` per answer.

    Only questions the table has are included (questions absent from the bound table, e.g. t10 and
    t11 of ``gz2_cutouts``, are "not asked" and have no entries, never zeros). The fraction is the
    one the captioner reads (its suffix; a NaN debiased value falls back to the weighted fraction
    of the same answer, as in captioning); counts appear where the row has ``_count`` columns.
    Unreadable cells become NaN (the loss masks them). No side effect on ``captioner.report``.
    """
    out: Dict[str, float] = {}
    for q in QUESTIONS:
        if q.stem in captioner.absent_tasks:
            continue
        for a in q.answers:
            name = a.column + captioner.suffix
            weighted = a.column + SUFFIX_WEIGHTED_FRACTION
            if name not in row and not (captioner.debiased and weighted in row):
                continue
            frac = _float_or_nan(row.get(name))
            if math.isnan(frac) and captioner.debiased and weighted in row:
                frac = _float_or_nan(row[weighted])
            out[a.column + VOTE_FRACTION_SUFFIX] = frac
            if a.column + SUFFIX_COUNT in row:
                out[a.column + VOTE_COUNT_SUFFIX] = _float_or_nan(row[a.column + SUFFIX_COUNT])
    return out


def handle_row_error(on_error: str, exc: GalaxySDError, where: str, skipped: List[str],
                     captioner: Optional[Captioner] = None) -> None:
    """Raise (``on_error="raise"``, naming ``where``) or note a row that cannot be captioned
    (also in ``captioner.report`` when a captioner is given)."""
    if on_error == "raise":
        raise type(exc)(f"{where}: {exc}") from exc
    skipped.append(f"{where}: {exc}")
    if captioner is not None:
        captioner.note_skipped(f"{where}: {exc}")


def check_on_error(on_error: str) -> None:
    """Refuse an ``on_error`` other than ``"raise"`` or ``"skip"``."""
    if on_error not in ("raise", "skip"):
        raise GalaxySDValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")


def warn_skipped(skipped: List[str], source: str) -> None:
    """One :class:`UserWarning` saying how many rows of ``source`` were left out (and the first reason)."""
    if skipped:
        warnings.warn(f"{source}: {len(skipped)} rows could not be read or captioned and were left out "
                      f"(first: {skipped[0]})", UserWarning, stacklevel=3)


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
