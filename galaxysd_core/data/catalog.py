"""Catalog CSV + image folder: galaxies labelled by GZ1 class, GZ2 answers or vote fractions.

:func:`read_catalog` understands the Galaxy Zoo 1 class column ``gz1_class_name`` (Lintott et al.
2008), a single GZ2 answer column ``gz2_column``, a generic answer column, or GZ2 vote-fraction
columns (``<answer>_debiased`` / ``_fraction``); :func:`detect_label_kind` tells which. Image paths
are relative to the CSV's folder unless an image folder is given. Records are
:class:`~galaxysd_core.data.records.GalaxyRecord` objects. ``label_kind="images"``
(:data:`~galaxysd_core.data.records.IMAGES_ONLY`) reads only ids and image paths, so a catalog
without labels (an id and an image column) can be classified.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from galaxysd_core.data.records import (ID_COLUMNS, IMAGE_COLUMNS, IMAGES_ONLY, LABEL_KINDS, GalaxyRecord,
                                        caption_votes, check_file, check_on_error, extra_fields, first_column,
                                        handle_row_error, iter_rows, read_csv, read_header, vote_values,
                                        warn_skipped)
from galaxysd_core.errors import GalaxySDDataError, GalaxySDValueError
from galaxysd_core.schema.captioning import (GZ1_CLASS_ANSWERS, Captioner, answer_targets, caption_for_gz1_class,
                                             caption_from_answers, gz1_class_key)
from galaxysd_core.schema.gz2 import ANSWER_BY_COLUMN, ANSWER_BY_PHRASE

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
                 on_error: str = "raise", label_kind: Optional[str] = None, unique_ids: bool = False,
                 skipped_rows: Optional[List[Dict[str, Any]]] = None) -> List[GalaxyRecord]:
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
    label_kind : {"votes", "gz1_class", "gz2_answer", "answers", "images"}, optional
        How the catalog is labelled; default: detected from the header (:func:`detect_label_kind`).
        ``"images"`` ignores any labels: records carry id, image path and extra columns only
        (empty caption and targets), for classifying catalogs that have no labels.
        A catalog with Hart et al. (2016) vote columns (e.g. ``gz2_cutouts``) is read as votes,
        through the same captioner as the full GZ2 release: questions without columns are "not
        asked" (``captioner.report.absent_tasks``), NaN debiased fractions fall back to the
        weighted fraction (counted in ``captioner.report``).
    unique_ids : bool
        Treat a row repeating the id of an earlier row as a row error (``on_error``): the first
        row of an id is kept, later ones are skipped (or raise), naming both lines.
    skipped_rows : list, optional
        Every row left out (``on_error="skip"``) is appended as a dict ``{"line", "id",
        "image_path", "reason"}`` (``reason`` names the file and line), for skip reports.

    Returns
    -------
    list of GalaxyRecord
        ``label_kind`` tells how the caption was made; rows without an image path get
        ``image_path = None``.
    """
    check_on_error(on_error)
    path = check_file(catalog, "catalog")
    captioner = captioner or Captioner()
    header = read_header(path)
    if label_kind is not None and label_kind not in (*LABEL_KINDS, IMAGES_ONLY):
        raise GalaxySDValueError(f"label kind must be one of {(*LABEL_KINDS, IMAGES_ONLY)}, got {label_kind!r}")
    kind = label_kind if label_kind is not None else detect_label_kind(header, answer_column, captioner)
    if kind == "votes":
        captioner.bind(header)  # absent questions become "not asked"; checks the root question is there
    if kind == "answers" and answer_column is None:
        answer_column = next(n for n in ("answer", "answers", "gz2_answer_column", "label") if n in header)
    img_col = first_column(header, IMAGE_COLUMNS)
    if img_col is None:
        raise GalaxySDDataError(f"catalog {str(path)!r} has no image-path column; expected one of {IMAGE_COLUMNS}")
    id_col = first_column(header, ID_COLUMNS)
    base = Path(images).expanduser() if images is not None else path.parent
    source = source or path.parent.name
    str_cols = [c for c in (id_col, img_col, answer_column, "gz1_class_name", "gz2_column") if c in header]
    df = read_csv(path, str_cols=str_cols, limit=limit)

    records: List[GalaxyRecord] = []
    skipped: List[str] = []
    first_line: Dict[str, int] = {}
    for i, row in enumerate(iter_rows(df)):
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
        votes = {}
        try:
            if unique_ids and rid in first_line:
                raise GalaxySDDataError(f"duplicate id {rid!r} (first on line {first_line[rid]}); ids must be "
                                        f"unique, this row is left out")
            if kind == IMAGES_ONLY:
                caption, targets = "", {}
            elif kind == "gz1_class":
                name = row["gz1_class_name"]
                if not isinstance(name, str):
                    raise GalaxySDDataError("column 'gz1_class_name' is empty")
                try:
                    caption = caption_for_gz1_class(name)
                except GalaxySDValueError as exc:
                    raise GalaxySDDataError(str(exc)) from exc
                targets = answer_targets(GZ1_CLASS_ANSWERS[gz1_class_key(name)])
            elif kind == "gz2_answer":
                answers = _parse_answers(row["gz2_column"], "column 'gz2_column'")
                caption, targets = caption_from_answers(answers), answer_targets(answers)
            elif kind == "answers":
                answers = _parse_answers(row[answer_column], f"column {answer_column!r}")
                caption, targets = caption_from_answers(answers), answer_targets(answers)
            else:
                caption, targets = caption_votes(row, captioner)
                votes = vote_values(row, captioner)
        except GalaxySDDataError as exc:
            handle_row_error(on_error, exc, where, skipped, captioner if kind == "votes" else None)
            if skipped_rows is not None:
                skipped_rows.append({"line": i + 2, "id": rid, "image_path": str(image_path or ""),
                                     "reason": f"{where}: {exc}"})
            continue
        first_line.setdefault(rid, i + 2)
        records.append(GalaxyRecord(id=rid, image_path=image_path, caption=caption, targets=targets,
                                    source=source, label_kind=kind, extra=extra_fields(row), votes=votes,
                                    line=i + 2))
    warn_skipped(skipped, source)
    return records
