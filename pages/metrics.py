"""Metrics page: plots of metric files written by training and evaluation (nothing recomputed here)."""
from __future__ import annotations

import math

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from galaxysd_core import config
from galaxysd_core.studio import app_state
from pages import _ui

_ui.ensure_app_navigation()

st.title("Metrics")
model_dir = config.model_dir()
bundle = app_state.read_metrics(model_dir)
rel = bundle.metrics_dir
st.caption(f"Read from `{rel}` and `{config.ASSETS_DIR}`; produced by `galaxysd evaluate` and the training "
           f"scripts. Nothing is recomputed here.")
for problem in bundle.problems:
    st.warning(problem, icon=":material/warning:")

PALETTE = px.colors.qualitative.D3
LABELS = {"consistency": "prompt consistency", "precision": "precision (realism)", "recall": "recall (diversity)",
          "density": "density", "coverage": "coverage", "domain_fd": "domain Frechet distance",
          "domain_kid": "domain KID"}

# ----------------------------------------------------------------------------- training
st.header("Over training")
if bundle.training is None:
    st.info(
        f"No training metrics yet (`{rel / 'training_metrics.csv'}`). Evaluate the training snapshots with\n\n"
        f"`python -m galaxysd_core evaluate --checkpoints runs/galaxysd-mini --prompts prompts.txt -n 32 "
        f"--real-cache cache/gz1_64 --out {rel}`\n\n(writes `checkpoints.csv`, read here as well, and "
        f"`real_benchmark.json`).", icon=":material/info:")
else:
    df = bundle.training
    pcol = "base_prompt" if "base_prompt" in df.columns else ("prompt" if "prompt" in df.columns else None)
    choice = None
    if pcol is not None and df[pcol].nunique() > 1:
        options = ["mean over prompts", *sorted(df[pcol].dropna().unique().tolist())]
        pick = st.selectbox("Prompt", options, key="metrics.train_prompt")
        choice = None if pick == options[0] else pick
    curves = app_state.training_curves(df, choice)
    st.caption(f"{bundle.training_file.name}: {len(df)} rows, steps {int(curves['step'].min())}"
               f"–{int(curves['step'].max())}")
    c1, c2 = st.columns(2)
    if "consistency" in curves.columns:
        fig = go.Figure(go.Scatter(x=curves["step"], y=curves["consistency"], mode="lines+markers",
                                   name="generated", line=dict(color=PALETTE[0])))
        for i, (label, value) in enumerate(app_state.benchmark_consistency(bundle.benchmark)):
            fig.add_hline(y=value, line_dash="dash" if i == 0 else "dot", line_color="gray",
                          annotation_text=f"{label}: {value:.3f}",
                          annotation_position="bottom right" if i == 0 else "top left")
        fig.update_layout(title="Prompt consistency", xaxis_title="training step", yaxis_title="consistency",
                          yaxis_range=[0, 1.02], height=360, margin=dict(t=50, b=40))
        c1.plotly_chart(fig, key="metrics.consistency")
    prdc = [c for c in ("precision", "recall", "density", "coverage") if c in curves.columns
            and curves[c].notna().any()]
    if prdc:
        fig = go.Figure([go.Scatter(x=curves["step"], y=curves[c], mode="lines+markers", name=LABELS[c],
                                    line=dict(color=PALETTE[i + 1])) for i, c in enumerate(prdc)])
        fig.update_layout(title="Realism and diversity (PRDC)", xaxis_title="training step", height=360,
                          margin=dict(t=50, b=40), legend=dict(orientation="h", y=-0.25))
        c2.plotly_chart(fig, key="metrics.prdc")
    dist = [c for c in ("domain_fd", "domain_kid") if c in curves.columns and curves[c].notna().any()]
    other = [c for c in curves.columns if c not in ("step", "consistency", *prdc, *dist)
             and c in app_state.TRAINING_METRICS]
    if dist:
        fig = make_subplots(rows=1, cols=len(dist), subplot_titles=[LABELS[c] for c in dist])
        for i, c in enumerate(dist):
            fig.add_trace(go.Scatter(x=curves["step"], y=curves[c], mode="lines+markers", name=LABELS[c],
                                     showlegend=False, line=dict(color=PALETTE[5 + i])), row=1, col=i + 1)
            rvr = (bundle.benchmark or {}).get("real_vs_real", {}).get(c) if bundle.benchmark else None
            if isinstance(rvr, (int, float)) and math.isfinite(rvr):
                fig.add_hline(y=rvr, line_dash="dash", line_color="gray", row=1, col=i + 1,
                              annotation_text=f"real vs real {rvr:.3g}")
        fig.update_layout(height=330, margin=dict(t=50, b=40), title="Distance to real galaxies (lower is closer)")
        fig.update_xaxes(title_text="training step")
        st.plotly_chart(fig, key="metrics.dist")
    for c in other:
        if curves[c].notna().any():
            st.plotly_chart(px.line(curves, x="step", y=c, markers=True, title=c, height=300), key=f"metrics.o.{c}")
    if not bundle.benchmark:
        st.caption("No `real_benchmark.json`: reference lines for real images are missing (write it with "
                   "`galaxysd evaluate ... --real-cache ...`).")

# ----------------------------------------------------------------------------- sweeps / pareto
st.header("Realism, diversity and consistency across sweeps")
if bundle.pareto is None:
    st.info(
        f"No sweep table yet (`{rel / 'pareto.csv'}`). Produce one with\n\n"
        f"`python -m galaxysd_core evaluate --model {model_dir} --prompts prompts.txt -n 64 --real-cache "
        f"cache/gz1_64 --sweep guidance=1,3,6.5,9 --sweep \"weight:dust lane=0.8,1.3,2.0\" --out {rel}`\n\n"
        f"(writes `evaluation.csv`, read here as well).", icon=":material/info:")
else:
    df = bundle.pareto
    cols = app_state.pareto_columns(df)
    sub = df
    if cols["sweep_variable"] is not None and df[cols["sweep_variable"]].nunique() > 1:
        variables = sorted(df[cols["sweep_variable"]].dropna().astype(str).unique().tolist())
        var = st.selectbox("Sweep", variables, key="metrics.sweep_var")
        sub = df[df[cols["sweep_variable"]].astype(str) == var]
    st.caption(f"{bundle.pareto_file.name}: {len(df)} rows. Realism = `{cols['realism']}`, diversity = "
               f"`{cols['diversity']}`; up and right is better.")
    hover = [c for c in (cols["consistency"], cols["sweep_value"]) if c]
    fig = px.scatter(sub, x=cols["diversity"], y=cols["realism"], color=cols["prompt"], hover_data=hover,
                     text=cols["sweep_value"], height=460)
    if cols["prompt"] and cols["sweep_value"]:
        for trace in fig.data:  # connect the sweep points of each prompt in sweep order
            part = sub[sub[cols["prompt"]] == trace.name].sort_values(cols["sweep_value"])
            trace.update(x=part[cols["diversity"]], y=part[cols["realism"]], text=part[cols["sweep_value"]],
                         mode="lines+markers+text", textposition="top center")
    fig.update_layout(xaxis_title=f"diversity ({cols['diversity']})", yaxis_title=f"realism ({cols['realism']})",
                      legend=dict(orientation="h", y=-0.2), margin=dict(t=30))
    st.plotly_chart(fig, key="metrics.pareto")
    if cols["consistency"] and cols["sweep_value"]:
        fig = px.line(sub.sort_values(cols["sweep_value"]), x=cols["sweep_value"], y=cols["consistency"],
                      color=cols["prompt"], markers=True, height=360, title="Prompt consistency along the sweep")
        fig.update_layout(legend=dict(orientation="h", y=-0.3), yaxis_range=[0, 1.02])
        st.plotly_chart(fig, key="metrics.sweep_consistency")

# ----------------------------------------------------------------------------- morphology
st.header("Morphology distribution")
if not bundle.morphology:
    st.info(
        f"No morphology distribution yet (`{rel / app_state.MORPHOLOGY_DIR}/<source>/features.csv`). Write one per "
        f"source with\n\n`python -m galaxysd_core data describe --source catalog --catalog "
        f"$GALAXYSD_DATA_DIR/gz1_sdss/labels.csv --out {rel / app_state.MORPHOLOGY_DIR / 'gz1_sdss'}`",
        icon=":material/info:")
else:
    tabs = st.tabs(list(bundle.morphology))
    for tab, (label, tables) in zip(tabs, bundle.morphology.items()):
        with tab:
            feats = tables["features"]
            log = st.toggle("log scale", value=True, key=f"metrics.morph_log.{label}")
            fig = px.bar(feats.iloc[::-1], x="count", y="feature", orientation="h", log_x=log,
                         height=max(360, 18 * len(feats)), title=f"Galaxies per caption feature ({label})")
            fig.update_layout(yaxis_title=None, margin=dict(t=40, l=10))
            st.plotly_chart(fig, key=f"metrics.morph_feat.{label}")
            zero = feats.loc[feats["count"] == 0, "feature"].tolist()
            if zero:
                st.caption(f"Never present: {', '.join(zero)}")
            combos, members = app_state.upset_data(tables.get("combinations"), top=15)
            if len(combos):
                fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.55, 0.45],
                                    vertical_spacing=0.03)
                xs = list(range(len(combos)))
                fig.add_trace(go.Bar(x=xs, y=combos["count"], marker_color=PALETTE[0], showlegend=False,
                                     hovertext=combos["combination"]), row=1, col=1)
                for j, f in enumerate(members):
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
                fig.update_yaxes(categoryorder="array", categoryarray=members[::-1], row=2, col=1)
                fig.update_layout(height=300 + 22 * len(members), title="Most common feature combinations (UpSet)",
                                  margin=dict(t=40))
                st.plotly_chart(fig, key=f"metrics.upset.{label}")

# ----------------------------------------------------------------------------- classifier
st.header("Morphology classifier")
if bundle.classifier_readme is None:
    st.info(f"No classifier card (`{config.ASSETS_DIR / 'classifier' / 'README.md'}`). Train the classifier with "
            f"`python train/train_classifier.py`.", icon=":material/info:")
else:
    if bundle.classifier_metrics is not None and {"phrase", "precision", "recall"} <= set(bundle.classifier_metrics.columns):
        m = bundle.classifier_metrics
        fig = go.Figure([go.Bar(x=m["phrase"], y=m[c], name=c, marker_color=PALETTE[i])
                         for i, c in enumerate(c for c in ("precision", "recall", "auc") if c in m.columns)])
        fig.update_layout(barmode="group", height=340, yaxis_range=[0, 1], title="Held-out precision / recall / ROC AUC",
                          margin=dict(t=40))
        st.plotly_chart(fig, key="metrics.classifier")
    with st.expander("Classifier card (assets/classifier/README.md)"):
        st.markdown(bundle.classifier_readme)

# ----------------------------------------------------------------------------- augmentation
st.header("Augmentation with generated galaxies")
if bundle.augmentation is None:
    st.info(f"No augmentation results (`{config.ASSETS_DIR / 'augmentation' / 'results.csv'}`): they appear here "
            f"once the augmentation experiment has been run.", icon=":material/info:")
else:
    aug = bundle.augmentation
    st.dataframe(aug, hide_index=True)
    cat = [c for c in aug.columns if not pd.api.types.is_numeric_dtype(aug[c])]
    num = [c for c in aug.select_dtypes("number").columns]
    if cat and num:
        ycol = st.selectbox("Metric", num, key="metrics.aug_metric")
        color = cat[1] if len(cat) > 1 else None
        fig = px.bar(aug, x=cat[0], y=ycol, color=color, barmode="group", height=360)
        st.plotly_chart(fig, key="metrics.augmentation")
