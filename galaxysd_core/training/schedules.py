"""Learning-rate schedules of the VAE and UNet stages (``torch.optim.lr_scheduler.LambdaLR``).

These are not ``diffusers.optimization.get_scheduler``: the shipped GalaxySD-mini was trained with
them, and they differ from diffusers' schedules in ways that change the learning rate at every
step: the linear warm-up reaches its peak at step ``warm - 1`` (``(s + 1) / warm`` instead of
``s / warm``, so step 0 is not wasted at lr 0) and the cosine spans the whole run, warm-up included
(diffusers starts it after the warm-up).
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from galaxysd_core.training.config import DiffusionTrainConfig

#: Warm-up steps of the VAE stage.
VAE_WARMUP_STEPS = 100


def warmup_cosine(warm: int, total: int) -> Callable[[int], float]:
    """Factor of the peak lr at step ``s``: linear warm-up over ``warm`` steps times a cosine decay
    from 1 to 0 over ``total`` steps (constant 0 after ``total``)."""
    return lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(s, total) / total))


def one_cycle(warm: int, total: int) -> Callable[[int], float]:
    """One-cycle factor (Smith & Topin 2019): cosine rise from 1/25 to 1 over the warm-up, cosine
    decay to 1e-4 after, as in GalaxySD's recipe (Ma, Sun et al. 2025 Sec. 2.2).

    torch's ``OneCycleLR`` divides by zero for very short runs and also cycles Adam's betas, which
    GalaxySD's recipe does not ask for.
    """
    def factor(s: int) -> float:
        if s < warm:
            return 1 / 25 + (1 - 1 / 25) * 0.5 * (1 - math.cos(math.pi * s / warm))
        frac = min(1.0, (s - warm) / max(1, total - warm))
        return 1e-4 + (1 - 1e-4) * 0.5 * (1 + math.cos(math.pi * frac))

    return factor


def make_lr_scheduler(cfg: DiffusionTrainConfig, optimizer) -> torch.optim.lr_scheduler.LambdaLR:
    """The UNet-stage schedule ``cfg.lr_scheduler`` over ``cfg.max_train_steps`` steps, with
    ``cfg.lr_warmup_steps`` warm-up steps (clipped to [1, max_train_steps])."""
    total = cfg.max_train_steps
    warm = max(1, min(cfg.lr_warmup_steps, total))
    if cfg.lr_scheduler == "one_cycle":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, one_cycle(warm, total))
    if cfg.lr_scheduler == "constant":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warm))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(warm, total))


def vae_lr_scheduler(optimizer, steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """The VAE-stage schedule: :data:`VAE_WARMUP_STEPS` warm-up steps, cosine decay over ``steps``."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(VAE_WARMUP_STEPS, steps))
