"""The written results of the augmentation experiment: table, plots, files and README.

Owns :func:`format_table` (the Markdown ``mean ± std`` table), the figures (:func:`plotly_figure`
for the app, :func:`draw_png`, a static Pillow drawing, and :func:`plot_results`, both to files),
:func:`write_results` (``runs.csv``, ``results.csv``, ``results.json``, plots), :func:`write_readme`
(the generated ``README.md`` of the results folder, keeping its hand-written notes) and
:func:`run_and_report`, the whole experiment of ``train/experiment_augmentation.py``: load the
held-out split and the judge, run :func:`galaxysd_core.science.augmentation.run_experiment`, write
everything.
"""
from __future__ import annotations

import json
import logging
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import pandas as pd

from galaxysd_core import config as _config
from galaxysd_core._utils import jsonable, library_versions
from galaxysd_core.science.augmentation import ARM_LABELS, ExperimentConfig, run_experiment, verdicts
from galaxysd_core.science.script_support import load_judge, repo_relative
from galaxysd_core.science.synthetic import generator_factory

__all__ = ["format_table", "plotly_figure", "draw_png", "plot_results", "write_results", "write_readme",
           "readme_notes", "run_and_report"]

logger = logging.getLogger(__name__)


def format_table(summary: pd.DataFrame, metrics: Sequence[str] = ("precision", "recall", "f1", "ap")) -> str:
    """Markdown table ``mean +- std`` (the README/report form)."""
    head = "| task | real positives | arm | " + " | ".join(
        {"precision": "purity (P)", "recall": "completeness (R)", "f1": "F1", "ap": "AP", "auc": "AUC"}[m]
        for m in metrics) + " |"
    lines = [head, "|" + "---|" * (3 + len(metrics))]
    for _, r in summary.iterrows():
        cells = [f"{r[f'{m}_mean']:.3f} ± {r[f'{m}_std']:.3f}" if np.isfinite(r[f"{m}_std"])
                 else f"{r[f'{m}_mean']:.3f}" for m in metrics]
        shots = f"{r['shots']} ({r['n_real_pos']})" if str(r["shots"]) == "all" else str(r["shots"])
        lines.append(f"| {r['task']} | {shots} | {ARM_LABELS.get(r['arm'], r['arm'])} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------- plots
_COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"]


def plotly_figure(summary: pd.DataFrame, metric: str = "f1"):
    """Plotly figure: ``metric`` (mean +- std over seeds) against real positives, one panel per task."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    tasks = list(dict.fromkeys(summary["task"]))
    fig = make_subplots(rows=1, cols=len(tasks), subplot_titles=tasks, shared_yaxes=True)
    arms = list(dict.fromkeys(summary["arm"]))
    for j, task in enumerate(tasks):
        sub = summary[summary["task"] == task]
        for i, arm in enumerate(arms):
            s = sub[sub["arm"] == arm]
            fig.add_trace(go.Scatter(
                x=[str(v) for v in s["shots"]], y=s[f"{metric}_mean"],
                error_y=dict(type="data", array=s[f"{metric}_std"].fillna(0), visible=True),
                mode="lines+markers", name=ARM_LABELS.get(arm, arm), legendgroup=arm, showlegend=j == 0,
                line=dict(color=_COLORS[i % len(_COLORS)])), row=1, col=j + 1)
        fig.update_xaxes(title_text="real positives", type="category", row=1, col=j + 1)
    fig.update_yaxes(title_text=f"{metric.upper()} on held-out real test set", range=[0, 1], row=1, col=1)
    fig.update_layout(title=f"Rare-class classification: {metric.upper()} (mean ± std over seeds)",
                      legend=dict(orientation="h", y=-0.25), margin=dict(l=60, r=20, t=70, b=110))
    return fig


def draw_png(summary: pd.DataFrame, path: Union[str, Path], metrics: Sequence[str] = ("f1", "ap")) -> Path:
    """Static PNG of the results drawn with Pillow (no matplotlib/kaleido here): one row per metric,
    one panel per task, mean +- std over seeds against the number of real positives."""
    from PIL import Image, ImageDraw, ImageFont

    tasks = list(dict.fromkeys(summary["task"]))
    arms = list(dict.fromkeys(summary["arm"]))
    pw, ph, left, top, gap = 360, 260, 70, 50, 30
    legend_h = 30 + 22 * len(arms)
    W = left + len(tasks) * (pw + gap) + 10
    H = top + len(metrics) * (ph + 70) + legend_h
    img = Image.new("RGB", (W, H), "white")
    d = ImageDraw.Draw(img)
    try:
        font = ImageFont.load_default(size=14)
        small = ImageFont.load_default(size=12)
    except TypeError:  # pragma: no cover - very old Pillow
        font = small = ImageFont.load_default()
    d.text((left, 12), "Rare-class classifiers on the held-out real test set (mean ± std over seeds)",
           fill="black", font=font)
    names = {"f1": "F1", "ap": "average precision", "precision": "purity", "recall": "completeness", "auc": "ROC AUC"}
    for r, metric in enumerate(metrics):
        y0 = top + r * (ph + 70)
        for c, task in enumerate(tasks):
            x0 = left + c * (pw + gap)
            d.text((x0 + 5, y0 - 18), f"{task}: {names.get(metric, metric)}", fill="black", font=font)
            for k in range(6):
                yy = y0 + ph - k * ph / 5
                d.line([x0, yy, x0 + pw, yy], fill="#dddddd")
                if c == 0:
                    d.text((x0 - 32, yy - 7), f"{k / 5:.1f}", fill="black", font=small)
            d.rectangle([x0, y0, x0 + pw, y0 + ph], outline="black")
            sub = summary[summary["task"] == task]
            cats = list(dict.fromkeys(str(v) for v in sub["shots"]))
            xs = {v: x0 + (i + 0.5) * pw / max(1, len(cats)) for i, v in enumerate(cats)}
            for v, xx in xs.items():
                n_pos = sub[sub["shots"].astype(str) == v]["n_real_pos"].iloc[0]
                label = f"all ({n_pos})" if v == "all" else v
                d.text((xx - 14, y0 + ph + 4), label, fill="black", font=small)
            for i, arm in enumerate(arms):
                col = _COLORS[i % len(_COLORS)]
                s = sub[sub["arm"] == arm]
                off = (i - (len(arms) - 1) / 2) * 5  # dodge error bars
                pts = []
                for _, row in s.iterrows():
                    mval = row[f"{metric}_mean"]
                    if not np.isfinite(mval):
                        continue
                    sd = row[f"{metric}_std"] if np.isfinite(row[f"{metric}_std"]) else 0.0
                    xx = xs[str(row["shots"])] + off
                    to_y = lambda v: y0 + ph - float(np.clip(v, 0, 1)) * ph  # noqa: E731
                    d.line([xx, to_y(mval - sd), xx, to_y(mval + sd)], fill=col, width=1)
                    pts.append((xx, to_y(mval)))
                if len(pts) > 1:
                    d.line(pts, fill=col, width=2)
                for (xx, yy) in pts:
                    d.ellipse([xx - 3, yy - 3, xx + 3, yy + 3], fill=col)
        d.text((left + len(tasks) * (pw + gap) / 2 - 60, y0 + ph + 20), "real positives in training",
               fill="black", font=small)
    ly = top + len(metrics) * (ph + 70)
    for i, arm in enumerate(arms):
        col = _COLORS[i % len(_COLORS)]
        yy = ly + 22 * i
        d.line([left, yy + 8, left + 30, yy + 8], fill=col, width=3)
        d.text((left + 40, yy), ARM_LABELS.get(arm, arm), fill="black", font=font)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path


def plot_results(summary: pd.DataFrame, out_dir: Union[str, Path]) -> Dict[str, str]:
    """Write ``augmentation_f1.png`` (Pillow) and ``augmentation_f1.plotly.json`` / ``augmentation_ap.plotly.json``
    (the app renders these with ``plotly.io.from_json``)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {"png": str(draw_png(summary, out / "augmentation_f1.png"))}
    try:
        import plotly.io as pio

        for metric in ("f1", "ap"):
            p = out / f"augmentation_{metric}.plotly.json"
            p.write_text(pio.to_json(plotly_figure(summary, metric)))
            files[f"plotly_{metric}"] = str(p)
    except ImportError:  # pragma: no cover - plotly is a requirement
        pass
    return files


def write_results(result: Mapping[str, Any], out_dir: Union[str, Path], config: ExperimentConfig,
                  extra: Optional[Mapping[str, Any]] = None) -> Dict[str, str]:
    """Save ``runs.csv``, ``results.csv`` (summary), ``results.json`` (config, versions, info,
    summary) and the plots to ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result["runs"].to_csv(out / "runs.csv", index=False, float_format="%.5f")
    result["summary"].to_csv(out / "results.csv", index=False, float_format="%.5f")
    payload = {
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "config": config.to_dict(), "versions": library_versions(), "info": dict(result["info"]),
        **(dict(extra) if extra else {}),
        "summary": result["summary"].to_dict("records"),
    }
    (out / "results.json").write_text(json.dumps(jsonable(payload), indent=2) + "\n")
    files = {"runs": str(out / "runs.csv"), "results": str(out / "results.csv"), "json": str(out / "results.json")}
    if not result["summary"].empty:
        files.update(plot_results(result["summary"], out))
    return files


_NOTES_BEGIN, _NOTES_END = "<!-- notes:begin -->", "<!-- notes:end -->"


def readme_notes(text: str) -> str:
    """The hand-written discussion of a results ``README.md`` (between ``<!-- notes:begin -->`` and
    ``<!-- notes:end -->``), or ``""`` when it has none."""
    if _NOTES_BEGIN not in text or _NOTES_END not in text:
        return ""
    return text[text.index(_NOTES_BEGIN) + len(_NOTES_BEGIN):text.index(_NOTES_END)].strip("\n")


def write_readme(result: Mapping[str, Any], out_dir: Union[str, Path], config: ExperimentConfig,
                 extra: Optional[Mapping[str, Any]] = None) -> Path:
    """Write ``README.md`` of the results folder (numbers generated; a hand-written notes block
    between ``<!-- notes:begin -->`` and ``<!-- notes:end -->`` survives re-runs)."""
    out = Path(out_dir)
    path = out / "README.md"
    notes = ""
    if path.is_file():
        notes = readme_notes(path.read_text())
    info, summ, extra = result["info"], result["summary"], dict(extra or {})
    t = config.train
    lines = [
        "# Augmentation experiment: does synthetic data help rare-class classifiers?",
        "",
        "Generated by `train/experiment_augmentation.py` (logic: `galaxysd_core/science/augmentation.py`, "
        "report: `galaxysd_core/science/augmentation_report.py`) on "
        f"{datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}. Files: `results.csv` (mean and std "
        "per task, shots, arm), `runs.csv` (every run), `results.json` (configuration, versions, timings, "
        "summary), `augmentation_f1.png` (F1 and average precision, drawn with Pillow) and "
        "`augmentation_{f1,ap}.plotly.json` (the same as Plotly figures for the app: "
        "`plotly.io.from_json(open(path).read())`).",
        "",
        "## Set-up",
        "",
        f"- generator: `{extra.get('model', '?')}` (`{info.get('model_id', '?')}`); synthetic positives: "
        f"{config.n_synthetic} per class from the class caption, seeds {config.synthetic_seed}..."
        f"{config.synthetic_seed + config.n_synthetic - 1}, {config.num_inference_steps} DDIM steps, guidance "
        f"{config.guidance_scale}, with the pipeline's automatic GZ2-tree negative prompt (e.g. `sdss, smooth, "
        "star or artifact, edge-on galaxy` for spirals, none for mergers); generated once and cached "
        "(`cache/synthetic/`, git-ignored)",
        f"- real data: {', '.join(f'`{c}`' for c in extra.get('caches', []))}; held-out test set = the fixed "
        f"split of the shipped classifier (`assets/classifier/split_test_ids.csv`, {info.get('n_test_total')} "
        "galaxies), never used for training; Galaxy Zoo 1 single-class labels completed with implied negatives",
        f"- classifier: the `MorphologyClassifier` architecture with one head at half width (channels "
        f"{list(t.channels)}, {t.image_size} px), trained from scratch in every run: {t.steps} AdamW steps of "
        f"{t.batch_size} images (one-cycle lr peak {t.learning_rate}, weight decay {t.weight_decay}) — the same "
        "budget for every arm",
        f"- negatives: {config.n_negatives} real negatives drawn per seed from the training part (the same for "
        "every arm and shot setting of a seed); positives: the first k of a per-seed permutation of the "
        "training positives (nested: the 10 are among the 30, ...); `all` = every training positive",
        f"- arms: (a) real only, BCE, natural proportions, no augmentation; (b) (a) + the synthetic positives; "
        f"(c) oversampling (half of every batch positives) + random flips/90-degree rotations; (d) focal loss "
        f"(gamma {t.focal_gamma}, alpha {t.focal_alpha}); (e), when present: synthetic + oversampling + flips",
        f"- metrics at threshold {config.threshold} on the classifier's probability: purity (precision), "
        "completeness (recall), F1 (precision is 0 when nothing is predicted positive); threshold-free: "
        "average precision (AP, area under the purity-completeness curve) and ROC AUC",
        f"- seeds {config.seeds}; mean ± standard deviation (ddof 1) over seeds",
        f"- budget: {len(result['runs'])} training runs in {info.get('wall_time_s', float('nan')) / 60:.1f} min "
        f"on {info.get('torch_threads')} torch thread(s), generation {info.get('generation_s', 0.0) / 60:.1f} min "
        "of it (0 when cached)",
        "",
        "## Test set and synthetic data",
        "",
        "| task | train pos | train neg | test pos | test neg | synthetic judged as the class by the shipped "
        "classifier | real test positives judged as the class |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, ti in info.get("tasks", {}).items():
        sj = ti.get("synthetic_judged_positive")
        rj = ti.get("real_test_positives_judged_positive")
        lines.append(f"| {name} | {ti['train_pos']} | {ti['train_neg']} | {ti['test_pos']} | {ti['test_neg']} | "
                     f"{'—' if sj is None else f'{sj:.2f}'} | {'—' if rj is None else f'{rj:.2f}'} |")
    lines += ["", "## Results (held-out real test set)", "", format_table(summ), ""]
    v = verdicts(summ) if not summ.empty else pd.DataFrame()
    if not v.empty:
        lines += ["## Where synthetic data helps — and where it does not (F1)", "",
                  "Difference of mean F1, (b) minus the other arm; 'better'/'worse' only when the difference "
                  "exceeds the larger seed standard deviation.", "",
                  "| task | real positives | vs (a) real only | vs (c) oversampling + flips | vs (d) focal |",
                  "|---|---|---|---|---|"]
        for _, r in v.iterrows():
            cells = []
            for o in ("real", "classic", "focal"):
                cells.append(f"{r[f'vs_{o}']:+.3f} ({r[f'vs_{o}_verdict']})" if f"vs_{o}" in r and
                             pd.notna(r.get(f"vs_{o}")) else "—")
            lines.append(f"| {r['task']} | {r['shots']} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["## Discussion", "", _NOTES_BEGIN, notes or "(to be written after inspecting the numbers)", _NOTES_END,
              "", "## Reproduce", "", "```bash", "OMP_NUM_THREADS=1 " + (extra.get("command") or
              "python train/experiment_augmentation.py"), "```", "",
              "Data: SDSS and Galaxy Zoo 1/2 (Lintott et al. 2008, 2011; Willett et al. 2013). No real images "
              "are stored here.", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    return path


def run_and_report(cache_dirs: Sequence[Union[str, Path]], out_dir: Union[str, Path], config: ExperimentConfig, *,
                   model: Optional[str] = None, classifier_dir: Union[str, Path] = _config.DEFAULT_CLASSIFIER_DIR,
                   synthetic_cache: Optional[Union[str, Path]] = None, command: str = "",
                   log: Optional[Callable[[str], None]] = logger.info) -> Tuple[Dict[str, Any], Dict[str, str]]:
    """Run the augmentation experiment and write its results and README to ``out_dir``.

    Parameters
    ----------
    cache_dirs : sequence of path
        Prepared caches of the real galaxies.
    out_dir : path
        Results folder (e.g. ``assets/augmentation``).
    config : ExperimentConfig
    model : str, optional
        Generator folder, None for ``$GALAXYSD_MODEL_DIR`` / the shipped model, or ``"random"``
        (:func:`galaxysd_core.science.synthetic.generator_factory`).
    classifier_dir : path
        The shipped classifier: its ``split_test_ids.csv`` is the held-out test set, and it judges
        the synthetic images.
    synthetic_cache : path, optional
        Folder of the synthetic-image cache.
    command : str
        The command line recorded in the README (see
        :func:`galaxysd_core.science.script_support.script_command`).
    log : callable or None
        Progress messages.

    Returns
    -------
    result : dict
        :func:`~galaxysd_core.science.augmentation.run_experiment`'s ``runs``, ``summary``, ``info``.
    files : dict
        Name -> path of every file written (README excluded).
    """
    from galaxysd_core.training.classifier_data import load_test_ids

    test_ids = load_test_ids(classifier_dir)
    judge = load_judge(classifier_dir)
    pipe_factory, model_id, model_path = generator_factory(model)
    t = time.perf_counter()
    result = run_experiment(cache_dirs, test_ids, config, pipe_factory=pipe_factory, model_id=model_id,
                            synthetic_cache=synthetic_cache, judge=judge, log=log)
    extra = {"model": repo_relative(model_path), "caches": [repo_relative(c) for c in cache_dirs],
             "classifier": repo_relative(classifier_dir), "command": command,
             "wall_time_total_s": time.perf_counter() - t}
    files = write_results(result, out_dir, config, extra=extra)
    write_readme(result, out_dir, config, extra)
    return result, files
