"""Two or more trained models side by side on the numbers a release is judged by (GalaxySD-mini v2 vs v3).

For every model folder, at its own recommended settings (``generation_defaults.json``) and the same
seeds: realism and diversity over the grid prompts (domain FD in classifier v2's embedding,
precision, recall; :func:`galaxysd_core.evaluation.runner.evaluate`), the sky (frame level and
pixel-histogram distance against held-out real cutouts, :mod:`galaxysd_core.evaluation.background`),
the dust-lane goal (:func:`galaxysd_core.evaluation.feature_curves.dust_lane_goal`, at the dust-lane
default strength and at twice it) and the sharpness of spirals
(:mod:`galaxysd_core.evaluation.sharpness`, middle-band power ratio). One row per model.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Dict, Mapping, Optional, Sequence, Union

import numpy as np
import pandas as pd

from galaxysd_core.errors import GalaxySDValueError

__all__ = ["COMPARISON_PROMPTS", "compare_models"]

logger = logging.getLogger(__name__)

#: Prompts of the realism / sky comparison: the common GZ2 classes.
COMPARISON_PROMPTS = (
    "sdss, smooth, completely round galaxy",
    "sdss, smooth, in-between round galaxy",
    "sdss, smooth, cigar shaped galaxy",
    "sdss, features or disk-shaped, spiral galaxy",
    "sdss, features or disk-shaped, edge-on galaxy, with rounded edge-on bulge",
)
SHARPNESS_PROMPT = "sdss, features or disk-shaped, spiral galaxy"


def compare_models(models: Mapping[str, Union[str, Path]], caches: Sequence[Union[str, Path]], *, classifier,
                   detector, classifier_dir: Optional[Union[str, Path]] = None, n: int = 32, prompts: Sequence[str] = COMPARISON_PROMPTS,
                   progress: bool = True) -> pd.DataFrame:
    """One row of measurements per model (see the module docstring).

    Parameters
    ----------
    models : mapping
        ``{name: model folder}``.
    caches : sequence of path
        Prepared caches of real galaxies with GZ2 votes (reference, held-out sky, dust-lane truth).
    classifier : MorphologyClassifier
        Classifier v2 (the judge and the embedding of FD).
    detector : MorphologyClassifier
        The D-ETG detector (``p_dust``).
    classifier_dir : path, optional
        The classifier's folder: its held-out split is the sky reference and comes first in the
        real reference.
    n : int
        Images per prompt (and per side of the dust-lane and sharpness measurements).

    Raises
    ------
    GalaxySDValueError
        Without models or caches, or ``n < 8``.
    """
    from galaxysd_core.evaluation.background import compare_backgrounds
    from galaxysd_core.evaluation.config import EvaluationConfig
    from galaxysd_core.evaluation.feature_curves import dust_lane_goal
    from galaxysd_core.evaluation.reference import RealReference, classifier_test_ids
    from galaxysd_core.evaluation.release import held_out_real
    from galaxysd_core.evaluation.runner import evaluate, generate
    from galaxysd_core.evaluation.sharpness import measure_sharpness
    from galaxysd_core.pipelines.pipeline_galaxysd import load_pipeline
    from galaxysd_core.science.binary_tasks import load_labelled_caches
    from galaxysd_core.science.vote_truth import PARTIAL_DUST_THRESHOLD, dust_lane_soft

    if not models or not caches or int(n) < 8:
        raise GalaxySDValueError("give at least one model, one cache of real galaxies and n >= 8")
    caches = [str(c) for c in caches]
    test_ids = classifier_test_ids(str(classifier_dir)) if classifier_dir else None
    real = RealReference.from_caches(caches, max_real=2000, priority_ids=test_ids)
    images, index = load_labelled_caches(caches)
    soft = dust_lane_soft(index)
    keep = np.isfinite(soft)
    dusty_images, is_dusty = images[keep], soft[keep] >= PARTIAL_DUST_THRESHOLD
    rows = []
    for name, folder in models.items():
        pipe = load_pipeline(folder)
        d = pipe.generation_defaults
        row: Dict[str, object] = {"model": name, "folder": str(folder),
                                  "prediction_type": pipe.scheduler.config.get("prediction_type"),
                                  "zero_terminal_snr": bool(pipe.scheduler.config.get("rescale_betas_zero_snr")),
                                  "guidance": float(d.guidance_scale)}
        cfg = EvaluationConfig(n=int(n), seed=0, steps=int(d.num_inference_steps), guidance=float(d.guidance_scale),
                               tree_negatives=bool(d.tree_negatives))
        res = evaluate(pipe, list(prompts), config=cfg, classifier=classifier, real=real, benchmark=False,
                       progress=progress)
        t = res.table
        for col in ("domain_fd", "precision", "recall", "consistency"):
            if col in t.columns:
                row[col] = float(pd.to_numeric(t[col], errors="coerce").mean())
        held, _ = held_out_real(caches, test_ids or [], pipe.default_size, limit=512)
        gen = np.concatenate([generate(pipe, p, int(n), 0, int(d.num_inference_steps), float(d.guidance_scale),
                                       tree_negatives=bool(d.tree_negatives)) for p in prompts])
        bg = compare_backgrounds(held, {"generated": gen})
        row["sky_level_rgb"] = "/".join(f"{v:.0f}" for v in bg["generated"]["level"])
        row["real_sky_level_rgb"] = "/".join(f"{v:.0f}" for v in bg["real"]["level"])
        row["sky_level_abs_diff"] = float(np.mean(np.abs(bg["generated"]["level_diff"])))
        row["histogram_tv"] = float(bg["generated"]["histogram_tv"])
        strength = pipe.feature_defaults.strength("dust lane") if pipe.feature_defaults else 1.0
        for k, s in (("", strength), ("_x2", 2 * strength)):
            g = dust_lane_goal(pipe, classifier, detector, dusty_images, is_dusty, strength=s, n=int(n))
            row[f"dust_strength{k}"] = float(s)
            row[f"gen_dust_votes{k}"] = g["gen_dust_votes"]
            row[f"gen_p_dust{k}"] = g["gen_p_dust"]
            row["real_dusty_dust_votes"] = g["real_dusty_dust_votes"]
            row["real_dusty_p_dust"] = g["real_dusty_p_dust"]
            row["n_real_dusty"] = g["n_real_dusty"]
        sharp = measure_sharpness(pipe, real, SHARPNESS_PROMPT, n=int(n))
        row.update({f"sharpness_{b}": float(v) for b, v in sharp["ratios"].items()})
        logger.info("%s: %s", name, row)
        rows.append(row)
    return pd.DataFrame(rows)
