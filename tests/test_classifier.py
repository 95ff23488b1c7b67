"""Tests of the morphology classifier (galaxysd_core.models.classifier, training.classifier,
training.classifier_data, evaluation.classifier_release): shapes, persistence, loss, split, training
on toy data."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from galaxysd_core.config import DEFAULT_CLASSIFIER_DIR
from galaxysd_core.errors import GalaxySDDataError, GalaxySDFileError, GalaxySDValueError
from galaxysd_core.evaluation.classifier_release import evaluate_classifier
from galaxysd_core.models.classifier import (CONFIG_NAME, DEFAULT_FEATURE_COLUMNS, WEIGHTS_NAME, ClassifierConfig,
                                             MorphologyClassifier, images_to_tensor)
from galaxysd_core.training.classifier import (TrainSettings, class_balance_pos_weight, dihedral_augment,
                                               masked_bce_with_logits, one_cycle_lr, train_classifier)
from galaxysd_core.training.classifier_data import (SPLIT_NAME, complete_exclusive_negatives, fixed_test_split,
                                                    select_heads)

SMALL = dict(channels=[4, 8], image_size=16)


@pytest.fixture(scope="module")
def clf():
    torch.manual_seed(0)
    return MorphologyClassifier(ClassifierConfig(**SMALL)).eval()


def test_shapes_and_resizing(clf):
    k = len(DEFAULT_FEATURE_COLUMNS)
    for size in (16, 32, 50):
        x = torch.rand(3, 3, size, size)
        assert clf(x).shape == (3, k)
        assert clf.embed(x).shape == (3, clf.embedding_dim) == (3, 8)
    p = clf.predict_proba(np.random.default_rng(0).integers(0, 255, (5, 20, 20, 3), dtype=np.uint8), batch_size=2)
    assert p.shape == (5, k) and float(p.min()) >= 0 and float(p.max()) <= 1
    assert clf.embed_images(torch.rand(0, 3, 16, 16)).shape == (0, 8)
    # v2 heads (18, one per answer with >= 30 majority positives); dust lane (26) has none
    assert clf.head_index("edge-on galaxy") == DEFAULT_FEATURE_COLUMNS.index("t02_edgeon_a04_yes")
    assert clf.head_index("t03_bar_a06_bar") == 9 and clf.head_index("dust lane") is None


def test_default_architecture_size():
    model = MorphologyClassifier()
    n = sum(p.numel() for p in model.parameters())
    assert 0.5e6 < n < 1.25e6  # <= 5 MB of float32 weights
    assert model.embedding_dim == 256


def test_input_errors(clf):
    with pytest.raises(GalaxySDValueError, match="N, 3, H, W"):
        clf(torch.rand(2, 1, 16, 16))
    with pytest.raises(GalaxySDValueError, match="N, H, W, 3"):
        images_to_tensor(np.zeros((2, 16, 16, 4), dtype=np.uint8))
    with pytest.raises(GalaxySDValueError, match="unknown GZ2 answer"):
        ClassifierConfig(feature_columns=["t99_nothing"])


def test_images_to_tensor_uint8_and_layout():
    arr = np.full((2, 4, 4, 3), 255, dtype=np.uint8)
    x = images_to_tensor(arr)
    assert x.shape == (2, 3, 4, 4) and x.dtype == torch.float32 and float(x.max()) == 1.0


def test_save_load_round_trip(clf, tmp_path):
    clf.save_pretrained(tmp_path, extra_config={"note": "test", "value": float("nan")})
    assert {p.name for p in tmp_path.iterdir()} >= {CONFIG_NAME, WEIGHTS_NAME, "README.md"}
    back = MorphologyClassifier.from_pretrained(tmp_path)
    x = torch.rand(2, 3, 16, 16)
    torch.testing.assert_close(back(x), clf(x))
    torch.testing.assert_close(back.embed(x), clf.embed(x))
    assert back.feature_phrases == clf.feature_phrases
    assert json.loads((tmp_path / CONFIG_NAME).read_text())["training"]["value"] is None  # NaN -> null


def test_load_errors_name_the_file(clf, tmp_path):
    with pytest.raises(GalaxySDFileError, match="does not exist"):
        MorphologyClassifier.from_pretrained(tmp_path / "nope")
    clf.save_pretrained(tmp_path)
    (tmp_path / WEIGHTS_NAME).write_bytes(b"not a safetensors file")
    with pytest.raises(GalaxySDFileError, match="model.safetensors"):
        MorphologyClassifier.from_pretrained(tmp_path)
    (tmp_path / WEIGHTS_NAME).unlink()
    with pytest.raises(GalaxySDFileError, match="no model.safetensors"):
        MorphologyClassifier.from_pretrained(tmp_path)
    clf.save_pretrained(tmp_path)
    (tmp_path / CONFIG_NAME).write_text("{broken")
    with pytest.raises(GalaxySDFileError, match="config.json"):
        MorphologyClassifier.from_pretrained(tmp_path)
    # weights of another architecture
    MorphologyClassifier(ClassifierConfig(channels=[4, 8, 8], image_size=16)).save_pretrained(tmp_path)
    cfg = json.loads((tmp_path / CONFIG_NAME).read_text())
    cfg["channels"] = [4, 8]
    (tmp_path / CONFIG_NAME).write_text(json.dumps(cfg))
    with pytest.raises(GalaxySDFileError, match="do not match"):
        MorphologyClassifier.from_pretrained(tmp_path)


def test_masked_bce_ignores_unknown_targets():
    logits = torch.tensor([[2.0, -1.0], [0.5, 3.0]], requires_grad=True)
    targets = torch.tensor([[1.0, float("nan")], [0.0, float("nan")]])
    loss = masked_bce_with_logits(logits, targets)
    expected = (math.log1p(math.exp(-2.0)) + math.log1p(math.exp(0.5))) / 2
    assert float(loss.detach()) == pytest.approx(expected, rel=1e-6)
    loss.backward()
    assert logits.grad[:, 1].abs().sum() == 0  # no gradient through unknown targets
    all_nan = masked_bce_with_logits(torch.zeros(2, 2, requires_grad=True), torch.full((2, 2), float("nan")))
    assert float(all_nan.detach()) == 0.0
    pw = masked_bce_with_logits(logits.detach(), targets, pos_weight=torch.tensor([3.0, 1.0]))
    assert float(pw) == pytest.approx((3 * math.log1p(math.exp(-2.0)) + math.log1p(math.exp(0.5))) / 2, rel=1e-6)


def test_class_balance_pos_weight():
    t = np.array([[1, 0], [0, np.nan], [0, 1], [0, np.nan]], dtype=float)
    np.testing.assert_allclose(class_balance_pos_weight(t), [3.0, 1.0])


def test_dihedral_augment_is_a_symmetry():
    x = torch.arange(2 * 16, dtype=torch.float32).reshape(2, 1, 4, 4).repeat(50, 1, 1, 1)
    y = dihedral_augment(x, torch.Generator().manual_seed(0))
    for i in range(len(x)):
        assert any(torch.equal(torch.rot90(torch.flip(x[i], (-1,)) if f else x[i], k, (-2, -1)), y[i])
                   for f in (0, 1) for k in range(4))
    assert len({tuple(y[i].flatten().tolist()) for i in range(0, 100, 2)}) > 4  # several ops drawn


def test_fixed_split_deterministic_and_stratified():
    ids = [str(i) for i in range(200)]
    strata = ["common"] * 180 + ["rare"] * 17 + ["tiny"] * 3
    a = fixed_test_split(ids, strata, 0.15)
    b = fixed_test_split(ids[::-1], strata[::-1], 0.15)[::-1]
    assert np.array_equal(a, b)  # independent of order
    assert a[:180].sum() == 27 and a[180:197].sum() == 3 and a[197:].sum() == 1
    with pytest.raises(GalaxySDValueError):
        fixed_test_split(ids, strata, 1.5)


def test_complete_exclusive_negatives_and_select_heads():
    cols = list(DEFAULT_FEATURE_COLUMNS)
    rows = []
    for i in range(40):
        merger = i < 10
        rows.append({"id": str(i), "caption": "x", "source": "gz1_sdss",
                     **{c: np.nan for c in cols},
                     "t01_smooth_or_features_a01_smooth": np.nan if merger else 1.0,
                     "t08_odd_feature_a24_merger": 1.0 if merger else np.nan})
    rows.append({"id": "gz2", "caption": "x", "source": "gz2_examples", **{c: np.nan for c in cols}})
    index = pd.DataFrame(rows)
    done = complete_exclusive_negatives(index)
    assert done["t08_odd_feature_a24_merger"].iloc[:40].tolist() == [1.0] * 10 + [0.0] * 30
    assert math.isnan(done["t08_odd_feature_a24_merger"].iloc[40])  # other sources untouched
    assert math.isnan(index["t08_odd_feature_a24_merger"].iloc[20])  # input not modified
    heads = select_heads(done, min_positives=10, min_negatives=10)
    assert "t08_odd_feature_a24_merger" in heads
    with pytest.raises(GalaxySDDataError, match="--min-positives"):
        select_heads(done, min_positives=1000)


def test_one_cycle_lr_shape():
    assert one_cycle_lr(0.0, 1.0) == pytest.approx(0.01)
    assert one_cycle_lr(0.1, 1.0) == pytest.approx(1.0)
    assert one_cycle_lr(1.0, 1.0) == pytest.approx(0.01)
    assert one_cycle_lr(0.5, 1.0) < one_cycle_lr(0.3, 1.0)


def test_training_learns_a_toy_feature():
    # "smooth" = bright centre, "features" = dark: a separable toy problem
    rng = np.random.default_rng(0)
    n = 96
    label = rng.integers(0, 2, n)
    imgs = rng.integers(0, 60, (n, 16, 16, 3)).astype(np.uint8)
    imgs[label == 1, 5:11, 5:11] = 220
    targets = np.stack([label, 1 - label], axis=1).astype(np.float32)
    targets[::7, 1] = np.nan  # unknown labels are allowed
    cfg = ClassifierConfig(feature_columns=list(DEFAULT_FEATURE_COLUMNS[:2]), **SMALL)
    model, hist = train_classifier(imgs, targets, cfg, TrainSettings(epochs=4, batch_size=32, learning_rate=2e-2,
                                                                     max_minutes=None), progress=False)
    assert hist["steps"] == 12 and hist["loss"][-1] < hist["loss"][0]
    metrics = evaluate_classifier(model, imgs, targets)
    assert list(metrics.columns[:4]) == ["column", "phrase", "n_pos", "n_neg"]
    assert (metrics["auc"] > 0.95).all()


def test_shipped_classifier_card():
    folder = Path(DEFAULT_CLASSIFIER_DIR)
    if not (folder / WEIGHTS_NAME).is_file():
        pytest.skip("assets/classifier not trained yet (python train/train_classifier.py)")
    model = MorphologyClassifier.from_pretrained(folder)
    assert sum(p.stat().st_size for p in folder.iterdir()) <= 5 * 2**20
    assert model.feature_phrases[:2] == ["smooth", "features or disk-shaped"]
    card = (folder / "README.md").read_text()
    assert "ROC AUC" in card and "precision" in card
    split = pd.read_csv(folder / SPLIT_NAME, dtype={"id": str})
    assert {"id", "caption"} <= set(split.columns) and split["id"].is_unique
    assert (split["caption"] == "sdss, merger").sum() >= 5  # rare classes are in the held-out set
    metrics = pd.DataFrame(model.training_info["metrics"])
    assert (metrics["auc"] > 0.7).all()  # every head well above chance (0.5) on held-out images


def test_legacy_config_without_stem_stride_keeps_its_architecture():
    cfg = ClassifierConfig(**SMALL).to_dict()
    assert cfg["stem_stride"] == 2
    del cfg["stem_stride"]
    assert ClassifierConfig.from_dict(cfg).stem_stride == 1


def test_fit_from_caches_saves_a_documented_classifier(tmp_path):
    from galaxysd_core.data.cache import prepare_dataset
    from galaxysd_core.evaluation.classifier_release import fit_from_caches
    from galaxysd_core.schema.captioning import answer_targets
    from galaxysd_core.training.classifier_data import load_test_ids

    from tiny_models import write_toy_galaxies

    records = []
    for i, path, smooth, _ in write_toy_galaxies(tmp_path / "img", 40):
        col = "t01_smooth_or_features_a01_smooth" if smooth else "t01_smooth_or_features_a02_features_or_disk"
        records.append({"id": f"g{i}", "image_path": str(path), "source": "synthetic", "targets": answer_targets([col]),
                        "caption": "sdss, smooth" if smooth else "sdss, features or disk-shaped"})
    prepare_dataset(records, tmp_path / "cache", resolution=16, crop_fraction=1.0, show_progress=False)
    out = tmp_path / "clf"
    report = fit_from_caches([tmp_path / "cache"], out, settings=TrainSettings(epochs=1, batch_size=16, max_minutes=None),
                             min_positives=5, min_negatives=5, progress=False)
    assert report["n_train"] + report["n_test"] == 40 and report["n_test"] == 6  # 15 % of each caption group
    assert [r["column"] for r in report["metrics"]] == ["t01_smooth_or_features_a01_smooth",
                                                        "t01_smooth_or_features_a02_features_or_disk"]
    assert {"config.json", "model.safetensors", "README.md", SPLIT_NAME, "metrics.csv"} <= {p.name for p in out.iterdir()}
    assert len(load_test_ids(out)) == report["n_test"]
    model = MorphologyClassifier.from_pretrained(out)
    assert model.training_info["versions"]["torch"] == torch.__version__
    card = (out / "README.md").read_text()
    assert "ROC AUC" in card and "| smooth |" in card and "galaxysd_core/evaluation/metrics" in card
