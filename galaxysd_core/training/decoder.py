"""The decoder stage: fine-tune the VAE decoder alone with a spectral loss, for sharper galaxies.

Why: an 8x VAE trained with a pixel loss (L1 + MSE) decodes the mean of everything finer than a
latent cell, and its reconstructions of real cutouts carry about 5 % of the real power at 3-6 px
(the middle third of the spatial frequencies, where spiral arms, bars and dust lanes live;
:mod:`galaxysd_core.evaluation.sharpness`). A pixel loss cannot fix this: detail whose position is
not fixed by the latent is cheapest to leave out. A loss on the *amplitude* of the Fourier
transform does not care where that detail sits, only that it is there, so the decoder learns to
draw detail of the right strength at each frequency and orientation (the focal-frequency idea of
Jiang et al. 2021, ICCV, "Focal Frequency Loss for Image Reconstruction and Synthesis"; here an L1
on log amplitudes, which weighs every frequency alike instead of the strongest ones).

Only the decoder (and ``post_quant_conv``) change: the encoder, the latent shift and scale and so
the UNet's latents stay valid, and a released model gets the new decoder without retraining its
UNet. The loss is ``L1 + MSE + spectral_weight x spectral_loss`` on random crops under random
dihedral transforms, as the VAE stage (:mod:`galaxysd_core.training.vae`) draws them.

Owns :class:`DecoderFinetuneConfig`, :func:`spectral_loss` and :func:`finetune_decoder`.
"""
from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, List, Optional

import torch
import torch.nn.functional as F

from galaxysd_core.errors import GalaxySDFileError, GalaxySDValueError
from galaxysd_core.training.checkpoints import checkpoint_step, resolve_resume, save_checkpoint
from galaxysd_core.training.data import ImageBatches, StepBatchSampler, batch_loader

logger = logging.getLogger(__name__)

__all__ = ["DecoderFinetuneConfig", "spectral_loss", "finetune_decoder", "CONFIG_FILE"]

#: The settings of a decoder fine-tune, saved next to its model (and its checkpoints).
CONFIG_FILE = "decoder_finetune.json"


@dataclass
class DecoderFinetuneConfig:
    """Settings of :func:`finetune_decoder`.

    Attributes
    ----------
    pretrained_model : str
        GalaxySD model folder whose decoder is fine-tuned (its other components are copied as they are).
    output_dir : str
        Run folder: ``checkpoint-<step>`` folders and ``model/`` (the full model with the new VAE).
    caches : list of str
        Prepared caches of training images (``galaxysd data prepare``), at the model's resolution
        (not needed when :func:`finetune_decoder` is given the images).
    exclude_ids_from : str, optional
        A classifier folder whose held-out test ids are left out (as the UNet stage does).
    steps, batch_size, learning_rate, crop : int, int, float, int
        Optimizer steps, images per step, AdamW learning rate (cosine decay after 50 warm-up
        steps) and the side in px of the random crop trained on (0: whole images).
    spectral_weight : float
        Weight of :func:`spectral_loss` against the pixel loss (0: pixel loss only).
    seed, checkpointing_steps, checkpoints_total_limit, num_threads : int
    """

    pretrained_model: str
    output_dir: str
    caches: List[str] = field(default_factory=list)
    exclude_ids_from: Optional[str] = None
    steps: int = 1500
    batch_size: int = 16
    learning_rate: float = 2e-4
    crop: int = 64
    spectral_weight: float = 0.1
    seed: int = 0
    checkpointing_steps: int = 250
    checkpoints_total_limit: int = 2
    num_threads: int = 0

    def __post_init__(self) -> None:
        if int(self.steps) < 1 or int(self.batch_size) < 1:
            raise GalaxySDValueError(f"steps and batch_size must be >= 1, got {self.steps} and {self.batch_size}")
        if not float(self.learning_rate) > 0:
            raise GalaxySDValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        if float(self.spectral_weight) < 0:
            raise GalaxySDValueError(f"spectral_weight must be >= 0, got {self.spectral_weight}")
        if int(self.crop) < 0:
            raise GalaxySDValueError(f"crop must be 0 (whole images) or a side in px, got {self.crop}")

    def save(self, path) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=1) + "\n")


def spectral_loss(reconstruction: torch.Tensor, target: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """Mean absolute difference of the log Fourier amplitudes of two ``NCHW`` image batches.

    Phase-free: detail of the right strength at the right frequency and orientation costs nothing
    wherever it sits, so the loss does not reward blur as a pixel loss does (module docstring).

    Parameters
    ----------
    reconstruction, target : torch.Tensor
        Images of the same shape, values in [-1, 1].
    eps : float
        Floor of the amplitude (orthonormal FFT; the images' sky noise sits near 0.03).

    Returns
    -------
    torch.Tensor
        A scalar: 0 for identical amplitude spectra.
    """
    if reconstruction.shape != target.shape:
        raise GalaxySDValueError(f"shapes differ: {tuple(reconstruction.shape)} and {tuple(target.shape)}")
    fr = torch.fft.rfft2(reconstruction.float(), norm="ortho").abs()
    ft = torch.fft.rfft2(target.float(), norm="ortho").abs()
    return (torch.log(fr + eps) - torch.log(ft + eps)).abs().mean()


class _Decode(torch.nn.Module):
    """The trained part (``post_quant_conv`` + decoder) as one module for accelerate."""

    def __init__(self, vae) -> None:
        super().__init__()
        self.vae = vae

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.vae.decode(z).sample


def _training_images(cfg: DecoderFinetuneConfig):
    from galaxysd_core.training.config import DiffusionTrainConfig
    from galaxysd_core.training.data import load_training_data

    if not cfg.caches:
        raise GalaxySDValueError("no training images: give at least one prepared cache (galaxysd data prepare ...)")
    images, _, _, _ = load_training_data(DiffusionTrainConfig(caches=list(cfg.caches),
                                                              exclude_ids_from=cfg.exclude_ids_from,
                                                              output_dir=cfg.output_dir), show_progress=False)
    return images


def finetune_decoder(cfg: DecoderFinetuneConfig, images=None,
                     log: Optional[Callable[[dict], None]] = None, show_progress: bool = True) -> Path:
    """Fine-tune the decoder of ``cfg.pretrained_model``; resumable from the run's last checkpoint.

    Parameters
    ----------
    cfg : DecoderFinetuneConfig
    images : ShardedArray or numpy.ndarray, optional
        uint8 ``(N, H, W, 3)`` training images (default: those of ``cfg.caches``).
    log : callable, optional
        Receives a dict per checkpoint and a final one (default: this module's logger).

    Returns
    -------
    pathlib.Path
        ``output_dir/model``: the pretrained folder with the fine-tuned VAE and ``decoder_finetune.json``.

    Raises
    ------
    GalaxySDFileError
        If the pretrained folder has no VAE.
    """
    from accelerate import Accelerator
    from diffusers import AutoencoderKL
    from tqdm.auto import tqdm

    log = log or (lambda row: logger.info("%s", json.dumps(row)))
    if cfg.num_threads:
        torch.set_num_threads(int(cfg.num_threads))
    src = Path(cfg.pretrained_model)
    if not (src / "vae" / "config.json").is_file():
        raise GalaxySDFileError(f"{str(src)!r} has no vae/ folder: give a GalaxySD or Stable Diffusion model folder")
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg.save(out / CONFIG_FILE)
    images = _training_images(cfg) if images is None else images

    vae = AutoencoderKL.from_pretrained(src / "vae", use_safetensors=True)
    vae.requires_grad_(False)
    vae.eval()  # no dropout; the encoder stays frozen and its latents those the UNet was trained on
    trained = list(vae.decoder.parameters()) + list(vae.post_quant_conv.parameters())
    for p in trained:
        p.requires_grad_(True)
    factor = 2 ** (len(vae.config.block_out_channels) - 1)  # px per latent cell
    if cfg.crop % factor:
        raise GalaxySDValueError(f"crop must be a multiple of {factor} px (the VAE's downsampling), got {cfg.crop}")
    model = _Decode(vae)
    accelerator = Accelerator(project_dir=str(out))
    optimizer = torch.optim.AdamW(trained, lr=float(cfg.learning_rate), weight_decay=0.0)
    from diffusers.optimization import get_scheduler

    lr_sched = get_scheduler("cosine", optimizer, num_warmup_steps=min(50, cfg.steps // 10),
                             num_training_steps=int(cfg.steps))
    model, optimizer, lr_sched = accelerator.prepare(model, optimizer, lr_sched)
    start = 0
    ckpt = resolve_resume(out, "latest")
    if ckpt is not None:
        accelerator.load_state(str(ckpt))
        start = checkpoint_step(ckpt)
    sampler = StepBatchSampler(cfg.seed, len(images), cfg.batch_size, start, cfg.steps, per_batch_transform=True)
    batches = iter(batch_loader(ImageBatches(images), sampler))
    bar = tqdm(range(start, cfg.steps), desc="decoder", disable=not show_progress)
    t0 = time.time()
    row = {}
    for step in bar:
        g, idx, _ = sampler.draw(step)
        rows, x = next(batches)
        if cfg.crop and cfg.crop < x.shape[-1]:
            oy, ox = (int(v) for v in torch.randint(0, x.shape[-1] - cfg.crop + 1, (2,), generator=g))
            oy, ox = oy - oy % factor, ox - ox % factor  # on the latent grid: whole latent cells
            x = x[..., oy:oy + cfg.crop, ox:ox + cfg.crop]
        x = x.to(accelerator.device)
        with torch.no_grad():
            z = accelerator.unwrap_model(model).vae.encode(x).latent_dist.mode()
        rec = model(z)
        pixel = F.l1_loss(rec, x) + F.mse_loss(rec, x)
        spec = spectral_loss(rec, x)
        loss = pixel + float(cfg.spectral_weight) * spec
        accelerator.backward(loss)
        accelerator.clip_grad_norm_(trained, 1.0)
        optimizer.step()
        lr_sched.step()
        optimizer.zero_grad(set_to_none=True)
        row = {"stage": "decoder", "step": step + 1, "pixel": float(pixel.item()), "spectral": float(spec.item()),
               "lr": float(lr_sched.get_last_lr()[0]), "wall_s": time.time() - t0}
        bar.set_postfix(pixel=f"{row['pixel']:.4f}", spectral=f"{row['spectral']:.3f}")
        if (step + 1) % cfg.checkpointing_steps == 0 or step + 1 == cfg.steps:
            save_checkpoint(accelerator, out, step + 1, cfg.checkpoints_total_limit)
            log(row)

    vae = accelerator.unwrap_model(model).vae.eval()
    target = out / "model"
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(src, target, ignore=shutil.ignore_patterns("vae"))
    vae.save_pretrained(target / "vae", safe_serialization=True)
    cfg.save(target / CONFIG_FILE)
    log({"stage": "decoder", "done": True, "model": str(target), **{k: v for k, v in row.items() if k != "stage"}})
    return target
