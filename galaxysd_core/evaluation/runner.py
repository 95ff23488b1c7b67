"""Generate-and-measure runs: prompts x sweeps -> tidy metric tables for the app.

A run generates ``n`` images per prompt and sweep point with fixed seeds (``seed, seed+1, ...``,
the same for every prompt and sweep point, so sweep points are paired comparisons), and measures:

* prompt consistency with the morphology classifier (:mod:`galaxysd_core.evaluation.metrics.consistency`);
* precision, recall, density, coverage, domain FD and domain KID against real images in the
  classifier's embedding space (:mod:`galaxysd_core.evaluation.metrics.distribution`);
* 1-D Wasserstein distances of light-profile statistics (:mod:`galaxysd_core.evaluation.metrics.physical`).

The real reference of a prompt is the set of real images with the same caption (same tags,
weights and order ignored) when the real cache holds at least ``min_reference`` of them, else all
real images; the ``reference`` column says which. Without a real cache only consistency is
computed (the other columns are NaN).

Outputs (:func:`write_results`): ``evaluation.csv`` and ``evaluation.json`` (the same tidy table,
one row per prompt x sweep point), ``real_benchmark.json`` (real-image consistency, the
real-vs-real floor of every distribution metric, light-profile summaries) and
``evaluation_config.json`` (settings, model, classifier, versions). The app plots these files
without recomputing anything.
"""
from __future__ import annotations

import json
import math
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from galaxysd_core.errors import GalaxySDFileError, GalaxySDValueError

#: Variables a sweep can vary (``weight:<phrase>`` varies one tag's weight).
SWEEP_VARIABLES = ("guidance", "steps", "weight:<phrase>")
#: File names written by :func:`write_results`.
TABLE_NAME = "evaluation"
BENCHMARK_NAME = "real_benchmark.json"
CONFIG_NAME = "evaluation_config.json"
#: Images per pipeline call (the pipeline accepts at most 64).
CHUNK = 32


# ---------------------------------------------------------------------------------- settings
@dataclass
class EvaluationConfig:
    """Settings of an evaluation run (saved as ``evaluation_config.json``).

    Parameters
    ----------
    n : int
        Images per prompt and sweep point.
    seed : int
        First seed; image ``i`` uses ``seed + i``.
    steps : int
        Denoising steps.
    guidance : float
        Classifier-free guidance scale.
    scheduler : str
        Scheduler name of :class:`~galaxysd_core.pipelines.pipeline_galaxysd.GalaxySDPipeline`.
    negative_prompt : str, optional
        Fixed negative prompt; None = the pipeline's automatic GZ2-tree negative prompt when
        ``tree_negatives`` is True, else none (plain unconditional guidance, as in GalaxySD).
    tree_negatives : bool
        Let the pipeline derive each prompt's negative prompt from the GZ2 tree (the default the app
        and CLI use).
    k : int
        Neighbourhood size of precision/recall/density/coverage (Naeem et al. 2020: 5).
    kid_subsets : int
        Random subsets of the KID estimate.
    threshold : float
        Classifier probability at which a feature counts as seen.
    max_real : int
        Largest number of real reference images (a deterministic, id-hash subsample above it).
    min_reference : int
        Real images with the prompt's caption needed to use them as reference instead of all real.
    """

    n: int = 16
    seed: int = 0
    steps: int = 20
    guidance: float = 6.5
    scheduler: str = "ddim"
    negative_prompt: Optional[str] = None
    tree_negatives: bool = True
    k: int = 5
    kid_subsets: int = 50
    threshold: float = 0.5
    max_real: int = 2000
    min_reference: int = 10

    def __post_init__(self) -> None:
        if not isinstance(self.n, int) or self.n < 1:
            raise GalaxySDValueError(f"n must be a positive integer (images per prompt), got {self.n!r}")
        if self.k < 1:
            raise GalaxySDValueError(f"k must be >= 1, got {self.k}")
        if self.max_real < 2:
            raise GalaxySDValueError(f"max_real must be >= 2, got {self.max_real}")

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


@dataclass
class Sweep:
    """One swept variable and its values (sweeps are run one at a time, not as a grid).

    Examples
    --------
    >>> Sweep.parse("guidance=1,3,6.5")
    Sweep(variable='guidance', values=[1.0, 3.0, 6.5])
    >>> Sweep.parse("weight:dust lane=0.8,1.3,2.0").phrase
    'dust lane'
    """

    variable: str
    values: List[float]

    @property
    def phrase(self) -> Optional[str]:
        return self.variable.split(":", 1)[1] if self.variable.startswith("weight:") else None

    @classmethod
    def parse(cls, text: str) -> "Sweep":
        """Parse ``"guidance=1,3,6.5"``, ``"steps=10,20"`` or ``"weight:dust lane=0.8,1.3"``."""
        if "=" not in str(text):
            raise GalaxySDValueError(
                f"sweep {text!r} has no '='; write e.g. 'guidance=1,3,6.5' or 'weight:dust lane=0.8,1.3,2.0'")
        name, raw = str(text).rsplit("=", 1)
        name = name.strip()
        if name.startswith("weight:"):
            phrase = " ".join(name.split(":", 1)[1].split())
            if not phrase:
                raise GalaxySDValueError(f"sweep {text!r} names no phrase; write 'weight:dust lane=0.8,1.3'")
            name = f"weight:{phrase}"
        elif name not in ("guidance", "steps"):
            raise GalaxySDValueError(f"unknown sweep variable {name!r}; use one of {list(SWEEP_VARIABLES)}")
        try:
            values = [float(v) for v in raw.split(",") if v.strip()]
        except ValueError:
            raise GalaxySDValueError(f"sweep values in {text!r} must be numbers separated by commas") from None
        if not values or not all(math.isfinite(v) for v in values):
            raise GalaxySDValueError(f"sweep {text!r} has no finite values")
        if name == "steps" and any(v < 1 or v != int(v) for v in values):
            raise GalaxySDValueError(f"steps sweep values must be positive integers, got {values}")
        return cls(variable=name, values=values)

    def apply(self, prompt: str, config: EvaluationConfig, value: float) -> Tuple[str, float, int]:
        """``(prompt, guidance, steps)`` at one sweep point."""
        if self.variable == "guidance":
            return prompt, float(value), config.steps
        if self.variable == "steps":
            return prompt, config.guidance, int(value)
        return set_phrase_weight(prompt, self.phrase, value), config.guidance, config.steps


def set_phrase_weight(prompt: str, phrase: str, weight: float) -> str:
    """Prompt with the weight of tag ``phrase`` set to ``weight`` (the tag is appended if absent)."""
    from galaxysd_core.prompts.grammar import parse_prompt

    tags = parse_prompt(prompt, strict=False).phrase_weights()
    tags[phrase] = float(weight)
    parts = [tag if w == 1.0 else f"{{{tag}:{round(w, 3):g}}}" for tag, w in tags.items()]
    return ", ".join(parts)


def caption_key(text: str) -> Tuple[str, ...]:
    """Tags of a prompt or caption, weights and order ignored (tags weighted 0 dropped)."""
    from galaxysd_core.prompts.grammar import prompt_tags

    return prompt_tags(text)


def read_prompts(items: Sequence[str]) -> List[str]:
    """Prompts from CLI arguments: an existing file gives one prompt per non-empty, non-# line."""
    prompts: List[str] = []
    for item in items:
        path = Path(item)
        if path.is_file():
            lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()]
            prompts.extend(ln for ln in lines if ln and not ln.startswith("#"))
        else:
            prompts.append(str(item))
    if not prompts:
        raise GalaxySDValueError("no prompts given; pass prompt texts or a file with one prompt per line")
    return prompts


# ---------------------------------------------------------------------------------- real data
def _hash_rank(ids: Sequence[str]) -> np.ndarray:
    from galaxysd_core.models.classifier import _id_hash

    return np.argsort([_id_hash(i, "galaxysd-eval-reference-v1") for i in ids], kind="stable")


@dataclass
class RealReference:
    """Real images used as reference, with their embeddings and light-profile statistics.

    Build with :meth:`from_caches` (or directly from arrays in tests). Embeddings and statistics
    are computed once, on first use.
    """

    images: np.ndarray
    captions: List[str]
    ids: List[str]
    folders: List[str] = field(default_factory=list)
    _features: Optional[np.ndarray] = field(default=None, repr=False)
    _stats: Any = field(default=None, repr=False)
    _keys: Optional[List[Tuple[str, ...]]] = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if len(self.images) != len(self.captions) or len(self.images) != len(self.ids):
            raise GalaxySDValueError("real images, captions and ids must have the same length")
        if len(self.images) < 2:
            raise GalaxySDValueError("a real reference needs at least 2 images")

    @classmethod
    def from_caches(cls, folders: Sequence[Union[str, Path]], max_real: Optional[int] = None,
                    priority_ids: Optional[Iterable[str]] = None) -> "RealReference":
        """Load prepared caches; keep a deterministic subsample of at most ``max_real`` images.

        Images whose id is in ``priority_ids`` (the classifier's held-out split) are kept first,
        the rest are filled in id-hash order, so the subsample is reproducible and contains the
        images the classifier never saw.
        """
        from galaxysd_core.data.cache import PreparedDataset

        datasets = [PreparedDataset.load(f) for f in folders]
        ds = PreparedDataset.concat(datasets) if len(datasets) > 1 else datasets[0]
        ids = ds.index["id"].astype(str).tolist()
        idx = np.arange(len(ids))
        if max_real is not None and len(ids) > max_real:
            ranked = _hash_rank(ids)
            if priority_ids is not None:
                wanted = set(map(str, priority_ids))
                first = np.array([ids[i] in wanted for i in ranked])
                ranked = np.concatenate([ranked[first], ranked[~first]])
            idx = np.sort(ranked[:max_real])
        return cls(images=ds.images[idx], captions=[ds.captions[i] for i in idx], ids=[ids[i] for i in idx],
                   folders=[str(f) for f in folders])

    def subset(self, mask: np.ndarray) -> "RealReference":
        idx = np.flatnonzero(mask)
        return RealReference(self.images[idx], [self.captions[i] for i in idx], [self.ids[i] for i in idx],
                             self.folders)

    @property
    def keys(self) -> List[Tuple[str, ...]]:
        if self._keys is None:
            cache = {c: caption_key(c) for c in dict.fromkeys(self.captions)}
            self._keys = [cache[c] for c in self.captions]
        return self._keys

    def features(self, classifier) -> np.ndarray:
        if self._features is None:
            self._features = classifier.embed_images(self.images).numpy().astype(np.float64)
        return self._features

    def stats(self):
        from galaxysd_core.evaluation.metrics.physical import physical_stats

        if self._stats is None:
            self._stats = physical_stats(self.images)
        return self._stats

    def select(self, prompt: str, min_reference: int) -> Tuple[np.ndarray, str]:
        """Indices of the reference images for ``prompt`` and the reference label."""
        key = caption_key(prompt)
        idx = np.flatnonzero([k == key for k in self.keys])
        if len(idx) >= min_reference:
            return idx, "same caption"
        return np.arange(len(self.images)), "all real"


# ---------------------------------------------------------------------------------- generation
def model_name(pipe, model=None) -> str:
    if isinstance(model, (str, Path)):
        return Path(model).name or str(model)
    src = getattr(pipe, "source_path", None)
    return Path(src).name if src else type(pipe).__name__


def generate(pipe, prompt: str, n: int, seed: int, steps: int, guidance: float, scheduler: str = "ddim",
             negative_prompt: Optional[str] = None, tree_negatives: bool = True,
             used_negative: Optional[List[str]] = None) -> np.ndarray:
    """``n`` uint8 images ``(n, H, W, 3)`` of one prompt with seeds ``seed .. seed+n-1`` (chunked).

    ``used_negative``, when given, receives the negative prompt the pipeline actually used.
    """
    out = []
    for start in range(0, n, CHUNK):
        m = min(CHUNK, n - start)
        res = pipe(prompt=prompt, negative_prompt=negative_prompt, num_images_per_prompt=m,
                   seed=[seed + start + i for i in range(m)], num_inference_steps=int(steps),
                   guidance_scale=float(guidance), scheduler=scheduler, output_type="np",
                   tree_negatives=tree_negatives)
        out.append(np.asarray(res.images))
        if used_negative is not None and start == 0:
            used_negative.append((getattr(res, "negative_prompts", None) or [""])[0])
    return np.concatenate(out)


def _resize_uint8(images: np.ndarray, size: int) -> np.ndarray:
    import torch
    import torch.nn.functional as F

    if images.shape[1] == size and images.shape[2] == size:
        return images
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()
    y = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return y.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


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
        fake_stats = physical_stats(_resize_uint8(images, real.images.shape[1]))
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
    """
    from galaxysd_core.evaluation.metrics.consistency import PAPER_REAL_CONSISTENCY, consistency_on_real
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

    rng = np.random.default_rng(config.seed)
    m = min(config.n, len(real.images) // 2)
    perm = rng.permutation(len(real.images))
    a, b = perm[:m], perm[m:2 * m]
    feats = real.features(classifier)
    rvr = distribution_metrics(feats[a], feats[b], k=config.k, kid_subsets=config.kid_subsets, seed=config.seed)
    stats = real.stats()
    rvr.update(compare_physical(stats.iloc[a], stats.iloc[b]))
    out["real_vs_real"] = {"sample_size": int(m), **{k: _clean(v) for k, v in rvr.items()}}
    per_caption = {}
    for caption in dict.fromkeys(real.captions):
        sel = np.array([c == caption for c in real.captions])
        per_caption[caption] = {"n": int(sel.sum()), **summarize_physical(stats[sel])}
    out["physical"] = {"units": STAT_UNITS, "all": summarize_physical(stats), "per_caption": per_caption}
    return _clean(out)


def _clean(obj):
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return None if not math.isfinite(float(obj)) else float(obj)
    return obj


# ---------------------------------------------------------------------------------- runs
@dataclass
class EvaluationResult:
    """Output of :func:`evaluate`: the tidy table, the real benchmark and the run metadata."""

    table: Any  # pandas.DataFrame
    benchmark: Optional[Dict[str, Any]]
    meta: Dict[str, Any]


def _load_classifier(classifier):
    from galaxysd_core.models.classifier import MorphologyClassifier
    from galaxysd_core.config import DEFAULT_CLASSIFIER_DIR

    if classifier is None:
        classifier = DEFAULT_CLASSIFIER_DIR
    if isinstance(classifier, (str, Path)):
        return MorphologyClassifier.from_pretrained(classifier), str(classifier)
    return classifier.eval(), type(classifier).__name__


def _test_ids(classifier_source: str) -> Optional[List[str]]:
    from galaxysd_core.models.classifier import SPLIT_NAME, load_test_ids

    path = Path(classifier_source)
    if path.is_dir() and (path / SPLIT_NAME).is_file():
        return load_test_ids(path)
    return None


def _versions() -> Dict[str, str]:
    import platform

    import torch

    from galaxysd_core import __version__
    out = {"galaxysd_core": __version__, "torch": torch.__version__, "numpy": np.__version__,
           "python": platform.python_version()}
    for mod in ("torchmetrics", "scipy", "sklearn", "diffusers"):
        try:
            out[mod] = __import__(mod).__version__
        except ImportError:  # pragma: no cover
            pass
    return out


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
    clf, clf_source = _load_classifier(classifier)
    if test_ids is None:
        test_ids = _test_ids(clf_source)
    if real is not None and not isinstance(real, RealReference):
        real = RealReference.from_caches(list(real), max_real=config.max_real, priority_ids=test_ids)
    from galaxysd_core.pipelines.pipeline_galaxysd import load_pipeline

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
            "n_real": len(real.images) if real is not None else 0, "prompts": prompts, "versions": _versions(),
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
    records = _clean(result.table.to_dict("records"))
    paths["json"].write_text(json.dumps({"columns": list(result.table.columns), "rows": records}, indent=1) + "\n")
    paths["config"].write_text(json.dumps(_clean(result.meta), indent=2) + "\n")
    if result.benchmark is not None:
        paths["benchmark"] = out / BENCHMARK_NAME
        paths["benchmark"].write_text(json.dumps(result.benchmark, indent=2) + "\n")
    return paths


# ---------------------------------------------------------------------------------- checkpoints
_STEP_RE = re.compile(r"(\d+)$")


def find_checkpoints(folder: Union[str, Path]) -> List[Tuple[int, Path]]:
    """Loadable pipeline snapshots in a training folder, sorted by step.

    Looks at ``folder`` itself, its sub-folders and ``folder/snapshots/*`` for pipeline folders
    (with ``model_index.json``), e.g. ``snapshots/step-000500`` and ``model`` written by
    :func:`galaxysd_core.training.diffusion.train_diffusion` with ``save_snapshots``. The step is
    read from ``training_captions.json`` (``"step"``) or the trailing number of the folder name.
    accelerate ``checkpoint-<step>`` state folders are not pipelines and are skipped.
    """
    root = Path(folder)
    if not root.is_dir():
        raise GalaxySDFileError(f"checkpoint folder {str(root)!r} does not exist")
    candidates = [root, *sorted(p for p in root.iterdir() if p.is_dir())]
    if (root / "snapshots").is_dir():
        candidates += sorted(p for p in (root / "snapshots").iterdir() if p.is_dir())
    found: Dict[Path, int] = {}
    for p in candidates:
        if not (p / "model_index.json").is_file():
            continue
        step = None
        info = p / "training_captions.json"
        if info.is_file():
            try:
                step = json.loads(info.read_text()).get("step")
            except (json.JSONDecodeError, OSError):
                step = None
        if step is None:
            m = _STEP_RE.search(p.name)
            step = int(m.group(1)) if m else None
        if step is not None:
            found[p.resolve()] = int(step)
    if not found:
        raise GalaxySDFileError(
            f"no pipeline snapshots in {str(root)!r}; train with save_snapshots=True so that "
            f"snapshots/step-<N> folders (with model_index.json) are written")
    return sorted(((s, p) for p, s in found.items()), key=lambda t: (t[0], str(t[1])))


def evaluate_checkpoints(folder: Union[str, Path], prompts: Sequence[str], *,
                         config: Optional[EvaluationConfig] = None, classifier=None,
                         real: Optional[Union[RealReference, Sequence[Union[str, Path]]]] = None,
                         out_dir: Optional[Union[str, Path]] = None, progress: bool = True) -> EvaluationResult:
    """Metrics over training steps: :func:`evaluate` for every snapshot of :func:`find_checkpoints`.

    The table has a ``step`` column and a ``checkpoint`` column (folder); it is written as
    ``checkpoints.csv`` / ``checkpoints.json`` (plus the real benchmark) when ``out_dir`` is given.
    """
    import pandas as pd

    config = config or EvaluationConfig()
    clf, clf_source = _load_classifier(classifier)
    test_ids = _test_ids(clf_source)
    if real is not None and not isinstance(real, RealReference):
        real = RealReference.from_caches(list(real), max_real=config.max_real, priority_ids=test_ids)
    tables, bench, meta = [], None, {}
    ckpts = find_checkpoints(folder)
    for i, (step, path) in enumerate(ckpts):
        res = evaluate(path, prompts, config=config, classifier=clf, real=real, benchmark=(i == 0),
                       progress=progress, extra_columns={"step": step, "checkpoint": path.name},
                       test_ids=test_ids)
        tables.append(res.table)
        bench = bench or res.benchmark
        meta = res.meta
    meta.update(classifier=clf_source, checkpoints=[{"step": s, "path": str(p)} for s, p in ckpts],
                model=str(folder))
    result = EvaluationResult(table=pd.concat(tables, ignore_index=True), benchmark=bench, meta=meta)
    if out_dir is not None:
        write_results(result, out_dir, name="checkpoints")
    return result
