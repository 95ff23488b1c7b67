"""Binary classification tasks on the real data: what counts as a positive and a negative.

Owns :class:`BinaryTask`, the rare-class tasks of the augmentation experiment (:data:`TASKS`,
Galaxy Zoo 1 classes mapped to GZ2 answers; Lintott et al. 2008, Willett et al. 2013), their 1/0/NaN
labels for the rows of a cache index (:func:`task_labels`) and the loading of the real galaxies the
tasks are defined on (:func:`load_labelled_caches`: prepared caches with the implied negatives of
single-class sources filled in).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple, Union

import numpy as np
import pandas as pd

from galaxysd_core.errors import GalaxySDDataError, GalaxySDValueError

__all__ = ["DUST_LANE_COLUMN", "BinaryTask", "TASKS", "task_labels", "load_labelled_caches"]

#: Column of the dust-lane answer (used as the head name of binary detectors by default).
DUST_LANE_COLUMN = "t08_odd_feature_a38_dust_lane"


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
    """

    name: str
    positive_column: str
    caption: str
    negative_column: Optional[str] = None
    description: str = ""


#: The rare-class tasks of the experiment (GZ1 classes mapped to GZ2 answers).
TASKS: Dict[str, BinaryTask] = {
    "merger": BinaryTask("merger", "t08_odd_feature_a24_merger", "sdss, merger",
                         description="merger vs rest (GZ1 merger class; 1.8 % of the data)"),
    "edge-on": BinaryTask("edge-on", "t02_edgeon_a04_yes", "sdss, features or disk-shaped, edge-on galaxy",
                          description="edge-on disc vs rest (15 % of the data)"),
    "spiral": BinaryTask("spiral", "t04_spiral_a08_spiral", "sdss, features or disk-shaped, spiral galaxy",
                         negative_column="t01_smooth_or_features_a01_smooth",
                         description="spiral vs smooth (elliptical) galaxies"),
}


def task_labels(index: pd.DataFrame, task: BinaryTask) -> np.ndarray:
    """1 / 0 / NaN labels of ``task`` for the rows of a cache index.

    Pass an index completed with implied negatives
    (:func:`galaxysd_core.training.classifier_data.complete_exclusive_negatives`, as
    :func:`load_labelled_caches` returns it) for single-class sources.

    Raises
    ------
    GalaxySDDataError
        The index lacks a column the task needs.
    """
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
