"""Re-ranking from verdicts, simulated on galaxies with a known D-ETG truth (thin wrapper).

Verdicts are given in score order for the first --n-first galaxies, a logistic head on classifier v2's
embedding + the score re-ranks the rest; true D-ETGs in the next --n-next and the AP of the rest, with
bootstrap 90 % intervals of the gain. Logic: :func:`galaxysd_core.science.rerank.simulate_on_voted`.

    python train/simulate_rerank.py --caches cache/gz2_cutouts_128 --out assets/detg_candidates/rerank_simulation.csv
"""
from __future__ import annotations

import argparse
import sys

from galaxysd_core import config as gconfig
from galaxysd_core.errors import GalaxySDError


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--caches", nargs="+", default=[str(gconfig.PROJECT_ROOT / "cache" / "gz2_cutouts_128")])
    p.add_argument("--classifier", default=str(gconfig.DEFAULT_CLASSIFIER_DIR))
    p.add_argument("--detector", default=str(gconfig.ASSETS_DIR / "detg_detector"))
    p.add_argument("--n-first", type=int, default=50)
    p.add_argument("--n-next", type=int, default=100)
    p.add_argument("--n-boot", type=int, default=200)
    p.add_argument("--out", default=None, help="CSV of the table")
    a = p.parse_args(argv)
    from galaxysd_core.science.rerank import simulate_on_voted

    try:
        t = simulate_on_voted(a.caches, a.classifier, a.detector, n_first=a.n_first, n_next=a.n_next, n_boot=a.n_boot)
    except GalaxySDError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(t.to_string(index=False))
    if a.out:
        t.to_csv(a.out, index=False, float_format="%.4g")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
