"""The written results of the augmentation experiment: table, plots, files and README.

Owns :func:`format_table` (the Markdown ``mean ± std`` table), the figures (:func:`plotly_figure`
for the app, :func:`draw_png`, a static Pillow drawing, and :func:`plot_results`, both to files;
grouped bars, one bar per arm, never stacked), :func:`discussion_text` (where synthetic data helps
and where not, generated from the numbers), :func:`metrics_page_content` (table, figures and
discussion for the Metrics page),
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
from dataclasses import dataclass
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
           "readme_notes", "run_and_report", "merge_results", "discussion_text", "AugmentationPage", "metrics_page_content"]

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


def _x_label(row: Mapping[str, Any]) -> str:
    shots = str(row["shots"])
    n = row.get("n_real_pos")
    return f"{shots} ({int(n)})" if shots == "all" and n is not None and np.isfinite(float(n)) else shots


def plotly_figure(summary: pd.DataFrame, metric: str = "f1"):
    """Plotly figure: ``metric`` (mean, error bar = std over seeds) as grouped bars, one bar per arm
    side by side (never stacked) in every (task, real positives) group."""
    import plotly.graph_objects as go

    rows = summary.assign(_x=[_x_label(r) for r in summary.to_dict("records")])
    fig = go.Figure()
    for i, arm in enumerate(dict.fromkeys(rows["arm"])):
        part = rows[rows["arm"] == arm]
        fig.add_trace(go.Bar(x=[part["task"].astype(str).tolist(), part["_x"].tolist()],
                             y=part[f"{metric}_mean"].tolist(), name=ARM_LABELS.get(arm, arm),
                             error_y=dict(type="data", array=part[f"{metric}_std"].fillna(0).tolist(), visible=True),
                             marker_color=_COLORS[i % len(_COLORS)]))
    fig.update_layout(barmode="group", title=f"Rare-class classification: {metric.upper()} on the held-out real "
                      "test set (mean ± std over seeds)", yaxis=dict(title=metric.upper(), range=[0, 1]),
                      xaxis_title="task / real positives in training", legend=dict(orientation="h", y=-0.3),
                      margin=dict(l=60, r=20, t=70, b=110))
    return fig


def draw_png(summary: pd.DataFrame, path: Union[str, Path], metrics: Sequence[str] = ("f1", "ap")) -> Path:
    """Static PNG drawn with Pillow (no matplotlib/kaleido here): one row per metric, grouped bars
    (one bar per arm, side by side) per task and number of real positives, whiskers = std over seeds."""
    from PIL import Image, ImageDraw, ImageFont

    groups = list(dict.fromkeys(zip(summary["task"].astype(str), summary["shots"].astype(str))))
    arms = list(dict.fromkeys(summary["arm"]))
    bar, gap, left, top, ph = 9, 16, 60, 50, 240
    gw = bar * len(arms) + gap
    W = left + len(groups) * gw + 20
    legend_h = 30 + 22 * len(arms)
    H = top + len(metrics) * (ph + 80) + legend_h
    img = Image.new("RGB", (max(W, 680), H), "white")
    d = ImageDraw.Draw(img)
    try:
        font, small = ImageFont.load_default(size=14), ImageFont.load_default(size=11)
    except TypeError:  # pragma: no cover - very old Pillow
        font = small = ImageFont.load_default()
    d.text((left, 12), "Rare-class classifiers on the held-out real test set (mean ± std over seeds)",
           fill="black", font=font)
    names = {"f1": "F1", "ap": "average precision", "precision": "purity", "recall": "completeness", "auc": "ROC AUC"}
    by = {(str(r["task"]), str(r["shots"]), r["arm"]): r for r in summary.to_dict("records")}
    for m_i, metric in enumerate(metrics):
        y0 = top + m_i * (ph + 80)
        d.text((left, y0 - 18), names.get(metric, metric), fill="black", font=font)
        for k in range(6):
            yy = y0 + ph - k * ph / 5
            d.line([left, yy, left + len(groups) * gw, yy], fill="#dddddd")
            d.text((left - 28, yy - 7), f"{k / 5:.1f}", fill="black", font=small)
        d.rectangle([left, y0, left + len(groups) * gw, y0 + ph], outline="black")
        for g_i, (task, shots) in enumerate(groups):
            x0 = left + g_i * gw + gap / 2
            for a_i, arm in enumerate(arms):
                r = by.get((task, shots, arm))
                if r is None or not np.isfinite(r[f"{metric}_mean"]):
                    continue
                mval, sd = float(r[f"{metric}_mean"]), float(np.nan_to_num(r[f"{metric}_std"]))
                to_y = lambda v: y0 + ph - float(np.clip(v, 0, 1)) * ph  # noqa: E731
                xa = x0 + a_i * bar
                d.rectangle([xa, to_y(mval), xa + bar - 2, y0 + ph], fill=_COLORS[a_i % len(_COLORS)])
                d.line([xa + bar / 2 - 1, to_y(mval - sd), xa + bar / 2 - 1, to_y(mval + sd)], fill="black")
            d.text((x0, y0 + ph + 4), task[:9], fill="black", font=small)
            d.text((x0, y0 + ph + 18), shots, fill="black", font=small)
    ly = top + len(metrics) * (ph + 80)
    for i, arm in enumerate(arms):
        yy = ly + 22 * i
        d.rectangle([left, yy + 2, left + 24, yy + 14], fill=_COLORS[i % len(_COLORS)])
        d.text((left + 34, yy), ARM_LABELS.get(arm, arm), fill="black", font=font)
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
        "galaxies), never used for training; labels: the GZ2 vote majority for the vote tasks "
        "(`galaxysd_core/science/vote_truth.py`: odd features need f >= 0.5 with t08 reached at p_odd >= 0.42), "
        "Galaxy Zoo 1 single-class labels completed with implied negatives for the gz1-* tasks",
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
    if not summ.empty:
        lines += ["### Generated summary (F1 and average precision)", "", discussion_text(summ), ""]
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


def merge_results(parts: Sequence[Union[str, Path]], out_dir: Union[str, Path]) -> Tuple[Dict[str, Any], Dict[str, str]]:
    """Merge result folders of the same experiment run in parallel on disjoint tasks (each written by
    :func:`run_and_report` with ``--tasks`` a subset) into one results folder with its README.

    Raises
    ------
    GalaxySDValueError
        Fewer than two folders, folders whose configurations differ in anything but the tasks, or
        a task present in two folders.
    """
    from galaxysd_core.errors import GalaxySDValueError
    from galaxysd_core.science.augmentation import summarize

    if len(parts) < 2:
        raise GalaxySDValueError("give at least two result folders to merge")
    payloads = [json.loads((Path(p) / "results.json").read_text()) for p in parts]
    configs = [dict(pl["config"]) for pl in payloads]
    tasks = [c.pop("tasks") for c in configs]
    if any(c != configs[0] for c in configs[1:]):
        raise GalaxySDValueError("the result folders were run with different settings (other than --tasks)")
    flat = [t for ts in tasks for t in ts]
    if len(set(flat)) != len(flat):
        raise GalaxySDValueError(f"a task appears in two result folders: {flat}")
    runs = pd.concat([pd.read_csv(Path(p) / "runs.csv") for p in parts], ignore_index=True)
    info = dict(payloads[0]["info"])
    info["tasks"] = {k: v for pl in payloads for k, v in pl["info"].get("tasks", {}).items()}
    info["wall_time_s"] = max(float(pl["info"].get("wall_time_s", 0.0)) for pl in payloads)
    info["generation_s"] = sum(float(pl["info"].get("generation_s", 0.0)) for pl in payloads)
    info["parallel_processes"] = len(parts)
    config = ExperimentConfig(**{**configs[0], "tasks": flat})
    extra = {k: payloads[0][k] for k in ("model", "caches", "classifier") if k in payloads[0]}
    extra["command"] = " &\n".join(str(pl.get("command", "")) for pl in payloads) + (
        "; wait\npython train/experiment_augmentation.py --merge " + " ".join(str(p) for p in parts)
        + f" --out {out_dir}")
    extra["wall_time_total_s"] = max(float(pl.get("wall_time_total_s", 0.0)) for pl in payloads)
    result = {"runs": runs, "summary": summarize(runs), "info": info}
    files = write_results(result, out_dir, config, extra=extra)
    write_readme(result, out_dir, config, extra)
    return result, files


# ------------------------------------------------------------------------------------------- Metrics page
_VERSUS = {"synthetic": ("real", "classic", "focal"), "synthetic+classic": ("classic", "real")}


def discussion_text(summary: pd.DataFrame, metrics: Sequence[str] = ("f1", "ap")) -> str:
    """Short Markdown discussion generated from the numbers: where synthetic data helps and where not.

    For each synthetic arm against real only and the classic remedies, and for each metric, the
    (task, real positives) settings where it is better, worse or not clearly different (a difference
    counts only beyond the larger seed standard deviation, :func:`~galaxysd_core.science.augmentation.verdicts`).
    """
    if summary is None or summary.empty or not set(_VERSUS) & set(summary["arm"]):
        return "No synthetic arm in these results: nothing to say about synthetic data."
    names = {"f1": "F1", "ap": "average precision"}
    lines = []
    for arm, others in _VERSUS.items():
        if arm not in set(summary["arm"]):
            continue
        for metric in metrics:
            v = verdicts(summary, metric, arm)
            for other in others:
                col = f"vs_{other}_verdict"
                if v.empty or col not in v.columns:
                    continue
                where = {k: [f"{r['task']} ({r['shots']})" for _, r in v.iterrows() if r.get(col) == k]
                         for k in ("better", "worse", "no clear difference")}
                lines.append(f"- **{ARM_LABELS.get(arm, arm)} vs {ARM_LABELS.get(other, other)}, {names.get(metric, metric)}**: "
                             f"better in {', '.join(where['better']) or 'no setting'}; "
                             f"worse in {', '.join(where['worse']) or 'no setting'}; "
                             f"no clear difference in {len(where['no clear difference'])} of {len(v)} settings.")
    seeds = int(summary["n_seeds"].max()) if "n_seeds" in summary.columns else 0
    lines.append(f"\n(task (real positives); a difference counts only when it exceeds the larger standard deviation "
                 f"over the {seeds} seeds.)")
    return "\n".join(lines)


@dataclass
class AugmentationPage:
    """What the Metrics page shows of the augmentation experiment (:func:`metrics_page_content`).

    Attributes
    ----------
    table : pandas.DataFrame
        One row per task, real positives and arm: ``mean ± std`` text per metric.
    table_markdown : str
        The same as a Markdown table.
    figures : dict
        Metric -> Plotly figure (grouped bars, one bar per arm, not stacked).
    discussion : str
        The generated discussion (:func:`discussion_text`) followed by the README's hand-written notes.
    summary : pandas.DataFrame
        ``results.csv`` as read.
    """

    table: pd.DataFrame
    table_markdown: str
    figures: Dict[str, Any]
    discussion: str
    summary: pd.DataFrame


def metrics_page_content(results_dir: Union[str, Path] = _config.ASSETS_DIR / "augmentation",
                         metrics: Sequence[str] = ("f1", "ap", "precision", "recall")) -> Optional[AugmentationPage]:
    """Table, figures and discussion of the augmentation results in ``results_dir`` (None without ``results.csv``)."""
    folder = Path(results_dir)
    if not (folder / "results.csv").is_file():
        return None
    summ = pd.read_csv(folder / "results.csv")
    metrics = [m for m in metrics if f"{m}_mean" in summ.columns]
    table = summ[["task", "shots", "n_real_pos", "arm"]].copy()
    table["arm"] = [ARM_LABELS.get(a, a) for a in table["arm"]]
    for m in metrics:
        table[m] = [f"{a:.3f} ± {b:.3f}" if np.isfinite(b) else f"{a:.3f}" for a, b in zip(summ[f"{m}_mean"], summ[f"{m}_std"])]
    notes = readme_notes((folder / "README.md").read_text(encoding="utf-8")) if (folder / "README.md").is_file() else ""
    discussion = discussion_text(summ) + (f"\n\n{notes}" if notes else "")
    return AugmentationPage(table=table, table_markdown=format_table(summ, tuple(metrics)),
                            figures={m: plotly_figure(summ, m) for m in metrics}, discussion=discussion, summary=summ)
