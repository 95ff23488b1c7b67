"""The D-ETG detector experiment (science.detg_config, detg_data, detg_experiment, detg_results): prompts, splits,
arm data assembly, selection on validation, verdict and the written detector folders (tiny models)."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from galaxysd_core.errors import GalaxySDDataError, GalaxySDValueError
from galaxysd_core.prompts.grammar import parse_prompt
from galaxysd_core.science import detg_experiment as dx
from galaxysd_core.science.binary_training import BinaryTrainSettings
from galaxysd_core.science.detg_config import DetgConfig, detg_config, detg_prompt, detg_prompts
from galaxysd_core.science.detg_data import arm_training_set, real_pool
from galaxysd_core.science.vote_truth import DUST_LANE_COLUMN, ODD_YES_COLUMN, SMOOTH_COLUMN

torch.set_num_threads(1)
F = "_fraction"
TINY = BinaryTrainSettings(steps=3, batch_size=8, channels=(4, 8), image_size=16, balanced=True, augment=True,
                           balance_threshold=0.25)


def _pool_data(n=80, n_dust=14, seed=0):
    """Voted toy galaxies (16 px): a dark horizontal band marks the dust lanes; some rows have partial votes."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:16, 0:16] - 8
    rows, imgs = [], []
    for i in range(n):
        dust = i < n_dust
        g = np.exp(-0.5 * ((x / 4) ** 2 + (y / 4) ** 2))[..., None] * np.array([1.0, 0.8, 0.6])
        if dust:
            g[7:9] *= 0.2
        imgs.append(np.clip(220 * g + rng.normal(10, 3, g.shape), 0, 255).astype(np.uint8))
        partial = (not dust) and i % 7 == 0
        rows.append({"id": f"J{i:06d}", "source": "gz2_cutouts", "caption": "sdss", "image_path": f"/x/{i}.jpg",
                     DUST_LANE_COLUMN + F: 0.9 if dust else (0.3 if partial else 0.0),
                     ODD_YES_COLUMN + F: 0.6 if dust or partial else 0.1,
                     SMOOTH_COLUMN + F: 0.8 if i % 2 == 0 else 0.2,
                     "t01_smooth_or_features_a02_features_or_disk" + F: 0.2 if i % 2 == 0 else 0.8,
                     "t02_edgeon_a05_no" + F: 0.9, "t04_spiral_a08_spiral" + F: 0.9 if i % 4 == 1 else 0.1})
    imgs = np.stack(imgs)
    imgs[:, 0, 0, 0] = np.arange(n)  # a marker pixel per real galaxy
    return imgs, pd.DataFrame(rows)


def _test_ids(index):
    """Every 4th galaxy is held out (4 of the 14 dust lanes among them)."""
    return index["id"].iloc[1::4].tolist()


def test_prompts_parse_with_the_requested_weights_and_negatives_have_no_dust_lane():
    cfg = DetgConfig(dust_weights=[1.0, 1.5])
    prompts = detg_prompts(cfg)
    assert len(prompts) == 2 * 2 and prompts[1][2] == "sdss, smooth, {completely round galaxy:1.3}, {dust lane:1.5}"
    w = dict(zip(*[getattr(parse_prompt(prompts[1][2], strict=True), a) for a in ("words", "weights")]))
    assert w["dust"] == w["lane"] == 1.5 and w["round"] == 1.3
    assert "dust" not in detg_prompt("in-between round galaxy", 0.0)
    with pytest.raises(GalaxySDValueError):
        DetgConfig(dust_weights=[4.0])
    with pytest.raises(GalaxySDValueError, match="arms"):
        DetgConfig(arms=["mixup"])
    q = detg_config(quick=True, steps=2, seeds=None)
    assert q.detector.steps == 2 and q.seeds == [0, 1] and detg_config().to_dict() == DetgConfig().to_dict()
    assert DetgConfig.from_dict(DetgConfig().to_dict()).to_dict() == DetgConfig().to_dict()


def test_real_pool_splits_are_fixed_and_disjoint():
    images, index = _pool_data()
    cfg = DetgConfig(detector=TINY)
    _, pool = real_pool([], _test_ids(index), cfg, data=(images, index))
    _, again = real_pool([], _test_ids(index), cfg, data=(images[::-1], index.iloc[::-1].reset_index(drop=True)))
    assert set(pool.loc[pool["split"] == "test", "id"]) == set(_test_ids(index))
    assert pool.set_index("id")["split"].sort_index().equals(again.set_index("id")["split"].sort_index())  # id hash
    for s in ("train", "validation", "test"):
        assert (pool.loc[pool["split"] == s, "dust_lane"] == 1).any()
    with pytest.raises(GalaxySDDataError, match="held-out"):
        real_pool([], ["nope"], cfg, data=(images, index))
    with pytest.raises(GalaxySDDataError, match="votes"):
        real_pool([], ["J000000"], cfg, data=(images, index.assign(**{SMOOTH_COLUMN + F: np.nan})))


def test_arm_data_assembly():
    images, index = _pool_data()
    cfg = DetgConfig(detector=TINY)
    images, pool = real_pool([], _test_ids(index), cfg, data=(images, index))
    synth = np.full((6, 16, 16, 3), 7, dtype=np.uint8)
    labels = np.array([1, 1, 1, 1, 0, 0])
    a = arm_training_set("real", images, pool, synth, labels, cfg)
    b = arm_training_set("real+synthetic", images, pool, synth, labels, cfg)
    c = arm_training_set("synthetic", images, pool, synth, labels, cfg)
    train = set(pool.index[pool["split"] == "train"])
    assert set((a.kind == "synthetic").nonzero()[0]) == set() and set(a.real_rows) == train  # (a): no synthetic
    assert a.counts()["real_pos"] > 0 and a.counts()["synthetic_pos"] == 0
    np.testing.assert_allclose(a.targets, pool["dust_lane_soft"].to_numpy()[a.real_rows])  # soft labels
    nb = b.counts()
    assert nb["real_pos"] == a.counts()["real_pos"] and (nb["synthetic_pos"], nb["synthetic_neg"]) == (4, 2)  # (b): both
    nc = c.counts()
    assert nc["real_pos"] == 0 and nc["real_soft_nonzero"] == 0 and nc["synthetic_pos"] == 4  # (c): no real positives
    assert (pool["dust_lane_soft"].to_numpy()[c.real_rows] < cfg.negative_max_soft).all()
    assert not set(pool.index[pool["split"] != "train"]) & (set(a.real_rows) | set(c.real_rows))
    hard = arm_training_set("real", images, pool, None, None, DetgConfig(real_labels="hard", detector=TINY))
    assert set(np.unique(hard.targets)) == {0.0, 1.0}
    with pytest.raises(GalaxySDDataError, match="synthetic"):
        arm_training_set("synthetic", images, pool, None, None, cfg)


def test_experiment_selects_on_validation_and_writes_detectors(tmp_path, monkeypatch):
    from galaxysd_core.models.classifier import ClassifierConfig, MorphologyClassifier
    from galaxysd_core.science import detg_results
    from galaxysd_core.science.detg_components import ARTIFACT_COLUMN
    from tiny_models import build_tiny_pipeline

    images, index = _pool_data()
    test_ids = _test_ids(index)
    seen = []
    real_train = dx.train_binary

    def spy(x, y, settings, column):
        seen.append({im.tobytes() for im in x})
        return real_train(x, y, settings, column=column)

    monkeypatch.setattr(dx, "train_binary", spy)
    torch.manual_seed(0)
    judge = MorphologyClassifier(ClassifierConfig(feature_columns=[SMOOTH_COLUMN, ARTIFACT_COLUMN,
                                                                   "t08_odd_feature_a24_merger"],
                                                  output="softmax", channels=[4, 8], image_size=16)).eval()
    cfg = DetgConfig(seeds=[0, 1], shapes=["completely round galaxy"], dust_weights=[1.0, 2.0], n_per_prompt=2,
                     n_synthetic_negatives=2, num_inference_steps=2, detector=TINY)
    res = dx.run_detector_experiment([], test_ids, cfg, pipe_factory=build_tiny_pipeline, model_id="tiny",
                                     synthetic_cache=tmp_path / "syn", judge=judge, log=lambda m: None,
                                     data=(images, index))
    assert len(seen) == 3 * 2
    held_out = {im.tobytes() for im in images[index["id"].isin(test_ids).to_numpy()]}
    for trained_on in seen:  # no held-out galaxy ever trains a detector
        assert not held_out & trained_on
    runs = res.runs
    assert set(runs["arm"]) == {"real", "real+synthetic", "synthetic", "classifier"}
    assert set(runs["truth"]) == {"dust_lane", "dust_lane_partial", "detg", "detg_gate"}
    assert {"roc_auc", "ap", "recall_at_1pct", "recall_at_5pct"} <= set(runs.columns)
    t = runs[(runs["split"] == "test") & (runs["truth"] == "dust_lane")]
    assert set(t["n_pos"]) == {4}
    assert set(runs.loc[runs["truth"] == "detg", "score"]) >= {"p_dust*p_early", "dust_vote_pred*p_early"}
    # best seed of every arm = the best *validation* figure
    for arm in cfg.arms:
        v = runs[(runs["arm"] == arm) & (runs["split"] == "validation") & (runs["truth"] == "dust_lane")]
        best = int(res.selection.set_index("arm").loc[arm, "best_seed"])
        assert v.set_index("seed").loc[best, "ap"] == v["ap"].max()
    s = res.summary
    assert set(s.loc[s["arm"] != "classifier", "n_seeds"]) == {2} and "roc_auc_std" in s.columns
    assert res.best_arm in cfg.arms and "beat" in res.verdict["text"]
    files = detg_results.write_experiment(res, tmp_path / "out", cfg, {"model": "tiny", "caches": ["c"]})
    out = tmp_path / "out"
    det = MorphologyClassifier.from_pretrained(out)
    assert det.training_info["arm"] == res.best_arm and det.config.image_size == 16
    for arm in ("real", "real_synthetic", "synthetic"):
        d = MorphologyClassifier.from_pretrained(out / "arms" / arm)
        assert d.training_info["seed"] in (0, 1) and (out / "arms" / arm / "README.md").is_file()
    ids = pd.read_csv(out / "training_ids.csv", dtype={"id": str})
    assert not set(ids["id"]) & set(test_ids) and set(ids["split"]) == {"train", "validation"}
    meta = json.loads((out / "heldout.json").read_text())
    assert meta["config"]["seeds"] == [0, 1] and meta["best_arm"] == res.best_arm and "torch" in meta["versions"]
    card = (out / "README.md").read_text()
    assert "Held-out figures" in card and "Verdict" in card and "real votes" in card
    assert (out / "synthetic_detgs.png").is_file() and "preview" in files
    assert len(pd.read_csv(out / "synthetic_sweep.csv")) == 3  # 2 D-ETG prompts + 1 negative prompt


def test_goal_verdict():
    s = pd.DataFrame([{"arm": a, "split": "test", "truth": "dust_lane", "n_pos": 6, "roc_auc_mean": m,
                       "roc_auc_std": 0.01} for a, m in (("real", 0.90), ("real+synthetic", 0.96))])
    v = dx.goal_verdict(s)
    assert v["b_beats_a"] and v["goal_met"] and "beats" in v["text"] and "is met" in v["text"]
    s.loc[1, "roc_auc_mean"] = 0.905
    v = dx.goal_verdict(s)
    assert v["b_beats_a"] and not v["goal_met"] and v["within_spread"] and "NOT met" in v["text"]
    s.loc[1, "roc_auc_mean"] = 0.5
    assert "does NOT beat" in dx.goal_verdict(s)["text"]


def test_best_seed_is_chosen_on_validation_never_on_test(monkeypatch):
    images, index = _pool_data()
    calls = []

    def fake_evaluate(pool, rows, p_dust, p_early, early_threshold):
        calls.append(1)
        k = len(calls)  # validation improves with every seed while test gets worse
        return [{"split": s, "truth": "dust_lane", "score": "p_dust", "n": 10, "n_pos": 2,
                 "roc_auc": v, "ap": v, "recall_at_1pct": 0.0, "recall_at_5pct": 0.0}
                for s, v in (("validation", 0.1 * k), ("test", 1.0 - 0.1 * k))]

    monkeypatch.setattr(dx, "_evaluate", fake_evaluate)
    cfg = DetgConfig(arms=["real"], seeds=[0, 1, 2], detector=TINY)
    res = dx.run_detector_experiment([], _test_ids(index), cfg, log=lambda m: None, data=(images, index))
    sel = res.selection.set_index("arm").loc["real"]
    assert sel["best_seed"] == 2 and sel["best_validation_ap"] == pytest.approx(0.3)
    assert res.best_arm == "real" and res.detectors["real"] is not None
