"""Cross-validated dust-lane ranker for the D-ETG search, and the shipped detector (thin wrapper).

1. K-fold cross-validation over every voted galaxy of ``--caches`` (:mod:`galaxysd_core.science.dust_ranker_cv`):
   the dedicated 128 px ranker on dust-lane vote counts, one seed / 8-view flips / a seed ensemble,
   against classifier v2's dust-vote head; ROC AUC, AP and recall in the top 1 % / 5 % with bootstrap
   90 % intervals for the dust-lane and the D-ETG truth (:mod:`galaxysd_core.science.detg_definition`).
   Per-run results go to ``--work-dir`` (a killed run resumes).
2. Chooses the ranker by cross-validated AP on the D-ETG truth, refits it on every voted galaxy and
   writes the detector folder ``--out`` (model, config, card ``README.md``, ``cv_table.csv``,
   ``oof_scores.csv``: the out-of-fold score of every training galaxy, which the catalog uses for them).

Full run (2 cores, ~35 min)::

    OMP_NUM_THREADS=2 python train/cv_dust_ranker.py --caches cache/gz2_cutouts_128 \\
        --work-dir runs/dust_cv --out assets/detg_detector --threads 2

``--quick`` checks the set-up (2 folds, 20 steps, 400 galaxies).
"""
from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import replace

from galaxysd_core import config as gconfig
from galaxysd_core.errors import GalaxySDError


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--caches", nargs="+", default=[str(gconfig.PROJECT_ROOT / "cache" / "gz2_cutouts_128")],
                   help="prepared caches with GZ2 vote counts (gz2_cutouts)")
    p.add_argument("--classifier", default=str(gconfig.DEFAULT_CLASSIFIER_DIR), help="classifier v2 folder")
    p.add_argument("--work-dir", default="runs/dust_cv", help="per-run results (resumable)")
    p.add_argument("--out", default=str(gconfig.output_dir("detg_detector")), help="detector folder to write")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--steps", type=int, default=None, help="training steps per run (default: the shipped recipe)")
    p.add_argument("--n-boot", type=int, default=500, help="bootstrap resamples of the intervals")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--cv-only", action="store_true", help="stop after the cross-validation runs")
    p.add_argument("--quick", action="store_true", help="tiny set-up check")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    import torch

    from galaxysd_core.science.dust_ranker import DEFAULT_SETTINGS
    from galaxysd_core.science.dust_ranker_release import cross_validate_and_release

    torch.set_num_threads(a.threads)
    settings = DEFAULT_SETTINGS if a.steps is None else replace(DEFAULT_SETTINGS, steps=a.steps)
    if a.quick:
        settings = replace(settings, steps=20)
    try:
        res = cross_validate_and_release(a.caches, a.classifier, a.work_dir, a.out, folds=2 if a.quick else a.folds,
                                         seeds=a.seeds[:1] if a.quick else a.seeds, settings=settings,
                                         n_boot=50 if a.quick else a.n_boot, limit=400 if a.quick else None,
                                         cv_only=a.cv_only, command=" ".join(["python"] + sys.argv))
    except GalaxySDError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if res.get("table") is not None:
        t = res["table"]
        print(t[t["subset"] == "classifier_heldout"][["truth", "ranker", "roc_auc", "ap", "recall_at_5pct"]]
              .to_string(index=False))
        print(f"chosen: {res['chosen']} -> {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
