"""Known-answer tests of galaxysd_core.evaluation.metrics (distribution, physical, consistency)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from galaxysd_core.errors import GalaxySDValueError
from galaxysd_core.evaluation.metrics import (PAPER_REAL_CONSISTENCY, compare_physical, consistency_from_probs,
                                              distribution_metrics, domain_fd, domain_kid, light_profile_stats,
                                              physical_stats, prdc, prompted_features)


# ------------------------------------------------------------------------------- distribution
def exact_gaussian(n, mean, cov, seed):
    """Samples whose sample mean and (unbiased) covariance equal ``mean`` and ``cov`` exactly."""
    rng = np.random.default_rng(seed)
    d = len(mean)
    z = rng.normal(size=(n, d))
    z -= z.mean(0)
    z = z @ np.linalg.inv(np.linalg.cholesky(np.cov(z, rowvar=False))).T  # whiten to identity
    return z @ np.linalg.cholesky(cov).T + mean


def test_identical_sets_give_perfect_scores():
    x = np.random.default_rng(0).normal(size=(200, 8))
    res = prdc(x, x, k=5)
    assert res.precision == 1.0 and res.recall == 1.0 and res.coverage == 1.0
    assert res.density == pytest.approx(1.0, abs=0.15)
    assert domain_fd(x, x) == pytest.approx(0.0, abs=1e-8)
    # KID is an unbiased MMD^2 estimate: ~0 for two samples of one distribution, large when shifted
    y = np.random.default_rng(1).normal(size=(200, 8))
    assert abs(domain_kid(x, y, subsets=10, subset_size=200)[0]) < 0.05
    assert domain_kid(x, y + 0.5, subsets=10, subset_size=200)[0] > 0.5


def test_disjoint_sets_give_zero_precision_recall():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(100, 4))
    b = rng.normal(size=(100, 4)) + 100.0
    res = prdc(a, b, k=5)
    assert res.to_dict() == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0, "k": 5}
    assert domain_fd(a, b) > 1e4
    assert domain_kid(a, b, subsets=5, subset_size=50)[0] > 1.0


def test_half_overlap_precision():
    # the fake set is half copies of real points, half far away: precision = density-ish = 0.5
    rng = np.random.default_rng(2)
    real = rng.normal(size=(100, 3))
    fake = np.concatenate([real[:50], real[:50] + 1000.0])
    res = prdc(real, fake, k=3)
    assert res.precision == pytest.approx(0.5)
    assert res.coverage >= 0.5  # every copied real point lies in its own ball
    assert 0.3 < res.density < 0.9  # far half contributes 0


def gaussian_frechet(mu1, c1, mu2, c2):
    """Frechet distance of two Gaussians, written out with scipy's matrix square root (the reference
    the torchmetrics path of ``domain_fd`` is checked against)."""
    from scipy import linalg

    diff = np.asarray(mu1) - np.asarray(mu2)
    return float(diff @ diff + np.trace(c1) + np.trace(c2) - 2.0 * np.trace(np.real(linalg.sqrtm(c1 @ c2))))


def test_domain_fd_matches_analytic_value():
    mu1, mu2 = np.zeros(3), np.array([1.0, -2.0, 0.5])
    c1 = np.diag([1.0, 2.0, 0.5])
    c2 = np.diag([4.0, 0.5, 0.5])
    a, b = exact_gaussian(500, mu1, c1, 0), exact_gaussian(400, mu2, c2, 1)
    # |mu1 - mu2|^2 + sum (sqrt(s1) - sqrt(s2))^2 for commuting (diagonal) covariances
    analytic = 5.25 + (1 - 2) ** 2 + (math.sqrt(2) - math.sqrt(0.5)) ** 2 + 0.0
    assert gaussian_frechet(mu1, c1, mu2, c2) == pytest.approx(analytic, rel=1e-12)
    assert domain_fd(a, b) == pytest.approx(analytic, rel=1e-6)


def test_domain_fd_matches_scipy_for_correlated_covariances():
    # non-commuting covariances: Tr (S1 S2)^{1/2} has no per-axis closed form, so scipy's sqrtm is the reference
    c1 = np.array([[2.0, 0.8, 0.0], [0.8, 1.0, 0.3], [0.0, 0.3, 0.5]])
    c2 = np.array([[1.0, -0.4, 0.2], [-0.4, 3.0, 0.0], [0.2, 0.0, 0.7]])
    mu2 = np.array([0.5, 0.0, -1.0])
    expected = gaussian_frechet(np.zeros(3), c1, mu2, c2)
    per_axis = mu2 @ mu2 + np.sum((np.sqrt(np.diag(c1)) - np.sqrt(np.diag(c2))) ** 2)
    assert abs(expected - per_axis) > 0.1  # the off-diagonal terms matter here
    a, b = exact_gaussian(600, np.zeros(3), c1, 5), exact_gaussian(500, mu2, c2, 6)
    assert domain_fd(a, b) == pytest.approx(expected, rel=1e-6)


def test_shifted_gaussian_same_covariance():
    cov = np.array([[2.0, 0.3], [0.3, 1.0]])
    a = exact_gaussian(300, np.zeros(2), cov, 3)
    b = exact_gaussian(300, np.array([3.0, 4.0]), cov, 4)
    assert domain_fd(a, b) == pytest.approx(25.0, rel=1e-6)


def test_distribution_metrics_small_sets_lower_k_and_nan():
    rng = np.random.default_rng(5)
    out = distribution_metrics(rng.normal(size=(20, 4)), rng.normal(size=(4, 4)), k=5, kid_subsets=3)
    assert out["prdc_k"] == 3 and 0 <= out["precision"] <= 1
    out = distribution_metrics(rng.normal(size=(20, 4)), rng.normal(size=(1, 4)))
    assert math.isnan(out["precision"]) and math.isnan(out["domain_fd"])


def test_distribution_errors_are_actionable():
    with pytest.raises(GalaxySDValueError, match="at least k\\+1"):
        prdc(np.zeros((3, 2)), np.zeros((10, 2)), k=5)
    with pytest.raises(GalaxySDValueError, match="2-D"):
        domain_fd(np.zeros(5), np.zeros((5, 2)))
    with pytest.raises(GalaxySDValueError, match="NaN"):
        prdc(np.full((10, 2), np.nan), np.zeros((10, 2)))


# ------------------------------------------------------------------------------- physical
def blob(sigma, q=1.0, theta=0.0, n=64, amp=0.8, centre=None):
    c = (n - 1) / 2 if centre is None else centre
    y, x = np.mgrid[0:n, 0:n] - c
    xr = x * np.cos(theta) + y * np.sin(theta)
    yr = -x * np.sin(theta) + y * np.cos(theta)
    return amp * np.exp(-0.5 * ((xr / sigma) ** 2 + (yr / (sigma * q)) ** 2))


def sersic(r_e, n_s, n=64):
    c = (n - 1) / 2
    y, x = np.mgrid[0:n, 0:n] - c
    b = 2 * n_s - 1 / 3 + 4 / (405 * n_s)  # Ciotti & Bertin 1999
    img = np.exp(-b * ((np.hypot(x, y) / r_e) ** (1 / n_s) - 1))
    return 0.9 * img / img.max()


def rgb(gray):
    return np.stack([gray] * 3, axis=-1)


@pytest.mark.parametrize("sigma", [4.0, 6.0])
def test_gaussian_radius_and_concentration(sigma):
    st = light_profile_stats(rgb(blob(sigma)))
    assert st["r50"] == pytest.approx(sigma * math.sqrt(2 * math.log(2)), rel=0.02)
    # C = 5 log10(sqrt(ln 5 / -ln 0.8)) = 2.14 for a Gaussian
    assert st["concentration"] == pytest.approx(5 * math.log10(math.sqrt(math.log(5) / -math.log(0.8))), abs=0.05)
    assert abs(st["asymmetry"]) < 1e-3 and st["ellipticity"] < 1e-6


@pytest.mark.parametrize("q,theta", [(0.5, 0.0), (0.3, 0.7), (0.8, 2.0)])
def test_ellipticity_of_elliptical_gaussian(q, theta):
    st = light_profile_stats(rgb(blob(5.0, q, theta)))
    assert st["ellipticity"] == pytest.approx(1 - q, abs=0.01)


def test_sersic_concentration_orders_profiles():
    disc, bulge = light_profile_stats(rgb(sersic(6, 1))), light_profile_stats(rgb(sersic(6, 4)))
    assert disc["concentration"] == pytest.approx(2.7, abs=0.2)  # exponential disc
    assert bulge["concentration"] > disc["concentration"] + 1.0
    assert disc["r50"] == pytest.approx(6.0, rel=0.03)


def test_asymmetry_detects_companion_and_corrects_noise():
    rng = np.random.default_rng(0)
    noisy = rgb(blob(5.0) + 0.1) + rng.normal(0, 0.03, (64, 64, 3))
    assert abs(light_profile_stats(noisy)["asymmetry"]) < 0.05  # background term removes the noise
    lopsided = rgb(blob(5.0) + blob(2.0, centre=40.0, amp=0.5))
    assert light_profile_stats(lopsided)["asymmetry"] > 0.15


def test_colour_proxy_and_uint8_input():
    g = blob(5.0)
    img = np.stack([g * 0.5, g * 0.6, g * 0.4], axis=-1)
    assert light_profile_stats(img)["colour_gr"] == pytest.approx(-2.5 * math.log10(0.4 / 0.6), abs=1e-6)
    u8 = (img * 255).round().astype(np.uint8)
    assert light_profile_stats(u8)["colour_gr"] == pytest.approx(0.44, abs=0.02)


def test_blank_image_gives_nan_and_bad_shape_raises():
    st = light_profile_stats(np.zeros((32, 32, 3)))
    assert all(math.isnan(st[k]) for k in ("r50", "concentration", "ellipticity"))
    with pytest.raises(GalaxySDValueError, match="RGB"):
        light_profile_stats(np.zeros((32, 32, 4)))


def test_compare_physical_wasserstein():
    a = physical_stats(np.stack([rgb(blob(s)) for s in (3.0, 4.0, 5.0)]))
    b = physical_stats(np.stack([rgb(blob(s)) for s in (4.0, 5.0, 6.0)]))
    same = compare_physical(a, a)
    assert all(v == pytest.approx(0.0, abs=1e-12) for v in same.values())
    diff = compare_physical(a, b)
    assert diff["wasserstein_r50"] == pytest.approx(math.sqrt(2 * math.log(2)), rel=0.03)  # shift by 1 sigma unit


# ------------------------------------------------------------------------------- consistency
HEADS = ["smooth", "features or disk-shaped", "edge-on galaxy", "spiral galaxy", "merger"]


def test_prompted_features_skips_prefix_unknown_heads_and_zero_weight():
    feats = prompted_features("sdss, features or disk-shaped, {spiral galaxy:1.3}, {dust lane:1.5}, {merger:0}", HEADS)
    assert feats == {"features or disk-shaped": 1.0, "spiral galaxy": 1.3}


def test_consistency_known_values():
    probs = np.array([
        [0.9, 0.1, 0.1, 0.1, 0.1],  # smooth: seen
        [0.2, 0.1, 0.1, 0.1, 0.1],  # smooth: not seen
        [0.1, 0.8, 0.1, 0.7, 0.1],  # spiral prompt: both seen
        [0.1, 0.8, 0.1, 0.2, 0.1],  # spiral prompt: one of two
        [0.5, 0.5, 0.5, 0.5, 0.5],  # dust lane only: nothing checkable
    ])
    prompts = ["sdss, smooth"] * 2 + ["sdss, features or disk-shaped, spiral galaxy"] * 2 + ["sdss, dust lane"]
    res = consistency_from_probs(probs, HEADS, prompts)
    assert res.per_prompt["sdss, smooth"] == 0.5
    assert res.per_prompt["sdss, features or disk-shaped, spiral galaxy"] == 0.75
    assert math.isnan(res.per_prompt["sdss, dust lane"])
    assert res.overall == pytest.approx((1 + 0 + 1 + 0.5) / 4)
    assert res.n_checked == 4
    assert res.per_feature == {"smooth": 0.5, "features or disk-shaped": 1.0, "spiral galaxy": 0.5}
    assert res.to_dict()["per_prompt"]["sdss, dust lane"] is None
    assert PAPER_REAL_CONSISTENCY == 0.895


def test_consistency_checks_counts():
    with pytest.raises(GalaxySDValueError, match="one prompt per image"):
        consistency_from_probs(torch.zeros(3, 5), HEADS, ["sdss, smooth"] * 2)


def test_classifier_embedding_wrapper_matches_precomputed_features():
    from torchmetrics.image.fid import FrechetInceptionDistance

    from galaxysd_core.models.classifier import ClassifierConfig, MorphologyClassifier
    from galaxysd_core.evaluation.metrics import ClassifierEmbedding

    torch.manual_seed(0)
    clf = MorphologyClassifier(ClassifierConfig(channels=[4, 8], image_size=16)).eval()
    a, b = torch.rand(12, 3, 16, 16), torch.rand(12, 3, 16, 16) * 0.5
    fid = FrechetInceptionDistance(feature=ClassifierEmbedding(clf), normalize=True)
    fid.update(a, real=True)
    fid.update(b, real=False)
    expected = domain_fd(clf.embed_images(a).numpy(), clf.embed_images(b).numpy())
    assert float(fid.compute()) == pytest.approx(expected, rel=1e-4)
    assert not clf.training  # the wrapper keeps BatchNorm statistics frozen
