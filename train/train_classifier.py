"""Train the GalaxySD morphology classifier on prepared caches (thin wrapper).

Example (the shipped ``assets/classifier``, v2: GZ2 votes + GZ1 classes + GZ2 examples)::

    python train/train_classifier.py --cache cache/gz2_cutouts_128 cache/gz1_sdss_128 cache/gz2_examples_128 \
        --output dirichlet --image-size 64 --experiments runs/classifier_compare.csv --out assets/classifier

Prepare the caches first with ``galaxysd data prepare ...``. All logic lives in
:func:`galaxysd_core.evaluation.classifier_release.fit_from_caches`.
"""
from __future__ import annotations

import argparse
import sys

from galaxysd_core.config import OUTPUT_DIR_NAME, output_dir
from galaxysd_core.errors import GalaxySDError
from galaxysd_core.evaluation.classifier_release import fit_from_caches, refresh_card
from galaxysd_core.training.classifier import TrainSettings
from galaxysd_core.training.classifier_data import DEFAULT_EXCLUSIVE_SOURCES, DEFAULT_HARD_LABEL_VOTES


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cache", nargs="+", metavar="DIR", help="prepared cache folder(s) (required unless --refresh-card)")
    p.add_argument("--out", default=str(output_dir("classifier")),
                   help=f"output folder (default ./{OUTPUT_DIR_NAME}/classifier; pass --out assets/classifier to "
                        f"replace the shipped classifier)")
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
    p.add_argument("--output", choices=("dirichlet", "softmax", "sigmoid"), default="dirichlet",
                   help="vote likelihood (dirichlet: Dirichlet-multinomial on counts; softmax: soft cross-entropy "
                        "on fractions) or sigmoid (v1: BCE on hard labels)")
    p.add_argument("--image-size", type=int, default=64, help="network input side in pixels")
    p.add_argument("--stem-stride", type=int, default=2, choices=(1, 2, 4), help="input reduction of the stem")
    p.add_argument("--hard-label-votes", type=float, default=DEFAULT_HARD_LABEL_VOTES,
                   help="votes a single label (GZ1 class, GZ2 example) counts as")
    p.add_argument("--experiments", help="CSV of train/compare_classifier.py to summarise in the card")
    p.add_argument("--bench", help="JSON of bench/bench_classifier.py --json to show in the card")
    p.add_argument("--checkpoint-dir", help="save the model here after every epoch")
    p.add_argument("--refresh-card", action="store_true",
                   help="do not train: rewrite --out's card (with --bench / --experiments, and held-out metrics "
                        "measured again on its caches)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    settings = TrainSettings(epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.lr,
                             weight_decay=args.weight_decay, max_minutes=args.max_minutes, seed=args.seed,
                             threads=args.threads, checkpoint_dir=args.checkpoint_dir)
    if args.refresh_card:
        try:
            print(f"rewrote {refresh_card(args.out, bench=args.bench, experiments=args.experiments, reevaluate=True)}")
        except GalaxySDError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        return 0
    if not args.cache:
        p.error("--cache is required")
    try:
        report = fit_from_caches(args.cache, args.out, settings=settings, test_fraction=args.test_fraction,
                                 min_positives=args.min_positives, min_negatives=args.min_negatives,
                                 exclusive_sources=args.exclusive_sources, progress=not args.quiet,
                                 output=args.output, image_size=args.image_size, stem_stride=args.stem_stride,
                                 hard_label_votes=args.hard_label_votes, experiments=args.experiments,
                                 bench=args.bench)
    except GalaxySDError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"saved to {args.out}: {report['n_train']} train / {report['n_test']} test images, "
          f"{report['history']['wall_time_s']:.0f} s")
    for row in report["metrics"]:
        print(f"  {row['phrase']:<26} precision {row['precision']:.3f}  recall {row['recall']:.3f}  "
              f"AUC {row['auc']:.3f}  (test pos {row['n_pos']}, neg {row['n_neg']})"
              + ("" if row.get("meets_goal") is None else "  goal met" if row["meets_goal"] else "  BELOW GOAL"))
    print(f"  consistency of held-out real images with their captions: {report['consistency_on_real_test']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
