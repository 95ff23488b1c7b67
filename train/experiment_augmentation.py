"""Augmentation experiment: does GalaxySD synthetic data help rare-class classifiers? (thin wrapper)

Trains the same one-head classifier with (a) real data only, (b) real + synthetic galaxies
generated from the class caption, (c) oversampling + flips/rotations, (d) focal loss, for merger,
edge-on and spiral-vs-smooth, with 10 / 30 / 100 / all real positives and several seeds, and
measures purity, completeness and F1 on the fixed held-out real test split of the shipped
classifier. All logic lives in :mod:`galaxysd_core.science.augmentation`.

Example (the shipped results in ``assets/augmentation``)::

    OMP_NUM_THREADS=1 python train/experiment_augmentation.py --model assets/galaxysd-mini \\
        --caches cache/gz1_64 cache/gz2_examples_64 --out assets/augmentation

``--quick`` runs a tiny version (2 seeds, 10 positives, 20 steps) to check the set-up.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parent.parent

from galaxysd_core.science import augmentation as aug  # noqa: E402
from galaxysd_core.config import DEFAULT_CLASSIFIER_DIR  # noqa: E402
from galaxysd_core.errors import GalaxySDError  # noqa: E402


def _rel(path: str) -> str:
    """Path relative to the repository when inside it (results never record machine-specific roots)."""
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except (ValueError, OSError):
        return str(path)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="GalaxySD model folder (default: $GALAXYSD_MODEL_DIR or "
                                                 "assets/galaxysd-mini); 'random' = untrained GalaxySD-mini (smoke test)")
    p.add_argument("--caches", nargs="+", default=[str(ROOT / "cache/gz1_64"), str(ROOT / "cache/gz2_examples_64")],
                   help="prepared caches of the real galaxies")
    p.add_argument("--classifier", default=str(DEFAULT_CLASSIFIER_DIR),
                   help="shipped classifier folder: its split_test_ids.csv is the held-out test set, and it "
                        "judges the synthetic images")
    p.add_argument("--out", default=str(ROOT / "assets/augmentation"), help="output folder")
    p.add_argument("--synthetic-cache", default=str(ROOT / "cache/synthetic"),
                   help="folder caching generated images (git-ignored)")
    p.add_argument("--tasks", nargs="+", default=None, choices=list(aug.TASKS))
    p.add_argument("--arms", nargs="+", default=None, choices=list(aug.ARMS))
    p.add_argument("--seeds", type=int, nargs="+", default=None)
    p.add_argument("--shots", type=int, nargs="+", default=None, help="real positives per run; 0 = all")
    p.add_argument("--steps", type=int, default=None, help="optimiser steps per run (same for every arm)")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--n-negatives", type=int, default=None, help="real negatives drawn per seed")
    p.add_argument("--n-synthetic", type=int, default=None, help="synthetic positives per class")
    p.add_argument("--guidance", type=float, default=None, help="classifier-free guidance of the generation")
    p.add_argument("--focal-gamma", type=float, default=None)
    p.add_argument("--focal-alpha", type=float, default=None)
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1: the budget is one core)")
    p.add_argument("--quick", action="store_true", help="tiny run to check the set-up")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    cfg = aug.ExperimentConfig()
    if args.quick:
        cfg = aug.ExperimentConfig(shots=[10], seeds=[0, 1], n_negatives=200, n_synthetic=16,
                                   train=aug.BinaryTrainSettings(steps=20))
    for name in ("tasks", "arms", "seeds", "shots"):
        if getattr(args, name) is not None:
            setattr(cfg, name, getattr(args, name))
    for flag, attr in (("n_negatives", "n_negatives"), ("n_synthetic", "n_synthetic"), ("guidance", "guidance_scale")):
        if getattr(args, flag) is not None:
            setattr(cfg, attr, getattr(args, flag))
    for flag, attr in (("steps", "steps"), ("batch_size", "batch_size"), ("focal_gamma", "focal_gamma"),
                       ("focal_alpha", "focal_alpha")):
        if getattr(args, flag) is not None:
            setattr(cfg.train, attr, getattr(args, flag))
    try:
        cfg.__post_init__()
        from galaxysd_core.models.classifier import MorphologyClassifier, load_test_ids

        test_ids = load_test_ids(args.classifier)
        judge = MorphologyClassifier.from_pretrained(args.classifier)
        pipe_factory, model_id, model_path = aug.generator_factory(args.model)
        t = time.perf_counter()
        result = aug.run_experiment(args.caches, test_ids, cfg, pipe_factory=pipe_factory, model_id=model_id,
                                    synthetic_cache=args.synthetic_cache, judge=judge,
                                    log=None if args.quiet else lambda m: print(m, flush=True))
        extra = {"model": _rel(model_path), "caches": [_rel(c) for c in args.caches],
                 "classifier": _rel(args.classifier),
                 "command": "python " + " ".join(_rel(a) for a in sys.argv), "wall_time_total_s": time.perf_counter() - t}
        files = aug.write_results(result, args.out, cfg, extra=extra)
        aug.write_readme(result, args.out, cfg, extra)
    except GalaxySDError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(aug.format_table(result["summary"]))
    print(f"\n{len(result['runs'])} runs in {result['info']['wall_time_s']:.0f} s "
          f"(generation {result['info']['generation_s']:.0f} s); wrote {', '.join(files.values())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
