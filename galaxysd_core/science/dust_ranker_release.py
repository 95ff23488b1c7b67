"""Cross-validate the dust-lane rankers, choose one, refit it and write the shipped detector folder.

:func:`load_cv_data` gathers the voted galaxies of the caches, their truths
(:func:`galaxysd_core.science.detg_definition.truth_table`), vote counts and classifier v2's
components; :func:`cross_validate_and_release` runs
:mod:`galaxysd_core.science.dust_ranker_cv`, chooses the ranker, refits it on every voted galaxy and
writes the detector folder with its card (:mod:`galaxysd_core.science.dust_ranker_card`).
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Union

import numpy as np
import pandas as pd

from galaxysd_core._utils import jsonable, library_versions
from galaxysd_core.errors import GalaxySDDataError
from galaxysd_core.science.binary_training import BinaryTrainSettings
from galaxysd_core.science.detg_components import COMPONENT_COLUMNS, component_probabilities
from galaxysd_core.science.detg_definition import DETG_DEFINITION, REFERENCES, SCORE_DEFINITION, truth_table
from galaxysd_core.science.dust_ranker import DEFAULT_SETTINGS, train_ranker, vote_count_targets
from galaxysd_core.science.dust_ranker_cv import (assign_folds, choose_ranker, oof_rankers, ranker_table,
                                                  run_cross_validation)

__all__ = ["RANKER_FILE", "OOF_FILE", "OOF_COLUMN", "CV_TABLE_FILE", "CvData", "load_cv_data", "cross_validate_and_release"]

logger = logging.getLogger(__name__)

#: The catalog's dust component (``{"dust": "cnn" | "v2_dust_votes" | "cnn+v2"}``), read by the scan.
RANKER_FILE = "ranker.json"
#: Out-of-fold score of every training galaxy (the catalog's score for them).
OOF_FILE = "oof_scores.csv"
#: Its score column.
OOF_COLUMN = "p_dust_cnn_oof"
CV_TABLE_FILE = "cv_table.csv"


@dataclass
class CvData:
    """Voted galaxies: ``images`` uint8 (N, H, W, 3), ``index`` (with truths), counts, components, held-out mask."""

    images: np.ndarray
    index: pd.DataFrame
    k_votes: np.ndarray
    n_votes: np.ndarray
    components: np.ndarray
    classifier_heldout: np.ndarray


def load_cv_data(cache_dirs: Sequence[Union[str, Path]], classifier_dir: Union[str, Path],
                 limit: Optional[int] = None) -> CvData:
    """Voted galaxies with known vote counts, their truths and classifier v2's components (module docstring)."""
    from galaxysd_core.models.classifier import MorphologyClassifier
    from galaxysd_core.science.binary_tasks import load_labelled_caches

    images, index = load_labelled_caches(cache_dirs)
    truth = truth_table(index)
    k, n = vote_count_targets(index)
    keep = np.flatnonzero(truth["has_votes"].to_numpy() & np.isfinite(k) & np.isfinite(n)
                          & np.isfinite(truth["detg"].to_numpy(dtype=float)))
    if limit:
        keep = keep[:: max(1, len(keep) // int(limit))][: int(limit)]
    if len(keep) == 0:
        raise GalaxySDDataError("no galaxy with GZ2 vote counts in these caches; give a vote cache such as "
                                "cache/gz2_cutouts_128 (galaxysd data prepare --catalog .../gz2_cutouts/labels.csv)")
    index = index.iloc[keep].reset_index(drop=True)
    truth = truth.iloc[keep].reset_index(drop=True)
    if index["id"].astype(str).duplicated().any():
        raise GalaxySDDataError("duplicate ids across the caches; give each cache once")
    for c in ("dust_lane", "dust_lane_soft", "dust_lane_partial", "spiral_majority", "detg"):
        index[c] = truth[c].to_numpy()
    images = images[keep]
    judge = MorphologyClassifier.from_pretrained(classifier_dir)
    comps = component_probabilities(judge, images)
    test_file = Path(classifier_dir) / "split_test_ids.csv"
    held = (index["id"].astype(str).isin(set(pd.read_csv(test_file, dtype={"id": str})["id"])).to_numpy()
            if test_file.is_file() else np.zeros(len(index), dtype=bool))
    return CvData(images=images, index=index, k_votes=k[keep], n_votes=n[keep], components=comps,
                  classifier_heldout=held)


def _strata(index: pd.DataFrame) -> np.ndarray:
    return np.where(index["detg"] == 1, "detg", np.where(index["dust_lane_partial"] == 1, "dust", "rest"))


def cross_validate_and_release(cache_dirs: Sequence[Union[str, Path]], classifier_dir: Union[str, Path],
                               work_dir: Union[str, Path], out_dir: Union[str, Path], *, folds: int = 5,
                               seeds: Sequence[int] = (0, 1), settings: Optional[BinaryTrainSettings] = None,
                               n_boot: int = 500, limit: Optional[int] = None, cv_only: bool = False,
                               command: str = "") -> Dict[str, Any]:
    """Cross-validate, choose, refit and write (module docstring); returns ``table``, ``chosen``, ``files``."""
    settings = settings or DEFAULT_SETTINGS
    data = load_cv_data(cache_dirs, classifier_dir, limit)
    ids = data.index["id"].astype(str).to_numpy()
    fold = assign_folds(ids, _strata(data.index), folds)
    oof = run_cross_validation(data.images, data.k_votes, data.n_votes, fold, seeds, settings, work_dir)
    if cv_only:
        return {"table": None, "chosen": None, "files": {}}
    c = {name: data.components[:, i] for i, name in enumerate(COMPONENT_COLUMNS)}
    scores = oof_rankers(oof, len(ids), c["dust_vote_pred"])
    subsets = {"all": np.ones(len(ids), dtype=bool), "classifier_heldout": data.classifier_heldout}
    table = ranker_table(scores, data.index, c["p_spiral"], c["p_artifact"], subsets, n_boot=n_boot)
    chosen = choose_ranker(table, "classifier_heldout" if data.classifier_heldout.any() else "all", "detg")
    logger.info("chosen ranker: %s", chosen)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = _release(data, ids, fold, oof, scores, table, chosen, settings, seeds, out, classifier_dir,
                     cache_dirs, command)
    return {"table": table, "chosen": chosen, "files": files}


def _release(data: CvData, ids, fold, oof, scores, table, chosen, settings, seeds, out: Path, classifier_dir,
             cache_dirs, command) -> Dict[str, str]:
    from galaxysd_core.science.detg_results import TRAINING_IDS_NAME
    from galaxysd_core.science.dust_ranker_card import ranker_card

    # the shipped network: the recipe refitted on every voted galaxy (seed of the first CV run), one view;
    # ranker.json says whether the scan's dust component is it, classifier v2's dust votes, or their mean
    model, hist = train_ranker(data.images, data.k_votes, data.n_votes, settings, seed=int(seeds[0]))
    info = {"purpose": "D-ETG search: dust-lane ranker (share of all GZ2 classifiers reporting a dust lane)",
            "ranker": chosen, "training": settings.to_dict(), "n_training": int(len(ids)),
            "caches": [str(c) for c in cache_dirs], "classifier": str(classifier_dir), "score": SCORE_DEFINITION,
            "truth": DETG_DEFINITION, "references": list(REFERENCES), "refit_seconds": hist["wall_time_s"],
            "versions": library_versions(), "command": command,
            "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    card = ranker_card(table, chosen, data, settings, seeds, fold, info)
    model.save_pretrained(out, extra_config=jsonable(info), card=card)
    (out / RANKER_FILE).write_text(json.dumps({"dust": chosen, "views": 1}, indent=2) + "\n")
    pd.DataFrame({"id": ids, "source": data.index["source"].to_numpy(), "fold": fold}).to_csv(
        out / TRAINING_IDS_NAME, index=False)
    oof_tbl = pd.DataFrame({"id": ids, "fold": fold, OOF_COLUMN: scores["cnn"].to_numpy()})
    oof_tbl.to_csv(out / OOF_FILE, index=False, float_format="%.6g")
    table.to_csv(out / CV_TABLE_FILE, index=False, float_format="%.5g")
    return {"detector": str(out), "cv_table": str(out / CV_TABLE_FILE), "oof": str(out / OOF_FILE)}
