"""Data of the D-ETG detector experiment: the real pool and its splits, the synthetic set, the arms.

* :func:`real_pool`: the galaxies with GZ2 votes of the given caches, their truths
  (:func:`galaxysd_core.science.vote_truth.truth_table`) and a ``split`` column: ``test`` = the
  classifier's fixed held-out ids (``assets/classifier/split_test_ids.csv``; the diffusion model v2
  and the classifier were trained with them excluded, so no model of the experiment ever saw
  them), ``validation`` = an id-hash split of the rest stratified by the majority dust-lane label,
  ``train`` = the remainder.
* :func:`generate_synthetic`: the synthetic D-ETGs of the sweep and the dust-free synthetic smooth
  negatives (cached by :func:`galaxysd_core.science.synthetic.generate_cached`).
* :func:`arm_training_set`: the training images and targets of one arm.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Tuple, Union

import numpy as np
import pandas as pd

from galaxysd_core._utils import resize_images
from galaxysd_core.errors import GalaxySDDataError
from galaxysd_core.science.detg_config import DETECTOR_ARMS, DetgConfig, detg_prompt, detg_prompts
from galaxysd_core.science.detg_definition import truth_table

__all__ = ["SPLITS", "real_pool", "generate_synthetic", "TrainingSet", "arm_training_set"]

logger = logging.getLogger(__name__)

#: Values of the ``split`` column of :func:`real_pool`.
SPLITS = ("train", "validation", "test")


def real_pool(cache_dirs: Sequence[Union[str, Path]], test_ids: Sequence[str], config: DetgConfig,
              data: Optional[Tuple[np.ndarray, pd.DataFrame]] = None) -> Tuple[np.ndarray, pd.DataFrame]:
    """Images ``uint8 (N, H, W, 3)`` and index (with truths and ``split``) of the voted galaxies.

    Parameters
    ----------
    cache_dirs : sequence of path
        Prepared caches; only rows with GZ2 votes are kept (``cache/gz2_cutouts_128``).
    test_ids : sequence of str
        The fixed held-out ids.
    config : DetgConfig
        Uses ``val_fraction`` and ``val_salt``.
    data : (images, index), optional
        Instead of loading ``cache_dirs``.

    Raises
    ------
    GalaxySDDataError
        No voted galaxy, duplicate ids, no held-out id among them, or no dust lane in a split.
    """
    from galaxysd_core.training.classifier_data import fixed_test_split

    if data is None:
        from galaxysd_core.science.binary_tasks import load_labelled_caches

        data = load_labelled_caches(cache_dirs)
    images, index = data
    truth = truth_table(index)
    keep = np.flatnonzero(truth["has_votes"].to_numpy())
    if len(keep) == 0:
        raise GalaxySDDataError("no galaxy with GZ2 votes in these caches; give a vote cache such as "
                                "cache/gz2_cutouts_128 (galaxysd data prepare --catalog .../gz2_cutouts/labels.csv)")
    index = index.iloc[keep].reset_index(drop=True)
    truth = truth.iloc[keep].reset_index(drop=True)
    images = images[keep]
    if index["id"].astype(str).duplicated().any():
        raise GalaxySDDataError("duplicate ids across the caches; give each cache once")
    pool = index.copy()
    for c in ("dust_lane", "dust_lane_soft", "dust_lane_partial", "early_type", "detg"):
        pool[c] = truth[c].to_numpy()
    ids = pool["id"].astype(str).to_numpy()
    is_test = np.isin(ids, np.asarray([str(t) for t in test_ids]))
    if not is_test.any():
        raise GalaxySDDataError("none of the held-out test ids is among the voted galaxies; give the caches the "
                                "classifier split was made from (assets/classifier/split_test_ids.csv)")
    split = np.full(len(pool), "train", dtype=object)
    split[is_test] = "test"
    rest = np.flatnonzero(~is_test)
    is_val = fixed_test_split(ids[rest], pool["dust_lane"].to_numpy()[rest].astype(int), config.val_fraction,
                              salt=config.val_salt)
    split[rest[is_val]] = "validation"
    pool["split"] = split
    for s in SPLITS:
        if not (pool["dust_lane"].to_numpy()[split == s] == 1).any():
            raise GalaxySDDataError(f"the {s} split holds no majority dust lane; the experiment needs the full vote "
                                    f"cache (31 dust lanes in gz2_cutouts)")
    return images, pool


def generate_synthetic(pipe_factory: Callable[[], Any], config: DetgConfig, *, model_id: str,
                       cache_dir: Optional[Union[str, Path]], size: int,
                       log: Callable[[str], None] = logger.info) -> Tuple[np.ndarray, pd.DataFrame, float]:
    """Synthetic D-ETGs of the sweep (label 1) and dust-free smooth galaxies (label 0), cached.

    Returns
    -------
    images : numpy.ndarray
        ``uint8 (M, size, size, 3)``.
    table : pandas.DataFrame
        ``prompt, shape, dust_weight, seed, label`` per image.
    seconds : float
        Generation time (0 when every set was cached).
    """
    from galaxysd_core.science.synthetic import generate_cached

    jobs = [(p, s, w, config.synthetic_seed + 1000 * k, config.n_per_prompt, 1)
            for k, (s, w, p) in enumerate(detg_prompts(config))]
    if config.n_synthetic_negatives:
        jobs += [(detg_prompt(s, 0.0, config.shape_weight), s, 0.0, config.synthetic_seed + 500_000 + 1000 * j,
                  config.n_synthetic_negatives, 0) for j, s in enumerate(config.shapes)]
    imgs, rows, seconds = [], [], 0.0
    for prompt, shape, w, seed, n, label in jobs:
        arr, info = generate_cached(pipe_factory, prompt, n, seed=seed, guidance_scale=config.guidance_scale,
                                    num_inference_steps=config.num_inference_steps, cache_dir=cache_dir,
                                    model_id=model_id)
        seconds += info["seconds"]
        log(f"  {prompt}: {len(arr)} images ({'cached' if info['cached'] else '%.0f s' % info['seconds']})")
        imgs.append(resize_images(arr, size))
        rows += [{"prompt": prompt, "shape": shape, "dust_weight": w, "seed": seed + i, "label": label}
                 for i in range(len(arr))]
    return np.concatenate(imgs), pd.DataFrame(rows), seconds


@dataclass
class TrainingSet:
    """Training data of one arm.

    Attributes
    ----------
    images : numpy.ndarray
        ``uint8 (N, H, W, 3)``.
    targets : numpy.ndarray
        Targets in [0, 1].
    kind : numpy.ndarray
        ``"real"`` or ``"synthetic"`` per row.
    real_rows : numpy.ndarray
        Rows of the real pool used (in the order of the real part of ``images``).
    """

    images: np.ndarray
    targets: np.ndarray
    kind: np.ndarray
    real_rows: np.ndarray

    def counts(self) -> dict:
        """Real / synthetic positives (target >= 0.5) and negatives, for provenance."""
        real, pos = self.kind == "real", self.targets >= 0.5
        return {"real_pos": int((real & pos).sum()), "real_neg": int((real & ~pos).sum()),
                "real_soft_nonzero": int((real & (self.targets > 0)).sum()),
                "synthetic_pos": int((~real & pos).sum()), "synthetic_neg": int((~real & ~pos).sum())}


def arm_training_set(arm: str, images: np.ndarray, pool: pd.DataFrame, synth: Optional[np.ndarray],
                     synth_labels: Optional[np.ndarray], config: DetgConfig) -> TrainingSet:
    """The training set of ``arm`` from the ``train`` rows of the real pool and the synthetic set.

    (a) ``real``: every real training galaxy with its dust-lane target (soft ``f_dust x p_odd`` or
    the majority label, ``config.real_labels``); (b) ``real+synthetic``: (a) plus the synthetic
    positives (1) and negatives (0); (c) ``synthetic``: the synthetic set plus the real training
    galaxies whose partial-vote share is below ``config.negative_max_soft`` as negatives (0), so no
    real dust lane, not even a partial one, enters.

    Raises
    ------
    GalaxySDDataError
        A synthetic arm without synthetic images.
    """
    spec = DETECTOR_ARMS[arm]
    train = np.flatnonzero(pool["split"].to_numpy() == "train")
    soft = pool["dust_lane_soft"].to_numpy(dtype=float)
    hard = pool["dust_lane"].to_numpy(dtype=float)
    if spec.real_positives:
        rows = train
        y_real = soft[rows] if config.real_labels == "soft" else hard[rows]
    else:
        rows = train[(soft[train] < config.negative_max_soft) & (hard[train] == 0)]
        y_real = np.zeros(len(rows))
    x, y = images[rows], np.asarray(y_real, dtype=np.float32)
    kind = np.full(len(rows), "real", dtype=object)
    if spec.synthetic:
        if synth is None or synth_labels is None or len(synth) == 0:
            raise GalaxySDDataError(f"arm {arm!r} needs synthetic D-ETGs; give a generator model (--model)")
        x = np.concatenate([x, synth])
        y = np.concatenate([y, np.asarray(synth_labels, dtype=np.float32)])
        kind = np.concatenate([kind, np.full(len(synth), "synthetic", dtype=object)])
    return TrainingSet(images=x, targets=np.clip(y, 0.0, 1.0), kind=kind, real_rows=rows)
