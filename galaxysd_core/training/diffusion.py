"""Training of GalaxySD-mini (VAE, then UNet + text encoder) and fine-tuning of SD 1.5, on accelerate.

Stages
------
1. ``vae``: :func:`galaxysd_core.training.vae.train_vae`.
2. ``unet``: encode the training images once (all 8 flips/90-degree rotations) into a latent cache
   (:mod:`galaxysd_core.training.latent_cache`), then train the UNet and the text encoder with the
   epsilon objective, min-SNR weighting (Hang et al. 2023), caption dropout (for classifier-free
   guidance) and tag shuffling (:mod:`galaxysd_core.training.data`).

With ``pretrained_model_name_or_path`` (a Stable Diffusion 1.5 folder or a GalaxySD folder) the VAE
stage is skipped and the UNet and text encoder are fine-tuned as in GalaxySD (Ma, Sun et al. 2025
Sec. 2.2: batch 16, 10k steps, peak lr 1.6e-6 with one-cycle warm-up, fp16).

Everything runs through :class:`accelerate.Accelerator`, so ``accelerate launch`` on several GPUs
or nodes needs no code change: ``max_train_steps`` counts optimizer steps whatever the number of
processes, each process draws its own batches (``train_batch_size`` each;
:func:`galaxysd_core.training.data.batch_generator`), the learning rate at every optimizer step
is the one of a 1-process run (:mod:`galaxysd_core.training.schedules`), and only the main
process writes the log, validation grids, snapshots and the model.
Checkpoints: :mod:`galaxysd_core.training.checkpoints`; ``resume_from_checkpoint="latest"``
continues the step count (with the same or another number of processes). Validation grids,
snapshots and the final model folder: :mod:`galaxysd_core.training.snapshots`.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

import numpy as np
import torch
import torch.nn.functional as F

from galaxysd_core._utils import resize_images
from galaxysd_core.errors import GalaxySDFileError
from galaxysd_core.models.mini import build_mini_components
from galaxysd_core.prompts.tokenization import text_max_length
from galaxysd_core.training.checkpoints import checkpoint_step, resolve_resume, save_checkpoint
from galaxysd_core.training.config import DiffusionTrainConfig
from galaxysd_core.training.data import (batch_generator, caption_batch, caption_rng, feature_counts,
                                         load_training_data)
from galaxysd_core.training.latent_cache import encode_latent_cache
from galaxysd_core.training.schedules import make_lr_scheduler, seek_lr_scheduler
from galaxysd_core.training.snapshots import save_model_folder, snapshot_pipeline, write_validation_grid
from galaxysd_core.training.vae import train_vae


def train_diffusion(cfg: DiffusionTrainConfig, validation_hook: Optional[Callable] = None,
                    show_progress: bool = True) -> Path:
    """Run the configured training; returns the folder of the final pipeline (``output_dir/model``,
    or ``output_dir/vae_stage/final`` for ``stage="vae"``).

    Parameters
    ----------
    cfg : DiffusionTrainConfig
    validation_hook : callable, optional
        ``hook(pipeline, step) -> dict`` of extra metrics appended to the validation row
        (e.g. classifier consistency).
    show_progress : bool
        Progress bars for the data, the latent cache and the UNet loop.

    Raises
    ------
    GalaxySDFileError
        For ``stage="unet"`` without a trained VAE, or a named checkpoint that does not exist.
    GalaxySDValueError
        Without training data.
    """
    from accelerate import Accelerator, PartialState
    from accelerate.utils import parse_flag_from_env
    from diffusers import DDPMScheduler
    from diffusers.training_utils import EMAModel
    from tqdm.auto import tqdm

    if cfg.num_threads:
        torch.set_num_threads(int(cfg.num_threads))
    # the processes of `accelerate launch` (one otherwise); ACCELERATE_USE_CPU read as AcceleratorState does
    state = PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU"))
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    if state.is_main_process:
        cfg.save(out / "train_config.yaml")
    log_path = out / "train_log.jsonl"

    def log(row: dict) -> None:
        if not state.is_main_process:
            return
        row = {"time": time.time(), **row}
        with open(log_path, "a") as fh:
            fh.write(json.dumps(row) + "\n")

    t_start = time.time()
    images, captions, derived = load_training_data(cfg, show_progress=show_progress)
    log({"event": "data", "n_images": len(images), "derived_roundness": derived})
    state.wait_for_everyone()  # all processes look for a finished VAE stage before any writes one

    # ---- components
    vae, unet, text_encoder, tokenizer, base_scheduler_config, images = _components(cfg, images, log)
    if cfg.stage == "vae" and not cfg.pretrained_model_name_or_path:
        return out / "vae_stage" / "final"
    vae.requires_grad_(False).eval()

    # ---- latent cache (computed once)
    with state.main_process_first():  # the main process writes the cache, the others read it
        latents_all = encode_latent_cache(vae, images, out / "latents.safetensors", save=state.is_main_process,
                                          show_progress=show_progress and state.is_main_process)
    n = latents_all.shape[1]

    # ---- training objects
    accelerator = Accelerator(mixed_precision=cfg.mixed_precision,
                              gradient_accumulation_steps=cfg.gradient_accumulation_steps, project_dir=str(out))
    noise_scheduler = DDPMScheduler.from_config(base_scheduler_config)
    params = [{"params": unet.parameters(), "lr": cfg.learning_rate}]
    if cfg.train_text_encoder:
        params.append({"params": text_encoder.parameters(),
                       "lr": cfg.text_encoder_learning_rate or cfg.learning_rate})
    else:
        text_encoder.requires_grad_(False)
    optimizer = torch.optim.AdamW(params, weight_decay=cfg.adam_weight_decay)
    world, rank = accelerator.num_processes, accelerator.process_index
    lr_sched = make_lr_scheduler(cfg, optimizer, world)  # prepared: stepped `world` times per optimizer step
    unet.train()
    text_encoder.train(cfg.train_text_encoder)
    if cfg.train_text_encoder:
        unet, text_encoder, optimizer, lr_sched = accelerator.prepare(unet, text_encoder, optimizer, lr_sched)
    else:  # a frozen module is not prepared: DDP refuses one without trainable parameters (on CPU processes)
        unet, optimizer, lr_sched = accelerator.prepare(unet, optimizer, lr_sched)
        text_encoder.to(accelerator.device)
    ema_unet = ema_text = None
    if cfg.use_ema:
        ema_unet = EMAModel(accelerator.unwrap_model(unet).parameters(), decay=cfg.ema_decay, use_ema_warmup=True)
        ema_unet.to(accelerator.device)
        accelerator.register_for_checkpointing(ema_unet)
        if cfg.train_text_encoder:
            ema_text = EMAModel(accelerator.unwrap_model(text_encoder).parameters(), decay=cfg.ema_decay,
                                use_ema_warmup=True)
            ema_text.to(accelerator.device)
            accelerator.register_for_checkpointing(ema_text)

    global_step = 0
    ckpt = resolve_resume(out, cfg.resume_from_checkpoint)
    if ckpt is not None:
        accelerator.load_state(str(ckpt))
        global_step = checkpoint_step(ckpt)
        seek_lr_scheduler(lr_sched, global_step, world)  # in case the number of processes changed
        log({"event": "resume", "checkpoint": ckpt.name, "step": global_step})
    max_length = text_max_length(tokenizer, accelerator.unwrap_model(text_encoder))
    token_cache: Dict[str, List[int]] = {}
    counts = feature_counts(captions)

    def build_pipeline():
        return snapshot_pipeline(vae, accelerator.unwrap_model(unet), accelerator.unwrap_model(text_encoder),
                                 tokenizer, base_scheduler_config, ema_unet, ema_text, counts)

    def validate(step: int) -> None:
        if not accelerator.is_main_process:
            return
        pipe = build_pipeline()
        row = {"event": "validation", "step": step, "wall_s": time.time() - t_start}
        row.update(write_validation_grid(pipe, cfg, out / "validation" / f"step-{step:06d}.png"))
        if cfg.save_snapshots:
            save_model_folder(pipe, out / "snapshots" / f"step-{step:06d}", captions, derived, cfg, step,
                              time.time() - t_start)
        if validation_hook is not None:
            row.update(validation_hook(pipe, step) or {})
        log(row)

    # ---- loop
    end_step = cfg.max_train_steps
    bar = tqdm(total=end_step, initial=global_step, desc="UNet", disable=not (show_progress and accelerator.is_main_process))
    rng = caption_rng(cfg.seed, global_step, world, rank)
    losses: List[float] = []
    deadline = time.time() + 60 * cfg.max_train_minutes if cfg.max_train_minutes else None
    accum = cfg.gradient_accumulation_steps
    trained = (unet, text_encoder) if cfg.train_text_encoder else (unet,)
    micro, micro_losses = 0, []
    while global_step < end_step:
        g = batch_generator(cfg.seed, global_step, world, rank, micro, accum)
        idx = torch.randint(0, n, (cfg.train_batch_size,), generator=g)
        k = torch.randint(0, 8, (cfg.train_batch_size,), generator=g)
        latents = latents_all[k, idx].to(accelerator.device)
        ids = caption_batch(captions, idx, rng, cfg, tokenizer, max_length, token_cache).to(accelerator.device)
        noise = torch.randn(latents.shape, generator=g).to(accelerator.device)
        timesteps = torch.randint(0, noise_scheduler.config.num_train_timesteps, (latents.shape[0],),
                                  generator=g).to(accelerator.device)
        with accelerator.accumulate(*trained):  # no gradient all-reduce until the last accumulated batch
            with accelerator.autocast():
                noisy = noise_scheduler.add_noise(latents, noise, timesteps)
                pred = unet(noisy, timesteps, encoder_hidden_states=text_encoder(ids)[0]).sample
                loss = denoising_loss(noise_scheduler, pred, latents, noise, timesteps, cfg.min_snr_gamma)
            accelerator.backward(loss)
            if accelerator.sync_gradients:
                accelerator.clip_grad_norm_(list(unet.parameters()) + list(text_encoder.parameters()), cfg.max_grad_norm)
            optimizer.step()
            lr_sched.step()
            optimizer.zero_grad(set_to_none=True)
        micro_losses.append(accelerator.gather(loss.detach()).mean())  # over the processes
        if not accelerator.sync_gradients:
            micro += 1
            continue
        micro = 0
        global_step += 1
        if ema_unet is not None:
            ema_unet.step(accelerator.unwrap_model(unet).parameters())
            if ema_text is not None:
                ema_text.step(accelerator.unwrap_model(text_encoder).parameters())
        losses.append(float(torch.stack(micro_losses).mean()))
        micro_losses = []
        bar.update(1)
        bar.set_postfix(loss=f"{np.mean(losses[-cfg.log_every:]):.4f}")
        if global_step % cfg.log_every == 0:
            log({"event": "train", "step": global_step, "loss": float(np.mean(losses[-cfg.log_every:])),
                 "lr": float(lr_sched.get_last_lr()[0]), "wall_s": time.time() - t_start})
        if global_step % cfg.checkpointing_steps == 0:
            save_checkpoint(accelerator, out, global_step, cfg.checkpoints_total_limit)
        if global_step % cfg.validation_steps == 0:
            validate(global_step)
        if deadline and time.time() > deadline:
            accelerator.set_trigger()  # every process stops at the same step, when any reaches the deadline
        if deadline and accelerator.check_trigger():
            log({"event": "time_budget_reached", "step": global_step})
            save_checkpoint(accelerator, out, global_step, cfg.checkpoints_total_limit)
            break
    bar.close()
    accelerator.wait_for_everyone()
    final = out / "model"
    if accelerator.is_main_process:
        save_model_folder(build_pipeline(), final, captions, derived, cfg, global_step, time.time() - t_start)
        log({"event": "done", "step": global_step, "wall_s": time.time() - t_start})
    return final


def denoising_loss(noise_scheduler, pred: torch.Tensor, latents: torch.Tensor, noise: torch.Tensor,
                   timesteps: torch.Tensor, min_snr_gamma: Optional[float]) -> torch.Tensor:
    """MSE between the UNet output and its target (the noise, or the velocity for
    ``v_prediction``), per-sample weighted by min-SNR-gamma (Hang et al. 2023, arXiv:2303.09556):
    ``min(SNR, gamma) / SNR`` (``/ (SNR + 1)`` for v-prediction); plain MSE without ``min_snr_gamma``."""
    from diffusers.training_utils import compute_snr

    v_pred = noise_scheduler.config.prediction_type == "v_prediction"
    target = noise_scheduler.get_velocity(latents, noise, timesteps) if v_pred else noise
    if not min_snr_gamma:
        return F.mse_loss(pred.float(), target.float())
    snr = compute_snr(noise_scheduler, timesteps)
    w = torch.clamp(snr, max=min_snr_gamma) / ((snr + 1) if v_pred else snr)
    return (F.mse_loss(pred.float(), target.float(), reduction="none").mean(dim=(1, 2, 3)) * w).mean()


def _components(cfg: DiffusionTrainConfig, images: np.ndarray, log: Callable[[dict], None]):
    """``(vae, unet, text_encoder, tokenizer, scheduler_config, images)`` to train from.

    Fine-tuning: the pretrained folder's components, the images resized to its resolution.
    From scratch: fresh GalaxySD-mini components (seeded by ``cfg.seed``) with the VAE of a
    finished VAE stage (``output_dir/vae_stage/final``), else one trained now (stages vae/all).
    """
    if cfg.pretrained_model_name_or_path:
        from galaxysd_core.pipelines.pipeline_galaxysd import load_pipeline

        base = load_pipeline(cfg.pretrained_model_name_or_path)
        images = resize_images(images, base.default_size)  # fine-tuning at the base model's resolution
        return base.vae, base.unet, base.text_encoder, base.tokenizer, base.scheduler.config, images
    comps = build_mini_components(cfg.mini_config, seed=cfg.seed)
    vae = comps["vae"]
    final_vae = Path(cfg.output_dir) / "vae_stage" / "final"
    if (final_vae / "config.json").is_file():
        from diffusers import AutoencoderKL

        vae = AutoencoderKL.from_pretrained(final_vae, use_safetensors=True)
    elif cfg.stage in ("vae", "all"):
        vae = train_vae(cfg, images, vae=vae, log=log)
    else:
        raise GalaxySDFileError(f"stage 'unet' needs a trained VAE at {str(final_vae)!r}; run stage 'vae' first")
    return vae, comps["unet"], comps["text_encoder"], comps["tokenizer"], comps["scheduler"].config, images
