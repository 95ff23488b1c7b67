#!/usr/bin/env python
"""Ship a trained GalaxySD run: copy its final model into ``assets/``, evaluate it, write its card.

Writes into ``--out`` (default ``assets/galaxysd-mini``): the pipeline folder, ``metrics/`` (guidance
sweep with the quality-bar prompts, dust-lane weight sweep, metrics of every training snapshot,
the training set's morphology distribution, the real-image benchmark), an 8 prompts x 8 seeds sample
grid and the model card ``README.md``. The protocol is
:func:`galaxysd_core.evaluation.release.release_model`.

Usage::

    python train/finalize_model.py --run runs/galaxysd-mini --caches cache/gz1_64 cache/gz2_examples_64 \\
        --bench-file runs/bench_generate.txt
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from galaxysd_core.errors import GalaxySDError
from galaxysd_core.evaluation.release import release_model


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, help="training output folder (with model/ and snapshots/)")
    p.add_argument("--out", default="assets/galaxysd-mini")
    p.add_argument("--caches", nargs="+", required=True, help="prepared caches of real galaxies (reference)")
    p.add_argument("-n", type=int, default=64, help="images per prompt and sweep point (default 64)")
    p.add_argument("--n-checkpoints", type=int, default=32, help="images per prompt for each snapshot")
    p.add_argument("--bench-file", default=None, help="text printed by bench/bench_generate.py")
    p.add_argument("--skip-copy", action="store_true", help="model already copied; only evaluate")
    p.add_argument("--skip-checkpoints", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    bench = Path(args.bench_file).read_text() if args.bench_file else None
    try:
        card = release_model(args.run, args.out, args.caches, n=args.n, n_checkpoints=args.n_checkpoints,
                             bench_text=bench, copy=not args.skip_copy, checkpoints=not args.skip_checkpoints)
    except GalaxySDError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {card}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
