"""D-ETG search: synthetic dusty early types -> detector -> scan of every real galaxy -> catalog (thin wrapper).

Generates synthetic D-ETGs with feature-weighted prompts (dust-lane weight sweep), trains a
detector on them + the real dust-lane examples against real early types, scans every real galaxy
image with the chosen engine and writes ``candidates.csv`` / ``candidates.ecsv`` (provenance in
the ECSV metadata and ``provenance.json``), ``heldout_ranks.csv`` and the detector to ``--out``.
All logic lives in :mod:`galaxysd_core.science.detg_search` (with ``detg_config``, ``detg_heldout``
and ``detg_catalog``) and :mod:`galaxysd_core.science.scan`.

Examples::

    OMP_NUM_THREADS=1 python train/search_detg.py --model assets/galaxysd-mini \\
        --caches cache/gz1_64 cache/gz2_examples_64 --data-dir ../shared/data --out assets/detg_candidates
    python train/search_detg.py ... --engine dask --n-workers 2      # or --engine ray
    # re-scan with a saved detector (e.g. the full GZ2 release), no generation or training:
    python train/search_detg.py --scan-only assets/detg_candidates/detector --caches cache/gz2_full_64 ...
"""
from __future__ import annotations

import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

from galaxysd_core import config as gconfig  # noqa: E402
from galaxysd_core.errors import GalaxySDError  # noqa: E402
from galaxysd_core.science.detg_catalog import scan_catalog  # noqa: E402
from galaxysd_core.science.detg_config import search_config  # noqa: E402
from galaxysd_core.science.detg_heldout import summarize_heldout  # noqa: E402
from galaxysd_core.science.detg_search import run_search  # noqa: E402
from galaxysd_core.science.scan import ENGINES  # noqa: E402
from galaxysd_core.science.script_support import load_judge, science_parser  # noqa: E402
from galaxysd_core.science.synthetic import generator_factory  # noqa: E402


def main(argv=None) -> int:
    p = science_parser(__doc__, caches_help="prepared caches of the real galaxies (their index gives the image "
                                            "files to scan)")
    p.add_argument("--data-dir", default=None, help="real-data folder; catalog image paths are written relative "
                                                    "to it (default: $GALAXYSD_DATA_DIR)")
    p.add_argument("--out", default=str(gconfig.output_dir("detg_candidates")),
                   help=f"output folder (default ./{gconfig.OUTPUT_DIR_NAME}/detg_candidates; pass --out "
                        f"assets/detg_candidates to replace the shipped catalog)")
    p.add_argument("--classifier", default=str(gconfig.DEFAULT_CLASSIFIER_DIR),
                   help="shipped classifier, judges the synthetic images (smooth? edge-on?)")
    p.add_argument("--engine", choices=ENGINES, default="local", help="scan engine")
    p.add_argument("--n-workers", type=int, default=2, help="dask workers / ray CPUs")
    p.add_argument("--workers", type=int, default=2, help="local engine: decode threads")
    p.add_argument("--batch-size", type=int, default=64, help="inference batch")
    p.add_argument("--chunk-size", type=int, default=1024, help="files per dask/ray task")
    p.add_argument("--address", default=None, help="dask scheduler or ray cluster address")
    p.add_argument("--weights", type=float, nargs="+", default=None, help="dust-lane weight sweep")
    p.add_argument("--shapes", nargs="+", default=None, help="roundness phrases of the prompts")
    p.add_argument("--n-per-prompt", type=int, default=None)
    p.add_argument("--guidance", type=float, default=None)
    p.add_argument("--steps", type=int, default=None, help="detector training steps")
    p.add_argument("--n-negatives", type=int, default=None)
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="detector seeds of the held-out test")
    p.add_argument("--top", type=int, default=None, help="catalog rows")
    p.add_argument("--no-heldout", action="store_true", help="skip the leave-one-out evaluation")
    p.add_argument("--scan-only", metavar="DETECTOR_DIR", default=None,
                   help="only scan with a saved detector and write the catalog (no generation/training)")
    args = p.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    data_dir = gconfig.data_dir(args.data_dir)
    scan_kwargs = dict(batch_size=args.batch_size, workers=args.workers, threads=args.threads,
                       chunk_size=args.chunk_size, n_workers=args.n_workers, address=args.address)
    try:
        if args.scan_only:
            res, files = scan_catalog(args.scan_only, args.caches, args.out, data_dir=data_dir, engine=args.engine,
                                      top_n=args.top, scan_kwargs=scan_kwargs)
            print(f"scanned {len(res.table)} galaxies at {res.rate:.0f}/s; wrote {files}")
            return 0
        cfg = search_config(args.quick, dust_weights=args.weights, shapes=args.shapes, n_per_prompt=args.n_per_prompt,
                            guidance_scale=args.guidance, n_negatives=args.n_negatives, heldout_seeds=args.seeds,
                            top_n=args.top, steps=args.steps)
        pipe_factory, model_id, model_path = generator_factory(args.model)
        judge = load_judge(args.classifier, required=False)
        t = time.perf_counter()
        res = run_search(args.caches, cfg, pipe_factory=pipe_factory, model_id=model_id, model_path=model_path,
                         synthetic_cache=args.synthetic_cache, out_dir=args.out, data_dir=data_dir,
                         engine=args.engine, scan_kwargs=scan_kwargs, heldout=not args.no_heldout, judge=judge,
                         log=lambda m: print(m, flush=True))
    except GalaxySDError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    prov = res["provenance"]
    print(f"\nscan: {prov['scan']['n_scanned']} galaxies, {prov['scan']['galaxies_per_s']:.0f} galaxies/s "
          f"({args.engine})")
    print(res["catalog"].head(10).to_string(index=False))
    if res["heldout"] is not None:
        print("\nheld-out ranks (lower is better):")
        print(summarize_heldout(res["heldout"]).to_string(index=False))
    print(f"\nwrote {', '.join(res['files'].values())} in {time.perf_counter() - t:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
