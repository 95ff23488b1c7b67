"""Learning-rate schedules of the VAE and UNet stages (``torch.optim.lr_scheduler.LambdaLR``).

These are not ``diffusers.optimization.get_scheduler``: the shipped GalaxySD-mini was trained with
them, and they differ from diffusers' schedules in ways that change the learning rate at every
step: the linear warm-up reaches its peak at step ``warm - 1`` (``(s + 1) / warm`` instead of
``s / warm``, so step 0 is not wasted at lr 0) and the cosine spans the whole run, warm-up included
(diffusers starts it after the warm-up).

Several processes: ``accelerator.prepare`` wraps a scheduler in ``AcceleratedScheduler``, which
(with ``split_batches=False``) steps it ``num_processes`` times per optimizer step. diffusers'
``examples/text_to_image/train_text_to_image.py`` therefore builds its schedules over
``max_train_steps * num_processes`` steps with ``lr_warmup_steps * num_processes`` warm-up steps.
Here the schedule spans the same ``max_train_steps * num_processes`` scheduler steps, but each
factor is evaluated at the optimizer step ``s // num_processes`` (:func:`per_optimizer_step`):
scaling the step counts alone is exact for ``s / warm`` but not for our ``(s + 1) / warm`` warm-up
(measured, cosine, 200 warm-up steps: 2 processes start at 0.25 % of the peak lr instead of 0.5 %,
8 processes at 0.0625 %), so the learning rate at every optimizer step is the 1-process one.
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


def per_optimizer_step(factor: Callable[[int], float], num_processes: int) -> Callable[[int], float]:
    """``factor`` of the optimizer step, for a scheduler stepped ``num_processes`` times per
    optimizer step (accelerate's prepared scheduler): ``s -> factor(s // num_processes)``."""
    if num_processes == 1:
        return factor  # the 1-process schedule object itself: bit-identical to earlier runs
    return lambda s: factor(s // num_processes)


def make_lr_scheduler(cfg: DiffusionTrainConfig, optimizer, num_processes: int = 1
                      ) -> torch.optim.lr_scheduler.LambdaLR:
    """The UNet-stage schedule ``cfg.lr_scheduler`` over ``cfg.max_train_steps`` optimizer steps, with
    ``cfg.lr_warmup_steps`` warm-up steps (clipped to [1, max_train_steps]).

    Parameters
    ----------
    cfg : DiffusionTrainConfig
    optimizer : torch.optim.Optimizer
    num_processes : int
        ``accelerator.num_processes``: the schedule is to be ``accelerator.prepare``-d, which steps
        it that many times per optimizer step (see the module docstring).
    """
    total = cfg.max_train_steps
    warm = max(1, min(cfg.lr_warmup_steps, total))
    if cfg.lr_scheduler == "one_cycle":
        factor = one_cycle(warm, total)
    elif cfg.lr_scheduler == "constant":
        factor = lambda s: min(1.0, (s + 1) / warm)  # noqa: E731
    else:
        factor = warmup_cosine(warm, total)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, per_optimizer_step(factor, num_processes))


def vae_lr_scheduler(optimizer, steps: int, num_processes: int = 1) -> torch.optim.lr_scheduler.LambdaLR:
    """The VAE-stage schedule: :data:`VAE_WARMUP_STEPS` warm-up steps, cosine decay over ``steps``
    optimizer steps; ``num_processes`` as in :func:`make_lr_scheduler`."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, per_optimizer_step(warmup_cosine(VAE_WARMUP_STEPS, steps), num_processes))


def seek_lr_scheduler(scheduler, optimizer_step: int, num_processes: int) -> None:
    """Put a resumed (``accelerator.prepare``-d) LambdaLR schedule at ``optimizer_step``.

    A checkpoint stores the scheduler's own step count, ``optimizer_step * num_processes`` of the
    run that saved it; resuming with another number of processes would otherwise continue the
    schedule at the wrong optimizer step. A no-op when the count already matches.
    """
    inner = getattr(scheduler, "scheduler", scheduler)  # accelerate's AcceleratedScheduler wraps it
    target = optimizer_step * num_processes
    if inner.last_epoch != target:
        inner.last_epoch = target - 1
        inner.step()  # recomputes every group's lr for last_epoch = target
