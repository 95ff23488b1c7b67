"""What a training run writes besides checkpoints: the pipeline of the current (EMA) weights,
validation grids, and model folders (snapshots and the final ``model/``) with the training
captions' feature counts (``training_captions.json``) and the run's config."""
from __future__ import annotations

import copy
import json
from collections import Counter
from pathlib import Path
from typing import Dict, Optional, Sequence

import numpy as np

from galaxysd_core.errors import GalaxySDValueError
from galaxysd_core.pipelines.model_folder import TRAINING_CAPTIONS_FILE
from galaxysd_core.training.config import DiffusionTrainConfig
from galaxysd_core.training.data import feature_counts


def snapshot_pipeline(vae, unet, text_encoder, tokenizer, scheduler_config, ema_unet=None, ema_text=None,
                      trained_features: Dict[str, int] | None = None):
    """A :class:`~galaxysd_core.pipelines.pipeline_galaxysd.GalaxySDPipeline` of copies of the
    (unwrapped) training modules, with the EMA weights when given, a DDIM scheduler and no progress
    bar; training continues on the originals."""
    from diffusers import DDIMScheduler

    from galaxysd_core.pipelines.pipeline_galaxysd import GalaxySDPipeline, load_pipeline

    u = copy.deepcopy(unet).eval()
    te = copy.deepcopy(text_encoder).eval()
    if ema_unet is not None:
        ema_unet.copy_to(u.parameters())
        if ema_text is not None:
            ema_text.copy_to(te.parameters())
    pipe = load_pipeline(GalaxySDPipeline(vae=vae, text_encoder=te, tokenizer=tokenizer, unet=u,
                                          scheduler=DDIMScheduler.from_config(scheduler_config)))
    pipe.trained_features = trained_features
    return pipe


def write_validation_grid(pipe, cfg: DiffusionTrainConfig, path: Path) -> dict:
    """Generate ``cfg.validation_seeds`` images (seeds 0..) of every validation prompt the model's
    vocabulary parses and save them as one grid (a row per prompt) at ``path``.

    Returns ``{"mean_pixel": ...}`` (mean uint8 value of the images) for the validation row, ``{}``
    when no prompt parses.
    """
    from PIL import Image

    prompts = [p for p in cfg.validation_prompts if _parses(pipe, p)]
    if not prompts:
        return {}
    res = pipe(prompts, num_images_per_prompt=cfg.validation_seeds, seed=0,
               num_inference_steps=cfg.validation_inference_steps,
               guidance_scale=cfg.validation_guidance, output_type="np")
    path.parent.mkdir(exist_ok=True)
    Image.fromarray(image_grid(res.images, len(prompts), cfg.validation_seeds)).save(path)
    return {"mean_pixel": float(res.images.mean())}


def image_grid(images: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """``rows * cols`` images ``(N, h, w, c)`` (row-major) as one ``(rows * h, cols * w, c)`` array."""
    n, h, w, c = images.shape
    return images[: rows * cols].reshape(rows, cols, h, w, c).transpose(0, 2, 1, 3, 4).reshape(rows * h, cols * w, c)


def save_model_folder(pipe, folder: Path, captions: Sequence[str], derived: Dict[str, int],
                      cfg: DiffusionTrainConfig, step: int, wall_s: float,
                      partial_votes: Optional[dict] = None) -> None:
    """Save ``pipe`` (safetensors) with ``training_captions.json`` (feature, derived-feature and
    caption counts, step, wall time in s, and with ``partial_votes`` the rare-phrase counts before
    and after :mod:`galaxysd_core.schema.partial_votes`), ``train_config.yaml`` and, when the pipeline has one, its
    mean training latent (``latent_mean.safetensors``)."""
    folder.mkdir(parents=True, exist_ok=True)
    pipe.save_pretrained(folder, safe_serialization=True)
    info = {"feature_counts": feature_counts(captions), "derived_feature_counts": derived,
            "caption_counts": dict(Counter(captions).most_common()), "n_images": len(captions),
            "step": step, "wall_s": wall_s}
    if partial_votes is not None:
        info["partial_vote_captions"] = partial_votes
    (folder / TRAINING_CAPTIONS_FILE).write_text(json.dumps(info, indent=1))
    cfg.save(folder / "train_config.yaml")
    if getattr(pipe, "latent_mean", None) is not None:  # sampling starts around it (pipelines/latent_mean.py)
        from galaxysd_core.pipelines.latent_mean import save_latent_mean

        save_latent_mean(folder, pipe.latent_mean, {"measured_on": "training latents (8 flips/rotations)",
                                                    "n_images": len(captions)})


def _parses(pipe, prompt: str) -> bool:
    try:
        pipe.parse(prompt)
        return True
    except GalaxySDValueError:
        return False
