#!/usr/bin/env python
"""Trained models side by side (realism, diversity, sky, dust-lane goal, sharpness); thin wrapper.

    OMP_NUM_THREADS=2 python train/compare_models.py --model v2=assets/galaxysd-mini \\
        --model v3-eps=runs/galaxysd-mini-v3-eps/model --caches cache/gz2_cutouts_128 --out train/notes/v3_comparison.csv

Logic: :mod:`galaxysd_core.science.model_comparison`.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from galaxysd_core import config as gconfig
from galaxysd_core.errors import GalaxySDError


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", action="append", required=True, help="NAME=FOLDER (repeat)")
    p.add_argument("--caches", nargs="+", required=True)
    p.add_argument("--classifier", default=str(gconfig.DEFAULT_CLASSIFIER_DIR))
    p.add_argument("--detector", default=str(gconfig.ASSETS_DIR / "detg_detector"))
    p.add_argument("-n", type=int, default=32)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", required=True, help="CSV of the table (a .md beside it)")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    import torch

    from galaxysd_core.science.model_comparison import compare_models
    from galaxysd_core.models.classifier import MorphologyClassifier

    torch.set_num_threads(a.threads)
    try:
        models = dict(m.split("=", 1) for m in a.model)
        table = compare_models(models, a.caches, classifier=MorphologyClassifier.from_pretrained(a.classifier),
                               detector=MorphologyClassifier.from_pretrained(a.detector), classifier_dir=a.classifier,
                               n=a.n)
    except (GalaxySDError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, index=False)
    t = table.drop(columns=["folder"]).set_index("model").T
    lines = ["| measure | " + " | ".join(t.columns) + " |", "|---" * (len(t.columns) + 1) + "|"]
    lines += ["| " + str(k) + " | " + " | ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in r) + " |"
              for k, r in t.iterrows()]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(table.T.to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
