"""Training of GalaxySD-mini (VAE, then UNet + text encoder) and fine-tuning of SD 1.5, on accelerate.

Stages
------
1. ``vae``: :func:`galaxysd_core.training.vae.train_vae`.
2. ``unet``: encode the training images once into a sharded latent cache on disk
   (:mod:`galaxysd_core.training.latent_cache`; the 8 flips/90-degree rotations applied to the
   latents on the fly, or encoded), read batch by batch through a DataLoader, then train the UNet
   and the text encoder with the epsilon objective, min-SNR weighting (Hang et al. 2023), caption
   dropout (for classifier-free guidance) and tag shuffling (:mod:`galaxysd_core.training.data`).

Images and latents are read from the sharded caches a batch at a time, so memory does not grow
with the number of training images (``bench/bench_train_memory.py``).

With ``pretrained_model_name_or_path`` (a Stable Diffusion 1.5 folder or a GalaxySD folder) the VAE
stage is skipped and the UNet and text encoder are fine-tuned as in GalaxySD (Ma, Sun et al. 2025
Sec. 2.2: batch 16, 10k steps, peak lr 1.6e-6 with one-cycle warm-up, fp16).

Everything runs through :class:`accelerate.Accelerator`, so ``accelerate launch`` on several GPUs
or nodes needs no code change: ``max_train_steps`` counts optimizer steps whatever the number of
processes, each process draws its own batches (``train_batch_size`` each;
:func:`galaxysd_core.training.data.batch_generator`), the learning rate at every optimizer step
is the one of a 1-process run (:mod:`galaxysd_core.training.schedules`), and only the main
process writes the log, validation grids, snapshots and the model. The effective batch
(``train_batch_size x processes x gradient_accumulation_steps``) and the steps per epoch are
logged at start (the ``start`` row of ``train_log.jsonl``). Example accelerate configs for 1 GPU,
8 GPUs and 2 nodes: ``train/accelerate/``.
Checkpoints: :mod:`galaxysd_core.training.checkpoints`; ``resume_from_checkpoint="latest"``
continues the step count (with the same or another number of processes). Validation grids,
snapshots and the final model folder: :mod:`galaxysd_core.training.snapshots`.
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

import numpy as np
import torch
import torch.nn.functional as F

from galaxysd_core.errors import GalaxySDFileError
from galaxysd_core.models.mini import build_mini_components
from galaxysd_core.prompts.tokenization import text_max_length
from galaxysd_core.training.checkpoints import checkpoint_step, resolve_resume, save_checkpoint
from galaxysd_core.training.config import DiffusionTrainConfig
from galaxysd_core.training.data import (StepBatchSampler, batch_loader, caption_batch, caption_rng, feature_counts,
                                         load_training_data, steps_per_epoch)
from galaxysd_core.training.latent_cache import cache_latent_mean, encode_latent_cache
from galaxysd_core.training.schedules import make_lr_scheduler, seek_lr_scheduler
from galaxysd_core.training.snapshots import save_model_folder, snapshot_pipeline, write_validation_grid
from galaxysd_core.training.vae import train_vae

logger = logging.getLogger(__name__)


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
    images, captions, derived, partial = load_training_data(cfg, show_progress=show_progress)
    log({"event": "data", "n_images": len(images), "derived_roundness": derived, "partial_votes": partial})
    if state.is_main_process:
        log(start_row(cfg, len(images), state.num_processes))
    state.wait_for_everyone()  # all processes look for a finished VAE stage before any writes one

    # ---- components
    vae, unet, text_encoder, tokenizer, base_scheduler_config, size = _components(cfg, images, log)
    base_scheduler_config = {**dict(base_scheduler_config), **scheduler_overrides(cfg)}
    if cfg.stage == "vae" and not cfg.pretrained_model_name_or_path:
        return out / "vae_stage" / "final"
    vae.requires_grad_(False).eval()

    # ---- latent cache (computed once, sharded on disk)
    if (out / "latents.safetensors").is_file() and cfg.latent_dihedral == "latent" and state.is_main_process:
        logger.warning("%s was started with the earlier latent cache (all 8 transforms encoded, in memory); this "
                       "run caches one latent per image and transforms it on the fly: pass --latent_dihedral "
                       "encoded to continue on the same latents", out)
    with state.main_process_first():  # the main process writes the cache, the others open it
        latent_cache = encode_latent_cache(vae, images, out / "latents", size=size,
                                           copies=8 if cfg.latent_dihedral == "encoded" else 1,
                                           show_progress=show_progress and state.is_main_process)
    if cfg.latent_loading == "memory":
        latent_cache = latent_cache.in_memory()
    n = latent_cache.n

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

    latent_mean: List[torch.Tensor] = []  # measured once, at the first snapshot (main process only)

    def build_pipeline():
        pipe = snapshot_pipeline(vae, accelerator.unwrap_model(unet), accelerator.unwrap_model(text_encoder),
                                 tokenizer, base_scheduler_config, ema_unet, ema_text, counts)
        if not latent_mean:  # sampling starts around the mean training latent (pipelines/latent_mean.py)
            latent_mean.append(cache_latent_mean(latent_cache))
        pipe.latent_mean = latent_mean[0]
        return pipe

    def validate(step: int) -> None:
        if not accelerator.is_main_process:
            return
        pipe = build_pipeline()
        row = {"event": "validation", "step": step, "wall_s": time.time() - t_start}
        row.update(write_validation_grid(pipe, cfg, out / "validation" / f"step-{step:06d}.png"))
        if cfg.save_snapshots:
            save_model_folder(pipe, out / "snapshots" / f"step-{step:06d}", captions, derived, cfg, step,
                              time.time() - t_start, partial)
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
    from galaxysd_core.schema.partial_votes import oversampling_weights

    weights = oversampling_weights(captions, cfg.rare_oversampling)
    sampler = StepBatchSampler(cfg.seed, n, cfg.train_batch_size, global_step, end_step, num_processes=world,
                               process_index=rank, accumulation_steps=accum, weights=weights)
    dataset = latent_cache.dataset()
    if cfg.latent_loading == "memory":  # the earlier in-RAM loop: no DataLoader
        batches = (dataset.__getitems__(pairs) for pairs in sampler)
    else:
        batches = iter(batch_loader(dataset, sampler, cfg.dataloader_num_workers))
    while global_step < end_step:
        g, idx, _ = sampler.draw(global_step, micro)  # the generator of the batch the loader returns
        rows, latents = next(batches)
        assert torch.equal(rows, idx), "the DataLoader returned the batch of another step"
        latents = latents.to(accelerator.device)
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
        save_model_folder(build_pipeline(), final, captions, derived, cfg, global_step, time.time() - t_start, partial)
        log({"event": "done", "step": global_step, "wall_s": time.time() - t_start})
    return final


def scheduler_overrides(cfg: DiffusionTrainConfig) -> dict:
    """Scheduler settings a run changes from its model's: the objective (``prediction_type``) and
    zero terminal SNR (``rescale_betas_zero_snr`` with ``trailing`` spacing, so sampling starts at
    the last training timestep, where the SNR is 0: Lin et al. 2024, WACV, Sec. 3.1-3.3)."""
    out = {}
    if cfg.prediction_type:
        out["prediction_type"] = cfg.prediction_type
    if cfg.zero_terminal_snr:
        out.update(rescale_betas_zero_snr=True, timestep_spacing="trailing")
    return out


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


def start_row(cfg: DiffusionTrainConfig, n_images: int, num_processes: int) -> dict:
    """The ``start`` row of ``train_log.jsonl`` (also logged): processes, effective batches
    (per-process batch x processes x accumulated batches) and steps per epoch of both stages."""
    accum = cfg.gradient_accumulation_steps
    unet = {"batch_per_process": cfg.train_batch_size, "gradient_accumulation_steps": accum,
            "effective_batch": cfg.train_batch_size * num_processes * accum,
            "steps_per_epoch": steps_per_epoch(n_images, cfg.train_batch_size, num_processes, accum),
            "max_train_steps": cfg.max_train_steps}
    unet["epochs"] = round(cfg.max_train_steps / unet["steps_per_epoch"], 3)
    row = {"event": "start", "n_images": int(n_images), "num_processes": int(num_processes), "unet": unet}
    if not cfg.pretrained_model_name_or_path and cfg.stage in ("vae", "all"):
        row["vae"] = {"effective_batch": cfg.vae_batch_size * num_processes,
                      "steps_per_epoch": steps_per_epoch(n_images, cfg.vae_batch_size, num_processes),
                      "steps": cfg.vae_steps}
    logger.info("%d training images on %d process(es): effective batch %d (%d x %d processes x %d accumulated), "
                "%d steps per epoch, %d steps = %.2f epochs", n_images, num_processes, unet["effective_batch"],
                cfg.train_batch_size, num_processes, accum, unet["steps_per_epoch"], cfg.max_train_steps,
                unet["epochs"])
    return row


def _components(cfg: DiffusionTrainConfig, images, log: Callable[[dict], None]):
    """``(vae, unet, text_encoder, tokenizer, scheduler_config, size)`` to train from.

    Fine-tuning: the pretrained folder's components and its resolution ``size`` (the latent
    cache resizes the images to it batch by batch); from scratch ``size`` is None.
    From scratch: fresh GalaxySD-mini components (seeded by ``cfg.seed``) with the VAE of a
    finished VAE stage (``output_dir/vae_stage/final``), else one trained now (stages vae/all).
    """
    if cfg.pretrained_model_name_or_path:
        from galaxysd_core.pipelines.pipeline_galaxysd import load_pipeline

        base = load_pipeline(cfg.pretrained_model_name_or_path)
        return base.vae, base.unet, base.text_encoder, base.tokenizer, base.scheduler.config, base.default_size
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
    return vae, comps["unet"], comps["text_encoder"], comps["tokenizer"], comps["scheduler"].config, None
