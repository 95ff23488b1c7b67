"""Shipping a trained GalaxySD run: the release protocol behind ``train/finalize_model.py``.

:func:`release_model` copies the run's final pipeline (``<run>/model``) into the release folder
(e.g. ``assets/galaxysd-mini``) and then, in this order, writes into ``<out>/metrics/``:

1. ``evaluation.*`` and ``real_benchmark.json``: the quality-bar prompts (:data:`QUALITY_BAR`) plus
   :data:`EXTRA_PROMPTS` at guidance 1, 3, 5 and 6.5 with the automatic GZ2-tree negative prompt;
2. ``evaluation_plain.*``: the same without a negative prompt (plain unconditional guidance, as
   GalaxySD samples);
3. ``weight_sweep.*``: the dust-lane weight sweep of :data:`DETG_PROMPT` (half the images);
4. ``pareto.csv``: rows of 1 and 3 together (realism / diversity / consistency trade-off);
5. ``checkpoints.*`` and ``training_metrics.csv``: every training snapshot on the quality-bar
   prompts and the merger prompt (unless skipped);
6. ``morphology_distribution.*``: the captions the model was trained on
   (:func:`galaxysd_core.schema.morphology_stats.describe`);

then the 8 prompts x 8 seeds sample grid ``samples_grid.png`` (:data:`GRID_PROMPTS`, guidance 5,
the recommended setting) and the model card ``README.md``
(:func:`galaxysd_core.evaluation.model_card.write_model_card`, with :data:`NOTES`). All runs use
DDIM, 20 steps (``steps``) and seeds ``0 .. n-1``.
"""
from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Optional, Sequence, Union

import pandas as pd

from galaxysd_core.errors import GalaxySDFileError, GalaxySDValueError
from galaxysd_core.evaluation.checkpoints import evaluate_checkpoints
from galaxysd_core.evaluation.config import EvaluationConfig
from galaxysd_core.evaluation.model_card import write_model_card
from galaxysd_core.evaluation.quality_bar import QUALITY_BAR
from galaxysd_core.evaluation.runner import evaluate, write_results
from galaxysd_core.evaluation.sample_grid import sample_grid
from galaxysd_core.schema.morphology_stats import describe
from galaxysd_core.pipelines.model_folder import TRAINING_CAPTIONS_FILE

logger = logging.getLogger(__name__)

#: Prompts evaluated besides the quality bar.
EXTRA_PROMPTS = ["sdss, smooth, cigar shaped galaxy", "sdss, merger"]
#: Rows of the sample grid (one per prompt, 8 seeds each).
GRID_PROMPTS = [
    "sdss, smooth, completely round galaxy",
    "sdss, smooth, in-between round galaxy",
    "sdss, smooth, cigar shaped galaxy",
    "sdss, features or disk-shaped, spiral galaxy",
    "sdss, features or disk-shaped, edge-on galaxy",
    "sdss, merger",
    "sdss, smooth, {completely round galaxy:1.3}, {dust lane:1.3}",
    "sdss, features or disk-shaped, edge-on galaxy, {dust lane:1.5}",
]
#: Prompt of the dust-lane weight sweep (a dust-lane early-type galaxy, D-ETG).
DETG_PROMPT = "sdss, smooth, completely round galaxy, dust lane"
#: Guidance sweep of the main and plain evaluations, and the dust-lane weights.
GUIDANCE_SWEEP = "guidance=1,3,5,6.5"
WEIGHT_SWEEP = "weight:dust lane=0.8,1.0,1.3,1.6,2.0"
#: Guidance of the sample grid (the recommended setting, see NOTES).
GRID_GUIDANCE = 5.0
#: Reading of the numbers for users of the shipped model (checked against the tables above them).
NOTES = [
    "Recommended: guidance 5 with the automatic negative prompt. There every quality-bar prompt passes and the "
    "mean consistency is within 0.1 of real galaxies; at 6.5 smooth and edge-on samples lose almost all "
    "diversity (recall 0.01-0.02 in classifier space: near-identical galaxies) and are more consistent than "
    "real ones by more than 0.1; at 3 the spiral prompt fails.",
    "The automatic negative prompt is what makes spirals work: without it (GalaxySD's own sampling) the spiral "
    "prompt stays below 0.70 at every guidance (at most 0.59) because about half the samples look edge-on to the "
    "classifier. The spiral fraction was still rising with training steps; a longer run or an SD 1.5 fine-tune "
    "on a GPU is the real fix. The negative prompt costs diversity (recall of smooth galaxies at guidance 3: "
    "0.32 with it, 0.70 without), so switch it off when diversity matters more than the class.",
    "Cigar-shaped smooth galaxies are classified edge-on by the project classifier more often than not without a "
    "negative prompt (0.16-0.45 smooth at guidance 3-6.5); the classifier, trained on GZ1 labels at 64 px, is "
    "itself unsure between elongated ellipticals and edge-on discs.",
]
#: Columns averaged per training step in ``training_metrics.csv``.
STEP_COLUMNS = ("consistency", "precision", "recall", "density", "coverage", "domain_fd", "domain_kid")


def copy_model(run_dir: Union[str, Path], out_dir: Union[str, Path]) -> Path:
    """Replace ``out_dir`` by a copy of ``<run_dir>/model``, keeping an existing ``metrics/`` folder.

    The copy is made next to ``out_dir`` first and renamed into place, so an interrupted copy
    never leaves a half-written release.
    """
    src, out = Path(run_dir) / "model", Path(out_dir)
    if not (src / "model_index.json").is_file():
        raise GalaxySDFileError(f"{str(src)!r} is not a pipeline folder (no model_index.json); give the "
                                f"training output folder of train/train_diffusion.py as the run")
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp)
    if out.exists():
        keep = out / "metrics"
        if keep.is_dir():
            shutil.copytree(keep, tmp / "metrics")
        shutil.rmtree(out)
    tmp.rename(out)
    return out


def release_model(run_dir: Union[str, Path], out_dir: Union[str, Path], caches: Sequence[Union[str, Path]], *,
                  n: int = 64, n_checkpoints: int = 32, steps: int = 20, bench_text: Optional[str] = None, copy: bool = True,
                  checkpoints: bool = True, notes: Sequence[str] = tuple(NOTES), classifier=None,
                  progress: bool = True) -> Path:
    """Copy, evaluate and document a trained run (the steps are listed in the module docstring).

    Parameters
    ----------
    run_dir : path
        Training output folder with ``model/`` (and ``snapshots/`` for the step metrics).
    out_dir : path
        Release folder, e.g. ``assets/galaxysd-mini``; replaced by the model (``metrics/`` kept).
    caches : sequence of path
        Prepared caches of real galaxies: the reference of the distribution and light-profile
        metrics.
    n : int
        Images per prompt and sweep point (the weight sweep uses ``n // 2``).
    n_checkpoints : int
        Images per prompt for each training snapshot.
    steps : int
        Denoising steps of every evaluation and of the grid (20 for the shipped model).
    bench_text : str, optional
        Output of ``bench/bench_generate.py``, quoted in the card.
    copy : bool
        Copy ``<run_dir>/model`` first; False when ``out_dir`` already holds it.
    checkpoints : bool
        Evaluate every training snapshot.
    notes : sequence of str
        Reading of the numbers for the card.
    classifier : path or MorphologyClassifier, optional
        Defaults to the shipped ``assets/classifier``.

    Returns
    -------
    pathlib.Path
        The written model card.
    """
    if not caches:
        raise GalaxySDValueError("give at least one prepared cache of real galaxies (--caches DIR)")
    if n < 2 or n_checkpoints < 1 or steps < 1:
        raise GalaxySDValueError(f"n must be >= 2, n_checkpoints and steps >= 1, got {n}, {n_checkpoints} and {steps}")
    run, out = Path(run_dir), Path(out_dir)
    if copy:
        copy_model(run, out)
        logger.info("copied %s to %s", run / "model", out)
    info_path = out / TRAINING_CAPTIONS_FILE
    if not info_path.is_file():
        raise GalaxySDFileError(f"{str(info_path)!r} not found; the release folder must hold a model written by "
                                f"train/train_diffusion.py")
    metrics = out / "metrics"
    metrics.mkdir(parents=True, exist_ok=True)
    config = EvaluationConfig(n=n, seed=0, steps=steps, guidance=6.5)
    real = [str(c) for c in caches]
    prompts = list(QUALITY_BAR) + EXTRA_PROMPTS

    res = evaluate(out, prompts, config=config, sweeps=[GUIDANCE_SWEEP], classifier=classifier, real=real,
                   out_dir=metrics, progress=progress)
    plain = evaluate(out, prompts, config=EvaluationConfig(n=n, seed=0, steps=steps, guidance=6.5, tree_negatives=False),
                     sweeps=[GUIDANCE_SWEEP], classifier=classifier, real=real, benchmark=False, progress=progress)
    write_results(plain, metrics, name="evaluation_plain")
    weight = evaluate(out, [DETG_PROMPT], config=EvaluationConfig(n=n // 2, seed=0, steps=steps, guidance=6.5),
                      sweeps=[WEIGHT_SWEEP], classifier=classifier, real=real, benchmark=False, progress=progress)
    write_results(weight, metrics, name="weight_sweep")
    pd.concat([res.table, weight.table], ignore_index=True).to_csv(metrics / "pareto.csv", index=False)
    logger.info("wrote the guidance and weight sweeps to %s", metrics)
    if checkpoints:
        ck = evaluate_checkpoints(run, list(QUALITY_BAR) + ["sdss, merger"],
                                  config=EvaluationConfig(n=n_checkpoints, seed=0, steps=steps, guidance=6.5),
                                  classifier=classifier, real=real, out_dir=metrics, progress=progress)
        cols = [c for c in STEP_COLUMNS if c in ck.table.columns]
        ck.table.groupby("step")[cols].mean().reset_index().to_csv(metrics / "training_metrics.csv", index=False)
        logger.info("wrote the metrics of %d training snapshots", ck.table["step"].nunique())

    info = json.loads(info_path.read_text())
    captions = [c for c, k in info["caption_counts"].items() for _ in range(int(k))]
    describe(captions).save(metrics / "morphology_distribution")
    sample_grid(out, GRID_PROMPTS, seeds=range(8), steps=steps, guidance=GRID_GUIDANCE, path=out / "samples_grid.png")
    card = write_model_card(out, run, bench_text=bench_text, notes=notes)
    logger.info("wrote %s", card)
    return card
