"""Model card (README.md) of a trained GalaxySD model folder, written from the files of its run.

Sources: ``training_captions.json`` (what the model saw), ``train_config.yaml``, the run's
``train_log.jsonl`` (wall time, losses, VAE latent normalisation), ``generation_defaults.json`` and
``sky_noise.json``, and the tables the release (:mod:`galaxysd_core.evaluation.release`) writes into
``<model>/metrics/``, checked against the goals they state. Nothing is typed in by hand: a missing
table leaves its section out.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import pandas as pd
import yaml

from galaxysd_core.evaluation.quality_bar import consistency_gap, quality_bar_status
from galaxysd_core.pipelines.model_folder import TRAINING_CAPTIONS_FILE

#: Below this many training captions a feature is marked "rarely seen" (the app uses the same mark).
RARE_CAPTIONS = 30
#: Commands that produce the numbers of the card (quoted in it).
COMMANDS = {
    "release": "python train/finalize_model.py --run runs/galaxysd-mini-v2 --out assets/galaxysd-mini "
               "--caches cache/gz2_cutouts_128 cache/gz1_sdss_128 cache/gz2_examples_128 -n 64 --n-sweep 24 "
               "--n-checkpoints 24 --bench-file runs/bench_generate.txt --notes-file train/notes/galaxysd-mini-v2.md",
    "train": "python train/train_diffusion.py --config runs/galaxysd-mini-v2/config.yaml  # = train_config.yaml",
    "bench": "python bench/bench_generate.py --model assets/galaxysd-mini > runs/bench_generate.txt",
    "vae_channels": "python bench/bench_vae_checkpoints.py --runs runs/vae-c4 runs/vae-c8 --step 600 "
                    "--cache cache/gz2_cutouts_128 --out assets/galaxysd-mini/metrics/vae_channels.json  # two "
                    "--stage vae runs, latent_channels 4 and 8",
}


def training_wall_time(log: Sequence[dict]) -> Dict[str, float]:
    """Wall time of a run that may span several processes (killed and resumed, or continued).

    Each process starts its log with a ``data`` event and stamps later rows with ``wall_s``
    (seconds since that process started, data loading included); the run's wall time is the sum
    over processes of their last ``wall_s``. Time between a process's last row and its death is
    not logged, so this is a lower bound by at most one logging interval per process.

    Returns
    -------
    dict
        ``total_s``, ``processes`` and ``unet_s`` (wall time of the processes that trained the UNet).
    """
    segments: List[List[dict]] = []
    for row in log:
        if row.get("event") == "data" or not segments:
            segments.append([])
        segments[-1].append(row)
    total = unet = 0.0
    for seg in segments:
        walls = [float(r["wall_s"]) for r in seg if "wall_s" in r]
        if not walls:
            continue
        total += max(walls)
        if any(r.get("event") in ("train", "done") for r in seg):
            unet += max(walls)
    return {"total_s": total, "processes": float(len(segments)), "unet_s": unet}


def _fmt(v, digits: int = 3) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.{digits}f}"
    return str(v)


def _md_table(df: pd.DataFrame, columns: Sequence[str], digits: int = 3) -> str:
    cols = [c for c in columns if c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in df[cols].iterrows():
        lines.append("| " + " | ".join(_fmt(r[c], digits) for c in cols) + " |")
    return "\n".join(lines)


def _read_csv(path: Path) -> Optional[pd.DataFrame]:
    return pd.read_csv(path) if path.is_file() else None


def _read_json(path: Path) -> Optional[dict]:
    return json.loads(path.read_text()) if path.is_file() else None


def _section_data(info: dict, cfg: dict, vae_done: dict, metrics: Path) -> List[str]:
    m = cfg.get("model", {})
    res, ch = m.get("resolution"), m.get("vae_channels") or []
    down = 2 ** (len(ch) - 1) if ch else math.nan
    lat = res // down if isinstance(res, int) and ch else "?"
    out = ["## Architecture", "",
           f"- images {res}x{res} RGB; VAE (AutoencoderKL) channels {ch}: {down}x downsampling to a "
           f"{lat}x{lat}x{m.get('latent_channels')} latent; latent shift {_fmt(vae_done.get('shift_factor', math.nan))}, "
           f"scale {_fmt(vae_done.get('scaling_factor', math.nan))}",
           f"- UNet channels {m.get('unet_channels')}, blocks {m.get('unet_down_blocks')} (cross-attention at the "
           f"two coarsest levels only), {m.get('unet_heads')} heads",
           f"- CLIP text encoder: {m.get('text_layers')} layers, width {m.get('text_hidden')}, max "
           f"{m.get('max_length')} tokens, vocabulary = GZ2 caption words", ""]
    choice = _read_json(metrics / "vae_channels.json")
    if choice:
        out += ["Latent channels, chosen by measurement (same data, same settings, 600 VAE steps each, 400 held-out GZ2 cutouts; "
                f"`{COMMANDS['vae_channels']}`):", "",
                _md_table(pd.DataFrame(choice["rows"]), list(choice["rows"][0].keys())), "", choice.get("reading", ""), ""]
    rec = _read_json(metrics / "reconstruction.json")
    if rec:
        out += ["## What survives the VAE (held-out real galaxies)", "",
                f"{rec['n']} held-out galaxies (the classifier's test split, never trained on): PSNR "
                f"**{rec['psnr_db']:.2f} dB** ({rec['psnr_db_blur3']:.2f} dB after a 3x3 blur of both, i.e. without "
                "the pixel noise the VAE drops and the pipeline adds back). Classifier heads on reconstructions "
                "vs originals (ROC AUC against the volunteers' caption truth):", "",
                _md_table(pd.DataFrame(rec["heads"]), ["feature", "positives", "auc_original", "auc_reconstructed",
                                                        "mean_abs_diff", "label_agreement"]), ""]
        d = rec.get("dust_lane")
        if d:
            out += [f"Dust-lane signal (predicted fraction of volunteers marking a dust lane): correlation "
                    f"originals vs reconstructions {d['corr']:.2f}, mean {d['mean_original']:.4f} -> "
                    f"{d['mean_reconstructed']:.4f}.", ""]
    out += ["## Training data", "",
            f"- {info.get('n_images')} real galaxies from the prepared caches {cfg.get('caches')} (the classifier's "
            f"held-out test galaxies excluded: `exclude_ids_from: {cfg.get('exclude_ids_from')}`); flips and "
            f"90-degree rotations; tags shuffled; caption dropout {cfg.get('caption_dropout')}, tag dropout "
            f"{cfg.get('tag_dropout', 0)}",
            "- captions from the volunteers' GZ2 votes (gz2_cutouts: tasks t01-t09) and GZ1 classes "
            "(`galaxysd_core.schema.captioning`); roundness of GZ1 smooth galaxies derived from image moments "
            "(`galaxysd_core.data.pseudo_labels`): "
            + ", ".join(f"{k} {v}" for k, v in (info.get("derived_feature_counts") or {}).items()), "",
            f"Caption features seen in training (captions containing each; **rarely seen** = fewer than "
            f"{RARE_CAPTIONS}: prompting them extrapolates):", ""]
    counts = info.get("feature_counts", {})
    out += ["| feature | captions | |", "|---|---:|---|"]
    out += [f"| {k} | {v} | {'rarely seen' if v < RARE_CAPTIONS else ''} |" for k, v in counts.items() if v]
    unseen = [k for k, v in counts.items() if not v]
    out += ["", f"Never seen in training: {', '.join(unseen) or 'none'}.", ""]
    return out


def _section_defaults(model_dir: Path, metrics: Path) -> List[str]:
    d = _read_json(model_dir / "generation_defaults.json")
    front = _read_csv(metrics / "pareto.csv")
    if not d or front is None:
        return []
    src = d.get("source", {})
    out = ["## Recommended settings (chosen from the measured front)", "",
           f"**guidance {d['guidance_scale']:g}, {'automatic GZ2-tree negative prompt' if d['tree_negatives'] else 'plain guidance (no negative prompt)'}"
           f", {d['num_inference_steps']} DDIM steps, sky noise {'on' if d.get('sky_noise') else 'off'}** — "
           "saved as `generation_defaults.json`, which the pipeline (`guidance_scale=None`), `galaxysd generate` "
           f"and the app use. Rule: {src.get('rule', '')}"
           + ("" if src.get("meets_goals", True) else " (**the realism/diversity goals are not met at any setting**)")
           + ".", "",
           "Every setting (means over the evaluated prompts; front = not beaten on precision, recall and "
           "consistency at once; GalaxySD Fig. 5):", "",
           _md_table(front, ["tree_negatives", "guidance", "precision", "recall", "min_recall", "consistency",
                             "on_front", "meets_goals", "chosen"]), "",
           "![front](metrics/front.png)", ""]
    return out


def _section_at_defaults(metrics: Path) -> List[str]:
    table = _read_csv(metrics / "evaluation.csv")
    if table is None:
        return []
    bench = _read_json(metrics / "real_benchmark.json") or {}
    bench_cons = (bench.get("consistency_on_real") or {}).get("consistency")
    rvr = bench.get("real_vs_real") or {}
    t = table.copy()
    t["recall>=0.6"] = t["recall"] >= 0.6
    t["precision>=0.6"] = t["precision"] >= 0.6
    out = ["## Realism, diversity and consistency at the recommended settings", "",
           "Precision (realism) and recall (diversity) (Kynkaanniemi et al. 2019), density/coverage (Naeem et al. "
           "2020), Frechet distance and KID, all in the classifier's embedding space (not Inception), against real "
           "galaxies with the same caption (held-out first). Goals: precision and recall >= 0.6 per prompt.", "",
           _md_table(t, ["base_prompt", "n", "consistency", "precision", "recall", "precision>=0.6", "recall>=0.6",
                         "coverage", "domain_fd", "domain_kid", "n_real"]), ""]
    if rvr:
        out += [f"Floor at this sample size (two disjoint samples of {rvr.get('sample_size')} real galaxies): FD "
                f"{_fmt(rvr.get('domain_fd', math.nan))}, KID {_fmt(rvr.get('domain_kid', math.nan))}, precision "
                f"{_fmt(rvr.get('precision', math.nan))}, recall {_fmt(rvr.get('recall', math.nan))}.", ""]
    if bench_cons is not None:
        out += quality_bar_status(table.assign(guidance=table["guidance"].astype(float)), bench_cons,
                                  "quality bar at the defaults")
        gap = consistency_gap(table, bench_cons).iloc[0]
        out += ["", f"Mean consistency {gap['consistency']:.3f} vs real galaxies {bench_cons:.3f}: gap "
                f"{gap['gap']:+.3f} ({'within' if gap['within_0.1'] else 'outside'} 0.1).", ""]
    return out


def _section_features(metrics: Path) -> List[str]:
    from galaxysd_core.evaluation.feature_effects import summarize_dust_sweep

    out: List[str] = []
    fx = _read_csv(metrics / "feature_effects.csv")
    if fx is not None and not fx.empty:
        goal = fx[fx["goal"]]
        out += ["## Does every feature move the image? (paired seeds, classifier judge)", "",
                f"Same seeds with and without the feature, {int(fx['n'].iloc[0])} images per side; delta = "
                "p(feature | on) - p(feature | off); goal delta >= 0.3 for the first block. "
                f"**{int(goal['passes'].sum())} of {len(goal)} goal features pass**"
                + (f"; short: {', '.join(goal.loc[~goal['passes'], 'feature'])}" if (~goal["passes"]).any() else "")
                + ".", "", _md_table(fx, ["feature", "on", "off", "p_on", "p_off", "delta", "goal", "passes"]), ""]
    dust = _read_csv(metrics / "dust_sweep.csv")
    if dust is not None:
        out += ["### Dust-lane extrapolation on a smooth in-between galaxy (GalaxySD's D-ETG prompt)", "",
                "`p_dust`: the classifier's majority-gated probability of a dust-lane vote (it has no dust-lane "
                "head: fewer than 30 majority examples); `dust_fraction`: predicted fraction of volunteers "
                "marking a dust lane. Goal: p_dust rises with the weight while p(smooth) stays >= 0.5.", "",
                _md_table(dust, ["weight", "prompt", "p_dust", "dust_fraction", "p_smooth", "rises", "smooth_ok"], 4),
                "", summarize_dust_sweep(dust) or "", "", "![dust sweep](dust_sweep.png)", ""]
    return out


def _section_background(metrics: Path) -> List[str]:
    bg = _read_json(metrics / "background.json")
    if not bg:
        return []
    rows = []
    for name in [k for k in bg if k not in ("bins", "histograms")]:
        r = bg[name]
        rows.append({"set": name, "n": r["n_images"], "level R,G,B": ", ".join(f"{v:.1f}" for v in r["level"]),
                     "noise R,G,B": ", ".join(f"{v:.2f}" for v in r["sigma"]),
                     "lag-1 corr": ", ".join(f"{v:.2f}" for v in r["lag1"]),
                     "histogram TV": r.get("histogram_tv", 0.0)})
    return ["## Sky background and pixel values", "",
            "Frame (outer 1/8 of each side) statistics in 8-bit units: median level, clipped noise sigma, lag-1 "
            "correlation; TV = total-variation distance of the pixel histogram to the real one. The pipeline adds "
            "the sky noise an 8x VAE cannot keep (`sky_noise.json`, measured on held-out real cutouts minus their "
            "reconstructions). Sampling starts around the mean training latent (`latent_mean.safetensors`, "
            "`galaxysd_core/pipelines/latent_mean.py`): with SD's schedule the last timestep keeps signal, so a "
            "zero-mean start asks for a medium-grey image and the sky comes out over-bright (Lin et al. 2024); the "
            "'zero-mean start' row is the same model without it. GalaxySD's img2img remedy for over-bright samples "
            "stays available (`--init-image`).",
            "", _md_table(pd.DataFrame(rows), list(rows[0].keys())), "", "![histograms](metrics/pixel_histograms.png)", ""]


def _section_training(metrics: Path) -> List[str]:
    tm = _read_csv(metrics / "training_metrics.csv")
    if tm is None or tm.empty:
        return []
    tm = tm.sort_values("step")
    fd = tm["domain_fd"].to_numpy()
    trend = ("falls" if fd[-1] < fd[0] else "does not fall") + f" ({fd[0]:.1f} -> {fd[-1]:.1f})"
    return ["## Metrics over training (every snapshot, at the recommended settings)", "",
            f"Means over the quality-bar prompts. The Frechet distance to real galaxies {trend} over training.", "",
            _md_table(tm, list(tm.columns)), "", "![training](metrics/training_curves.png)", ""]


def write_model_card(model_dir: str | Path, run_dir: Optional[str | Path] = None,
                     bench_text: Optional[str] = None, notes: Sequence[str] = ()) -> Path:
    """Write ``model_dir/README.md`` from the files named in the module docstring; returns its path."""
    model_dir = Path(model_dir)
    metrics = model_dir / "metrics"
    info = json.loads((model_dir / TRAINING_CAPTIONS_FILE).read_text())
    cfg = yaml.safe_load((model_dir / "train_config.yaml").read_text()) or {}
    log: List[dict] = []
    if run_dir and (Path(run_dir) / "train_log.jsonl").is_file():
        log = [json.loads(x) for x in (Path(run_dir) / "train_log.jsonl").read_text().splitlines() if x.strip()]
    vae_done = next((r for r in reversed(log) if r.get("stage") == "vae" and r.get("done")), {})
    losses = [r for r in log if r.get("event") == "train"]
    wall = training_wall_time(log)
    out: List[str] = ["# GalaxySD-mini", "",
                      "A small text-to-galaxy latent diffusion model with the component types of Stable Diffusion 1.5 "
                      "(AutoencoderKL, UNet2DConditionModel with cross-attention, CLIPTextModel, word-level tokenizer, "
                      "DDIM schedule), trained from scratch on CPU by `train/train_diffusion.py` on real SDSS galaxies "
                      "captioned from Galaxy Zoo votes. A re-implementation at small scale of GalaxySD (Ma, Sun et al. "
                      "2025, arXiv:2506.16233).", ""]
    out += _section_data(info, cfg, vae_done, metrics)
    out += ["## Training run", "",
            f"- steps: {info.get('step')} (batch {cfg.get('train_batch_size')}, AdamW lr {cfg.get('learning_rate')}, "
            f"{cfg.get('lr_scheduler')} with {cfg.get('lr_warmup_steps')} warm-up steps, EMA {cfg.get('ema_decay')}, "
            f"min-SNR gamma {cfg.get('min_snr_gamma')}); VAE {cfg.get('vae_steps')} steps on {cfg.get('vae_crop')} px crops",
            (f"- wall time: {_fmt(wall['total_s'] / 60, 1)} min in all ({int(wall['processes'])} processes: runs killed "
             f"and resumed, each counted from its start incl. data loading, VAE, latent cache, validation), of which "
             f"{_fmt(wall['unet_s'] / 60, 1)} min in processes that trained the UNet; 2 CPU cores shared with other work"
             if wall["total_s"] else f"- wall time: {_fmt(info.get('wall_s', math.nan) / 60, 1)} min on 2 CPU cores"),
            f"- final training loss (mean of the last logged steps): {_fmt(losses[-1]['loss'] if losses else math.nan, 4)}",
            f"- reproduce: `{COMMANDS['train']}`; full config `train_config.yaml`, captions `training_captions.json`", ""]
    out += _section_defaults(model_dir, metrics)
    out += _section_at_defaults(metrics)
    out += _section_features(metrics)
    out += _section_background(metrics)
    out += _section_training(metrics)
    if (model_dir / "figure3.png").is_file():
        out += ["## GalaxySD's Figure 3: a real galaxy of each prompt (left) beside generated ones", "",
                "Prompts A-P of GalaxySD's table in this vocabulary; the real galaxy is a held-out one with exactly "
                "that caption where one exists (`metrics/figure3.csv`). Arm counts and winding (F-H) were never in "
                "the training captions (gz2_cutouts has no t10/t11 votes).", "", "![figure 3](figure3.png)", "",
                "Sample grid at the recommended settings (8 seeds per prompt):", "", "![samples](samples_grid.png)", ""]
    if bench_text:
        out += ["## Speed (`bench/bench_generate.py`)", "", "```", bench_text.strip(), "```", ""]
    out += (["## Notes", ""] + [f"- {n}" for n in notes] + [""]) if notes else []
    out += ["## How every number was made", ""] + [f"- {k}: `{v}`" for k, v in COMMANDS.items()] + [""]
    out += ["## Limitations", "",
            f"- Features with fewer than {RARE_CAPTIONS} training captions (table above) are extrapolation; "
            "arm number and winding were never captioned. Results must be vetted.",
            "- The judge is the project's own classifier (`assets/classifier`, trained on the same GZ2 votes): its "
            "errors are in every number here.",
            "", "Data: SDSS; Galaxy Zoo 1 (Lintott et al. 2008, 2011) and Galaxy Zoo 2 (Willett et al. 2013, "
            "Hart et al. 2016)."]
    path = model_dir / "README.md"
    path.write_text("\n".join(out) + "\n")
    return path
