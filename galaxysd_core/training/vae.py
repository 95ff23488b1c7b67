"""The VAE stage: train the AutoencoderKL of GalaxySD-mini and measure its latent normalisation.

Loss: L1 + MSE reconstruction plus a small KL term, on random dihedral transforms (and random
crops) of the training images. Afterwards the latent shift and scale are measured on the data so
latents have zero mean and unit variance (the role of Stable Diffusion's fixed 0.18215).

Under ``accelerate launch`` each process draws its own batches
(:func:`galaxysd_core.training.data.batch_generator`), so a step trains on
``vae_batch_size * num_processes`` images; only the main process writes the log and the final VAE.
Batches are read from the (lazy, sharded) images through a DataLoader
(:class:`~galaxysd_core.training.data.ImageBatches`), so memory does not grow with the data set.
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Callable, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from galaxysd_core.data.shards import take_rows
from galaxysd_core.models.mini import build_mini_components
from galaxysd_core.training.checkpoints import checkpoint_step, resolve_resume, save_checkpoint
from galaxysd_core.training.config import DiffusionTrainConfig
from galaxysd_core.training.data import ImageBatches, StepBatchSampler, batch_loader, to_unit_range
from galaxysd_core.training.schedules import seek_lr_scheduler, vae_lr_scheduler

logger = logging.getLogger(__name__)

#: Images (at most) on which the latent shift and scale are measured.
NORMALISATION_IMAGES = 2048


def _log_row(row: dict) -> None:
    logger.info("%s", json.dumps(row))


def train_vae(cfg: DiffusionTrainConfig, images, vae=None,
              log: Callable[[dict], None] = _log_row):
    """Train the AutoencoderKL; returns it with ``shift_factor`` and ``scaling_factor`` set.

    Parameters
    ----------
    cfg : DiffusionTrainConfig
        ``vae_*`` settings, ``seed``, ``mixed_precision``, checkpointing and resume settings.
    images : ShardedArray or numpy.ndarray
        uint8 ``(N, H, W, 3)`` training images (read a batch at a time).
    vae : AutoencoderKL, optional
        Start from this VAE (default: a fresh GalaxySD-mini VAE of ``cfg.model``).
    log : callable
        Receives a dict per checkpoint and a final one (default: this module's logger).

    The stage writes ``output_dir/vae_stage/`` (checkpoints and ``final/``, the trained VAE).
    """
    from accelerate import Accelerator
    from tqdm.auto import tqdm

    vae_dir = Path(cfg.output_dir) / "vae_stage"
    vae_dir.mkdir(parents=True, exist_ok=True)
    if vae is None:
        vae = build_mini_components(cfg.mini_config, seed=cfg.seed)["vae"]
    accelerator = Accelerator(mixed_precision=cfg.mixed_precision, project_dir=str(vae_dir))
    model = _VAEReconstruction(vae)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.vae_learning_rate, weight_decay=0.0)
    world, rank = accelerator.num_processes, accelerator.process_index
    lr_sched = vae_lr_scheduler(optimizer, cfg.vae_steps, world)
    model, optimizer, lr_sched = accelerator.prepare(model, optimizer, lr_sched)
    start = 0
    ckpt = resolve_resume(vae_dir, cfg.resume_from_checkpoint)
    if ckpt is not None:
        accelerator.load_state(str(ckpt))
        start = checkpoint_step(ckpt)
        seek_lr_scheduler(lr_sched, start, world)
    sampler = StepBatchSampler(cfg.seed, len(images), cfg.vae_batch_size, start, cfg.vae_steps,
                               num_processes=world, process_index=rank, per_batch_transform=True)
    batches = iter(batch_loader(ImageBatches(images), sampler, cfg.dataloader_num_workers))
    bar = tqdm(range(start, cfg.vae_steps), desc="VAE", disable=not accelerator.is_main_process)
    t0 = time.time()
    for step in bar:
        g, idx, _ = sampler.draw(step)  # the generator continues with the crop offsets
        rows, x = next(batches)
        assert torch.equal(rows, idx), "the DataLoader returned the batch of another step"
        if cfg.vae_crop and cfg.vae_crop < x.shape[-1]:
            oy, ox = (int(v) for v in torch.randint(0, x.shape[-1] - cfg.vae_crop + 1, (2,), generator=g))
            x = x[..., oy:oy + cfg.vae_crop, ox:ox + cfg.vae_crop]
        x = x.to(accelerator.device)
        with accelerator.autocast():
            rec, kl = model(x)
            loss_rec = F.l1_loss(rec, x) + F.mse_loss(rec, x)
            loss = loss_rec + cfg.vae_kl_weight * kl.mean()
        accelerator.backward(loss)
        accelerator.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        lr_sched.step()
        optimizer.zero_grad(set_to_none=True)
        bar.set_postfix(loss=f"{loss_rec.item():.4f}")
        if (step + 1) % cfg.checkpointing_steps == 0:
            save_checkpoint(accelerator, vae_dir, step + 1, cfg.checkpoints_total_limit)
            if accelerator.is_main_process:
                log({"stage": "vae", "step": step + 1, "loss_rec": float(loss_rec.item()),
                     "lr": float(lr_sched.get_last_lr()[0]), "wall_s": time.time() - t0})
    vae = accelerator.unwrap_model(model).vae.eval()
    # every process measures the same (DDP-synchronised) weights on the same images
    first = take_rows(images, np.arange(min(len(images), NORMALISATION_IMAGES)))  # lazy: read a batch at a time
    shift, scale = latent_normalisation(vae, first, device=accelerator.device)
    vae.register_to_config(shift_factor=shift, scaling_factor=scale)
    if accelerator.is_main_process:
        vae.save_pretrained(vae_dir / "final", safe_serialization=True)
        log({"stage": "vae", "done": True, "shift_factor": shift, "scaling_factor": scale, "wall_s": time.time() - t0,
             "final_loss_rec": float(loss_rec.item()) if cfg.vae_steps > start else None})
    accelerator.wait_for_everyone()
    return vae


@torch.no_grad()
def latent_normalisation(vae, images, batch_size: int = 256, device=None) -> Tuple[float, float]:
    """``(shift, scale)`` making the latent means of ``images`` zero-mean and unit-variance:
    ``(z - shift) * scale``. ``images``: a ``NCHW`` tensor in [-1, 1], or uint8 ``(N, H, W, 3)``
    images (an array or a lazy ShardedArray), converted a batch at a time (on ``device``)."""
    def batch(i: int) -> torch.Tensor:
        x = images[i:i + batch_size]
        x = x if isinstance(x, torch.Tensor) else to_unit_range(np.asarray(x))
        return x if device is None else x.to(device)

    z = torch.cat([vae.encode(batch(i)).latent_dist.mean for i in range(0, len(images), batch_size)])
    shift = float(z.mean())
    return shift, float(1.0 / (z - shift).std())


class _VAEReconstruction(torch.nn.Module):
    """encode -> sample -> decode as one forward, so DDP sees (and syncs) the whole graph."""

    def __init__(self, vae) -> None:
        super().__init__()
        self.vae = vae

    def forward(self, x: torch.Tensor):
        post = self.vae.encode(x).latent_dist
        return self.vae.decode(post.sample()).sample, post.kl()
