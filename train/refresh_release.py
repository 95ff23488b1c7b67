#!/usr/bin/env python
"""Measure a released model folder again at its recommended settings (thin wrapper).

For a folder whose sky-noise model changed (e.g. to the measured power spectrum): measures the
noise model again (``sky_noise.json``), then the evaluation at the recommended settings, the
feature on/off effects, the dust-lane sweep, the sky background, the sample grid and Figure 3, and
replaces those sections of the card; the guidance sweep, the recommended settings and the training
snapshots are kept. Logic: :func:`galaxysd_core.evaluation.release.refresh_at_defaults`.

    OMP_NUM_THREADS=2 python train/refresh_release.py --model assets/galaxysd-mini \\
        --caches cache/gz2_cutouts_128 cache/gz1_sdss_128 cache/gz2_examples_128 -n 64
"""
from __future__ import annotations

import argparse
import logging
import sys

from galaxysd_core import config as gconfig
from galaxysd_core.errors import GalaxySDError


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=str(gconfig.DEFAULT_MODEL_DIR))
    p.add_argument("--caches", nargs="+", required=True, help="prepared caches of real galaxies (reference)")
    p.add_argument("-n", type=int, default=64, help="images per prompt (default 64, as the release)")
    p.add_argument("--note", default=None, help="a dated line for the card's section at the recommended settings")
    p.add_argument("--keep-noise", action="store_true", help="keep sky_noise.json (already measured again)")
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    import torch

    from galaxysd_core.evaluation.release import refresh_at_defaults

    torch.set_num_threads(a.threads)
    try:
        print(f"rewrote {refresh_at_defaults(a.model, a.caches, n=a.n, note=a.note, measure_noise=not a.keep_noise)}")
    except GalaxySDError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
