"""The written results of the D-ETG detector experiment: detector folders, tables and cards.

Layout of ``out_dir`` (e.g. ``assets/detg_detector``)::

    config.json, model.safetensors, README.md   the best arm's best-seed detector and its card
    training_ids.csv                            real galaxies used for training or selection (the
                                                catalog excludes them)
    arms/<arm>/                                 every arm's best-seed detector (same files), so the
                                                comparison can be re-run and re-scanned
    heldout_runs.csv                            metrics per arm, seed, split and truth
    heldout_summary.csv                         mean / std / min / max over seeds
    heldout.json                                config, selection, verdict, counts, versions
    experiment_config.json                      the DetgConfig (re-run with it)
    synthetic_sweep.csv, synthetic_detgs.png    the synthetic set per prompt and a preview

A detector folder loads with :meth:`MorphologyClassifier.from_pretrained`; its ``config.json``
``training`` entry holds the arm, seed, training counts and held-out figures.

Owns :func:`write_experiment`, :func:`detector_card`, :func:`format_summary` and
:func:`synthetic_preview`.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Union

import numpy as np
import pandas as pd

from galaxysd_core._utils import jsonable, library_versions
from galaxysd_core.science.detection_metrics import METRICS
from galaxysd_core.science.detg_config import ARM_LABELS, DetgConfig, arm_slug, detg_prompts
from galaxysd_core.science.detg_experiment import GOAL_AUC, DetgExperimentResult, training_seed
from galaxysd_core.science.vote_truth import TRUTH_DEFINITIONS

__all__ = ["TRAINING_IDS_NAME", "write_experiment", "detector_card", "format_summary", "synthetic_preview"]

#: File of a detector folder listing the real galaxies it must not be credited for.
TRAINING_IDS_NAME = "training_ids.csv"
_METRIC_NAMES = {"roc_auc": "ROC AUC", "ap": "AP", "recall_at_1pct": "recall top 1 %", "recall_at_5pct": "recall top 5 %"}


def format_summary(summary: pd.DataFrame, split: str = "test", truths=("dust_lane", "detg", "detg_gate")) -> str:
    """Markdown table ``mean ± std (min-max)`` over seeds of one split."""
    lines = ["| truth (positives / galaxies) | arm | seeds | " + " | ".join(_METRIC_NAMES[m] for m in METRICS) + " |",
             "|---|---|---:|" + "---:|" * len(METRICS)]
    sub = summary[(summary["split"] == split) & summary["truth"].isin(truths)]
    for _, r in sub.iterrows():
        cells = []
        for m in METRICS:
            mean, sd = r[f"{m}_mean"], r[f"{m}_std"]
            cells.append("—" if not np.isfinite(mean) else f"{mean:.3f}" + (f" ± {sd:.3f}" if np.isfinite(sd) else ""))
        lines.append(f"| {r['truth']} ({int(r['n_pos'])} / {int(r['n'])}) | {ARM_LABELS.get(r['arm'], r['arm'])} | "
                     f"{int(r['n_seeds'])} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def synthetic_preview(images: np.ndarray, table: pd.DataFrame, path: Union[str, Path], per_row: int = 8) -> Path:
    """PNG grid of the synthetic set, one row per prompt (synthetic images only, never real ones)."""
    from PIL import Image, ImageDraw

    prompts = list(dict.fromkeys(table["prompt"]))
    s = max(64, images.shape[1])
    label_w = 330
    img = Image.new("RGB", (label_w + per_row * s, len(prompts) * s), "black")
    d = ImageDraw.Draw(img)
    for r, p in enumerate(prompts):
        idx = np.flatnonzero(table["prompt"].to_numpy() == p)[:per_row]
        d.text((4, r * s + s // 2 - 6), p.replace("sdss, smooth, ", ""), fill="white")
        for c, i in enumerate(idx):
            img.paste(Image.fromarray(images[i]).resize((s, s), Image.Resampling.NEAREST), (label_w + c * s, r * s))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path


def detector_card(arm: str, seed: int, result: DetgExperimentResult, config: DetgConfig,
                  extra: Mapping[str, Any]) -> str:
    """Markdown card of one arm's best-seed detector."""
    runs = result.runs
    mine = runs[(runs["arm"] == arm) & (runs["seed"] == seed) & (runs["truth"] == "dust_lane")]
    test = mine[mine["split"] == "test"].iloc[0]
    n = {k: int(test[k]) for k in ("real_pos", "real_neg", "real_soft_nonzero", "synthetic_pos", "synthetic_neg")}
    d = config.detector
    best = " (the shipped detector: best arm on validation)" if arm == result.best_arm else ""
    lines = [
        f"# D-ETG detector — {ARM_LABELS[arm]}, seed {seed}{best}", "",
        "One-head `MorphologyClassifier` scoring 'a dust lane crosses this galaxy' (`p_dust`). The catalog's D-ETG "
        "score is `p_dust x p_early`, `p_early` = smooth and not a star/artifact from classifier v2 "
        "(`galaxysd_core/science/detg_components.py`). Made by `train/search_detg.py` "
        "(`galaxysd_core/science/detg_experiment.py`).", "",
        "## Training data", "",
        f"- arm: {ARM_LABELS[arm]}; real training targets: {config.real_labels} "
        f"({'f_dust x p_odd, the partial-vote share' if config.real_labels == 'soft' else 'majority label'})",
        f"- real galaxies: {n['real_pos'] + n['real_neg']} from {', '.join(f'`{c}`' for c in extra.get('caches', []))} "
        f"(training split; {n['real_pos']} with target >= 0.5, {n['real_soft_nonzero']} with any dust-lane vote)",
        f"- synthetic: {n['synthetic_pos']} D-ETGs and {n['synthetic_neg']} dust-free smooth galaxies from "
        f"`{extra.get('model', '?')}` (`{result.info.get('model_id', '?')}`)" if n["synthetic_pos"] + n["synthetic_neg"]
        else "- synthetic: none",
        f"- architecture: channels {list(d.channels)}, {d.image_size} px, stem stride {d.stem_stride}; {d.steps} AdamW "
        f"steps of {d.batch_size} (lr {d.learning_rate}), oversampled batches (positives: target >= "
        f"{d.balance_threshold}) = {d.balanced}, flips/rotations = {d.augment}, loss {d.loss}; training seed "
        f"{training_seed(seed)} (seeds {config.seeds}, best on validation {config.select_metric})", "",
        "## Held-out figures (this seed)", "",
        f"Test = the classifier's fixed held-out split (`assets/classifier/split_test_ids.csv`) among the voted "
        f"galaxies: {int(test['n'])} galaxies, {int(test['n_pos'])} majority dust lanes.", "",
        "| split | truth | score | ROC AUC | AP | recall top 1 % | recall top 5 % |", "|---|---|---|---:|---:|---:|---:|"]
    for _, r in runs[(runs["arm"] == arm) & (runs["seed"] == seed)].iterrows():
        lines.append(f"| {r['split']} | {r['truth']} ({int(r['n_pos'])}) | `{r['score']}` | {r['roc_auc']:.3f} | "
                     f"{r['ap']:.3f} | {r['recall_at_1pct']:.2f} | {r['recall_at_5pct']:.2f} |")
    lines += ["", "## All arms, mean ± std over seeds (test)", "", format_summary(result.summary), "",
              f"**Verdict.** {result.verdict['text']}", "", "## Truths", ""]
    lines += [f"- `{k}`: {v}" for k, v in TRUTH_DEFINITIONS.items()]
    lines += [f"- `detg_gate`: dust_lane AND classifier v2 p_early >= {config.early_threshold}", "",
              "## Limitations", "",
              f"- {int(test['n_pos'])} test positives: one dust lane more or less found moves recall by "
              f"{1 / max(1, int(test['n_pos'])):.2f}; read the seed spread and the validation figures with that in mind.",
              "- The negatives are GZ2 galaxies nobody (or few) flagged; unrecognised dust lanes among them "
              "depress the scores of exactly the galaxies sought (positive-unlabelled data).",
              "- Data: SDSS and Galaxy Zoo 2 (Willett et al. 2013; Hart et al. 2016). No real images are stored here.", ""]
    return "\n".join(lines)


def _save_detector(model, folder: Path, arm: str, seed: int, result: DetgExperimentResult, config: DetgConfig,
                   extra: Mapping[str, Any], training_ids: pd.DataFrame) -> None:
    runs = result.runs
    mine = runs[(runs["arm"] == arm) & (runs["seed"] == seed)]
    info = {"purpose": "D-ETG detector (dust lane)", "arm": arm, "arm_label": ARM_LABELS[arm], "seed": seed,
            "training_seed": training_seed(seed), "seeds": list(config.seeds), "training": config.detector.to_dict(),
            "real_labels": config.real_labels, "generator": extra.get("model"), "generator_id": result.info.get("model_id"),
            "caches": list(extra.get("caches", [])), "classifier": extra.get("classifier"),
            "heldout": mine.drop(columns=["arm", "seed"]).to_dict("records"), "verdict": result.verdict,
            "versions": library_versions(), "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    model.save_pretrained(folder, extra_config=jsonable(info), card=detector_card(arm, seed, result, config, extra))
    training_ids.to_csv(folder / TRAINING_IDS_NAME, index=False)


def write_experiment(result: DetgExperimentResult, out_dir: Union[str, Path], config: DetgConfig,
                     extra: Optional[Mapping[str, Any]] = None) -> Dict[str, str]:
    """Write the detectors, tables, config and preview (module docstring); returns name -> path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    extra = dict(extra or {})
    pool = result.pool
    training_ids = pool.loc[pool["split"].isin(["train", "validation"]), ["id", "source", "split"]]
    files: Dict[str, str] = {}
    for arm, model in result.detectors.items():
        seed = int(result.selection.set_index("arm").loc[arm, "best_seed"])
        folder = out / "arms" / arm_slug(arm)
        _save_detector(model, folder, arm, seed, result, config, extra, training_ids)
        files[f"detector_{arm}"] = str(folder)
        if arm == result.best_arm:
            _save_detector(model, out, arm, seed, result, config, extra, training_ids)
            files["detector"] = str(out)
    result.runs.to_csv(out / "heldout_runs.csv", index=False, float_format="%.5g")
    result.summary.to_csv(out / "heldout_summary.csv", index=False, float_format="%.5g")
    (out / "experiment_config.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n")
    payload = {"created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"), "config": config.to_dict(),
               "best_arm": result.best_arm, "selection": result.selection.to_dict("records"),
               "verdict": result.verdict, "goal_auc": GOAL_AUC, "truths": TRUTH_DEFINITIONS, "info": result.info,
               "prompts": [p for _, _, p in detg_prompts(config)], "versions": library_versions(), **extra,
               "summary": result.summary.to_dict("records")}
    (out / "heldout.json").write_text(json.dumps(jsonable(payload), indent=2) + "\n")
    files.update(runs=str(out / "heldout_runs.csv"), summary=str(out / "heldout_summary.csv"),
                 json=str(out / "heldout.json"), config=str(out / "experiment_config.json"))
    if len(result.sweep):
        result.sweep.to_csv(out / "synthetic_sweep.csv", index=False, float_format="%.4f")
        files["sweep"] = str(out / "synthetic_sweep.csv")
    if result.synthetic is not None:
        files["preview"] = str(synthetic_preview(*result.synthetic, out / "synthetic_detgs.png"))
    return files
