"""Training the morphology classifier: its loss, augmentation, learning-rate schedule and loop.

A classifier with ``output="sigmoid"`` learns 1/0/NaN targets per GZ2 answer
(:func:`galaxysd_core.schema.captioning.answer_targets`); NaN (question not answered) is masked out
of the loss (:func:`masked_bce_with_logits`) and positive labels are up-weighted by the class
balance ``n_neg / n_pos`` of each head (:func:`class_balance_pos_weight`). A vote classifier
(``output`` ``"dirichlet"`` or ``"softmax"``) learns the vote counts / fractions themselves
(:func:`galaxysd_core.training.vote_losses.vote_loss`, targets from
:func:`galaxysd_core.training.classifier_data.vote_targets`). Images are augmented with the 8 flips/90-degree rotations of
the square (:func:`dihedral_augment`; galaxy morphology does not depend on orientation, Dieleman
et al. 2015, MNRAS 450, 1441). AdamW follows a one-cycle schedule that also respects a wall-clock
budget (:func:`one_cycle_lr`).

Which labels and heads the classifier is trained on, and the fixed held-out split, are in
:mod:`galaxysd_core.training.classifier_data`; the network in :mod:`galaxysd_core.models.classifier`.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any, Dict, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from galaxysd_core._utils import dihedral
from galaxysd_core.errors import GalaxySDValueError
from galaxysd_core.models.classifier import ClassifierConfig, MorphologyClassifier, images_to_tensor
from galaxysd_core.training.vote_losses import vote_loss


# ----------------------------------------------------------------------------------------------
# loss and augmentation
# ----------------------------------------------------------------------------------------------
def masked_bce_with_logits(logits: torch.Tensor, targets: torch.Tensor,
                           pos_weight: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Binary cross-entropy over the known targets only.

    Parameters
    ----------
    logits, targets : torch.Tensor
        ``(N, K)``; targets are 1, 0 or NaN (unknown: the GZ2 question was not answered).
    pos_weight : torch.Tensor, optional
        ``(K,)`` weight of positive examples per head (class balance ``n_neg / n_pos``).

    Returns
    -------
    torch.Tensor
        Mean loss over the known entries (0 with a gradient when all are unknown).
    """
    if logits.shape != targets.shape:
        raise GalaxySDValueError(f"logits {tuple(logits.shape)} and targets {tuple(targets.shape)} differ")
    mask = ~torch.isnan(targets)
    safe = torch.where(mask, targets, torch.zeros_like(targets))
    loss = F.binary_cross_entropy_with_logits(logits, safe, pos_weight=pos_weight, reduction="none")
    return (loss * mask).sum() / mask.sum().clamp_min(1)


def class_balance_pos_weight(targets: np.ndarray, max_weight: float = 50.0) -> np.ndarray:
    """``n_neg / n_pos`` per column of a 1/0/NaN target matrix, clipped to [1/max, max]."""
    t = np.asarray(targets, dtype=float)
    pos = np.nansum(t == 1, axis=0).astype(float)
    neg = np.nansum(t == 0, axis=0).astype(float)
    w = neg / np.maximum(pos, 1.0)
    return np.clip(w, 1.0 / max_weight, max_weight)


def dihedral_augment(x: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Apply one of the 8 flips / 90-degree rotations of the square to every image at random.

    Parameters
    ----------
    x : torch.Tensor
        ``(N, C, H, W)`` batch with H == W.
    generator : torch.Generator, optional
        Source of randomness (for reproducible training).
    """
    ops = torch.randint(0, 8, (x.shape[0],), generator=generator)
    out = torch.empty_like(x)
    for op in range(8):
        idx = (ops == op).nonzero(as_tuple=True)[0]
        if idx.numel() == 0:
            continue
        out[idx] = dihedral(x[idx], op)
    return out


# ----------------------------------------------------------------------------------------------
# optimisation
# ----------------------------------------------------------------------------------------------
@dataclass
class TrainSettings:
    """Optimisation settings of :func:`train_classifier` (stored in the card and config.json).

    Parameters
    ----------
    epochs : int
        Passes over the training images.
    batch_size : int
        Images per step.
    learning_rate : float
        Peak AdamW learning rate (:func:`one_cycle_lr`).
    weight_decay : float
        AdamW weight decay.
    max_minutes : float or None
        Wall-clock budget of the optimisation loop; the learning-rate schedule follows the larger
        of step and time progress, so a run cut by the budget still ends annealed.
    seed : int
        Seed of initialisation, shuffling and augmentation.
    threads : int or None
        ``torch.set_num_threads`` for the run (None leaves the default).
    checkpoint_dir : str or None
        Folder where the model is saved (``save_pretrained``) after every epoch, so a long run
        that is stopped keeps its last epoch.
    """

    epochs: int = 6
    batch_size: int = 64
    learning_rate: float = 3e-3
    weight_decay: float = 1e-4
    max_minutes: Optional[float] = 9.0
    seed: int = 0
    threads: Optional[int] = None
    checkpoint_dir: Optional[str] = None

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


def one_cycle_lr(progress: float, peak: float, warmup: float = 0.1, floor: float = 0.01) -> float:
    """One-cycle learning rate (Smith & Topin 2019) at ``progress`` in [0, 1] of the run.

    Linear warm-up from ``floor * peak`` over the first ``warmup`` share, then cosine decay to
    ``floor * peak``. ``progress`` is the larger of the step share and the time-budget share, so a
    run cut by its wall-clock budget still ends annealed (own implementation: torch's OneCycleLR
    needs the number of steps in advance, which a time budget on a shared CPU cannot know).
    """
    p = min(max(float(progress), 0.0), 1.0)
    if p < warmup:
        return peak * (floor + (1.0 - floor) * p / warmup)
    q = (p - warmup) / (1.0 - warmup)
    return peak * (floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * q)))


def train_classifier(images: np.ndarray, targets: np.ndarray, config: ClassifierConfig,
                     settings: Optional[TrainSettings] = None, progress: bool = True,
                     votes: Optional[Tuple[np.ndarray, np.ndarray]] = None,
                     ) -> Tuple[MorphologyClassifier, Dict[str, Any]]:
    """Train a :class:`MorphologyClassifier` on uint8 images and 1/0/NaN targets or votes.

    Parameters
    ----------
    images : numpy.ndarray
        ``uint8 (N, H, W, 3)``; resized once to ``config.image_size`` when they differ.
    targets : numpy.ndarray
        ``(N, K)`` float, columns in ``config.feature_columns`` order (the loss of ``"sigmoid"``
        models; vote models only check the shape).
    config : ClassifierConfig
    settings : TrainSettings, optional
    progress : bool
        Show a tqdm progress bar.
    votes : (numpy.ndarray, numpy.ndarray), optional
        ``(counts, fractions)``, each ``(N, len(config.vote_columns))``: required for vote models.

    Returns
    -------
    model : MorphologyClassifier
        In eval mode.
    history : dict
        ``loss`` per epoch, ``steps``, ``wall_time_s``, ``pos_weight``, ``stopped_early``.
    """
    from tqdm.auto import tqdm

    settings = settings or TrainSettings()
    images = np.asarray(images)
    targets = np.asarray(targets, dtype=np.float32)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise GalaxySDValueError(f"training images must be uint8 (N, H, W, 3), got {images.dtype} {images.shape}")
    if targets.shape != (len(images), len(config.feature_columns)):
        raise GalaxySDValueError(
            f"targets shape {targets.shape} does not match {len(images)} images x "
            f"{len(config.feature_columns)} heads")
    vote_model = config.output != "sigmoid"
    if vote_model:
        if votes is None:
            raise GalaxySDValueError(f"a classifier with output {config.output!r} trains on votes; pass "
                                     f"votes=(counts, fractions) from classifier_data.vote_targets")
        counts_all, fractions_all = (torch.from_numpy(np.asarray(v, dtype=np.float32)) for v in votes)
        if counts_all.shape != (len(images), len(config.vote_columns)) or fractions_all.shape != counts_all.shape:
            raise GalaxySDValueError(f"votes shapes {tuple(counts_all.shape)} / {tuple(fractions_all.shape)} do not "
                                     f"match {len(images)} images x {len(config.vote_columns)} vote columns")
    from galaxysd_core._utils import resize_images

    images = resize_images(images, config.image_size)  # once, not per batch
    if settings.threads:
        torch.set_num_threads(int(settings.threads))
    torch.manual_seed(settings.seed)
    gen = torch.Generator().manual_seed(settings.seed)
    model = MorphologyClassifier(config)
    model.train()
    model.to(memory_format=torch.channels_last)  # ~30 % faster convolutions on CPU; weights unchanged
    pos_weight = torch.tensor(class_balance_pos_weight(targets), dtype=torch.float32)
    opt = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay)
    steps_per_epoch = math.ceil(len(images) / settings.batch_size)
    total_steps = max(1, steps_per_epoch * settings.epochs)
    x_all = torch.from_numpy(images)  # uint8, converted per batch to save memory
    y_all = torch.from_numpy(targets)
    history: Dict[str, Any] = {"loss": [], "steps": 0, "stopped_early": False, "loss_kind":
                               config.output if vote_model else "masked_bce", "pos_weight": pos_weight.tolist()}
    start = time.perf_counter()
    budget = None if settings.max_minutes is None else 60.0 * settings.max_minutes
    bar = tqdm(total=steps_per_epoch * settings.epochs, desc="classifier", disable=not progress)
    for epoch in range(settings.epochs):
        order = torch.randperm(len(images), generator=gen)
        total, count = 0.0, 0
        for i in range(0, len(images), settings.batch_size):
            idx = order[i:i + settings.batch_size]
            elapsed = time.perf_counter() - start
            progress_frac = history["steps"] / total_steps
            if budget is not None:
                progress_frac = max(progress_frac, elapsed / budget)
            if progress_frac >= 1.0:
                history["stopped_early"] = history["steps"] < total_steps
                break
            for group in opt.param_groups:
                group["lr"] = one_cycle_lr(progress_frac, settings.learning_rate)
            x = images_to_tensor(x_all[idx].permute(0, 3, 1, 2))
            x = dihedral_augment(x, gen).contiguous(memory_format=torch.channels_last)
            if vote_model:
                loss = vote_loss(model.vote_outputs(x), counts_all[idx], fractions_all[idx], model.layout,
                                 config.output)
            else:
                loss = masked_bce_with_logits(model(x), y_all[idx], pos_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
            count += len(idx)
            history["steps"] += 1
            bar.update(1)
            bar.set_postfix(epoch=epoch + 1, loss=f"{total / count:.4f}")
        if count:
            history["loss"].append(total / count)
            if settings.checkpoint_dir:
                model.to(memory_format=torch.contiguous_format)
                model.save_pretrained(settings.checkpoint_dir, extra_config={"checkpoint_epoch": epoch + 1,
                                                                             "loss": history["loss"]})
                model.train().to(memory_format=torch.channels_last)
        if history["stopped_early"]:
            break
    bar.close()
    history["epochs_run"] = round(history["steps"] / steps_per_epoch, 2)
    history["wall_time_s"] = time.perf_counter() - start
    model.to(memory_format=torch.contiguous_format)
    return model.eval(), history
