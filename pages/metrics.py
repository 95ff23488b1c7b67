"""Metrics page: plots of metric files written by training and evaluation (nothing recomputed here)."""
from __future__ import annotations

import streamlit as st

from galaxysd_core import config
from galaxysd_core.studio import figures, palette
from galaxysd_core.studio.metric_files import (AUGMENTATION_METRICS, augmentation_metrics, benchmark_consistency,
                                               classifier_table, generated_vs_real_table,
                                               how_to_make, pareto_columns, prompt_column, read_metrics,
                                               sweep_rows, sweep_variables, training_prompts)
from pages import _ui

_ui.ensure_app_navigation()

st.title("Metrics")
model_dir = config.model_dir()
bundle = read_metrics(model_dir)
rel = bundle.metrics_dir
st.caption(f"Read from `{rel}` and `{config.ASSETS_DIR}`; produced by `galaxysd evaluate` and the training "
           f"scripts. Nothing is recomputed here.")
for problem in bundle.problems:
    st.warning(problem, icon=":material/warning:")


def missing(kind: str) -> None:
    """The notice of an empty section: what is missing and the command that writes it."""
    st.info(how_to_make(kind, rel, model_dir), icon=":material/info:")


def chart(fig, key: str, where=st, read: str = "") -> None:
    """Draw a figure when there is one (the builders return None for tables without the columns), with the
    sentence that says how to read it (:data:`galaxysd_core.studio.figures.HOW_TO_READ`)."""
    if fig is not None:
        where.plotly_chart(fig, key=key)
        if read:
            where.caption(figures.HOW_TO_READ[read])


st.caption("Colours: one per prompt family in every plot ("
           + ", ".join(f"<span style='color:{c}'>■</span> {f}" for f, c in palette.FAMILY_COLOURS.items())
           + "); black and greys are means over prompts or several measures, told apart by dashes and markers.",
           unsafe_allow_html=True)


# ----------------------------------------------------------------------------- training
st.header("Over training")
if bundle.training is None:
    missing("training")
else:
    df = bundle.training
    choice = None
    prompts = training_prompts(df)
    if prompts:
        options = ["mean over prompts", *prompts]
        pick = st.selectbox("Prompt", options, key="metrics.train_prompt")
        choice = None if pick == options[0] else pick
    curves = figures.training_curves(df, choice)
    colour = palette.family_colour(choice) if choice else palette.NEUTRAL
    st.caption(f"{bundle.training_file.name}: {len(df)} rows, steps {int(curves['step'].min())}"
               f"–{int(curves['step'].max())}" + ("" if choice else "; lines are the mean over prompts (black)"))
    c1, c2 = st.columns(2)
    chart(figures.consistency_figure(curves, benchmark_consistency(bundle.benchmark), colour), "metrics.consistency",
          c1, "consistency")
    chart(figures.prdc_figure(curves, colour), "metrics.prdc", c2, "prdc")
    chart(figures.distance_figure(curves, bundle.benchmark, colour), "metrics.dist", read="distance")
    pp = bundle.training_per_prompt
    if pp is not None:
        pcol = prompt_column(pp)
        chart(figures.distance_by_prompt_figure(pp if choice is None or choice not in set(pp[pcol]) else
                                                pp[pp[pcol] == choice]), "metrics.dist_prompts",
              read="distance_by_prompt")
    for c, fig in figures.other_metric_figures(curves).items():
        chart(fig, f"metrics.o.{c}")
    if not bundle.benchmark:
        st.caption("No `real_benchmark.json`: reference lines for real images are missing (write it with "
                   "`galaxysd evaluate ... --real-cache ...`).")

# ----------------------------------------------------------------------------- sweeps / pareto
st.header("Realism, diversity and consistency across sweeps")
if bundle.pareto is None:
    missing("pareto")
else:
    df = bundle.pareto
    cols = pareto_columns(df)
    variables = sweep_variables(df, cols)
    var = st.selectbox("Sweep", variables, key="metrics.sweep_var") if variables else None
    sub = sweep_rows(df, cols, var)
    st.caption(f"{bundle.pareto_file.name}: {len(df)} rows. Realism = `{cols['realism']}`, diversity = "
               f"`{cols['diversity']}`.")
    chart(figures.pareto_figure(sub, cols), "metrics.pareto", read="pareto")
    chart(figures.sweep_consistency_figure(sub, cols), "metrics.sweep_consistency", read="sweep_consistency")

# ----------------------------------------------------------------------------- morphology
st.header("Morphology distribution")
if not bundle.morphology:
    missing("morphology")
else:
    tabs = st.tabs(list(bundle.morphology))
    for tab, (label, tables) in zip(tabs, bundle.morphology.items()):
        with tab:
            feats = tables["features"]
            log = st.toggle("log scale", value=True, key=f"metrics.morph_log.{label}")
            chart(figures.feature_counts_figure(feats, label, log), f"metrics.morph_feat.{label}", read="features")
            zero = feats.loc[feats["count"] == 0, "feature"].tolist()
            if zero:
                st.caption(f"Never present: {', '.join(zero)}")
            chart(figures.upset_figure(tables.get("combinations"), top=15), f"metrics.upset.{label}", read="upset")

# ----------------------------------------------------------------------------- classifier
st.header("Morphology classifier")
if bundle.classifier_readme is None:
    missing("classifier")
else:
    chart(figures.classifier_figure(bundle.classifier_metrics), "metrics.classifier", read="classifier")
    heads = classifier_table(bundle.classifier_metrics)
    if heads is not None:
        st.subheader("Per feature, held-out real galaxies")
        st.caption("One head per GZ2 answer with at least 30 majority-labelled training galaxies; fixed id-hash "
                   "test split. Features without a head are not checked by prompt consistency.")
        st.dataframe(heads, hide_index=True, width="stretch", column_config={
            c: st.column_config.NumberColumn(format="%.3f")
            for c in ("precision", "recall", "ROC AUC", "AUC if reached", "AUC goal")})
    comparison = generated_vs_real_table(bundle)
    if comparison is not None:
        st.subheader("Per feature, generated vs real")
        st.caption("Share of generated images (prompts naming the feature) and of held-out real images (captions "
                   "naming it) in which the classifier sees the feature; gap = generated - real. Real shares need "
                   "a `real_benchmark.json` written by `galaxysd evaluate` with the current classifier.")
        st.dataframe(comparison, hide_index=True, width="stretch", column_config={
            c: st.column_config.NumberColumn(format="%.3f") for c in ("generated_seen", "real_seen", "gap")})
    with st.expander("Classifier card (assets/classifier/README.md)"):
        st.markdown(bundle.classifier_readme)

# ----------------------------------------------------------------------------- augmentation
st.header("Augmentation with generated galaxies")
if bundle.augmentation is None:
    missing("augmentation")
else:
    aug = bundle.augmentation
    st.caption("Does adding generated galaxies help a rare-class classifier? Each arm trains the same classifier "
               "with the same budget; scores on the held-out real test set (`assets/augmentation/`).")
    metrics = augmentation_metrics(aug)
    if metrics:
        ycol = st.selectbox("Metric", metrics, key="metrics.aug_metric", format_func=AUGMENTATION_METRICS.get)
        chart(figures.augmentation_figure(aug, ycol), "metrics.augmentation", read="augmentation")
    if bundle.augmentation_notes:
        st.subheader("Discussion")
        st.markdown(bundle.augmentation_notes)
    with st.expander("Results table (results.csv)"):
        st.dataframe(aug, hide_index=True)
    if bundle.augmentation_readme:
        with st.expander("Full report (assets/augmentation/README.md)"):
            st.markdown(bundle.augmentation_readme)
