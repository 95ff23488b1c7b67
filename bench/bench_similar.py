#!/usr/bin/env python
"""Speed of "more like this" (galaxysd_core.science.similarity): index build and query time (prints numbers; not a test).

Embeddings are the shape classifier v2 gives (256-d, unit rows); by default random ones for N galaxies
(the search cost does not depend on the values), with ``--catalog`` the real index of a catalog
(decode + embed + fit, cached afterwards). Goal of the vetting issue: one query on 15,000 galaxies < 100 ms.

Usage: python bench/bench_similar.py [--n 15000] [--queries 200] [--catalog assets/detg_candidates/candidates.ecsv]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from galaxysd_core.science.similarity import SimilarityIndex


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=15000)
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("-k", type=int, default=20)
    p.add_argument("--catalog", default=None, help="also build the real index of this catalog and time it")
    a = p.parse_args()
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(a.n, a.dim)).astype(np.float32)
    t = time.perf_counter()
    index = SimilarityIndex(ids=[f"g{i}" for i in range(a.n)], embeddings=emb)
    build = time.perf_counter() - t
    index.similar("g0", a.k)  # warm
    times = []
    for q in rng.integers(0, a.n, a.queries):
        t = time.perf_counter()
        index.similar(f"g{q}", a.k)
        times.append(time.perf_counter() - t)
    ms = 1000 * np.asarray(times)
    print(f"index of {a.n} x {a.dim}: fit {build * 1000:.0f} ms; query k={a.k}: median {np.median(ms):.1f} ms, "
          f"p95 {np.percentile(ms, 95):.1f} ms, max {ms.max():.1f} ms over {a.queries} queries "
          f"(goal < 100 ms: {'met' if np.percentile(ms, 95) < 100 else 'NOT met'})")
    if a.catalog:
        from galaxysd_core import config
        from galaxysd_core.models.classifier import MorphologyClassifier
        from galaxysd_core.science.candidates import read_candidates
        from galaxysd_core.science.similarity import catalog_index

        cat = read_candidates(a.catalog)
        judge = MorphologyClassifier.from_pretrained(config.DEFAULT_CLASSIFIER_DIR)
        t = time.perf_counter()
        real = catalog_index(cat, judge)
        print(f"real index of {a.catalog}: {len(real)} galaxies decoded, embedded and fitted in "
              f"{time.perf_counter() - t:.1f} s ({len(real) / (time.perf_counter() - t):.0f} galaxies/s)")


if __name__ == "__main__":
    main()
