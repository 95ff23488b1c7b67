"""Morphology distribution of a source: caption feature counts and feature combinations.

The combinations table is the data behind an UpSet plot (Lex et al. 2014, IEEE TVCG 20, 1983):
one row per distinct set of caption features, with the number of galaxies having exactly that
set. Feature counts are per caption phrase (GZ2 answer; see :mod:`galaxysd_core.schema.gz2`), in
tree order, including features no galaxy has (the rare features are the point of GalaxySD).
"""
from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, List, Tuple, Union

import pandas as pd

from galaxysd_core.errors import GalaxySDDataError, GalaxySDValueError
from galaxysd_core.schema.captioning import caption_tags
from galaxysd_core.schema.gz2 import ANSWER_BY_PHRASE, caption_phrases

__all__ = ["MorphologyStats", "describe"]

#: Separator of features in the ``combination`` column.
COMBINATION_SEP = " + "
#: Label of the combination with no feature (caption ``"sdss"`` only).
NO_FEATURE = "(no feature)"


@dataclass
class MorphologyStats:
    """Result of :func:`describe`.

    Attributes
    ----------
    n_galaxies : int
        Galaxies counted.
    features : pandas.DataFrame
        ``feature, question, count, fraction``: one row per caption phrase in tree order (unknown
        tags, if any, at the end with ``question`` empty); ``fraction`` = count / n_galaxies.
    combinations : pandas.DataFrame
        ``combination, n_features, count, fraction`` sorted by count (descending), all distinct
        feature sets; ``combination`` joins the features in tree order with ``" + "``.
    top : int
        Number of combinations shown by :meth:`to_text` / :meth:`to_dict`.
    """

    n_galaxies: int
    features: pd.DataFrame
    combinations: pd.DataFrame
    top: int = 10

    def top_combinations(self, n: int | None = None) -> pd.DataFrame:
        return self.combinations.head(self.top if n is None else n).reset_index(drop=True)

    def membership(self) -> pd.DataFrame:
        """Combinations as a boolean matrix (one column per feature present) plus ``count``:
        the input format of UpSet plotting libraries."""
        feats = [f for f in self.features.loc[self.features["count"] > 0, "feature"]]
        rows = []
        for combo, count in zip(self.combinations["combination"], self.combinations["count"]):
            present = set() if combo == NO_FEATURE else set(combo.split(COMBINATION_SEP))
            rows.append({**{f: f in present for f in feats}, "count": int(count)})
        return pd.DataFrame(rows, columns=[*feats, "count"])

    def to_dict(self) -> dict:
        return {"n_galaxies": self.n_galaxies,
                "features": self.features.to_dict(orient="records"),
                "top_combinations": self.top_combinations().to_dict(orient="records"),
                "n_combinations": int(len(self.combinations))}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def to_text(self) -> str:
        """Plain-text report (feature counts, then the top combinations)."""
        lines = [f"{self.n_galaxies} galaxies, {len(self.combinations)} distinct feature combinations", "",
                 "feature counts:"]
        width = max([len(f) for f in self.features["feature"]] + [10])
        for f, c, fr in zip(self.features["feature"], self.features["count"], self.features["fraction"]):
            lines.append(f"  {f:<{width}}  {int(c):>8d}  {100 * fr:6.2f} %")
        lines += ["", f"top {min(self.top, len(self.combinations))} combinations:"]
        for combo, c, fr in self.top_combinations()[["combination", "count", "fraction"]].itertuples(index=False):
            lines.append(f"  {int(c):>8d}  {100 * fr:6.2f} %  {combo}")
        return "\n".join(lines)

    def save(self, folder: os.PathLike | str) -> List[Path]:
        """Write ``features.csv``, ``combinations.csv`` (all) and ``summary.json`` into ``folder``."""
        out = Path(folder).expanduser()
        out.mkdir(parents=True, exist_ok=True)
        paths = [out / "features.csv", out / "combinations.csv", out / "summary.json"]
        self.features.to_csv(paths[0], index=False)
        self.combinations.to_csv(paths[1], index=False)
        paths[2].write_text(self.to_json() + "\n", encoding="utf-8")
        return paths


def _captions(source: Any) -> List[str]:
    if isinstance(source, pd.DataFrame):
        if "caption" not in source.columns:
            raise GalaxySDDataError(f"DataFrame has no 'caption' column (columns: {list(source.columns)[:8]}...)")
        return [str(c) for c in source["caption"].tolist()]
    if isinstance(source, pd.Series):
        return [str(c) for c in source.tolist()]
    out = []
    for item in source:
        if isinstance(item, str):
            out.append(item)
        elif hasattr(item, "caption"):
            out.append(str(item.caption))
        else:
            raise GalaxySDValueError(f"cannot take a caption from {type(item).__name__}; give GalaxyRecords, "
                                     f"caption strings or a DataFrame with a 'caption' column")
    return out


def describe(source: Union[Iterable[Any], pd.DataFrame, pd.Series], top: int = 10) -> MorphologyStats:
    """Feature counts and feature combinations of a set of captions.

    Parameters
    ----------
    source : iterable of GalaxyRecord or str, or pandas DataFrame / Series
        Records (their ``caption``), captions, or a table with a ``caption`` column (e.g. a
        prepared cache's ``index``).
    top : int
        Number of combinations in the text and JSON summaries (all are in ``combinations``).

    Returns
    -------
    MorphologyStats
    """
    if top < 1:
        raise GalaxySDValueError(f"top must be >= 1, got {top}")
    captions = _captions(source)
    n = len(captions)
    order = {p: i for i, p in enumerate(caption_phrases())}
    feature_counts: Counter = Counter()
    combo_counts: Counter = Counter()
    for cap in captions:
        feats = sorted(set(caption_tags(cap)), key=lambda f: (order.get(f, len(order)), f))
        feature_counts.update(feats)
        combo_counts[COMBINATION_SEP.join(feats) if feats else NO_FEATURE] += 1
    known = caption_phrases()
    unknown = sorted(f for f in feature_counts if f not in order)
    frac = (lambda c: c / n) if n else (lambda c: 0.0)
    features = pd.DataFrame({
        "feature": known + unknown,
        "question": [ANSWER_BY_PHRASE[f].question for f in known] + [""] * len(unknown),
        "count": [feature_counts.get(f, 0) for f in known + unknown],
    })
    features["fraction"] = [frac(c) for c in features["count"]]
    combos = sorted(combo_counts.items(), key=lambda kv: (-kv[1], kv[0]))
    combinations = pd.DataFrame({
        "combination": [k for k, _ in combos],
        "n_features": [0 if k == NO_FEATURE else len(k.split(COMBINATION_SEP)) for k, _ in combos],
        "count": [v for _, v in combos],
    }, columns=["combination", "n_features", "count"])
    combinations["fraction"] = [frac(c) for c in combinations["count"]]
    return MorphologyStats(n_galaxies=n, features=features, combinations=combinations, top=top)
