"""Effect-versus-strength curves of guidance per feature and the default strength of every feature (thin wrapper).

Writes into the model folder: ``feature_defaults.json`` (read by the pipeline, the CLI and the app's
sliders), ``metrics/feature_curves.csv``, ``metrics/feature_defaults.csv``, ``feature_curves.png``
and the card section "Guidance per feature". Logic: :mod:`galaxysd_core.evaluation.feature_curves`.

    OMP_NUM_THREADS=2 python train/feature_defaults.py --model assets/galaxysd-mini \\
        --reference-caches cache/gz2_cutouts_128 --n 32
"""
from __future__ import annotations

import argparse
import logging
import sys

import numpy as np

from galaxysd_core import config as gconfig
from galaxysd_core.errors import GalaxySDError


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=str(gconfig.DEFAULT_MODEL_DIR))
    p.add_argument("--classifier", default=str(gconfig.DEFAULT_CLASSIFIER_DIR))
    p.add_argument("--reference-caches", nargs="*", default=[], help="prepared caches of real galaxies (spread, precision)")
    p.add_argument("--n", type=int, default=32, help="seeds per point")
    p.add_argument("--phrases", nargs="*", default=None, help="features to measure (default: >= 30 captions + dust lane)")
    p.add_argument("--strengths", type=float, nargs="+", default=None)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--from-csv", action="store_true",
                   help="choose the defaults again from the folder's metrics/feature_curves.csv (no generation)")
    p.add_argument("--no-contrast", action="store_true",
                   help="do not try contrast (the other answers pushed away) where a feature alone misses the goal")
    p.add_argument("--dust-goal-only", action="store_true",
                   help="only the dust-lane goal (generated vs real medians) at the stored default strength, into the card")
    p.add_argument("--detector", default=str(gconfig.ASSETS_DIR / "detg_detector"), help="D-ETG detector (dust-lane goal)")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    import torch
    from tqdm import tqdm

    from galaxysd_core.evaluation.feature_curves import CURVE_STRENGTHS, release_feature_defaults
    from galaxysd_core.evaluation.reference import RealReference
    from galaxysd_core.models.classifier import MorphologyClassifier

    torch.set_num_threads(a.threads)
    try:
        judge = MorphologyClassifier.from_pretrained(a.classifier)
        real = RealReference.from_caches(a.reference_caches) if a.reference_caches else None
        bar = tqdm(desc="feature curves", unit="point")

        def progress(done, total):
            bar.total = total
            bar.n = done
            bar.refresh()

        if not a.dust_goal_only:
            curves = None
            if a.from_csv:
                import pandas as pd
                from pathlib import Path

                curves = pd.read_csv(Path(a.model) / "metrics" / "feature_curves.csv")
            res = release_feature_defaults(a.model, judge, real=real, phrases=a.phrases, n=a.n,
                                           strengths=tuple(a.strengths or CURVE_STRENGTHS), progress=progress,
                                           contrast=not a.no_contrast, curves=curves)
            print(res["table"].to_string(index=False))
        bar.close()
        if real is not None:
            print(dust_goal_into_card(a.model, judge, a.detector, a.reference_caches, a.n))
    except GalaxySDError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def dust_goal_into_card(model, judge, detector, caches, n) -> str:
    """The dust-lane goal at the stored default strength, appended to the card's feature section."""
    import json
    from pathlib import Path

    from galaxysd_core.evaluation.feature_curves import FEATURE_BASES, dust_lane_goal
    from galaxysd_core.evaluation.plots import image_rows_figure
    from galaxysd_core.models.classifier import MorphologyClassifier
    from galaxysd_core.pipelines.pipeline_galaxysd import load_pipeline
    from galaxysd_core.science.binary_tasks import load_labelled_caches
    from galaxysd_core.science.vote_truth import PARTIAL_DUST_THRESHOLD, dust_lane_soft

    pipe = load_pipeline(model)
    groups = {}
    strength = pipe.feature_defaults.strength("dust lane") if pipe.feature_defaults else 1.0
    images, index = load_labelled_caches(caches)
    soft = dust_lane_soft(index)
    keep = np.isfinite(soft)
    smooth = index["t01_smooth_or_features_a01_smooth"].to_numpy(dtype=float) > 0.5  # the volunteers' early types
    contrast = pipe.feature_defaults.contrast_weight("dust lane") if pipe.feature_defaults else 0.0
    g = dust_lane_goal(pipe, judge, MorphologyClassifier.from_pretrained(detector), images[keep],
                       soft[keep] >= PARTIAL_DUST_THRESHOLD, strength=strength, n=n, real_is_smooth=smooth[keep],
                       contrast=contrast, images_out=groups)
    folder = Path(model)
    rows = [(f"generated: {FEATURE_BASES['dust lane']} + dust-lane guidance {strength:g}", groups["gen"]),
            ("real with lanes (mostly discs)", groups["real_dusty"]),
            ("real D-ETGs (smooth, with lanes)", groups.get("real_detg", groups["real_dusty"][:0]))]
    image_rows_figure(rows, folder / "dust_lane_goal.png")
    (folder / "metrics" / "dust_lane_goal.json").write_text(json.dumps(g, indent=1) + "\n")
    text = (f"\n**Dust lanes** (`sdss, smooth, in-between round galaxy` + dust-lane guidance at its default strength "
            f"{strength:g}, {n} seeds; real: the {g['n_real_dusty']} voted galaxies where a quarter of all classifiers "
            f"saw a lane): median classifier v2 dust-vote share generated {g['gen_dust_votes']:.3f} vs real with lanes "
            f"{g['real_dusty_dust_votes']:.3f} (real without {g['real_other_dust_votes']:.3f}); median D-ETG detector "
            f"p_dust generated {g['gen_p_dust']:.3f} vs real with lanes {g['real_dusty_p_dust']:.3f} (without "
            f"{g['real_other_p_dust']:.3f}). Goal (generated >= real with lanes): "
            f"{'met' if g['meets_goal'] else '**not met**'}.\n\n"
            f"The goal's reference is mostly discs: of the {g['n_real_dusty']} real galaxies with lanes only "
            f"{g.get('n_real_detg', 0)} are smooth (smooth vote fraction > 0.5: the real D-ETGs), and the judges "
            f"barely see their lanes: median dust-vote share {g.get('real_detg_dust_votes', float('nan')):.3f}, "
            f"detector p_dust {g.get('real_detg_p_dust', float('nan')):.3f}, classifier p(smooth) "
            f"{g.get('real_detg_p_smooth', float('nan')):.2f}. The generated galaxies have p(smooth) "
            f"{g['gen_p_smooth']:.2f} (real with lanes {g['real_dusty_p_smooth']:.2f}): dust-lane guidance turns the "
            "smooth galaxy into an edge-on disc with a lane (the model saw the lane in "
            f"{int((pipe.trained_features or {}).get('dust lane', 0))} training captions, nearly all on discs), so it "
            "is no D-ETG even where its dust votes exceed the real D-ETGs'. "
            "By eye: `dust_lane_goal.png` (rows: generated, real with lanes, real D-ETGs).\n\n"
            "![dust-lane goal](dust_lane_goal.png)\n")
    readme = folder / "README.md"
    body = readme.read_text()
    title = "## Guidance per feature (sliders)"
    if title in body:
        a = body.index(title)
        b = body.find("\n## ", a + len(title))
        b = len(body) if b < 0 else b + 1
        section = body[a:b]
        if "**Dust lanes**" in section:
            section = section[:section.index("\n**Dust lanes**")] + "\n"
        body = body[:a] + section.rstrip("\n") + "\n" + text + body[b:]
        readme.write_text(body)
    return text


if __name__ == "__main__":
    raise SystemExit(main())
