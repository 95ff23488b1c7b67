"""``galaxysd classify``: head probabilities of every image of a catalog or the GZ2 release.

Examples
--------
::

    galaxysd classify --catalog DATA/gz2_cutouts/labels.csv --out runs/gz2_cutouts_classes.csv
    galaxysd classify --catalog my_images.csv --images-dir my_images/ --crop-fraction auto --out classes.csv
    galaxysd classify --source gz2 --root ~/gz2 --out gz2_classes.csv

The catalog needs only an image column (``filename``, ``image_path``, ...) and, optionally, an id
column; labels are ignored. Writes ``id`` plus one probability column per classifier head named by
its Hart et al. (2016) answer column (``t03_bar_a06_bar``, ``t08_odd_feature_a24_merger``, ...);
missing or unreadable images (truncated, tiny, oversized, floating-point) and rows repeating an
earlier row's id are skipped, listed on stderr and in ``<out>.skipped.csv`` with the reason (the
file and line for rows). A catalog that cannot be read at all (not UTF-8, not CSV, no image column,
no rows) is an error naming the file.
"""
from __future__ import annotations

import argparse
import sys
import warnings

from galaxysd_core.cli.data import crop_fraction_arg
from galaxysd_core.cli.generate import add_device_arguments
from galaxysd_core.errors import GalaxySDDataError, GalaxySDValueError

#: Skipped images listed on stderr (all are in the .skipped.csv file).
SHOW_SKIPPED = 20


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register the ``classify`` sub-command."""
    from galaxysd_core.config import DEFAULT_CLASSIFIER_DIR

    p = subparsers.add_parser("classify", help="morphology probabilities of every image of a catalog",
                              description="Run the morphology classifier on every image of a catalog (or the "
                                          "GZ2 release) and write one probability column per GZ2 answer head.")
    p.add_argument("--model", default=str(DEFAULT_CLASSIFIER_DIR), help="classifier folder (default: shipped)")
    p.add_argument("--source", choices=("catalog", "gz2"), default="catalog",
                   help="catalog: CSV with an image column (--catalog); gz2: GZ2 release folder (--root)")
    p.add_argument("--catalog", help="catalog CSV (image paths relative to its folder or to --images-dir)")
    p.add_argument("--root", help="GZ2 release folder (with --source gz2)")
    p.add_argument("--images-dir", help="folder the image paths are relative to")
    p.add_argument("--out", required=True, help="output CSV")
    p.add_argument("--crop-fraction", type=crop_fraction_arg, default=1.0,
                   help="central crop before resizing (default 1: the galaxy fills the frame, as in gz2_cutouts; "
                        "0.31 for gz1_sdss-like cutouts; 'auto' measures the galaxies' size and matches the "
                        "scale the classifier was trained at)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--limit", type=int, help="only the first N rows")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_device_arguments(p, dtype=False)  # the classifier always runs in float32 (BatchNorm, 1 M parameters)
    p.set_defaults(func=run)
    return p


def _records(args: argparse.Namespace):
    """``(records, skipped)``: the galaxies to classify and the catalog rows left out (skip-report dicts)."""
    from galaxysd_core.cli.data import _resolve
    from galaxysd_core.data.catalog import read_catalog
    from galaxysd_core.data.gz2_release import read_gz2_release
    from galaxysd_core.data.records import IMAGES_ONLY

    if args.limit is not None and args.limit < 1:
        raise GalaxySDValueError(f"--limit must be a positive number of rows, got {args.limit}")
    images = _resolve(args.images_dir, "--images-dir")
    if args.source == "gz2":
        if args.root is None:
            raise GalaxySDValueError("--source gz2 needs --root (the GZ2 release folder)")
        return read_gz2_release(_resolve(args.root, "--root"), images=images, limit=args.limit, on_error="skip"), []
    if args.catalog is None:
        raise GalaxySDValueError("give --catalog (a CSV with an image column) or --source gz2 --root DIR")
    catalog = _resolve(args.catalog, "--catalog")
    rows: list = []
    records = read_catalog(catalog, images=images, limit=args.limit, label_kind=IMAGES_ONLY, on_error="skip",
                           unique_ids=True, skipped_rows=rows)
    if not records:
        first = f" ({len(rows)} rows left out; first: {rows[0]['reason']})" if rows else ""
        raise GalaxySDDataError(f"catalog {str(catalog)!r} has no galaxy to classify{first}; it needs a header "
                                f"line and one row per image")
    skipped = [{"id": r["id"], "path": r["image_path"], "reason": r["reason"]} for r in rows]
    return records, skipped


def run(args: argparse.Namespace) -> int:
    from galaxysd_core.evaluation.classify import classify_records, skipped_path, write_classification
    from galaxysd_core.models.classifier import MorphologyClassifier
    from galaxysd_core.pipelines.devices import resolve_device

    if args.batch_size < 1:
        raise GalaxySDValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    model = MorphologyClassifier.from_pretrained(args.model, map_location=resolve_device(args.device))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        records, left_out = _records(args)
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    crop = args.crop_fraction
    if crop == "auto":
        from galaxysd_core.data.scale import matched_crop_for_records

        try:
            crop, _ = matched_crop_for_records(records)
        except GalaxySDDataError as exc:
            raise GalaxySDDataError(f"{args.catalog or args.root}: {exc} (--crop-fraction auto); check the image "
                                    f"paths and --images-dir, or give --crop-fraction") from exc
        print(f"crop fraction {crop:.2f} (matched galaxy scale)", file=sys.stderr)
    result = classify_records(model, records, crop_fraction=crop, batch_size=args.batch_size,
                              progress=not args.quiet)
    result.skipped[:0] = left_out
    write_classification(result, args.out)
    for s in result.skipped[:SHOW_SKIPPED]:
        print(f"skipped {s['path'] or s['id']}: {s['reason']}", file=sys.stderr)
    if len(result.skipped) > SHOW_SKIPPED:
        print(f"... {len(result.skipped) - SHOW_SKIPPED} more", file=sys.stderr)
    print(f"classified {len(result.table)} images ({len(result.skipped)} skipped, listed in "
          f"{skipped_path(args.out)}) in {result.seconds:.1f} s ({result.images_per_s:.0f} images/s on "
          f"{result.device}) -> {args.out}")
    return 0
