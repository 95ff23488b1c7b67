#!/usr/bin/env python
"""What the GalaxySD weight rescale does on a model's text encoder (prints numbers; not a test).

For the training captions of the model (``training_captions.json``), every phrase of each caption
weighted alone at each of ``--weights``, prints:

* the unweighted embedding: its mean over all positions and over the prompt's real tokens, its
  spread (standard deviation) and the ratio |mean| / spread;
* the mean shift the weighting causes before any rescale, in units of the spread;
* for three rescales (GalaxySD as published: mean over all positions restored exactly; the same
  over the prompt's real tokens only; the one the pipeline uses: real tokens, restored to within
  ``MEAN_TOLERANCE`` of the spread): the factor range, how often the factor is not 1, the largest
  relative change of a position outside the weighted tag, the mean relative change at the tag, and
  the share of the squared change that lands outside the tag.

Usage: python bench/bench_weighting.py [--model DIR] [--weights 0,0.5,0.8,1.2,1.5,2,3]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from galaxysd_core.config import model_dir
from galaxysd_core.pipelines.model_folder import TRAINING_CAPTIONS_FILE
from galaxysd_core.pipelines.pipeline_galaxysd import load_pipeline
from galaxysd_core.prompts.grammar import build_prompt
from galaxysd_core.prompts.tokenization import text_max_length
from galaxysd_core.schema.gz2 import SURVEY_PREFIX
from galaxysd_core.prompts.weighting import MEAN_TOLERANCE, embed_prompts, rescale_factor

RESCALES = {"published (all positions, exact)": (False, 0.0),
            "real tokens, exact": (True, 0.0),
            f"pipeline (real tokens, within {MEAN_TOLERANCE:g} of spread)": (True, MEAN_TOLERANCE)}


def captions(folder: Path):
    data = json.loads((folder / TRAINING_CAPTIONS_FILE).read_text())
    return sorted(data["caption_counts"])


def weighted_variants(pipe, caption: str, weights):
    """(prompt, phrase, weight) with one phrase of ``caption`` (not the survey prefix) weighted."""
    phrases = [p for p in pipe.parse(caption).phrase_weights() if p != SURVEY_PREFIX]
    prefix = SURVEY_PREFIX if caption.startswith(SURVEY_PREFIX) else ""
    for phrase in phrases:
        for w in weights:
            yield build_prompt({p: (w if p == phrase else 1.0) for p in phrases}, prefix=prefix), phrase, w


def measure(pipe, folder: Path, weights):
    length = text_max_length(pipe.tokenizer, pipe.text_encoder)
    plain_stats, rows = [], []
    for caption in captions(folder):
        variants = list(weighted_variants(pipe, caption, weights))
        parsed = [pipe.parse(caption)] + [pipe.parse(v[0]) for v in variants]
        hidden, w, mask = embed_prompts(pipe.text_encoder, pipe.tokenizer, parsed, length)
        if not (w[0] == 1).all():
            raise SystemExit(f"caption {caption!r} of the model is not an unweighted prompt")
        h0 = hidden[0].double()
        real = mask[0]
        plain_stats.append((h0.mean().item(), h0[real].mean().item(), h0.std().item(), h0[real].std().item()))
        for k, (text, phrase, weight) in enumerate(variants, start=1):
            h, wk, mk = hidden[k:k + 1].double(), w[k:k + 1].double(), mask[k:k + 1]
            weighted = h * wk.unsqueeze(-1)
            shift = (weighted[0][mk[0]].mean() - h[0][mk[0]].mean()).abs().item() / h[0][mk[0]].std().item()
            tag = (wk[0] != 1)
            row = dict(prompt=text, weight=weight, shift=shift, n_tag=int(tag.sum()))
            for name, (use_mask, tol) in RESCALES.items():
                m = mk if use_mask else None
                f = rescale_factor(h, weighted, m, tol)[0].item()
                out = weighted.clone()
                if m is None:
                    out = out * f
                else:
                    out[0, mk[0]] *= f
                delta = (out - h)[0].norm(dim=-1) / h[0].norm(dim=-1)
                sq = ((out - h)[0] ** 2).sum(dim=-1)
                outside = ~tag
                row[name] = dict(factor=f, outside_max=delta[outside].max().item(),
                                 at_tag=delta[tag].mean().item() if tag.any() else 0.0,
                                 share_outside=(sq[outside].sum() / sq.sum().clamp(min=1e-30)).item())
            rows.append(row)
    return plain_stats, rows


def report(plain_stats, rows, label: str) -> None:
    def rng(values):
        return f"{min(values):.3g} .. {max(values):.3g}"

    print(f"\n== {label}: {len(rows)} prompts with one weighted tag")
    print(f"mean shift of the real tokens from the weighting alone, in units of the spread: "
          f"{rng([r['shift'] for r in rows])}")
    for name in RESCALES:
        vals = [r[name] for r in rows]
        moved = sum(abs(v["factor"] - 1) > 1e-12 for v in vals)
        print(f"  {name}:")
        print(f"    factor {rng([v['factor'] for v in vals])}; factor != 1 in {moved}/{len(vals)}")
        print(f"    largest relative change of a position outside the tag {rng([v['outside_max'] for v in vals])}; "
              f"mean relative change at the tag {rng([v['at_tag'] for v in vals])}")
        print(f"    share of the squared change outside the tag {rng([v['share_outside'] for v in vals])}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="model folder (default $GALAXYSD_MODEL_DIR or the shipped model)")
    parser.add_argument("--weights", default="0,0.5,0.8,1.2,1.5,2,3", help="comma-separated weights of the one tag")
    args = parser.parse_args()
    weights = [float(x) for x in args.weights.split(",")]
    folder = model_dir(args.model)
    pipe = load_pipeline(folder)
    plain_stats, rows = measure(pipe, folder, weights)
    all_mean = [s[0] for s in plain_stats]
    real_mean = [s[1] for s in plain_stats]
    spread = [s[3] for s in plain_stats]
    print(f"model: {pipe.source_path}; {len(plain_stats)} training captions, "
          f"{text_max_length(pipe.tokenizer, pipe.text_encoder)} positions")
    print(f"unweighted mean over all positions {min(all_mean):.2e} .. {max(all_mean):.2e}; "
          f"over the real tokens {min(real_mean):.2e} .. {max(real_mean):.2e}")
    print(f"spread (std over the real tokens) {min(spread):.3f} .. {max(spread):.3f}; "
          f"|mean| / spread <= {max(abs(m) / s for m, s in zip(real_mean, spread)):.1e}")
    report(plain_stats, rows, f"weights {weights}")
    app = [r for r in rows if 0.5 <= r["weight"] <= 2.0]
    report(plain_stats, app, "weights in the app's slider range [0.5, 2]")


if __name__ == "__main__":
    main()
