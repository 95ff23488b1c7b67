"""Effect-versus-scale curves of guidance per feature, and the default strength of every feature.

For each feature phrase the curve adds the phrase to its base prompt (:data:`FEATURE_BASES`: the
prompt the GZ2 tree asks the feature's question after) with guidance per feature
(:mod:`galaxysd_core.pipelines.feature_guidance`) at strengths :data:`CURVE_STRENGTHS` (multiples
of the guidance scale: 0 = the base alone, 1 = the plain prompt with the feature), on the *same*
seeds at every strength, and measures with classifier v2

``p``          the mean probability of the feature's head (for the dust lane, which has no head:
               the predicted share of classifiers reporting a lane);
``effect``     ``p(strength) - p(0)``: how much the feature appears on the same galaxies;
``spread``     diversity: RMS distance of the images' classifier embeddings to their centroid,
               divided by the same for real galaxies of the intended caption (1 = as varied as real
               galaxies; below ~0.6 the galaxies start to look alike);
``precision``  realism: PRDC precision (Naeem et al. 2020) against those real galaxies.

:func:`choose_strengths` picks, per feature, the smallest strength whose effect reaches
:data:`GOAL_EFFECT` while the spread stays >= :data:`MIN_SPREAD`; a feature that never reaches it
gets the strength with the largest effect among those that keep the spread (reported as missing
the goal). The result is the model folder's ``feature_defaults.json``
(:class:`~galaxysd_core.pipelines.feature_defaults.FeatureDefaults`).
"""
from __future__ import annotations

import logging
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from galaxysd_core.errors import GalaxySDValueError
from galaxysd_core.evaluation.runner import generate

__all__ = ["FEATURE_BASES", "CURVE_STRENGTHS", "GOAL_EFFECT", "MIN_SPREAD", "embedding_spread", "feature_probability",
           "feature_curves", "choose_strengths", "contrast_of", "CONTRAST_STRENGTHS", "contrast_weights"]

logger = logging.getLogger(__name__)

_DISK = "sdss, features or disk-shaped"
_SPIRAL = f"{_DISK}, spiral galaxy"
_SMOOTH_MID = "sdss, smooth, in-between round galaxy"
#: Feature phrase -> base prompt it is guided onto (the prompt whose GZ2 path asks its question).
FEATURE_BASES: Dict[str, str] = {
    "smooth": "sdss", "features or disk-shaped": "sdss", "star or artifact": "sdss",
    "completely round galaxy": "sdss, smooth", "in-between round galaxy": "sdss, smooth",
    "cigar shaped galaxy": "sdss, smooth",
    "edge-on galaxy": _DISK, "spiral galaxy": _DISK, "irregular galaxy": _DISK, "other odd feature": _DISK,
    "with rounded edge-on bulge": f"{_DISK}, edge-on galaxy", "with no edge-on bulge": f"{_DISK}, edge-on galaxy",
    "bar-shaped structure in the center of galaxy": _SPIRAL, "no bulge prominence": _SPIRAL,
    "just noticeable bulge prominence": _SPIRAL, "obvious bulge prominence": _SPIRAL, "ring galaxy": _SPIRAL,
    "merger": _SMOOTH_MID, "dust lane": _SMOOTH_MID,
}
#: Strengths of the curves (multiples of the guidance scale; 8 is the sliders' largest).
CURVE_STRENGTHS = (0.0, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0)
#: Strengths of the contrast curves (above 1 only: at and below 1 there is no contrast).
CONTRAST_STRENGTHS = (2.0, 4.0, 6.0, 8.0)
#: Contrast weights tried per alternative, as multiples of ``1 / k`` (``k`` alternatives): "shared"
#: (the push is split among them, total = the feature's extra pull) and "each" (every alternative
#: pushed as hard as the feature is pulled).
CONTRAST_SHARES = {"shared": None, "each": 1.0}
#: Effect a feature's default strength should reach (the issue's goal).
GOAL_EFFECT = 0.3
#: Lowest spread (generated vs real) a default may cost.
MIN_SPREAD = 0.6
#: Lowest realism a default may cost: its PRDC precision at least this share of the plain prompt's
#: (strength 1). Without it, contrast at strength 8 was chosen for "in-between round galaxy" at
#: precision 0.16 against 0.53 for the plain prompt (0.29 of it).
MIN_PRECISION_SHARE = 0.6


def contrast_weights(phrase: str) -> List[float]:
    """Contrast weights per alternative tried for ``phrase`` (:data:`CONTRAST_SHARES`; none without
    alternatives)."""
    from galaxysd_core.schema.gz2 import alternative_answers

    k = len(alternative_answers(phrase))
    if k == 0:
        return []
    return sorted({round(1.0 / k if v is None else float(v), 6) for v in CONTRAST_SHARES.values()})


def embedding_spread(features: np.ndarray) -> float:
    """RMS distance of embeddings to their centroid (the numerator/denominator of ``spread``)."""
    f = np.asarray(features, dtype=float)
    if len(f) < 2:
        return float("nan")
    return float(np.sqrt(((f - f.mean(0)) ** 2).sum(1).mean()))


def feature_probability(classifier, images: np.ndarray, phrase: str) -> np.ndarray:
    """Classifier v2's probability of ``phrase`` per image; the dust lane's predicted vote share."""
    if phrase == "dust lane":
        from galaxysd_core.evaluation.feature_effects import dust_lane_probabilities

        return dust_lane_probabilities(classifier, images)["dust_fraction"]
    k = classifier.head_index(phrase)
    if k is None:
        raise GalaxySDValueError(f"the classifier has no head for {phrase!r}")
    return classifier.predict_proba(images).numpy()[:, k]


def _reference_rows(real, intended: str, min_reference: int = 10) -> np.ndarray:
    """Real galaxies whose caption holds every tag of ``intended`` (at least ``min_reference``; else
    the reference's own choice, :meth:`~galaxysd_core.evaluation.reference.RealReference.select`)."""
    from galaxysd_core.prompts.grammar import prompt_tags

    want = set(prompt_tags(intended))
    rows = np.flatnonzero([want <= set(k) for k in real.keys])
    if len(rows) >= min_reference:
        return rows
    return real.select(intended, min_reference)[0]


def _embed(classifier, images: np.ndarray) -> np.ndarray:
    return classifier.embed_images(images).numpy()


def feature_curves(pipe, classifier, phrases: Sequence[str], *, real=None, n: int = 32, seed: int = 0,
                   steps: int = 20, guidance: Optional[float] = None, strengths: Sequence[float] = CURVE_STRENGTHS,
                   tree_negatives: bool = False, progress: Optional[Callable[[int, int], None]] = None,
                   contrast: bool = False, contrast_strengths: Sequence[float] = CONTRAST_STRENGTHS,
                   goal: float = GOAL_EFFECT, min_spread: float = MIN_SPREAD) -> pd.DataFrame:
    """One row per (feature, strength, contrast): ``phrase, base, strength, contrast, scale, p, effect,
    spread, precision, recall, n``.

    Parameters
    ----------
    pipe : GalaxySDPipeline
    classifier : MorphologyClassifier
        Classifier v2 (vote outputs).
    phrases : sequence of str
        Features of :data:`FEATURE_BASES` to measure.
    real : RealReference, optional
        Real galaxies for ``spread`` / ``precision`` (NaN without).
    n, seed : int
        Images per point, seeds ``seed .. seed+n-1`` at every strength.
    guidance : float, optional
        Guidance scale (default: the model's recommended one).
    contrast : bool
        Also measure contrast (:func:`~galaxysd_core.pipelines.feature_guidance.contrast_scales`: the other
        answers of the feature's question pushed away) at ``contrast_strengths`` with each of
        :func:`contrast_weights`, for the features whose plain curve misses ``goal`` (with the spread
        >= ``min_spread``): contrast costs one UNet branch per alternative, so it is only a default
        where the feature alone falls short. ``contrast`` = 0 in the rows of the plain curve.
    """
    from galaxysd_core.pipelines.feature_guidance import contrast_scales
    from galaxysd_core.evaluation.metrics.distribution import prdc

    g = float(pipe.generation_defaults.guidance_scale if guidance is None else guidance)
    unknown = [p for p in phrases if p not in FEATURE_BASES]
    if unknown:
        raise GalaxySDValueError(f"no base prompt for {unknown}; known: {sorted(FEATURE_BASES)}")
    rows: List[Dict] = []
    base_cache: Dict[str, np.ndarray] = {}
    total, done = len(phrases) * len(strengths), 0
    for phrase in phrases:
        base = FEATURE_BASES[phrase]
        intended = f"{base}, {phrase}"
        ref_feats, ref_spread = None, float("nan")
        if real is not None:
            ref_feats = real.features(classifier)[_reference_rows(real, intended)]
            ref_spread = embedding_spread(ref_feats)
        p0 = None

        def point(m: float, w: float) -> Dict:
            nonlocal p0
            if m == 0.0:
                if base not in base_cache:
                    base_cache[base] = generate(pipe, base, n, seed, steps, g, tree_negatives=tree_negatives)
                images = base_cache[base]
            else:  # strength 1 without contrast is the plain prompt with the feature (no extra branch)
                images = generate(pipe, intended, n, seed, steps, g, tree_negatives=tree_negatives,
                                  feature_guidance=contrast_scales(phrase, m, g, w) or None)
            p = float(np.mean(feature_probability(classifier, images, phrase)))
            if p0 is None:
                p0 = p
            row = dict(phrase=phrase, base=base, strength=m, contrast=float(w), scale=m * g, p=p, effect=p - p0,
                       n=int(n), spread=float("nan"), precision=float("nan"), recall=float("nan"))
            if ref_feats is not None:
                feats = _embed(classifier, images)
                row["spread"] = embedding_spread(feats) / ref_spread if ref_spread > 0 else float("nan")
                pr = prdc(ref_feats, feats)
                row["precision"], row["recall"] = float(pr.precision), float(pr.recall)
            logger.info("%s strength %g contrast %g: p %.3f effect %+.3f spread %.2f", phrase, m, w, p,
                        row["effect"], row["spread"])
            return row

        plain = []
        for m in sorted(float(x) for x in strengths):
            plain.append(point(m, 0.0))
            done += 1
            if progress is not None:
                progress(done, total)
        rows.extend(plain)
        hit = any(r["effect"] >= goal and not (r["spread"] < min_spread) for r in plain if r["strength"] > 0)
        weights = contrast_weights(phrase) if (contrast and not hit) else []
        total += len(weights) * len(contrast_strengths)
        for w in weights:
            for m in contrast_strengths:
                rows.append(point(float(m), w))
                done += 1
                if progress is not None:
                    progress(done, total)
    return pd.DataFrame(rows)


def choose_strengths(curves: pd.DataFrame, goal: float = GOAL_EFFECT, min_spread: float = MIN_SPREAD,
                     min_precision_share: float = MIN_PRECISION_SHARE) -> Tuple[Dict[str, float], pd.DataFrame]:
    """Default strength per feature (module docstring) and a table ``phrase, strength, contrast, effect,
    spread, precision, meets_goal``.

    The plain curve comes first: its smallest strength meeting the goal (with the spread kept). Only
    when none does, the contrast points may (smallest strength, then the smaller weight); when
    nothing meets the goal, the point with the largest effect keeping the spread. Every candidate
    keeps the spread >= ``min_spread`` and a precision >= ``min_precision_share`` x the plain
    prompt's (strength 1; NaN passes). The contrast of the pick is in the table's ``contrast``
    column (0: the feature alone); :func:`contrast_of`.
    """
    chosen: Dict[str, float] = {}
    rows = []
    if "contrast" not in curves.columns:
        curves = curves.assign(contrast=0.0)
    for phrase, c in curves.groupby("phrase", sort=False):
        plain1 = c[(c["strength"] == 1.0) & (c["contrast"] == 0)]["precision"]
        floor = float(min_precision_share * plain1.iloc[0]) if len(plain1) and np.isfinite(plain1.iloc[0]) else None
        c = c[c["strength"] > 0].sort_values(["strength", "contrast"])
        ok = c[(c["spread"] >= min_spread) | c["spread"].isna()]
        if floor is not None:
            ok = ok[(ok["precision"] >= floor) | ok["precision"].isna() | (ok["strength"] == 1.0)]
        plain = ok[ok["contrast"] == 0]
        hit = plain[plain["effect"] >= goal]
        if not len(hit):
            hit = ok[ok["effect"] >= goal]
        pick = hit.iloc[0] if len(hit) else (ok.loc[ok["effect"].idxmax()] if len(ok) else c.iloc[0])
        chosen[phrase] = float(pick["strength"])
        rows.append(dict(phrase=phrase, strength=float(pick["strength"]), contrast=float(pick["contrast"]),
                         scale=float(pick["scale"]), effect=float(pick["effect"]), spread=float(pick["spread"]),
                         precision=float(pick["precision"]), meets_goal=bool(pick["effect"] >= goal)))
    return chosen, pd.DataFrame(rows)


def contrast_of(table: pd.DataFrame) -> Dict[str, float]:
    """``{phrase: contrast weight}`` of the features whose chosen default uses contrast."""
    if "contrast" not in table.columns:
        return {}
    return {str(r["phrase"]): float(r["contrast"]) for _, r in table.iterrows() if float(r["contrast"]) > 0}


def card_section(curves: pd.DataFrame, table: pd.DataFrame, guidance: float, n: int) -> str:
    """Markdown section of the model card: the chosen default strength (and contrast) of every feature."""
    lines = ["## Guidance per feature (sliders)", "",
             "Each feature slider of the app drives guidance per feature (composable diffusion, Liu et al. 2022): "
             "`eps = eps(neg) + g (eps(base) - eps(neg)) + s (eps(base + feature) - eps(base))`, the same seeds "
             "at every strength, so a galaxy keeps its shape while the feature grows. Strength = s / g "
             f"(g = {guidance:g}; 1 = the plain prompt). Measured by `train/feature_defaults.py` "
             f"(`galaxysd_core/evaluation/feature_curves.py`) on {n} seeds per point with classifier v2; "
             "effect = p(feature) minus p at strength 0 (the base prompt alone); spread = RMS distance to the "
             "centroid in the classifier's embedding, generated / real galaxies of the same caption; precision = "
             "PRDC precision against them. Default = the smallest strength with effect >= 0.3, spread >= 0.6 and "
             f"precision >= {MIN_PRECISION_SHARE:g} x the plain prompt's (`feature_defaults.json`); where none reaches "
             "the effect, the largest effect within those limits. Curves: `feature_curves.png`, all points: `metrics/feature_curves.csv`.", "",
             "**Contrast.** Where the feature alone misses the goal, its slider was also measured pushing the other "
             "answers of its GZ2 question away (the negation of composable diffusion): above strength m = 1 each "
             "alternative gets the scale `-(m - 1) g w`, with w = 1/k (the push shared by the k alternatives) or "
             "w = 1 (each pushed as hard). It costs one UNet branch per alternative, so it is chosen only where the "
             "feature alone falls short and contrast gives the larger effect (column *contrast w*; 0: the feature "
             "alone). The ceiling is 1 - p(0): a feature the base prompt already shows cannot gain more.", "",
             "![feature curves](feature_curves.png)", "",
             "| feature | base prompt | default strength | contrast w | scale s | effect | ceiling | spread | precision "
             "| effect >= 0.3 |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    bases = dict(zip(curves["phrase"], curves["base"]))
    p0 = {ph: float(c.loc[c["strength"] == 0, "p"].iloc[0]) for ph, c in curves.groupby("phrase")
          if (c["strength"] == 0).any()}
    for _, r in table.iterrows():
        w = float(r.get("contrast", 0.0) or 0.0)
        ceiling = f"{1 - p0[r['phrase']]:.2f}" if r["phrase"] in p0 else ""
        lines.append(f"| {r['phrase']} | `{bases.get(r['phrase'], '')}` | {r['strength']:g} | {w:.3g} | "
                     f"{r['scale']:g} | {r['effect']:+.2f} | {ceiling} | {r['spread']:.2f} | {r['precision']:.2f} | "
                     f"{'yes' if r['meets_goal'] else '**no**'} |")
    return "\n".join(lines) + "\n"


def replace_card_section(readme: str, section: str, title: str = "## Guidance per feature (sliders)") -> str:
    """``readme`` with the section starting at ``title`` (up to the next ``## ``) replaced by ``section``,
    or appended when absent."""
    if title in readme:
        a = readme.index(title)
        b = readme.find("\n## ", a + len(title))
        return readme[:a] + section + ("" if b < 0 else readme[b + 1:])
    return readme.rstrip() + "\n\n" + section


def release_feature_defaults(model_dir, classifier, *, real=None, phrases: Optional[Sequence[str]] = None,
                             n: int = 32, seed: int = 0, steps: Optional[int] = None,
                             strengths: Sequence[float] = CURVE_STRENGTHS, min_captions: int = 30,
                             progress=None, contrast: bool = True, curves: Optional[pd.DataFrame] = None
                             ) -> Dict[str, object]:
    """Measure the curves of a model folder, choose the strengths and write ``feature_defaults.json``,
    ``metrics/feature_curves.csv``, ``feature_curves.png`` and the card section (module docstring).

    ``phrases`` default: every feature of :data:`FEATURE_BASES` seen in at least ``min_captions``
    training captions, plus the dust lane (reported; its goal is the D-ETG one).
    """
    from pathlib import Path

    from galaxysd_core.evaluation.plots import feature_curves_plot
    from galaxysd_core.pipelines.feature_defaults import FeatureDefaults
    from galaxysd_core.pipelines.pipeline_galaxysd import load_pipeline

    folder = Path(model_dir)
    pipe = load_pipeline(folder)
    counts = pipe.trained_features or {}
    if phrases is None:
        phrases = [p for p in FEATURE_BASES if counts.get(p, 0) >= min_captions or p == "dust lane"]
    g = float(pipe.generation_defaults.guidance_scale)
    st = int(steps or pipe.generation_defaults.num_inference_steps)
    if curves is None:  # else: re-choose from curves measured before (metrics/feature_curves.csv)
        curves = feature_curves(pipe, classifier, phrases, real=real, n=n, seed=seed, steps=st, guidance=g,
                                strengths=strengths, tree_negatives=bool(pipe.generation_defaults.tree_negatives),
                                progress=progress, contrast=contrast)
    else:
        plain = curves[curves["contrast"] == 0] if "contrast" in curves.columns else curves
        strengths = sorted(set(plain["strength"]))
        n = int(curves["n"].iloc[0]) if "n" in curves and len(curves) else n
    chosen, table = choose_strengths(curves)
    table["captions"] = [int(counts.get(p, 0)) for p in table["phrase"]]
    (folder / "metrics").mkdir(exist_ok=True)
    curves.to_csv(folder / "metrics" / "feature_curves.csv", index=False, float_format="%.4f")
    table.to_csv(folder / "metrics" / "feature_defaults.csv", index=False, float_format="%.4f")
    FeatureDefaults(guidance_scale=g, strengths=chosen, contrast=contrast_of(table), source={
        "rule": f"smallest strength with effect >= {GOAL_EFFECT}, spread >= {MIN_SPREAD} and precision >= "
                f"{MIN_PRECISION_SHARE} x the plain prompt's, the feature alone first, then with contrast; else the "
                "largest effect within those limits",
        "contrast_strengths": [float(x) for x in CONTRAST_STRENGTHS] if contrast else [], "n": int(n), "seed": int(seed), "steps": st,
        "strengths_measured": [float(s) for s in strengths], "judge": "classifier v2 (assets/classifier)",
        "reference": "Liu et al. 2022 (composable diffusion); galaxysd_core.evaluation.feature_curves",
        "table": table.to_dict("records")}).save(folder)
    feature_curves_plot(curves, chosen, folder / "feature_curves.png", GOAL_EFFECT)
    readme = folder / "README.md"
    if readme.is_file():
        readme.write_text(replace_card_section(readme.read_text(), card_section(curves, table, g, n)))
    return {"curves": curves, "table": table, "strengths": chosen}


def dust_lane_goal(pipe, classifier, detector, real_images: np.ndarray, real_is_dusty: np.ndarray, *,
                   strength: float, n: int = 32, seed: int = 0, real_is_smooth: Optional[np.ndarray] = None,
                   contrast: float = 0.0, images_out: Optional[Dict[str, np.ndarray]] = None) -> Dict[str, float]:
    """The dust-lane goal of guidance per feature: medians for generated ``sdss, smooth, in-between round
    galaxy`` with dust-lane guidance at ``strength`` beside real galaxies where a quarter of all
    classifiers saw a lane (``real_is_dusty``) and beside real galaxies without.

    Returns
    -------
    dict
        ``gen_dust_votes``, ``real_dusty_dust_votes``, ``real_other_dust_votes`` (classifier v2's predicted
        dust-lane vote share, medians), ``gen_p_dust``, ``real_dusty_p_dust``, ``real_other_p_dust`` (the
        D-ETG detector's ``p_dust``, medians), ``gen_p_smooth`` / ``real_dusty_p_smooth`` (classifier v2's
        smooth probability: is the galaxy still an early type?), ``meets_goal`` (generated dust votes >= the
        dusty real median). With ``real_is_smooth`` (a vote mask, e.g. smooth fraction > 0.5) the same
        medians of the real *smooth* galaxies with lanes, the real D-ETGs: ``real_detg_*`` and ``n_real_detg``.
        ``images_out``, when given, receives the images of each group (``gen``, ``real_dusty``, ...).
    """
    def predict_scores(model, images):  # the detector's p_dust: the sigmoid of its one head
        return model.predict_proba(images).numpy()[:, 0]

    base = FEATURE_BASES["dust lane"]
    g = float(pipe.generation_defaults.guidance_scale)
    d = pipe.generation_defaults
    from galaxysd_core.evaluation.feature_effects import dust_lane_probabilities
    from galaxysd_core.pipelines.feature_guidance import contrast_scales

    pairs = contrast_scales("dust lane", float(strength), g, float(contrast))
    gen = generate(pipe, f"{base}, dust lane", n, seed, d.num_inference_steps, g, tree_negatives=d.tree_negatives,
                   feature_guidance=pairs or None)
    dusty = np.asarray(real_is_dusty, dtype=bool)
    groups = [("gen", gen), ("real_dusty", real_images[dusty]), ("real_other", real_images[~dusty])]
    if real_is_smooth is not None:
        detg = dusty & np.asarray(real_is_smooth, dtype=bool)
        groups.append(("real_detg", real_images[detg]))
    out: Dict[str, float] = {}
    for k, x in groups:
        if images_out is not None:
            images_out[k] = x
        if len(x) == 0:
            continue
        lanes = dust_lane_probabilities(classifier, x)
        out[f"{k}_dust_votes"] = float(np.median(lanes["dust_fraction"]))
        out[f"{k}_p_smooth"] = float(np.median(lanes["p_smooth"]))
        out[f"{k}_p_dust"] = float(np.median(predict_scores(detector, x)))
    out.update(strength=float(strength), contrast=float(contrast), n=int(n), n_real_dusty=int(dusty.sum()),
               meets_goal=bool(out["gen_dust_votes"] >= out["real_dusty_dust_votes"]))
    if real_is_smooth is not None:
        out["n_real_detg"] = int(detg.sum())
    return out
