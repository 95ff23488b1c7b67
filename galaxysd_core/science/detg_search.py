"""Search for dusty early-type galaxies (D-ETGs) with a detector trained on synthetic examples.

D-ETGs, smooth early-type galaxies crossed by a dust lane, are rare (the real data here has two
labelled examples among 6,750 galaxies). Following GalaxySD (Ma, Sun et al. 2025,
arXiv:2506.16233, Sec. 4), :func:`run_search`

1. generates synthetic D-ETGs with feature-weighted prompts,
   ``"sdss, smooth, {completely round galaxy:1.3}, {dust lane:w}"``, sweeping the dust-lane weight
   ``w`` (default 1.0 ... 2.0) and the roundness phrase (:mod:`galaxysd_core.science.detg_config`);
2. trains a binary detector (:func:`galaxysd_core.science.detg_heldout.train_detector`: the
   :class:`~galaxysd_core.models.classifier.MorphologyClassifier` architecture with one head,
   balanced batches, flips/rotations) on the synthetic positives + the real dust-lane examples
   against real early-type (smooth) negatives;
3. scans every real galaxy image (:mod:`galaxysd_core.science.scan`, any engine) and writes a ranked
   candidate catalog (:mod:`galaxysd_core.science.detg_catalog`: CSV + ECSV with provenance) for
   vetting on the Candidates page;
4. runs the leave-one-out held-out test (:mod:`galaxysd_core.science.detg_heldout`).

This module owns the generation of the sweep (:func:`generate_detgs`, :func:`synthetic_preview`),
the real galaxy pool (:func:`real_pool`) and :func:`run_search` with the files it writes.

Caveat: the "negatives" are real smooth galaxies, some of which may themselves be unrecognised
D-ETGs (positive-unlabelled data); that biases scores down for exactly the galaxies sought, a
known limitation of any such search.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import pandas as pd

from galaxysd_core._utils import jsonable, library_versions, resize_images
from galaxysd_core.errors import GalaxySDDataError
from galaxysd_core.science.binary_tasks import DUST_LANE_COLUMN, load_labelled_caches
from galaxysd_core.science.detg_catalog import relative_image_path, write_catalog
from galaxysd_core.science.detg_config import ARTIFACT_COLUMN, SMOOTH_COLUMN, SearchConfig, detg_prompts
from galaxysd_core.science.detg_heldout import heldout_evaluation, summarize_heldout, train_detector
from galaxysd_core.science.synthetic import generate_cached

__all__ = ["generate_detgs", "real_pool", "synthetic_preview", "run_search"]

logger = logging.getLogger(__name__)


def generate_detgs(pipe_factory: Callable[[], Any], config: SearchConfig, *, model_id: str,
                   cache_dir: Optional[Union[str, Path]], size: int = 64,
                   log: Callable[[str], None] = logger.debug) -> Tuple[np.ndarray, pd.DataFrame, float]:
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


def real_pool(cache_dirs: Sequence[Union[str, Path]],
              data: Optional[Tuple[np.ndarray, pd.DataFrame]] = None) -> Tuple[np.ndarray, pd.DataFrame]:
    """Images and index of the real galaxies (index completed with implied GZ1 negatives).

    Adds boolean columns ``is_dust_lane`` (a labelled dust-lane example) and ``is_etg`` (labelled
    smooth and not a dust-lane example: the negative pool). ``data`` = (images, index) replaces
    loading ``cache_dirs``.
    """
    images, index = data if data is not None else load_labelled_caches(cache_dirs)
    if index["id"].duplicated().any():
        raise GalaxySDDataError("duplicate ids across the caches; give each cache once")
    dust = index[DUST_LANE_COLUMN].to_numpy(dtype=float) == 1
    smooth = index[SMOOTH_COLUMN].to_numpy(dtype=float) == 1
    index = index.copy()
    index["is_dust_lane"] = dust
    index["is_etg"] = smooth & ~dust
    return images, index


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
               log: Callable[[str], None] = logger.info,
               data: Optional[Tuple[np.ndarray, pd.DataFrame]] = None) -> Dict[str, Any]:
    """Generate, train, scan, rank; write the catalog, detector, held-out ranks and provenance.

    Parameters
    ----------
    cache_dirs : sequence of path
        Prepared caches of the real galaxies (their index lists the image files to scan).
    config : SearchConfig
    pipe_factory, model_id, model_path :
        The generator (:func:`galaxysd_core.science.synthetic.generator_factory`).
    synthetic_cache : path or None
        Folder of the synthetic-image cache.
    out_dir : path
        Where the catalog, detector, sweep, preview, held-out ranks and provenance go.
    data_dir : path, optional
        Real-data folder; catalog image paths inside it are written relative to it.
    engine, scan_kwargs :
        Scan engine and further arguments of :func:`galaxysd_core.science.scan.scan`.
    heldout : bool
        Run the leave-one-out test (:func:`galaxysd_core.science.detg_heldout.heldout_evaluation`).
    judge : MorphologyClassifier, optional
        The shipped classifier: judges the synthetic images and supplies ``p_smooth`` /
        ``p_artifact`` of the D-ETG score.
    log : callable
        Progress messages.
    data : (images, index), optional
        Real images and index instead of ``cache_dirs``.

    Returns
    -------
    dict
        ``catalog`` (the written rows), ``scan`` (the full scan table), ``heldout`` (DataFrame or
        None), ``provenance``, ``files`` and ``sweep``.
    """
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
    detector, hist = train_detector(np.concatenate([images[dust_idx], synth]), images[neg], st)
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
        "versions": library_versions(),
        "wall_time_s": time.perf_counter() - t0,
        "generation_s": gen_s,
    }
    files = write_catalog(catalog, out, provenance)
    detector.save_pretrained(out / "detector", extra_config={"purpose": "D-ETG detector", **jsonable(provenance)},
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
    (out / "provenance.json").write_text(json.dumps(jsonable(provenance), indent=2) + "\n")
    files["provenance"] = str(out / "provenance.json")
    return {"catalog": catalog, "scan": full, "heldout": held, "provenance": provenance, "files": files,
            "sweep": sweep}


def _detector_card(prov: Mapping[str, Any]) -> str:
    d, g = prov["detector"], prov["generator"]
    return "\n".join([
        "# D-ETG detector (GalaxySD synthetic positives)", "",
        "One-head `MorphologyClassifier` scoring 'dust lane in an early-type galaxy'. Trained on "
        f"{d['n_synthetic_positives']} synthetic D-ETGs from `{g['model']}` (`{g['model_id']}`) and "
        f"{d['n_real_positives']} real dust-lane examples against {d['n_negatives']} real smooth galaxies.",
        "", "Prompts: " + "; ".join(f"`{p}`" for p in g["prompts"]), "",
        f"Created {prov['created_utc']}. See `../README.md` for the held-out test and limitations.", ""])
