"""``galaxysd data``: download the GZ2 release, prepare training caches, describe morphology.

Examples
--------
::

    galaxysd data download --out ~/gz2
    galaxysd data prepare --source gz2 --root ~/gz2 --out cache/gz2_64 --workers 16
    galaxysd data convert cache/gz1_64      # a cache of the earlier single-file format -> shards
    galaxysd data prepare --source catalog --catalog DATA/gz1_sdss/labels.csv \\
        --out cache/gz1_64 --resolution 64
    galaxysd data describe --source votes \\
        --catalog DATA/gz2_stripe82_votes/willett13_table5_stripe82.csv.gz

Data paths come only from flags or ``$GALAXYSD_DATA_DIR`` (relative ``--root``/``--catalog``
paths that do not exist are looked up under it).
"""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import Optional

from galaxysd_core import config
from galaxysd_core.errors import GalaxySDValueError

SOURCES = ("gz2", "catalog", "votes")


def _resolve(value: Optional[str], what: str) -> Optional[Path]:
    """A path flag: as given when it exists, else relative to ``$GALAXYSD_DATA_DIR``."""
    if value is None:
        return None
    path = Path(value).expanduser()
    if path.exists() or path.is_absolute():
        return path
    base = config.data_dir()
    if base is not None and (base / path).exists():
        return base / path
    return path


def crop_fraction_arg(text: str):
    """``--crop-fraction``: a number in (0, 1] or ``auto``."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1] or 'auto', got {text!r}") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"crop fraction must be in (0, 1], got {value}")
    return value


def _captioner(args: argparse.Namespace):
    from galaxysd_core.schema.captioning import CaptionThresholds, Captioner

    thresholds = CaptionThresholds.clean() if getattr(args, "clean", False) else CaptionThresholds()
    return Captioner(thresholds=thresholds, debiased=not args.raw_fractions)


def _read_records(args: argparse.Namespace):
    """Records of the source named by the flags, and a description of it for the config."""
    from galaxysd_core.data.catalog import read_catalog
    from galaxysd_core.data.gz2_release import read_gz2_release, read_vote_table

    captioner = _captioner(args)
    limit = args.limit
    if limit is not None and limit < 1:
        raise GalaxySDValueError(f"--limit must be a positive number of rows, got {limit}")
    if args.source == "gz2":
        root = _resolve(args.root, "--root") or config.data_dir()
        if root is None:
            raise GalaxySDValueError("--source gz2 needs --root (the GZ2 release folder) or $GALAXYSD_DATA_DIR")
        images = _resolve(args.images, "--images")
        records = read_gz2_release(root, captioner=captioner, images=images, limit=limit, on_error="skip")
        info = {"kind": "gz2", "root": str(root), "images": str(images) if images else None}
    elif args.source == "catalog":
        catalog = _resolve(args.catalog, "--catalog")
        if catalog is None:
            raise GalaxySDValueError("--source catalog needs --catalog (a CSV with image paths and labels)")
        images = _resolve(args.images, "--images")
        records = read_catalog(catalog, images=images, captioner=captioner,
                               answer_column=getattr(args, "answer_column", None),
                               source=getattr(args, "name", None), limit=limit, on_error="skip",
                               label_kind=getattr(args, "labels", None))
        info = {"kind": "catalog", "catalog": str(catalog), "images": str(images) if images else None}
    else:
        catalog = _resolve(args.catalog, "--catalog")
        if catalog is None:
            raise GalaxySDValueError("--source votes needs --catalog (a GZ2 vote table CSV, e.g. Willett 2013 "
                                     "Table 5)")
        records = read_vote_table(catalog, captioner=captioner, source=getattr(args, "name", None),
                                  limit=limit, on_error="skip")
        info = {"kind": "votes", "catalog": str(catalog)}
    info["limit"] = limit
    caption_settings = {"debiased": captioner.debiased, "shuffle": captioner.shuffle,
                        "thresholds": captioner.thresholds.to_dict(), "report": captioner.report.to_dict()}
    if captioner.report.summary():
        print(captioner.report.summary(max_lines=getattr(args, "show_skipped", 10)), file=sys.stderr)
    return records, info, caption_settings


def _add_source_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--source", choices=SOURCES, required=True,
                   help="gz2: GZ2 release folder (--root); catalog: CSV + images (--catalog, --images); "
                        "votes: vote table without images (--catalog)")
    p.add_argument("--root", help="GZ2 release folder (gz2_hart16.csv[.gz], gz2_filename_mapping.csv, images_gz2/)")
    p.add_argument("--catalog", help="catalog CSV (catalog) or vote table CSV[.gz] (votes)")
    p.add_argument("--images", help="image folder (default: next to the catalog / inside --root)")
    p.add_argument("--answer-column", help="catalog column holding GZ2 answer columns or caption phrases")
    p.add_argument("--labels", choices=("votes", "gz1_class", "gz2_answer", "answers"),
                   help="how a catalog is labelled (default: detected; Hart et al. 2016 vote columns -> votes)")
    p.add_argument("--name", help="source name written to the records (default: the catalog's folder name)")
    p.add_argument("--raw-fractions", action="store_true",
                   help="caption from raw vote fractions (*_fraction) instead of debiased ones")
    p.add_argument("--clean", action="store_true",
                   help="Willett et al. 2013 clean thresholds (winning answer >= 0.8, >= 20 votes)")
    p.add_argument("--limit", type=int, help="read only the first N rows")


def _read_records_reporting(args: argparse.Namespace):
    """:func:`_read_records`, printing reader warnings (rows left out) as one line each on stderr."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        result = _read_records(args)
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    return result


def _cmd_prepare(args: argparse.Namespace) -> int:
    from galaxysd_core.data.cache import prepare_dataset

    records, info, caption_settings = _read_records_reporting(args)
    crop = args.crop_fraction
    if crop == "auto":
        from galaxysd_core.data.scale import matched_crop_for_records

        crop, info["scale_match"] = matched_crop_for_records(records)
        print(f"crop fraction {crop:.2f}: median half-light radius {info['scale_match']['trials'][-1]['median']:.3f} "
              f"of the frame (reference {info['scale_match']['target_r50_fraction']:.3f})", file=sys.stderr)
    report = prepare_dataset(records, args.out, resolution=args.resolution, crop_fraction=crop,
                             show_progress=not args.quiet, source_info=info,
                             **({"max_pixels": args.max_pixels} if args.max_pixels else {}),
                             caption_settings=caption_settings, workers=args.workers, shard_size=args.shard_size,
                             resume=not args.no_resume)
    print(report.summary(max_lines=args.show_skipped))
    return 0


def _cmd_convert(args: argparse.Namespace) -> int:
    from galaxysd_core.data.cache import PreparedDataset
    from galaxysd_core.data.cache_convert import convert_to_shards

    for folder in args.caches:
        was_sharded = PreparedDataset.load(folder).is_sharded
        convert_to_shards(folder, shard_size=args.shard_size)
        ds = PreparedDataset.load(folder)
        state = "already sharded" if was_sharded else f"converted to {len(ds.config['shards'])} shards"
        print(f"{folder}: {len(ds)} images, {state}")
    return 0


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _cmd_describe(args: argparse.Namespace) -> int:
    from galaxysd_core.schema.morphology_stats import describe

    records, info, _ = _read_records_reporting(args)
    stats = describe(records, top=args.top)
    print(stats.to_text())
    if args.out:
        written = stats.save(args.out)
        print("wrote " + ", ".join(str(p) for p in written))
    return 0


def _cmd_download(args: argparse.Namespace) -> int:
    from galaxysd_core.data import download

    files = download.GZ2_FILES if not args.files else [download.file_by_name(n) for n in args.files]
    if args.list:
        for f in files:
            print(f"{f.name}\t{f.url(args.base_url)}\tmd5={f.md5 or '-'}\tsize={f.size or '-'}")
        return 0
    paths = download.download_gz2(args.out, files=files, base_url=args.base_url,
                                  show_progress=not args.quiet, extract=args.extract,
                                  verify=not args.no_verify)
    for p in paths:
        print(p)
    return 0


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``data`` with the sub-commands ``download``, ``prepare``, ``convert`` and ``describe``."""
    data = subparsers.add_parser("data", help="download, prepare and describe galaxy data",
                                 description="Download the GZ2 release, prepare training caches and "
                                             "describe the morphology distribution of a source.")
    sub = data.add_subparsers(dest="data_command", required=True)

    p = sub.add_parser("prepare", help="write a prepared training cache (images + captions + targets)")
    _add_source_flags(p)
    p.add_argument("--out", required=True, help="cache folder to write")
    p.add_argument("--resolution", type=int, default=64, help="output side in pixels (default 64)")
    p.add_argument("--crop-fraction", type=crop_fraction_arg, default=None,
                   help="central crop side / shorter image side (default 0.35 for GZ1 cutouts, 0.5 otherwise; "
                        "1 keeps the whole frame, e.g. gz2_cutouts); 'auto' measures the galaxies and crops "
                        "until their median half-light radius matches the reference scale (0.198 of the frame)")
    p.add_argument("--max-pixels", type=int, default=None,
                   help="refuse images with more pixels (decompression bombs); default 64e6")
    p.add_argument("--show-skipped", type=int, default=20, help="skipped files listed (all are in skipped.csv)")
    p.add_argument("--workers", type=_positive_int, default=1,
                   help="processes decoding images in parallel (one shard each at a time; default 1)")
    p.add_argument("--shard-size", type=_positive_int, default=None,
                   help="images per shard file (default: about 256 MiB of images, 64..4096)")
    p.add_argument("--no-resume", action="store_true",
                   help="decode every shard again (default: a re-run keeps the shards an earlier run of the "
                        "same records and settings finished)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_prepare)

    c = sub.add_parser("convert", help="rewrite caches of the earlier single-file format as shards",
                       description="Rewrite prepared caches of the earlier format (one images.safetensors, "
                                   "loaded whole into memory) as image shards read lazily; the source images "
                                   "are not needed. Sharded caches are left as they are.")
    c.add_argument("caches", nargs="+", help="prepared cache folders")
    c.add_argument("--shard-size", type=_positive_int, default=None, help="images per shard file")
    c.set_defaults(func=_cmd_convert)

    d = sub.add_parser("describe", help="print the morphology distribution (feature counts, combinations)")
    _add_source_flags(d)
    d.add_argument("--top", type=int, default=10, help="number of feature combinations listed")
    d.add_argument("--out", help="folder to write features.csv, combinations.csv and summary.json")
    d.set_defaults(func=_cmd_describe)

    g = sub.add_parser("download", help="download the GZ2 release (resumable, checksum-verified)")
    g.add_argument("--out", required=False, default=None,
                   help="folder to download into (default: $GALAXYSD_DATA_DIR)")
    g.add_argument("--files", nargs="+", help="only these files (names as listed by --list)")
    g.add_argument("--base-url", help="mirror serving all files under one URL (overrides the published URLs)")
    g.add_argument("--extract", action="store_true", help="unzip images_gz2.zip after download")
    g.add_argument("--no-verify", action="store_true",
                   help="skip the md5 check (sizes are still checked); for a mirror with re-packed files")
    g.add_argument("--list", action="store_true", help="list the files, URLs and checksums and exit")
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    g.set_defaults(func=_cmd_download)
    return data
