"""The D-ETG detector experiment: arms (a) real votes, (b) + synthetic D-ETGs, (c) synthetic only.

For every arm of :data:`~galaxysd_core.science.detg_config.DETECTOR_ARMS` and every seed the same
one-head detector (:func:`galaxysd_core.science.binary_training.train_binary`: the
``MorphologyClassifier`` architecture, 128 px) is trained on
:func:`~galaxysd_core.science.detg_data.arm_training_set` and scored on the validation and the
held-out test galaxies of :func:`~galaxysd_core.science.detg_data.real_pool`, against

``dust_lane``          the GZ2 majority dust lane (score: the detector's ``p_dust``), the main truth;
``dust_lane_partial``  a quarter of all classifiers reported a dust lane (``p_dust``);
``detg``               dust lane AND smooth majority in the votes (score ``p_dust x p_early``);
``detg_gate``          dust lane AND the classifier's early-type gate ``p_early >= 0.5`` (same score)

with ROC AUC, average precision and recall in the top 1 % and 5 %
(:mod:`galaxysd_core.science.detection_metrics`). The classifier v2's own predicted dust-lane
votes (:mod:`galaxysd_core.science.detg_components`) are scored the same way as a baseline that
needs no detector. The best seed of every arm and the best arm are chosen on the *validation*
split (``config.select_metric`` on the dust-lane truth), never on the test split.

Owns :class:`DetgExperimentResult`, :func:`run_detector_experiment` and :func:`goal_verdict`; the
files are written by :mod:`galaxysd_core.science.detg_results`.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import pandas as pd

from galaxysd_core.errors import GalaxySDDataError
from galaxysd_core.science.binary_training import predict_scores, train_binary
from galaxysd_core.science.detection_metrics import detection_metrics, summarize_runs
from galaxysd_core.science.detg_components import COMPONENT_COLUMNS, component_probabilities
from galaxysd_core.science.detg_config import ARM_LABELS, DETECTOR_ARMS, DetgConfig
from galaxysd_core.science.detg_data import arm_training_set, generate_synthetic, real_pool
from galaxysd_core.science.vote_truth import DUST_LANE_COLUMN

__all__ = ["TRUTHS", "GOAL_AUC", "DetgExperimentResult", "run_detector_experiment", "goal_verdict",
           "training_seed"]

logger = logging.getLogger(__name__)

#: Truths of the evaluation -> the score they rank by ("dust": detector alone; "detg": x p_early).
TRUTHS = {"dust_lane": "dust", "dust_lane_partial": "dust", "detg": "detg", "detg_gate": "detg"}
#: The issue's goal for arm (b): held-out ROC AUC (dust-lane truth).
GOAL_AUC = 0.95


def training_seed(seed: int) -> int:
    """Training seed of detector seed ``seed`` (the same for every arm)."""
    return 1000 * int(seed) + 7


@dataclass
class DetgExperimentResult:
    """Outcome of :func:`run_detector_experiment`.

    Attributes
    ----------
    runs : pandas.DataFrame
        One row per arm, seed, split, truth: the metrics, training counts and times.
    summary : pandas.DataFrame
        Mean / std / min / max over seeds per arm, split and truth.
    selection : pandas.DataFrame
        Per arm: the best seed on validation and its validation metric.
    best_arm : str
        The arm with the best mean validation metric.
    detectors : dict
        Arm -> the detector (MorphologyClassifier) of its best seed.
    pool : pandas.DataFrame
        ``id, source, split`` and the truths of every real galaxy of the experiment.
    sweep : pandas.DataFrame
        The synthetic set per prompt (count, label, share judged smooth, mean predicted dust votes).
    synthetic : (images, table) or None
        The synthetic images and their table (for the preview).
    verdict : dict
        :func:`goal_verdict`.
    info : dict
        Counts, times, generator identity.
    """

    runs: pd.DataFrame
    summary: pd.DataFrame
    selection: pd.DataFrame
    best_arm: str
    detectors: Dict[str, Any]
    pool: pd.DataFrame
    sweep: pd.DataFrame
    synthetic: Optional[Tuple[np.ndarray, pd.DataFrame]]
    verdict: Dict[str, Any]
    info: Dict[str, Any] = field(default_factory=dict)


def _evaluate(pool: pd.DataFrame, rows: Dict[str, np.ndarray], p_dust: Dict[str, np.ndarray],
              p_early: Optional[Dict[str, np.ndarray]], early_threshold: float) -> List[Dict[str, Any]]:
    """Metric rows for every split and truth."""
    out = []
    for split, idx in rows.items():
        truths = {t: pool[t].to_numpy(dtype=float)[idx] for t in ("dust_lane", "dust_lane_partial", "detg")}
        if p_early is not None:
            truths["detg_gate"] = truths["dust_lane"] * (p_early[split] >= early_threshold)
        for truth, y in truths.items():
            score = p_dust[split] if TRUTHS[truth] == "dust" or p_early is None else p_dust[split] * p_early[split]
            ok = ~np.isnan(y)
            m = detection_metrics(y[ok], score[ok])
            out.append({"split": split, "truth": truth,
                        "score": "p_dust" if TRUTHS[truth] == "dust" or p_early is None else "p_dust*p_early", **m})
    return out


def goal_verdict(summary: pd.DataFrame, goal_auc: float = GOAL_AUC) -> Dict[str, Any]:
    """Does arm (b) beat (a) and reach ``goal_auc`` (mean held-out ROC AUC, dust-lane truth)?

    Returns ``{"b_auc", "b_auc_std", "a_auc", "a_auc_std", "b_beats_a", "goal_met", "text"}``
    (NaN / False where an arm is missing). "Beats" means a higher mean; the text also says when
    the difference is within the seed spread.
    """
    t = summary[(summary["split"] == "test") & (summary["truth"] == "dust_lane")].set_index("arm")

    def get(arm, col):
        return float(t.loc[arm, col]) if arm in t.index and col in t.columns else float("nan")

    b, bs, a, as_ = (get("real+synthetic", "roc_auc_mean"), get("real+synthetic", "roc_auc_std"),
                     get("real", "roc_auc_mean"), get("real", "roc_auc_std"))
    n_pos = int(t["n_pos"].iloc[0]) if len(t) else 0
    beats = bool(np.isfinite(a) and np.isfinite(b) and b > a)
    met = bool(np.isfinite(b) and b >= goal_auc)
    within = np.isfinite(a) and np.isfinite(b) and abs(b - a) <= np.nanmax([bs, as_, 0.0])
    if not np.isfinite(b):
        text = "arm (b) was not run: no verdict."
    else:
        pm = lambda m, sd: f"{m:.3f}" + (f" ± {sd:.3f}" if np.isfinite(sd) else "")  # noqa: E731
        text = (f"Held-out ROC AUC (dust-lane votes, {n_pos} positives): (b) real + synthetic {pm(b, bs)}, "
                f"(a) real only {pm(a, as_)}. (b) {'beats' if beats else 'does NOT beat'} (a)"
                + (" (within the seed spread)" if within else "") + f"; the goal AUC >= {goal_auc} is "
                + ("met." if met else "NOT met."))
    return {"b_auc": b, "b_auc_std": bs, "a_auc": a, "a_auc_std": as_, "b_beats_a": beats, "goal_met": met,
            "within_spread": bool(within), "n_test_pos": n_pos, "text": text}


def run_detector_experiment(cache_dirs: Sequence[Union[str, Path]], test_ids: Sequence[str], config: DetgConfig, *,
                            pipe_factory: Optional[Callable[[], Any]] = None, model_id: str = "none",
                            synthetic_cache: Optional[Union[str, Path]] = None, judge=None,
                            log: Callable[[str], None] = logger.info,
                            data: Optional[Tuple[np.ndarray, pd.DataFrame]] = None) -> DetgExperimentResult:
    """Train and evaluate every arm and seed (module docstring).

    Parameters
    ----------
    cache_dirs : sequence of path
        Prepared caches with GZ2 votes (``cache/gz2_cutouts_128``).
    test_ids : sequence of str
        The classifier's held-out ids (:func:`galaxysd_core.training.classifier_data.load_test_ids`).
    config : DetgConfig
    pipe_factory, model_id :
        The generator (:func:`galaxysd_core.science.synthetic.generator_factory`); needed by the
        synthetic arms unless the synthetic cache has every set.
    synthetic_cache : path, optional
        Folder of the synthetic-image cache.
    judge : MorphologyClassifier, optional
        Classifier v2: the early-type gate of the D-ETG truths and scores, the baseline and the
        judgement of the synthetic images. Without it only the dust-lane truths are scored.
    log : callable
        Progress messages.
    data : (images, index), optional
        Real images and index instead of ``cache_dirs``.
    """
    t0 = time.perf_counter()
    images, pool = real_pool(cache_dirs, test_ids, config, data=data)
    size = int(images.shape[1])
    split = pool["split"].to_numpy()
    rows = {s: np.flatnonzero(split == s) for s in ("validation", "test")}
    counts = {s: {"n": int((split == s).sum()), "dust_lane": int((pool["dust_lane"].to_numpy()[split == s] == 1).sum())}
              for s in ("train", "validation", "test")}
    log(f"real galaxies with votes: {len(pool)} ({counts}); images {size} px")

    p_early = comps = None
    if judge is not None:
        comps = {s: component_probabilities(judge, images[r]) for s, r in rows.items()}
        p_early = {s: c[:, COMPONENT_COLUMNS.index("p_early")] for s, c in comps.items()}

    synth = synth_labels = None
    synth_table = pd.DataFrame()
    gen_s = 0.0
    if any(DETECTOR_ARMS[a].synthetic for a in config.arms):
        if pipe_factory is None and synthetic_cache is None:
            raise GalaxySDDataError("the synthetic arms need a generator model (--model)")
        log("synthetic D-ETGs and dust-free negatives:")
        synth, synth_table, gen_s = generate_synthetic(pipe_factory or (lambda: None), config, model_id=model_id,
                                                       cache_dir=synthetic_cache, size=size, log=log)
        synth_labels = synth_table["label"].to_numpy(dtype=float)
        if judge is not None:
            c = component_probabilities(judge, synth)
            synth_table["judged_smooth"] = c[:, 0] >= 0.5
            synth_table["dust_vote_pred"] = c[:, 3]
    sweep = (synth_table.groupby(["prompt", "shape", "dust_weight", "label"], sort=False)
             .agg(n=("seed", "size"), **({"judged_smooth": ("judged_smooth", "mean"),
                                          "dust_vote_pred_mean": ("dust_vote_pred", "mean")}
                                         if "judged_smooth" in synth_table else {})).reset_index()
             if len(synth_table) else pd.DataFrame())

    records: List[Dict[str, Any]] = []
    best: Dict[str, Tuple[float, int, Any]] = {}
    metric = config.select_metric
    for arm in config.arms:
        ts = arm_training_set(arm, images, pool, synth, synth_labels, config)
        n = ts.counts()
        for seed in config.seeds:
            st = replace(config.detector, seed=training_seed(seed))
            model, hist = train_binary(ts.images, ts.targets, st, column=DUST_LANE_COLUMN)
            p_dust = {s: predict_scores(model, images[r]) for s, r in rows.items()}
            evals = _evaluate(pool, rows, p_dust, p_early, config.early_threshold)
            for e in evals:
                records.append({"arm": arm, "seed": int(seed), **e, **n, "train_s": hist["wall_time_s"],
                                "final_loss": hist["loss"][-1]})
            val = next(e[metric] for e in evals if e["split"] == "validation" and e["truth"] == "dust_lane")
            test = next(e for e in evals if e["split"] == "test" and e["truth"] == "dust_lane")
            log(f"  {ARM_LABELS[arm]:<36} seed {seed}: validation {metric} {val:.3f} | test AUC {test['roc_auc']:.3f} "
                f"AP {test['ap']:.3f} R@1% {test['recall_at_1pct']:.2f} R@5% {test['recall_at_5pct']:.2f} "
                f"({hist['wall_time_s']:.0f} s)")
            score = val if np.isfinite(val) else -np.inf
            if arm not in best or score > best[arm][0]:
                best[arm] = (score, int(seed), model)
            else:
                del model
        del ts
    if comps is not None:  # the baseline: classifier v2's predicted dust-lane votes, no detector
        dust_pred = {s: c[:, COMPONENT_COLUMNS.index("dust_vote_pred")] for s, c in comps.items()}
        if all(np.isfinite(v).all() for v in dust_pred.values()):
            for e in _evaluate(pool, rows, dust_pred, p_early, config.early_threshold):
                e["score"] = e["score"].replace("p_dust", "dust_vote_pred")
                records.append({"arm": "classifier", "seed": 0, **e})
    runs = pd.DataFrame(records)
    summary = summarize_runs(runs, ["arm", "split", "truth", "score"])
    summary["arm_label"] = summary["arm"].map(ARM_LABELS)
    val_sum = summary[(summary["split"] == "validation") & (summary["truth"] == "dust_lane")
                      & summary["arm"].isin(config.arms)].set_index("arm")
    selection = pd.DataFrame([{"arm": a, "best_seed": best[a][1], f"best_validation_{metric}": best[a][0],
                               f"mean_validation_{metric}": float(val_sum.loc[a, f"{metric}_mean"])}
                              for a in config.arms])
    ranked = selection.sort_values(f"mean_validation_{metric}", ascending=False, kind="stable")
    best_arm = str(ranked["arm"].iloc[0])
    info = {"counts": counts, "n_real": int(len(pool)), "resolution": size, "model_id": model_id,
            "n_synthetic": int(len(synth_table)), "n_synthetic_pos": int((synth_table.get("label", pd.Series([])) == 1).sum()),
            "generation_s": gen_s, "wall_time_s": time.perf_counter() - t0, "judge": judge is not None}
    keep = ["id", "source", "split", "dust_lane", "dust_lane_soft", "dust_lane_partial", "early_type", "detg"]
    return DetgExperimentResult(runs=runs, summary=summary, selection=selection, best_arm=best_arm,
                                detectors={a: best[a][2] for a in config.arms},
                                pool=pool[[c for c in keep if c in pool.columns]].copy(), sweep=sweep,
                                synthetic=(synth, synth_table) if synth is not None else None,
                                verdict=goal_verdict(summary), info=info)
