"""Model card and quality bar helpers: wall time over resumed processes, consistency gap, quality bar rows."""
from __future__ import annotations

import pandas as pd
import pytest

from galaxysd_core.evaluation.model_card import training_wall_time
from galaxysd_core.evaluation.quality_bar import consistency_gap, quality_bar_table


def test_wall_time_sums_processes_including_killed_ones():
    log = [
        {"event": "data"}, {"stage": "vae", "step": 200, "wall_s": 100.0}, {"stage": "vae", "step": 400, "wall_s": 250.0},
        # killed; a second process resumes the VAE and trains the UNet
        {"event": "data"}, {"stage": "vae", "step": 600, "wall_s": 90.0}, {"event": "train", "step": 50, "wall_s": 400.0},
        # a third process continues the UNet and finishes
        {"event": "data"}, {"event": "resume", "step": 50}, {"event": "train", "step": 100, "wall_s": 70.0},
        {"event": "done", "step": 100, "wall_s": 75.0},
    ]
    w = training_wall_time(log)
    assert w["total_s"] == pytest.approx(250 + 400 + 75)
    assert w["unet_s"] == pytest.approx(400 + 75)
    assert w["processes"] == 3
    assert training_wall_time([])["total_s"] == 0


def test_consistency_gap_and_quality_bar():
    table = pd.DataFrame({
        "base_prompt": ["sdss, smooth, completely round galaxy", "sdss, features or disk-shaped, spiral galaxy"] * 2,
        "guidance": [3.0, 3.0, 6.5, 6.5], "n": 64, "consistency": [0.9, 0.5, 1.0, 0.7],
        "seen:smooth": [0.9, 0.1, 0.95, 0.0], "seen:spiral galaxy": [0.0, 0.5, 0.0, 0.72]})
    gap = consistency_gap(table, 0.85).set_index("guidance")
    assert gap.loc[3.0, "consistency"] == pytest.approx(0.7) and not gap.loc[3.0, "within_0.1"]
    assert gap.loc[6.5, "gap"] == pytest.approx(0.0) and gap.loc[6.5, "within_0.1"]
    more = consistency_gap(table.assign(consistency=1.0), 0.85).iloc[0]  # more consistent than real by 0.15
    assert not more["within_0.1"] and more["not_worse_by_0.1"]
    qb = quality_bar_table(table, 6.5).set_index("head")
    assert qb.loc["smooth", "passes"] and qb.loc["spiral galaxy", "passes"]
    assert not quality_bar_table(table, 3.0).set_index("head").loc["spiral galaxy", "passes"]


def test_quality_bar_status_lines():
    from galaxysd_core.evaluation.quality_bar import quality_bar_status

    table = pd.DataFrame({
        "base_prompt": ["sdss, smooth, completely round galaxy", "sdss, features or disk-shaped, spiral galaxy",
                        "sdss, edge-on galaxy"], "guidance": 5.0, "n": 64, "consistency": [1.0, 0.8, 0.9],
        "seen:smooth": [0.99, 0.0, 0.0], "seen:spiral galaxy": [0.0, 0.65, 0.0], "seen:edge-on galaxy": [0, 0, 0.9]})
    (line,) = quality_bar_status(table, 0.85, "plain")
    assert "FAILS" in line and "spiral galaxy 0.65 (< 0.70)" in line and "gap -0.050: within 0.1" in line
