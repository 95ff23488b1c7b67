"""Plotly figures of the Metrics and Real vs synthetic pages, and the tables they are drawn from.

Every function takes tables already read (:mod:`galaxysd_core.studio.metric_files`) or computed
(:mod:`galaxysd_core.studio.comparison`) and returns a figure, or None when the table lacks the
columns it needs; the pages only place the figures. :func:`training_curves` and
:func:`upset_data` shape the tables for the training and UpSet plots. Colours follow
:mod:`galaxysd_core.studio.palette` (a colour is a prompt family in every plot; several metrics in
one plot differ by dash and grey), and :data:`HOW_TO_READ` holds the sentence under each plot.
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Mapping, Optional, Tuple

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from galaxysd_core.errors import GalaxySDDataError
from galaxysd_core.evaluation.metrics.physical import STAT_UNITS, STATS
from galaxysd_core.schema.morphology_stats import COMBINATION_SEP, NO_FEATURE
from galaxysd_core.studio.metric_files import AUGMENTATION_METRICS, TRAINING_METRICS, prompt_column
from galaxysd_core.studio.palette import (DASHES, GREYS, NEUTRAL, PATTERNS, REAL, SYMBOLS, family_colour,
                                          prompt_colours, prompt_symbols)

#: One sentence under each plot of the Metrics page: how to read it.
HOW_TO_READ: Dict[str, str] = {
    "consistency": "Share of generated images in which the classifier sees every prompted feature it has a head "
                   "for; the dashed line is the same share on real galaxies with those captions. Higher is better, "
                   "and a model can beat the real line because prompts are exact while real captions are noisy "
                   "volunteer votes.",
    "prdc": "Precision: share of generated images lying among real ones (realism); recall: share of real images "
            "the generated ones cover (diversity); density and coverage are their outlier-robust versions, all "
            "in the classifier's embedding space. Higher is better; a rise in precision with a fall in recall "
            "means the model draws fewer kinds of galaxies, more convincingly.",
    "distance": "Fréchet distance and KID between generated and real images in the classifier's embedding "
                "space; lower is closer, and the dashed line is two halves of the real set. A distance can rise "
                "while consistency rises: a prompt without enough real galaxies of its exact caption is "
                "compared with all real galaxies, and the better the model draws only the prompted kind, the "
                "further its images move from that mixed set (per prompt below, when measured).",
    "distance_by_prompt": "The Fréchet distance per prompt: solid lines compare a prompt with real galaxies of the "
                          "same caption (a small reference set makes them noisy), dashed ones with all real galaxies: "
                          "those rise as the model learns to draw only the prompted kind, which is the rise of the "
                          "mean above.",
    "pareto": "Each point is one prompt at one sweep value (the number on it); up is more realistic (precision), "
              "right more diverse (recall). Points further up and right are better; a line bending down-left "
              "marks where the sweep starts to cost quality.",
    "sweep_consistency": "How often the classifier sees the prompted features along the sweep, per prompt: a "
                         "rising line means the setting strengthens the features, a falling one that it breaks "
                         "them.",
    "features": "Galaxies of the training data whose caption names each feature (log scale by default): a "
                "feature with a short bar was rarely seen, so prompts with it are extrapolations.",
    "upset": "Each column is one exact combination of caption features (dots joined below), its bar the number of "
             "training galaxies with that caption; every row is one feature.",
    "classifier": "Held-out precision, recall and ROC AUC of each classifier head (one grey and fill pattern per "
                  "measure). A feature with a weak head is checked less reliably by prompt consistency.",
    "augmentation": "Bars: one arm each (grey shade and fill pattern), side by side per task and number of real "
                    "positives; "
                    "error bars are the spread over seeds. An arm above the real-only bar means the generated "
                    "galaxies helped.",
    "light_profiles": "Histograms of simple light-profile statistics of the real (grey) and generated (the "
                      "prompt's family colour) galaxies; overlapping histograms mean similar light profiles.",
}
#: Axis and legend names of metric columns.
LABELS = {"consistency": "prompt consistency", "precision": "precision (realism)", "recall": "recall (diversity)",
          "density": "density", "coverage": "coverage", "domain_fd": "domain Frechet distance",
          "domain_kid": "domain KID"}
PRDC_COLUMNS = ("precision", "recall", "density", "coverage")
DISTANCE_COLUMNS = ("domain_fd", "domain_kid")


# ----------------------------------------------------------------------------- tables
def training_curves(df: pd.DataFrame, prompt: Optional[str] = None) -> pd.DataFrame:
    """Metric columns of a training-metrics table per step: one prompt's rows, or the mean over prompts.

    Non-numeric columns are dropped; rows are sorted by ``step``.

    Raises
    ------
    GalaxySDDataError
        When the table has no ``step`` column.
    """
    if "step" not in df.columns:
        raise GalaxySDDataError(f"training metrics need a 'step' column (columns: {list(df.columns)[:10]})")
    sel = df
    pcol = prompt_column(df)
    if prompt is not None and pcol is not None:
        sel = df[df[pcol] == prompt]
    num = sel.select_dtypes("number")
    if "step" not in num.columns:
        num = num.assign(step=pd.to_numeric(sel["step"], errors="coerce"))
    return num.groupby("step", as_index=False).mean(numeric_only=True).sort_values("step")


def upset_data(combinations: pd.DataFrame, top: int = 15) -> Tuple[pd.DataFrame, List[str]]:
    """Top feature combinations and the features they use, for an UpSet-style plot.

    Returns
    -------
    combos : pandas.DataFrame
        ``combination, count, members`` (tuple of features), most frequent first.
    features : list of str
        Features appearing in those combinations, most frequent (by the combinations' counts) first.
    """
    if combinations is None or len(combinations) == 0 or not {"combination", "count"} <= set(combinations.columns):
        return pd.DataFrame(columns=["combination", "count", "members"]), []
    c = combinations.sort_values("count", ascending=False, kind="stable").head(int(top)).copy()
    c["members"] = [tuple() if str(x) == NO_FEATURE else tuple(str(x).split(COMBINATION_SEP))
                    for x in c["combination"]]
    weight: Dict[str, float] = {}
    for members, count in zip(c["members"], c["count"]):
        for f in members:
            weight[f] = weight.get(f, 0.0) + float(count)
    feats = sorted(weight, key=lambda f: -weight[f])
    return c[["combination", "count", "members"]].reset_index(drop=True), feats


def _present(curves: pd.DataFrame, names) -> List[str]:
    return [c for c in names if c in curves.columns and curves[c].notna().any()]


# ----------------------------------------------------------------------------- over training
def consistency_figure(curves: pd.DataFrame, reference_lines: List[Tuple[str, float]],
                       colour: str = NEUTRAL) -> Optional[go.Figure]:
    """Prompt consistency over training steps with horizontal reference lines
    (:func:`~galaxysd_core.studio.metric_files.benchmark_consistency`); None without the column.
    ``colour``: the prompt's family colour (default neutral: the mean over prompts)."""
    if "consistency" not in curves.columns:
        return None
    fig = go.Figure(go.Scatter(x=curves["step"], y=curves["consistency"], mode="lines+markers",
                               name="generated", line=dict(color=colour)))
    for i, (label, value) in enumerate(reference_lines):
        fig.add_hline(y=value, line_dash="dash" if i == 0 else "dot", line_color="gray",
                      annotation_text=f"{label}: {value:.3f}",
                      annotation_position="bottom right" if i == 0 else "top left")
    fig.update_layout(title="Prompt consistency", xaxis_title="training step", yaxis_title="consistency",
                      yaxis_range=[0, 1.02], height=360, margin=dict(t=50, b=40))
    return fig


def prdc_figure(curves: pd.DataFrame, colour: str = NEUTRAL) -> Optional[go.Figure]:
    """Precision, recall, density and coverage over training steps (those present); None without any.
    All in ``colour`` (the prompt's family, or neutral), told apart by dash and marker."""
    prdc = _present(curves, PRDC_COLUMNS)
    if not prdc:
        return None
    fig = go.Figure([go.Scatter(x=curves["step"], y=curves[c], mode="lines+markers", name=LABELS[c],
                                line=dict(color=colour, dash=DASHES[i]), marker=dict(symbol=SYMBOLS[i]))
                     for i, c in enumerate(prdc)])
    fig.update_layout(title="Realism and diversity (PRDC)", xaxis_title="training step", height=360,
                      margin=dict(t=50, b=40), legend=dict(orientation="h", y=-0.25))
    return fig


def distance_figure(curves: pd.DataFrame, benchmark: Optional[Mapping[str, Any]],
                    colour: str = NEUTRAL) -> Optional[go.Figure]:
    """Domain Frechet distance and KID over training, with the real-vs-real level of the benchmark
    (``benchmark["real_vs_real"]``) as a dashed line; None without either column."""
    dist = _present(curves, DISTANCE_COLUMNS)
    if not dist:
        return None
    real_vs_real = (benchmark or {}).get("real_vs_real", {}) if benchmark else {}
    fig = make_subplots(rows=1, cols=len(dist), subplot_titles=[LABELS[c] for c in dist])
    for i, c in enumerate(dist):
        fig.add_trace(go.Scatter(x=curves["step"], y=curves[c], mode="lines+markers", name=LABELS[c],
                                 showlegend=False, line=dict(color=colour)), row=1, col=i + 1)
        rvr = real_vs_real.get(c)
        if isinstance(rvr, (int, float)) and math.isfinite(rvr):
            fig.add_hline(y=rvr, line_dash="dash", line_color="gray", row=1, col=i + 1,
                          annotation_text=f"real vs real {rvr:.3g}")
    fig.update_layout(height=330, margin=dict(t=50, b=40), title="Distance to real galaxies (lower is closer)")
    fig.update_xaxes(title_text="training step")
    return fig


def distance_by_prompt_figure(df: pd.DataFrame, column: str = "domain_fd") -> Optional[go.Figure]:
    """``column`` over training for every prompt (family colours), solid where the prompt is compared with
    real galaxies of the same caption and dashed where with all real galaxies (``reference`` column);
    None without ``step``, a prompt column or ``column``."""
    pcol = prompt_column(df)
    if pcol is None or "step" not in df.columns or column not in df.columns or not df[column].notna().any():
        return None
    fig = go.Figure()
    symbols = prompt_symbols(df[pcol].dropna().unique())
    for prompt, part in df.groupby(pcol, sort=True):
        part = part.sort_values("step")
        ref = str(part["reference"].iloc[-1]) if "reference" in part.columns else ""
        fig.add_trace(go.Scatter(x=part["step"], y=part[column], mode="lines+markers",
                                 name=f"{prompt}" + (f" (vs {ref})" if ref else ""),
                                 line=dict(color=family_colour(prompt), dash="dash" if ref == "all real" else "solid"),
                                 marker=dict(symbol=symbols[str(prompt)])))
    fig.update_layout(title=f"{LABELS.get(column, column)} per prompt (dashed: compared with all real galaxies)",
                      xaxis_title="training step", yaxis_title=LABELS.get(column, column), height=380,
                      legend=dict(orientation="h", y=-0.3), margin=dict(t=50, b=40))
    return fig


def other_metric_figures(curves: pd.DataFrame) -> Dict[str, go.Figure]:
    """One line plot per further :data:`~galaxysd_core.studio.metric_files.TRAINING_METRICS` column
    (e.g. ``loss``) with values, keyed by column."""
    shown = ("step", "consistency", *_present(curves, PRDC_COLUMNS), *_present(curves, DISTANCE_COLUMNS))
    return {c: px.line(curves, x="step", y=c, markers=True, title=c, height=300,
                       color_discrete_sequence=[NEUTRAL])
            for c in curves.columns if c not in shown and c in TRAINING_METRICS and curves[c].notna().any()}


# ----------------------------------------------------------------------------- sweeps
def pareto_figure(rows: pd.DataFrame, cols: Mapping[str, Optional[str]]) -> go.Figure:
    """Realism against diversity of a sweep, points of each prompt joined in sweep order
    (``cols`` from :func:`~galaxysd_core.studio.metric_files.pareto_columns`)."""
    hover = [c for c in (cols["consistency"], cols["sweep_value"]) if c]
    prompts = rows[cols["prompt"]].dropna().unique() if cols["prompt"] else []
    fig = px.scatter(rows, x=cols["diversity"], y=cols["realism"], color=cols["prompt"], hover_data=hover,
                     text=cols["sweep_value"], height=460, color_discrete_map=prompt_colours(prompts),
                     symbol=cols["prompt"], symbol_map=prompt_symbols(prompts))
    if cols["prompt"] and cols["sweep_value"]:
        for trace in fig.data:  # connect the sweep points of each prompt in sweep order
            part = rows[rows[cols["prompt"]] == trace.name].sort_values(cols["sweep_value"])
            trace.update(x=part[cols["diversity"]], y=part[cols["realism"]], text=part[cols["sweep_value"]],
                         mode="lines+markers+text", textposition="top center")
    fig.update_layout(xaxis_title=f"diversity ({cols['diversity']})", yaxis_title=f"realism ({cols['realism']})",
                      legend=dict(orientation="h", y=-0.2), margin=dict(t=30))
    return fig


def sweep_consistency_figure(rows: pd.DataFrame, cols: Mapping[str, Optional[str]]) -> Optional[go.Figure]:
    """Prompt consistency along the sweep per prompt; None without consistency or sweep values."""
    if not (cols["consistency"] and cols["sweep_value"]):
        return None
    prompts = rows[cols["prompt"]].dropna().unique() if cols["prompt"] else []
    fig = px.line(rows.sort_values(cols["sweep_value"]), x=cols["sweep_value"], y=cols["consistency"],
                  color=cols["prompt"], markers=True, height=360, title="Prompt consistency along the sweep",
                  color_discrete_map=prompt_colours(prompts), symbol=cols["prompt"],
                  symbol_map=prompt_symbols(prompts))
    fig.update_layout(legend=dict(orientation="h", y=-0.3), yaxis_range=[0, 1.02])
    return fig


# ----------------------------------------------------------------------------- morphology
def feature_counts_figure(features: pd.DataFrame, label: str, log: bool = True) -> go.Figure:
    """Horizontal bars of galaxies per caption feature (``feature, count``), optionally log-scaled."""
    fig = px.bar(features.iloc[::-1], x="count", y="feature", orientation="h", log_x=log,
                 height=max(360, 20 * len(features)), title=f"Galaxies per caption feature ({label})",
                 color_discrete_sequence=[GREYS[1]])
    fig.update_layout(yaxis_title=None, margin=dict(t=40, l=10))
    fig.update_yaxes(tickmode="linear", dtick=1, automargin=True)  # every feature labelled
    return fig


def upset_figure(combinations: Optional[pd.DataFrame], top: int = 15) -> Optional[go.Figure]:
    """UpSet-style plot of the ``top`` feature combinations (bars of counts over a membership matrix);
    None without combinations."""
    combos, members = upset_data(combinations, top=top)
    if not len(combos):
        return None
    row_px, bars_px = 26, 240  # every matrix row gets room for its label
    matrix_px = row_px * max(len(members), 1)
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.03,
                        row_heights=[bars_px / (bars_px + matrix_px), matrix_px / (bars_px + matrix_px)])
    xs = list(range(len(combos)))
    fig.add_trace(go.Bar(x=xs, y=combos["count"], marker_color=GREYS[1], showlegend=False,
                         hovertext=combos["combination"]), row=1, col=1)
    for f in members:
        inside = [i for i, m in enumerate(combos["members"]) if f in m]
        fig.add_trace(go.Scatter(x=xs, y=[f] * len(xs), mode="markers", showlegend=False,
                                 marker=dict(color="#dddddd", size=9), hoverinfo="skip"), row=2, col=1)
        fig.add_trace(go.Scatter(x=inside, y=[f] * len(inside), mode="markers", showlegend=False,
                                 marker=dict(color="#333333", size=10), hoverinfo="skip"), row=2, col=1)
    for i, m in enumerate(combos["members"]):
        if len(m) > 1:
            fig.add_trace(go.Scatter(x=[i] * len(m), y=list(m), mode="lines", showlegend=False,
                                     line=dict(color="#333333", width=2), hoverinfo="skip"), row=2, col=1)
    fig.update_xaxes(showticklabels=False)
    fig.update_yaxes(title_text="galaxies", row=1, col=1)
    # explicit ticks: plotly thins category labels out when it thinks rows are crowded
    fig.update_yaxes(categoryorder="array", categoryarray=members[::-1], tickmode="array", tickvals=members,
                     ticktext=members, automargin=True, row=2, col=1)
    fig.update_layout(height=bars_px + matrix_px + 60, title="Most common feature combinations (UpSet)",
                      margin=dict(t=40))
    return fig


# ----------------------------------------------------------------------------- classifier, augmentation
def classifier_figure(metrics: Optional[pd.DataFrame]) -> Optional[go.Figure]:
    """Held-out precision / recall / ROC AUC per classifier head; None without ``phrase, precision, recall``."""
    if metrics is None or not {"phrase", "precision", "recall"} <= set(metrics.columns):
        return None
    fig = go.Figure([go.Bar(x=metrics["phrase"], y=metrics[c], name=c, marker_color=GREYS[i],
                            marker_pattern_shape=PATTERNS[i])
                     for i, c in enumerate(c for c in ("precision", "recall", "auc") if c in metrics.columns)])
    fig.update_layout(barmode="group", height=340, yaxis_range=[0, 1], title="Held-out precision / recall / ROC AUC",
                      margin=dict(t=40))
    return fig


def _shots_label(row: Mapping[str, Any]) -> str:
    """``"10"``, ..., or ``"all (103)"`` (with the number of real positives) for a results row."""
    shots = str(row["shots"])
    n = row.get("n_real_pos")
    return f"{shots} ({int(n)})" if shots == "all" and isinstance(n, (int, float)) and math.isfinite(n) else shots


def augmentation_figure(results: pd.DataFrame, metric: str = "f1") -> Optional[go.Figure]:
    """Grouped bars of one metric of the augmentation results: one bar per arm side by side in
    every (task, real positives) group, error bars the standard deviation over seeds.

    Parameters
    ----------
    results : pandas.DataFrame
        ``results.csv`` of the experiment: ``task, shots, arm, <metric>_mean`` and optionally
        ``<metric>_std``, ``arm_label``, ``n_real_pos``, ``n_seeds``.
    metric : str
        One of :func:`~galaxysd_core.studio.metric_files.augmentation_metrics` (default F1).

    Returns
    -------
    plotly.graph_objects.Figure or None
        One bar trace per arm on a two-level x axis (task, real positives); None without the columns.
    """
    mean, std = f"{metric}_mean", f"{metric}_std"
    if results is None or not {"task", "shots", "arm", mean} <= set(results.columns):
        return None
    rows = results.assign(_x=[_shots_label(r) for r in results.to_dict("records")])
    fig = go.Figure()
    for i, arm in enumerate(dict.fromkeys(rows["arm"])):
        part = rows[rows["arm"] == arm]
        label = str(part["arm_label"].iloc[0]) if "arm_label" in part.columns else str(arm)
        error = (dict(type="data", array=part[std].fillna(0).tolist(), visible=True)
                 if std in part.columns else None)
        fig.add_trace(go.Bar(x=[part["task"].astype(str).tolist(), part["_x"].tolist()], y=part[mean].tolist(),
                             error_y=error, name=label, marker_color=GREYS[i % len(GREYS)],
                             marker_pattern_shape=PATTERNS[i % len(PATTERNS)],
                             hovertemplate=f"{label}<br>%{{x}}: %{{y:.3f}}<extra></extra>"))
    name = AUGMENTATION_METRICS.get(metric, metric)
    seeds = (f" (mean ± std over {int(results['n_seeds'].max())} seeds)"
             if "n_seeds" in results.columns and results["n_seeds"].notna().any() else "")
    fig.update_layout(barmode="group", height=440, title=f"{name} on the held-out real test set{seeds}",
                      yaxis_title=name, xaxis_title="task / real positives in training",
                      yaxis_range=[0, 1] if metric in AUGMENTATION_METRICS else None,
                      legend=dict(orientation="h", y=-0.3), margin=dict(t=50, b=40))
    return fig


# ----------------------------------------------------------------------------- real vs synthetic
def light_profile_figure(real_stats: pd.DataFrame, fake_stats: pd.DataFrame, colour: str = NEUTRAL) -> go.Figure:
    """Overlaid histograms (probability) of each light-profile statistic, real (grey) against generated
    (``colour``: the prompt's family colour)."""
    fig = make_subplots(rows=1, cols=len(STATS), subplot_titles=[
        f"{s} ({STAT_UNITS[s]})" if STAT_UNITS[s] else s for s in STATS])
    for j, s in enumerate(STATS):
        for name, tab, c in (("real", real_stats, REAL), ("generated", fake_stats, colour)):
            fig.add_trace(go.Histogram(x=tab[s], name=name, marker_color=c, opacity=0.6, showlegend=j == 0,
                                       histnorm="probability", nbinsx=15), row=1, col=j + 1)
    fig.update_layout(barmode="overlay", height=320, margin=dict(t=50, b=30), legend=dict(orientation="h", y=-0.2))
    return fig
