"""What the morphology classifier is trained and tested on: labels, heads and the held-out split.

* Label completion: Galaxy Zoo 1 gives ONE class per galaxy, so its unknown GZ2 targets that the
  class rules out become 0 (:func:`complete_exclusive_negatives`).
* Heads: the captioned GZ2 answers with enough positive and negative labels
  (:func:`label_counts`, :func:`select_heads`).
* Vote targets: counts and fractions per vote output (:func:`vote_targets`): the volunteers'
  votes where the source has them (``<answer>_count`` / ``<answer>_fraction`` columns of a
  prepared cache), single labels as one-hot "votes" of weight ``hard_label_votes`` elsewhere.
* The fixed held-out split: stratified by caption, chosen by SHA-256 of the id
  (:func:`fixed_test_split`), saved next to the classifier as ``split_test_ids.csv`` and read back
  by every evaluation on real images (:func:`load_test_ids`).
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from galaxysd_core.errors import GalaxySDDataError, GalaxySDFileError, GalaxySDValueError
from galaxysd_core.schema.gz2 import ANSWER_BY_COLUMN, captioned_answers

#: File of a saved classifier folder with the ids (and captions) of its held-out test images.
SPLIT_NAME = "split_test_ids.csv"
#: Sources whose labels are ONE mutually exclusive class per galaxy (Galaxy Zoo 1, Lintott et al.
#: 2008: elliptical / spiral / edge-on / merger / star-or-don't-know by majority vote).
DEFAULT_EXCLUSIVE_SOURCES: Tuple[str, ...] = ("gz1_sdss",)


# ----------------------------------------------------------------------------------------------
# labels and heads
# ----------------------------------------------------------------------------------------------
def complete_exclusive_negatives(index, sources: Iterable[str] = DEFAULT_EXCLUSIVE_SOURCES):
    """Fill unknown targets implied to be 0 by single-class (Galaxy Zoo 1) labels.

    GZ1 volunteers chose ONE class per galaxy, so an elliptical is (by majority) not a merger, not
    edge-on and not a spiral, although the GZ2 tree never asked those questions of it (NaN
    targets). Without this completion the spiral and merger heads would see no negatives at
    all. For rows of ``sources`` every unknown target among the GZ2 answers that GZ1 classes map
    to (:data:`galaxysd_core.schema.captioning.GZ1_CLASS_ANSWERS`) becomes 0; this reproduces the
    derived 0/1 flags shipped with the GZ1 labels (``gz2_t01_smooth`` ... ``gz2_t08_merger``).

    Returns
    -------
    pandas.DataFrame
        A copy of ``index``.
    """
    from galaxysd_core.schema.captioning import GZ1_CLASS_ANSWERS

    out = index.copy()
    cols = sorted({c for cs in GZ1_CLASS_ANSWERS.values() for c in cs if c in out.columns})
    rows = out["source"].astype(str).isin(set(sources)).to_numpy() if "source" in out.columns else None
    if rows is None or not rows.any():
        return out
    block = out.loc[rows, cols]
    out.loc[rows, cols] = block.fillna(0.0)
    return out


def label_counts(index, columns: Optional[Sequence[str]] = None):
    """Positive / negative / unknown label counts per GZ2 answer column of a cache index."""
    import pandas as pd

    cols = [c for c in (columns or [a.column for a in captioned_answers()]) if c in index.columns]
    rows = []
    for c in cols:
        v = index[c].to_numpy(dtype=float)
        rows.append({"column": c, "phrase": ANSWER_BY_COLUMN[c].phrase, "n_pos": int(np.sum(v == 1)),
                     "n_neg": int(np.sum(v == 0)), "n_unknown": int(np.sum(np.isnan(v)))})
    return pd.DataFrame(rows, columns=["column", "phrase", "n_pos", "n_neg", "n_unknown"])


def select_heads(index, min_positives: int = 30, min_negatives: int = 30) -> List[str]:
    """Captioned answer columns with enough positive and negative labels to train a head.

    A head for a feature seen in 2 images can neither be learned nor evaluated (see "Heads" in
    :mod:`galaxysd_core.models.classifier`); 30 positives leave ~4 in a 15 % test split, the least for which a recall is
    more than anecdote.
    """
    counts = label_counts(index)
    ok = counts[(counts.n_pos >= min_positives) & (counts.n_neg >= min_negatives)]
    cols = list(ok.column)
    if not cols:
        raise GalaxySDDataError(
            f"no GZ2 answer has {min_positives} positive and {min_negatives} negative labels in the "
            f"training caches; add labelled images or lower --min-positives")
    return cols


def caption_truth(index, columns: Sequence[str]) -> np.ndarray:
    """Evaluation truth ``(N, K)``: 1 where the captioner writes the feature, 0 where it does not.

    The majority-gated targets are 1/0 only where the feature's question was reached; for rows of
    vote sources (``<answer>_count`` columns present) the whole tree was asked, so a question that
    was not reached means the feature is absent (an elliptical has no majority-gated bar): 0. Where
    the source never asked the question (single-label sources, tasks absent from a vote table:
    NaN counts) the target stays as it is (NaN = unknown).
    """
    t = index[list(columns)].to_numpy(dtype=float).copy()
    for j, c in enumerate(columns):
        name = c + "_count"
        if name not in index.columns:
            continue
        asked = index[name].notna().to_numpy()
        t[asked & np.isnan(t[:, j]), j] = 0.0
    return t.astype(np.float32)


#: Votes one single label (a GZ1 class, a GZ2 example answer) counts as in the vote losses: a GZ1
#: class is a volunteer majority, here worth a few unanimous votes (a GZ2 galaxy has ~40 votes).
DEFAULT_HARD_LABEL_VOTES = 5.0


def vote_targets(index, columns: Sequence[str], hard_label_votes: float = DEFAULT_HARD_LABEL_VOTES
                 ) -> Tuple[np.ndarray, np.ndarray]:
    """``(counts, fractions)`` ``float32 (N, len(columns))`` targets of the vote losses.

    Parameters
    ----------
    index : pandas.DataFrame
        Cache index (answer target columns, and ``<answer>_count`` / ``<answer>_fraction`` where
        the source has votes).
    columns : sequence of str
        Vote output columns (every answer of each modelled question, grouped by question).
    hard_label_votes : float
        Weight of a single label as votes.

    Per row and question: the real counts and fractions when every answer of the question has
    them; otherwise, when the 1/0/NaN targets give the question an answer (target 1, or the only
    answer not ruled out by 0 targets), that answer as ``hard_label_votes`` votes (fraction 1,
    others 0); otherwise NaN (no information: the loss ignores it).
    """
    n = len(index)
    counts = np.full((n, len(columns)), np.nan, dtype=np.float32)
    fractions = np.full((n, len(columns)), np.nan, dtype=np.float32)
    by_question: Dict[str, List[int]] = {}
    for j, c in enumerate(columns):
        by_question.setdefault(ANSWER_BY_COLUMN[c].question, []).append(j)

    def block(suffix: str, cols: List[str]) -> np.ndarray:
        names = [c + suffix for c in cols]
        if not all(nm in index.columns for nm in names):
            return np.full((n, len(cols)), np.nan)
        return index[names].to_numpy(dtype=float)

    for js in by_question.values():
        cols = [columns[j] for j in js]
        real_n, real_f = block("_count", cols), block("_fraction", cols)
        has_real = ~np.isnan(real_n).any(axis=1)
        t = index[cols].to_numpy(dtype=float)
        one_hot = (t == 1).astype(float)
        # every answer but one ruled out (e.g. a GZ1 elliptical: t06 "odd" = 0 by label completion,
        # "nothing odd" unknown) -> the remaining answer is the label; without this the single-class
        # negatives would carry no vote at all and, say, only GZ1 mergers would answer t06/t08
        unknown = np.isnan(t)
        implied = (one_hot.sum(axis=1) == 0) & (unknown.sum(axis=1) == 1) & ((t == 0).sum(axis=1) >= 1)
        one_hot[implied] = unknown[implied].astype(float)
        has_label = one_hot.sum(axis=1) > 0
        use_label = ~has_real & has_label
        counts[np.ix_(has_real, js)] = real_n[has_real]
        fractions[np.ix_(has_real, js)] = real_f[has_real]
        counts[np.ix_(use_label, js)] = hard_label_votes * one_hot[use_label]
        fractions[np.ix_(use_label, js)] = one_hot[use_label]
    return counts, fractions


# ----------------------------------------------------------------------------------------------
# the fixed held-out split
# ----------------------------------------------------------------------------------------------
def id_hash(value: Any, salt: str) -> float:
    """Uniform number in [0, 1) from ``sha256(salt:value)``: a reproducible, order-free rank of an id."""
    digest = hashlib.sha256(f"{salt}:{value}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0 ** 64


def fixed_test_split(ids: Sequence[Any], strata: Sequence[Any], test_fraction: float = 0.15,
                     salt: str = "galaxysd-classifier-split-v1") -> np.ndarray:
    """Deterministic, stratified held-out split by id hash.

    Within every stratum (e.g. the caption) ids are ordered by ``sha256(salt:id)`` and the first
    ``round(test_fraction * n)`` (at least one when the stratum has 3 or more members) go to the
    test set. The split depends only on the ids and their strata, not on order or random state,
    so other code can reproduce it, and rare classes (mergers, stars) are represented.

    Returns
    -------
    numpy.ndarray of bool
        True for test members.
    """
    if not 0.0 < test_fraction < 1.0:
        raise GalaxySDValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    ids = list(ids)
    strata = [str(s) for s in strata]
    if len(ids) != len(strata):
        raise GalaxySDValueError("ids and strata must have the same length")
    is_test = np.zeros(len(ids), dtype=bool)
    groups: Dict[str, List[int]] = {}
    for i, s in enumerate(strata):
        groups.setdefault(s, []).append(i)
    for members in groups.values():
        n = len(members)
        k = int(round(test_fraction * n))
        if k == 0 and n >= 3:
            k = 1
        ranked = sorted(members, key=lambda i: id_hash(ids[i], salt))
        is_test[ranked[:k]] = True
    return is_test


def load_test_ids(directory: Union[str, Path]) -> List[str]:
    """Ids of the fixed held-out split saved next to a classifier (``split_test_ids.csv``)."""
    import pandas as pd

    path = Path(directory) / SPLIT_NAME
    if not path.is_file():
        raise GalaxySDFileError(f"{str(path)!r} not found; it is written by train/train_classifier.py")
    return [str(v) for v in pd.read_csv(path, dtype={"id": str})["id"]]
