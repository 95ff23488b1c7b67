"""Choosing a model's default guidance and negative-prompt policy from measurements.

GalaxySD (Ma, Sun et al. 2025, Fig. 5) shows the trade-off of classifier-free guidance: higher
guidance makes samples more consistent with the prompt and less diverse. Each candidate setting
(guidance x negative-prompt policy) is summarised over the evaluated prompts by its mean realism
(precision), diversity (recall) and prompt consistency in the classifier's embedding space, and
how far its consistency is from that of real galaxies of the same captions. The rule:

1. keep the settings on the Pareto front of (precision, recall, consistency);
2. among those meeting the goals (mean precision and recall >= 0.6 and, when the consistency of
   real galaxies is known, consistency within 0.1 of it), take the most consistent one;
3. if none meets them, take the front setting closest to meeting all of them: the largest
   worst-case fraction of a goal reached, ``min(precision / 0.6, recall / 0.6, consistency /
   consistency_goal)``, and say so (``meets_goals = False``). Realism and diversity alone would
   pick the lowest guidance, where the features the prompt asks for barely show.

The choice is written as the model folder's ``generation_defaults.json``
(:class:`galaxysd_core.pipelines.generation_defaults.GenerationDefaults`), which the pipeline, the
CLI and the app read.
"""
from __future__ import annotations

from typing import Dict, Optional, Tuple

import numpy as np
import pandas as pd

from galaxysd_core.errors import GalaxySDValueError
from galaxysd_core.pipelines.generation_defaults import GenerationDefaults

#: Goals on mean precision and recall (issue "GalaxySD-mini v2", point 3).
GOAL_PRECISION = 0.6
GOAL_RECALL = 0.6
CRITERIA = ("precision", "recall", "consistency")


def summarize_settings(tables: Dict[bool, pd.DataFrame], real_consistency: Optional[Dict[str, float]] = None
                       ) -> pd.DataFrame:
    """One row per (tree_negatives, guidance): means over prompts of the criteria.

    Parameters
    ----------
    tables : dict
        ``{tree_negatives: evaluation table}`` (rows of :func:`galaxysd_core.evaluation.runner.evaluate`
        with ``guidance``, ``prompt``, ``precision``, ``recall``, ``consistency``).
    real_consistency : dict, optional
        ``{prompt: consistency of real galaxies}`` for the ``consistency_gap`` column.
    """
    rows = []
    for tree, table in tables.items():
        if table.empty:
            continue
        missing = [c for c in ("guidance", "prompt") + CRITERIA if c not in table.columns]
        if missing:
            raise GalaxySDValueError(f"evaluation table lacks the columns {missing}")
        for g, grp in table.groupby("guidance"):
            row = {"tree_negatives": bool(tree), "guidance": float(g), "n_prompts": int(grp["prompt"].nunique())}
            for c in CRITERIA:
                row[c] = float(grp[c].mean())
            row["min_recall"] = float(grp["recall"].min())
            row["min_precision"] = float(grp["precision"].min())
            if real_consistency:
                gaps = [abs(r["consistency"] - real_consistency[r["prompt"]]) for _, r in grp.iterrows()
                        if r["prompt"] in real_consistency and np.isfinite(real_consistency[r["prompt"]])]
                row["consistency_gap"] = float(np.mean(gaps)) if gaps else float("nan")
            rows.append(row)
    return pd.DataFrame(rows)


def pareto_front(summary: pd.DataFrame) -> pd.Series:
    """Boolean mask of the rows no other row beats on every criterion (>= all, > one)."""
    vals = summary[list(CRITERIA)].to_numpy(float)
    keep = np.ones(len(vals), dtype=bool)
    for i in range(len(vals)):
        others = np.delete(vals, i, axis=0)
        dominated = np.any(np.all(others >= vals[i], axis=1) & np.any(others > vals[i], axis=1))
        keep[i] = not dominated
    return pd.Series(keep, index=summary.index)


def choose_defaults(summary: pd.DataFrame, steps: int = 20, consistency_goal: Optional[float] = None
                    ) -> Tuple[GenerationDefaults, pd.DataFrame]:
    """The recommended settings (module docstring) and the summary with ``on_front``,
    ``meets_goals``, ``attainment`` and ``chosen`` columns.

    Parameters
    ----------
    summary : DataFrame
        :func:`summarize_settings`.
    steps : int
        Denoising steps of the evaluated settings.
    consistency_goal : float, optional
        Mean consistency to reach (the real galaxies' consistency minus 0.1); None: realism and
        diversity only.

    Raises
    ------
    GalaxySDValueError
        For an empty summary.
    """
    if summary.empty:
        raise GalaxySDValueError("no evaluated settings to choose the defaults from")
    s = summary.copy()
    s["on_front"] = pareto_front(s)
    s["meets_goals"] = (s["precision"] >= GOAL_PRECISION) & (s["recall"] >= GOAL_RECALL)
    s["attainment"] = np.minimum(s["precision"] / GOAL_PRECISION, s["recall"] / GOAL_RECALL)
    goals = "mean precision and recall >= 0.6"
    if consistency_goal is not None and np.isfinite(consistency_goal) and consistency_goal > 0:
        s["meets_goals"] &= s["consistency"] >= consistency_goal
        s["attainment"] = np.minimum(s["attainment"], s["consistency"] / consistency_goal)
        goals += f" and consistency >= {consistency_goal:.3f} (real galaxies' minus 0.1)"
    front = s[s["on_front"]]
    good = front[front["meets_goals"]]
    if len(good):
        best = good.sort_values(["consistency", "recall"], ascending=False).index[0]
        rule = f"most consistent front setting with {goals}"
    else:
        best = front["attainment"].idxmax()
        rule = f"no setting meets {goals}: front setting with the largest worst-case fraction of a goal reached"
    s["chosen"] = s.index == best
    row = s.loc[best]
    source = {"rule": rule, "meets_goals": bool(row["meets_goals"]),
              "precision": float(row["precision"]), "recall": float(row["recall"]),
              "consistency": float(row["consistency"]), "attainment": float(row["attainment"]),
              "consistency_goal": None if consistency_goal is None else float(consistency_goal),
              "candidates": int(len(s)),
              "reference": "Ma, Sun et al. 2025 (arXiv:2506.16233) Fig. 5; galaxysd_core.evaluation.defaults"}
    defaults = GenerationDefaults(guidance_scale=float(row["guidance"]), tree_negatives=bool(row["tree_negatives"]),
                                  num_inference_steps=int(steps), sky_noise=True, source=source)
    return defaults, s
