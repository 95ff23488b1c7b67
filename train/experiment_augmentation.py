"""Augmentation experiment: does GalaxySD synthetic data help rare-class classifiers? (thin wrapper)

Trains the same one-head 128 px classifier (stem stride 4) with (a) real data only, (b) real +
synthetic galaxies generated from the class caption, (c) oversampling + flips/rotations, (d) focal
loss (Lin et al. 2017), (e) synthetic + oversampling + flips, for the rare classes with real GZ2
vote labels (dust lane, merger, ring, bar) and edge-on as a common control, with 10 / 30 / 100 /
all real positives and several seeds, and measures purity, completeness, F1 and average precision
on the fixed held-out real test split of the shipped classifier (GalaxySD Sec. 4.1-4.2). All logic
lives in :mod:`galaxysd_core.science.augmentation` (the experiment) and
:mod:`galaxysd_core.science.augmentation_report` (running it, writing its results, and
``metrics_page_content`` for the Metrics page: table, grouped-bar figures, discussion).

Full run (after the 128 px GalaxySD-mini v2 replaces assets/galaxysd-mini)::

    OMP_NUM_THREADS=1 python train/experiment_augmentation.py --model assets/galaxysd-mini \
        --caches cache/gz2_cutouts_128 --out assets/augmentation
    # 5 tasks x (10/30/100/all; shots >= the training positives are skipped: 17 settings) x 5 arms x
    # 3 seeds = 255 runs of 150 steps x 32 images at 128 px (0.11 CPU-s per step + ~2 s scoring the
    # 1,148 test galaxies: ~19 CPU-s per run, ~80 CPU-min) plus 5 x 192 synthetic images from the 128 px
    # v2 model (generated once, cached; ~10-15 CPU-min): ~1.5 CPU-hours; two processes with disjoint
    # --tasks (e.g. dust-lane merger ring / bar edge-on) use both cores: ~50 min wall.

``--quick`` runs a tiny version (2 seeds, 10 positives, 20 steps at 64 px) to check the set-up;
``--model random`` uses an untrained GalaxySD-mini (the set-up, not the science).
"""
from __future__ import annotations

import os
import sys

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

from galaxysd_core.config import DEFAULT_CLASSIFIER_DIR, OUTPUT_DIR_NAME, output_dir  # noqa: E402
from galaxysd_core.errors import GalaxySDError  # noqa: E402
from galaxysd_core.science.augmentation import ARMS, experiment_config  # noqa: E402
from galaxysd_core.science.augmentation_report import format_table, merge_results, run_and_report  # noqa: E402
from galaxysd_core.science.binary_tasks import TASKS  # noqa: E402
from galaxysd_core.science.script_support import science_parser, script_command  # noqa: E402


def main(argv=None) -> int:
    p = science_parser(__doc__)
    p.add_argument("--classifier", default=str(DEFAULT_CLASSIFIER_DIR),
                   help="shipped classifier folder: its split_test_ids.csv is the held-out test set, and it "
                        "judges the synthetic images")
    p.add_argument("--out", default=str(output_dir("augmentation")),
                   help=f"output folder (default ./{OUTPUT_DIR_NAME}/augmentation; pass --out assets/augmentation "
                        f"to replace the shipped results)")
    p.add_argument("--tasks", nargs="+", default=None, choices=list(TASKS))
    p.add_argument("--arms", nargs="+", default=None, choices=list(ARMS))
    p.add_argument("--seeds", type=int, nargs="+", default=None)
    p.add_argument("--shots", type=int, nargs="+", default=None, help="real positives per run; 0 = all")
    p.add_argument("--steps", type=int, default=None, help="optimiser steps per run (same for every arm)")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--n-negatives", type=int, default=None, help="real negatives drawn per seed")
    p.add_argument("--n-synthetic", type=int, default=None, help="synthetic positives per class")
    p.add_argument("--guidance", type=float, default=None, help="classifier-free guidance of the generation")
    p.add_argument("--focal-gamma", type=float, default=None)
    p.add_argument("--focal-alpha", type=float, default=None)
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--merge", nargs="+", metavar="DIR", default=None,
                   help="no training: merge result folders run in parallel with disjoint --tasks into --out")
    args = p.parse_args(argv)
    if args.merge:
        try:
            result, files = merge_results(args.merge, args.out)
        except (GalaxySDError, OSError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(format_table(result["summary"]))
        print(f"\nmerged {len(result['runs'])} runs of {len(args.merge)} folders; wrote {', '.join(files.values())}")
        return 0

    import torch

    torch.set_num_threads(args.threads)
    try:
        cfg = experiment_config(args.quick, tasks=args.tasks, arms=args.arms, seeds=args.seeds, shots=args.shots,
                                n_negatives=args.n_negatives, n_synthetic=args.n_synthetic,
                                guidance_scale=args.guidance, steps=args.steps, batch_size=args.batch_size,
                                focal_gamma=args.focal_gamma, focal_alpha=args.focal_alpha)
        result, files = run_and_report(args.caches, args.out, cfg, model=args.model, classifier_dir=args.classifier,
                                       synthetic_cache=args.synthetic_cache, command=script_command(sys.argv),
                                       log=None if args.quiet else lambda m: print(m, flush=True))
    except GalaxySDError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_table(result["summary"]))
    print(f"\n{len(result['runs'])} runs in {result['info']['wall_time_s']:.0f} s "
          f"(generation {result['info']['generation_s']:.0f} s); wrote {', '.join(files.values())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
