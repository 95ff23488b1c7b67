"""D-ETG detector experiment and catalog: arms (a) real votes, (b) + synthetic D-ETGs, (c) synthetic only (thin wrapper).

1. Trains the same one-head 128 px detector on (a) the real GZ2 galaxies with their dust-lane votes,
   (b) those plus synthetic D-ETGs from weighted prompts (dust-lane weight sweep, smooth and
   in-between shapes; GalaxySD Sec. 4.3) and dust-free synthetic negatives, (c) the synthetic set
   plus undusty real negatives only, over several seeds; measures each on the classifier's held-out
   split (dust-lane votes as truth: ROC AUC, AP, recall in the top 1 % / 5 %); chooses every arm's
   best seed and the best arm on a validation split; writes the detectors (best arm at the top of
   ``--out``, every arm under ``--out/arms/<arm>``), tables, config and cards.
2. With ``--catalog-out DIR``: scans every galaxy of ``--scan-caches`` with the best detector and
   classifier v2, leaves the training galaxies out and writes the ranked catalog
   ``DIR/candidates.csv`` (+ ``.ecsv``, ``.provenance.json``, ``.skipped.csv``).

Logic: :mod:`galaxysd_core.science.detg_experiment` (with ``detg_config``, ``detg_data``,
``detg_results``), :mod:`galaxysd_core.science.detg_catalog`, :mod:`galaxysd_core.science.scan`.

Full runs (after the 128 px GalaxySD-mini v2 replaces assets/galaxysd-mini)::

    OMP_NUM_THREADS=2 python train/search_detg.py --model assets/galaxysd-mini --threads 2 \\
        --caches cache/gz2_cutouts_128 --out assets/detg_detector \\
        --catalog-out assets/detg_candidates --data-dir ../shared/data --top 2000
    # CPU estimate (measured 0.11 CPU-s per training step of 32 images at 128 px, stem stride 4, one thread):
    # 9 detector runs (3 arms x 3 seeds) x 1500 steps ~ 25 CPU-min; held-out scoring + classifier components
    # ~1 CPU-min; generating 576 synthetic images with the 128 px v2 model (30 DDIM steps) ~5-10 CPU-min
    # (measure: cached afterwards); catalog scan of 14,301 galaxies with classifier v2 ~1-2 CPU-min.
    # In all ~35-40 CPU-min, i.e. ~25 min wall with --threads 2 on 2 free cores.

    # re-scan with a saved detector (any arm), no training:
    python train/search_detg.py --catalog-only assets/detg_detector/arms/real --catalog-out runs/detg_real
    # or any catalog: galaxysd detg scan --detector assets/detg_detector --catalog CSV ... --out FILE.csv

``--quick`` runs a tiny version (2 prompts x 4 images, 2 seeds, 10 steps at 64 px) to check the set-up;
``--model random`` uses an untrained GalaxySD-mini (the set-up, not the science).
"""
from __future__ import annotations

import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

from galaxysd_core import config as gconfig  # noqa: E402
from galaxysd_core.errors import GalaxySDError  # noqa: E402
from galaxysd_core.science.detg_catalog import records_from_caches, scan_catalog, write_catalog  # noqa: E402
from galaxysd_core.science.detg_config import DETECTOR_ARMS, SELECT_METRICS, detg_config  # noqa: E402
from galaxysd_core.science.detg_experiment import run_detector_experiment  # noqa: E402
from galaxysd_core.science.detg_results import format_summary, write_experiment  # noqa: E402
from galaxysd_core.science.scan import ENGINES  # noqa: E402
from galaxysd_core.science.script_support import (SCAN_CACHES, load_judge, repo_relative, science_parser,  # noqa: E402
                                                  script_command)
from galaxysd_core.science.synthetic import generator_factory  # noqa: E402


def main(argv=None) -> int:
    p = science_parser(__doc__, caches_help="prepared caches with GZ2 votes (train / validation / test)")
    p.add_argument("--classifier", default=str(gconfig.DEFAULT_CLASSIFIER_DIR),
                   help="classifier v2: held-out ids (split_test_ids.csv), early-type gate, baseline")
    p.add_argument("--out", default=str(gconfig.output_dir("detg_detector")),
                   help=f"detector/results folder (default ./{gconfig.OUTPUT_DIR_NAME}/detg_detector; "
                        f"--out assets/detg_detector ships it)")
    p.add_argument("--arms", nargs="+", choices=list(DETECTOR_ARMS), default=None)
    p.add_argument("--seeds", type=int, nargs="+", default=None)
    p.add_argument("--steps", type=int, default=None, help="detector training steps (same for every arm)")
    p.add_argument("--train-batch-size", type=int, default=None)
    p.add_argument("--real-labels", choices=("soft", "hard"), default=None)
    p.add_argument("--weights", type=float, nargs="+", default=None, help="dust-lane weight sweep")
    p.add_argument("--shapes", nargs="+", default=None, help="roundness phrases of the prompts")
    p.add_argument("--n-per-prompt", type=int, default=None)
    p.add_argument("--n-synthetic-negatives", type=int, default=None, help="dust-free synthetic galaxies per shape")
    p.add_argument("--guidance", type=float, default=None)
    p.add_argument("--select-metric", choices=SELECT_METRICS, default=None)
    p.add_argument("--catalog-out", default=None, help="also scan --scan-caches and write DIR/candidates.csv")
    p.add_argument("--catalog-only", metavar="DETECTOR_DIR", default=None,
                   help="no training: scan with this saved detector (needs --catalog-out)")
    p.add_argument("--scan-caches", nargs="+", default=[str(c) for c in SCAN_CACHES],
                   help="caches whose galaxies the catalog scans (their index lists the image files)")
    p.add_argument("--data-dir", default=None, help="real-data folder; catalog image paths are written relative to it")
    p.add_argument("--engine", choices=ENGINES, default="local", help="scan engine")
    p.add_argument("--n-workers", type=int, default=2, help="dask workers / ray CPUs")
    p.add_argument("--workers", type=int, default=2, help="local engine: decode threads")
    p.add_argument("--batch-size", type=int, default=128, help="scan inference batch")
    p.add_argument("--chunk-size", type=int, default=1024, help="files per dask/ray task")
    p.add_argument("--address", default=None, help="dask scheduler or ray cluster address")
    p.add_argument("--top", type=int, default=None, help="catalog rows (default: all)")
    args = p.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    say = lambda m: print(m, flush=True)  # noqa: E731
    t = time.perf_counter()
    try:
        detector_dir = args.catalog_only
        if detector_dir is None:
            from galaxysd_core.training.classifier_data import load_test_ids

            cfg = detg_config(args.quick, arms=args.arms, seeds=args.seeds, steps=args.steps,
                              batch_size=args.train_batch_size, real_labels=args.real_labels,
                              dust_weights=args.weights, shapes=args.shapes, n_per_prompt=args.n_per_prompt,
                              n_synthetic_negatives=args.n_synthetic_negatives, guidance_scale=args.guidance,
                              select_metric=args.select_metric)
            pipe_factory, model_id, model_path = generator_factory(args.model)
            judge = load_judge(args.classifier)
            res = run_detector_experiment(args.caches, load_test_ids(args.classifier), cfg,
                                          pipe_factory=pipe_factory, model_id=model_id,
                                          synthetic_cache=args.synthetic_cache, judge=judge, log=say)
            extra = {"model": repo_relative(model_path), "caches": [repo_relative(c) for c in args.caches],
                     "classifier": repo_relative(args.classifier), "command": script_command(sys.argv)}
            files = write_experiment(res, args.out, cfg, extra)
            print("\nheld-out test, mean ± std over seeds:\n" + format_summary(res.summary))
            print(f"\nbest arm on validation: {res.best_arm}\n{res.verdict['text']}")
            print(f"wrote {files['detector']} (+ arms/, heldout_*.csv, heldout.json)")
            detector_dir = args.out
        if args.catalog_out:
            data_dir = gconfig.data_dir(args.data_dir)
            records = records_from_caches(args.scan_caches)
            kw = dict(batch_size=args.batch_size, workers=args.workers, threads=args.threads,
                      chunk_size=args.chunk_size, n_workers=args.n_workers, address=args.address)
            cat = scan_catalog(records, detector_dir, classifier_dir=args.classifier, data_dir=data_dir,
                               top_n=args.top, engine=args.engine, scan_kwargs=kw,
                               catalogs=[repo_relative(c) for c in args.scan_caches])
            files = write_catalog(cat, os.path.join(args.catalog_out, "candidates.csv"),
                                  data_dir_relative=data_dir is not None)
            pv = cat.provenance
            print(f"\ncatalog: {pv['n_records']} galaxies at {cat.rate:.0f}/s, {pv['n_skipped']} skipped, "
                  f"{pv['n_training_excluded']} training galaxies left out; wrote {', '.join(files.values())}")
            print(cat.table.head(10)[["rank", "id", "score", "p_dust", "p_early", "ra", "dec"]].to_string(index=False))
            import pandas as pd

            print("\nsource shares of the top 500:\n" + pd.DataFrame(pv["source_shares_top500"]).to_string(index=False))
        elif args.catalog_only:
            print("error: --catalog-only needs --catalog-out DIR", file=sys.stderr)
            return 2
    except GalaxySDError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"done in {time.perf_counter() - t:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
