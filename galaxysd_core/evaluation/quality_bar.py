"""The quality bar of the shipped GalaxySD model and the tables that check an evaluation against it.

The bar (:data:`QUALITY_BAR`): at least 85 % of the samples of the round smooth prompt seen as
smooth, 70 % of the spiral prompt as spiral and 70 % of the edge-on prompt as edge-on by the
project classifier, and a mean prompt consistency within 0.1 of the real-image benchmark
(:func:`consistency_gap`). The tables read an evaluation table of
:func:`galaxysd_core.evaluation.runner.evaluate` (``base_prompt``, ``guidance``, ``seen:<head>``
columns); the release (:mod:`galaxysd_core.evaluation.release`) evaluates these prompts and the
model card (:mod:`galaxysd_core.evaluation.model_card`) reports them.
"""
from __future__ import annotations

import math
from typing import Dict, List, Optional

import pandas as pd

#: Quality bar of the shipped model: prompt -> (classifier head, minimum fraction seen).
QUALITY_BAR: Dict[str, tuple] = {
    "sdss, smooth, completely round galaxy": ("smooth", 0.85),
    "sdss, features or disk-shaped, spiral galaxy": ("spiral galaxy", 0.70),
    "sdss, edge-on galaxy": ("edge-on galaxy", 0.70),
}


def quality_bar_table(table: pd.DataFrame, guidance: float) -> pd.DataFrame:
    """Rows of the quality bar at one guidance scale from an evaluation table."""
    rows = []
    for prompt, (head, minimum) in QUALITY_BAR.items():
        sel = table[(table["base_prompt"] == prompt) & (table["guidance"].astype(float) == float(guidance))]
        if sel.empty:
            continue
        r = sel.iloc[0]
        seen = float(r.get(f"seen:{head}", math.nan))
        rows.append({"prompt": prompt, "head": head, "n": int(r["n"]), "guidance": float(guidance),
                     "fraction_seen": seen, "required": minimum, "passes": bool(seen >= minimum)})
    return pd.DataFrame(rows)


def consistency_gap(table: pd.DataFrame, benchmark: float) -> pd.DataFrame:
    """Mean generated consistency over the evaluated prompts at each guidance and its gap to the
    real-image benchmark (``gap`` = benchmark - generated; negative when the generated galaxies are
    *more* consistent than real ones). The quality bar asks for "within 0.1": ``within_0.1`` is the
    two-sided reading ``|gap| <= 0.1``, ``not_worse_by_0.1`` the one-sided ``gap <= 0.1``."""
    overall = table.groupby("guidance")["consistency"].mean().reset_index()
    overall["real_benchmark"] = benchmark
    overall["gap"] = benchmark - overall["consistency"]
    overall["within_0.1"] = overall["gap"].abs() <= 0.1
    overall["not_worse_by_0.1"] = overall["gap"] <= 0.1
    return overall


def quality_bar_status(table: pd.DataFrame, benchmark: Optional[float], label: str) -> List[str]:
    """One summary line per guidance: does every quality-bar prompt pass, and the consistency gap."""
    lines = []
    gaps = consistency_gap(table, benchmark).set_index("guidance") if benchmark is not None else None
    for g in sorted(table["guidance"].astype(float).unique()):
        qb = quality_bar_table(table, g)
        if qb.empty:
            continue
        parts = ", ".join(f"{r.head} {r.fraction_seen:.2f}" + ("" if r.passes else f" (< {r.required:.2f})")
                          for r in qb.itertuples())
        text = f"- {label}, guidance {g:g}: {'all prompts pass' if qb['passes'].all() else 'FAILS'} ({parts})"
        if gaps is not None and g in gaps.index:
            row = gaps.loc[g]
            text += (f"; mean consistency {row['consistency']:.3f} vs real {benchmark:.3f} (gap {row['gap']:+.3f}: "
                     + ("within 0.1" if row["within_0.1"] else
                        "more consistent than real by more than 0.1" if row["not_worse_by_0.1"] else
                        "more than 0.1 below real") + ")")
        lines.append(text)
    return lines
