"""Effect-versus-strength curves of guidance per feature and the default strength of every feature (thin wrapper).

Writes into the model folder: ``feature_defaults.json`` (read by the pipeline, the CLI and the app's
sliders), ``metrics/feature_curves.csv``, ``metrics/feature_defaults.csv``, ``feature_curves.png``
and the card section "Guidance per feature". Logic: :mod:`galaxysd_core.evaluation.feature_curves`.

    OMP_NUM_THREADS=2 python train/feature_defaults.py --model assets/galaxysd-mini \\
        --reference-caches cache/gz2_cutouts_128 --n 32
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
    p.add_argument("--classifier", default=str(gconfig.DEFAULT_CLASSIFIER_DIR))
    p.add_argument("--reference-caches", nargs="*", default=[], help="prepared caches of real galaxies (spread, precision)")
    p.add_argument("--n", type=int, default=32, help="seeds per point")
    p.add_argument("--phrases", nargs="*", default=None, help="features to measure (default: >= 30 captions + dust lane)")
    p.add_argument("--strengths", type=float, nargs="+", default=None)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    import torch
    from tqdm import tqdm

    from galaxysd_core.evaluation.feature_curves import CURVE_STRENGTHS, release_feature_defaults
    from galaxysd_core.evaluation.reference import RealReference
    from galaxysd_core.models.classifier import MorphologyClassifier

    torch.set_num_threads(a.threads)
    try:
        judge = MorphologyClassifier.from_pretrained(a.classifier)
        real = RealReference.from_caches(a.reference_caches) if a.reference_caches else None
        bar = tqdm(desc="feature curves", unit="point")

        def progress(done, total):
            bar.total = total
            bar.n = done
            bar.refresh()

        res = release_feature_defaults(a.model, judge, real=real, phrases=a.phrases, n=a.n,
                                       strengths=tuple(a.strengths or CURVE_STRENGTHS), progress=progress)
        bar.close()
    except GalaxySDError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(res["table"].to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
