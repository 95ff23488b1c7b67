"""Training and scoring of one-head binary classifiers (the detectors of the science experiments).

Owns the binary focal loss (Lin et al. 2017), the batch schedule (natural proportions or
*oversampled* balanced batches), :class:`BinaryTrainSettings`, :func:`train_binary` (a fresh
one-head :class:`~galaxysd_core.models.classifier.MorphologyClassifier` on given arrays with a given
loss; :func:`galaxysd_core.training.classifier.train_classifier` always uses class-balanced BCE and
flips, which is exactly what the augmentation experiment must vary), :func:`predict_scores` and
the threshold and threshold-free metrics of :func:`binary_metrics`.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from galaxysd_core.errors import GalaxySDValueError
from galaxysd_core.science.vote_truth import DUST_LANE_COLUMN

__all__ = ["focal_loss_with_logits", "batch_schedule", "BinaryTrainSettings", "train_binary", "predict_scores",
           "binary_metrics"]


# ------------------------------------------------------------------------------------------- losses
def focal_loss_with_logits(logits, targets, gamma: float = 2.0, alpha: Optional[float] = None,
                           reduction: str = "mean"):
    """Binary focal loss (Lin et al. 2017, ICCV, "Focal Loss for Dense Object Detection").

    ``FL = -alpha_t (1 - p_t)^gamma log(p_t)``; with ``gamma = 0`` and ``alpha = None`` it is exactly
    the binary cross-entropy.

    Parameters
    ----------
    logits, targets : torch.Tensor
        Same shape; targets in {0, 1} (or soft labels in [0, 1]).
    gamma : float
        Focusing parameter (>= 0); down-weights well-classified examples.
    alpha : float, optional
        Weight of positives in (0, 1) (negatives get ``1 - alpha``); None: no class weighting.
    reduction : {"mean", "sum", "none"}
    """
    import torch
    import torch.nn.functional as F

    if gamma < 0:
        raise GalaxySDValueError(f"focal gamma must be >= 0, got {gamma}")
    if alpha is not None and not 0.0 < alpha < 1.0:
        raise GalaxySDValueError(f"focal alpha must be in (0, 1) or None, got {alpha}")
    if logits.shape != targets.shape:
        raise GalaxySDValueError(f"logits {tuple(logits.shape)} and targets {tuple(targets.shape)} differ")
    targets = targets.to(logits.dtype)
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    loss = ce
    if gamma != 0:
        p = torch.sigmoid(logits)
        p_t = p * targets + (1 - p) * (1 - targets)
        loss = ce * (1 - p_t).clamp_min(0) ** gamma
    if alpha is not None:
        loss = loss * (alpha * targets + (1 - alpha) * (1 - targets))
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise GalaxySDValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


# ------------------------------------------------------------------------------------------- sampling
def batch_schedule(labels: np.ndarray, steps: int, batch_size: int, rng: np.random.Generator,
                   balanced: bool = False, pos_fraction: float = 0.5, threshold: float = 0.5) -> np.ndarray:
    """Indices of every training batch, shape ``(steps, batch_size)``.

    Parameters
    ----------
    labels : numpy.ndarray
        Labels of the training set in [0, 1] (0/1, or soft labels such as vote fractions).
    balanced : bool
        False: epochs of shuffled examples in their natural proportion. True: *oversampling*:
        every batch holds ``round(pos_fraction * batch_size)`` positives (labels ``>= threshold``),
        drawn by cycling through reshuffled positives (each positive repeats about equally often),
        the rest negatives the same way.
    threshold : float
        Label at which an example counts as a positive for balancing (any value in (0, 1] for 0/1 labels).
    """
    labels = np.asarray(labels)
    n = len(labels)
    if n == 0 or steps < 1 or batch_size < 1:
        raise GalaxySDValueError(f"need a non-empty training set, steps >= 1 and batch_size >= 1 "
                                 f"(got n={n}, steps={steps}, batch_size={batch_size})")
    total = steps * batch_size

    def cycle(pool: np.ndarray, k: int) -> np.ndarray:
        reps = math.ceil(k / len(pool))
        return np.concatenate([rng.permutation(pool) for _ in range(reps)])[:k]

    if not balanced:
        return cycle(np.arange(n), total).reshape(steps, batch_size)
    pos, neg = np.flatnonzero(labels >= threshold), np.flatnonzero(labels < threshold)
    if len(pos) == 0 or len(neg) == 0:
        raise GalaxySDValueError("balanced batches need at least one positive and one negative example")
    k_pos = int(round(pos_fraction * batch_size))
    if not 0 < k_pos < batch_size:
        raise GalaxySDValueError(f"pos_fraction {pos_fraction} leaves no positives or no negatives per batch")
    p = cycle(pos, steps * k_pos).reshape(steps, k_pos)
    q = cycle(neg, steps * (batch_size - k_pos)).reshape(steps, batch_size - k_pos)
    out = np.concatenate([p, q], axis=1)
    return np.stack([rng.permutation(row) for row in out])


# ------------------------------------------------------------------------------------------- training
@dataclass
class BinaryTrainSettings:
    """Settings of :func:`train_binary` (all stored with the results).

    The default width (16-32-64-128-128 channels, 0.25 M parameters) is the shipped classifier's
    architecture at half width: on one shared CPU core it trains ~4x faster than the full width
    (0.98 M), which is what lets the whole experiment (>= 144 training runs) fit its 25-minute
    budget; every arm uses the same width and budget. ``stem_stride`` 4 reads a 128 px image at
    the cost of a 64 px one (:class:`~galaxysd_core.models.classifier.ClassifierConfig`).
    ``balance_threshold`` is the label from which an example counts as a positive for
    oversampled batches (soft labels: e.g. 0.25 of the vote fraction).
    """

    steps: int = 100
    batch_size: int = 32
    learning_rate: float = 3e-3
    weight_decay: float = 1e-4
    channels: Tuple[int, ...] = (16, 32, 64, 128, 128)
    image_size: int = 64
    dropout: float = 0.2
    stem_stride: int = 2
    balance_threshold: float = 0.5
    loss: str = "bce"
    focal_gamma: float = 2.0
    focal_alpha: Optional[float] = None
    balanced: bool = False
    augment: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        self.channels = tuple(int(c) for c in self.channels)
        if self.loss not in ("bce", "focal", "binomial"):
            raise GalaxySDValueError(f"loss must be 'bce', 'focal' or 'binomial', got {self.loss!r}")
        if self.steps < 1 or self.batch_size < 1:
            raise GalaxySDValueError("steps and batch_size must be positive")
        if not 0.0 < self.balance_threshold <= 1.0:
            raise GalaxySDValueError(f"balance_threshold must be in (0, 1], got {self.balance_threshold}")

    def to_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        d["channels"] = list(self.channels)
        return d


def train_binary(images: np.ndarray, labels: np.ndarray, settings: Optional[BinaryTrainSettings] = None,
                 column: str = DUST_LANE_COLUMN, progress: bool = False, trials: Optional[np.ndarray] = None):
    """Train a fresh one-head :class:`~galaxysd_core.models.classifier.MorphologyClassifier`.

    Parameters
    ----------
    images : numpy.ndarray
        ``uint8 (N, H, W, 3)``.
    labels : numpy.ndarray
        Labels in [0, 1]: 0/1, or soft labels (e.g. the share of volunteers who saw the feature),
        the BCE / focal-loss targets.
    settings : BinaryTrainSettings
        Loss (BCE or focal), batches (natural or balanced), flips/rotations, budget, width, seed.
    column : str
        GZ2 answer column naming the head (e.g. ``t08_odd_feature_a24_merger``).
    trials : numpy.ndarray, optional
        Number of votes per image for ``loss="binomial"``: ``labels`` are then the vote shares
        ``k / n`` and the loss is the binomial negative log-likelihood of ``k`` votes out of ``n``
        (``sum n BCE(logit, k/n) / sum n``, the vote-count likelihood of zoobot, Walmsley et al.
        2022, for one answer), so a galaxy seen by more volunteers weighs more.

    Returns
    -------
    model : MorphologyClassifier
        In eval mode.
    history : dict
        ``loss`` (mean per 10 % of the run), ``wall_time_s``, ``n_pos``, ``n_neg``.
    """
    import torch

    from galaxysd_core.models.classifier import ClassifierConfig, MorphologyClassifier, images_to_tensor
    from galaxysd_core.training.classifier import dihedral_augment, one_cycle_lr

    s = settings or BinaryTrainSettings()
    images = np.asarray(images)
    labels = np.asarray(labels, dtype=np.float32)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise GalaxySDValueError(f"training images must be uint8 (N, H, W, 3), got {images.dtype} {images.shape}")
    if labels.shape != (len(images),) or not (np.isfinite(labels).all() and (labels >= 0).all()
                                              and (labels <= 1).all()):
        raise GalaxySDValueError("labels must be one value in [0, 1] per image (0/1 or soft labels)")
    if s.loss == "binomial":
        if trials is None or np.asarray(trials).shape != labels.shape or not (np.asarray(trials) > 0).all():
            raise GalaxySDValueError("loss 'binomial' needs trials: the positive number of votes of every image")
    w_all = torch.from_numpy(np.asarray(trials if trials is not None else np.ones(len(labels)), dtype=np.float32))
    rng = np.random.default_rng(s.seed)
    torch.manual_seed(s.seed)
    gen = torch.Generator().manual_seed(s.seed)
    schedule = batch_schedule(labels, s.steps, s.batch_size, rng, balanced=s.balanced,
                              threshold=s.balance_threshold)
    config = ClassifierConfig(feature_columns=[column], channels=list(s.channels), image_size=s.image_size,
                              dropout=s.dropout, stem_stride=s.stem_stride)
    model = MorphologyClassifier(config)
    model.train().to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=s.learning_rate, weight_decay=s.weight_decay)
    x_all = torch.from_numpy(images)
    y_all = torch.from_numpy(labels)
    losses: List[float] = []
    window: List[float] = []
    every = max(1, s.steps // 10)
    start = time.perf_counter()
    it = range(s.steps)
    if progress:
        from tqdm.auto import tqdm
        it = tqdm(it, desc="train", leave=False)
    for step in it:
        for g in opt.param_groups:
            g["lr"] = one_cycle_lr(step / s.steps, s.learning_rate)
        idx = torch.from_numpy(schedule[step])
        x = images_to_tensor(x_all[idx].permute(0, 3, 1, 2))
        if s.augment:
            x = dihedral_augment(x, gen)
        x = x.contiguous(memory_format=torch.channels_last)
        logits = model(x)[:, 0]
        if s.loss == "focal":
            loss = focal_loss_with_logits(logits, y_all[idx], s.focal_gamma, s.focal_alpha)
        elif s.loss == "binomial":
            w = w_all[idx]
            loss = (focal_loss_with_logits(logits, y_all[idx], 0.0, None, reduction="none") * w).sum() / w.sum()
        else:
            loss = focal_loss_with_logits(logits, y_all[idx], 0.0, None)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        window.append(float(loss.detach()))
        if len(window) == every or step == s.steps - 1:
            losses.append(float(np.mean(window)))
            window = []
    model.to(memory_format=torch.contiguous_format)
    history = {"loss": losses, "wall_time_s": time.perf_counter() - start,
               "n_pos": int((labels >= s.balance_threshold).sum()),
               "n_neg": int((labels < s.balance_threshold).sum())}
    return model.eval(), history


def predict_scores(model, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Sigmoid of the first head for uint8 ``(N, H, W, 3)`` images (eval mode, inference mode,
    channels-last: the same code path as the scan, :func:`galaxysd_core.science.scan_worker.infer_scores`)."""
    import torch

    from galaxysd_core.science.scan_worker import infer_scores

    was = model.training
    model.eval().to(memory_format=torch.channels_last)
    try:
        return infer_scores(model, np.asarray(images), 0, batch_size)
    finally:
        model.to(memory_format=torch.contiguous_format).train(was)


def binary_metrics(labels: np.ndarray, scores: np.ndarray, threshold: float = 0.5) -> Dict[str, float]:
    """Purity (precision), completeness (recall), F1, average precision and ROC AUC.

    Precision is 0 (not undefined) when nothing is predicted positive, so an arm that never
    fires scores F1 = 0; ``n_pred`` tells how many were predicted positive.
    """
    from sklearn.metrics import average_precision_score, f1_score, precision_score, recall_score, roc_auc_score

    y = np.asarray(labels).astype(int)
    s = np.asarray(scores, dtype=float)
    pred = (s >= threshold).astype(int)
    both = 0 < y.sum() < len(y)
    return {
        "precision": float(precision_score(y, pred, zero_division=0)),
        "recall": float(recall_score(y, pred, zero_division=0)),
        "f1": float(f1_score(y, pred, zero_division=0)),
        "ap": float(average_precision_score(y, s)) if both else float("nan"),
        "auc": float(roc_auc_score(y, s)) if both else float("nan"),
        "n_pos": int(y.sum()), "n_neg": int(len(y) - y.sum()), "n_pred": int(pred.sum()),
    }
