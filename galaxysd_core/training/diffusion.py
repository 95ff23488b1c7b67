"""Training of GalaxySD-mini (VAE, then UNet + text encoder) and fine-tuning of SD 1.5, on accelerate.

Stages
------
1. ``vae``: train the AutoencoderKL on the prepared images (L1 + MSE reconstruction, small KL),
   then fix its latent shift and scale so latents have zero mean and unit variance (the role of
   SD's 0.18215).
2. ``unet``: encode the training images once (all 8 flips/90-degree rotations) into a latent cache,
   then train the UNet and the text encoder with the epsilon objective, min-SNR weighting
   (Hang et al. 2023), caption dropout (for classifier-free guidance) and tag shuffling.

With ``pretrained_model_name_or_path`` (a Stable Diffusion 1.5 folder or a GalaxySD folder) the VAE
stage is skipped and the UNet and text encoder are fine-tuned as in GalaxySD (Ma, Sun et al. 2025
Sec. 2.2: batch 16, 10k steps, peak lr 1.6e-6 with one-cycle warm-up, fp16).

Everything runs through :class:`accelerate.Accelerator`, so ``accelerate launch`` on several GPUs
or nodes needs no code change. Checkpoints are ``accelerator.save_state`` folders
(``checkpoint-<step>``); ``resume_from_checkpoint="latest"`` continues the step count. Note:
accelerate stores optimizer/RNG state with ``torch.save``; only the run's own checkpoint folders are
ever read back, model weights themselves are safetensors.
"""
from __future__ import annotations

import json
import math
import os
import random
import re
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
import yaml

from galaxysd_core._utils import dihedral
from galaxysd_core.schema.captioning import caption_tags, shuffle_caption, split_prefix
from galaxysd_core.errors import GalaxySDFileError, GalaxySDValueError
from galaxysd_core.schema.gz2 import caption_phrases
from galaxysd_core.models.mini import MiniModelConfig, build_mini_components
from galaxysd_core.prompts.grammar import ParsedPrompt, parse_prompt
from galaxysd_core.prompts.weighting import tokenize_weighted

DEFAULT_VALIDATION_PROMPTS = [
    "sdss, smooth, completely round galaxy",
    "sdss, smooth, cigar shaped galaxy",
    "sdss, features or disk-shaped, spiral galaxy",
    "sdss, features or disk-shaped, edge-on galaxy",
    "sdss, merger",
    "sdss, star or artifact",
    "sdss, smooth, {completely round galaxy:1.3}, {dust lane:1.3}",
    "sdss, features or disk-shaped, edge-on galaxy, dust lane",
]


@dataclass
class DiffusionTrainConfig:
    """All settings of a training run; saved as ``train_config.yaml`` in ``output_dir``."""

    output_dir: str = "runs/galaxysd-mini"
    caches: List[str] = field(default_factory=list)
    pretrained_model_name_or_path: Optional[str] = None
    stage: str = "all"  # "vae", "unet" or "all"
    derive_roundness: bool = True
    model: Dict = field(default_factory=lambda: MiniModelConfig().to_dict())
    seed: int = 0
    # VAE stage
    vae_steps: int = 1200
    vae_batch_size: int = 32
    vae_learning_rate: float = 1e-3
    vae_kl_weight: float = 1e-6
    vae_crop: Optional[int] = 32  # train the (fully convolutional) VAE on random crops: 4x cheaper
    # UNet stage
    train_batch_size: int = 64
    max_train_steps: int = 4000
    max_train_minutes: Optional[float] = None
    learning_rate: float = 5e-4
    text_encoder_learning_rate: Optional[float] = None
    train_text_encoder: bool = True
    lr_scheduler: str = "cosine"  # "cosine", "constant" or "one_cycle"
    lr_warmup_steps: int = 200
    adam_weight_decay: float = 1e-2
    max_grad_norm: float = 1.0
    min_snr_gamma: Optional[float] = 5.0
    caption_dropout: float = 0.1
    tag_dropout: float = 0.15  # each tag after the prefix dropped alone (>= 1 kept): partial prompts work
    shuffle_tags: bool = True
    use_ema: bool = True
    ema_decay: float = 0.999
    mixed_precision: str = "no"
    gradient_accumulation_steps: int = 1
    checkpointing_steps: int = 250
    checkpoints_total_limit: int = 3
    validation_steps: int = 500
    validation_prompts: List[str] = field(default_factory=lambda: list(DEFAULT_VALIDATION_PROMPTS))
    validation_seeds: int = 4
    validation_inference_steps: int = 20
    validation_guidance: float = 3.0
    save_snapshots: bool = True
    resume_from_checkpoint: Optional[str] = None
    num_threads: Optional[int] = None

    def __post_init__(self) -> None:
        # YAML stores lists; keep the in-memory form identical so configs compare equal after a round trip
        self.model = {k: list(v) if isinstance(v, tuple) else v for k, v in dict(self.model).items()}
        if self.stage not in ("vae", "unet", "all"):
            raise GalaxySDValueError(f"stage must be 'vae', 'unet' or 'all', got {self.stage!r}")
        if self.lr_scheduler not in ("cosine", "constant", "one_cycle"):
            raise GalaxySDValueError(f"lr_scheduler must be cosine, constant or one_cycle, got {self.lr_scheduler!r}")
        if self.mixed_precision not in ("no", "fp16", "bf16"):
            raise GalaxySDValueError(f"mixed_precision must be no, fp16 or bf16, got {self.mixed_precision!r}")
        for name in ("train_batch_size", "max_train_steps", "checkpointing_steps", "validation_steps"):
            if int(getattr(self, name)) < 1:
                raise GalaxySDValueError(f"{name} must be >= 1")
        if not 0.0 <= self.caption_dropout < 1.0:
            raise GalaxySDValueError("caption_dropout must be in [0, 1)")

    @classmethod
    def from_yaml(cls, path: str | os.PathLike) -> "DiffusionTrainConfig":
        data = yaml.safe_load(Path(path).read_text()) or {}
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise GalaxySDValueError(f"unknown settings in {path}: {sorted(unknown)}")
        return cls(**data)

    def save(self, path: str | os.PathLike) -> None:
        Path(path).write_text(yaml.safe_dump(asdict(self), sort_keys=False))

    @classmethod
    def sd15_finetune(cls, pretrained: str, **overrides) -> "DiffusionTrainConfig":
        """GalaxySD's published fine-tuning recipe for SD 1.5 (Ma, Sun et al. 2025 Sec. 2.2)."""
        base = dict(pretrained_model_name_or_path=pretrained, stage="unet", train_batch_size=16,
                    max_train_steps=10_000, learning_rate=1.6e-6, lr_scheduler="one_cycle",
                    lr_warmup_steps=1000, mixed_precision="fp16", min_snr_gamma=None, derive_roundness=False)
        base.update(overrides)
        return cls(**base)


# ---------------------------------------------------------------------------- data
def load_training_data(cfg: DiffusionTrainConfig, show_progress: bool = True):
    """Images (uint8 NHWC) and captions of the configured prepared caches."""
    from galaxysd_core.data.cache import PreparedDataset, concat

    if not cfg.caches:
        raise GalaxySDValueError("no training data: give at least one prepared cache (galaxysd data prepare ...)")
    datasets = [PreparedDataset.load(c) for c in cfg.caches]
    ds = datasets[0] if len(datasets) == 1 else concat(datasets)
    captions = list(ds.index["caption"].astype(str))
    derived: Dict[str, int] = {}
    if cfg.derive_roundness:
        from galaxysd_core.schema.pseudo_labels import add_roundness

        captions, derived = add_roundness(captions, ds.images, show_progress=show_progress)
    return ds.images, captions, derived


def feature_counts(captions: Sequence[str]) -> Dict[str, int]:
    """How often each caption phrase occurs in the training captions."""
    counts = {p: 0 for p in caption_phrases()}
    for c in captions:
        for tag in caption_tags(c):
            if tag in counts:
                counts[tag] += 1
    return counts


def _to_unit(images_u8: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images_u8).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


# ---------------------------------------------------------------------------- checkpoints
def _checkpoints(folder: Path) -> List[Path]:
    found = [p for p in folder.glob("checkpoint-*") if p.is_dir() and re.fullmatch(r"checkpoint-\d+", p.name)]
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


def _resolve_resume(folder: Path, resume: Optional[str]) -> Optional[Path]:
    if not resume:
        return None
    if resume == "latest":
        ckpts = [c for c in _checkpoints(folder) if (c / "DONE").exists()]
        return ckpts[-1] if ckpts else None
    path = Path(resume)
    path = path if path.is_absolute() or path.exists() else folder / resume
    if not path.is_dir():
        raise GalaxySDFileError(f"checkpoint {str(path)!r} does not exist; use 'latest' or a checkpoint-<step> folder")
    return path


def _save_checkpoint(accelerator, folder: Path, step: int, limit: int) -> None:
    target = folder / f"checkpoint-{step}"
    accelerator.save_state(str(target))
    if accelerator.is_main_process:
        (target / "DONE").write_text(str(step))  # marks a complete checkpoint (a kill mid-save leaves none)
        for old in _checkpoints(folder)[:-limit]:
            shutil.rmtree(old, ignore_errors=True)


# ---------------------------------------------------------------------------- VAE stage
def train_vae(cfg: DiffusionTrainConfig, images: np.ndarray, vae=None, log: Callable[[dict], None] = print):
    """Train the AutoencoderKL; returns it with ``shift_factor`` and ``scaling_factor`` set."""
    from accelerate import Accelerator
    from tqdm.auto import tqdm

    out = Path(cfg.output_dir)
    vae_dir = out / "vae_stage"
    vae_dir.mkdir(parents=True, exist_ok=True)
    if vae is None:
        vae = build_mini_components(MiniModelConfig(**_tuples(cfg.model)), seed=cfg.seed)["vae"]
    accelerator = Accelerator(mixed_precision=cfg.mixed_precision, project_dir=str(vae_dir))
    model = _VAEReconstruction(vae)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.vae_learning_rate, weight_decay=0.0)
    lr_sched = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / 100) * 0.5 * (1 + math.cos(math.pi * min(s, cfg.vae_steps) / cfg.vae_steps)))
    model, optimizer, lr_sched = accelerator.prepare(model, optimizer, lr_sched)
    start = 0
    ckpt = _resolve_resume(vae_dir, cfg.resume_from_checkpoint)
    if ckpt is not None:
        accelerator.load_state(str(ckpt))
        start = int(ckpt.name.split("-")[1])
    data = _to_unit(images)
    n = len(data)
    bar = tqdm(range(start, cfg.vae_steps), desc="VAE", disable=not accelerator.is_main_process)
    t0 = time.time()
    for step in bar:
        g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
        idx = torch.randint(0, n, (cfg.vae_batch_size,), generator=g)
        x = dihedral(data[idx], int(torch.randint(0, 8, (1,), generator=g)))
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
            _save_checkpoint(accelerator, vae_dir, step + 1, cfg.checkpoints_total_limit)
            log({"stage": "vae", "step": step + 1, "loss_rec": float(loss_rec.item()), "wall_s": time.time() - t0})
    vae = accelerator.unwrap_model(model).vae.eval()
    # latent normalisation (shift and scale), measured on up to 2048 images
    with torch.no_grad():
        sample = data[:2048].to(accelerator.device)
        z = torch.cat([vae.encode(sample[i:i + 256]).latent_dist.mean for i in range(0, len(sample), 256)])
    shift = float(z.mean())
    scale = float(1.0 / (z - shift).std())
    vae.register_to_config(shift_factor=shift, scaling_factor=scale)
    vae.save_pretrained(vae_dir / "final", safe_serialization=True)
    log({"stage": "vae", "done": True, "shift_factor": shift, "scaling_factor": scale,
         "wall_s": time.time() - t0, "final_loss_rec": float(loss_rec.item()) if cfg.vae_steps > start else None})
    return vae


class _VAEReconstruction(torch.nn.Module):
    """encode -> sample -> decode as one forward, so DDP sees (and syncs) the whole graph."""

    def __init__(self, vae) -> None:
        super().__init__()
        self.vae = vae

    def forward(self, x: torch.Tensor):
        post = self.vae.encode(x).latent_dist
        return self.vae.decode(post.sample()).sample, post.kl()


def _tuples(model_cfg: dict) -> dict:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in model_cfg.items()}


# ---------------------------------------------------------------------------- latent cache
@torch.no_grad()
def encode_latent_cache(vae, images: np.ndarray, path: Path, batch_size: int = 256,
                        show_progress: bool = True) -> torch.Tensor:
    """Latents of every image under all 8 dihedral transforms, ``(8, N, C, h, w)``, cached in ``path``.

    The file is keyed by a fingerprint of the VAE weights and the data, so it is computed once and
    reused on resume.
    """
    from safetensors.torch import load_file, save_file
    from tqdm.auto import tqdm

    import hashlib

    h = hashlib.sha256()
    h.update(np.ascontiguousarray(images[:: max(1, len(images) // 64)]).tobytes())
    h.update(str(len(images)).encode())
    for p in list(vae.parameters())[:4]:
        h.update(p.detach().cpu().numpy().tobytes())
    key = h.hexdigest()[:16]
    if path.is_file():
        blob = load_file(str(path))
        if "key_" + key in blob:
            return blob["latents"]
    data = _to_unit(images)
    device = next(vae.parameters()).device
    out = []
    total = 8 * math.ceil(len(data) / batch_size)
    bar = tqdm(total=total, desc="latent cache", disable=not show_progress)
    for k in range(8):
        chunks = []
        for i in range(0, len(data), batch_size):
            x = dihedral(data[i:i + batch_size], k).to(device, dtype=vae.dtype)
            z = vae.encode(x).latent_dist.mean
            shift = getattr(vae.config, "shift_factor", None) or 0.0
            chunks.append(((z - shift) * vae.config.scaling_factor).float().cpu())
            bar.update()
        out.append(torch.cat(chunks))
    bar.close()
    latents = torch.stack(out)
    tmp = path.with_suffix(".tmp")
    save_file({"latents": latents.contiguous(), "key_" + key: torch.zeros(1)}, str(tmp))
    os.replace(tmp, path)
    return latents


# ---------------------------------------------------------------------------- UNet stage
def _make_lr_scheduler(cfg: DiffusionTrainConfig, optimizer):
    total = cfg.max_train_steps
    warm = max(1, min(cfg.lr_warmup_steps, total))
    if cfg.lr_scheduler == "one_cycle":
        # One-cycle (Smith & Topin 2019) as a LambdaLR: cosine rise from lr/25 to lr over the warm-up,
        # cosine decay to lr/1e4 after. torch's OneCycleLR divides by zero for very short runs and
        # also cycles Adam's betas, which GalaxySD's recipe does not ask for.
        def one_cycle(s: int) -> float:
            if s < warm:
                return 1 / 25 + (1 - 1 / 25) * 0.5 * (1 - math.cos(math.pi * s / warm))
            frac = min(1.0, (s - warm) / max(1, total - warm))
            return 1e-4 + (1 - 1e-4) * 0.5 * (1 + math.cos(math.pi * frac))

        return torch.optim.lr_scheduler.LambdaLR(optimizer, one_cycle)
    if cfg.lr_scheduler == "constant":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warm))
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))


def _caption_batch(captions: Sequence[str], idx: torch.Tensor, rng: random.Random, cfg: DiffusionTrainConfig,
                   tokenizer, max_length: int, cache: Dict[str, List[int]]) -> torch.Tensor:
    rows = []
    for i in idx.tolist():
        text = captions[i]
        if rng.random() < cfg.caption_dropout:
            parsed = ParsedPrompt(text="", words=(), weights=())
        else:
            if cfg.tag_dropout:
                text = drop_tags(text, cfg.tag_dropout, rng)
            if cfg.shuffle_tags:
                text = shuffle_caption(text, rng)
            parsed = parse_prompt(text, strict=False)
        rows.append(tokenize_weighted(tokenizer, parsed, max_length, cache)[0])
    return torch.tensor(rows, dtype=torch.long)


def drop_tags(caption: str, p: float, rng: random.Random) -> str:
    """Drop each tag after the survey prefix with probability ``p``, keeping at least one tag."""
    head, rest = split_prefix(caption)
    if len(rest) <= 1:
        return caption
    kept = [t for t in rest if rng.random() >= p] or [rng.choice(rest)]
    return ", ".join(head + kept)


def _max_length(tokenizer, text_encoder) -> int:
    m = int(tokenizer.model_max_length)
    return m if m <= 10_000 else int(text_encoder.config.max_position_embeddings)


def train_diffusion(cfg: DiffusionTrainConfig, validation_hook: Optional[Callable] = None,
                    show_progress: bool = True) -> Path:
    """Run the configured training; returns the folder of the final pipeline (``output_dir/model``).

    Parameters
    ----------
    cfg : DiffusionTrainConfig
    validation_hook : callable, optional
        ``hook(pipeline, step) -> dict`` of extra metrics appended to the validation row
        (e.g. classifier consistency).
    """
    from accelerate import Accelerator
    from diffusers import DDPMScheduler
    from diffusers.training_utils import EMAModel, compute_snr
    from tqdm.auto import tqdm

    from galaxysd_core.pipelines.pipeline_galaxysd import TRAINING_CAPTIONS_FILE, GalaxySDPipeline

    if cfg.num_threads:
        torch.set_num_threads(int(cfg.num_threads))
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg.save(out / "train_config.yaml")
    log_path = out / "train_log.jsonl"

    def log(row: dict) -> None:
        row = {"time": time.time(), **row}
        with open(log_path, "a") as fh:
            fh.write(json.dumps(row) + "\n")

    t_start = time.time()
    images, captions, derived = load_training_data(cfg, show_progress=show_progress)
    log({"event": "data", "n_images": len(images), "derived_roundness": derived})

    # ---- components
    if cfg.pretrained_model_name_or_path:
        base = GalaxySDPipeline.from_pretrained(cfg.pretrained_model_name_or_path)
        vae, unet, text_encoder, tokenizer = base.vae, base.unet, base.text_encoder, base.tokenizer
        base_scheduler_config = base.scheduler.config
        size = base.default_size
        if images.shape[1] != size:
            # fine-tuning at the base model's resolution: resize on the fly with Pillow
            from PIL import Image

            images = np.stack([np.asarray(Image.fromarray(im).resize((size, size), Image.Resampling.LANCZOS))
                               for im in images])
    else:
        comps = build_mini_components(MiniModelConfig(**_tuples(cfg.model)), seed=cfg.seed)
        vae, unet, text_encoder, tokenizer = comps["vae"], comps["unet"], comps["text_encoder"], comps["tokenizer"]
        base_scheduler_config = comps["scheduler"].config
        final_vae = out / "vae_stage" / "final"
        if (final_vae / "config.json").is_file():
            from diffusers import AutoencoderKL

            vae = AutoencoderKL.from_pretrained(final_vae, use_safetensors=True)
        elif cfg.stage in ("vae", "all"):
            vae = train_vae(cfg, images, vae=vae, log=log)
        else:
            raise GalaxySDFileError(f"stage 'unet' needs a trained VAE at {str(final_vae)!r}; run stage 'vae' first")
        if cfg.stage == "vae":
            return final_vae
    vae.requires_grad_(False).eval()

    # ---- latent cache (computed once)
    latents_all = encode_latent_cache(vae, images, out / "latents.safetensors", show_progress=show_progress)
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
    lr_sched = _make_lr_scheduler(cfg, optimizer)
    unet.train()
    text_encoder.train(cfg.train_text_encoder)
    unet, text_encoder, optimizer, lr_sched = accelerator.prepare(unet, text_encoder, optimizer, lr_sched)
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
    ckpt = _resolve_resume(out, cfg.resume_from_checkpoint)
    if ckpt is not None:
        accelerator.load_state(str(ckpt))
        global_step = int(ckpt.name.split("-")[1])
        log({"event": "resume", "checkpoint": ckpt.name, "step": global_step})
    max_length = _max_length(tokenizer, accelerator.unwrap_model(text_encoder))
    token_cache: Dict[str, List[int]] = {}
    counts = feature_counts(captions)

    def build_pipeline(use_ema: bool = True):
        import copy

        u = copy.deepcopy(accelerator.unwrap_model(unet)).eval()
        te = copy.deepcopy(accelerator.unwrap_model(text_encoder)).eval()
        if use_ema and ema_unet is not None:
            ema_unet.copy_to(u.parameters())
            if ema_text is not None:
                ema_text.copy_to(te.parameters())
        from diffusers import DDIMScheduler

        pipe = GalaxySDPipeline(vae=vae, text_encoder=te, tokenizer=tokenizer, unet=u,
                                scheduler=DDIMScheduler.from_config(base_scheduler_config))
        pipe.set_progress_bar_config(disable=True)
        pipe.trained_features = counts
        return pipe

    def validate(step: int) -> None:
        if not accelerator.is_main_process:
            return
        pipe = build_pipeline()
        row = {"event": "validation", "step": step, "wall_s": time.time() - t_start}
        prompts = [p for p in cfg.validation_prompts if _parses(pipe, p)]
        if prompts:
            res = pipe(prompts, num_images_per_prompt=cfg.validation_seeds, seed=0,
                       num_inference_steps=cfg.validation_inference_steps,
                       guidance_scale=cfg.validation_guidance, output_type="np")
            from PIL import Image

            grid = _grid(res.images, len(prompts), cfg.validation_seeds)
            (out / "validation").mkdir(exist_ok=True)
            Image.fromarray(grid).save(out / "validation" / f"step-{step:06d}.png")
            row["mean_pixel"] = float(res.images.mean())
        if cfg.save_snapshots:
            snap = out / "snapshots" / f"step-{step:06d}"
            _save_pipeline(pipe, snap, captions, derived, cfg, step, time.time() - t_start)
        if validation_hook is not None:
            row.update(validation_hook(pipe, step) or {})
        log(row)

    # ---- loop
    end_step = cfg.max_train_steps
    bar = tqdm(total=end_step, initial=global_step, desc="UNet", disable=not (show_progress and accelerator.is_main_process))
    rng = random.Random(cfg.seed * 7919 + global_step)
    losses: List[float] = []
    deadline = time.time() + 60 * cfg.max_train_minutes if cfg.max_train_minutes else None
    world, rank = accelerator.num_processes, accelerator.process_index
    while global_step < end_step:
        g = torch.Generator().manual_seed((cfg.seed * 1_000_003 + global_step) * world + rank)
        idx = torch.randint(0, n, (cfg.train_batch_size,), generator=g)
        k = torch.randint(0, 8, (cfg.train_batch_size,), generator=g)
        latents = latents_all[k, idx].to(accelerator.device)
        ids = _caption_batch(captions, idx, rng, cfg, tokenizer, max_length, token_cache).to(accelerator.device)
        noise = torch.randn(latents.shape, generator=g).to(accelerator.device)
        timesteps = torch.randint(0, noise_scheduler.config.num_train_timesteps, (latents.shape[0],),
                                  generator=g).to(accelerator.device)
        with accelerator.accumulate(unet):
            with accelerator.autocast():
                noisy = noise_scheduler.add_noise(latents, noise, timesteps)
                hidden = text_encoder(ids)[0]
                pred = unet(noisy, timesteps, encoder_hidden_states=hidden).sample
                target = noise
                if noise_scheduler.config.prediction_type == "v_prediction":
                    target = noise_scheduler.get_velocity(latents, noise, timesteps)
                if cfg.min_snr_gamma:
                    snr = compute_snr(noise_scheduler, timesteps)
                    w = torch.clamp(snr, max=cfg.min_snr_gamma) / snr
                    if noise_scheduler.config.prediction_type == "v_prediction":
                        w = torch.clamp(snr, max=cfg.min_snr_gamma) / (snr + 1)
                    loss = (F.mse_loss(pred.float(), target.float(), reduction="none").mean(dim=(1, 2, 3)) * w).mean()
                else:
                    loss = F.mse_loss(pred.float(), target.float())
            accelerator.backward(loss)
            if accelerator.sync_gradients:
                accelerator.clip_grad_norm_(list(unet.parameters()) + list(text_encoder.parameters()), cfg.max_grad_norm)
            optimizer.step()
            lr_sched.step()
            optimizer.zero_grad(set_to_none=True)
        if accelerator.sync_gradients:
            global_step += 1
            if ema_unet is not None:
                ema_unet.step(accelerator.unwrap_model(unet).parameters())
                if ema_text is not None:
                    ema_text.step(accelerator.unwrap_model(text_encoder).parameters())
            losses.append(float(loss.item()))
            bar.update(1)
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}")
            if global_step % 50 == 0:
                log({"event": "train", "step": global_step, "loss": float(np.mean(losses[-50:])),
                     "lr": float(lr_sched.get_last_lr()[0]), "wall_s": time.time() - t_start})
            if global_step % cfg.checkpointing_steps == 0:
                _save_checkpoint(accelerator, out, global_step, cfg.checkpoints_total_limit)
            if global_step % cfg.validation_steps == 0:
                validate(global_step)
            if deadline and time.time() > deadline:
                log({"event": "time_budget_reached", "step": global_step})
                _save_checkpoint(accelerator, out, global_step, cfg.checkpoints_total_limit)
                break
    bar.close()
    accelerator.wait_for_everyone()
    final = out / "model"
    if accelerator.is_main_process:
        pipe = build_pipeline()
        _save_pipeline(pipe, final, captions, derived, cfg, global_step, time.time() - t_start)
        log({"event": "done", "step": global_step, "wall_s": time.time() - t_start})
    return final


def _parses(pipe, prompt: str) -> bool:
    try:
        pipe.parse(prompt)
        return True
    except GalaxySDValueError:
        return False


def _grid(images: np.ndarray, rows: int, cols: int) -> np.ndarray:
    n, h, w, c = images.shape
    return images[: rows * cols].reshape(rows, cols, h, w, c).transpose(0, 2, 1, 3, 4).reshape(rows * h, cols * w, c)


def _save_pipeline(pipe, folder: Path, captions: Sequence[str], derived: Dict[str, int],
                   cfg: DiffusionTrainConfig, step: int, wall_s: float) -> None:
    from galaxysd_core.pipelines.pipeline_galaxysd import TRAINING_CAPTIONS_FILE

    folder.mkdir(parents=True, exist_ok=True)
    pipe.save_pretrained(folder, safe_serialization=True)
    counts = feature_counts(captions)
    from collections import Counter

    info = {"feature_counts": counts, "derived_feature_counts": derived,
            "caption_counts": dict(Counter(captions).most_common()), "n_images": len(captions),
            "step": step, "wall_s": wall_s}
    (folder / TRAINING_CAPTIONS_FILE).write_text(json.dumps(info, indent=1))
    cfg.save(folder / "train_config.yaml")
