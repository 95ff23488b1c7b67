"""Real vs generated, per feature: the table the Metrics page shows for the classifier's heads.

:func:`feature_comparison` joins an evaluation table (``evaluation.csv`` of
:func:`galaxysd_core.evaluation.runner.evaluate`: one row per prompt and sweep point with a
``seen:<feature>`` column per head) with the real-image benchmark (``real_benchmark.json``:
``real_per_feature``) into one row per feature: how often generated images prompting the feature
show it, how often held-out real images captioned with it do, and the gap. Features a prompt named
but no head checks are listed as unchecked.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Optional

#: Columns of :func:`feature_comparison`.
COLUMNS = ("feature", "has_head", "n_prompts", "n_generated", "generated_seen", "n_real", "real_seen", "gap")


def feature_comparison(table, benchmark: Optional[Mapping[str, Any]] = None, *, rows: Optional[Any] = None):
    """One row per feature: generated vs real share seen by its head.

    Parameters
    ----------
    table : pandas.DataFrame
        Evaluation table (``prompt``, ``n``, ``seen:<feature>`` per head, ``unchecked``).
    benchmark : mapping, optional
        Content of ``real_benchmark.json`` (``real_per_feature``); without it the real columns are NaN.
    rows : boolean mask, optional
        Table rows to use (e.g. one sweep point); default all.

    Returns
    -------
    pandas.DataFrame
        :data:`COLUMNS`: ``generated_seen`` is the image-weighted mean of ``seen:<feature>`` over the
        rows whose prompt names the feature, ``real_seen`` the real benchmark's share, ``gap``
        generated minus real; unchecked features have ``has_head`` False and NaN shares.
    """
    import pandas as pd

    t = table if rows is None else table[rows]
    real = {r["feature"]: r for r in (benchmark or {}).get("real_per_feature", [])}
    heads = [c[len("seen:"):] for c in t.columns if c.startswith("seen:")]
    out = []
    for h in heads:
        used = t[t[f"seen:{h}"].notna()]
        n = used["n"].astype(float) if "n" in used.columns else pd.Series(1.0, index=used.index)
        gen = float((used[f"seen:{h}"] * n).sum() / n.sum()) if len(used) else math.nan
        r = real.get(h, {})
        real_seen = r.get("seen")
        real_seen = math.nan if real_seen is None else float(real_seen)
        out.append({"feature": h, "has_head": True, "n_prompts": int(used["prompt"].nunique()) if len(used) else 0,
                    "n_generated": int(n.sum()) if len(used) else 0, "generated_seen": gen,
                    "n_real": int(r.get("n_images", 0) or 0), "real_seen": real_seen, "gap": gen - real_seen})
    unchecked = {}
    if "unchecked" in t.columns:
        for prompt, text in zip(t["prompt"], t["unchecked"].fillna("")):
            for f in (x.strip() for x in str(text).split(";")):
                if f:
                    unchecked.setdefault(f, set()).add(prompt)
    for f, prompts in unchecked.items():
        out.append({"feature": f, "has_head": False, "n_prompts": len(prompts), "n_generated": 0,
                    "generated_seen": math.nan, "n_real": int(real.get(f, {}).get("n_images", 0) or 0),
                    "real_seen": math.nan, "gap": math.nan})
    return pd.DataFrame(out, columns=list(COLUMNS))
