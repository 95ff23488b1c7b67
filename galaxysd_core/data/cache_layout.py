"""The files of a prepared cache (the layout the writer, the reader and the converter share).

Constants (file names, format version, ``index.csv`` columns) and the atomic writers of the tables
and of ``prepare_config.json`` (written last: its presence marks a complete cache). The layout
itself is described in :mod:`galaxysd_core.data.cache`.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import pandas as pd

from galaxysd_core.data.prepare_shards import IMAGES_FILE, remove_stale_shards
from galaxysd_core.data.records import VOTE_COUNT_SUFFIX, VOTE_FRACTION_SUFFIX
from galaxysd_core.data.shards import atomic_write
from galaxysd_core.schema.gz2 import ANSWERS

__all__ = ["CACHE_FORMAT_VERSION", "INDEX_FILE", "CONFIG_FILE", "SKIPPED_FILE", "ANSWER_COLUMNS", "INDEX_COLUMNS",
           "COUNT_COLUMNS", "FRACTION_COLUMNS", "VOTE_COLUMNS", "write_cache_files"]

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


def _write_csv(target: Path, df: pd.DataFrame) -> None:
    atomic_write(target, lambda p: df.to_csv(p, index=False))


def _write_json(target: Path, obj: dict) -> None:
    def w(p: Path) -> None:
        p.write_text(json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n", encoding="utf-8")

    atomic_write(target, w)


# --------------------------------------------------------------------------------------------
# preparation


def write_cache_files(out: Path, index: Optional[pd.DataFrame], config: Dict[str, Any],
                       skipped: Optional[pd.DataFrame], n_shards: int) -> None:
    """Write the tables and, last, ``prepare_config.json``; remove what a format-1 or larger run left."""
    out.mkdir(parents=True, exist_ok=True)
    for name, table in ((INDEX_FILE, index), (SKIPPED_FILE, skipped)):
        if table is not None:
            _write_csv(out / name, table)
    (out / IMAGES_FILE).unlink(missing_ok=True)  # a format-1 cache rewritten as shards
    remove_stale_shards(out, n_shards)
    _write_json(out / CONFIG_FILE, config)  # last: its presence marks a complete cache
