"""Candidate catalogs written by the D-ETG search: ranked rows, provenance, portable image paths.

Owns the written catalog format (:data:`CATALOG_COLUMNS`; ``<name>.csv`` and an Astropy ECSV whose
metadata holds the provenance and ``image_root: $GALAXYSD_DATA_DIR``, read back by
:func:`galaxysd_core.science.candidates.read_candidates`), :func:`relative_image_path` (catalogs
never hold machine-specific absolute paths to real data) and :func:`scan_catalog`, the catalog of
a re-scan with a saved detector (``train/search_detg.py --scan-only``: no generation, no training).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple, Union

import pandas as pd

from galaxysd_core._utils import jsonable
from galaxysd_core.config import DATA_DIR_IMAGE_ROOT
from galaxysd_core.errors import GalaxySDDataError

__all__ = ["CATALOG_COLUMNS", "relative_image_path", "write_catalog", "scan_catalog"]

#: Required columns of the catalog read by the Candidates page (ra/dec optional).
CATALOG_COLUMNS = ("id", "score", "image_path")


def relative_image_path(path: str, data_dir: Optional[Union[str, Path]]) -> str:
    """``path`` relative to the real-data folder when it lies inside it (catalogs never hold
    machine-specific absolute paths to real data), else unchanged."""
    if not data_dir:
        return str(path)
    try:
        rel = os.path.relpath(os.path.abspath(path), os.path.abspath(str(data_dir)))
    except ValueError:  # other drive on Windows
        return str(path)
    return str(path) if rel.startswith("..") else rel.replace(os.sep, "/")


def write_catalog(table: pd.DataFrame, out_dir: Union[str, Path], provenance: Mapping[str, Any],
                  name: str = "candidates") -> Dict[str, str]:
    """Write ``<name>.csv`` and ``<name>.ecsv`` (Astropy ECSV, provenance in the metadata).

    ``table`` must have ``id``, ``score``, ``image_path``; it is written sorted by score (descending).
    """
    from astropy.table import Table

    missing = [c for c in CATALOG_COLUMNS if c not in table.columns]
    if missing:
        raise GalaxySDDataError(f"catalog lacks columns {missing}")
    t = table.sort_values(["score", "id"], ascending=[False, True], kind="stable").reset_index(drop=True)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t.to_csv(out / f"{name}.csv", index=False, float_format="%.6g")
    at = Table.from_pandas(t)
    at.meta.update(json.loads(json.dumps(jsonable(dict(provenance)), default=str)))  # plain types for YAML
    at.meta["image_root"] = DATA_DIR_IMAGE_ROOT  # read_candidates resolves image_path against $GALAXYSD_DATA_DIR
    at.meta["comments"] = ["GalaxySD D-ETG candidates: score = detector probability of a dust lane in an "
                           "early-type galaxy; image_path is relative to $GALAXYSD_DATA_DIR."]
    at.write(out / f"{name}.ecsv", format="ascii.ecsv", overwrite=True)
    return {"csv": str(out / f"{name}.csv"), "ecsv": str(out / f"{name}.ecsv")}


def scan_catalog(detector_dir: Union[str, Path], cache_dirs: Sequence[Union[str, Path]], out_dir: Union[str, Path],
                 *, data_dir: Optional[Union[str, Path]] = None, engine: str = "local", top_n: Optional[int] = None,
                 scan_kwargs: Optional[Mapping[str, Any]] = None, progress: bool = True,
                 name: str = "candidates") -> Tuple[Any, Dict[str, str]]:
    """Scan every galaxy of ``cache_dirs`` with a saved detector and write the top rows as a catalog.

    Parameters
    ----------
    detector_dir : path
        A detector saved by :func:`galaxysd_core.science.detg_search.run_search` (its ``detector/``).
    cache_dirs : sequence of path
        Prepared caches whose index lists the image files to scan.
    out_dir : path
        Folder of ``<name>.csv`` / ``<name>.ecsv``.
    data_dir : path, optional
        Real-data folder; image paths inside it are written relative to it.
    engine : {"local", "dask", "ray"}
        Scan engine (:func:`galaxysd_core.science.scan.scan`).
    top_n : int, optional
        Catalog rows (highest detector scores; default 300, as :class:`SearchConfig`).
    scan_kwargs : mapping, optional
        Further arguments of :func:`~galaxysd_core.science.scan.scan` (batch size, workers, ...).
    progress : bool
        Progress bar of the local engine.

    Returns
    -------
    result : ScanResult
        The full scan.
    files : dict
        ``csv`` and ``ecsv`` paths.
    """
    from galaxysd_core.data.cache import PreparedDataset
    from galaxysd_core.models.classifier import MorphologyClassifier
    from galaxysd_core.science.scan import records_from_index, scan

    det = MorphologyClassifier.from_pretrained(detector_dir)
    index = pd.concat([PreparedDataset.load(c).index for c in cache_dirs], ignore_index=True)
    res = scan(records_from_index(index), det, engine=engine, progress=progress, **dict(scan_kwargs or {}))
    t = res.table[res.table["skip_reason"] == ""].copy()
    t["image_path"] = [relative_image_path(p, data_dir) for p in t["file"]]
    t = t.sort_values("score", ascending=False).head(top_n or 300)
    t["rank"] = range(1, len(t) + 1)
    prov = {"detector": str(detector_dir), "scan": {"engine": engine, **res.info, "galaxies_per_s": res.rate},
            "note": "scan-only run with a saved detector"}
    files = write_catalog(t[["id", "score", "rank", "image_path", "source"]], out_dir, prov, name=name)
    return res, files
