#!/usr/bin/env python
"""Compare VAE-stage runs at one checkpoint on held-out real galaxies: PSNR and what the morphology
classifier still sees on the reconstructions (how the latent channels of GalaxySD-mini v2 were chosen).

Each run is a ``train/train_diffusion.py --stage vae`` output folder; the VAE weights of
``vae_stage/checkpoint-<step>`` are evaluated with
:func:`galaxysd_core.evaluation.reconstruction.reconstruction_report` on the classifier's held-out
galaxies of the cache. Prints one line per run and writes the JSON the model card reads::

    python bench/bench_vae_checkpoints.py --runs runs/vae-c4 runs/vae-c8 --step 600 \\
        --cache cache/gz2_cutouts_128 --out assets/galaxysd-mini/metrics/vae_channels.json
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import yaml
from safetensors.torch import load_file

from galaxysd_core.config import DEFAULT_CLASSIFIER_DIR
from galaxysd_core.data.cache import PreparedDataset
from galaxysd_core.evaluation.reconstruction import reconstruction_report
from galaxysd_core.models.classifier import MorphologyClassifier
from galaxysd_core.models.mini import MiniModelConfig, build_vae
from galaxysd_core.training.classifier_data import caption_truth, load_test_ids

HEADS = ("features or disk-shaped", "edge-on galaxy", "bar-shaped structure in the center of galaxy",
         "spiral galaxy", "ring galaxy", "obvious bulge prominence")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", nargs="+", required=True)
    p.add_argument("--step", type=int, required=True)
    p.add_argument("--cache", required=True)
    p.add_argument("--n-test", type=int, default=400)
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    ds = PreparedDataset.load(args.cache)
    test = set(load_test_ids(DEFAULT_CLASSIFIER_DIR))
    idx = np.flatnonzero(ds.index["id"].astype(str).isin(test).to_numpy())[: args.n_test]
    images, index = np.asarray(ds.images[idx]), ds.index.iloc[idx]
    clf = MorphologyClassifier.from_pretrained(DEFAULT_CLASSIFIER_DIR)
    truth = caption_truth(index, clf.feature_columns)
    rows = []
    for run in args.runs:
        cfg = yaml.safe_load((Path(run) / "config.yaml").read_text())
        vae = build_vae(MiniModelConfig.from_dict(cfg["model"]))
        sd = load_file(str(Path(run) / "vae_stage" / f"checkpoint-{args.step}" / "model.safetensors"))
        vae.load_state_dict({k.removeprefix("vae."): v for k, v in sd.items()})
        rep = reconstruction_report(vae.eval(), images, clf, truth, heads=HEADS)
        row = {"latent_channels": cfg["model"]["latent_channels"], "psnr_db": round(rep["psnr_db"], 2),
               "psnr_db_blur3": round(rep["psnr_db_blur3"], 2)}
        row.update({f"auc {h['feature'].split(' ')[0]}": round(h["auc_reconstructed"], 3) for h in rep["heads"]})
        row["dust mean (orig {:.4f})".format(rep["dust_lane"]["mean_original"])] = round(
            rep["dust_lane"]["mean_reconstructed"], 4)
        rows.append(row)
        print(json.dumps(row))
    best = max(rows, key=lambda r: r["psnr_db"])
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"step": args.step, "n_test": int(len(images)), "rows": rows,
                               "reading": f"{best['latent_channels']} latent channels reconstruct held-out galaxies best "
                                          f"at step {args.step} (PSNR and classifier AUC on reconstructions)."},
                              indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
