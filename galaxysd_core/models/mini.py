"""Builders of GalaxySD-mini components (the tiny random test models live in ``tests/tiny_models.py``).

GalaxySD-mini keeps the component *types* of Stable Diffusion 1.5 (AutoencoderKL,
UNet2DConditionModel with cross-attention, CLIPTextModel, a tokenizer, a scheduler) so one
pipeline serves both; only the sizes differ. Sizes were chosen by measurement on 2 CPU cores
(``bench/bench_generate.py``, ``bench/bench_vae_channels.py`` and the model card):

* v2 (the defaults, the shipped model): 128x128 RGB images, an 8x-downsampling VAE (Stable
  Diffusion's own factor; channels 32/32/64/64) to a 16x16x8 latent — 8 latent channels kept
  bars, rings, spiral arms and the dust-lane signal better than 4 on held-out GZ2 cutouts
  (classifier AUC on reconstructions, PSNR +1.1 dB at equal training) — and the same UNet as v1,
  so generation costs about what it did at 64 px;
* v1 (``MiniModelConfig.v1()``): 64x64 images, a 4x VAE (32/32/64) to a 16x16x4 latent.

The UNet has cross-attention only at 8x8 and 4x4 (attention at 16x16 doubled the UNet cost for no
visible gain), channels 32/64/128: a batch-16 forward takes ~55 ms on 2 cores, so 8 images x 20
guided steps fit the 1.5 s interactivity budget with the VAE decode.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping, Optional, Tuple

import torch
from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel

from galaxysd_core.prompts.tokenization import DEFAULT_MAX_LENGTH, build_word_tokenizer


@dataclass
class MiniModelConfig:
    """Sizes of GalaxySD-mini. Saved with the trained model as the ``model`` section of its
    ``train_config.yaml`` (:meth:`galaxysd_core.training.config.DiffusionTrainConfig.save`); every
    component's own ``config.json`` holds the same sizes in diffusers/transformers form."""

    resolution: int = 128
    latent_channels: int = 8
    vae_channels: Tuple[int, ...] = (32, 32, 64, 64)
    vae_mid_attention: bool = False
    unet_channels: Tuple[int, ...] = (32, 64, 128)
    unet_down_blocks: Tuple[str, ...] = ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D")
    unet_up_blocks: Tuple[str, ...] = ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D")
    unet_layers_per_block: int = 1
    unet_heads: int = 8
    norm_groups: int = 16
    vae_norm_groups: int = 16
    text_hidden: int = 128
    text_layers: int = 2
    text_heads: int = 4
    text_intermediate: int = 256
    max_length: int = DEFAULT_MAX_LENGTH

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def v1(cls) -> "MiniModelConfig":
        """The sizes of the first GalaxySD-mini (64 px, 4x VAE, 16x16x4 latent)."""
        return cls(resolution=64, latent_channels=4, vae_channels=(32, 32, 64))

    @classmethod
    def from_dict(cls, sizes: Mapping[str, Any]) -> "MiniModelConfig":
        """The config of :meth:`to_dict` output, also after a YAML/JSON round trip (lists -> tuples)."""
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in dict(sizes).items()})

    @property
    def downsampling(self) -> int:
        """Pixels per latent pixel along a side (8 for v2, as Stable Diffusion's VAE)."""
        return 2 ** (len(self.vae_channels) - 1)

    @property
    def latent_size(self) -> int:
        return self.resolution // self.downsampling


def build_vae(cfg: MiniModelConfig) -> AutoencoderKL:
    n = len(cfg.vae_channels)
    return AutoencoderKL(
        in_channels=3, out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * n, up_block_types=("UpDecoderBlock2D",) * n,
        block_out_channels=tuple(cfg.vae_channels), layers_per_block=1,
        latent_channels=cfg.latent_channels, sample_size=cfg.resolution,
        norm_num_groups=cfg.vae_norm_groups, mid_block_add_attention=cfg.vae_mid_attention,
    )


def build_text_encoder(cfg: MiniModelConfig, tokenizer) -> CLIPTextModel:
    config = CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=cfg.text_hidden, intermediate_size=cfg.text_intermediate,
        num_hidden_layers=cfg.text_layers, num_attention_heads=cfg.text_heads,
        max_position_embeddings=cfg.max_length, pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
    )
    return CLIPTextModel(config)


def build_unet(cfg: MiniModelConfig) -> UNet2DConditionModel:
    return UNet2DConditionModel(
        sample_size=cfg.latent_size, in_channels=cfg.latent_channels, out_channels=cfg.latent_channels,
        block_out_channels=tuple(cfg.unet_channels), layers_per_block=cfg.unet_layers_per_block,
        down_block_types=tuple(cfg.unet_down_blocks), up_block_types=tuple(cfg.unet_up_blocks),
        cross_attention_dim=cfg.text_hidden, attention_head_dim=cfg.unet_heads,
        norm_num_groups=cfg.norm_groups,
    )


def build_scheduler() -> DDIMScheduler:
    """The SD 1.5 noise schedule (scaled-linear betas, 1000 steps, epsilon prediction)."""
    return DDIMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                         beta_schedule="scaled_linear", clip_sample=False, set_alpha_to_one=False,
                         steps_offset=1, prediction_type="epsilon")


def build_mini_components(cfg: Optional[MiniModelConfig] = None, seed: int = 0) -> dict:
    """Randomly initialised GalaxySD-mini components (the starting point of training)."""
    cfg = cfg or MiniModelConfig()
    torch.manual_seed(seed)
    tokenizer = build_word_tokenizer(max_length=cfg.max_length)
    return dict(vae=build_vae(cfg), text_encoder=build_text_encoder(cfg, tokenizer),
                tokenizer=tokenizer, unet=build_unet(cfg), scheduler=build_scheduler())
