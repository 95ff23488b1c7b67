"""Candidate catalogs: reading, validation, verdict merging, export and sky-viewer links.

A candidate catalog is a table (CSV or ECSV) with one row per candidate galaxy to vet by eye:

========== ======== ===========================================================================
column     required meaning
========== ======== ===========================================================================
id         yes      unique identifier (kept as text)
score      yes      finite number; higher = more promising (the page sorts by it, descending)
image_path yes      image file, relative to the catalog's image root (its folder, ``images_dir``
                    or the real-data folder); paths that leave the root are refused
ra, dec    no       ICRS degrees; when both are present, SDSS SkyServer and Legacy Survey links
========== ======== ===========================================================================

Other columns are kept and exported. ECSV (Astropy's Enhanced CSV, with typed columns and
metadata) is read and written with :mod:`astropy.table`; plain CSV with :mod:`pandas`.

Bad rows do not cost the rest of the catalog: a row with an empty id, an id shared with another
row (all rows of that id: verdicts are stored per id, so none is offered), a score that is not a
finite number, or an ra/dec that is present but not a number in range (a corrupt row or wrong
units) is left out and listed in :attr:`CandidateCatalog.skipped` with its line (CSV) or data row
(ECSV) and the reason. The file itself is refused, naming it, when it is too large (by its size,
before it is read), empty, not UTF-8 (naming the line), not a table, lacks a required column, has
no rows or no usable row. No message quotes the file's content (it may be any file of the server).

Verdicts themselves live in :mod:`galaxysd_core.studio.store` (keyed by the catalog's :attr:`name`);
this module merges them into the table, summarises progress and exports the vetted rows.
"""
from __future__ import annotations

import datetime as _dt
import io
import json
import logging
import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

import numpy as np
import pandas as pd

from galaxysd_core import config as _config
from galaxysd_core.errors import GalaxySDDataError, GalaxySDFileError, GalaxySDValueError
from galaxysd_core.io.paths import resolve_inside
from galaxysd_core.science.candidate_rows import check_rows
# the links of the vetting table (one owner: science.sky_positions), re-exported
from galaxysd_core.science.sky_positions import legacy_survey_url, skyserver_url

logger = logging.getLogger(__name__)

__all__ = ["CandidateCatalog", "read_candidates", "default_catalog_path", "merge_verdicts", "progress",
           "filter_by_verdict", "export_vetted", "skyserver_url", "legacy_survey_url", "REQUIRED_COLUMNS", "EXPORT_FORMATS",
           "VERDICT_FILTERS"]

#: Columns every catalog must have.
REQUIRED_COLUMNS = ("id", "score", "image_path")
#: Accepted spellings of the required and coordinate columns (lower-case) -> canonical name.
COLUMN_ALIASES: Dict[str, str] = {
    "id": "id", "candidate_id": "id", "objid": "id", "dr7objid": "id", "name": "id",
    "score": "score", "prob": "score", "probability": "score",
    "image_path": "image_path", "image": "image_path", "filename": "image_path", "file": "image_path",
    "path": "image_path",
    "ra": "ra", "ra_deg": "ra", "dec": "dec", "dec_deg": "dec",
}
#: Formats of :func:`export_vetted`.
EXPORT_FORMATS = ("csv", "ecsv", "votable", "fits")
#: Largest catalog file (bytes) and number of rows accepted.
MAX_CATALOG_BYTES = 50 * 1024 * 1024
MAX_ROWS = 200_000
#: Choices of :func:`filter_by_verdict`.
VERDICT_FILTERS = ("all", "unvetted", "yes", "no", "unsure")
#: Columns :func:`read_candidates` adds (dropped again by :func:`export_vetted`).
INTERNAL_COLUMNS = ("image_file", "image_exists", "image_refused")
#: Columns added by :func:`merge_verdicts`.
VERDICT_COLUMNS = ("verdict", "note", "vetted_by", "vetted_at")

#: Folders of the shipped catalogs.
DEMO_CATALOG_DIR = _config.ASSETS_DIR / "demo_candidates"
DETG_CATALOG_DIR = _config.ASSETS_DIR / "detg_candidates"


@dataclass
class CandidateCatalog:
    """A validated candidate catalog.

    Attributes
    ----------
    name : str
        Key of the catalog in the verdict store (the file stem unless given).
    table : pandas.DataFrame
        Rows sorted by ``score`` (descending, ties by ``id``), index reset. Columns: ``id`` (str),
        ``score`` (float), ``image_path`` (as written), ``image_file`` (resolved absolute path inside
        :attr:`images_dir`, or ``""``), ``image_exists`` (bool), ``image_refused`` (bool: the path is
        absolute, climbs out with ``..`` or is a symbolic link out of :attr:`images_dir`, so it is
        never opened), ``ra``/``dec`` (float, NaN when unknown) and every other column of the file.
    source : str
        Where it was read from (path or upload name).
    images_dir : pathlib.Path or None
        Folder relative image paths were resolved against.
    meta : dict
        ECSV metadata (empty for CSV).
    image_root : str
        The catalog's ``image_root`` metadata: ``"$GALAXYSD_DATA_DIR"`` when its image paths are
        relative to the real-data folder (catalogs of real galaxies never ship the images), else ``""``.
    skipped : list of dict
        Rows left out, in file order: ``{"row", "id", "reason"}`` (``row``: ``"line 5"`` of a CSV or
        ``"data row 4"`` of an ECSV; ``id`` as written, ``""`` when empty; the reason never quotes a cell).
    """

    name: str
    table: pd.DataFrame
    source: str
    images_dir: Optional[Path]
    meta: Dict[str, Any] = field(default_factory=dict)
    image_root: str = ""
    skipped: List[Dict[str, str]] = field(default_factory=list)

    @property
    def needs_data_dir(self) -> bool:
        """True when the image paths refer to the real-data folder and none is configured."""
        return self.image_root == _config.DATA_DIR_IMAGE_ROOT and self.images_dir is None

    def __len__(self) -> int:
        return len(self.table)

    @property
    def refused_ids(self) -> List[str]:
        """Ids whose image path leaves the image folder (refused, never opened), in table order."""
        return self.table.loc[self.table["image_refused"], "id"].tolist()

    @property
    def has_coordinates(self) -> bool:
        """True when at least one row has finite ra and dec."""
        return bool(np.isfinite(self.table["ra"]).any() and np.isfinite(self.table["dec"]).any())


# ------------------------------------------------------------------------------------ reading
def _is_ecsv(data: bytes, name: str) -> bool:
    return name.lower().endswith(".ecsv") or data.lstrip()[:7] == b"# %ECSV"


def _read_table(data: bytes, name: str):
    """(DataFrame, meta) of CSV or ECSV bytes."""
    if _is_ecsv(data, name):
        from astropy.table import Table

        try:
            t = Table.read(io.BytesIO(data), format="ascii.ecsv")
        except Exception as exc:  # astropy raises many types for malformed headers
            # astropy's messages can quote header lines and column names: never echo them (the file
            # may not be a catalog at all); the cause stays on the exception for the log
            raise GalaxySDDataError(f"{name!r} is not a valid ECSV table ({type(exc).__name__}); write it "
                                    f"with astropy's Table.write(..., format='ascii.ecsv') or upload a CSV") from exc
        meta = {str(k): v for k, v in dict(t.meta).items()}
        multi = [c for c in t.colnames if len(t[c].shape) > 1]
        if multi:
            raise GalaxySDDataError(f"{name!r} has multidimensional columns {multi}; use scalar columns")
        df = t.to_pandas()
        if "id" in df.columns:
            df["id"] = [str(v) for v in t["id"]]
        return df, meta
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise GalaxySDDataError(f"{name!r} is not UTF-8 text (line {line} has bytes that are not UTF-8); save the "
                                f"catalog as UTF-8 CSV or ECSV") from None
    try:
        with warnings.catch_warnings():  # a first row longer than the header would silently become the index
            warnings.simplefilter("error", pd.errors.ParserWarning)
            header = pd.read_csv(io.StringIO(text), nrows=0, index_col=False, skipinitialspace=True).columns
            ids = [c for c in header if COLUMN_ALIASES.get(str(c).strip().lower()) == "id"]  # any case: text
            df = pd.read_csv(io.StringIO(text), comment=None, index_col=False, skipinitialspace=True,
                             dtype={c: str for c in ids})
    except pd.errors.ParserWarning:
        raise GalaxySDDataError(f"{name!r} is not a readable CSV table: its first data line has more fields than "
                                f"the header; quote fields that contain commas") from None
    except pd.errors.ParserError as exc:  # "Expected 3 fields in line 5, saw 4": positions, no content
        raise GalaxySDDataError(f"{name!r} is not a readable CSV table: {exc}") from exc
    except (pd.errors.EmptyDataError, ValueError) as exc:  # messages may quote the file: not echoed
        raise GalaxySDDataError(f"{name!r} is not a readable CSV table ({type(exc).__name__}); save it as "
                                f"comma-separated UTF-8 text with a header line") from exc
    return df, {}


def _canonical_columns(df: pd.DataFrame, name: str) -> pd.DataFrame:
    rename: Dict[str, str] = {}
    taken: Dict[str, str] = {}
    for col in df.columns:
        key = COLUMN_ALIASES.get(str(col).strip().lower())
        if key is None:
            continue
        if key in taken:
            # an exact canonical name wins over an alias
            if str(col).strip().lower() == key:
                rename.pop(taken[key], None)
            else:
                continue
        rename[col] = key
        taken[key] = col
    df = df.rename(columns=rename)
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        # The columns found are deliberately not listed: for a file that is not a catalog (a typed
        # /proc/self/environ, /etc/passwd) the "header" is file content. Name what is expected instead.
        accepted = "; ".join(f"{c}: {', '.join(a for a, k in COLUMN_ALIASES.items() if k == c)}" for c in missing)
        raise GalaxySDDataError(
            f"candidate catalog {name!r} lacks column(s) {missing}; it needs {list(REQUIRED_COLUMNS)} "
            f"(ra, dec optional). Accepted names (any case) for the missing ones: {accepted}")
    return df


def read_candidates(source: Union[str, os.PathLike, bytes, Any], *, name: Optional[str] = None,
                    images_dir: Optional[Union[str, os.PathLike]] = None,
                    max_bytes: int = MAX_CATALOG_BYTES, max_rows: int = MAX_ROWS) -> CandidateCatalog:
    """Read and validate a candidate catalog (CSV or ECSV).

    Parameters
    ----------
    source : path, bytes or binary file-like
        The catalog; a folder means the ``candidates.ecsv`` or ``candidates.csv`` inside it. A
        file-like object (e.g. a Streamlit ``UploadedFile``) should have a ``name``.
    name : str, optional
        Store key of the catalog; default the file stem (the folder name for a file called
        ``candidates.csv`` / ``candidates.ecsv``).
    images_dir : path, optional
        Folder relative ``image_path`` values refer to. Default: the real-data folder
        (``$GALAXYSD_DATA_DIR``) when the ECSV metadata says ``image_root: $GALAXYSD_DATA_DIR`` (as
        the D-ETG search writes), else the catalog's folder (for bytes or uploads without one,
        relative paths cannot be resolved and ``image_exists`` is False). Image paths never leave
        this root: absolute paths, ``..`` climbing out and symbolic links pointing out are marked
        ``image_refused`` and never opened.
    max_bytes, max_rows : int
        Limits on file size and row count.

    Returns
    -------
    CandidateCatalog

    Raises
    ------
    GalaxySDFileError
        Missing file or folder without a catalog.
    GalaxySDDataError
        Too large, empty or unreadable file, missing required columns, no rows, too many rows, or
        no usable row (every row has an empty or shared id, a bad score or bad coordinates: the
        message gives the count and the first reason). Single bad rows are not errors: they are
        left out and listed in ``skipped`` (module docstring).
    """
    folder_name = None
    if isinstance(source, (str, os.PathLike)):
        path = Path(source).expanduser()
        if path.is_dir():
            found = next((path / n for n in ("candidates.ecsv", "candidates.csv") if (path / n).is_file()), None)
            if found is None:
                raise GalaxySDFileError(f"folder {str(path)!r} has no candidates.ecsv or candidates.csv")
            folder_name = path.name
            path = found
        if not path.is_file():
            raise GalaxySDFileError(f"candidate catalog {str(path)!r} does not exist")
        size = path.stat().st_size
        if size > max_bytes:
            raise GalaxySDDataError(f"catalog {path.name!r} has {size / 1e6:.1f} MB; at most {max_bytes / 1e6:.0f} MB")
        data = path.read_bytes()
        label = str(path)
        base = path.parent
        # a file called candidates.* is named after its folder (e.g. "demo_candidates")
        default_name = folder_name or (path.parent.name if path.stem == "candidates" else path.stem)
    else:
        if isinstance(source, (bytes, bytearray, memoryview)):
            data, label = bytes(source), str(name or "uploaded catalog")
        elif hasattr(source, "read"):
            label = str(getattr(source, "name", None) or name or "uploaded catalog")
            size = getattr(source, "size", None)  # Streamlit's UploadedFile: refused before anything is read
            if isinstance(size, int) and size > max_bytes:
                raise GalaxySDDataError(f"catalog {label!r} has {size / 1e6:.1f} MB; at most {max_bytes / 1e6:.0f} MB")
            if hasattr(source, "seek"):
                source.seek(0)
            data = source.read(max_bytes + 1)
            if isinstance(data, str):
                raise GalaxySDValueError(f"catalog {label!r} must be opened in binary mode ('rb')")
        else:
            raise GalaxySDValueError(f"cannot read a catalog from {type(source).__name__}; give a path or a file")
        if len(data) > max_bytes:
            raise GalaxySDDataError(f"catalog {label!r} is larger than {max_bytes / 1e6:.0f} MB")
        base = None
        default_name = Path(label).stem
    if not data.strip():
        raise GalaxySDDataError(f"candidate catalog {label!r} is empty")

    df, meta = _read_table(data, label)
    image_root = str(meta.get("image_root", "") or "")
    if images_dir is not None and str(images_dir).strip():
        base = Path(images_dir).expanduser()
    elif image_root == _config.DATA_DIR_IMAGE_ROOT:
        base = _config.data_dir()
    df = _canonical_columns(df, label)
    if len(df) == 0:
        raise GalaxySDDataError(f"candidate catalog {label!r} has no rows")
    if len(df) > max_rows:
        raise GalaxySDDataError(f"candidate catalog {label!r} has {len(df)} rows; at most {max_rows} are shown")

    df, skipped = check_rows(df, "data row" if meta or _is_ecsv(data, label) else "line")
    if skipped:
        if len(df) == 0:
            raise GalaxySDDataError(f"candidate catalog {label!r} has no usable row: all {len(skipped)} rows were "
                                    f"left out (first: {skipped[0]['row']}: {skipped[0]['reason']})")
        logger.warning("catalog %s: %d rows left out (first: %s: %s)", label, len(skipped), skipped[0]["row"],
                       skipped[0]["reason"])

    paths = df["image_path"].map(lambda v: "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v))
    df["image_path"] = paths
    files, exists, refused = [], [], []
    for p in paths:
        f, out_of_root = _resolve_image(p, base)
        files.append(str(f) if f is not None else "")
        exists.append(bool(f is not None and f.is_file()))
        refused.append(out_of_root)
    df["image_file"] = files
    df["image_exists"] = exists
    df["image_refused"] = refused
    if any(refused):
        logger.warning("catalog %s: %d image path(s) leave the image folder and are not opened", label, sum(refused))

    df = df.sort_values(["score", "id"], ascending=[False, True], kind="stable").reset_index(drop=True)
    return CandidateCatalog(name=str(name or default_name or "catalog"), table=df, source=label,
                            images_dir=base, meta=meta, image_root=image_root, skipped=skipped)


def _resolve_image(value: str, base: Optional[Path]) -> Tuple[Optional[Path], bool]:
    """(resolved image file inside ``base`` or None, whether the path was refused for leaving it).

    Absolute paths, ``~``, ``..`` climbing out and symbolic links pointing out of ``base`` are
    refused (:func:`galaxysd_core.io.paths.resolve_inside`); such a file is never opened. Without a
    ``base`` (an upload with no image folder) relative paths just cannot be resolved.
    """
    value = value.strip()
    if not value:
        return None, False
    if base is None:
        p = Path(value)
        return None, bool(p.is_absolute() or value.startswith("~") or ".." in p.parts or "\x00" in value)
    found = resolve_inside(value, base)
    return found, found is None


def default_catalog_path() -> Optional[Path]:
    """The catalog the Candidates page opens first.

    ``$GALAXYSD_CANDIDATES`` (a catalog file or a folder holding one) when set, else the shipped
    D-ETG catalog ``assets/detg_candidates``, else the demo catalog ``assets/demo_candidates``
    (None if neither exists).

    Raises
    ------
    GalaxySDFileError
        ``$GALAXYSD_CANDIDATES`` is set but names nothing readable.
    """
    chosen = _config.candidates_path()
    if chosen is not None:
        if chosen.is_dir():
            found = next((chosen / n for n in ("candidates.ecsv", "candidates.csv") if (chosen / n).is_file()), None)
            if found is None:
                raise GalaxySDFileError(f"${_config.CANDIDATES_ENV} names folder {str(chosen)!r}, which has no "
                                        f"candidates.ecsv or candidates.csv")
            return found
        if not chosen.is_file():
            raise GalaxySDFileError(f"${_config.CANDIDATES_ENV} names {str(chosen)!r}, which does not exist")
        return chosen
    for folder in (DETG_CATALOG_DIR, DEMO_CATALOG_DIR):
        for n in ("candidates.ecsv", "candidates.csv"):
            if (folder / n).is_file():
                return folder / n
    return None


# ------------------------------------------------------------------------------------ verdicts
def _verdict_fields(v: Any) -> Dict[str, Any]:
    if isinstance(v, Mapping):
        return {"verdict": v.get("verdict"), "note": v.get("note", ""), "vetted_by": v.get("user", ""),
                "vetted_at": v.get("created_at")}
    if isinstance(v, str):
        return {"verdict": v, "note": "", "vetted_by": "", "vetted_at": None}
    return {"verdict": v.verdict, "note": v.note, "vetted_by": v.user, "vetted_at": v.created_at}


def merge_verdicts(catalog: CandidateCatalog, latest: Mapping[str, Any]) -> pd.DataFrame:
    """The catalog table with ``verdict``, ``note``, ``vetted_by`` and ``vetted_at`` columns.

    Parameters
    ----------
    catalog : CandidateCatalog
    latest : mapping
        candidate id -> :class:`~galaxysd_core.studio.store.Verdict` (as from
        :meth:`Store.latest_verdicts`), a dict with ``verdict``/``note``/``user``/``created_at``,
        or a verdict string. Ids not in the catalog are ignored.
    """
    df = catalog.table.copy()
    rows = [_verdict_fields(latest[i]) if i in latest else
            {"verdict": None, "note": "", "vetted_by": "", "vetted_at": None} for i in df["id"]]
    extra = pd.DataFrame(rows, columns=list(VERDICT_COLUMNS), index=df.index)
    for c in VERDICT_COLUMNS:
        df[c] = extra[c]
    return df


def progress(merged: pd.DataFrame) -> Dict[str, int]:
    """``{"total", "vetted", "yes", "no", "unsure", "remaining"}`` of a merged table."""
    v = merged["verdict"]
    counts = {k: int((v == k).sum()) for k in ("yes", "no", "unsure")}
    vetted = int(v.notna().sum())
    return {"total": int(len(merged)), "vetted": vetted, **counts, "remaining": int(len(merged)) - vetted}


def filter_by_verdict(merged: pd.DataFrame, which: str) -> pd.DataFrame:
    """Rows with a given verdict: one of :data:`VERDICT_FILTERS`."""
    if which not in VERDICT_FILTERS:
        raise GalaxySDValueError(f"filter must be one of {VERDICT_FILTERS}, got {which!r}")
    if which == "all":
        return merged
    if which == "unvetted":
        return merged[merged["verdict"].isna()]
    return merged[merged["verdict"] == which]


def export_vetted(catalog: CandidateCatalog, merged: pd.DataFrame, fmt: str = "csv",
                  only_vetted: bool = True) -> bytes:
    """Vetted rows (or all, ``only_vetted=False``) as CSV, ECSV, VOTable or FITS bytes.

    The internal columns (:data:`INTERNAL_COLUMNS`) are dropped; ECSV, VOTable and FITS metadata
    record the catalog name and source, the export time, the software version and the verdict
    counts; VOTable and FITS columns carry units and UCDs (:mod:`galaxysd_core.io.sky_tables`).

    Raises
    ------
    GalaxySDValueError
        For an unknown format.
    """
    if fmt not in EXPORT_FORMATS:
        raise GalaxySDValueError(f"export format must be one of {list(EXPORT_FORMATS)}, got {fmt!r}")
    df = merged[merged["verdict"].notna()] if only_vetted else merged
    df = df.drop(columns=[c for c in INTERNAL_COLUMNS if c in df.columns]).copy()
    df["vetted_at"] = [v.isoformat() if hasattr(v, "isoformat") else ("" if v is None or v is pd.NaT else str(v))
                       for v in df["vetted_at"]]
    for c in ("verdict", "note", "vetted_by"):
        df[c] = df[c].fillna("").astype(str)
    if fmt == "csv":
        return df.to_csv(index=False).encode("utf-8")
    from astropy.table import Table

    from galaxysd_core import __version__

    if fmt in ("votable", "fits"):
        from galaxysd_core.io.sky_tables import fits_table_bytes, votable_bytes

        meta = {"catalog": catalog.name, "source": str(catalog.source), "software": f"galaxysd_core {__version__}",
                "exported_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "verdict_counts": progress(merged)}
        return votable_bytes(df, meta, catalog.name) if fmt == "votable" else fits_table_bytes(df, meta)
    t = Table.from_pandas(df.reset_index(drop=True))
    for c in ("ra", "dec"):
        if c in t.colnames:
            t[c].unit = "deg"
    t.meta.update({"catalog": catalog.name, "source": catalog.source,
                   "exported_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                   "software": f"galaxysd_core {__version__}", "verdict_counts": progress(merged)})
    for k, v in catalog.meta.items():
        t.meta.setdefault(f"input_{k}", v if isinstance(v, (str, int, float, bool)) else json.dumps(v, default=str))
    buf = io.StringIO()
    t.write(buf, format="ascii.ecsv")
    return buf.getvalue().encode("utf-8")
