"""Derived (pseudo) labels for answers the source catalog does not provide.

Galaxy Zoo 1 labels say "elliptical" but not *how round* (GZ2 question t07). For training captions
we derive the t07 answer of smooth galaxies from the moment ellipticity of the image
(:func:`galaxysd_core.data.morphometry.light_profile_stats`), by quantile matching to the real GZ2
answer distribution of smooth galaxies in Stripe 82 (Willett et al. 2013 Table 5, debiased votes,
captioned with the default :class:`~galaxysd_core.schema.captioning.Captioner` thresholds: 4,574 completely
round, 5,232 in-between, 931 cigar-shaped). The roundest 42.6 % become "completely round galaxy",
the next 48.7 % "in-between round galaxy", the flattest 8.7 % "cigar shaped galaxy".

These are *derived* labels: the model card lists them separately from volunteer labels.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from galaxysd_core.schema.gz2 import ANSWER_BY_COLUMN, SURVEY_PREFIX

#: Stripe 82 counts of the t07 answers among captioned smooth galaxies (see module docstring).
STRIPE82_ROUNDNESS_COUNTS: Dict[str, int] = {
    "t07_rounded_a16_completely_round": 4574,
    "t07_rounded_a17_in_between": 5232,
    "t07_rounded_a18_cigar_shaped": 931,
}


def roundness_answers(ellipticity: Sequence[float],
                      reference_counts: Optional[Dict[str, int]] = None) -> List[Optional[str]]:
    """t07 answer column per galaxy by quantile matching of ellipticity (NaN -> None)."""
    counts = reference_counts or STRIPE82_ROUNDNESS_COUNTS
    e = np.asarray(ellipticity, dtype=float)
    ok = np.isfinite(e)
    if not ok.any():
        return [None] * len(e)
    total = float(sum(counts.values()))
    cols = list(counts)
    edges = np.cumsum([counts[c] / total for c in cols])[:-1]
    cuts = np.quantile(e[ok], edges)
    out: List[Optional[str]] = []
    for value in e:
        if not np.isfinite(value):
            out.append(None)
        else:
            out.append(cols[int(np.searchsorted(cuts, value, side="right"))])
    return out


def add_roundness(captions: Sequence[str], images: np.ndarray, show_progress: bool = False
                  ) -> Tuple[List[str], Dict[str, int]]:
    """Append a derived roundness phrase to captions that are exactly ``"sdss, smooth"``.

    Returns the new captions and the number of captions changed per phrase.
    """
    from galaxysd_core.data.morphometry import light_profile_stats

    captions = list(captions)
    smooth = [i for i, c in enumerate(captions) if c.strip() == f"{SURVEY_PREFIX}, smooth"]
    iterator = smooth
    if show_progress:
        from tqdm.auto import tqdm

        iterator = tqdm(smooth, desc="roundness pseudo-labels")
    ell = [light_profile_stats(images[i])["ellipticity"] for i in iterator]
    changed: Dict[str, int] = {}
    for i, col in zip(smooth, roundness_answers(ell)):
        if col is None:
            continue
        phrase = ANSWER_BY_COLUMN[col].phrase
        captions[i] = f"{captions[i]}, {phrase}"
        changed[phrase] = changed.get(phrase, 0) + 1
    return captions, changed
