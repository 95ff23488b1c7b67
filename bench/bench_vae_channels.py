"""How many latent channels does a 128 px galaxy need? Train the GalaxySD-mini VAE (8x downsampling:
128 px -> 16x16 latent) with 4, 8 and 16 latent channels for the same short budget and print the
reconstruction PSNR on held-out real galaxies (the classifier's fixed id-hash test split).

Groundwork for the 128 px model (a measurement, not a training recipe):

    OMP_NUM_THREADS=2 python bench/bench_vae_channels.py --cache cache/gz2_cutouts_128 --steps 300 --channels 4 8 16

Prints one line per setting and writes a JSON with the numbers (``--out``).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from galaxysd_core.config import DEFAULT_CLASSIFIER_DIR
from galaxysd_core.data.cache import PreparedDataset
from galaxysd_core.models.mini import MiniModelConfig
from galaxysd_core.training.classifier_data import load_test_ids
from galaxysd_core.training.config import DiffusionTrainConfig
from galaxysd_core.training.vae import train_vae


def psnr(vae, images: np.ndarray, batch: int = 64) -> float:
    """Mean PSNR (dB, images in [0, 1]) of VAE reconstructions (posterior mean) of uint8 images."""
    vals = []
    with torch.no_grad():
        for i in range(0, len(images), batch):
            x = torch.from_numpy(images[i:i + batch]).permute(0, 3, 1, 2).float() / 127.5 - 1
            y = vae.decode(vae.encode(x).latent_dist.mean).sample.clamp(-1, 1)
            mse = ((y - x) / 2).pow(2).flatten(1).mean(1)
            vals += (10 * torch.log10(1 / mse.clamp_min(1e-10))).tolist()
    return float(np.mean(vals))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cache", required=True, help="prepared 128 px cache (e.g. cache/gz2_cutouts_128)")
    p.add_argument("--channels", type=int, nargs="+", default=[4, 8, 16])
    p.add_argument("--steps", type=int, default=300, help="VAE steps per setting")
    p.add_argument("--max-minutes", type=float, default=6.0, help="budget per setting")
    p.add_argument("--n-test", type=int, default=256)
    p.add_argument("--out", default="galaxysd-output/bench/vae_channels.json")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    ds = PreparedDataset.load(args.cache)
    test = set(load_test_ids(DEFAULT_CLASSIFIER_DIR))
    is_test = ds.index["id"].astype(str).isin(test).to_numpy()
    train_images, test_images = ds.images[~is_test], ds.images[is_test][: args.n_test]
    print(f"{len(train_images)} training and {len(test_images)} held-out images at {ds.images.shape[1]} px")
    rows = []
    for c in args.channels:
        model = dataclasses.replace(MiniModelConfig(), resolution=int(ds.images.shape[1]), latent_channels=c,
                                    vae_channels=(32, 32, 64, 64)).to_dict()
        with tempfile.TemporaryDirectory() as tmp:
            cfg = DiffusionTrainConfig(output_dir=tmp, model=model, vae_steps=args.steps,
                                       max_train_minutes=args.max_minutes, seed=0)
            t0 = time.perf_counter()
            vae = train_vae(cfg, train_images, log=lambda row: None)
            seconds = time.perf_counter() - t0
        vae.eval()
        value = psnr(vae, test_images)
        rows.append({"latent_channels": c, "latent": f"{c}x{ds.images.shape[1] // 8}x{ds.images.shape[1] // 8}",
                     "psnr_db": round(value, 2), "steps": args.steps, "train_seconds": round(seconds, 1)})
        print(f"latent channels {c:2d}: held-out PSNR {value:.2f} dB after {args.steps} steps ({seconds:.0f} s)")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"cache": args.cache, "rows": rows}, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
