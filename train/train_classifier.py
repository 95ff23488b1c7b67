"""Train the GalaxySD morphology classifier on prepared caches (thin wrapper).

Example (the shipped ``assets/classifier``)::

    python train/train_classifier.py --cache cache/gz1_64 cache/gz2_examples_64 --out assets/classifier

Prepare the caches first with ``galaxysd data prepare ...``. All logic lives in
:func:`galaxysd_core.evaluation.classifier_release.fit_from_caches`.
"""
from __future__ import annotations

import argparse
import sys

from galaxysd_core.config import DEFAULT_CLASSIFIER_DIR
from galaxysd_core.errors import GalaxySDError
from galaxysd_core.evaluation.classifier_release import fit_from_caches
from galaxysd_core.training.classifier import TrainSettings
from galaxysd_core.training.classifier_data import DEFAULT_EXCLUSIVE_SOURCES


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cache", nargs="+", required=True, metavar="DIR", help="prepared cache folder(s)")
    p.add_argument("--out", default=str(DEFAULT_CLASSIFIER_DIR), help="output folder (default: assets/classifier)")
    p.add_argument("--epochs", type=int, default=TrainSettings.epochs)
    p.add_argument("--batch-size", type=int, default=TrainSettings.batch_size)
    p.add_argument("--lr", type=float, default=TrainSettings.learning_rate, help="peak AdamW learning rate")
    p.add_argument("--weight-decay", type=float, default=TrainSettings.weight_decay)
    p.add_argument("--max-minutes", type=float, default=TrainSettings.max_minutes,
                   help="wall-clock budget; stops early when exceeded (default %(default)s)")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--test-fraction", type=float, default=0.15, help="held-out share per caption group")
    p.add_argument("--min-positives", type=int, default=30, help="positive labels a head needs")
    p.add_argument("--min-negatives", type=int, default=30, help="negative labels a head needs")
    p.add_argument("--exclusive-sources", nargs="*", default=list(DEFAULT_EXCLUSIVE_SOURCES),
                   help="sources with one exclusive class per galaxy (GZ1); unknown targets become 0")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    settings = TrainSettings(epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.lr,
                             weight_decay=args.weight_decay, max_minutes=args.max_minutes, seed=args.seed,
                             threads=args.threads)
    try:
        report = fit_from_caches(args.cache, args.out, settings=settings, test_fraction=args.test_fraction,
                                 min_positives=args.min_positives, min_negatives=args.min_negatives,
                                 exclusive_sources=args.exclusive_sources, progress=not args.quiet)
    except GalaxySDError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"saved to {args.out}: {report['n_train']} train / {report['n_test']} test images, "
          f"{report['history']['wall_time_s']:.0f} s")
    for row in report["metrics"]:
        print(f"  {row['phrase']:<26} precision {row['precision']:.3f}  recall {row['recall']:.3f}  "
              f"AUC {row['auc']:.3f}  (test pos {row['n_pos']}, neg {row['n_neg']})")
    print(f"  consistency of held-out real images with their captions: {report['consistency_on_real_test']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
