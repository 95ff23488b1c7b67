"""The classifier trained on votes: vote columns in readers and caches, the Dirichlet-multinomial and
soft cross-entropy losses on tiny examples with known answers, partial trees, head probabilities read
from vote distributions, and a tiny vote classifier trained end to end."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from galaxysd_core.data.cache import COUNT_COLUMNS, FRACTION_COLUMNS, PreparedDataset, prepare_dataset
from galaxysd_core.data.catalog import read_catalog
from galaxysd_core.models.classifier import ClassifierConfig, MorphologyClassifier
from galaxysd_core.models.vote_heads import VoteLayout, beta_survival, head_probabilities, modelled_questions
from galaxysd_core.schema.captioning import answer_targets
from galaxysd_core.training.classifier_data import vote_targets
from galaxysd_core.training.vote_losses import dirichlet_multinomial_nll, masked_soft_cross_entropy, vote_loss

try:
    from test_readers import RING, SPIRAL, vote_row, write_jpeg
except ImportError:  # tests imported as a package
    from tests.test_readers import RING, SPIRAL, vote_row, write_jpeg

SMOOTH = "t01_smooth_or_features_a01_smooth"
FEATURES = "t01_smooth_or_features_a02_features_or_disk"
BAR = "t03_bar_a06_bar"


# --------------------------------------------------------------------------- loss on known answers

def test_dirichlet_multinomial_nll_matches_hand_computed_values():
    # alpha = (1, 1): every split of N = 3 votes into 2 answers is equally likely -> P = 1/4
    nll = dirichlet_multinomial_nll(torch.tensor([[2.0, 1.0]]), torch.tensor([[1.0, 1.0]]))
    assert float(nll[0]) == pytest.approx(math.log(4.0), abs=1e-5)
    # one vote: P(answer k) = alpha_k / sum(alpha) = 2/3
    nll = dirichlet_multinomial_nll(torch.tensor([[1.0, 0.0]]), torch.tensor([[2.0, 1.0]]))
    assert float(nll[0]) == pytest.approx(math.log(1.5), abs=1e-5)
    # N = 2 votes for answer 1 of 3, alpha = (1, 2, 3): P = 2!/(2!) * G(6)/G(8) * G(3)/G(1) = 2/42
    nll = dirichlet_multinomial_nll(torch.tensor([[2.0, 0.0, 0.0]]), torch.tensor([[1.0, 2.0, 3.0]]))
    assert float(nll[0]) == pytest.approx(-math.log(2.0 / 42.0), abs=1e-5)


def test_no_votes_cost_nothing_and_nan_counts_are_no_votes():
    alpha = torch.tensor([[3.0, 7.0], [5.0, 5.0]])
    nll = dirichlet_multinomial_nll(torch.tensor([[0.0, 0.0], [math.nan, math.nan]]), alpha)
    torch.testing.assert_close(nll, torch.zeros(2))


def test_dirichlet_multinomial_is_minimised_at_the_vote_fraction():
    counts = torch.tensor([[30.0, 10.0]])
    total = 60.0
    grid = torch.linspace(0.05, 0.95, 181)
    nll = torch.stack([dirichlet_multinomial_nll(counts, torch.tensor([[p * total, (1 - p) * total]]))[0]
                       for p in grid])
    assert float(grid[int(nll.argmin())]) == pytest.approx(0.75, abs=0.02)
    # and gradient descent on raw outputs finds it: many galaxies with 75 % "smooth" votes
    raw = torch.zeros(1, 3, requires_grad=True)
    layout = VoteLayout.for_heads([SMOOTH])
    counts3 = torch.tensor([[30.0, 10.0, 0.0]]).repeat(8, 1)
    opt = torch.optim.Adam([raw], lr=0.05)
    for _ in range(400):
        opt.zero_grad()
        vote_loss(raw.expand(8, 3), counts3, torch.full_like(counts3, math.nan), layout, "dirichlet").backward()
        opt.step()
    alpha = 1 + 99 * torch.sigmoid(raw.detach()[0])
    assert float(alpha[0] / alpha.sum()) == pytest.approx(0.75, abs=0.05)


def test_masked_soft_cross_entropy():
    logits = torch.log(torch.tensor([[0.75, 0.25], [0.5, 0.5], [0.9, 0.1]]))
    fractions = torch.tensor([[0.6, 0.2], [math.nan, math.nan], [0.0, 0.0]])  # normalised: (0.75, 0.25)
    loss, mask = masked_soft_cross_entropy(logits, fractions)
    expected = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert float(loss[0]) == pytest.approx(expected, abs=1e-5)
    assert mask.tolist() == [1.0, 0.0, 0.0] and loss[1:].abs().sum() == 0
    # too few votes: masked
    _, mask = masked_soft_cross_entropy(logits[:1], fractions[:1], counts=torch.tensor([[0.0, 0.0]]))
    assert mask.tolist() == [0.0]


# --------------------------------------------------------------------------- partial trees

def test_partial_tree_questions_are_masked_in_targets_and_loss():
    """t10/t11 absent (NaN votes) and an unreached question: no target, no loss, no gradient."""
    heads = ["t04_spiral_a08_spiral", "t10_arms_winding_a28_tight"]
    layout = VoteLayout.for_heads(heads)
    assert "t10_arms_winding" in layout.questions
    row = {c: answer_targets(["t04_spiral_a08_spiral"]).get(c, math.nan) for c in answer_targets([])}
    vote_cols = {}
    for col in layout.columns:
        q = col.split("_a")[0]
        asked = not q.startswith(("t10", "t11"))
        vote_cols[col + "_count"] = 10.0 if asked else math.nan
        vote_cols[col + "_fraction"] = 0.5 if asked else math.nan
    index = pd.DataFrame([{**row, **vote_cols}])
    counts, fractions = vote_targets(index, layout.columns)
    t10 = [i for i, c in enumerate(layout.columns) if c.startswith(("t10", "t11"))]
    assert np.isnan(counts[0, t10]).all() and np.isnan(fractions[0, t10]).all()  # never read as "no"
    raw = torch.zeros(1, len(layout.columns), requires_grad=True)
    for kind in ("dirichlet", "softmax"):
        raw.grad = None
        vote_loss(raw, torch.from_numpy(counts), torch.from_numpy(fractions), layout, kind).backward()
        assert raw.grad[0, t10].abs().sum() == 0
        assert raw.grad[0, [i for i in range(len(layout.columns)) if i not in t10]].abs().sum() > 0


def test_single_labels_become_one_hot_votes():
    layout = VoteLayout.for_heads([SMOOTH, "t02_edgeon_a04_yes"])
    index = pd.DataFrame([answer_targets(["t02_edgeon_a04_yes"])])  # a GZ1 edge-on: no vote columns
    counts, fractions = vote_targets(index, layout.columns, hard_label_votes=5)
    got = dict(zip(layout.columns, counts[0]))
    assert got[FEATURES] == 5 and got[SMOOTH] == 0 and got["t02_edgeon_a04_yes"] == 5
    assert got["t02_edgeon_a05_no"] == 0 and fractions[0, layout.columns.index(FEATURES)] == 1
    # a completed GZ1 negative (odd = 0, "nothing odd" unknown) answers t06 with "no"; a question with
    # several unknown answers left (t08: merger = 0 only) stays without votes
    layout = VoteLayout.for_heads(["t08_odd_feature_a24_merger"])
    row = {c: math.nan for c in answer_targets([])}
    row.update({SMOOTH: 1.0, FEATURES: 0.0, "t01_smooth_or_features_a03_star_or_artifact": 0.0,
                "t06_odd_a14_yes": 0.0, "t08_odd_feature_a24_merger": 0.0})
    counts, _ = vote_targets(pd.DataFrame([row]), layout.columns, hard_label_votes=5)
    got = dict(zip(layout.columns, counts[0]))
    assert got["t06_odd_a15_no"] == 5 and got["t06_odd_a14_yes"] == 0
    assert np.isnan(counts[0, [i for i, c in enumerate(layout.columns) if c.startswith("t08")]]).all()


# --------------------------------------------------------------------------- head probabilities

def test_beta_survival_known_values():
    a, b, x = torch.tensor([1.0, 2.0, 30.0]), torch.tensor([1.0, 1.0, 10.0]), torch.tensor([0.3, 0.5, 0.5])
    s = beta_survival(a, b, x)
    # Beta(1,1): 0.7; Beta(2,1) has cdf x^2: 0.75; Beta(30,10) mean 0.75, almost all mass above 0.5
    assert s.tolist() == pytest.approx([0.7, 0.75, 0.9995], abs=2e-3)


def test_head_probability_follows_the_tree():
    """A bar is only probable in a probable face-on disc; heads of gated questions use the gates."""
    layout = VoteLayout.for_heads([BAR])
    assert modelled_questions([BAR]) == ["t01_smooth_or_features", "t02_edgeon", "t03_bar"]
    cols = list(layout.columns)

    def alpha(features, not_edgeon, bar, smooth=1, no_bar=1):
        a = torch.ones(1, len(cols))
        a[0, cols.index("t03_bar_a07_no_bar")] = no_bar
        a[0, cols.index(SMOOTH)] = smooth
        a[0, cols.index(FEATURES)] = features
        a[0, cols.index("t02_edgeon_a05_no")] = not_edgeon
        a[0, cols.index(BAR)] = bar
        return a

    barred_disc = float(head_probabilities(alpha(90, 90, 90), layout)[0, 0])
    barred_elliptical = float(head_probabilities(alpha(1, 90, 90, smooth=90), layout)[0, 0])
    unbarred_disc = float(head_probabilities(alpha(90, 90, 1, no_bar=90), layout)[0, 0])
    assert barred_disc > 0.95 and barred_elliptical < 0.05 and unbarred_disc < 0.05
    # logits keep their order where probabilities round to 0 (ROC AUC on improbable features)
    from galaxysd_core.models.vote_heads import head_logits

    very = float(head_logits(alpha(1, 90, 90, smooth=100), layout)[0, 0])
    less = float(head_logits(alpha(1, 90, 90, smooth=40), layout)[0, 0])
    assert math.isfinite(very) and very < less < 0


def test_vote_classifier_forward_is_head_logits_and_round_trips(tmp_path):
    cfg = ClassifierConfig(feature_columns=[SMOOTH, BAR, "t08_odd_feature_a24_merger"], output="dirichlet",
                           channels=[4, 8], image_size=16)
    assert cfg.vote_columns[:3] == [SMOOTH, FEATURES, "t01_smooth_or_features_a03_star_or_artifact"]
    assert len(cfg.vote_columns) == 3 + 2 + 2 + 2 + 7  # t01, t02, t03, t06, t08
    model = MorphologyClassifier(cfg).eval()
    x = torch.rand(3, 3, 16, 16)
    assert model(x).shape == (3, 3) and model.vote_outputs(x).shape == (3, 16)
    p = model.predict_proba(x)
    assert float(p.min()) >= 0 and float(p.max()) <= 1
    fr = model.predict_fractions(x)
    torch.testing.assert_close(fr[:, :3].sum(1), torch.ones(3))
    model.save_pretrained(tmp_path)
    back = MorphologyClassifier.from_pretrained(tmp_path)
    assert back.config.output == "dirichlet" and back.config.vote_columns == cfg.vote_columns
    torch.testing.assert_close(back(x), model(x))
    with pytest.raises(Exception, match="do not match the heads"):
        ClassifierConfig(feature_columns=[SMOOTH], output="dirichlet", vote_columns=[SMOOTH])


def test_stem_stride_4_makes_128px_cost_like_64px():
    small = MorphologyClassifier(ClassifierConfig(image_size=64, stem_stride=2))
    big = MorphologyClassifier(ClassifierConfig(image_size=128, stem_stride=4))
    h64 = small.features(torch.zeros(1, 3, 64, 64))
    h128 = big.features(torch.zeros(1, 3, 128, 128))
    assert h64.shape == h128.shape == (1, 256, 4, 4)


# --------------------------------------------------------------------------- readers, cache, training

def test_vote_catalog_keeps_counts_and_fractions_in_the_cache(tmp_path):
    write_jpeg(tmp_path / "g1.jpg")
    write_jpeg(tmp_path / "g2.jpg", color=(90, 120, 220))
    ring, spiral = vote_row(RING), vote_row(SPIRAL)
    spiral[FEATURES + "_debiased"] = math.nan  # falls back to the weighted fraction
    cols = [c for c in ring if not c.startswith(("t10_", "t11_"))]  # a table without the arm questions
    pd.DataFrame([{"objid": "1", "filename": "g1.jpg", **{c: ring[c] for c in cols}},
                  {"objid": "2", "filename": "g2.jpg", **{c: spiral[c] for c in cols}}]).to_csv(
        tmp_path / "cat.csv", index=False)
    recs = read_catalog(tmp_path / "cat.csv")
    assert recs[0].votes["t08_odd_feature_a19_ring_count"] == round(0.7 * 30)
    assert recs[1].votes[FEATURES + "_fraction"] == pytest.approx(0.9)
    assert not any(k.startswith(("t10_", "t11_")) for k in recs[0].votes)
    prepare_dataset(recs, tmp_path / "cache", resolution=16, crop_fraction=1.0, show_progress=False)
    ds = PreparedDataset.load(tmp_path / "cache")
    assert ds.has_votes and ds.config["vote_columns"] is True
    counts, fractions = ds.votes()
    assert counts.shape == fractions.shape == (2, 37)
    ring_col = COUNT_COLUMNS.index("t08_odd_feature_a19_ring_count")
    assert counts[0, ring_col] == 21 and np.isnan(counts[:, COUNT_COLUMNS.index("t10_arms_winding_a28_tight_count")]).all()
    assert fractions[1, FRACTION_COLUMNS.index(FEATURES + "_fraction")] == pytest.approx(0.9)


def test_single_label_cache_has_no_vote_columns(tmp_path):
    write_jpeg(tmp_path / "a.jpg")
    pd.DataFrame({"dr7objid": ["1"], "filename": ["a.jpg"], "gz1_class_name": ["elliptical"]}).to_csv(
        tmp_path / "labels.csv", index=False)
    prepare_dataset(read_catalog(tmp_path / "labels.csv"), tmp_path / "c", resolution=8, show_progress=False)
    ds = PreparedDataset.load(tmp_path / "c")
    assert not ds.has_votes and np.isnan(ds.votes()[0]).all()


def test_tiny_vote_classifier_trains_end_to_end(tmp_path):
    """Images + vote counts -> fit_from_caches (dirichlet) -> a saved classifier that separates the toy classes."""
    from PIL import Image

    from galaxysd_core.evaluation.classifier_release import fit_from_caches
    from galaxysd_core.training.classifier import TrainSettings

    from tiny_models import write_toy_galaxies

    records = []
    for i, path, smooth, rng in write_toy_galaxies(tmp_path / "img", 64):
        n_smooth = int(rng.integers(25, 35)) if smooth else int(rng.integers(3, 10))
        votes = {SMOOTH + "_count": n_smooth, FEATURES + "_count": 40 - n_smooth,
                 "t01_smooth_or_features_a03_star_or_artifact_count": 0,
                 SMOOTH + "_fraction": n_smooth / 40, FEATURES + "_fraction": 1 - n_smooth / 40,
                 "t01_smooth_or_features_a03_star_or_artifact_fraction": 0.0}
        col = SMOOTH if smooth else FEATURES
        records.append({"id": f"g{i}", "image_path": str(path), "source": "toy_votes", "votes": votes,
                        "targets": answer_targets([col]), "caption": "sdss, smooth" if smooth else
                        "sdss, features or disk-shaped"})
    prepare_dataset(records, tmp_path / "cache", resolution=16, crop_fraction=1.0, show_progress=False)
    out = tmp_path / "clf"
    report = fit_from_caches([tmp_path / "cache"], out, output="dirichlet", image_size=16,
                             settings=TrainSettings(epochs=6, batch_size=16, learning_rate=2e-2, max_minutes=None),
                             min_positives=5, min_negatives=5, progress=False)
    assert report["history"]["loss_kind"] == "dirichlet" and report["history"]["loss"][-1] < report["history"]["loss"][0]
    model = MorphologyClassifier.from_pretrained(out)
    assert model.is_vote_model and model.feature_columns == [SMOOTH, FEATURES]
    metrics = pd.read_csv(out / "metrics.csv")
    assert (metrics["auc"] > 0.9).all()
    assert "Dirichlet-multinomial" in (out / "README.md").read_text()
    # the card can be rewritten from the stored report, with the metrics measured again (no training)
    from galaxysd_core.evaluation.classifier_release import refresh_card

    (out / "README.md").write_text("stale")
    refresh_card(out, reevaluate=True)
    assert "Dirichlet-multinomial" in (out / "README.md").read_text()
    assert pd.read_csv(out / "metrics.csv")["auc"].tolist() == pytest.approx(metrics["auc"].tolist(), abs=1e-6)


def test_shipped_classifier_v2_card_lists_every_head_against_the_goals():
    from pathlib import Path

    from galaxysd_core.config import DEFAULT_CLASSIFIER_DIR
    from galaxysd_core.evaluation.classifier_release import EXPERIMENTS_NAME, GOALS
    from galaxysd_core.schema.gz2 import ANSWER_BY_COLUMN

    folder = Path(DEFAULT_CLASSIFIER_DIR)
    if not (folder / "model.safetensors").is_file():
        pytest.skip("assets/classifier not trained yet (python train/train_classifier.py)")
    model = MorphologyClassifier.from_pretrained(folder)
    assert model.is_vote_model and len(model.feature_columns) >= 15
    card = (folder / "README.md").read_text()
    metrics = pd.read_csv(folder / "metrics.csv")
    assert metrics["column"].tolist() == model.feature_columns
    assert {"auc", "precision", "recall", "goal", "auc_reached"} <= set(metrics.columns)
    for phrase in model.feature_phrases:
        assert f"| {phrase} |" in card, phrase
    for col in GOALS:  # every goal is answered: met, short (with a reason) or no head
        assert ANSWER_BY_COLUMN[col].phrase in card
    if (metrics["meets_goal"] == False).any():  # noqa: E712 - CSV holds True/False/empty
        assert "falls short" in card
    arms = pd.read_csv(folder / EXPERIMENTS_NAME)["arm"].unique()
    assert len(arms) >= 2 and "Choice of loss and resolution" in card and "images/s" in card
