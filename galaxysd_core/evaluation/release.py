"""Shipping a trained GalaxySD run: the release protocol behind ``train/finalize_model.py``.

:func:`release_model` copies the run's final pipeline (``<run>/model``) into the release folder
(e.g. ``assets/galaxysd-mini``) and then writes, in this order (``metrics/`` unless named):

1. ``reconstruction.json``: the VAE on held-out real galaxies (PSNR, classifier heads and the
   dust-lane signal on reconstructions vs originals; :mod:`galaxysd_core.evaluation.reconstruction`),
   and the model's ``sky_noise.json`` (the sky noise real cutouts have and reconstructions lack;
   :mod:`galaxysd_core.pipelines.sky_noise`);
2. ``guidance_sweep.*``: the evaluated prompts (:data:`QUALITY_BAR` + :data:`EXTRA_PROMPTS`) at the
   guidance values of :data:`GUIDANCE_VALUES`, with and without the automatic GZ2-tree negative
   prompt (``n_sweep`` images each);
3. ``pareto.csv`` + ``front.png`` and the model's ``generation_defaults.json``: the setting chosen
   from the measured front (:mod:`galaxysd_core.evaluation.defaults`), which the pipeline, CLI and
   app use;
4. ``evaluation.*`` and ``real_benchmark.json``: the prompts at the chosen defaults (``n`` images);
5. ``feature_effects.csv`` and ``dust_sweep.csv``: paired-seed on/off tests of every feature and the
   dust-lane extrapolation sweep (:mod:`galaxysd_core.evaluation.feature_effects`);
6. ``background.json`` + ``pixel_histograms.png``: sky level, noise and pixel histograms of real
   and generated galaxies (:mod:`galaxysd_core.evaluation.background`);
7. ``checkpoints.*``, ``training_metrics.csv`` + ``training_curves.png``: every training snapshot at
   the chosen defaults (unless skipped);
8. ``morphology_distribution.*``: the captions the model was trained on;

then the sample grid ``samples_grid.png`` (:data:`GRID_PROMPTS` x 8 seeds), GalaxySD's Figure 3
``figure3.png`` (a real held-out galaxy of each prompt of the table A-P beside generated ones), the
dust-lane sweep grid ``dust_sweep.png``, and the model card ``README.md``
(:func:`galaxysd_core.evaluation.model_card.write_model_card`). All runs use DDIM, ``steps`` steps
and seeds ``0 .. n-1``. :func:`refresh_at_defaults` redoes steps 1 and 4-6 and the grids of a released
folder in place (after its sky-noise model changed), keeping its recommended settings.
"""
from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import pandas as pd

from galaxysd_core.errors import GalaxySDFileError, GalaxySDValueError
from galaxysd_core.evaluation.background import compare_backgrounds, measure_release_noise
from galaxysd_core.evaluation.checkpoints import evaluate_checkpoints
from galaxysd_core.evaluation.config import GALAXYSD_PROMPT_TABLE, EvaluationConfig
from galaxysd_core.evaluation.defaults import choose_defaults, summarize_settings
from galaxysd_core.evaluation.feature_effects import dust_lane_sweep, feature_effects
from galaxysd_core.evaluation.model_card import write_model_card
from galaxysd_core.evaluation.plots import front_plot, histogram_plot, training_curves
from galaxysd_core.evaluation.quality_bar import QUALITY_BAR
from galaxysd_core.evaluation.reconstruction import reconstruction_report
from galaxysd_core.evaluation.runner import evaluate, generate, load_classifier, write_results
from galaxysd_core.evaluation.sample_grid import real_vs_generated_grid, sample_grid
from galaxysd_core.schema.morphology_stats import describe
from galaxysd_core.pipelines.model_folder import TRAINING_CAPTIONS_FILE

logger = logging.getLogger(__name__)

#: Prompts evaluated besides the quality bar.
EXTRA_PROMPTS = ["sdss, smooth, cigar shaped galaxy", "sdss, merger",
                 "sdss, features or disk-shaped, bar-shaped structure in the center of galaxy, spiral galaxy",
                 "sdss, features or disk-shaped, spiral galaxy, ring galaxy"]
#: Rows of the sample grid (one per prompt, 8 seeds each).
GRID_PROMPTS = [
    "sdss, smooth, completely round galaxy",
    "sdss, smooth, in-between round galaxy",
    "sdss, smooth, cigar shaped galaxy",
    "sdss, features or disk-shaped, spiral galaxy",
    "sdss, features or disk-shaped, bar-shaped structure in the center of galaxy, spiral galaxy",
    "sdss, features or disk-shaped, edge-on galaxy, with rounded edge-on bulge",
    "sdss, features or disk-shaped, spiral galaxy, ring galaxy",
    "sdss, smooth, in-between round galaxy, merger",
    "sdss, smooth, in-between round galaxy, {dust lane:1.6}",
]
#: Guidance values of the sweep the defaults are chosen from (each with and without tree negatives).
GUIDANCE_VALUES = (1.5, 2.5, 4.0, 6.5)
#: Reading of the numbers for users of the shipped model (written after looking at the tables).
NOTES: Sequence[str] = ()
#: Columns averaged per training step in ``training_metrics.csv``.
STEP_COLUMNS = ("consistency", "precision", "recall", "density", "coverage", "domain_fd", "domain_kid")
#: Held-out real galaxies used for the VAE and background measurements (at most).
HELD_OUT_IMAGES = 512


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


def run_latent_mean(run_dir: Union[str, Path]):
    """Mean training latent of a training run (:mod:`galaxysd_core.pipelines.latent_mean`), from its
    sharded latent cache (``latents/<key>/``) or the earlier single-file cache (``latents.safetensors``,
    ``(1, n, C, h, w)``); None when the run holds neither."""
    from galaxysd_core.pipelines.latent_mean import measure_latent_mean
    from galaxysd_core.training.latent_cache import MANIFEST, LatentCache, cache_latent_mean

    run = Path(run_dir)
    folders = sorted(p.parent for p in (run / "latents").glob(f"*/{MANIFEST}")) if (run / "latents").is_dir() else []
    if folders:
        return cache_latent_mean(LatentCache.open(max(folders, key=lambda p: p.stat().st_mtime)))
    legacy = run / "latents.safetensors"
    if legacy.is_file():
        from safetensors import safe_open

        with safe_open(str(legacy), "pt") as fh:
            z = fh.get_tensor("latents")
        return measure_latent_mean(z.reshape(-1, *z.shape[-3:]), dihedral=True)
    return None


def ensure_latent_mean(run_dir: Union[str, Path], out_dir: Union[str, Path]) -> bool:
    """Give a release folder its ``latent_mean.safetensors`` (measured on the run's training latents)
    when the trained model predates it; True when the folder has one afterwards."""
    from galaxysd_core.pipelines.latent_mean import LATENT_MEAN_FILE, save_latent_mean

    out = Path(out_dir)
    if (out / LATENT_MEAN_FILE).is_file():
        return True
    mean = run_latent_mean(run_dir)
    if mean is None:
        logger.warning("%s holds no latent cache: %s samples from zero-mean noise", run_dir, out)
        return False
    save_latent_mean(out, mean, {"measured_on": f"training latents of {Path(run_dir).name} (8 flips/rotations)"})
    logger.info("measured the mean training latent of %s", run_dir)
    return True


def held_out_real(caches: Sequence[Union[str, Path]], test_ids: Sequence[str], resolution: int,
                  limit: int = HELD_OUT_IMAGES):
    """``(images, index)`` of the held-out galaxies (``test_ids``) in the caches at the model's
    resolution, in id-hash order, at most ``limit``; all images when no id matches. ``index`` holds
    the caches' rows (id, caption, answer targets) of those images."""
    from galaxysd_core._utils import resize_images
    from galaxysd_core.data.cache import PreparedDataset
    from galaxysd_core.evaluation.reference import _hash_rank

    imgs, rows = [], []
    wanted = set(map(str, test_ids))
    for c in caches:
        ds = PreparedDataset.load(c)
        sel = ds.index["id"].astype(str).isin(wanted).to_numpy() if wanted else np.ones(len(ds), bool)
        k = np.flatnonzero(sel)
        if not len(k):
            continue
        imgs.append(resize_images(np.asarray(ds.images[k]), resolution))
        rows.append(ds.index.iloc[k])
    if not imgs:
        if wanted:
            return held_out_real(caches, [], resolution, limit)
        raise GalaxySDValueError("the real caches hold no images")
    index = pd.concat(rows, ignore_index=True)
    index["id"] = index["id"].astype(str)
    index["caption"] = index["caption"].astype(str)
    order = _hash_rank(list(index["id"]))[:limit]
    return np.concatenate(imgs)[order], index.iloc[order].reset_index(drop=True)


def snapshot_metrics(run_dir: Union[str, Path], out_dir: Union[str, Path], prompts: Sequence[str], defaults, clf,
                     real: Sequence[str], *, n_checkpoints: int, steps: int, progress: bool = True) -> pd.DataFrame:
    """Metrics of every training snapshot and of the run's final ``model/`` at the release's settings
    (``metrics/checkpoints.*``, ``training_metrics.csv``, ``training_curves.png``); each gets the
    release's ``sky_noise.json`` and ``latent_mean.safetensors`` first, so every step is judged alike."""
    from galaxysd_core.pipelines.latent_mean import LATENT_MEAN_FILE
    from galaxysd_core.pipelines.sky_noise import SKY_NOISE_FILE

    run, out = Path(run_dir), Path(out_dir)
    metrics = out / "metrics"
    for snap in sorted((run / "snapshots").glob("step-*")) + [run / "model"]:
        if not snap.is_dir():
            continue
        if (out / SKY_NOISE_FILE).is_file():
            shutil.copy2(out / SKY_NOISE_FILE, snap / SKY_NOISE_FILE)
        if (out / LATENT_MEAN_FILE).is_file() and not (snap / LATENT_MEAN_FILE).is_file():
            shutil.copy2(out / LATENT_MEAN_FILE, snap / LATENT_MEAN_FILE)
    ck = evaluate_checkpoints(run, list(prompts), config=EvaluationConfig(
        n=n_checkpoints, seed=0, steps=steps, guidance=defaults.guidance_scale,
        tree_negatives=defaults.tree_negatives), classifier=clf, real=list(real), out_dir=metrics, progress=progress)
    cols = [c for c in STEP_COLUMNS if c in ck.table.columns]
    per_step = ck.table.groupby("step")[cols].mean().reset_index()
    per_step.to_csv(metrics / "training_metrics.csv", index=False)
    training_curves(per_step, metrics / "training_curves.png")
    logger.info("wrote the metrics of %d training snapshots", ck.table["step"].nunique())
    return per_step


def release_model(run_dir: Union[str, Path], out_dir: Union[str, Path], caches: Sequence[Union[str, Path]], *,
                  n: int = 64, n_sweep: int = 32, n_checkpoints: int = 32, steps: int = 20,
                  guidance_values: Sequence[float] = GUIDANCE_VALUES, bench_text: Optional[str] = None,
                  copy: bool = True, checkpoints: bool = True, notes: Sequence[str] = tuple(NOTES),
                  classifier=None, progress: bool = True, reuse_sweep: bool = False) -> Path:
    """Copy, evaluate and document a trained run (the steps are listed in the module docstring).

    Parameters
    ----------
    run_dir : path
        Training output folder with ``model/`` (and ``snapshots/`` for the step metrics).
    out_dir : path
        Release folder, e.g. ``assets/galaxysd-mini``; replaced by the model (``metrics/`` kept).
    caches : sequence of path
        Prepared caches of real galaxies: the reference of the distribution and light-profile
        metrics; their held-out galaxies (the classifier's test split) are the VAE, background and
        Figure 3 reference.
    n : int
        Images per prompt at the defaults and per side of each feature test.
    n_sweep : int
        Images per prompt and setting of the guidance x negative-prompt sweep.
    n_checkpoints : int
        Images per prompt for each training snapshot.
    steps : int
        Denoising steps of every evaluation and of the grids.
    guidance_values : sequence of float
        Guidance values of the sweep.
    bench_text : str, optional
        Output of ``bench/bench_generate.py``, quoted in the card.
    copy : bool
        Copy ``<run_dir>/model`` first; False when ``out_dir`` already holds it.
    checkpoints : bool
        Evaluate every training snapshot.
    notes : sequence of str
        Reading of the numbers for the card.
    classifier : path or MorphologyClassifier, optional
        Defaults to the shipped ``assets/classifier``; it must predict GZ2 votes for the dust-lane
        sweep (skipped otherwise).
    reuse_sweep : bool
        Re-use ``metrics/guidance_sweep.csv`` and ``metrics/sweep_real_benchmark.json`` of an earlier
        release of the same model (the evaluation after the sweep is redone).

    Returns
    -------
    pathlib.Path
        The written model card.
    """
    from galaxysd_core.evaluation.reference import classifier_test_ids
    from galaxysd_core.pipelines.generation_defaults import GENERATION_DEFAULTS_FILE
    from galaxysd_core.pipelines.pipeline_galaxysd import load_pipeline
    from galaxysd_core.pipelines.sky_noise import SKY_NOISE_FILE

    if not caches:
        raise GalaxySDValueError("give at least one prepared cache of real galaxies (--caches DIR)")
    if n < 2 or n_sweep < 2 or n_checkpoints < 1 or steps < 1 or not guidance_values:
        raise GalaxySDValueError(f"n and n_sweep must be >= 2, n_checkpoints and steps >= 1 and guidance values "
                                 f"given, got {n}, {n_sweep}, {n_checkpoints}, {steps}, {list(guidance_values)}")
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
    for stale in (GENERATION_DEFAULTS_FILE, SKY_NOISE_FILE):  # measured again below
        (out / stale).unlink(missing_ok=True)
    ensure_latent_mean(run, out)  # sampling starts around it (pipelines/latent_mean.py)
    clf, clf_source = load_classifier(classifier)
    test_ids = classifier_test_ids(clf_source) or []
    real = [str(c) for c in caches]
    prompts = list(QUALITY_BAR) + EXTRA_PROMPTS

    # 1. the VAE on held-out galaxies, and the sky noise it misses
    pipe = load_pipeline(out)
    held, held_index = held_out_real(real, test_ids, pipe.default_size)
    from galaxysd_core.training.classifier_data import caption_truth

    truth = caption_truth(held_index.reindex(columns=list(held_index.columns) + [
        c for c in clf.feature_columns if c not in held_index.columns]), clf.feature_columns)
    rec = reconstruction_report(pipe.vae, held, clf, truth)
    (metrics / "reconstruction.json").write_text(json.dumps(rec, indent=1))
    measure_release_noise(pipe.vae, held, pipe.default_size, real).save(out)

    # 2-3. guidance x negative-prompt sweep, and the defaults chosen from its front
    sweep = f"guidance={','.join(f'{g:g}' for g in guidance_values)}"
    tables, real_bench = {}, None
    sweep_file, bench_file = metrics / "guidance_sweep.csv", metrics / "sweep_real_benchmark.json"
    if reuse_sweep and sweep_file.is_file() and bench_file.is_file():  # the same model: re-use the sweep
        table = pd.read_csv(sweep_file)
        tables = {bool(k): g for k, g in table.groupby("tree_negatives")}
        real_bench = json.loads(bench_file.read_text())
        logger.info("re-using the guidance sweep of %s", sweep_file)
    else:
        for tree in (True, False):
            res = evaluate(out, prompts, config=EvaluationConfig(n=n_sweep, seed=0, steps=steps, tree_negatives=tree),
                           sweeps=[sweep], classifier=clf, real=real, benchmark=real_bench is None,
                           progress=progress, extra_columns={"tree_negatives": tree}, test_ids=test_ids)
            tables[tree] = res.table
            real_bench = real_bench or res.benchmark or {}
        pd.concat(list(tables.values()), ignore_index=True).to_csv(sweep_file, index=False)
        bench_file.write_text(json.dumps(real_bench, indent=1, default=str))
    # the consistency goal: real galaxies of the swept prompts' captions (held-out ids), minus 0.1
    per_prompt = (real_bench.get("consistency_on_real") or {}).get("per_prompt") or {}
    real_c = [float(per_prompt[p]) for p in prompts if per_prompt.get(p) is not None]
    defaults, summary = choose_defaults(summarize_settings(tables), steps=steps,
                                        consistency_goal=float(np.mean(real_c)) - 0.1 if real_c else None)
    summary.to_csv(metrics / "pareto.csv", index=False)
    front_plot(summary, metrics / "front.png")
    defaults.save(out)
    logger.info("chose guidance %.2f, tree negatives %s", defaults.guidance_scale, defaults.tree_negatives)

    # 4-6. the evaluation at the defaults, every feature on/off, the dust-lane sweep, the sky background
    pipe, bench = _measure_at_defaults(out, prompts, defaults, clf, real, held, test_ids, n, steps, progress)

    # 7. training snapshots (with the release's sky-noise model, so every step is judged alike)
    if checkpoints:
        snapshot_metrics(run, out, prompts[:5], defaults, clf, real, n_checkpoints=n_checkpoints, steps=steps,
                         progress=progress)

    # 8. training captions, grids, card
    info = json.loads(info_path.read_text())
    captions = [c for c, k in info["caption_counts"].items() for _ in range(int(k))]
    describe(captions).save(metrics / "morphology_distribution")
    _grids(pipe, out, defaults, held, held_index, steps)
    card = write_model_card(out, run, bench_text=bench_text, notes=notes)
    logger.info("wrote %s (real consistency benchmark %s)", card,
                (bench.get("consistency_on_real") or {}).get("consistency"))
    return card


def _measure_at_defaults(out: Path, prompts, defaults, clf, real, held, test_ids, n: int, steps: int, progress):
    """Steps 4-6 of :func:`release_model` (module docstring); returns the pipeline and the real benchmark."""
    from galaxysd_core.pipelines.pipeline_galaxysd import load_pipeline

    metrics = out / "metrics"
    # 4. the evaluation at the defaults
    at_defaults = EvaluationConfig(n=n, seed=0, steps=steps, guidance=defaults.guidance_scale,
                                   tree_negatives=defaults.tree_negatives)
    res = evaluate(out, prompts, config=at_defaults, classifier=clf, real=real, out_dir=metrics, progress=progress,
                   test_ids=test_ids)
    bench = res.benchmark or {}

    # 5. every feature on/off, and the dust-lane extrapolation
    pipe = load_pipeline(out)
    feature_effects(pipe, clf, at_defaults).to_csv(metrics / "feature_effects.csv", index=False)
    if clf.is_vote_model:
        dust = dust_lane_sweep(pipe, clf, at_defaults)
        dust.to_csv(metrics / "dust_sweep.csv", index=False)
        sample_grid(pipe, list(dust["prompt"]), seeds=range(8), steps=steps, guidance=defaults.guidance_scale,
                    path=out / "dust_sweep.png")

    # 6. sky background and pixel histograms
    gen = {"generated": np.concatenate([generate(pipe, p, max(8, n // 4), 0, steps, defaults.guidance_scale,
                                                 tree_negatives=defaults.tree_negatives) for p in GRID_PROMPTS[:5]])}
    gen["generated, no sky noise"] = np.concatenate([
        np.asarray(pipe(p, num_images_per_prompt=max(8, n // 4), seed=0, output_type="np", sky_noise=False).images)
        for p in GRID_PROMPTS[:5]])
    if pipe.latent_mean is not None:  # what starting around the mean training latent changes
        gen["generated, zero-mean start"] = np.concatenate([
            np.asarray(pipe(p, num_images_per_prompt=max(8, n // 4), seed=0, output_type="np", latent_mean=False,
                            guidance_scale=defaults.guidance_scale, tree_negatives=defaults.tree_negatives).images)
            for p in GRID_PROMPTS[:5]])
    backgrounds = compare_backgrounds(held, gen)
    (metrics / "background.json").write_text(json.dumps(backgrounds, indent=1))
    histogram_plot(backgrounds, metrics / "pixel_histograms.png")
    return pipe, bench


def _grids(pipe, out: Path, defaults, held, held_index, steps: int) -> None:
    """The sample grid and GalaxySD's Figure 3 of a release folder."""
    sample_grid(pipe, GRID_PROMPTS, seeds=range(8), steps=steps, guidance=defaults.guidance_scale,
                path=out / "samples_grid.png")
    _, fig3 = real_vs_generated_grid(pipe, GALAXYSD_PROMPT_TABLE, held, list(held_index["caption"]),
                                     list(held_index["id"]), seeds=range(5),
                                     path=out / "figure3.png")
    pd.DataFrame(fig3).to_csv(out / "metrics" / "figure3.csv", index=False)


def refresh_at_defaults(out_dir: Union[str, Path], caches: Sequence[Union[str, Path]], *, n: int = 64,
                        steps: int = 20, classifier=None, progress: bool = True, note: Optional[str] = None,
                        measure_noise: bool = True) -> Path:
    """Measure a release folder again at its recommended settings, after its sky-noise model changed.

    Steps 1 (the noise model only, unless ``measure_noise`` is False), 4-6 and the grids of
    :func:`release_model`, with the folder's
    ``generation_defaults.json`` kept (the guidance sweep and the training snapshots are not redone);
    the card's sections of those steps are replaced in place, the rest of the card is kept, and
    ``note`` (if given) is added under "Realism, diversity and consistency".
    """
    from galaxysd_core.evaluation.feature_curves import replace_card_section
    from galaxysd_core.evaluation.model_card import _section_at_defaults, _section_background, _section_features
    from galaxysd_core.evaluation.reference import classifier_test_ids
    from galaxysd_core.pipelines.pipeline_galaxysd import load_pipeline

    out = Path(out_dir)
    readme = out / "README.md"
    if not readme.is_file():
        raise GalaxySDFileError(f"{str(readme)!r} not found; refresh a released model folder")
    clf, clf_source = load_classifier(classifier)
    test_ids = classifier_test_ids(clf_source) or []
    real = [str(c) for c in caches]
    pipe = load_pipeline(out)
    held, held_index = held_out_real(real, test_ids, pipe.default_size)
    if measure_noise:
        measure_release_noise(pipe.vae, held, pipe.default_size, real).save(out)
    defaults = load_pipeline(out).generation_defaults
    prompts = list(QUALITY_BAR) + EXTRA_PROMPTS
    pipe, _ = _measure_at_defaults(out, prompts, defaults, clf, real, held, test_ids, n, steps, progress)
    _grids(pipe, out, defaults, held, held_index, steps)
    metrics = out / "metrics"
    body = readme.read_text()
    for lines in (_section_at_defaults(metrics), _section_features(metrics), _section_background(metrics)):
        if not lines:
            continue
        text = "\n".join(lines).rstrip("\n") + "\n"
        if note and lines[0].startswith("## Realism"):
            text += "\n" + note.strip() + "\n"
        body = replace_card_section(body, text + "\n", title=lines[0])
    readme.write_text(body)
    return readme
