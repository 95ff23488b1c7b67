"""Tests of galaxysd_core.science.scan and scan_worker: decoding, scoring, skipped files, and engine equivalence
(local/dask/ray)."""
from __future__ import annotations

import importlib.util
import os

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from galaxysd_core.models.classifier import ClassifierConfig, MorphologyClassifier
from galaxysd_core.data.decode import GZ1_CROP_FRACTION, GZ2_CROP_FRACTION, load_image
from galaxysd_core.errors import GalaxySDDataError, GalaxySDValueError
from galaxysd_core.science.scan import ENGINES, records_from_index, scan
from galaxysd_core.science.scan_worker import decode_images, model_from_bytes, model_to_bytes, score_chunk

torch.set_num_threads(1)
RES = 16


def _blob_jpeg(path, seed: int, size: int = 96) -> None:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] - size / 2
    s = rng.uniform(4, 15)
    g = np.exp(-0.5 * ((x / s) ** 2 + (y / (s * rng.uniform(0.3, 1))) ** 2))[..., None] * rng.uniform(0.4, 1, 3)
    arr = np.clip(255 * g + rng.normal(10, 5, g.shape), 0, 255).astype(np.uint8)
    Image.fromarray(arr).save(path, quality=90)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("scan")
    (root / "imgs").mkdir()
    rows = []
    for i in range(7):
        _blob_jpeg(root / "imgs" / f"g{i}.jpg", i)
        rows.append({"id": f"g{i}", "image_path": f"imgs/g{i}.jpg", "source": "gz1_sdss" if i % 2 else "gz2"})
    (root / "imgs" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    rows.append({"id": "broken", "image_path": "imgs/broken.jpg", "source": "gz2"})
    rows.append({"id": "missing", "image_path": "imgs/nope.jpg", "source": "gz2"})
    return root, pd.DataFrame(rows)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return MorphologyClassifier(ClassifierConfig(feature_columns=["t08_odd_feature_a38_dust_lane"],
                                                 channels=[4, 8], image_size=RES)).eval()


def test_records_crop_and_paths(files):
    root, index = files
    rec = records_from_index(index, data_dir=root)
    assert list(rec["crop_fraction"][:2]) == [GZ2_CROP_FRACTION, GZ1_CROP_FRACTION]
    assert rec["file"][0] == str(root / "imgs/g0.jpg")
    assert records_from_index(index, crop_fraction=0.7)["crop_fraction"].eq(0.7).all()
    with pytest.raises(GalaxySDDataError, match="image_path"):
        records_from_index(index[["id"]])


def test_model_bytes_roundtrip(model):
    blob = model_to_bytes(model)
    again = model_from_bytes(blob)
    x = torch.rand(3, 3, RES, RES)
    with torch.no_grad():
        assert torch.allclose(model(x), again(x), atol=1e-6)
    assert again.config.feature_columns == model.config.feature_columns


def test_local_scan_matches_direct_inference_and_skips_bad_files(files, model):
    root, index = files
    rec = records_from_index(index, data_dir=root)
    res = scan(rec, model, batch_size=3, workers=0)
    t = res.table
    assert list(t["id"]) == list(index["id"])  # input order kept
    assert res.n_skipped == 2
    assert np.isnan(t.set_index("id").loc[["broken", "missing"], "score"]).all()
    assert "not found" in t.set_index("id").loc["missing", "skip_reason"]
    good = t[t["skip_reason"] == ""]
    imgs = np.stack([load_image(f, RES, c) for f, c in zip(good["file"], good["crop_fraction"])])
    direct = model.predict_proba(imgs)[:, 0].numpy()
    np.testing.assert_allclose(good["score"].to_numpy(), direct, atol=1e-6)
    assert res.rate > 0 and res.info["resolution"] == RES


def test_local_workers_and_batches_agree(files, model):
    root, index = files
    rec = records_from_index(index, data_dir=root)
    a = scan(rec, model, batch_size=2, workers=0).table["score"].to_numpy()
    b = scan(rec, model, batch_size=5, workers=2).table["score"].to_numpy()
    np.testing.assert_allclose(a, b, atol=1e-6, equal_nan=True)


def test_score_chunk_and_decode(files, model):
    root, index = files
    rec = records_from_index(index, data_dir=root)
    imgs, reasons = decode_images(rec["file"], rec["crop_fraction"], RES)
    assert imgs.shape == (len(rec), RES, RES, 3) and sum(bool(r) for r in reasons) == 2
    out = score_chunk(model_to_bytes(model), rec["file"].tolist(), rec["crop_fraction"].tolist(), RES)
    assert out["scores"].shape == (len(rec),) and np.isnan(out["scores"]).sum() == 2


def test_bad_engine_and_settings(files, model):
    root, index = files
    rec = records_from_index(index, data_dir=root)
    with pytest.raises(GalaxySDValueError, match="engine"):
        scan(rec, model, engine="spark")
    with pytest.raises(GalaxySDValueError, match="positive"):
        scan(rec, model, batch_size=0)
    with pytest.raises(GalaxySDValueError, match="records_from_index"):
        scan(index, model)
    assert ENGINES == ("local", "dask", "ray")


@pytest.fixture(scope="module")
def judge():
    """A tiny classifier v2 stand-in (vote outputs with smooth, artifact and t08 answers)."""
    torch.manual_seed(1)
    return MorphologyClassifier(ClassifierConfig(
        feature_columns=["t01_smooth_or_features_a01_smooth", "t01_smooth_or_features_a03_star_or_artifact",
                         "t08_odd_feature_a24_merger"], output="softmax", channels=[4, 8], image_size=16)).eval()


def test_scan_with_judge_adds_the_components_of_the_same_pixels(files, model, judge):
    from galaxysd_core.science.detg_components import COMPONENT_COLUMNS, component_probabilities

    root, index = files
    rec = records_from_index(index, data_dir=root)
    t = scan(rec, model, batch_size=3, workers=2, judge=judge).table
    assert set(COMPONENT_COLUMNS) <= set(t.columns)
    good = t[t["skip_reason"] == ""]
    imgs = np.stack([load_image(f, RES, c) for f, c in zip(good["file"], good["crop_fraction"])])
    np.testing.assert_allclose(good[list(COMPONENT_COLUMNS)].to_numpy(), component_probabilities(judge, imgs),
                               atol=1e-6)
    assert t.loc[t["skip_reason"] != "", list(COMPONENT_COLUMNS)].isna().all().all()
    assert "p_early" not in scan(rec, model, batch_size=3, workers=0).table.columns


def _engine_and_local_scores(files, model, engine: str, chunk_size: int, judge=None):
    """Scan with ``engine`` (one worker) and locally; the scores (and components) must agree."""
    from galaxysd_core.science.detg_components import COMPONENT_COLUMNS

    root, index = files
    rec = records_from_index(index, data_dir=root)
    local_t = scan(rec, model, batch_size=4, judge=judge).table
    local = local_t["score"].to_numpy()
    res = scan(rec, model, engine=engine, n_workers=1, chunk_size=chunk_size, batch_size=4, judge=judge)
    np.testing.assert_allclose(res.table["score"].to_numpy(), local, atol=1e-6, equal_nan=True)
    if judge is not None:
        cols = list(COMPONENT_COLUMNS)
        np.testing.assert_allclose(res.table[cols].to_numpy(), local_t[cols].to_numpy(), atol=1e-6, equal_nan=True)
    return res, local


@pytest.mark.skipif(importlib.util.find_spec("distributed") is None, reason="dask[distributed] not installed")
def test_dask_engine_gives_local_scores(files, model, judge):
    res, _ = _engine_and_local_scores(files, model, "dask", chunk_size=3, judge=judge)
    assert res.info["chunks"] == 3 and res.n_skipped == 2


@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="ray not installed")
def test_ray_engine_gives_local_scores(files, model, judge):
    res, local = _engine_and_local_scores(files, model, "ray", chunk_size=4, judge=judge)
    assert res.info["chunks"] == 3 and list(res.table["skip_reason"] != "") == list(local != local)


def test_scan_of_real_jpegs_equals_prepared_cache(shared_data, tmp_path):
    """The scan's decode is pixel-identical to the prepared cache (so cache-trained detectors transfer)."""
    from galaxysd_core.cli import main as cli_main
    from galaxysd_core.data.cache import PreparedDataset

    labels = shared_data("gz1_sdss/labels.csv")
    cache = tmp_path / "gz1_64"
    assert cli_main(["data", "prepare", "--source", "catalog", "--catalog", str(labels), "--limit", "5",
                     "--out", str(cache), "--resolution", "64", "--quiet"]) == 0
    ds = PreparedDataset.load(cache)
    rec = records_from_index(ds.index.iloc[:5])
    if not all(os.path.isfile(f) for f in rec["file"]):
        pytest.skip("cache image paths do not point at this machine's data")
    imgs, reasons = decode_images(rec["file"], rec["crop_fraction"], ds.resolution)
    assert not any(reasons)
    np.testing.assert_array_equal(imgs, ds.images[:5])
