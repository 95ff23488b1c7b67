#!/usr/bin/env python
"""Ship a trained GalaxySD run: copy its final model into ``assets/``, evaluate it, write its card.

Writes into ``--out`` (default ``assets/galaxysd-mini``): the pipeline folder with its measured
``sky_noise.json`` and ``generation_defaults.json``, ``metrics/`` (VAE reconstruction, guidance x
negative-prompt sweep and its front, evaluation at the chosen defaults, feature on/off effects,
dust-lane sweep, sky background, metrics of every training snapshot, the real-image benchmark),
the sample grids (incl. GalaxySD's Figure 3) and the model card ``README.md``. The protocol is
:func:`galaxysd_core.evaluation.release.release_model`.

Usage::

    python train/finalize_model.py --run runs/galaxysd-mini-v2 \\
        --caches cache/gz2_cutouts_128 cache/gz1_sdss_128 cache/gz2_examples_128 --bench-file runs/bench_generate.txt
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
    p.add_argument("-n", type=int, default=64, help="images per prompt at the defaults and per side of each "
                                                   "feature test (default 64)")
    p.add_argument("--n-sweep", type=int, default=32, help="images per prompt and guidance setting (default 32)")
    p.add_argument("--n-checkpoints", type=int, default=32, help="images per prompt for each snapshot")
    p.add_argument("--bench-file", default=None, help="text printed by bench/bench_generate.py")
    p.add_argument("--skip-copy", action="store_true", help="model already copied; only evaluate")
    p.add_argument("--skip-checkpoints", action="store_true")
    p.add_argument("--reuse-sweep", action="store_true",
                   help="same model as the last release: re-use its metrics/guidance_sweep.csv (saves the sweep)")
    p.add_argument("--notes-file", default=None,
                   help="hand-written reading of the numbers for the card: one note per non-empty line")
    p.add_argument("--card-only", action="store_true", help="rewrite only the card from the folder's metrics")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    bench = Path(args.bench_file).read_text() if args.bench_file else None
    notes = ([line.strip().lstrip("- ") for line in Path(args.notes_file).read_text().splitlines() if line.strip()]
             if args.notes_file else [])
    try:
        if args.card_only:
            from galaxysd_core.evaluation.model_card import write_model_card

            print(write_model_card(Path(args.out), Path(args.run), bench_text=bench, notes=notes))
            return 0
        card = release_model(args.run, args.out, args.caches, n=args.n, n_sweep=args.n_sweep,
                             n_checkpoints=args.n_checkpoints,
                             bench_text=bench, copy=not args.skip_copy, checkpoints=not args.skip_checkpoints,
                             reuse_sweep=args.reuse_sweep, notes=notes)
    except GalaxySDError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {card}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
