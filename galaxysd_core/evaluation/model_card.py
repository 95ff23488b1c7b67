"""Model card (README.md) of a trained GalaxySD model folder, written from the files of its run.

Sources: ``training_captions.json`` (what the model saw), ``train_config.yaml``, the run's
``train_log.jsonl`` (wall time, losses, VAE latent normalisation) and the evaluation tables written
by :mod:`galaxysd_core.evaluation.runner` into ``<model>/metrics/``, checked against the quality bar
(:mod:`galaxysd_core.evaluation.quality_bar`). Nothing is typed in by hand.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import pandas as pd
import yaml

from galaxysd_core.evaluation.quality_bar import consistency_gap, quality_bar_status, quality_bar_table
from galaxysd_core.pipelines.model_folder import TRAINING_CAPTIONS_FILE


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


def write_model_card(model_dir: str | Path, run_dir: Optional[str | Path] = None,
                     bench_text: Optional[str] = None, notes: Sequence[str] = ()) -> Path:
    """Write ``model_dir/README.md``; returns its path."""
    model_dir = Path(model_dir)
    metrics = model_dir / "metrics"
    info = json.loads((model_dir / TRAINING_CAPTIONS_FILE).read_text())
    cfg = yaml.safe_load((model_dir / "train_config.yaml").read_text())
    log: List[dict] = []
    if run_dir and (Path(run_dir) / "train_log.jsonl").is_file():
        log = [json.loads(x) for x in (Path(run_dir) / "train_log.jsonl").read_text().splitlines() if x.strip()]
    vae_done = next((r for r in log if r.get("stage") == "vae" and r.get("done")), {})
    losses = [r for r in log if r.get("event") == "train"]
    wall = training_wall_time(log)
    m = cfg.get("model", {})

    out: List[str] = ["# GalaxySD-mini", ""]
    out += ["A small text-to-galaxy latent diffusion model with the component types of Stable Diffusion 1.5 "
            "(AutoencoderKL, UNet2DConditionModel with cross-attention, CLIPTextModel, word-level tokenizer, "
            "DDIM schedule), trained from scratch on CPU by `train/train_diffusion.py` on real SDSS galaxies. "
            "A re-implementation at small scale of GalaxySD (Ma, Sun et al. 2025, arXiv:2506.16233).", ""]
    out += ["## Architecture", "",
            f"- images {m.get('resolution')}x{m.get('resolution')} RGB; VAE channels {m.get('vae_channels')} "
            f"(4x downsampling to a 16x16x{m.get('latent_channels')} latent); latent shift "
            f"{_fmt(vae_done.get('shift_factor', math.nan))}, scale {_fmt(vae_done.get('scaling_factor', math.nan))}",
            f"- UNet channels {m.get('unet_channels')}, blocks {m.get('unet_down_blocks')} (cross-attention at 8x8 "
            f"and 4x4 only), {m.get('unet_heads')} heads",
            f"- CLIP text encoder: {m.get('text_layers')} layers, width {m.get('text_hidden')}, "
            f"max {m.get('max_length')} tokens, vocabulary = GZ2 caption words",
            "- why latent space: a batch-16 UNet forward costs ~5x less on a 16x16x4 latent than in 64x64 pixel "
            "space at equal parameter count (measured here), which is what makes CPU generation interactive.", ""]
    out += ["## Training data", "",
            f"- {info.get('n_images')} real galaxies: Galaxy Zoo 1 SDSS cutouts (gz1_sdss, centre crop 0.35) and "
            "the 86 GZ2 answer examples (crop 0.5), at 64x64; flips and 90-degree rotations; tags shuffled; "
            f"caption dropout {cfg.get('caption_dropout')} (for classifier-free guidance), tag dropout "
            f"{cfg.get('tag_dropout', 0)}",
            "- captions from the volunteers' labels (`galaxysd_core.schema.captioning`); roundness of smooth galaxies "
            "(GZ2 t07) is *derived* from image moments by quantile matching to Stripe 82 GZ2 votes "
            "(`galaxysd_core.data.pseudo_labels`): "
            + ", ".join(f"{k} {v}" for k, v in (info.get("derived_feature_counts") or {}).items()), "",
            "Caption features seen in training (phrase: captions containing it):", ""]
    counts = info.get("feature_counts", {})
    seen = {k: v for k, v in counts.items() if v}
    unseen = [k for k, v in counts.items() if not v]
    out += ["| feature | captions |", "|---|---:|"] + [f"| {k} | {v} |" for k, v in seen.items()] + [""]
    out += [f"Never seen in training (prompting them is pure extrapolation; the app marks them): {', '.join(unseen)}", ""]
    out += ["Most common captions:", ""] + [f"- `{k}`: {v}" for k, v in list(info.get("caption_counts", {}).items())[:10]] + [""]
    out += ["## Training run", "",
            f"- steps: {info.get('step')} (batch {cfg.get('train_batch_size')}, AdamW lr {cfg.get('learning_rate')}, "
            f"{cfg.get('lr_scheduler')} with {cfg.get('lr_warmup_steps')} warm-up steps, EMA {cfg.get('ema_decay')}, "
            f"min-SNR gamma {cfg.get('min_snr_gamma')}); VAE {cfg.get('vae_steps')} steps on {cfg.get('vae_crop')}px crops",
            (f"- wall time: {_fmt(wall['total_s'] / 60, 1)} min in all ({int(wall['processes'])} processes: "
             f"runs killed/resumed or continued, each counted from its start incl. data loading, VAE, latent "
             f"cache, validation), of which {_fmt(wall['unet_s'] / 60, 1)} min in processes that trained the UNet; "
             f"2 CPU cores shared with other work, torch threads {cfg.get('num_threads')} in the last process"
             if wall["total_s"] else
             f"- wall time: {_fmt(info.get('wall_s', math.nan) / 60, 1)} min on 2 CPU cores"),
            f"- final training loss (mean of last 50 steps): {_fmt(losses[-1]['loss'] if losses else math.nan, 4)}",
            "- full config: `train_config.yaml`; captions: `training_captions.json`", ""]
    bench = metrics / "real_benchmark.json"
    bench_cons = None
    if bench.is_file():
        data = json.loads(bench.read_text())
        bench_cons = data.get("consistency", (data.get("consistency_on_real") or {}).get("consistency"))
    table_path = metrics / "evaluation.csv"
    plain_path = metrics / "evaluation_plain.csv"
    if table_path.is_file():
        table = pd.read_csv(table_path)
        plain = pd.read_csv(plain_path) if plain_path.is_file() else None
        out += ["## Quality bar (project classifier, `assets/classifier`)", "",
                "Sampling as the app and CLI do by default: DDIM, 20 steps, seeds 0..n-1, and the automatic "
                "GZ2-tree negative prompt (`GalaxySDPipeline.tree_negative_prompt`: the other morphologies at the "
                "tree's branch points a prompt passes through, e.g. `sdss, smooth, star or artifact, edge-on "
                "galaxy` for the spiral prompt; none for `sdss, merger`). The same prompts with plain "
                "unconditional guidance (no negative prompt, as GalaxySD samples) follow each table.", "",
                "Summary (>= 85 % smooth, >= 70 % spiral, >= 70 % edge-on; mean consistency within 0.1 of the "
                "real-image benchmark):", ""]
        out += quality_bar_status(table, bench_cons, "automatic negative prompt")
        if plain is not None:
            out += quality_bar_status(plain, bench_cons, "no negative prompt")
        out += [""]
        for g in sorted(table["guidance"].astype(float).unique()):
            qb = quality_bar_table(table, g)
            if not qb.empty:
                cols = ["prompt", "head", "n", "fraction_seen", "required", "passes"]
                if "negative_prompt" in table.columns:
                    at_g = table[table["guidance"].astype(float) == float(g)]
                    negs = at_g.drop_duplicates("base_prompt").set_index("base_prompt")["negative_prompt"]
                    qb["negative_prompt"] = [negs.get(p, "") if isinstance(negs.get(p, ""), str) else ""
                                             for p in qb["prompt"]]
                    cols.append("negative_prompt")
                out += [f"Guidance {g:g}, automatic negative prompt:", "", _md_table(qb, cols), ""]
            if plain is not None:
                qp = quality_bar_table(plain, g)
                if not qp.empty:
                    out += [f"Guidance {g:g}, no negative prompt:", "",
                            _md_table(qp, ["prompt", "head", "n", "fraction_seen", "required", "passes"]), ""]
        out += ["## Realism, diversity, consistency vs guidance", "",
                "Precision/recall (Kynkaanniemi et al. 2019) and density/coverage (Naeem et al. 2020) in the "
                "classifier's 256-d embedding; `domain_fd`/`domain_kid` are Frechet distance / KID in that space "
                "(not Inception FID). Reference: real galaxies with the same caption (else all real).", "",
                _md_table(table, ["base_prompt", "guidance", "n", "consistency", "precision", "recall", "density",
                                  "coverage", "domain_fd"]), ""]
        if bench_cons is not None:
            gap = consistency_gap(table, bench_cons)
            out += [f"Real-image consistency benchmark (held-out real galaxies vs their own captions): "
                    f"**{bench_cons:.3f}**. Mean consistency over the {table['base_prompt'].nunique()} evaluated "
                    "prompts (unweighted, rare classes count as much as common ones) and its gap to the benchmark "
                    "(required: within 0.1):", "",
                    _md_table(gap, ["guidance", "consistency", "real_benchmark", "gap", "within_0.1", "not_worse_by_0.1"]), ""]
            if plain is not None:
                gp = consistency_gap(plain, bench_cons)
                out += ["The same without a negative prompt:", "",
                        _md_table(gp, ["guidance", "consistency", "real_benchmark", "gap", "within_0.1", "not_worse_by_0.1"]), ""]
    ck = metrics / "checkpoints.csv"
    if ck.is_file():
        t = pd.read_csv(ck)
        agg = t.groupby("step")[[c for c in ("consistency", "precision", "recall", "coverage", "domain_fd")
                                 if c in t.columns]].mean().reset_index()
        out += ["## Metrics over training steps (mean over the validation prompts)", "",
                _md_table(agg, list(agg.columns)), ""]
    if bench_text:
        out += ["## Speed (`bench/bench_generate.py`)", "", "```", bench_text.strip(), "```", ""]
    out += (["## Notes", ""] + [f"- {n}" for n in notes] + [""]) if notes else []
    out += ["## Limitations", "",
            "- Trained on ~6.7k galaxies with five GZ1 classes plus 86 GZ2 examples: bars, rings, dust lanes, arm "
            "counts and bulge classes were seen 0-10 times, so prompting them extrapolates (as GalaxySD does for "
            "D-ETGs) and results must be vetted.",
            "- 64x64 pixels: fine structure (arms, dust lanes) is at the edge of what the resolution can show.",
            "", "Data: SDSS; Galaxy Zoo 1 (Lintott et al. 2008, 2011) and Galaxy Zoo 2 (Willett et al. 2013, "
            "Hart et al. 2016)."]
    path = model_dir / "README.md"
    path.write_text("\n".join(out) + "\n")
    return path
