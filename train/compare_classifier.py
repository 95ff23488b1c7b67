"""Compare classifier configurations (vote likelihood, input resolution) on the same split (thin wrapper).

Example (the measurement behind the shipped classifier's loss and resolution)::

    python train/compare_classifier.py --cache cache/gz2_cutouts_128 cache/gz1_sdss_128 cache/gz2_examples_128 \\
        --arms dirichlet:64 softmax:64 dirichlet:128:4 --max-minutes 4 --out runs/classifier_compare.csv

Each arm is ``output:size[:stem_stride]``. All logic lives in
:func:`galaxysd_core.evaluation.classifier_experiments.compare_arms`.
"""
from __future__ import annotations

import argparse
import logging
import sys

from galaxysd_core.errors import GalaxySDError
from galaxysd_core.evaluation.classifier_experiments import compare_arms, evaluate_saved, summarize
from galaxysd_core.training.classifier import TrainSettings


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cache", nargs="+", required=True, metavar="DIR", help="prepared cache folder(s)")
    p.add_argument("--arms", nargs="+", required=True, help="output:size[:stem], e.g. dirichlet:64 softmax:64")
    p.add_argument("--max-minutes", type=float, default=4.0, help="wall-clock budget of each arm")
    p.add_argument("--epochs", type=int, default=TrainSettings.epochs)
    p.add_argument("--batch-size", type=int, default=TrainSettings.batch_size)
    p.add_argument("--lr", type=float, default=TrainSettings.learning_rate)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="CSV to write (one row per arm and head)")
    p.add_argument("--evaluate-only", action="store_true",
                   help="measure the arms saved by an earlier run (next to --out) again, without training")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    settings = TrainSettings(epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.lr,
                             max_minutes=args.max_minutes, seed=args.seed, threads=args.threads)
    try:
        if args.evaluate_only:
            table = evaluate_saved(args.cache, args.arms, args.out)
        else:
            table = compare_arms(args.cache, args.arms, args.out, settings=settings)
    except GalaxySDError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(summarize(table).to_string(index=False))
    print(table[["arm", "phrase", "auc", "auc_votes", "auc_conditional"]].to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
