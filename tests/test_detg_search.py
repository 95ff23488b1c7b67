"""Tests of the D-ETG search (galaxysd_core.science.detg_search, detg_config, detg_heldout, detg_catalog): prompts,
ranks, held-out protocol, catalog (with a tiny pipeline)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from galaxysd_core.science import detg_catalog, detg_heldout
from galaxysd_core.science import detg_search as ds
from galaxysd_core.science.binary_tasks import DUST_LANE_COLUMN
from galaxysd_core.science.binary_training import BinaryTrainSettings
from galaxysd_core.science.detg_config import ARTIFACT_COLUMN, SMOOTH_COLUMN, SearchConfig, detg_prompts, search_config
from galaxysd_core.science.candidates import read_candidates
from galaxysd_core.data.cache import ANSWER_COLUMNS
from galaxysd_core.errors import GalaxySDValueError
from galaxysd_core.prompts.grammar import parse_prompt

torch.set_num_threads(1)


def test_prompts_parse_with_the_requested_weights():
    cfg = SearchConfig(dust_weights=[1.0, 1.5, 2.0])
    prompts = detg_prompts(cfg)
    assert len(prompts) == 2 * 3
    shape, w, text = prompts[1]
    assert text == "sdss, smooth, {completely round galaxy:1.3}, {dust lane:1.5}"
    parsed = parse_prompt(text, strict=True)
    weights = dict(zip(parsed.words, parsed.weights))
    assert weights["dust"] == weights["lane"] == 1.5 and weights["round"] == 1.3 and weights["smooth"] == 1.0
    with pytest.raises(GalaxySDValueError):
        SearchConfig(dust_weights=[4.0])


def test_rank_among_excludes_training_rows_and_counts_ties_against_target():
    s = np.array([0.9, 0.8, 0.7, 0.7, 0.1])
    assert detg_heldout.rank_among(s, 2) == 4  # tie with row 3 counts against it
    assert detg_heldout.rank_among(s, 2, exclude=[0, 1]) == 2
    assert detg_heldout.rank_among(np.zeros(5), 0) == 5
    assert detg_catalog.relative_image_path("/data/root/gz1/a.jpg", "/data/root") == "gz1/a.jpg"
    assert detg_catalog.relative_image_path("/elsewhere/a.jpg", "/data/root") == "/elsewhere/a.jpg"


def _fake_real(tmp_path, n_smooth=30, n_other=10):
    """Tiny real set written as JPEGs: smooth blobs, a few discs, two 'dust-lane' examples."""
    rows, imgs = [], []
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:48, 0:48] - 24
    kinds = ["smooth"] * n_smooth + ["disk"] * n_other + ["dust", "dust"]
    (tmp_path / "data" / "imgs").mkdir(parents=True)
    for i, k in enumerate(kinds):
        q = 1.0 if k == "smooth" else 0.3
        g = np.exp(-0.5 * ((x / 6) ** 2 + (y / (6 * q)) ** 2))[..., None] * np.array([1.0, 0.8, 0.6])
        if k == "dust":
            g[22:26] *= 0.2
        arr = np.clip(230 * g + rng.normal(8, 3, g.shape), 0, 255).astype(np.uint8)
        path = tmp_path / "data" / "imgs" / f"r{i}.jpg"
        Image.fromarray(arr).save(path, quality=95)
        r = {c: np.nan for c in ANSWER_COLUMNS}
        r.update(id=f"r{i}", caption=k, source="gz2_examples", image_path=str(path))
        r["t01_smooth_or_features_a01_smooth"] = float(k == "smooth")
        r[DUST_LANE_COLUMN] = 1.0 if k == "dust" else np.nan
        rows.append(r)
        from galaxysd_core.data.decode import load_image
        imgs.append(load_image(path, 32, 0.5))
    return np.stack(imgs), pd.DataFrame(rows)


def test_heldout_examples_never_enter_training(tmp_path, monkeypatch):
    images, index = _fake_real(tmp_path)
    images, index = ds.real_pool([], data=(images, index))
    assert index["is_dust_lane"].sum() == 2 and index["is_etg"].sum() == 30
    synth = np.full((4, 32, 32, 3), 77, dtype=np.uint8)
    trained = []
    real_train = detg_heldout.train_detector

    def spy(pos, neg, st):
        trained.append((pos.copy(), neg.copy()))
        return real_train(pos, neg, st)

    monkeypatch.setattr(detg_heldout, "train_detector", spy)
    cfg = SearchConfig(n_negatives=10, heldout_seeds=[0],
                          detector=BinaryTrainSettings(steps=4, batch_size=8, channels=(4, 8), image_size=32,
                                                       balanced=True, augment=True))
    held = detg_heldout.heldout_evaluation(images, index, synth, cfg)
    # per seed: 2 x (synthetic+real, real only) + 1 synthetic only
    assert len(trained) == 5
    assert list(held["detector"]) == ["synthetic+real", "real only", "synthetic+real", "real only",
                                      "synthetic only", "synthetic only"]
    dust_ids = index["id"][index["is_dust_lane"]].tolist()
    id_of = {images[i].tobytes(): index["id"].iloc[i] for i in range(len(images))}
    for (pos, neg), (_, row) in zip([trained[0], trained[1], trained[2], trained[3], trained[4], trained[4]],
                                    held.iterrows()):
        pos_ids = {id_of.get(p.tobytes()) for p in pos} - {None}
        assert row["heldout_id"] not in pos_ids  # the held-out example never trains its detector
        assert row["heldout_id"] not in {id_of.get(p.tobytes()) for p in neg}
        assert row["train_pos_synthetic"] == (4 if row["detector"] != "real only" else 0)
        assert row["train_pos_real"] == (0 if row["detector"] == "synthetic only" else 1)
        assert 1 <= row["rank"] <= row["n_ranked"]
    assert set(held["heldout_id"]) == set(dust_ids)
    summary = detg_heldout.summarize_heldout(held)
    assert {"rank_median", "rank_best", "rank_worst"} <= set(summary.columns)


def test_run_search_writes_a_valid_sorted_catalog(tmp_path, monkeypatch):
    from tiny_models import build_tiny_pipeline

    images, index = _fake_real(tmp_path)
    cfg = SearchConfig(dust_weights=[1.0, 2.0], shapes=["completely round galaxy"], n_per_prompt=2,
                          num_inference_steps=2, n_negatives=12, heldout_seeds=[0], top_n=15,
                          detector=BinaryTrainSettings(steps=4, batch_size=8, channels=(4, 8), image_size=32,
                                                       balanced=True, augment=True))
    out = tmp_path / "out"
    from galaxysd_core.models.classifier import ClassifierConfig, MorphologyClassifier

    torch.manual_seed(0)
    judge = MorphologyClassifier(ClassifierConfig(feature_columns=[SMOOTH_COLUMN, ARTIFACT_COLUMN], channels=[4, 8],
                                                  image_size=16)).eval()
    res = ds.run_search([], cfg, pipe_factory=build_tiny_pipeline, model_id="tiny", model_path="tiny",
                        synthetic_cache=tmp_path / "syn", out_dir=out, data_dir=tmp_path / "data",
                        scan_kwargs={"batch_size": 8, "workers": 0}, log=lambda m: None,
                        data=(images, index), judge=judge)
    cat = pd.read_csv(out / "candidates.csv", dtype={"id": str})
    assert {"id", "score", "image_path", "rank", "p_dust_lane", "p_smooth", "p_artifact"} <= set(cat.columns)
    # D-ETG score: dust lane x early type (smooth and not a star or artifact)
    np.testing.assert_allclose(cat["score"], cat["p_dust_lane"] * cat["p_smooth"] * (1 - cat["p_artifact"]),
                               rtol=1e-4, atol=1e-6)
    assert "rank_detg" in res["heldout"].columns
    assert list(cat["score"]) == sorted(cat["score"], reverse=True) and list(cat["rank"]) == list(range(1, len(cat) + 1))
    assert len(cat) == 15
    # training members (the 12 negatives and both real positives) are not candidates
    assert not set(cat["id"]) & set(res["provenance"]["detector"]["real_positive_ids"])
    assert res["scan"]["used_in_training"].sum() == 14
    assert all(p.startswith("imgs/") for p in cat["image_path"])  # relative to the data folder
    # the Candidates page reads both files, resolving images against the data folder
    for name in ("candidates.csv", "candidates.ecsv"):
        c = read_candidates(out / name, images_dir=tmp_path / "data")
        assert len(c) == 15 and c.table["image_exists"].all()
    # the ECSV says its images live under $GALAXYSD_DATA_DIR: resolved from the environment by default
    monkeypatch.delenv("GALAXYSD_DATA_DIR", raising=False)
    ecsv = read_candidates(out / "candidates.ecsv")
    assert ecsv.needs_data_dir and not ecsv.table["image_exists"].any()
    monkeypatch.setenv("GALAXYSD_DATA_DIR", str(tmp_path / "data"))
    ecsv = read_candidates(out / "candidates.ecsv")
    assert not ecsv.needs_data_dir and ecsv.table["image_exists"].all()
    assert ecsv.meta["generator"]["dust_weights"] == [1.0, 2.0]
    assert ecsv.meta["generator"]["prompts"][1].endswith("{dust lane:2}")
    assert (out / "detector" / "model.safetensors").is_file() and (out / "heldout_ranks.csv").is_file()
    assert (out / "synthetic_detgs.png").is_file() and (out / "provenance.json").is_file()


def test_search_config_quick_and_overrides():
    quick = search_config(quick=True, top_n=7, steps=3, shapes=None)
    assert quick.dust_weights == [1.0, 2.0] and quick.top_n == 7 and quick.detector.steps == 3
    assert quick.detector.balanced and quick.shapes == ["completely round galaxy"]  # None keeps the value
    assert search_config().to_dict() == SearchConfig().to_dict()
    with pytest.raises(GalaxySDValueError):
        search_config(dust_weights=[5.0])
    with pytest.raises(GalaxySDValueError, match="no setting"):
        search_config(colour="red")


def test_scan_catalog_ranks_a_rescan_with_a_saved_detector(tmp_path, monkeypatch):
    from galaxysd_core.data.cache import PreparedDataset
    from galaxysd_core.models.classifier import ClassifierConfig, MorphologyClassifier

    _, index = _fake_real(tmp_path)
    torch.manual_seed(0)
    MorphologyClassifier(ClassifierConfig(feature_columns=[DUST_LANE_COLUMN], channels=[4, 8], image_size=16)
                         ).save_pretrained(tmp_path / "detector")

    class _Cache:  # what scan_catalog reads of a prepared cache: its index
        def __init__(self, idx):
            self.index = idx

    monkeypatch.setattr(PreparedDataset, "load", classmethod(lambda cls, folder: _Cache(index)))
    res, files = detg_catalog.scan_catalog(tmp_path / "detector", ["cache"], tmp_path / "out",
                                           data_dir=tmp_path / "data", top_n=5, progress=False,
                                           scan_kwargs={"batch_size": 8, "workers": 0})
    assert len(res.table) == len(index) and res.n_skipped == 0
    cat = pd.read_csv(files["csv"], dtype={"id": str})
    assert list(cat.columns) == ["id", "score", "rank", "image_path", "source"] and len(cat) == 5
    assert list(cat["score"]) == sorted(cat["score"], reverse=True)
    np.testing.assert_allclose(cat["score"], sorted(res.table["score"], reverse=True)[:5], rtol=1e-5)
    assert all(p.startswith("imgs/") for p in cat["image_path"])
    ecsv = read_candidates(files["ecsv"], images_dir=tmp_path / "data")
    assert ecsv.meta["note"].startswith("scan-only") and ecsv.table["image_exists"].all()
