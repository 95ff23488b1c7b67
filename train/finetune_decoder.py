#!/usr/bin/env python
"""Fine-tune a model's VAE decoder with a spectral loss for sharper galaxies (thin wrapper).

Writes ``OUT/model`` (the model with the new decoder, its ``decoder_finetune.json`` and a sky-noise
model re-measured for the new decoder) and prints the middle-band sharpness of reconstructions of
held-out real galaxies before and after. Logic: :mod:`galaxysd_core.training.decoder`; the
figure of merit: :mod:`galaxysd_core.evaluation.sharpness`. Resumes from the run's last checkpoint.

    OMP_NUM_THREADS=2 python train/finetune_decoder.py --model assets/galaxysd-mini \\
        --out runs/galaxysd-mini-decoder --caches cache/gz2_cutouts_128 cache/gz1_sdss_128 cache/gz2_examples_128 \\
        --exclude-ids-from assets/classifier --steps 1500 --spectral-weight 0.1
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from galaxysd_core.errors import GalaxySDError


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="model folder whose decoder is fine-tuned")
    p.add_argument("--out", required=True, help="run folder (checkpoints, model/)")
    p.add_argument("--caches", nargs="+", required=True)
    p.add_argument("--exclude-ids-from", default="assets/classifier",
                   help="classifier folder whose held-out ids are left out of training and used to measure")
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--learning-rate", type=float, default=2e-4)
    p.add_argument("--crop", type=int, default=64)
    p.add_argument("--spectral-weight", type=float, default=0.1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--n-measure", type=int, default=256, help="held-out galaxies for the sharpness / sky noise")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    import numpy as np
    import torch
    from diffusers import AutoencoderKL

    from galaxysd_core.evaluation.background import measure_release_noise
    from galaxysd_core.evaluation.reconstruction import reconstruct
    from galaxysd_core.evaluation.reference import classifier_test_ids
    from galaxysd_core.evaluation.release import held_out_real
    from galaxysd_core.evaluation.sharpness import band_ratios
    from galaxysd_core.training.decoder import DecoderFinetuneConfig, finetune_decoder

    torch.set_num_threads(a.threads)
    try:
        cfg = DecoderFinetuneConfig(pretrained_model=a.model, output_dir=a.out, caches=a.caches,
                                    exclude_ids_from=a.exclude_ids_from, steps=a.steps, batch_size=a.batch_size,
                                    learning_rate=a.learning_rate, crop=a.crop, spectral_weight=a.spectral_weight,
                                    num_threads=a.threads)
        target = finetune_decoder(cfg)
        held, _ = held_out_real(a.caches, classifier_test_ids(a.exclude_ids_from) or [], 128, a.n_measure)
        held = np.asarray(held)
        half = len(held) // 2
        rows = {}
        for name, folder in (("before", Path(a.model)), ("after", target)):
            vae = AutoencoderKL.from_pretrained(folder / "vae", use_safetensors=True).eval()
            rec = reconstruct(vae, held)
            # reconstructions of one half against the other half's originals, and against their own
            rows[name] = {"other_half": band_ratios(rec[:half], held[half:]), "same": band_ratios(rec, held)}
            if name == "after":
                measure_release_noise(vae, held, 128, a.caches).save(target)
    except GalaxySDError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    (target / "metrics").mkdir(exist_ok=True)
    (target / "metrics" / "decoder_sharpness.json").write_text(json.dumps(rows, indent=1) + "\n")
    for name, r in rows.items():
        s = r["same"]
        print(f"{name}: reconstruction / real power: low {s['low']:.3f} middle {s['middle']:.3f} high {s['high']:.3f}")
    print(f"model with the new decoder: {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
