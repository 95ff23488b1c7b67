"""Row checks of a candidate catalog (:func:`galaxysd_core.science.candidates.read_candidates`).

:func:`check_rows` returns the usable rows and lists the others with a reason: an empty id, an id
shared by several rows (all of them: verdicts are stored per id, so which row a verdict belongs to
would be unknowable), a score that is not a finite number, an ra/dec that is present but not a
number in [0, 360] / [-90, 90] degrees. Empty or NaN coordinates mean "position unknown". Rows are
named by their line (CSV, the header is line 1) or data row (ECSV); no reason quotes a cell, since
the table may be any file of the server (a visitor's typed path) or a visitor's upload.
"""
from __future__ import annotations

import math
from typing import Dict, List, Tuple

import numpy as np
import pandas as pd

__all__ = ["check_rows"]


def check_rows(df: pd.DataFrame, unit: str) -> Tuple[pd.DataFrame, List[Dict[str, str]]]:
    """(usable rows with clean ``id``, ``score``, ``ra``, ``dec``; the rows left out, in file order).

    ``unit`` names positions: ``"line"`` (CSV: the header is line 1) or ``"data row"`` (ECSV).
    Reasons never quote a cell (module docstring).
    """
    def where(i: int) -> str:
        return f"{unit} {i + (2 if unit == 'line' else 1)}"

    reasons: Dict[int, str] = {}
    ids = df["id"].map(lambda v: "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v).strip())
    rows_of: Dict[str, List[int]] = {}
    for i, v in enumerate(ids):
        if v:
            rows_of.setdefault(v, []).append(i)
        else:
            reasons[i] = "empty id"
    for rows in rows_of.values():
        if len(rows) > 1:  # every row of a shared id: which one a verdict belongs to is unknowable
            for i in rows:
                others = [where(j) for j in rows[:4] if j != i][:3]
                more = ", ..." if len(rows) > 4 else ""
                reasons[i] = (f"duplicate id (also on {', '.join(others)}{more}); ids must be unique because "
                              f"verdicts are stored per id")
    score = pd.to_numeric(df["score"], errors="coerce").astype(float)
    for i in np.flatnonzero(~np.isfinite(score.to_numpy())):
        reasons.setdefault(int(i), "score is not a finite number")
    df = df.assign(id=ids, score=score)
    for col, lo, hi in (("ra", 0.0, 360.0), ("dec", -90.0, 90.0)):
        if col not in df.columns:
            df[col] = np.nan
            continue
        raw = df[col]
        vals = pd.to_numeric(raw, errors="coerce").astype(float)
        given = raw.notna().to_numpy() & (raw.astype(str).str.strip() != "").to_numpy()
        for i in np.flatnonzero(given & np.isnan(vals.to_numpy())):
            reasons.setdefault(int(i), f"{col} is not a number")
        for i in np.flatnonzero(~np.isnan(vals.to_numpy()) & ~((vals >= lo) & (vals <= hi)).to_numpy()):
            reasons.setdefault(int(i), f"{col} {vals.iloc[i]:g} is outside [{lo:g}, {hi:g}] degrees")
        df[col] = vals
    skipped = [{"row": where(i), "id": ids.iloc[i], "reason": reasons[i]} for i in sorted(reasons)]
    keep = np.ones(len(df), dtype=bool)
    keep[list(reasons)] = False
    return df[keep].reset_index(drop=True), skipped
