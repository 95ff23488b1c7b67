"""The card (``README.md``) of the shipped dust-lane ranker: definition, cross-validated table, choice."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from galaxysd_core.science.detg_definition import DETG_DEFINITION, REFERENCES, SCORE_DEFINITION
from galaxysd_core.science.vote_truth import TRUTH_DEFINITIONS

__all__ = ["RANKER_LABELS", "format_cv_table", "ranker_card"]

RANKER_LABELS = {
    "v2_dust_votes": "classifier v2 dust-vote head (64 px)",
    "cnn": "dust-lane CNN, vote counts, 128 px, 1 seed",
    "cnn_tta": "same + mean of 8 flips/rotations",
    "cnn_ens": "seed ensemble of the CNN (1 view each)",
    "cnn_ens_tta": "seed ensemble x 8 views",
    "cnn+v2": "mean of the CNN and the v2 head",
    "cnn_ens+v2": "mean of the seed ensemble and the v2 head",
}


def _ci(row: Mapping[str, Any], m: str, digits: int = 3) -> str:
    v, lo, hi = row[m], row.get(f"{m}_lo", np.nan), row.get(f"{m}_hi", np.nan)
    if not np.isfinite(v):
        return "n/a"
    return f"{v:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]" if np.isfinite(lo) else f"{v:.{digits}f}"


def format_cv_table(table: pd.DataFrame, subset: str) -> str:
    """Markdown table of one subset: truth, ranker, AUC, AP, recall top 1 % / 5 % with 90 % intervals."""
    t = table[table["subset"] == subset]
    lines = ["| truth (positives / galaxies) | ranker | ROC AUC | AP | recall top 1 % | recall top 5 % |",
             "|---|---|---:|---:|---:|---:|"]
    for _, r in t.iterrows():
        lines.append(f"| {r['truth']} ({int(r['n_pos'])} / {int(r['n'])}) | {RANKER_LABELS.get(r['ranker'], r['ranker'])}"
                     f" (`{r['score']}`) | {_ci(r, 'roc_auc')} | {_ci(r, 'ap')} | {_ci(r, 'recall_at_1pct', 2)} | "
                     f"{_ci(r, 'recall_at_5pct', 2)} |")
    return "\n".join(lines)


def ranker_card(table: pd.DataFrame, chosen: str, data, settings, seeds: Sequence[int], folds: np.ndarray,
                info: Mapping[str, Any]) -> str:
    """The detector folder's README (module docstring)."""
    idx = data.index
    n_held = int(np.sum(data.classifier_heldout))
    lines = [f"# D-ETG search — dust-lane ranker `{chosen}` ({RANKER_LABELS.get(chosen, chosen)})", "",
             "One-head `MorphologyClassifier` at 128 px predicting the share of all Galaxy Zoo 2 classifiers who "
             "report a dust lane (`p_dust`), trained on the vote counts (binomial likelihood of k dust-lane votes "
             "out of n classifications). Made by `train/cv_dust_ranker.py` "
             "(`galaxysd_core/science/dust_ranker_release.py`).", "",
             "## Definition", "", f"- truth: {DETG_DEFINITION}",
             f"- dust-lane truths: `dust_lane_partial`: {TRUTH_DEFINITIONS['dust_lane_partial']}; "
             f"`dust_lane`: {TRUTH_DEFINITIONS['dust_lane']}",
             f"- catalog score: {SCORE_DEFINITION}", "- references: " + "; ".join(REFERENCES), "",
             "## Data and protocol", "",
             f"- {len(idx)} voted galaxies of {', '.join(sorted(set(idx['source'])))}: "
             f"{int(idx['dust_lane_partial'].sum())} with f_dust x p_odd >= 0.25, {int(idx['dust_lane'].sum())} "
             f"majority dust lanes, {int(idx['detg'].sum())} D-ETGs, {int((data.k_votes > 0).sum())} with any "
             "dust-lane vote",
             f"- {int(folds.max()) + 1}-fold cross-validation, folds stratified by truth and dealt by id hash "
             f"(`assign_folds`); seeds {list(seeds)}; every galaxy scored by the models that never saw it",
             f"- recipe: {settings.steps} AdamW steps of {settings.batch_size} at {settings.image_size} px (stem "
             f"stride {settings.stem_stride}, channels {list(settings.channels)}), lr {settings.learning_rate}, "
             f"balanced batches (half galaxies with a dust-lane share >= {settings.balance_threshold}), flips and "
             "rotations, binomial vote-count loss",
             "- intervals: bootstrap 90 % over galaxies",
             f"- classifier v2 (its dust-vote head and `p_early`) was trained on every galaxy outside its held-out "
             f"split, so the **held-out subset ({n_held} galaxies) is where every ranker is out-of-sample**; the "
             "choice is made there (best AP on the D-ETG truth). On *all* galaxies the v2 rows and every D-ETG "
             "row are optimistic.", "",
             "## Cross-validated table — classifier v2 held-out subset", "",
             format_cv_table(table, "classifier_heldout"), "",
             "## Cross-validated table — all voted galaxies", "", format_cv_table(table, "all"), "",
             "## Choice", "",
             f"`{chosen}` has the best cross-validated AP on the D-ETG truth in the held-out subset among the "
             "rankers the scan can apply with one network pass per image (`v2_dust_votes`, `cnn`, `cnn+v2`: 8 "
             "views or several seeds multiply the scan's cost and break its 1,000 galaxies/s). The shipped "
             f"network is the CNN recipe refitted on all {len(idx)} voted galaxies (seed {seeds[0]}, "
             f"{info.get('refit_seconds', float('nan')):.0f} s); `ranker.json` names the dust component of the "
             "catalog score. Galaxies the network was trained on (`training_ids.csv`) keep their out-of-fold "
             "CNN score in catalogs (`oof_scores.csv`).", "",
             "## Limitations", "",
             "- The negatives are galaxies few or no volunteers flagged: unrecognised lanes among them are "
             "counted as false positives (positive-unlabelled data).",
             "- The synthetic arm (training on generated D-ETGs) is not in this table: the shipped generator "
             "does not draw dust lanes (model card, dust-lane sweep), so synthetic 'D-ETGs' carry no lane to "
             "learn; it returns when the generator learns them.",
             "- Data: SDSS and Galaxy Zoo 2 (Willett et al. 2013; Hart et al. 2016). No real images are stored here.",
             ""]
    return "\n".join(lines)
