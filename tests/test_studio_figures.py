"""Figures of the Metrics page: one colour per prompt family in every plot, every UpSet row labelled."""
from __future__ import annotations

import pandas as pd

from galaxysd_core.studio import figures, metric_files, palette

PROMPTS = ["sdss, smooth, completely round galaxy", "sdss, features or disk-shaped, spiral galaxy",
           "sdss, edge-on galaxy", "sdss, merger"]


def _table() -> pd.DataFrame:
    rows = []
    for i, p in enumerate(PROMPTS):
        for g in (1.0, 3.0, 6.5):
            rows.append({"prompt": p, "base_prompt": p, "sweep_variable": "guidance", "sweep_value": g,
                         "precision": 0.5 + 0.05 * g, "recall": 0.8 - 0.05 * g, "consistency": 0.4 + 0.08 * g,
                         "step": int(g * 100), "domain_fd": 10 * g + i,
                         "reference": "all real" if i % 2 == 0 else "same caption"})
    return pd.DataFrame(rows)


def _colours(fig) -> dict:
    out = {}
    for t in fig.data:
        c = (getattr(t, "marker", None) and t.marker.color) or (getattr(t, "line", None) and t.line.color)
        out[t.name.split(" (vs")[0]] = c
    return out


def test_a_prompt_has_the_same_colour_in_every_plot():
    df = _table()
    cols = metric_files.pareto_columns(df)
    expected = {p: palette.family_colour(p) for p in PROMPTS}
    for fig in (figures.pareto_figure(df, cols), figures.sweep_consistency_figure(df, cols),
                figures.distance_by_prompt_figure(df)):
        assert _colours(fig) == expected
    assert len(set(expected.values())) == 4  # four families, four colours


def test_metric_lines_use_the_prompt_colour_and_differ_by_dash():
    curves = figures.training_curves(_table().assign(density=0.3, coverage=0.2), PROMPTS[1])
    colour = palette.family_colour(PROMPTS[1])
    fig = figures.prdc_figure(curves, colour)
    assert {t.line.color for t in fig.data} == {colour}
    assert len({t.line.dash for t in fig.data}) == len(fig.data) == 4
    assert figures.consistency_figure(curves, [], colour).data[0].line.color == colour
    assert figures.prdc_figure(curves).data[0].line.color == palette.NEUTRAL  # the mean over prompts


def test_distances_against_all_real_galaxies_are_dashed():
    fig = figures.distance_by_prompt_figure(_table())
    dashes = {t.name: t.line.dash for t in fig.data}
    assert dashes[f"{PROMPTS[0]} (vs all real)"] == "dash" and dashes[f"{PROMPTS[1]} (vs same caption)"] == "solid"
    assert "while consistency rises" in figures.HOW_TO_READ["distance"]


def test_every_upset_row_is_labelled():
    feats = [f"feature {i}" for i in range(14)]
    combos = pd.DataFrame({"combination": [f"{feats[i]} + {feats[(i + 1) % 14]}".replace(" + ", "|")
                                           for i in range(14)], "count": list(range(100, 86, -1))})
    from galaxysd_core.schema.morphology_stats import COMBINATION_SEP

    combos["combination"] = combos["combination"].str.replace("|", COMBINATION_SEP, regex=False)
    fig = figures.upset_figure(combos, top=15)
    axis = fig.layout.yaxis2
    assert axis.tickmode == "array" and sorted(axis.tickvals) == sorted(feats) and list(axis.ticktext) == list(axis.tickvals)
    assert fig.layout.height >= 26 * len(feats)  # room for every label
    assert fig.data[0].marker.color in palette.GREYS


def test_every_plot_of_the_metrics_page_has_a_reading_sentence():
    for key in ("consistency", "prdc", "distance", "pareto", "sweep_consistency", "features", "upset", "classifier",
                "augmentation", "light_profiles"):
        assert figures.HOW_TO_READ[key].endswith(".")
