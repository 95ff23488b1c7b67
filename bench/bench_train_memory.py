"""Peak memory of diffusion training against the data-set size, and the throughput of the sharded
(streamed) loop against the earlier in-RAM loop, on GalaxySD-mini.

Each run is a subprocess that trains a few UNet steps with ``train_diffusion`` (stage ``unet``: the
latent cache is encoded, then the loop runs) and reads its own peak resident set size,
``resource.getrusage(RUSAGE_SELF).ru_maxrss``:

* ``stream`` on caches of 1,000 and 8,000 images (the default: sharded images and latents read a
  batch at a time, one latent per image, dihedral transforms on the fly); goal: peak ratio <= 1.2;
* ``memory`` on the 1,000-image cache with ``latent_dihedral=encoded``: the earlier loop (all 8
  transformed latents in RAM, batches indexed from them); its steps/s against ``stream``'s on
  the same cache is the throughput comparison (goal: the sharded loop within 10 %).

The caches are prepared from the gz2_cutouts JPEGs of the shared data (repeated under new ids to
reach 8,000, with their vote columns, so the table is as wide as a real one) at the model
resolution in ``--work`` and reused by later runs. The UNet and text encoder are GalaxySD-mini's
(the shipped model's sizes); the frozen VAE that encodes the latent cache is a narrow random one
with the same latent shape (encoding speed is not measured and does not change the loop).
Steps/s are 1 / the median step time between the train rows of ``train_log.jsonl`` after
``--warmup`` steps (robust to other jobs taking the CPU for a while); ``--repeats`` alternates the
two loops and takes the median. A run's latent cache is kept in ``--work`` for the repeats.

Usage::

    OMP_NUM_THREADS=1 python bench/bench_train_memory.py --data-dir ../shared/data \\
        [--sizes 1000 8000] [--steps 20] [--batch-size 64] [--repeats 1] [--quick] [--json out.json]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parent.parent


def _model_sizes() -> dict:
    """The shipped model's sizes (assets/galaxysd-mini/train_config.yaml), else the defaults."""
    import yaml

    from galaxysd_core.models.mini import MiniModelConfig

    shipped = ROOT / "assets" / "galaxysd-mini" / "train_config.yaml"
    if shipped.is_file():
        return dict(yaml.safe_load(shipped.read_text())["model"])
    return MiniModelConfig().to_dict()


def build_cache(data_dir: Path, n: int, out: Path, resolution: int) -> Path:
    """A prepared cache of ``n`` gz2_cutouts galaxies (cycled under new ids), kept for later runs."""
    from galaxysd_core.data.cache import PreparedDataset, prepare_dataset
    from galaxysd_core.data.catalog import read_catalog

    try:
        if len(PreparedDataset.load(out)) == n and PreparedDataset.load(out).resolution == resolution:
            return out
    except Exception:  # absent or of other settings: prepare it
        pass
    base = list(read_catalog(data_dir / "gz2_cutouts" / "labels.csv"))
    records = [dataclasses.replace(base[i % len(base)], id=f"{base[i % len(base)].id}-{i // len(base)}")
               for i in range(n)]
    prepare_dataset(records, out, resolution, crop_fraction=1.0, show_progress=False, workers=2)
    return out


def child(spec: dict) -> dict:
    """One training run in this process; returns its peak RSS and steps/s."""
    import numpy as np
    import torch

    from galaxysd_core.models.mini import MiniModelConfig, build_mini_components
    from galaxysd_core.training.config import DiffusionTrainConfig
    from galaxysd_core.training.diffusion import train_diffusion

    out = Path(spec["out"])
    _clear(out)
    narrow = {**spec["model"], "vae_channels": [4] * len(spec["model"]["vae_channels"]), "vae_norm_groups": 4}
    vae = build_mini_components(MiniModelConfig.from_dict(narrow), seed=0)["vae"]
    vae.save_pretrained(out / "vae_stage" / "final", safe_serialization=True)
    cfg = DiffusionTrainConfig(output_dir=str(out), caches=[spec["cache"]], stage="unet", model=spec["model"],
                               max_train_steps=spec["steps"], train_batch_size=spec["batch_size"], log_every=1,
                               checkpointing_steps=10**9, validation_steps=10**9, save_snapshots=False,
                               derive_roundness=False, latent_loading=spec["loading"],
                               latent_dihedral=spec["dihedral"], dataloader_num_workers=spec["workers"],
                               num_threads=1)
    torch.manual_seed(0)
    train_diffusion(cfg, show_progress=False)
    rows = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    wall = np.array([r["wall_s"] for r in rows if r.get("event") == "train"][spec["warmup"]:])
    step_s = np.diff(wall)  # the median step time: robust to other jobs taking the CPU for a while
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux
    _clear(out)
    return {"peak_rss_mb": round(peak, 1), "steps_per_s": round(float(1 / np.median(step_s)), 4),
            "mean_steps_per_s": round(float(1 / step_s.mean()), 4)}


def _clear(out: Path) -> None:
    """Empty a run folder but its latent cache (reused by repeats: same VAE seed, same data)."""
    if out.is_dir():
        for p in out.iterdir():
            if p.name != "latents":
                shutil.rmtree(p) if p.is_dir() else p.unlink()


def run_child(spec: dict) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True, text=True,
                          env=dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1")))
    if proc.returncode != 0:
        raise SystemExit(f"run failed:\n{proc.stderr[-3000:]}")
    return {**spec, **json.loads(proc.stdout.strip().splitlines()[-1])}


def loader_ms(folder: Path, batch: int, in_memory: bool, n_batches: int = 200) -> float:
    """Milliseconds per batch of ``(row, transform)`` pairs fetched from a latent cache folder
    (the data part of a training step, without the UNet), median over ``n_batches``."""
    import time

    import numpy as np

    from galaxysd_core.training.data import StepBatchSampler
    from galaxysd_core.training.latent_cache import LatentCache

    cache = LatentCache.open(next(Path(folder).glob("*/latents.json")).parent)
    dataset = (cache.in_memory() if in_memory else cache).dataset()
    times = []
    for pairs in StepBatchSampler(0, cache.n, batch, 0, n_batches):
        t0 = time.perf_counter()
        dataset.__getitems__(pairs)
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1000)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=None, help="shared real-data folder (default $GALAXYSD_DATA_DIR)")
    p.add_argument("--sizes", type=int, nargs=2, default=[1000, 8000], help="small and large cache")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=2, help="steps left out of the steps/s")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers of the streamed runs")
    p.add_argument("--repeats", type=int, default=1, help="alternating repeats of the throughput pair")
    p.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "bench_train_memory"))
    p.add_argument("--quick", action="store_true", help="8 steps at batch 16 (checks the script)")
    p.add_argument("--json", default=None)
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return 0
    from galaxysd_core import config as gconfig

    data_dir = Path(args.data_dir) if args.data_dir else gconfig.data_dir()
    if data_dir is None or not (data_dir / "gz2_cutouts" / "labels.csv").is_file():
        print("error: give --data-dir (the folder with gz2_cutouts/labels.csv)", file=sys.stderr)
        return 2
    steps, batch = (8, 16) if args.quick else (args.steps, args.batch_size)
    work = Path(args.work)
    model = _model_sizes()
    small, large = args.sizes
    caches = {n: str(build_cache(data_dir, n, work / f"cache_{n}_{model['resolution']}", model["resolution"]))
              for n in (small, large)}
    base = dict(model=model, steps=steps, batch_size=batch, warmup=args.warmup, workers=args.workers)

    def spec(n, loading, dihedral, tag):
        return {**base, "cache": caches[n], "n_images": n, "loading": loading, "dihedral": dihedral,
                "out": str(work / f"run_{tag}")}

    runs = []
    for r in range(args.repeats):
        runs.append(run_child(spec(small, "stream", "latent", f"stream_{small}")))
        runs.append(run_child(spec(small, "memory", "encoded", f"memory_{small}")))
        if r == 0:
            runs.append(run_child(spec(large, "stream", "latent", f"stream_{large}")))
    # the caches of the runs are kept for the repeats and for the fetch timing below
    print(f"GalaxySD-mini UNet + text encoder, {model['resolution']} px, batch {batch}, {steps} steps, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} CPUs")
    for run in runs:
        print(f"  {run['loading']:<6} ({run['dihedral']:<7}) {run['n_images']:>6} images: peak RSS "
              f"{run['peak_rss_mb']:8.1f} MB   {run['steps_per_s']:.3f} steps/s")

    def pick(n, loading):
        return [r for r in runs if r["n_images"] == n and r["loading"] == loading]

    peak_small, peak_large = pick(small, "stream")[0]["peak_rss_mb"], pick(large, "stream")[0]["peak_rss_mb"]
    ratio = peak_large / peak_small
    stream_rate = sorted(r["steps_per_s"] for r in pick(small, "stream"))
    memory_rate = sorted(r["steps_per_s"] for r in pick(small, "memory"))
    speed = stream_rate[len(stream_rate) // 2] / memory_rate[len(memory_rate) // 2]
    print(f"peak RSS {small} images: {peak_small:.1f} MB, {large} images: {peak_large:.1f} MB, "
          f"ratio {ratio:.3f} (goal <= 1.2: {'met' if ratio <= 1.2 else 'NOT met'})")
    print(f"throughput sharded / in-RAM loop on {small} images: {speed:.3f} (goal >= 0.9: "
          f"{'met' if speed >= 0.9 else 'NOT met'})")
    fetch = {"sharded, on the fly": loader_ms(work / f"run_stream_{small}" / "latents", batch, False),
             "in RAM, 8 encoded": loader_ms(work / f"run_memory_{small}" / "latents", batch, True)}
    step_ms = 1000 / stream_rate[len(stream_rate) // 2]
    print("batch fetch (data part of a step): " + ", ".join(f"{k} {v:.2f} ms" for k, v in fetch.items())
          + f"; a training step took {step_ms:.0f} ms here")
    if args.json:
        Path(args.json).write_text(json.dumps({"runs": runs, "peak_ratio": ratio, "throughput_ratio": speed,
                                               "fetch_ms": fetch, "step_ms": step_ms}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
