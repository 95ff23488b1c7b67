"""Tests of the augmentation experiment (galaxysd_core.science.augmentation, augmentation_report) and its parts:
focal loss, oversampling, task labels, binary training (binary_training, binary_tasks), synthetic cache (synthetic)."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from galaxysd_core._utils import resize_images
from galaxysd_core.science import augmentation as aug
from galaxysd_core.science import augmentation_report as report
from galaxysd_core.science import binary_training as bt
from galaxysd_core.science.binary_tasks import DUST_LANE_COLUMN, TASKS, task_labels
from galaxysd_core.science.synthetic import generate_cached
from galaxysd_core.data.cache import ANSWER_COLUMNS
from galaxysd_core.errors import GalaxySDDataError, GalaxySDValueError

torch.set_num_threads(1)
TINY = dict(channels=(4, 8), image_size=16, steps=8, batch_size=8)


# ------------------------------------------------------------------------------------ focal loss
def test_focal_loss_equals_bce_when_gamma_zero():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(50, generator=g) * 3
    targets = (torch.rand(50, generator=g) > 0.7).float()
    bce = F.binary_cross_entropy_with_logits(logits, targets)
    assert torch.allclose(bt.focal_loss_with_logits(logits, targets, gamma=0.0), bce, atol=1e-7)
    per = bt.focal_loss_with_logits(logits, targets, gamma=0.0, reduction="none")
    assert torch.allclose(per, F.binary_cross_entropy_with_logits(logits, targets, reduction="none"))


def test_focal_loss_down_weights_easy_examples_and_alpha():
    logits = torch.tensor([4.0, 0.0])  # an easy positive, an uncertain positive
    t = torch.ones(2)
    ce = bt.focal_loss_with_logits(logits, t, gamma=0.0, reduction="none")
    fl = bt.focal_loss_with_logits(logits, t, gamma=2.0, reduction="none")
    assert fl[0] / ce[0] < 1e-3 and fl[1] / ce[1] == pytest.approx(0.25)  # (1 - 0.5)^2
    fa = bt.focal_loss_with_logits(logits, torch.tensor([1.0, 0.0]), gamma=0.0, alpha=0.25, reduction="none")
    plain = bt.focal_loss_with_logits(logits, torch.tensor([1.0, 0.0]), gamma=0.0, reduction="none")
    assert torch.allclose(fa, plain * torch.tensor([0.25, 0.75]))
    with pytest.raises(GalaxySDValueError):
        bt.focal_loss_with_logits(logits, t, gamma=-1)
    with pytest.raises(GalaxySDValueError):
        bt.focal_loss_with_logits(logits, t, alpha=1.5)


# ------------------------------------------------------------------------------------ sampling
def test_oversampling_balances_classes():
    labels = np.array([1] * 3 + [0] * 97)
    sched = bt.batch_schedule(labels, steps=40, batch_size=16, rng=np.random.default_rng(0), balanced=True)
    assert sched.shape == (40, 16)
    assert np.all(labels[sched].sum(axis=1) == 8)  # every batch exactly half positives
    counts = np.bincount(sched.ravel(), minlength=100)
    assert counts[:3].min() >= counts[:3].max() - 1  # positives repeat about equally
    assert set(np.flatnonzero(counts[3:]) + 3) == set(range(3, 100))  # every negative used


def test_natural_schedule_keeps_proportions():
    labels = np.array([1] * 10 + [0] * 90)
    sched = bt.batch_schedule(labels, steps=25, batch_size=20, rng=np.random.default_rng(1))
    counts = np.bincount(sched.ravel(), minlength=100)
    assert np.all(counts == 5)  # 5 full epochs, each example once per epoch
    with pytest.raises(GalaxySDValueError):
        bt.batch_schedule(np.zeros(5), 2, 2, np.random.default_rng(0), balanced=True)


# ------------------------------------------------------------------------------------ labels
def _index(n_smooth=6, n_spiral=4, n_merger=3, n_edge=3, n_unknown=2):
    rows = []
    kinds = ["smooth"] * n_smooth + ["spiral"] * n_spiral + ["merger"] * n_merger + ["edge"] * n_edge \
        + ["unknown"] * n_unknown
    for i, k in enumerate(kinds):
        r = {c: np.nan for c in ANSWER_COLUMNS}
        r.update(id=f"x{i}", caption=k, source="gz1_sdss", image_path=f"/nowhere/x{i}.jpg")
        if k != "unknown":
            r["t01_smooth_or_features_a01_smooth"] = float(k == "smooth")
            r["t08_odd_feature_a24_merger"] = float(k == "merger")
            r["t02_edgeon_a04_yes"] = float(k == "edge")
            r["t04_spiral_a08_spiral"] = float(k == "spiral")
        rows.append(r)
    return pd.DataFrame(rows)


def test_task_labels():
    idx = _index()
    m = task_labels(idx, TASKS["gz1-merger"])
    assert np.nansum(m) == 3 and np.sum(m == 0) == 13 and np.isnan(m).sum() == 2
    s = task_labels(idx, TASKS["spiral"])
    assert np.nansum(s) == 4 and np.sum(s == 0) == 6  # negatives are smooth galaxies only
    assert np.isnan(s[idx["caption"].isin(["merger", "edge", "unknown"])]).all()
    with pytest.raises(GalaxySDDataError):
        task_labels(idx.drop(columns=["t04_spiral_a08_spiral"]), TASKS["spiral"])


# ------------------------------------------------------------------------------------ training + metrics
def _images(labels, size=16, seed=0):
    """Positives bright, negatives dark: trivially separable."""
    rng = np.random.default_rng(seed)
    base = np.where(np.asarray(labels)[:, None, None, None] == 1, 200, 30)
    return np.clip(base + rng.normal(0, 10, (len(labels), size, size, 3)), 0, 255).astype(np.uint8)


def test_train_binary_learns_a_separable_task_and_metrics():
    y = np.array([1] * 10 + [0] * 30)
    st = bt.BinaryTrainSettings(**{**TINY, "steps": 30}, balanced=True, augment=True, learning_rate=1e-2)
    model, hist = bt.train_binary(_images(y), y, st, column="t08_odd_feature_a24_merger")
    assert model.feature_columns == ["t08_odd_feature_a24_merger"] and not model.training
    assert hist["n_pos"] == 10 and len(hist["loss"]) >= 2
    scores = bt.predict_scores(model, _images(y, seed=1))
    m = bt.binary_metrics(y, scores)
    assert m["auc"] > 0.95 and m["n_pos"] == 10 and m["n_neg"] == 30
    none = bt.binary_metrics(y, np.zeros(len(y)))
    assert none["precision"] == 0 and none["f1"] == 0 and none["n_pred"] == 0
    with pytest.raises(GalaxySDValueError):
        bt.train_binary(_images(y), y[:-1], st)
    with pytest.raises(GalaxySDValueError):
        bt.BinaryTrainSettings(loss="hinge")


# ------------------------------------------------------------------------------------ synthetic cache
def test_generate_cached_is_reproducible_and_cached(tmp_path):
    from tiny_models import build_tiny_pipeline

    calls = []

    def factory():
        calls.append(1)
        return build_tiny_pipeline()

    kw = dict(seed=5, guidance_scale=3.0, num_inference_steps=2, cache_dir=tmp_path, model_id="tiny")
    a, info = generate_cached(factory, "sdss, merger", 3, max_per_call=2, **kw)
    assert a.shape[0] == 3 and a.dtype == np.uint8 and not info["cached"] and len(calls) == 1
    b, info2 = generate_cached(factory, "sdss, merger", 3, **kw)
    assert info2["cached"] and len(calls) == 1 and np.array_equal(a, b)
    c, _ = generate_cached(factory, "sdss, merger", 3, max_per_call=3, **{**kw, "cache_dir": None})
    assert np.array_equal(a, c)  # per-image seeds: batching does not change the images
    assert resize_images(a, 64).shape == (3, 64, 64, 3)


# ------------------------------------------------------------------------------------ experiment
def _experiment_data():
    idx = _index(n_smooth=24, n_spiral=12, n_merger=10, n_edge=10, n_unknown=2)
    y = task_labels(idx, TASKS["gz1-merger"])
    images = _images(np.nan_to_num(y), seed=3)
    images[:, 0, 0, 0] = np.arange(len(images))  # a unique marker per real image
    test_ids = idx["id"].iloc[::4].tolist()
    return images, idx, test_ids


def test_experiment_never_trains_on_held_out_test_images(monkeypatch, tmp_path):
    images, idx, test_ids = _experiment_data()
    seen = []
    real_train = bt.train_binary

    def spy(x, labels, settings=None, column=DUST_LANE_COLUMN, progress=False):
        seen.append((x.copy(), labels.copy(), settings))
        return real_train(x, labels, settings, column)

    monkeypatch.setattr(aug, "train_binary", spy)
    cfg = aug.ExperimentConfig(tasks=["gz1-merger", "spiral"], shots=[2, 0], seeds=[0, 1], n_negatives=8, n_synthetic=3,
                               num_inference_steps=2, arms=["real", "synthetic", "classic", "focal"],
                               train=bt.BinaryTrainSettings(**TINY))
    from tiny_models import build_tiny_pipeline

    res = aug.run_experiment([], test_ids, cfg, pipe_factory=build_tiny_pipeline, model_id="tiny",
                             synthetic_cache=tmp_path / "syn", log=None, data=(images, idx))
    runs = res["runs"]
    assert len(runs) == 2 * 2 * 2 * 4 == len(seen)
    # every real training image is identified by its marker pixel: none is a test galaxy
    for (x, labels, st), (_, row) in zip(seen, runs.iterrows()):
        n_real = row["n_real_pos"] + row["n_real_neg"]
        real_x = x[:n_real]
        for im in real_x:
            match = np.flatnonzero((images == im).all(axis=(1, 2, 3)))
            assert len(match) == 1 and idx["id"].iloc[match[0]] not in test_ids
        assert len(x) == n_real + row["n_synthetic"]
        assert st.loss == ("focal" if row["arm"] == "focal" else "bce")
        assert st.balanced == st.augment == (row["arm"] == "classic")
    assert set(runs.loc[runs["arm"] == "synthetic", "n_synthetic"]) == {3}
    merger_all = runs[(runs["task"] == "gz1-merger") & (runs["shots"] == "all")]
    assert set(merger_all["n_real_pos"]) == {int(((task_labels(idx, TASKS["gz1-merger"]) == 1)
                                                  & ~idx["id"].isin(test_ids)).sum())}
    summ = res["summary"]
    assert set(summ["n_seeds"]) == {2} and {"f1_mean", "f1_std", "precision_mean", "recall_mean"} <= set(summ.columns)
    files = report.write_results(res, tmp_path / "out", cfg, extra={"model": "tiny", "caches": []})
    report.write_readme(res, tmp_path / "out", cfg, {"model": "tiny", "caches": []})
    meta = json.loads((tmp_path / "out" / "results.json").read_text())
    assert meta["config"]["seeds"] == [0, 1] and "torch" in meta["versions"]
    assert (tmp_path / "out" / "augmentation_f1.png").stat().st_size > 1000
    assert "plotly_f1" in files and "± " in (tmp_path / "out" / "README.md").read_text()


def test_readme_keeps_hand_written_notes(tmp_path):
    runs = pd.DataFrame([{"task": "merger", "shots": 10, "arm": a, "seed": s, "n_real_pos": 10, "n_synthetic": 0,
                          "precision": 0.5, "recall": 0.5, "f1": 0.5 + 0.1 * (a == "synthetic"), "ap": 0.4,
                          "auc": 0.8} for a in ("real", "synthetic") for s in (0, 1)])
    res = {"runs": runs, "summary": aug.summarize(runs), "info": {"tasks": {}}}
    cfg = aug.ExperimentConfig(arms=["real", "synthetic"])
    path = report.write_readme(res, tmp_path, cfg, {})
    path.write_text(path.read_text().replace("(to be written after inspecting the numbers)", "MY NOTES"))
    report.write_readme(res, tmp_path, cfg, {})
    text = path.read_text()
    assert "MY NOTES" in text and "+0.100 (better)" in text


def test_config_validation():
    with pytest.raises(GalaxySDValueError, match="unknown tasks"):
        aug.ExperimentConfig(tasks=["bars"])
    with pytest.raises(GalaxySDValueError, match="unknown arms"):
        aug.ExperimentConfig(arms=["mixup"])
    assert aug.ExperimentConfig(train={"steps": 3}).train.steps == 3


def test_experiment_config_quick_and_overrides():
    quick = aug.experiment_config(quick=True, arms=["real", "focal"], steps=5, focal_alpha=0.25, tasks=None)
    assert quick.seeds == [0, 1] and quick.shots == [10] and quick.n_synthetic == 16
    assert quick.arms == ["real", "focal"] and quick.train.steps == 5 and quick.train.focal_alpha == 0.25
    assert quick.tasks == ["dust-lane", "merger", "ring", "bar", "edge-on"]  # None keeps the configured value
    assert aug.ExperimentConfig().arms == ["real", "synthetic", "classic", "focal", "synthetic+classic"]
    assert aug.experiment_config().to_dict() == aug.ExperimentConfig().to_dict()
    with pytest.raises(GalaxySDValueError, match="unknown arms"):
        aug.experiment_config(arms=["mixup"])
    with pytest.raises(GalaxySDValueError):
        aug.experiment_config(steps=0)  # the training settings validate themselves
    with pytest.raises(GalaxySDValueError, match="no setting"):
        aug.experiment_config(learning_rates=1.0)


def test_generator_factory_random_and_folder(tmp_path):
    from galaxysd_core.models.mini import MiniModelConfig
    from galaxysd_core.science.synthetic import generator_factory, model_fingerprint
    from tiny_models import build_tiny_pipeline

    factory, model_id, path = generator_factory("random")
    assert (model_id, path) == ("random-mini", "random")
    assert factory().default_size == MiniModelConfig().resolution  # an untrained GalaxySD-mini
    build_tiny_pipeline(seed=0).save_pretrained(tmp_path / "m")
    factory, model_id, path = generator_factory(str(tmp_path / "m"))
    assert model_id == f"m:{model_fingerprint(tmp_path / 'm')}" and path == str(tmp_path / "m")
    assert factory().default_size == 32  # loads lazily, from the folder


# ------------------------------------------------------------------------------------ GZ2-vote tasks, Metrics page
def test_vote_task_experiment_skips_shots_beyond_the_positives(tmp_path):
    from galaxysd_core.science.vote_truth import DUST_LANE_COLUMN as DUST, ODD_YES_COLUMN, SMOOTH_COLUMN

    n = 48
    dust = np.arange(n) % 4 == 0  # 12 dust lanes
    idx = pd.DataFrame({"id": [f"J{i:04d}" for i in range(n)], "source": "gz2_cutouts", "caption": "sdss",
                        DUST + "_fraction": np.where(dust, 0.8, 0.05), ODD_YES_COLUMN + "_fraction": 0.6,
                        SMOOTH_COLUMN + "_fraction": 0.5})
    images = _images(dust.astype(int), seed=4)
    test_ids = idx["id"].iloc[1::3].tolist()
    cfg = aug.ExperimentConfig(tasks=["dust-lane"], shots=[2, 50, 0], seeds=[0], n_negatives=20, arms=["real", "focal"],
                               train=bt.BinaryTrainSettings(**TINY))
    res = aug.run_experiment([], test_ids, cfg, log=None, data=(images, idx))
    runs = res["runs"]
    assert set(runs["shots"].astype(str)) == {"2", "all"}  # 50 > the 8 training positives: the same as "all"
    assert set(runs.loc[runs["shots"] == "all", "n_real_pos"]) == {int((dust & ~idx["id"].isin(test_ids)).sum())}
    assert res["info"]["tasks"]["dust-lane"]["test_pos"] == int((dust & idx["id"].isin(test_ids)).sum())


def _summary_for_discussion():
    rows = []
    for task, syn_gain in (("merger", 0.3), ("ring", -0.3), ("bar", 0.0)):
        for arm in ("real", "synthetic", "classic", "focal"):
            for s in (0, 1, 2):
                f1 = 0.5 + (syn_gain if arm == "synthetic" else 0.0) + 0.01 * s
                rows.append({"task": task, "shots": 10, "arm": arm, "seed": s, "n_real_pos": 10, "n_synthetic": 0,
                             "precision": 0.5, "recall": 0.5, "f1": f1, "ap": f1, "auc": 0.8})
    return aug.summarize(pd.DataFrame(rows))


def test_discussion_says_where_synthetic_helps_and_where_not():
    text = report.discussion_text(_summary_for_discussion())
    first = text.split("\n")[0]
    assert "(b) real + synthetic vs (a) real only, F1" in first
    assert "better in merger (10)" in first and "worse in ring (10)" in first and "1 of 3 settings" in first
    assert "3 seeds" in text
    assert "nothing to say" in report.discussion_text(_summary_for_discussion().query("arm == 'real'"))


def test_metrics_page_content_gives_table_bars_and_discussion(tmp_path):
    summ = _summary_for_discussion()
    res = {"runs": pd.DataFrame({"task": ["merger"]}), "summary": summ, "info": {"tasks": {}}}
    cfg = aug.ExperimentConfig(tasks=["merger", "ring", "bar"], arms=["real", "synthetic", "classic", "focal"])
    report.write_results(res, tmp_path, cfg)
    readme = report.write_readme(res, tmp_path, cfg, {})
    readme.write_text(readme.read_text().replace("(to be written after inspecting the numbers)", "HAND NOTES"))
    page = report.metrics_page_content(tmp_path)
    assert len(page.table) == len(summ) and page.table["f1"].iloc[0].count("±") == 1
    fig = page.figures["f1"]
    assert fig.layout.barmode == "group" and len(fig.data) == 4  # one bar trace per arm, side by side
    assert all(t.type == "bar" for t in fig.data) and "HAND NOTES" in page.discussion
    assert "better in merger (10)" in page.discussion and "| merger |" in page.table_markdown
    assert "Generated summary" in readme.read_text()
    assert report.metrics_page_content(tmp_path / "nothing") is None


def test_results_of_parallel_task_subsets_merge_into_one_folder(tmp_path):
    def part(tasks, name, **cfg_kw):
        rows = [{"task": t, "shots": 10, "arm": a, "seed": s, "n_real_pos": 10, "n_synthetic": 0, "precision": 0.5,
                 "recall": 0.5, "f1": 0.4 + 0.1 * (a == "synthetic"), "ap": 0.3, "auc": 0.8}
                for t in tasks for a in ("real", "synthetic") for s in (0, 1)]
        runs = pd.DataFrame(rows)
        res = {"runs": runs, "summary": aug.summarize(runs),
               "info": {"tasks": {t: {"train_pos": 9, "train_neg": 90, "test_pos": 3, "test_neg": 30} for t in tasks},
                        "wall_time_s": 60.0 * len(tasks),
                        "generation_s": 5.0, "torch_threads": 1}}
        cfg = aug.ExperimentConfig(tasks=list(tasks), arms=["real", "synthetic"], **cfg_kw)
        report.write_results(res, tmp_path / name, cfg, extra={"model": "m", "command": f"run {name}"})
        return tmp_path / name

    a, b = part(["merger", "ring"], "a"), part(["bar"], "b")
    result, files = report.merge_results([a, b], tmp_path / "all")
    assert len(result["runs"]) == 12 and set(result["summary"]["task"]) == {"merger", "ring", "bar"}
    saved = json.loads((tmp_path / "all" / "results.json").read_text())
    assert saved["config"]["tasks"] == ["merger", "ring", "bar"] and saved["info"]["wall_time_s"] == 120.0
    assert set(saved["info"]["tasks"]) == {"merger", "ring", "bar"} and (tmp_path / "all" / "README.md").is_file()
    with pytest.raises(GalaxySDValueError, match="two result folders"):
        report.merge_results([a, a], tmp_path / "bad")
    with pytest.raises(GalaxySDValueError, match="different settings"):
        report.merge_results([a, part(["edge-on"], "c", n_negatives=5)], tmp_path / "bad")
