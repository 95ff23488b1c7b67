"""Benchmark of ``galaxysd data prepare``: images/s of the sharded, parallel preparation at 1k and
10k source images, the resumed re-run, and the projected time for the full GZ2 release.

Source images: the Galaxy Zoo 1 SDSS cutouts of the shared data (423 px JPEGs, like the 424 px
images of the GZ2 release), repeated under new ids to reach the larger sizes (files sit in the OS
page cache after the first pass, as they would on a warm local disk). Each run writes a fresh
cache in ``--work``; then the same preparation is run again to time a resume (every shard kept).

Projection for 239,695 galaxies on C cores: ``239,695 / (rate_1 x C x efficiency)``, where
``rate_1`` is the 1-worker rate at the largest size and ``efficiency`` the measured
``rate_W / (W x rate_1)`` of the most workers run (capped at 1; decoding is independent per
shard, so it holds while the disk keeps up). Prints one table and writes ``--json``.

Usage::

    OMP_NUM_THREADS=1 python bench/bench_prepare.py --data-dir ../shared/data [--sizes 1000 10000]
        [--workers 1 2] [--resolution 128] [--quick] [--json out.json]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

from galaxysd_core import config as gconfig  # noqa: E402
from galaxysd_core.data.cache import PreparedDataset, prepare_dataset  # noqa: E402
from galaxysd_core.data.catalog import read_catalog  # noqa: E402

GZ2_FULL = 239_695


def source_records(data_dir: Path, n: int):
    """``n`` records of the gz1_sdss catalog, cycled under new ids."""
    base = list(read_catalog(data_dir / "gz1_sdss" / "labels.csv"))
    return [dataclasses.replace(base[i % len(base)], id=f"{base[i % len(base)].id}-{i // len(base)}")
            for i in range(n)]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=None, help="shared real-data folder (default $GALAXYSD_DATA_DIR)")
    p.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--resolution", type=int, default=128, help="cache resolution (512 for SD 1.5)")
    p.add_argument("--shard-size", type=int, default=256,
                   help="images per shard (default 256: 4 shards at 1k, so workers have work; shards are "
                        "the unit of parallel work)")
    p.add_argument("--work", default=None, help="scratch folder (default: a temporary one, removed)")
    p.add_argument("--quick", action="store_true", help="200 and 1000 images, to check the script")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    data_dir = Path(args.data_dir) if args.data_dir else gconfig.data_dir()
    if data_dir is None or not (data_dir / "gz1_sdss" / "labels.csv").is_file():
        print("error: give --data-dir (the folder with gz1_sdss/labels.csv)", file=sys.stderr)
        return 2
    sizes = [200, 1000] if args.quick else args.sizes
    work = Path(args.work or tempfile.mkdtemp(prefix="bench_prepare_"))
    rows = []
    for n in sizes:
        records = source_records(data_dir, n)
        for w in args.workers:
            out = work / f"c{n}_w{w}"
            shutil.rmtree(out, ignore_errors=True)
            t0 = time.perf_counter()
            rep = prepare_dataset(records, out, args.resolution, show_progress=False, workers=w,
                                  shard_size=args.shard_size)
            first = time.perf_counter() - t0
            t0 = time.perf_counter()
            again = prepare_dataset(records, out, args.resolution, show_progress=False, workers=w,
                                    shard_size=args.shard_size)
            resumed = time.perf_counter() - t0
            assert again.shards_reused == again.shards and len(PreparedDataset.load(out)) == rep.written
            rows.append({"images": n, "workers": w, "written": rep.written, "shards": rep.shards,
                         "seconds": round(first, 2), "images_per_s": round(n / first, 1),
                         "resume_seconds": round(resumed, 2)})
            print(f"{n:>6} images  {w} worker(s)  {rep.shards:>3} shards  {first:7.2f} s  "
                  f"{n / first:7.1f} img/s   re-run (all shards kept) {resumed:5.2f} s", flush=True)
            shutil.rmtree(out, ignore_errors=True)
    big = max(sizes)
    rate = {r["workers"]: r["images_per_s"] for r in rows if r["images"] == big}
    w_max = max(rate)
    eff = min(1.0, rate[w_max] / (w_max * rate[1])) if 1 in rate and w_max > 1 else 1.0
    projection = {c: GZ2_FULL / (rate.get(1, rate[w_max] / w_max) * c * eff) for c in (2, 16)}
    print(f"\nprojected for the full GZ2 release ({GZ2_FULL:,} galaxies, {args.resolution} px): "
          + ", ".join(f"{c} cores {s / 60:.1f} min" for c, s in projection.items())
          + f"  (1-worker rate {rate.get(1, float('nan')):.1f} img/s, parallel efficiency {eff:.2f} at "
            f"{w_max} workers)")
    print(f"machine: {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, load average {os.getloadavg()[0]:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "resolution": args.resolution, "parallel_efficiency": eff,
                                               "projected_minutes": {c: s / 60 for c, s in projection.items()},
                                               "load_average": os.getloadavg()[0]}, indent=1))
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
