"""Inference speed of the morphology classifier on CPU (prints images/s; goal: 500 images/s on 2 cores).

Examples::

    python bench/bench_classifier.py                          # the shipped assets/classifier, 2 threads
    python bench/bench_classifier.py --threads 2 --json runs/bench_classifier.json
    python bench/bench_classifier.py --compare                # also 128-px variants (untrained weights)

Times ``MorphologyClassifier.predict_proba`` on uint8 images already at the network's input size
(the layout of a prepared cache or pipeline output), best of ``--repeats``, after a warm-up batch.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from galaxysd_core.config import DEFAULT_CLASSIFIER_DIR
from galaxysd_core.models.classifier import ClassifierConfig, MorphologyClassifier


def images_per_s(model: MorphologyClassifier, n: int, batch_size: int, repeats: int, size: int) -> float:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (n, size, size, 3), dtype=np.uint8)
    model.predict_proba(images[:batch_size], batch_size=batch_size)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        model.predict_proba(images, batch_size=batch_size)
        best = min(best, time.perf_counter() - t0)
    return n / best


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default=str(DEFAULT_CLASSIFIER_DIR))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("-n", type=int, default=2048, help="images per timed pass")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--compare", action="store_true", help="also time 128-px architectures (stem 4 and 2)")
    p.add_argument("--json", help="write the numbers to this JSON file (read by the classifier card)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = MorphologyClassifier.from_pretrained(args.model)
    size = model.config.image_size
    ips = images_per_s(model, args.n, args.batch_size, args.repeats, size)
    result = {"model": args.model, "images_per_s": round(ips, 1), "threads": args.threads,
              "batch_size": args.batch_size, "n_images": args.n, "input_size": size,
              "heads": len(model.feature_columns), "output": model.config.output,
              "note": f"best of {args.repeats} passes on a shared machine; uint8 images at input size"}
    print(f"{args.model}: {ips:.0f} images/s ({args.threads} threads, {size} px, batch {args.batch_size}, "
          f"{len(model.feature_columns)} heads, output {model.config.output}); goal 500")
    if args.compare:
        result["variants"] = {}
        for name, img, stem in (("64px stem2", 64, 2), ("128px stem4", 128, 4), ("128px stem2", 128, 2)):
            cfg = ClassifierConfig(feature_columns=model.feature_columns, output=model.config.output,
                                   image_size=img, stem_stride=stem)
            v = images_per_s(MorphologyClassifier(cfg).eval(), args.n, args.batch_size, args.repeats, img)
            result["variants"][name] = round(v, 1)
            print(f"  {name}: {v:.0f} images/s")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
