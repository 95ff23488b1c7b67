"""D-ETG candidate catalogs: scan any catalog with a saved detector and classifier v2, rank, write.

:func:`scan_catalog` scores the records of any catalog + image layout the readers know
(:func:`records_from_catalogs`: :func:`galaxysd_core.data.catalog.read_catalog`;
:func:`records_from_caches`: the index of prepared caches, with the crops they were made with) with
a detector folder of :mod:`galaxysd_core.science.detg_results` and the morphology classifier v2
(:mod:`galaxysd_core.science.detg_components`), through :func:`galaxysd_core.science.scan.scan`
(local, Dask or Ray), and ranks by the D-ETG score of
:func:`galaxysd_core.science.detg_definition.detg_score`: the dust component (the folder's
``ranker.json``: the detector's ``p_dust_cnn``, classifier v2's ``dust_vote_pred`` or their mean)
times ``p_early`` (no spiral arms, not an artifact). Galaxies the detector was trained on (its
``training_ids.csv``) carry their *out-of-fold* detector score when the folder has one
(``oof_scores.csv`` of the cross-validation: the fold model that never saw them;
``score_from = out_of_fold``); without it they are excluded (or kept and flagged). Rows get ra/dec where known
(the catalog's columns, else the IAU-style name; :mod:`galaxysd_core.science.sky_positions`) and
SkyServer / Legacy Survey links.

:func:`write_catalog` writes ``<name>.csv``, an Astropy ECSV ``<name>.ecsv`` (provenance in its
metadata; read by the Candidates page, :func:`galaxysd_core.science.candidates.read_candidates`),
``<name>.provenance.json`` (detector, classifier, catalogs, versions) and ``<name>.skipped.csv``
(every image that could not be read, with the reason). Image paths inside the real-data folder
are written relative to it (:func:`relative_image_path`): catalogs never hold machine-specific
absolute paths to real data.
"""
from __future__ import annotations

import json
import math
import os
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import numpy as np
import pandas as pd

from galaxysd_core._utils import jsonable, library_versions
from galaxysd_core.config import DATA_DIR_IMAGE_ROOT
from galaxysd_core.errors import GalaxySDDataError, GalaxySDFileError
from galaxysd_core.science.detg_components import COMPONENT_COLUMNS
from galaxysd_core.science.detg_definition import SCORE_DEFINITION, detg_score
from galaxysd_core.science.detg_results import TRAINING_IDS_NAME
from galaxysd_core.science.dust_ranker_release import OOF_COLUMN, OOF_FILE, RANKER_FILE
from galaxysd_core.science.vote_truth import dust_lane_soft

__all__ = ["CATALOG_COLUMNS", "SCORE_DEFINITION", "DUST_COMPONENTS", "relative_image_path", "training_ids",
           "dust_component", "out_of_fold_scores", "source_shares", "records_from_caches", "records_from_catalogs", "CatalogResult",
           "scan_catalog", "write_catalog"]

#: Required columns of the catalog read by the Candidates page (ra/dec optional).
CATALOG_COLUMNS = ("id", "score", "image_path")
#: Dust components a detector folder's ``ranker.json`` may name (``dust``).
DUST_COMPONENTS = ("cnn", "v2_dust_votes", "cnn+v2")
_ORDER = ["rank", "id", "score", "p_dust", "p_dust_cnn", *COMPONENT_COLUMNS, "rank_in_source", "percentile_in_source",
          "ra", "dec", "position_from", "skyserver_url", "legacy_url", "source", "image_path", "known_caption",
          "dust_lane_votes", "used_in_training", "score_from"]


def relative_image_path(path: str, data_dir: Optional[Union[str, Path]]) -> str:
    """``path`` relative to the real-data folder when it lies inside it, else unchanged."""
    if not data_dir:
        return str(path)
    try:
        rel = os.path.relpath(os.path.abspath(path), os.path.abspath(str(data_dir)))
    except ValueError:  # other drive on Windows
        return str(path)
    return str(path) if rel.startswith("..") else rel.replace(os.sep, "/")


def training_ids(detector_dir: Union[str, Path]) -> set:
    """Ids the detector was trained or selected on (its ``training_ids.csv``; empty when absent)."""
    p = Path(detector_dir) / TRAINING_IDS_NAME
    return set(pd.read_csv(p, dtype={"id": str})["id"]) if p.is_file() else set()


def dust_component(detector_dir: Union[str, Path]) -> str:
    """The dust component the folder's ``ranker.json`` names (``cnn`` for folders without one).

    Raises
    ------
    GalaxySDFileError
        An unreadable ``ranker.json`` or an unknown component.
    """
    p = Path(detector_dir) / RANKER_FILE
    if not p.is_file():
        return "cnn"
    try:
        dust = json.loads(p.read_text()).get("dust", "cnn")
    except (ValueError, AttributeError, UnicodeDecodeError) as exc:
        raise GalaxySDFileError(f"{str(p)!r} is not valid JSON; re-run train/cv_dust_ranker.py") from exc
    if dust not in DUST_COMPONENTS:
        raise GalaxySDFileError(f"{str(p)!r} names an unknown dust component; expected one of {list(DUST_COMPONENTS)}")
    return str(dust)


def out_of_fold_scores(detector_dir: Union[str, Path]) -> Dict[str, float]:
    """id -> out-of-fold detector score of the training galaxies (``oof_scores.csv``; empty when absent)."""
    p = Path(detector_dir) / OOF_FILE
    if not p.is_file():
        return {}
    t = pd.read_csv(p, dtype={"id": str})
    if OOF_COLUMN not in t.columns:
        raise GalaxySDFileError(f"{str(p)!r} has no {OOF_COLUMN} column; re-run train/cv_dust_ranker.py")
    return dict(zip(t["id"], t[OOF_COLUMN].astype(float)))


def source_shares(table: pd.DataFrame, top: int = 500) -> pd.DataFrame:
    """Each source's share of the ``top`` highest scores beside its share of the scan.

    A source whose look (framing, resampling, survey) the score mistakes for dust takes far more of
    the top than of the scan; the catalog README shows this table.

    Returns
    -------
    pandas.DataFrame
        ``source, n_scanned, share_scanned, n_top, share_top, ratio`` (``ratio = share_top / share_scanned``).
    """
    t = table.sort_values(["score", "id"], ascending=[False, True], kind="stable")
    head = t.head(int(top))
    n = t.groupby("source").size()
    k = head.groupby("source").size().reindex(n.index, fill_value=0)
    out = pd.DataFrame({"source": n.index, "n_scanned": n.to_numpy(), "share_scanned": (n / n.sum()).to_numpy(),
                        "n_top": k.to_numpy(), "share_top": (k / max(1, len(head))).to_numpy()})
    out["ratio"] = out["share_top"] / out["share_scanned"]
    return out.sort_values("n_scanned", ascending=False).reset_index(drop=True)


def _soft(index: pd.DataFrame) -> np.ndarray:
    try:
        return dust_lane_soft(index)
    except GalaxySDDataError:
        return np.full(len(index), np.nan)


def records_from_caches(cache_dirs: Sequence[Union[str, Path]]) -> pd.DataFrame:
    """Scan records of prepared caches: their index, each with the crop it was prepared with."""
    from galaxysd_core.data.cache import PreparedDataset
    from galaxysd_core.science.scan import records_from_index

    parts = []
    for c in cache_dirs:
        cfg_path = Path(c) / "prepare_config.json"
        if not cfg_path.is_file():
            raise GalaxySDFileError(f"{str(cfg_path)!r} not found; give prepared caches (galaxysd data prepare)")
        crop = float(json.loads(cfg_path.read_text())["crop_fraction"])
        index = PreparedDataset.load(c).index
        rec = records_from_index(index, crop_fraction=crop)
        rec["known_caption"] = index["caption"].astype(str).to_numpy() if "caption" in index.columns else ""
        rec["dust_lane_votes"] = _soft(index)
        parts.append(rec)
    return pd.concat(parts, ignore_index=True)


def _position_problem(ra: Any, dec: Any) -> str:
    """Why a catalog row's (ra, dec) is not a sky position in degrees; ``""`` when valid or unknown (NaN, empty)."""
    for name, value, ok, span in (("ra", ra, lambda x: 0.0 <= x < 360.0, "[0, 360)"),
                                  ("dec", dec, lambda x: -90.0 <= x <= 90.0, "[-90, 90]")):
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        try:
            x = float(value)
        except (TypeError, ValueError):
            return f"{name} is not a number"
        if not math.isnan(x) and not (math.isfinite(x) and ok(x)):
            return f"{name} {x:g} is outside {span} degrees"
    return ""


def _degrees(value: Any) -> float:
    """A catalog coordinate as float degrees (NaN when empty or not a number)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _labelled_records(cat: Union[str, Path], images_dir) -> Dict[int, Any]:
    """line -> record with labels of a catalog whose labels the readers understand (else empty)."""
    from galaxysd_core.data.catalog import read_catalog

    bad: list = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            recs = read_catalog(cat, images=images_dir, on_error="skip", skipped_rows=bad)
        except GalaxySDDataError:  # labels the readers do not understand: images only
            recs = []
    for w in caught:  # the reader's "left out" summary is replaced by the one below: these rows are scanned
        if not (issubclass(w.category, UserWarning) and "were left out" in str(w.message)):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if bad:
        warnings.warn(f"{Path(cat).name}: {len(bad)} rows have labels that cannot be read; they are scanned without "
                      f"a known caption (first: {bad[0]['reason']})", UserWarning, stacklevel=3)
    return {r.line: r for r in recs}


def records_from_catalogs(catalogs: Sequence[Union[str, Path]], *, images_dir: Optional[Union[str, Path]] = None,
                          crop_fraction: Union[float, str] = "auto",
                          skipped: Optional[List[Dict[str, str]]] = None) -> pd.DataFrame:
    """Scan records of catalogs the readers know (any CSV with an image column, GZ2 vote tables, GZ1 labels).

    Every row with an image path is scanned once: a row whose label cannot be read is scanned
    without ``known_caption``; a row without an image path, or repeating an id already read (in this
    or an earlier catalog: the first row is kept, so the catalog's ids are unique, as the
    Candidates page needs), is left out and listed in ``skipped``; a row whose ra/dec is not a sky
    position in degrees (text, infinite, out of range) is scanned with its position unknown. Each
    kind of problem gives one :class:`UserWarning` naming the file and the first line.

    Parameters
    ----------
    catalogs : sequence of path
        Catalog CSVs (:func:`galaxysd_core.data.catalog.read_catalog`); labels are used for the
        ``known_caption`` / ``dust_lane_votes`` columns when the reader understands them.
    images_dir : path, optional
        Folder the image paths are relative to (default: each catalog's folder).
    crop_fraction : float or "auto"
        Central crop; ``"auto"`` matches each catalog's median galaxy size to ``gz2_cutouts`` at
        full frame, the scale the detector was trained at (:mod:`galaxysd_core.data.scale`).
    skipped : list, optional
        Rows left out are appended as ``{"id", "image_path", "reason"}`` (the reason names the file
        and line), for :func:`scan_catalog`'s ``left_out``.

    Raises
    ------
    GalaxySDFileError
        A catalog that is not readable CSV (not UTF-8, malformed), naming the file.
    GalaxySDDataError
        A catalog without an image column or without any usable row, naming the file.
    """
    from galaxysd_core.data.catalog import read_catalog
    from galaxysd_core.data.records import IMAGES_ONLY

    parts = []
    seen: Dict[str, str] = {}  # id -> "file line N" of the row kept
    left_out = skipped if skipped is not None else []
    for cat in catalogs:
        recs = read_catalog(cat, images=images_dir, label_kind=IMAGES_ONLY)
        labelled = _labelled_records(cat, images_dir)
        kept, rows, bad_pos = [], [], []
        for r in recs:
            where = f"{Path(cat).name} line {r.line}"
            path = str(r.image_path) if r.image_path is not None else ""
            if r.id in seen:  # the first row of an id wins, even one without an image (as in read_catalog)
                rows.append({"id": r.id, "image_path": path, "reason": f"{where}: id {r.id!r} is already on "
                                                                       f"{seen[r.id]}; ids must be unique"})
                continue
            seen[r.id] = where
            if r.image_path is None:
                rows.append({"id": r.id, "image_path": "", "reason": f"{where}: no image path"})
            else:
                r = labelled.get(r.line, r)
                problem = _position_problem(r.extra.get("ra"), r.extra.get("dec"))
                if problem:
                    bad_pos.append(f"{where}: {problem}")
                    r.extra.pop("ra", None), r.extra.pop("dec", None)
                kept.append(r)
        left_out.extend(rows)
        if rows:
            warnings.warn(f"{Path(cat).name}: {len(rows)} rows left out (first: {rows[0]['reason']})", UserWarning,
                          stacklevel=2)
        if bad_pos:
            warnings.warn(f"{Path(cat).name}: {len(bad_pos)} rows have ra/dec that are not sky positions in degrees; "
                          f"their positions are left unknown (first: {bad_pos[0]})", UserWarning, stacklevel=2)
        if not kept:
            first = f" ({rows[0]['reason']})" if rows else " (it has no rows)"
            raise GalaxySDDataError(f"catalog {str(cat)!r} lists no image to scan{first}")
        crop = crop_fraction
        if crop == "auto":
            from galaxysd_core.data.scale import matched_crop_for_records

            try:
                crop, _ = matched_crop_for_records(kept)
            except GalaxySDDataError as exc:
                raise GalaxySDDataError(f"catalog {str(cat)!r}: {exc} (--crop-fraction auto); check its image "
                                        f"paths or give --crop-fraction") from exc
        votes = pd.DataFrame([r.votes for r in kept])
        votes["id"] = [r.id for r in kept]
        parts.append(pd.DataFrame({
            "id": [str(r.id) for r in kept], "image_path": [str(r.image_path) for r in kept],
            "source": [r.source for r in kept], "crop_fraction": float(crop),
            "file": [str(r.image_path) for r in kept],
            "ra": [_degrees(r.extra.get("ra")) for r in kept], "dec": [_degrees(r.extra.get("dec")) for r in kept],
            "known_caption": [r.caption for r in kept], "dust_lane_votes": _soft(votes)}))
    return pd.concat(parts, ignore_index=True)


@dataclass
class CatalogResult:
    """Outcome of :func:`scan_catalog`: the ranked ``table``, the ``skipped`` images, ``provenance``."""

    table: pd.DataFrame
    skipped: pd.DataFrame
    provenance: Dict[str, Any] = field(default_factory=dict)
    rate: float = float("nan")


def scan_catalog(records: pd.DataFrame, detector_dir: Union[str, Path], *, judge=None,
                 classifier_dir: Optional[Union[str, Path]] = None, exclude_training: bool = True,
                 data_dir: Optional[Union[str, Path]] = None, top_n: Optional[int] = None, engine: str = "local",
                 scan_kwargs: Optional[Mapping[str, Any]] = None, progress: bool = True,
                 catalogs: Sequence[str] = (), left_out: Sequence[Mapping[str, str]] = ()) -> CatalogResult:
    """Score, rank and describe every record (module docstring).

    Parameters
    ----------
    records : pandas.DataFrame
        :func:`records_from_catalogs` or :func:`records_from_caches`.
    detector_dir : path
        A detector folder (``assets/detg_detector``, or a folder of ``train/search_detg.py``).
    judge : MorphologyClassifier, optional
        Classifier v2; default loaded from ``classifier_dir`` (default the shipped classifier).
    exclude_training : bool
        For detectors without out-of-fold scores: drop the galaxies of the detector's
        ``training_ids.csv`` (else keep them, flagged in ``used_in_training``). Training galaxies
        with an out-of-fold score are always kept, with that score (module docstring).
    data_dir : path, optional
        Real-data folder; image paths inside it are written relative to it.
    top_n : int, optional
        Keep only the best ``top_n`` rows (default all).
    engine, scan_kwargs, progress :
        :func:`galaxysd_core.science.scan.scan` settings.
    catalogs : sequence of str
        What was scanned, for the provenance.

        Raises :class:`GalaxySDDataError` (naming the first files and why) when no image at all
        could be read, as ``galaxysd classify`` does.
    left_out : sequence of dict
        Catalog rows left out before the scan (``{"id", "image_path", "reason"}``, from
        :func:`records_from_catalogs`' ``skipped``): listed first in ``skipped`` and counted in the
        provenance's ``n_rows_left_out``.
    """
    from galaxysd_core import config as _config
    from galaxysd_core.models.classifier import MorphologyClassifier
    from galaxysd_core.science.scan import scan
    from galaxysd_core.science.sky_positions import add_positions
    from galaxysd_core.science.synthetic import model_fingerprint

    det = MorphologyClassifier.from_pretrained(detector_dir)
    classifier_dir = classifier_dir or _config.DEFAULT_CLASSIFIER_DIR
    if judge is None:
        judge = MorphologyClassifier.from_pretrained(classifier_dir)
    res = scan(records, det, engine=engine, progress=progress and engine == "local", judge=judge,
               **dict(scan_kwargs or {}))
    t = res.table
    bad = t["skip_reason"] != ""
    if len(t) and bad.all():
        first = "; ".join(f"{p}: {r}" for p, r in zip(t["image_path"][:3], t["skip_reason"][:3]))
        raise GalaxySDDataError(f"no readable image among {len(t)} galaxies ({first}); check the catalog paths and "
                                f"--images-dir")
    skipped = t.loc[bad, ["id", "image_path", "skip_reason"]].rename(columns={"skip_reason": "reason"})
    if left_out:
        skipped = pd.concat([pd.DataFrame(list(left_out), columns=["id", "image_path", "reason"]), skipped],
                            ignore_index=True)
    skipped["image_path"] = [relative_image_path(p, data_dir) if p else "" for p in skipped["image_path"]]
    t = t[~bad].copy()
    t["p_dust_cnn"] = t["score"]
    used = training_ids(detector_dir)
    oof = out_of_fold_scores(detector_dir)
    ids = t["id"].astype(str)
    t["used_in_training"] = ids.isin(used)
    has_oof = ids.map(lambda i: i in oof).to_numpy(dtype=bool)
    t["score_from"] = np.where(has_oof, "out_of_fold", "detector")
    t.loc[has_oof, "p_dust_cnn"] = ids[has_oof].map(oof).to_numpy(dtype=float)
    dust = dust_component(detector_dir)
    if dust == "cnn":
        t["p_dust"] = t["p_dust_cnn"]
    elif dust == "v2_dust_votes":
        t["p_dust"] = t["dust_vote_pred"]
    else:
        t["p_dust"] = 0.5 * (t["p_dust_cnn"] + t["dust_vote_pred"])
    t["score"] = detg_score(t["p_dust"], t["p_spiral"], t["p_artifact"])
    drop = t["used_in_training"].to_numpy() & ~has_oof
    n_excluded = int(drop.sum())
    if exclude_training:
        t = t[~drop]
    t["image_path"] = [relative_image_path(p, data_dir) for p in t["file"]]
    t = t.sort_values(["score", "id"], ascending=[False, True], kind="stable")
    # the score is not calibrated across image sources (framing, resampling, survey): the rank and the
    # percentile within each source let a reader compare like with like
    t["rank_in_source"] = t.groupby("source").cumcount() + 1
    t["percentile_in_source"] = 100.0 * (1.0 - (t["rank_in_source"] - 1) / t.groupby("source")["id"].transform("size"))
    shares = source_shares(t, 500) if len(t) else pd.DataFrame()
    if top_n:
        t = t.head(int(top_n))
    t = add_positions(t.reset_index(drop=True))
    t.insert(0, "rank", np.arange(1, len(t) + 1))
    t = t[[c for c in _ORDER if c in t.columns]]
    info = getattr(det, "training_info", {}) or {}
    test = [r for r in info.get("heldout", []) if r.get("split") == "test" and r.get("truth") == "dust_lane"]
    prov = {
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "score": SCORE_DEFINITION, "dust_component": dust,
        "n_out_of_fold": int(has_oof.sum()), "source_shares_top500": shares.to_dict("records"),
        "detector": {"path": str(detector_dir), "fingerprint": model_fingerprint(detector_dir),
                     "arm": info.get("arm"), "seed": info.get("seed"), "generator_id": info.get("generator_id"),
                     "heldout_test_dust_lane": test[0] if test else None},
        "classifier": {"path": str(classifier_dir), "fingerprint": model_fingerprint(classifier_dir)
                       if Path(classifier_dir).is_dir() else None},
        "catalogs": [str(c) for c in catalogs],
        "crop_fractions": {str(k): float(v) for k, v in records.groupby("source")["crop_fraction"].first().items()},
        "n_records": int(len(records)), "n_skipped": int(bad.sum()), "n_rows_left_out": len(left_out), "n_training_excluded": n_excluded if
        exclude_training else 0, "n_training_in_catalog": 0 if exclude_training else n_excluded, "rows": int(len(t)),
        "positions": "catalog ra/dec, else the IAU-style name (JHHMMSS.ss+DDMMSS.s); none for SDSS objids",
        "image_paths": "relative to $GALAXYSD_DATA_DIR (the real-data folder)" if data_dir else "as read",
        "scan": {"engine": engine, "galaxies_per_s": res.rate, "seconds": res.seconds,
                 **{k: v for k, v in res.info.items() if k != "engine"}},
        "versions": library_versions(),
    }
    return CatalogResult(table=t, skipped=skipped.reset_index(drop=True), provenance=prov, rate=res.rate)


def write_catalog(result: CatalogResult, out_csv: Union[str, Path], *, ecsv: bool = True,
                  data_dir_relative: bool = False) -> Dict[str, str]:
    """Write ``out_csv`` and, next to it, ``.ecsv``, ``.provenance.json`` and ``.skipped.csv`` (module docstring)."""
    out = Path(out_csv)
    out.parent.mkdir(parents=True, exist_ok=True)
    stem = out.with_suffix("")
    result.table.to_csv(out, index=False, float_format="%.8g")  # ra/dec to ~0.04 arcsec
    files = {"csv": str(out)}
    prov_path = Path(f"{stem}.provenance.json")
    prov_path.write_text(json.dumps(jsonable(result.provenance), indent=2, default=str) + "\n")
    files["provenance"] = str(prov_path)
    skipped_path = Path(f"{stem}.skipped.csv")
    result.skipped.to_csv(skipped_path, index=False)
    files["skipped"] = str(skipped_path)
    if ecsv:
        from astropy.table import Table

        at = Table.from_pandas(result.table.fillna({"ra": np.nan, "dec": np.nan}))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            at.meta.update(json.loads(json.dumps(jsonable(dict(result.provenance)), default=str)))
        if data_dir_relative:
            at.meta["image_root"] = DATA_DIR_IMAGE_ROOT  # read_candidates resolves image_path against it
        at.meta["comments"] = ["GalaxySD D-ETG candidates. " + SCORE_DEFINITION]
        at.write(f"{stem}.ecsv", format="ascii.ecsv", overwrite=True)
        files["ecsv"] = f"{stem}.ecsv"
    return files
