"""``galaxysd detg scan``: rank the galaxies of any catalog as dusty early-type (D-ETG) candidates.

Examples
--------
::

    galaxysd detg scan --detector assets/detg_detector --catalog DATA/gz2_cutouts/labels.csv --out d.csv
    galaxysd detg scan --detector assets/detg_detector \\
        --catalog DATA/gz2_cutouts/labels.csv DATA/gz1_sdss/labels.csv DATA/gz2_examples/labels.csv \\
        --out runs/detg/candidates.csv --engine dask --n-workers 2
    galaxysd detg scan --detector DIR --catalog my_images.csv --images-dir my_images/ --out d.csv

Writes ``FILE.csv`` ranked by ``score = p_dust x p_early`` (the D-ETG definition of
:mod:`galaxysd_core.science.detg_definition`: a dust lane and no spiral arms) with ``rank, id,
score, p_dust, p_dust_cnn, p_smooth, p_artifact, p_spiral, p_early, dust_vote_pred, ra, dec,
position_from, skyserver_url, legacy_url, source, image_path, score_from`` (+ ``known_caption``,
``dust_lane_votes`` where the catalog has labels), and next to it ``FILE.ecsv`` (for the
Candidates page), ``FILE.provenance.json`` (detector, classifier, catalogs, versions) and
``FILE.skipped.csv`` (unreadable images and catalog rows left out, e.g. without an image path or
repeating an id, each with the reason naming the file and line). Every source is cropped to the galaxy scale the
detector was trained at (``--crop-fraction auto``). Galaxies the detector was trained on keep
their out-of-fold score (``score_from = out_of_fold``); with a detector that has none they are
left out (``--include-training`` keeps them, flagged). Logic: :mod:`galaxysd_core.science.detg_catalog`.
"""
from __future__ import annotations

import argparse
import sys
import warnings

from galaxysd_core.errors import GalaxySDValueError

#: Skipped images listed on stderr (all are in the .skipped.csv file).
SHOW_SKIPPED = 20


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register the ``detg`` command group (``detg scan``)."""
    from galaxysd_core.cli.data import crop_fraction_arg
    from galaxysd_core.config import DEFAULT_CLASSIFIER_DIR
    from galaxysd_core.science.scan import ENGINES

    p = subparsers.add_parser("detg", help="dusty early-type galaxy (D-ETG) candidates",
                              description="D-ETG search with a trained detector (train/search_detg.py).")
    sub = p.add_subparsers(dest="detg_command", required=True)
    s = sub.add_parser("scan", help="score and rank every image of catalogs",
                       description="Score every image of one or more catalogs with a D-ETG detector and "
                                   "classifier v2; write the ranked candidate catalog.")
    s.add_argument("--detector", required=True, help="detector folder (assets/detg_detector: train/cv_dust_ranker.py)")
    s.add_argument("--catalog", nargs="+", required=True,
                   help="catalog CSV(s) with an image column (image paths relative to the CSV's folder or "
                        "--images-dir); GZ2 vote tables and GZ1 labels are understood")
    s.add_argument("--images-dir", help="folder the image paths are relative to")
    s.add_argument("--out", required=True, help="output CSV (the .ecsv/.provenance.json/.skipped.csv go next to it)")
    s.add_argument("--classifier", default=str(DEFAULT_CLASSIFIER_DIR),
                   help="morphology classifier v2 (early-type gate; default: shipped)")
    s.add_argument("--crop-fraction", type=crop_fraction_arg, default="auto",
                   help="central crop: a number in (0, 1] or 'auto' (default: match each catalog's galaxy size to "
                        "gz2_cutouts at full frame, the scale the detector was trained at)")
    s.add_argument("--engine", choices=ENGINES, default="local", help="scan engine")
    s.add_argument("--n-workers", type=int, default=2, help="dask workers / ray CPUs")
    s.add_argument("--workers", type=int, default=2, help="local engine: decode threads")
    s.add_argument("--threads", type=int, default=1, help="torch threads (local engine)")
    s.add_argument("--batch-size", type=int, default=128)
    s.add_argument("--chunk-size", type=int, default=1024, help="files per dask/ray task")
    s.add_argument("--address", default=None, help="dask scheduler or ray cluster address")
    s.add_argument("--top", type=int, default=None, help="keep only the N best rows (default: all)")
    s.add_argument("--include-training", action="store_true",
                   help="keep the detector's training/validation galaxies (flagged in used_in_training)")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=run_scan)
    m = sub.add_parser("similar", help="the galaxies of a catalog most like one of them (classifier v2 embedding)",
                       description="More like this: the k nearest neighbours of a catalog galaxy in classifier v2's "
                                   "embedding (cosine similarity). The index is built once per catalog and cached "
                                   "under $GALAXYSD_HOME (default ~/.galaxysd).")
    m.add_argument("--catalog", required=True, help="candidate catalog (.ecsv or .csv, e.g. a `detg scan` output)")
    m.add_argument("id", help="id of the galaxy to find more of")
    m.add_argument("-k", type=int, default=20, help="neighbours to list (default 20)")
    m.add_argument("--images-dir", help="folder the image paths are relative to (default: the catalog's rule)")
    m.add_argument("--classifier", default=str(DEFAULT_CLASSIFIER_DIR), help="classifier v2 (default: shipped)")
    m.add_argument("--out", default=None, help="also write the neighbours to this CSV")
    m.set_defaults(func=run_similar)
    return p


def run_similar(args: argparse.Namespace) -> int:
    """``galaxysd detg similar``: print (and optionally write) the k most similar galaxies."""
    from galaxysd_core import config
    from galaxysd_core.models.classifier import MorphologyClassifier
    from galaxysd_core.science.candidates import read_candidates
    from galaxysd_core.science.similarity import catalog_index
    from galaxysd_core.science.synthetic import model_fingerprint

    cat = read_candidates(args.catalog, images_dir=args.images_dir)
    judge = MorphologyClassifier.from_pretrained(args.classifier)
    index = catalog_index(cat, judge, cache_dir=config.state_dir() / "similarity",
                          classifier_id=model_fingerprint(args.classifier))
    res = index.similar(args.id, args.k)
    info = cat.table.set_index("id")
    for c in ("score", "ra", "dec", "source"):
        if c in info.columns:
            res[c] = res["id"].map(info[c])
    print(res.to_string(index=False))
    if args.out:
        res.to_csv(args.out, index=False)
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


def run_scan(args: argparse.Namespace) -> int:
    from galaxysd_core import config
    from galaxysd_core.cli.data import _resolve
    from galaxysd_core.science.detg_catalog import records_from_catalogs, scan_catalog, write_catalog

    if args.batch_size < 1 or args.workers < 0 or args.threads < 1 or args.n_workers < 1:
        raise GalaxySDValueError("--batch-size, --threads and --n-workers must be >= 1 and --workers >= 0")
    if args.top is not None and args.top < 1:
        raise GalaxySDValueError(f"--top must be a positive number of rows, got {args.top}")
    catalogs = [_resolve(c, "--catalog") for c in args.catalog]
    left_out: list = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        records = records_from_catalogs(catalogs, images_dir=_resolve(args.images_dir, "--images-dir"),
                                        crop_fraction=args.crop_fraction, skipped=left_out)
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    data_dir = config.data_dir()
    kw = dict(batch_size=args.batch_size, workers=args.workers, threads=args.threads, chunk_size=args.chunk_size,
              n_workers=args.n_workers, address=args.address)
    res = scan_catalog(records, _resolve(args.detector, "--detector"), classifier_dir=args.classifier,
                       exclude_training=not args.include_training, data_dir=data_dir, top_n=args.top,
                       engine=args.engine, scan_kwargs=kw, progress=not args.quiet,
                       catalogs=[str(c) for c in catalogs], left_out=left_out)
    files = write_catalog(res, args.out, data_dir_relative=data_dir is not None)
    for _, s in res.skipped.head(SHOW_SKIPPED).iterrows():
        print(f"skipped {s['image_path'] or s['id']}: {s['reason']}", file=sys.stderr)
    if len(res.skipped) > SHOW_SKIPPED:
        print(f"... {len(res.skipped) - SHOW_SKIPPED} more", file=sys.stderr)
    p = res.provenance
    rows = f"{p['n_rows_left_out']} catalog rows left out and " if p["n_rows_left_out"] else ""
    print(f"scanned {p['n_records']} images at {res.rate:.0f}/s ({rows}{p['n_skipped']} skipped, listed in "
          f"{files['skipped']}; {p['n_training_excluded']} training galaxies left out) -> {args.out} "
          f"({len(res.table)} rows)")
    return 0
