"""Galaxy Zoo 2 vote tables: the full release as users download it, and tables without images.

* :func:`read_gz2_release`: the Hart et al. (2016, MNRAS 461, 3663) table ``gz2_hart16.csv`` (or
  ``.csv.gz``), the image-name mapping ``gz2_filename_mapping.csv`` and the image set
  ``images_gz2/images/<asset_id>.jpg`` (Zenodo record 3565489), located by
  :func:`find_gz2_release`. Captions come from the vote fractions through
  :class:`~galaxysd_core.schema.captioning.Captioner`.
* :func:`read_vote_table`: a GZ2 vote table without images (Willett et al. 2013, MNRAS 435, 2835,
  Table 5); records have ``image_path = None`` (used for morphology statistics).

Both return :class:`~galaxysd_core.data.records.GalaxyRecord` objects; the release is fetched by
:mod:`galaxysd_core.data.download`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

from galaxysd_core.data.records import (EXTRA_COLUMNS, ID_COLUMNS, GalaxyRecord, caption_votes, check_file,
                                        check_on_error, extra_fields, first_column, handle_row_error, iter_rows,
                                        read_csv, read_header, vote_columns, vote_values, warn_skipped)
from galaxysd_core.errors import GalaxySDDataError, GalaxySDFileError
from galaxysd_core.schema.captioning import Captioner

#: File names of the GZ2 release (Hart et al. 2016; Zenodo record 3565489).
GZ2_TABLE_NAMES = ("gz2_hart16.csv", "gz2_hart16.csv.gz")
GZ2_MAPPING_NAME = "gz2_filename_mapping.csv"
GZ2_IMAGE_DIRS = ("images_gz2/images", "images_gz2", "images")


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
    check_on_error(on_error)
    path = check_file(path, "vote table")
    captioner = captioner or Captioner()
    header = read_header(path)
    id_col = first_column(header, ID_COLUMNS)
    if id_col is None:
        raise GalaxySDDataError(f"vote table {str(path)!r} has no id column; expected one of {ID_COLUMNS}")
    cols = vote_columns(header, captioner)
    keep = [id_col] + [c for c in EXTRA_COLUMNS if c in header and c != id_col] + cols
    df = read_csv(path, usecols=keep, str_cols=[id_col], limit=limit)
    source = source or path.name.split(".")[0]
    records: List[GalaxyRecord] = []
    skipped: List[str] = []
    for row in iter_rows(df):
        try:
            caption, targets = caption_votes(row, captioner)
        except GalaxySDDataError as exc:
            handle_row_error(on_error, exc, f"{path.name} row {id_col}={row[id_col]}", skipped, captioner)
            continue
        records.append(GalaxyRecord(id=str(row[id_col]), image_path=None, caption=caption,
                                    targets=targets, source=source, label_kind="votes",
                                    extra=extra_fields(row), votes=vote_values(row, captioner)))
    warn_skipped(skipped, source)
    return records


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
        (``galaxysd data download``).
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise GalaxySDFileError(f"GZ2 release folder {str(root)!r} does not exist; download it with "
                                f"'galaxysd data download --out {root}'")
    table = next((root / n for n in GZ2_TABLE_NAMES if (root / n).is_file()), None)
    if table is None:
        raise GalaxySDFileError(f"{str(root)!r} has no {' or '.join(GZ2_TABLE_NAMES)} (Hart et al. 2016 table); "
                                f"download it with 'galaxysd data download --out {root}'")
    mapping = root / GZ2_MAPPING_NAME
    if not mapping.is_file():
        raise GalaxySDFileError(f"{str(root)!r} has no {GZ2_MAPPING_NAME} (Zenodo record 3565489); download it "
                                f"with 'galaxysd data download --out {root}'")
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
    check_on_error(on_error)
    paths = find_gz2_release(root, images)
    captioner = captioner or Captioner()
    header = read_header(paths.table)
    id_col = first_column(header, ("dr7objid", "objid"))
    if id_col is None:
        raise GalaxySDDataError(f"{paths.table.name} has no dr7objid column; is it the Hart et al. 2016 table?")
    cols = vote_columns(header, captioner)
    keep = [id_col] + [c for c in EXTRA_COLUMNS if c in header and c != id_col] + cols
    df = read_csv(paths.table, usecols=keep, str_cols=[id_col], limit=limit)

    map_header = read_header(paths.mapping)
    if not {"objid", "asset_id"} <= set(map_header):
        raise GalaxySDDataError(f"{paths.mapping.name} must have columns objid and asset_id, has {map_header}")
    mapping = read_csv(paths.mapping, usecols=["objid", "asset_id"], str_cols=["objid", "asset_id"])
    mapping = mapping.dropna().drop_duplicates("objid")
    asset_of = dict(zip(mapping["objid"].str.strip(), mapping["asset_id"].str.strip()))

    records: List[GalaxyRecord] = []
    skipped: List[str] = []
    for row in iter_rows(df):
        oid = str(row[id_col]).strip()
        try:
            caption, targets = caption_votes(row, captioner)
        except GalaxySDDataError as exc:
            handle_row_error(on_error, exc, f"{paths.table.name} row {id_col}={oid}", skipped, captioner)
            continue
        asset = asset_of.get(oid)
        image = paths.images / f"{asset}.jpg" if asset else None
        extra = extra_fields(row)
        if asset:
            extra["asset_id"] = asset
        records.append(GalaxyRecord(id=oid, image_path=image, caption=caption, targets=targets,
                                    source=source, label_kind="votes", extra=extra,
                                    votes=vote_values(row, captioner)))
    warn_skipped(skipped, source)
    return records
