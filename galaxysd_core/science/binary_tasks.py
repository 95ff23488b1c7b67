"""Binary classification tasks on the real data: what counts as a positive and a negative.

Owns :class:`BinaryTask`, the rare-class tasks of the augmentation experiment (:data:`TASKS`), their
1/0/NaN labels for the rows of a cache index (:func:`task_labels`) and the loading of the real
galaxies the tasks are defined on (:func:`load_labelled_caches`: prepared caches with the implied
negatives of single-class sources filled in).

Two kinds of task:

* **GZ2 votes** (``votes=True``; the default tasks ``dust-lane``, ``merger``, ``ring``, ``bar`` and
  the common control ``edge-on``): defined on the galaxies with real Galaxy Zoo 2 votes only
  (``gz2_cutouts``), positive by the vote majority of
  :func:`galaxysd_core.science.vote_truth.majority_labels` (odd features: fraction >= 0.5 with
  t08 reached at p_odd >= 0.42; others: the caption's majority-gated label), every other voted
  galaxy a negative (one-vs-rest);
* **Galaxy Zoo 1 classes** (``gz1-merger``, ``gz1-edge-on``, ``spiral``; Lintott et al. 2008): the
  single-class labels mapped to GZ2 answers, with their implied negatives.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple, Union

import numpy as np
import pandas as pd

from galaxysd_core.errors import GalaxySDDataError, GalaxySDValueError
from galaxysd_core.science.vote_truth import DUST_LANE_COLUMN, majority_labels

__all__ = ["DUST_LANE_COLUMN", "BinaryTask", "TASKS", "VOTE_TASKS", "task_labels", "load_labelled_caches"]


@dataclass(frozen=True)
class BinaryTask:
    """A binary classification task on the real data.

    Attributes
    ----------
    name : str
        Short name (``merger``).
    positive_column : str
        GZ2 answer column whose 1 marks a positive.
    caption : str
        Caption the generator is prompted with for synthetic positives.
    negative_column : str or None
        None: every row whose ``positive_column`` is 0 is a negative (one-vs-rest). Else only rows
        with this column == 1 (and not positive) are negatives (e.g. spiral vs smooth).
    description : str
        One line for tables and reports.
    votes : bool
        Defined on galaxies with GZ2 votes only, labels from the vote majority (module docstring).
    """

    name: str
    positive_column: str
    caption: str
    negative_column: Optional[str] = None
    description: str = ""
    votes: bool = False


#: The rare-class tasks (GZ2 votes first: the default of the augmentation experiment).
TASKS: Dict[str, BinaryTask] = {
    "dust-lane": BinaryTask("dust-lane", DUST_LANE_COLUMN, "sdss, dust lane", votes=True,
                            description="dust lane vs rest (GZ2 votes; 31 of 7,551, 0.4 %)"),
    "merger": BinaryTask("merger", "t08_odd_feature_a24_merger", "sdss, merger", votes=True,
                         description="merger vs rest (GZ2 votes; 103 of 7,551, 1.4 %)"),
    "ring": BinaryTask("ring", "t08_odd_feature_a19_ring", "sdss, ring galaxy", votes=True,
                       description="ring vs rest (GZ2 votes; 551 of 7,551, 7 %)"),
    "bar": BinaryTask("bar", "t03_bar_a06_bar",
                      "sdss, features or disk-shaped, bar-shaped structure in the center of galaxy", votes=True,
                      description="bar vs rest (GZ2 votes, caption majority; 1,200 of 7,551, 16 %)"),
    "edge-on": BinaryTask("edge-on", "t02_edgeon_a04_yes", "sdss, features or disk-shaped, edge-on galaxy",
                          votes=True, description="edge-on disc vs rest (GZ2 votes; common control, 14 %)"),
    "gz1-merger": BinaryTask("gz1-merger", "t08_odd_feature_a24_merger", "sdss, merger",
                             description="merger vs rest (GZ1 merger class; 1.8 % of the GZ1 data)"),
    "gz1-edge-on": BinaryTask("gz1-edge-on", "t02_edgeon_a04_yes", "sdss, features or disk-shaped, edge-on galaxy",
                              description="edge-on disc vs rest (GZ1 classes; 15 % of the GZ1 data)"),
    "spiral": BinaryTask("spiral", "t04_spiral_a08_spiral", "sdss, features or disk-shaped, spiral galaxy",
                         negative_column="t01_smooth_or_features_a01_smooth",
                         description="spiral vs smooth (elliptical) galaxies (GZ1 classes + GZ2 captions)"),
}
#: The GZ2-vote tasks, in table order.
VOTE_TASKS = tuple(name for name, t in TASKS.items() if t.votes)


def task_labels(index: pd.DataFrame, task: BinaryTask) -> np.ndarray:
    """1 / 0 / NaN labels of ``task`` for the rows of a cache index.

    Vote tasks: :func:`~galaxysd_core.science.vote_truth.majority_labels` (NaN for rows without
    votes). Galaxy Zoo 1 tasks: pass an index completed with implied negatives
    (:func:`galaxysd_core.training.classifier_data.complete_exclusive_negatives`, as
    :func:`load_labelled_caches` returns it) for single-class sources.

    Raises
    ------
    GalaxySDDataError
        The index lacks a column the task needs.
    """
    if task.votes:
        return majority_labels(index, task.positive_column)
    for c in (task.positive_column, task.negative_column):
        if c is not None and c not in index.columns:
            raise GalaxySDDataError(f"the index has no column {c!r} needed by task {task.name!r}")
    pos = index[task.positive_column].to_numpy(dtype=float)
    out = np.full(len(index), np.nan)
    out[pos == 1] = 1.0
    if task.negative_column is None:
        out[pos == 0] = 0.0
    else:
        neg = index[task.negative_column].to_numpy(dtype=float)
        out[(neg == 1) & (pos != 1)] = 0.0
    return out


def load_labelled_caches(cache_dirs: Sequence[Union[str, Path]]) -> Tuple[np.ndarray, pd.DataFrame]:
    """Images ``uint8 (N, H, W, 3)`` and index of prepared caches, the index completed with the
    implied negatives of single-class (Galaxy Zoo 1) sources.

    Raises
    ------
    GalaxySDValueError
        No cache given.
    """
    from galaxysd_core.data.cache import PreparedDataset
    from galaxysd_core.training.classifier_data import complete_exclusive_negatives

    if not cache_dirs:
        raise GalaxySDValueError("give at least one prepared cache (--caches DIR ...)")
    dss = [PreparedDataset.load(d) for d in cache_dirs]
    ds = PreparedDataset.concat(dss) if len(dss) > 1 else dss[0]
    index = complete_exclusive_negatives(ds.index)
    return ds.images, index
