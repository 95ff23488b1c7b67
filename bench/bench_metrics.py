"""Benchmark of the classifier and the metric set: images per second at N = 256 and 2048.

Measures, for N "generated" and N "real" images (synthetic Gaussian blobs by default, or images
from a prepared cache with ``--cache``):

* classifier inference (``predict_proba``) alone;
* each metric component: consistency, embeddings, PRDC, domain FD, domain KID, light-profile
  statistics with Wasserstein distances;
* the full set (what :func:`galaxysd_core.evaluation.runner.measure` does for one table row).

PRDC needs an N x N distance matrix and KID subsets of up to 1000, so their cost grows faster
than linearly; the table shows by how much from 256 to 2048.

Usage::

    python bench/bench_metrics.py [--sizes 256 2048] [--cache cache/gz1_64] [--classifier DIR]
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from galaxysd_core.config import DEFAULT_CLASSIFIER_DIR
from galaxysd_core.errors import GalaxySDFileError
from galaxysd_core.evaluation.metrics import (compare_physical, distribution_metrics, domain_fd, domain_kid,
                                              physical_stats, prdc, prompt_consistency)
from galaxysd_core.models.classifier import MorphologyClassifier


def synthetic(n: int, seed: int, size: int = 64) -> np.ndarray:
    """Noisy elliptical Gaussian blobs of random size, shape and colour (uint8)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] - (size - 1) / 2
    out = np.empty((n, size, size, 3), dtype=np.uint8)
    for i in range(n):
        s, q, th = rng.uniform(2, 8), rng.uniform(0.3, 1), rng.uniform(0, np.pi)
        xr, yr = x * np.cos(th) + y * np.sin(th), -x * np.sin(th) + y * np.cos(th)
        g = np.exp(-0.5 * ((xr / s) ** 2 + (yr / (s * q)) ** 2))[..., None] * rng.uniform(0.5, 1.0, 3)
        out[i] = np.clip(255 * g + rng.normal(8, 4, g.shape), 0, 255).astype(np.uint8)
    return out


def timed(fn):
    t = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - t


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="images/s of the classifier and the metric set")
    p.add_argument("--sizes", type=int, nargs="+", default=[256, 2048])
    p.add_argument("--cache", help="prepared cache to draw images from (default: synthetic blobs)")
    p.add_argument("--classifier", default=str(DEFAULT_CLASSIFIER_DIR))
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    args = p.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        clf = MorphologyClassifier.from_pretrained(args.classifier)
        source = args.classifier
    except GalaxySDFileError:  # not trained here: a random network has the same cost
        clf, source = MorphologyClassifier().eval(), "random weights"
    pool = None
    if args.cache:
        from galaxysd_core.data.cache import PreparedDataset

        pool = PreparedDataset.load(args.cache).images
    print(f"classifier: {source}; images: {args.cache or 'synthetic blobs'}; torch threads {torch.get_num_threads()}")
    prompt = "sdss, features or disk-shaped, spiral galaxy"
    # warm-up: imports (sklearn, torchmetrics, scipy) and first-call allocations are not timed
    w = synthetic(16, 2)
    fw = clf.embed_images(w).numpy()
    prompt_consistency(clf, w, prompt)
    distribution_metrics(fw, fw[::-1].copy(), k=3, kid_subsets=2)
    compare_physical(physical_stats(w[:2]), physical_stats(w[2:4]))
    results = {}
    for n in args.sizes:
        if pool is not None:
            rng = np.random.default_rng(0)
            idx = rng.choice(len(pool), size=min(2 * n, len(pool)), replace=2 * n > len(pool))
            real, fake = pool[idx[:n]], pool[idx[n:2 * n]] if len(idx) >= 2 * n else pool[idx[:n]][::-1]
        else:
            real, fake = synthetic(n, 0), synthetic(n, 1)
        row = {}
        _, row["classifier"] = timed(lambda: clf.predict_proba(fake))
        _, row["consistency"] = timed(lambda: prompt_consistency(clf, fake, prompt))
        (fr, ff), row["embeddings (2N)"] = timed(lambda: (clf.embed_images(real).numpy(), clf.embed_images(fake).numpy()))
        _, row["PRDC"] = timed(lambda: prdc(fr, ff, 5))
        _, row["domain FD"] = timed(lambda: domain_fd(fr, ff))
        _, row["domain KID"] = timed(lambda: domain_kid(fr, ff))
        (sr, sf), row["light profiles (2N)"] = timed(lambda: (physical_stats(real), physical_stats(fake)))
        _, row["Wasserstein"] = timed(lambda: compare_physical(sr, sf))

        def full():
            prompt_consistency(clf, fake, prompt)
            a, b = clf.embed_images(real).numpy(), clf.embed_images(fake).numpy()
            distribution_metrics(a, b)
            compare_physical(physical_stats(real), physical_stats(fake))

        _, row["full set"] = timed(full)
        results[n] = row

    sizes = list(results)
    header = f"{'component':<22}" + "".join(f"{'N=' + str(n) + ' s':>12}{'img/s':>10}" for n in sizes)
    if len(sizes) >= 2:
        header += f"{'time x':>9}"
    print(header)
    for comp in results[sizes[0]]:
        line = f"{comp:<22}"
        for n in sizes:
            t = results[n][comp]
            line += f"{t:>12.3f}{n / t:>10.0f}"
        if len(sizes) >= 2:
            line += f"{results[sizes[-1]][comp] / results[sizes[0]][comp]:>9.1f}"
        print(line)
    if len(sizes) >= 2:
        print(f"(N grows x{sizes[-1] / sizes[0]:.0f}; 'time x' above that means super-linear cost; img/s counts "
              f"the N generated images of a row)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
