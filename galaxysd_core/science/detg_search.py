"""Search for dusty early-type galaxies (D-ETGs) with a detector trained on synthetic examples.

D-ETGs, smooth early-type galaxies crossed by a dust lane, are rare (the real data here has two
labelled examples among 6,750 galaxies). Following GalaxySD (Ma, Sun et al. 2025,
arXiv:2506.16233, Sec. 4), we

1. generate synthetic D-ETGs with feature-weighted prompts,
   ``"sdss, smooth, {completely round galaxy:1.3}, {dust lane:w}"``, sweeping the dust-lane weight
   ``w`` (default 1.0 ... 2.0) and the roundness phrase;
2. train a binary detector (the :class:`~galaxysd_core.models.classifier.MorphologyClassifier`
   architecture with one head, :func:`galaxysd_core.science.augmentation.train_binary`, balanced batches,
   flips/rotations) on the synthetic positives + the real dust-lane examples against real
   early-type (smooth) negatives;
3. scan every real galaxy image (:mod:`galaxysd_core.science.scan`, any engine) and write a ranked
   candidate catalog (CSV + ECSV with provenance) for vetting on the Candidates page.

Held-out test of the idea: each real dust-lane example in turn is left out of training
(leave-one-out), and its rank among all galaxies the detector did not train on is compared between
a detector trained *with* the synthetic positives and one trained *without* them (the other real
example only); a detector from synthetic positives alone (every real example held out) is
reported too. Ranks are repeated over detector seeds.

Caveat: the "negatives" are real smooth galaxies, some of which may themselves be unrecognised
D-ETGs (positive-unlabelled data); that biases scores down for exactly the galaxies sought, a
known limitation of any such search.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import pandas as pd

from galaxysd_core.science.augmentation import (DUST_LANE_COLUMN, BinaryTrainSettings, generate_cached, predict_scores, resize_images,
                           train_binary, versions)
from galaxysd_core.config import DATA_DIR_IMAGE_ROOT
from galaxysd_core.errors import GalaxySDDataError, GalaxySDValueError

__all__ = ["SearchConfig", "detg_prompt", "detg_prompts", "real_pool", "rank_among", "run_search", "write_catalog",
           "CATALOG_COLUMNS", "SMOOTH_COLUMN", "ARTIFACT_COLUMN"]

#: Required columns of the catalog read by the Candidates page (ra/dec optional).
CATALOG_COLUMNS = ("id", "score", "image_path")
SMOOTH_COLUMN = "t01_smooth_or_features_a01_smooth"
#: Star-or-artifact answer: bright stars, satellite trails and blank cutouts are not galaxies, and the
#: detector (which never saw them) can score them high.
ARTIFACT_COLUMN = "t01_smooth_or_features_a03_star_or_artifact"


def detg_prompt(shape: str, dust_weight: float, shape_weight: float = 1.3) -> str:
    """The D-ETG prompt ``"sdss, smooth, {<shape>:1.3}, {dust lane:<w>}"``."""
    return f"sdss, smooth, {{{shape}:{shape_weight:g}}}, {{dust lane:{dust_weight:g}}}"


@dataclass
class SearchConfig:
    """Settings of a D-ETG search (saved as provenance with the catalog).

    Attributes
    ----------
    shapes : list of str
        Roundness phrases of the early-type prompts.
    dust_weights : list of float
        Dust-lane weight sweep.
    shape_weight : float
        Weight of the roundness phrase.
    n_per_prompt : int
        Synthetic images per (shape, weight) prompt.
    synthetic_seed : int
        Seed of the first image of the first prompt (prompt ``k`` starts at ``seed + 1000 k``).
    guidance_scale, num_inference_steps : generation settings (DDIM).
    n_negatives : int
        Real smooth galaxies drawn as negatives per detector.
    detector : BinaryTrainSettings
        Detector training (balanced batches + flips by default).
    heldout_seeds : list of int
        Detector seeds of the leave-one-out evaluation.
    catalog_seed : int
        Seed of the detector that writes the catalog.
    top_n : int
        Rows of the catalog (highest scores among galaxies not used in training).
    """

    shapes: List[str] = field(default_factory=lambda: ["completely round galaxy", "in-between round galaxy"])
    dust_weights: List[float] = field(default_factory=lambda: [1.0, 1.25, 1.5, 1.75, 2.0])
    shape_weight: float = 1.3
    n_per_prompt: int = 32
    synthetic_seed: int = 20_000
    guidance_scale: float = 5.0
    num_inference_steps: int = 20
    n_negatives: int = 2000
    detector: BinaryTrainSettings = field(default_factory=lambda: BinaryTrainSettings(
        steps=250, batch_size=32, balanced=True, augment=True))
    heldout_seeds: List[int] = field(default_factory=lambda: [0, 1, 2])
    catalog_seed: int = 0
    top_n: int = 300

    def __post_init__(self) -> None:
        if isinstance(self.detector, Mapping):
            self.detector = BinaryTrainSettings(**dict(self.detector))
        if not self.shapes or not self.dust_weights:
            raise GalaxySDValueError("give at least one shape phrase and one dust-lane weight")
        if any(not 0.0 <= float(w) <= 3.0 for w in self.dust_weights):
            raise GalaxySDValueError(f"dust-lane weights must lie in [0, 3], got {self.dust_weights}")
        if self.n_per_prompt < 1 or self.n_negatives < 1 or self.top_n < 1:
            raise GalaxySDValueError("n_per_prompt, n_negatives and top_n must be positive")

    def to_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        d["detector"] = self.detector.to_dict()
        return d


def detg_prompts(config: SearchConfig) -> List[Tuple[str, float, str]]:
    """``(shape, dust weight, prompt)`` for every prompt of the sweep."""
    return [(s, float(w), detg_prompt(s, float(w), config.shape_weight)) for s in config.shapes
            for w in config.dust_weights]


def generate_detgs(pipe_factory: Callable[[], Any], config: SearchConfig, *, model_id: str,
                   cache_dir: Optional[Union[str, Path]], size: int = 64,
                   log: Callable[[str], None] = lambda m: None) -> Tuple[np.ndarray, pd.DataFrame, float]:
    """Synthetic D-ETGs of the whole sweep (cached). Returns images, a table (prompt, shape, weight, seed), seconds."""
    imgs, rows, seconds = [], [], 0.0
    for k, (shape, w, prompt) in enumerate(detg_prompts(config)):
        seed = config.synthetic_seed + 1000 * k
        arr, info = generate_cached(pipe_factory, prompt, config.n_per_prompt, seed=seed,
                                    guidance_scale=config.guidance_scale,
                                    num_inference_steps=config.num_inference_steps, cache_dir=cache_dir,
                                    model_id=model_id)
        seconds += info["seconds"]
        how = "cached" if info["cached"] else f"{info['seconds']:.0f} s"
        log(f"  {prompt}: {len(arr)} images ({how})")
        imgs.append(resize_images(arr, size))
        rows += [{"prompt": prompt, "shape": shape, "dust_weight": w, "seed": seed + i} for i in range(len(arr))]
    return np.concatenate(imgs), pd.DataFrame(rows), seconds


# ------------------------------------------------------------------------------------------- real data
def real_pool(cache_dirs: Sequence[Union[str, Path]],
              data: Optional[Tuple[np.ndarray, pd.DataFrame]] = None) -> Tuple[np.ndarray, pd.DataFrame]:
    """Images and index of the real galaxies (index completed with implied GZ1 negatives).

    Adds boolean columns ``is_dust_lane`` (a labelled dust-lane example) and ``is_etg`` (labelled
    smooth and not a dust-lane example: the negative pool). ``data`` = (images, index) replaces
    loading ``cache_dirs``.
    """
    from galaxysd_core.science.augmentation import _load_real

    images, index = data if data is not None else _load_real(cache_dirs)
    if index["id"].duplicated().any():
        raise GalaxySDDataError("duplicate ids across the caches; give each cache once")
    dust = index[DUST_LANE_COLUMN].to_numpy(dtype=float) == 1
    smooth = index[SMOOTH_COLUMN].to_numpy(dtype=float) == 1
    index = index.copy()
    index["is_dust_lane"] = dust
    index["is_etg"] = smooth & ~dust
    return images, index


def rank_among(scores: np.ndarray, target: int, exclude: Optional[np.ndarray] = None) -> int:
    """1-based rank of ``scores[target]`` (descending) among the rows not in ``exclude``.

    Ties count against the target (rank = 1 + number of other eligible rows with a score >= its score),
    so a detector that gives everything the same score ranks the target last, not first.
    """
    scores = np.asarray(scores, dtype=float)
    ok = np.ones(len(scores), dtype=bool)
    if exclude is not None:
        ok[np.asarray(exclude, dtype=int)] = False
    ok[target] = True
    others = ok.copy()
    others[target] = False
    return int(1 + np.sum(scores[others] >= scores[target]))


def _train(images_pos: np.ndarray, images_neg: np.ndarray, settings: BinaryTrainSettings):
    x = np.concatenate([images_pos, images_neg])
    y = np.concatenate([np.ones(len(images_pos)), np.zeros(len(images_neg))])
    return train_binary(x, y, settings, column=DUST_LANE_COLUMN)


def heldout_evaluation(images: np.ndarray, index: pd.DataFrame, synth: np.ndarray, config: SearchConfig, *,
                       p_smooth: Optional[np.ndarray] = None,
                       log: Callable[[str], None] = lambda m: None) -> pd.DataFrame:
    """Leave-one-out ranks of the real dust-lane examples, with and without synthetic positives.

    For every detector seed and every real dust-lane example ``h``:

    * ``synthetic+real``: synthetic + the other real examples (h never in training);
    * ``real only``: the other real examples only (no synthetic data);

    and once per seed ``synthetic only`` (every real example held out). Scores come from the
    prepared cache arrays, pixel-identical to scanning the files (see ``tests/test_scan.py``).
    Ranks are among all galaxies *not used to train that detector* (its negatives excluded).
    With ``p_smooth`` (the shipped classifier's early-type probability per image: smooth and not a
    star or artifact) the rank by the catalog's D-ETG score ``p_dust_lane * p_smooth`` is reported
    too (``rank_detg``).

    Returns
    -------
    pandas.DataFrame
        ``seed, detector, heldout_id, rank, n_ranked, score, percentile, [rank_detg],
        train_pos_real, train_pos_synthetic, train_neg``.
    """
    dust_idx = np.flatnonzero(index["is_dust_lane"].to_numpy())
    etg_idx = np.flatnonzero(index["is_etg"].to_numpy())
    if len(dust_idx) == 0:
        raise GalaxySDDataError("no labelled dust-lane example in the caches; nothing to hold out")
    ids = index["id"].astype(str).to_numpy()
    rows: List[Dict[str, Any]] = []
    for seed in config.heldout_seeds:
        rng = np.random.default_rng([seed, 31337])
        neg = rng.choice(etg_idx, size=min(config.n_negatives, len(etg_idx)), replace=False)
        st = replace(config.detector, seed=int(seed) * 1000 + 5)
        setups: List[Tuple[str, np.ndarray, bool, np.ndarray]] = []
        for h in dust_idx:
            others = np.array([d for d in dust_idx if d != h], dtype=int)
            setups.append(("synthetic+real", others, True, np.array([h])))
            if len(others):
                setups.append(("real only", others, False, np.array([h])))
        setups.append(("synthetic only", np.array([], dtype=int), True, dust_idx))
        for name, pos_real, with_synth, heldout in setups:
            pos = images[pos_real] if len(pos_real) else np.zeros((0,) + images.shape[1:], np.uint8)
            if with_synth:
                pos = np.concatenate([pos, synth])
            model, hist = _train(pos, images[neg], st)
            scores = predict_scores(model, images)
            exclude = np.concatenate([neg, pos_real]).astype(int)
            for h in heldout:
                r = rank_among(scores, int(h), exclude)
                n_ranked = len(scores) - len(exclude)
                extra = {}
                if p_smooth is not None:
                    extra["rank_detg"] = rank_among(scores * p_smooth, int(h), exclude)
                rows.append({"seed": int(seed), "detector": name, "heldout_id": ids[h], "rank": r,
                             "n_ranked": int(n_ranked), "score": float(scores[h]),
                             "percentile": 100.0 * (1 - (r - 1) / max(1, n_ranked - 1)), **extra,
                             "train_pos_real": int(len(pos_real)),
                             "train_pos_synthetic": int(len(synth)) if with_synth else 0,
                             "train_neg": int(len(neg)), "train_s": hist["wall_time_s"]})
                log(f"  seed {seed} {name:<15} held out {ids[h]}: rank {r} of {n_ranked} (score {scores[h]:.3f})")
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------------- catalog
def relative_image_path(path: str, data_dir: Optional[Union[str, Path]]) -> str:
    """``path`` relative to the real-data folder when it lies inside it (catalogs never hold
    machine-specific absolute paths to real data), else unchanged."""
    if not data_dir:
        return str(path)
    try:
        rel = os.path.relpath(os.path.abspath(path), os.path.abspath(str(data_dir)))
    except ValueError:  # other drive on Windows
        return str(path)
    return str(path) if rel.startswith("..") else rel.replace(os.sep, "/")


def write_catalog(table: pd.DataFrame, out_dir: Union[str, Path], provenance: Mapping[str, Any],
                  name: str = "candidates") -> Dict[str, str]:
    """Write ``<name>.csv`` and ``<name>.ecsv`` (Astropy ECSV, provenance in the metadata).

    ``table`` must have ``id``, ``score``, ``image_path``; it is written sorted by score (descending).
    """
    from astropy.table import Table

    from galaxysd_core.models.classifier import _jsonable

    missing = [c for c in CATALOG_COLUMNS if c not in table.columns]
    if missing:
        raise GalaxySDDataError(f"catalog lacks columns {missing}")
    t = table.sort_values(["score", "id"], ascending=[False, True], kind="stable").reset_index(drop=True)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t.to_csv(out / f"{name}.csv", index=False, float_format="%.6g")
    at = Table.from_pandas(t)
    at.meta.update(json.loads(json.dumps(_jsonable(dict(provenance)), default=str)))  # plain types for YAML
    at.meta["image_root"] = DATA_DIR_IMAGE_ROOT  # read_candidates resolves image_path against $GALAXYSD_DATA_DIR
    at.meta["comments"] = ["GalaxySD D-ETG candidates: score = detector probability of a dust lane in an "
                           "early-type galaxy; image_path is relative to $GALAXYSD_DATA_DIR."]
    at.write(out / f"{name}.ecsv", format="ascii.ecsv", overwrite=True)
    return {"csv": str(out / f"{name}.csv"), "ecsv": str(out / f"{name}.ecsv")}


def synthetic_preview(synth: np.ndarray, table: pd.DataFrame, path: Union[str, Path], per_row: int = 8,
                      scale: int = 2) -> Path:
    """PNG grid of synthetic D-ETGs, one row per prompt (synthetic images only; never real ones)."""
    from PIL import Image, ImageDraw

    prompts = list(dict.fromkeys(table["prompt"]))
    s = synth.shape[1] * scale
    label_w = 330
    img = Image.new("RGB", (label_w + per_row * s, len(prompts) * s), "black")
    d = ImageDraw.Draw(img)
    for r, p in enumerate(prompts):
        idx = np.flatnonzero(table["prompt"].to_numpy() == p)[:per_row]
        d.text((4, r * s + s // 2 - 6), p.replace("sdss, smooth, ", ""), fill="white")
        for c, i in enumerate(idx):
            tile = Image.fromarray(synth[i]).resize((s, s), Image.Resampling.NEAREST)
            img.paste(tile, (label_w + c * s, r * s))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path


def run_search(cache_dirs: Sequence[Union[str, Path]], config: SearchConfig, *,
               pipe_factory: Callable[[], Any], model_id: str, model_path: str,
               synthetic_cache: Optional[Union[str, Path]], out_dir: Union[str, Path],
               data_dir: Optional[Union[str, Path]] = None, engine: str = "local",
               scan_kwargs: Optional[Mapping[str, Any]] = None, heldout: bool = True, judge=None,
               log: Callable[[str], None] = print,
               data: Optional[Tuple[np.ndarray, pd.DataFrame]] = None) -> Dict[str, Any]:
    """Generate, train, scan, rank; write the catalog, detector, held-out ranks and provenance.

    Returns a dict with ``catalog`` (the written rows), ``scan`` (the full scan table),
    ``heldout`` (DataFrame or None), ``provenance`` and ``files``.
    """
    from galaxysd_core.models.classifier import _jsonable
    from galaxysd_core.science.scan import records_from_index, scan

    t0 = time.perf_counter()
    out = Path(out_dir)
    images, index = real_pool(cache_dirs, data)
    size = int(images.shape[1])
    log(f"generating synthetic D-ETGs ({len(config.shapes) * len(config.dust_weights)} prompts x "
        f"{config.n_per_prompt})")
    synth, synth_table, gen_s = generate_detgs(pipe_factory, config, model_id=model_id, cache_dir=synthetic_cache,
                                               size=size, log=log)
    sweep = synth_table.groupby(["shape", "dust_weight"], sort=False).size().rename("n").reset_index()
    if judge is not None:
        probs = judge.predict_proba(synth).numpy()
        for col, name in ((SMOOTH_COLUMN, "judged_smooth"), ("t02_edgeon_a04_yes", "judged_edge_on")):
            k = judge.head_index(col)
            if k is not None:
                synth_table[name] = probs[:, k] >= 0.5
        if "judged_smooth" in synth_table:
            agg = synth_table.groupby(["shape", "dust_weight"], sort=False)[
                [c for c in ("judged_smooth", "judged_edge_on") if c in synth_table]].mean().reset_index()
            sweep = sweep.merge(agg, on=["shape", "dust_weight"])

    dust_idx = np.flatnonzero(index["is_dust_lane"].to_numpy())
    etg_idx = np.flatnonzero(index["is_etg"].to_numpy())
    rng = np.random.default_rng([config.catalog_seed, 31337])
    neg = rng.choice(etg_idx, size=min(config.n_negatives, len(etg_idx)), replace=False)
    st = replace(config.detector, seed=int(config.catalog_seed) * 1000 + 5)
    log(f"training the catalog detector: {len(synth)} synthetic + {len(dust_idx)} real positives, "
        f"{len(neg)} real early-type negatives")
    detector, hist = _train(np.concatenate([images[dust_idx], synth]), images[neg], st)
    train_members = np.zeros(len(index), dtype=bool)
    train_members[neg] = True
    train_members[dust_idx] = True

    records = records_from_index(index)
    log(f"scanning {len(records)} real galaxies (engine {engine})")
    res = scan(records, detector, engine=engine, **dict(scan_kwargs or {}))
    full = res.table.copy()
    full["used_in_training"] = train_members
    full["known_caption"] = index["caption"].to_numpy()
    full["image_path"] = [relative_image_path(p, data_dir) for p in full["file"]]
    # D-ETG score: the detector's dust-lane probability times the shipped morphology classifier's
    # probability that the galaxy is smooth (early type), so dusty discs and spirals (dust lanes are
    # common there and the detector never saw them as negatives) do not crowd the list. The smooth
    # probability comes from the prepared cache images, pixel-identical to the scanned ones.
    full["p_dust_lane"] = full["score"]
    p_smooth = p_etg = None
    if judge is not None and judge.head_index(SMOOTH_COLUMN) is not None:
        probs = judge.predict_proba(images).numpy().astype(float)
        p_smooth = probs[:, judge.head_index(SMOOTH_COLUMN)]
        full["p_smooth"] = p_smooth
        p_etg = p_smooth
        score_definition = "p_dust_lane (detector) * p_smooth (shipped morphology classifier)"
        if judge.head_index(ARTIFACT_COLUMN) is not None:
            p_artifact = probs[:, judge.head_index(ARTIFACT_COLUMN)]
            full["p_artifact"] = p_artifact
            p_etg = p_smooth * (1.0 - p_artifact)
            score_definition += " * (1 - p_artifact) (its star-or-artifact head)"
        full["score"] = full["p_dust_lane"] * p_etg
    else:
        score_definition = "p_dust_lane (detector)"
    ok = (full["skip_reason"] == "") & ~full["used_in_training"]
    cand = full[ok].sort_values(["score", "id"], ascending=[False, True], kind="stable").head(config.top_n)
    cand = cand.assign(rank=np.arange(1, len(cand) + 1))
    for col in ("ra", "dec"):
        if col in index.columns:
            cand[col] = index.set_index("id").loc[cand["id"], col].to_numpy()
    catalog = cand[["id", "score", "rank", "image_path", "p_dust_lane"]
                   + [c for c in ("p_smooth", "p_artifact") if c in full.columns] + ["source", "known_caption"]
                   + [c for c in ("ra", "dec") if c in cand.columns]].reset_index(drop=True)

    held = None
    if heldout:
        log("held-out evaluation (leave one real dust-lane example out; with vs without synthetic data)")
        held = heldout_evaluation(images, index, synth, config, p_smooth=p_etg, log=log)

    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    provenance = {
        "created_utc": created,
        "detector": {"architecture": "MorphologyClassifier (one head)", "training": st.to_dict(),
                     "n_synthetic_positives": int(len(synth)), "n_real_positives": int(len(dust_idx)),
                     "real_positive_ids": index["id"].iloc[dust_idx].astype(str).tolist(),
                     "n_negatives": int(len(neg)), "negatives": "real smooth (early-type) galaxies, random sample",
                     "final_loss": hist["loss"][-1], "train_s": hist["wall_time_s"]},
        "generator": {"model": model_path, "model_id": model_id,
                      "prompts": [p for _, _, p in detg_prompts(config)],
                      "dust_weights": list(map(float, config.dust_weights)), "shapes": list(config.shapes),
                      "seeds": f"prompt k: {config.synthetic_seed} + 1000 k + i, i < {config.n_per_prompt}",
                      "guidance_scale": config.guidance_scale, "num_inference_steps": config.num_inference_steps,
                      "scheduler": "ddim", "negative_prompt": "the pipeline's automatic GZ2-tree negative prompt"},
        "scan": {"engine": engine, "n_scanned": int(len(full)), "n_skipped": int(res.n_skipped),
                 "galaxies_per_s": res.rate, "seconds": res.seconds,
                 **{k: v for k, v in res.info.items() if k not in ("engine",)}},
        "catalog": {"rows": int(len(catalog)), "excluded": "galaxies used to train the detector",
                    "score": score_definition,
                    "image_paths": "relative to $GALAXYSD_DATA_DIR (the real-data folder)"},
        "search_config": config.to_dict(),
        "caches": [str(c) for c in cache_dirs],
        "versions": versions(),
        "wall_time_s": time.perf_counter() - t0,
        "generation_s": gen_s,
    }
    files = write_catalog(catalog, out, provenance)
    detector.save_pretrained(out / "detector", extra_config={"purpose": "D-ETG detector", **_jsonable(provenance)},
                             card=_detector_card(provenance))
    files["detector"] = str(out / "detector")
    sweep.to_csv(out / "synthetic_sweep.csv", index=False, float_format="%.4f")
    files["sweep"] = str(out / "synthetic_sweep.csv")
    files["preview"] = str(synthetic_preview(synth, synth_table, out / "synthetic_detgs.png"))
    if held is not None:
        held.to_csv(out / "heldout_ranks.csv", index=False, float_format="%.5g")
        files["heldout"] = str(out / "heldout_ranks.csv")
        provenance["heldout_summary"] = summarize_heldout(held).to_dict("records")
    provenance["wall_time_s"] = time.perf_counter() - t0
    (out / "provenance.json").write_text(json.dumps(_jsonable(provenance), indent=2) + "\n")
    files["provenance"] = str(out / "provenance.json")
    return {"catalog": catalog, "scan": full, "heldout": held, "provenance": provenance, "files": files,
            "sweep": sweep}


def summarize_heldout(held: pd.DataFrame) -> pd.DataFrame:
    """Median / mean / std / best / worst rank per detector and held-out example, over seeds."""
    g = held.groupby(["detector", "heldout_id"], sort=False)
    aggs = dict(n_seeds=("seed", "nunique"), rank_median=("rank", "median"), rank_mean=("rank", "mean"),
                rank_std=("rank", "std"), rank_best=("rank", "min"), rank_worst=("rank", "max"),
                n_ranked=("n_ranked", "first"), score_mean=("score", "mean"))
    if "rank_detg" in held.columns:
        aggs.update(rank_detg_median=("rank_detg", "median"), rank_detg_best=("rank_detg", "min"),
                    rank_detg_worst=("rank_detg", "max"))
    return g.agg(**aggs).reset_index()


def _detector_card(prov: Mapping[str, Any]) -> str:
    d, g = prov["detector"], prov["generator"]
    return "\n".join([
        "# D-ETG detector (GalaxySD synthetic positives)", "",
        "One-head `MorphologyClassifier` scoring 'dust lane in an early-type galaxy'. Trained on "
        f"{d['n_synthetic_positives']} synthetic D-ETGs from `{g['model']}` (`{g['model_id']}`) and "
        f"{d['n_real_positives']} real dust-lane examples against {d['n_negatives']} real smooth galaxies.",
        "", "Prompts: " + "; ".join(f"`{p}`" for p in g["prompts"]), "",
        f"Created {prov['created_utc']}. See `../README.md` for the held-out test and limitations.", ""])
