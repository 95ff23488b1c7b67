"""Rare odd features from partial votes: caption phrases a quarter of all classifiers reported.

Why
---
A caption lists the *majority* answer of every reached question
(:mod:`galaxysd_core.schema.captioning`). At the odd-feature question (t08) that keeps one answer
per galaxy, and only where a majority of the volunteers who reached t08 chose it: in ``gz2_cutouts``
22 training captions say "dust lane", all of them on discs, and the model never learned a lane
(GalaxySD-mini v2 card). Volunteers report rare features in smaller shares: a lenticular crossed by
a lane typically gets 20-40 % of its classifiers saying "dust lane" while the rest answer
"nothing odd" (Kaviraj et al. 2012 found their dust-lane early types by eye in the same images).

Rule
----
For each rare t08 answer (:data:`RARE_ODD_ANSWERS`: ring, lens or arc, disturbed, irregular,
merger, dust lane) a caption gets its phrase when ``f_answer x p_odd >= 0.25``
(:data:`PARTIAL_VOTE_THRESHOLD`): at least a quarter of **all** the galaxy's classifiers reported
it, the same partial-vote rule as the dust-lane truth of the D-ETG search
(:data:`galaxysd_core.science.vote_truth.PARTIAL_DUST_THRESHOLD`; ``f`` the debiased t08 fraction
of Hart et al. 2016, ``p_odd`` that of t06 "odd: yes"). A phrase already in the caption is not
repeated; several rare phrases can be added to one caption (the debiased t08 fractions need not sum
to 1). Rows without votes (Galaxy Zoo 1 classes, example images) are left as they are.

The training then oversamples captions carrying a rare phrase
(:func:`oversampling_weights`), so a batch sees them ``factor`` times as often as their share.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from galaxysd_core.errors import GalaxySDValueError
from galaxysd_core.schema.captioning import caption_tags
from galaxysd_core.schema.gz2 import ANSWER_BY_COLUMN

__all__ = ["RARE_ODD_ANSWERS", "ODD_YES_COLUMN", "PARTIAL_VOTE_THRESHOLD", "PartialVoteReport",
           "partial_vote_phrases", "add_partial_vote_phrases", "oversampling_weights"]

#: The rare odd-feature answers (t08) captions learn from partial votes, in the schema's answer order
#: (the order they are appended in); "other" is left out (it names no image content).
RARE_ODD_ANSWERS: Tuple[str, ...] = (
    "t08_odd_feature_a19_ring",
    "t08_odd_feature_a20_lens_or_arc",
    "t08_odd_feature_a21_disturbed",
    "t08_odd_feature_a22_irregular",
    "t08_odd_feature_a24_merger",
    "t08_odd_feature_a38_dust_lane",
)
#: t06 "odd: yes", the share of classifiers who were asked t08.
ODD_YES_COLUMN = "t06_odd_a14_yes"
#: ``f_answer x p_odd`` at which a rare phrase enters the caption (a quarter of all classifiers).
PARTIAL_VOTE_THRESHOLD = 0.25
_SUFFIX = "_fraction"


@dataclass
class PartialVoteReport:
    """Caption counts of every rare phrase before and after :func:`add_partial_vote_phrases`.

    Attributes
    ----------
    threshold : float
        The ``f x p_odd`` threshold used.
    before, after : dict
        phrase -> number of captions carrying it.
    rows_changed : int
        Captions that got at least one phrase.
    rows_with_votes : int
        Rows whose ``p_odd`` was known (the others were left as they are).
    """

    threshold: float = PARTIAL_VOTE_THRESHOLD
    before: Dict[str, int] = field(default_factory=dict)
    after: Dict[str, int] = field(default_factory=dict)
    rows_changed: int = 0
    rows_with_votes: int = 0

    def to_dict(self) -> dict:
        return {"threshold": self.threshold, "rule": f"f_answer x p_odd >= {self.threshold}",
                "before": dict(self.before), "after": dict(self.after), "rows_changed": int(self.rows_changed),
                "rows_with_votes": int(self.rows_with_votes)}


def _phrase(column: str) -> str:
    return ANSWER_BY_COLUMN[column].phrase


def partial_vote_phrases(row: Mapping[str, float], threshold: float = PARTIAL_VOTE_THRESHOLD) -> List[str]:
    """Rare phrases one galaxy's votes give (``row`` maps ``<answer>_fraction`` names to fractions).

    Returns ``[]`` when ``p_odd`` or a fraction is missing or NaN (no votes: nothing is claimed).

    Examples
    --------
    >>> partial_vote_phrases({"t06_odd_a14_yes_fraction": 0.5, "t08_odd_feature_a38_dust_lane_fraction": 0.6})
    ['dust lane']
    """
    p_odd = row.get(ODD_YES_COLUMN + _SUFFIX)
    if p_odd is None or not math.isfinite(float(p_odd)):
        return []
    out = []
    for col in RARE_ODD_ANSWERS:
        f = row.get(col + _SUFFIX)
        if f is not None and math.isfinite(float(f)) and float(f) * float(p_odd) >= threshold:
            out.append(_phrase(col))
    return out


def add_partial_vote_phrases(captions: Sequence[str], index, threshold: float = PARTIAL_VOTE_THRESHOLD
                             ) -> Tuple[List[str], PartialVoteReport]:
    """Captions with the rare phrases of :func:`partial_vote_phrases` appended (tree order kept
    for the rest; t08 is the last question of the tree, so appending keeps caption order).

    Parameters
    ----------
    captions : sequence of str
        One caption per row of ``index``.
    index : pandas.DataFrame
        A prepared cache's index (``<answer>_fraction`` columns where the source had votes).
    threshold : float
        ``f x p_odd`` threshold in (0, 1].

    Raises
    ------
    GalaxySDValueError
        For a threshold outside (0, 1] or captions and index of different lengths.
    """
    if not 0.0 < float(threshold) <= 1.0:
        raise GalaxySDValueError(f"the partial-vote threshold must be in (0, 1], got {threshold}")
    if len(captions) != len(index):
        raise GalaxySDValueError(f"{len(captions)} captions for {len(index)} index rows")
    phrases = [_phrase(c) for c in RARE_ODD_ANSWERS]
    report = PartialVoteReport(threshold=float(threshold), before={p: 0 for p in phrases}, after={p: 0 for p in phrases})
    odd_name = ODD_YES_COLUMN + _SUFFIX
    if odd_name not in index.columns:
        out = list(captions)
    else:
        p_odd = index[odd_name].to_numpy(dtype=float)
        shares = {}
        for col in RARE_ODD_ANSWERS:
            name = col + _SUFFIX
            f = index[name].to_numpy(dtype=float) if name in index.columns else np.full(len(index), np.nan)
            shares[_phrase(col)] = f * p_odd
        report.rows_with_votes = int(np.isfinite(p_odd).sum())
        out = []
        for i, cap in enumerate(captions):
            tags = set(caption_tags(cap))
            new = [p for p in phrases if p not in tags and np.isfinite(shares[p][i]) and shares[p][i] >= threshold]
            if new:
                report.rows_changed += 1
                cap = ", ".join([cap.rstrip(", ")] + new)
            out.append(cap)
    for before, after in zip(captions, out):
        b, a = set(caption_tags(before)), set(caption_tags(after))
        for p in phrases:
            report.before[p] += p in b
            report.after[p] += p in a
    return out, report


def oversampling_weights(captions: Sequence[str], factor: float,
                         phrases: Optional[Sequence[str]] = None, max_boost: float = 4.0) -> Optional[np.ndarray]:
    """Sampling probabilities of the training rows, rare captions drawn more often.

    A caption carrying rare phrases gets weight ``factor x min(sqrt(n_top / n_p), max_boost)`` for
    its rarest phrase ``p`` (``n_p`` captions carry it, ``n_top`` the most common rare phrase), the
    others weight 1: every rare phrase is drawn at least ``factor`` times as often as its share,
    the rarest more (square-root balancing, as in the repeat-factor sampling of Gupta et al. 2019,
    LVIS, Sec. 4), capped so that a phrase with a handful of images is not memorised.
    None for ``factor == 1``: uniform draws, the earlier batches exactly.

    Parameters
    ----------
    captions : sequence of str
    factor : float
        Boost of the most common rare phrase (>= 1).
    phrases : sequence of str, optional
        The rare phrases (default: those of :data:`RARE_ODD_ANSWERS`).
    max_boost : float
        Cap of the square-root balancing on top of ``factor``.

    Raises
    ------
    GalaxySDValueError
        For ``factor < 1`` or ``max_boost < 1``.
    """
    if float(factor) < 1.0 or float(max_boost) < 1.0:
        raise GalaxySDValueError(f"the rare-caption oversampling factor and its cap must be >= 1, got {factor}, "
                                 f"{max_boost}")
    if float(factor) == 1.0:
        return None
    rare = list(phrases if phrases is not None else [_phrase(c) for c in RARE_ODD_ANSWERS])
    tags = [set(caption_tags(c)) for c in captions]
    counts = {p: sum(p in t for t in tags) for p in rare}
    n_top = max(counts.values()) if counts else 0
    w = np.ones(len(captions))
    for i, t in enumerate(tags):
        present = [counts[p] for p in rare if p in t]
        if present:
            w[i] = float(factor) * min(float(np.sqrt(n_top / min(present))), float(max_boost))
    return w / w.sum()
