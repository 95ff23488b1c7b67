"""Distribution metrics of generated vs real galaxies in the classifier's embedding space.

* Improved precision and recall (Kynkaanniemi et al. 2019, NeurIPS, arXiv:1904.06991): the share
  of generated samples inside the real manifold (k-NN balls around real samples) and vice versa.
* Density and coverage (Naeem et al. 2020, ICML, arXiv:2002.09797): a outlier-robust precision
  (how many real balls contain a generated sample, divided by k) and the share of real balls
  that contain at least one generated sample.
* Frechet distance (Heusel et al. 2017) and kernel distance (KID, Binkowski et al. 2018), computed
  with :mod:`torchmetrics` on the embedding of :class:`~galaxysd_core.models.classifier.MorphologyClassifier`
  instead of Inception-v3. They are *domain* metrics, reported as ``domain_fd`` / ``domain_kid``:
  their values are not comparable to ImageNet-Inception FID/KID numbers from the literature.

Features are computed once per image set and shared by all metrics: torchmetrics' metrics accept a
custom feature ``nn.Module``; we give them :class:`PrecomputedFeatures` (an identity with
``num_features``) fed with embeddings, so the CNN runs once instead of three times.
:class:`ClassifierEmbedding` is the image-level wrapper for callers that want torchmetrics to call
the classifier itself (it gives the same numbers).

PRDC is implemented here (about 30 lines) because neither torchmetrics nor scikit-learn has it and
the reference package (``prdc``, clovaai/generative-evaluation-prdc) is not a dependency; the code
follows the reference implementation, with strict ``<`` comparisons against the k-th neighbour
distance (the point itself excluded).
"""
from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from typing import Dict, Tuple

import numpy as np
import torch
from torch import nn

from galaxysd_core.errors import GalaxySDValueError

#: Default neighbourhood size of precision/recall/density/coverage (Naeem et al. 2020 use k=5).
DEFAULT_K = 5
#: Default KID settings: number of random subsets and largest subset size (Binkowski et al. 2018
#: use 100 subsets of 1000; 50 keep the cost on 2 CPU cores low at a small loss of stability).
DEFAULT_KID_SUBSETS = 50
DEFAULT_KID_SUBSET_SIZE = 1000
#: Rows of the distance matrix computed at once (bounds memory at ~chunk x N x 8 bytes).
_CHUNK = 1024


def _as_features(x, name: str) -> np.ndarray:
    arr = np.asarray(x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else x, dtype=np.float64)
    if arr.ndim != 2:
        raise GalaxySDValueError(f"{name} features must be a 2-D array (n_samples, n_features), got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise GalaxySDValueError(f"{name} features contain NaN or infinite values")
    return arr


def _pairwise(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    from sklearn.metrics import pairwise_distances

    return pairwise_distances(a, b, metric="euclidean", n_jobs=1)


def kth_neighbour_distances(features: np.ndarray, k: int = DEFAULT_K) -> np.ndarray:
    """Distance of every sample to its k-th nearest neighbour in the same set (itself excluded)."""
    from sklearn.neighbors import NearestNeighbors

    x = _as_features(features, "input")
    if k < 1 or k >= len(x):
        raise GalaxySDValueError(
            f"k={k} nearest neighbours need at least k+1={k + 1} samples, got {len(x)}; "
            f"generate more images or lower k")
    nn_ = NearestNeighbors(n_neighbors=k + 1).fit(x)
    dist, _ = nn_.kneighbors(x)
    return dist[:, k]


@dataclass
class PRDC:
    """Precision, recall, density and coverage (all in [0, 1] except density, ~1 when matched)."""

    precision: float
    recall: float
    density: float
    coverage: float
    k: int

    def to_dict(self) -> Dict[str, float]:
        return asdict(self)


def prdc(real_features, fake_features, k: int = DEFAULT_K) -> PRDC:
    """Precision/recall (Kynkaanniemi et al. 2019) and density/coverage (Naeem et al. 2020).

    Parameters
    ----------
    real_features, fake_features : array_like
        ``(n_real, d)`` and ``(n_fake, d)`` embeddings.
    k : int
        Neighbourhood size; each set needs more than ``k`` samples.

    Returns
    -------
    PRDC

    Notes
    -----
    With ``r_i`` the k-NN radius of real sample ``i`` and ``f_j`` that of fake sample ``j``:
    precision = mean_j [exists i: d(i, j) < r_i]; recall = mean_i [exists j: d(i, j) < f_j];
    density = mean_j (1/k) #{i: d(i, j) < r_i}; coverage = mean_i [min_j d(i, j) < r_i].
    """
    real = _as_features(real_features, "real")
    fake = _as_features(fake_features, "fake")
    if real.shape[1] != fake.shape[1]:
        raise GalaxySDValueError(f"real ({real.shape[1]}) and fake ({fake.shape[1]}) feature sizes differ")
    r_real = kth_neighbour_distances(real, k)
    r_fake = kth_neighbour_distances(fake, k)
    in_real_balls = np.zeros(len(fake), dtype=np.int64)   # per fake: number of real balls containing it
    real_covered = np.zeros(len(real), dtype=bool)        # per real: nearest fake inside own ball
    real_in_fake = np.zeros(len(real), dtype=bool)        # per real: inside some fake ball
    for s in range(0, len(real), _CHUNK):
        d = _pairwise(real[s:s + _CHUNK], fake)           # (chunk, n_fake)
        inside = d < r_real[s:s + _CHUNK, None]
        in_real_balls += inside.sum(axis=0)
        real_covered[s:s + _CHUNK] = d.min(axis=1) < r_real[s:s + _CHUNK]
        real_in_fake[s:s + _CHUNK] = (d < r_fake[None, :]).any(axis=1)
    return PRDC(precision=float(np.mean(in_real_balls > 0)), recall=float(np.mean(real_in_fake)),
                density=float(np.mean(in_real_balls) / k), coverage=float(np.mean(real_covered)), k=int(k))


class PrecomputedFeatures(nn.Module):
    """Identity "feature extractor" for torchmetrics' FID/KID, fed with ready embeddings."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = int(num_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class ClassifierEmbedding(nn.Module):
    """Wrap :meth:`MorphologyClassifier.embed` as a torchmetrics feature extractor.

    Use with ``FrechetInceptionDistance(feature=ClassifierEmbedding(clf), normalize=True)`` and
    float images in [0, 1]; the classifier is kept in eval mode.
    """

    def __init__(self, classifier: nn.Module) -> None:
        super().__init__()
        self.classifier = classifier.eval()
        self.num_features = int(classifier.embedding_dim)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.classifier.eval()
        return self.classifier.embed(x)

    def train(self, mode: bool = True) -> "ClassifierEmbedding":  # keep BatchNorm statistics frozen
        super().train(mode)
        self.classifier.eval()
        return self


def domain_fd(real_features, fake_features) -> float:
    """Frechet distance in the classifier space with torchmetrics' ``FrechetInceptionDistance``.

    ``|mu_1 - mu_2|^2 + Tr(S_1 + S_2 - 2 (S_1 S_2)^{1/2})`` between Gaussians fitted to the two
    embedding sets (Dowson & Landau 1982; Heusel et al. 2017), with unbiased sample covariances.
    """
    from torchmetrics.image.fid import FrechetInceptionDistance

    real = torch.as_tensor(_as_features(real_features, "real"))
    fake = torch.as_tensor(_as_features(fake_features, "fake"))
    if len(real) < 2 or len(fake) < 2:
        raise GalaxySDValueError("the domain FD needs at least 2 samples in each set")
    metric = FrechetInceptionDistance(feature=PrecomputedFeatures(real.shape[1]), normalize=True)
    metric.update(real, real=True)
    metric.update(fake, real=False)
    return float(metric.compute())


def domain_kid(real_features, fake_features, subsets: int = DEFAULT_KID_SUBSETS,
               subset_size: int = DEFAULT_KID_SUBSET_SIZE, seed: int = 0) -> Tuple[float, float]:
    """KID (mean, std over subsets) in the classifier space with torchmetrics.

    The subset size is ``min(subset_size, n_real, n_fake)``; subsets are drawn with a fixed
    ``seed`` (the global torch RNG is restored afterwards) so tables are reproducible.
    """
    from torchmetrics.image.kid import KernelInceptionDistance

    real = torch.as_tensor(_as_features(real_features, "real"))
    fake = torch.as_tensor(_as_features(fake_features, "fake"))
    m = min(int(subset_size), len(real), len(fake))
    if m < 2:
        raise GalaxySDValueError("the domain KID needs at least 2 samples in each set")
    with warnings.catch_warnings():  # "will save all extracted features": intended, features are small
        warnings.simplefilter("ignore", UserWarning)
        metric = KernelInceptionDistance(feature=PrecomputedFeatures(real.shape[1]), subsets=int(subsets),
                                         subset_size=m, normalize=True)
    metric.update(real, real=True)
    metric.update(fake, real=False)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        mean, std = metric.compute()
    return float(mean), float(std)


def distribution_metrics(real_features, fake_features, k: int = DEFAULT_K,
                         kid_subsets: int = DEFAULT_KID_SUBSETS,
                         kid_subset_size: int = DEFAULT_KID_SUBSET_SIZE, seed: int = 0) -> Dict[str, float]:
    """All distribution metrics for two embedding sets, as a flat dict for a table row.

    ``k`` is lowered to ``min(k, n_real - 1, n_fake - 1)`` for small sets (reported as
    ``prdc_k``); metrics that cannot be computed at all are NaN.

    Returns
    -------
    dict
        ``precision, recall, density, coverage, prdc_k, domain_fd, domain_kid, domain_kid_std,
        n_real, n_fake``.
    """
    real = _as_features(real_features, "real")
    fake = _as_features(fake_features, "fake")
    out: Dict[str, float] = {"n_real": len(real), "n_fake": len(fake)}
    k_eff = min(int(k), len(real) - 1, len(fake) - 1)
    if k_eff >= 1:
        out.update(prdc(real, fake, k_eff).to_dict())
        out["prdc_k"] = out.pop("k")
    else:
        out.update(precision=np.nan, recall=np.nan, density=np.nan, coverage=np.nan, prdc_k=0)
    if len(real) >= 2 and len(fake) >= 2:
        out["domain_fd"] = domain_fd(real, fake)
        out["domain_kid"], out["domain_kid_std"] = domain_kid(real, fake, kid_subsets, kid_subset_size, seed)
    else:
        out.update(domain_fd=np.nan, domain_kid=np.nan, domain_kid_std=np.nan)
    return out
