"""Generate-and-measure runs: prompts x sweeps -> tidy metric tables for the app.

A run generates ``n`` images per prompt and sweep point with fixed seeds (``seed, seed+1, ...``,
the same for every prompt and sweep point, so sweep points are paired comparisons), and measures:

* prompt consistency with the morphology classifier (:mod:`galaxysd_core.evaluation.metrics.consistency`);
* precision, recall, density, coverage, domain FD and domain KID against real images in the
  classifier's embedding space (:mod:`galaxysd_core.evaluation.metrics.distribution`);
* 1-D Wasserstein distances of light-profile statistics (:mod:`galaxysd_core.evaluation.metrics.physical`).

The real reference of a prompt (:class:`galaxysd_core.evaluation.reference.RealReference`) is the
set of real images with the same caption when the real cache holds at least ``min_reference`` of
them, else all real images; the ``reference`` column says which. Without a real cache only
consistency is computed (the other columns are NaN). Settings and sweeps are in
:mod:`galaxysd_core.evaluation.config`, metrics over training steps in
:mod:`galaxysd_core.evaluation.checkpoints`.

Outputs (:func:`write_results`): ``evaluation.csv`` and ``evaluation.json`` (the same tidy table,
one row per prompt x sweep point), ``real_benchmark.json`` (real-image consistency, the
real-vs-real floor of every distribution metric, light-profile summaries) and
``evaluation_config.json`` (settings, model, classifier, versions). The app plots these files
without recomputing anything.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from galaxysd_core._utils import jsonable, library_versions, resize_images
from galaxysd_core.config import DEFAULT_CLASSIFIER_DIR
from galaxysd_core.errors import GalaxySDValueError
from galaxysd_core.evaluation.config import EvaluationConfig, Sweep
from galaxysd_core.evaluation.reference import RealReference, classifier_test_ids
from galaxysd_core.models.classifier import MorphologyClassifier
from galaxysd_core.pipelines.pipeline_galaxysd import load_pipeline

#: File names written by :func:`write_results`.
TABLE_NAME = "evaluation"
BENCHMARK_NAME = "real_benchmark.json"
CONFIG_NAME = "evaluation_config.json"
#: Images per pipeline call (the pipeline accepts at most 64).
CHUNK = 32


# ---------------------------------------------------------------------------------- generation
def model_name(pipe, model=None) -> str:
    """Name of a model for the tables: the folder name, else the pipeline's source folder or class."""
    if isinstance(model, (str, Path)):
        return Path(model).name or str(model)
    src = getattr(pipe, "source_path", None)
    return Path(src).name if src else type(pipe).__name__


def generate(pipe, prompt: str, n: int, seed: int, steps: int, guidance: float, scheduler: str = "ddim",
             negative_prompt: Optional[str] = None, tree_negatives: bool = True,
             used_negative: Optional[List[str]] = None, feature_guidance=None,
             sky_noise: Optional[bool] = None) -> np.ndarray:
    """``n`` uint8 images ``(n, H, W, 3)`` of one prompt with seeds ``seed .. seed+n-1`` (chunked).

    ``used_negative``, when given, receives the negative prompt the pipeline actually used;
    ``feature_guidance`` is passed to the pipeline (guidance per feature), and ``sky_noise`` (None: the
    model's recommendation; False: the decoded galaxies alone).
    """
    out = []
    for start in range(0, n, CHUNK):
        m = min(CHUNK, n - start)
        res = pipe(prompt=prompt, negative_prompt=negative_prompt, num_images_per_prompt=m,
                   seed=[seed + start + i for i in range(m)], num_inference_steps=int(steps),
                   guidance_scale=float(guidance), scheduler=scheduler, output_type="np",
                   tree_negatives=tree_negatives, feature_guidance=feature_guidance, sky_noise=sky_noise)
        out.append(np.asarray(res.images))
        if used_negative is not None and start == 0:
            used_negative.append((getattr(res, "negative_prompts", None) or [""])[0])
    return np.concatenate(out)


# ---------------------------------------------------------------------------------- measuring
def measure(images: np.ndarray, prompt: str, classifier, config: EvaluationConfig,
            real: Optional[RealReference] = None) -> Dict[str, Any]:
    """All metrics of one set of generated images of one prompt (a table row without settings)."""
    from galaxysd_core.evaluation.metrics.consistency import prompt_consistency
    from galaxysd_core.evaluation.metrics.distribution import distribution_metrics
    from galaxysd_core.evaluation.metrics.physical import STATS, compare_physical, physical_stats

    t0 = time.perf_counter()
    row: Dict[str, Any] = {}
    cons = prompt_consistency(classifier, images, prompt, threshold=config.threshold)
    row["consistency"] = cons.overall
    row["n_checked"] = cons.n_checked
    for phrase in classifier.feature_phrases:
        row[f"seen:{phrase}"] = cons.per_feature.get(phrase, math.nan)
    row["unchecked"] = "; ".join(cons.unchecked)  # prompted features without a classifier head
    dist_cols = ["precision", "recall", "density", "coverage", "prdc_k", "domain_fd", "domain_kid", "domain_kid_std"]
    if real is None:
        row.update({c: math.nan for c in dist_cols})
        row.update(reference="none", n_real=0)
        row.update({f"wasserstein_{s}": math.nan for s in STATS})
    else:
        idx, label = real.select(prompt, config.min_reference)
        fake_feat = classifier.embed_images(images).numpy().astype(np.float64)
        dist = distribution_metrics(real.features(classifier)[idx], fake_feat, k=config.k,
                                    kid_subsets=config.kid_subsets, seed=config.seed)
        row.update({c: dist[c] for c in dist_cols})
        row.update(reference=label, n_real=int(len(idx)))
        fake_stats = physical_stats(resize_images(images, real.images.shape[1]))
        row.update(compare_physical(real.stats().iloc[idx], fake_stats))
    row["metric_seconds"] = time.perf_counter() - t0
    return row


def real_benchmark(classifier, real: RealReference, config: EvaluationConfig,
                   test_ids: Optional[Iterable[str]] = None) -> Dict[str, Any]:
    """Reference levels measured on real images only (``real_benchmark.json``).

    * ``consistency_on_real``: real images vs their own captions, on the classifier's held-out
      ids when given (and present), else on all reference images; compare with
      ``paper_real_consistency`` (0.895, GalaxySD paper).
    * ``real_vs_real``: distribution metrics and Wasserstein distances between two disjoint random
      samples of ``min(n, N/2)`` real images, the floor a perfect generator reaches at that sample
      size (FD and KID are biased upward at small n).
    * ``physical``: median and 16/84th percentiles of each light-profile statistic, overall and
      per caption.
    * ``real_per_feature``: per head, how many held-out real images are captioned with its feature
      and the share in which the head sees it; caption features without a head follow, marked
      ``has_head: false`` (:func:`~galaxysd_core.evaluation.metrics.consistency.per_feature_table`).
    """
    from galaxysd_core.evaluation.metrics.consistency import (PAPER_REAL_CONSISTENCY, consistency_on_real,
                                                               per_feature_table)
    from galaxysd_core.evaluation.metrics.distribution import distribution_metrics
    from galaxysd_core.evaluation.metrics.physical import STAT_UNITS, compare_physical, summarize_physical

    out: Dict[str, Any] = {"paper_real_consistency": PAPER_REAL_CONSISTENCY, "n_real": len(real.images),
                           "real_caches": real.folders}
    ref = real
    split = "all reference images"
    if test_ids is not None:
        wanted = set(map(str, test_ids))
        mask = np.array([i in wanted for i in real.ids])
        if mask.sum() >= 2:
            ref, split = real.subset(mask), "classifier held-out test ids"
    cons = consistency_on_real(classifier, ref.images, ref.captions, threshold=config.threshold)
    out["consistency_on_real"] = {**cons.to_dict(), "n_images": len(ref.images), "images": split}
    # one row per head (share of the held-out real images captioned with the feature in which the
    # head sees it), then caption features without a head (unchecked)
    out["real_per_feature"] = per_feature_table(cons, classifier.feature_phrases).to_dict("records")

    rng = np.random.default_rng(config.seed)
    m = min(config.n, len(real.images) // 2)
    perm = rng.permutation(len(real.images))
    a, b = perm[:m], perm[m:2 * m]
    feats = real.features(classifier)
    rvr = distribution_metrics(feats[a], feats[b], k=config.k, kid_subsets=config.kid_subsets, seed=config.seed)
    stats = real.stats()
    rvr.update(compare_physical(stats.iloc[a], stats.iloc[b]))
    out["real_vs_real"] = {"sample_size": int(m), **{k: jsonable(v) for k, v in rvr.items()}}
    per_caption = {}
    for caption in dict.fromkeys(real.captions):
        sel = np.array([c == caption for c in real.captions])
        per_caption[caption] = {"n": int(sel.sum()), **summarize_physical(stats[sel])}
    out["physical"] = {"units": STAT_UNITS, "all": summarize_physical(stats), "per_caption": per_caption}
    return jsonable(out)


# ---------------------------------------------------------------------------------- runs
@dataclass
class EvaluationResult:
    """Output of :func:`evaluate`: the tidy table, the real benchmark and the run metadata."""

    table: Any  # pandas.DataFrame
    benchmark: Optional[Dict[str, Any]]
    meta: Dict[str, Any]


def load_classifier(classifier) -> Tuple[Any, str]:
    """``(classifier in eval mode, its source)`` from a folder, a loaded model or None (the shipped one)."""
    if classifier is None:
        classifier = DEFAULT_CLASSIFIER_DIR
    if isinstance(classifier, (str, Path)):
        return MorphologyClassifier.from_pretrained(classifier), str(classifier)
    return classifier.eval(), type(classifier).__name__


def evaluate(model, prompts: Sequence[str], *, config: Optional[EvaluationConfig] = None,
             sweeps: Sequence[Union[Sweep, str]] = (), classifier=None,
             real: Optional[Union[RealReference, Sequence[Union[str, Path]]]] = None,
             out_dir: Optional[Union[str, Path]] = None, benchmark: bool = True, progress: bool = True,
             extra_columns: Optional[Dict[str, Any]] = None,
             test_ids: Optional[Sequence[str]] = None) -> EvaluationResult:
    """Generate and measure every prompt at every sweep point.

    Parameters
    ----------
    model : path or GalaxySDPipeline
        Pipeline folder or loaded pipeline.
    prompts : sequence of str
        Prompts (weighted syntax allowed).
    config : EvaluationConfig, optional
    sweeps : sequence of Sweep or str
        E.g. ``["guidance=1,3,6.5", "weight:dust lane=0.8,1.3,2.0"]``; each is run on its own
        (the other settings at their base values). Without sweeps, one row per prompt.
    classifier : path or MorphologyClassifier, optional
        Defaults to the shipped ``assets/classifier``.
    real : RealReference or sequence of cache folders, optional
        Real reference images; without them only consistency is computed.
    out_dir : path, optional
        Where :func:`write_results` writes the tables.
    benchmark : bool
        Also compute :func:`real_benchmark` (needs ``real``).
    extra_columns : dict, optional
        Constant columns added to every row (e.g. ``{"step": 500}``).
    test_ids : sequence of str, optional
        Held-out real ids for the real consistency benchmark; defaults to the classifier folder's
        ``split_test_ids.csv``.

    Returns
    -------
    EvaluationResult
    """
    import pandas as pd
    from tqdm.auto import tqdm

    config = config or EvaluationConfig()
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    if not prompts:
        raise GalaxySDValueError("no prompts to evaluate")
    sweeps = [s if isinstance(s, Sweep) else Sweep.parse(s) for s in sweeps]
    clf, clf_source = load_classifier(classifier)
    if test_ids is None:
        test_ids = classifier_test_ids(clf_source)
    if real is not None and not isinstance(real, RealReference):
        real = RealReference.from_caches(list(real), max_real=config.max_real, priority_ids=test_ids)
    pipe = load_pipeline(model)
    name = model_name(pipe, model)

    points: List[Tuple[str, float, Optional[Sweep]]] = [("none", math.nan, None)] if not sweeps else [
        (s.variable, v, s) for s in sweeps for v in s.values]
    rows = []
    bar = tqdm(total=len(prompts) * len(points), desc="evaluate", disable=not progress)
    for base_prompt in prompts:
        for variable, value, sweep in points:
            prompt, guidance, steps = (base_prompt, config.guidance, config.steps) if sweep is None else \
                sweep.apply(base_prompt, config, value)
            t0 = time.perf_counter()
            used_negative: List[str] = []
            images = generate(pipe, prompt, config.n, config.seed, steps, guidance, config.scheduler,
                              config.negative_prompt, config.tree_negatives, used_negative)
            gen_s = time.perf_counter() - t0
            row = {"model": name, **(extra_columns or {}), "prompt": prompt, "base_prompt": base_prompt,
                   "sweep_variable": variable, "sweep_value": value, "guidance": guidance, "steps": steps,
                   "scheduler": config.scheduler, "n": int(len(images)), "seed": config.seed,
                   "negative_prompt": used_negative[0] if used_negative else ""}
            row.update(measure(images, prompt, clf, config, real))
            row["gen_seconds"] = gen_s
            rows.append(row)
            bar.update(1)
    bar.close()
    table = pd.DataFrame(rows)
    bench = real_benchmark(clf, real, config, test_ids) if (benchmark and real is not None) else None
    meta = {"config": config.to_dict(), "sweeps": [asdict(s) for s in sweeps], "model": str(model)
            if isinstance(model, (str, Path)) else name, "classifier": clf_source,
            "classifier_heads": clf.feature_phrases, "real_caches": real.folders if real is not None else [],
            "n_real": len(real.images) if real is not None else 0, "prompts": prompts, "versions": library_versions(),
            "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    result = EvaluationResult(table=table, benchmark=bench, meta=meta)
    if out_dir is not None:
        write_results(result, out_dir)
    return result


def write_results(result: EvaluationResult, out_dir: Union[str, Path], name: str = TABLE_NAME) -> Dict[str, Path]:
    """Write ``<name>.csv``, ``<name>.json``, ``real_benchmark.json`` and the run's settings
    (``evaluation_config.json`` for the main table, ``<name>_config.json`` for any other name).

    The JSON table is ``{"columns": [...], "rows": [{...}, ...]}`` with NaN written as null.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out / f"{name}.csv", "json": out / f"{name}.json", "config": out / (CONFIG_NAME if name == TABLE_NAME else f"{name}_config.json")}
    result.table.to_csv(paths["csv"], index=False)
    records = jsonable(result.table.to_dict("records"))
    paths["json"].write_text(json.dumps({"columns": list(result.table.columns), "rows": records}, indent=1) + "\n")
    paths["config"].write_text(json.dumps(jsonable(result.meta), indent=2) + "\n")
    if result.benchmark is not None:
        paths["benchmark"] = out / BENCHMARK_NAME
        paths["benchmark"].write_text(json.dumps(result.benchmark, indent=2) + "\n")
    return paths
