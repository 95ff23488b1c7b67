"""Tiny randomly initialised models for the tests (not shipped in the package).

* :func:`build_tiny_pipeline`: a GalaxySD-mini-shaped pipeline at 32 px (a few seconds per generation).
* :func:`build_tiny_sd15_components`: components with the architecture of Stable Diffusion 1.5 at toy
  widths, for testing the SD 1.5 loading and fine-tuning path offline.
"""
from __future__ import annotations

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel

from galaxysd_core.models.mini import MiniModelConfig, build_mini_components

#: Sizes of the tiny random model used by tests (a few seconds for a whole generation on CPU).
TINY_CONFIG = MiniModelConfig(
    resolution=32, latent_channels=4, vae_channels=(8, 16), unet_channels=(16, 32),
    unet_down_blocks=("DownBlock2D", "CrossAttnDownBlock2D"),
    unet_up_blocks=("CrossAttnUpBlock2D", "UpBlock2D"), unet_heads=2, norm_groups=8, vae_norm_groups=8,
    text_hidden=32, text_layers=1, text_heads=2, text_intermediate=64)


def build_tiny_pipeline(seed: int = 0):
    """A tiny randomly initialised :class:`~galaxysd_core.pipelines.pipeline_galaxysd.GalaxySDPipeline` for tests."""
    from galaxysd_core.pipelines.pipeline_galaxysd import GalaxySDPipeline, load_pipeline

    return load_pipeline(GalaxySDPipeline(**build_mini_components(TINY_CONFIG, seed=seed)))


def save_tiny_app_model(folder) -> "Path":
    """The tiny pipeline saved as the app's model folder, with made-up training caption counts (dust lane
    never seen, merger rarely): what the browser tests serve with ``streamlit run app.py``."""
    import json
    from pathlib import Path

    from galaxysd_core.schema.gz2 import caption_phrases

    folder = Path(folder)
    build_tiny_pipeline(seed=0).save_pretrained(folder)
    counts = {p: (0 if p == "dust lane" else 12 if p == "merger" else 300) for p in caption_phrases()}
    (folder / "training_captions.json").write_text(json.dumps({"feature_counts": counts, "n_images": 1000}))
    return folder


def build_tiny_sd15_components(tokenizer_dir: str, seed: int = 0) -> dict:
    """Tiny randomly initialised components with the *architecture* of Stable Diffusion 1.5.

    Same block types and layout as ``runwayml/stable-diffusion-v1-5`` (4 UNet levels: three
    CrossAttnDownBlock2D and a DownBlock2D, an 8x-downsampling AutoencoderKL, a CLIP BPE tokenizer
    and CLIPTextModel) at toy widths, for testing the fine-tuning path offline.

    Parameters
    ----------
    tokenizer_dir : str
        Folder where a tiny CLIP BPE tokenizer (vocab.json + merges.txt) is written.
    """
    import json
    import os

    from transformers import CLIPTokenizer

    torch.manual_seed(seed)
    os.makedirs(tokenizer_dir, exist_ok=True)
    # A CLIP BPE vocabulary over single characters and whole words of the caption vocabulary.
    from galaxysd_core.prompts.grammar import known_words

    chars = sorted({c for w in known_words() + [","] for c in w})
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1, "!": 2}
    for c in chars:
        vocab.setdefault(c, len(vocab))
        vocab.setdefault(c + "</w>", len(vocab))
    merges = []
    for w in known_words():
        cur = list(w[:-1]) + [w[-1] + "</w>"]
        while len(cur) > 1:
            a, b = cur[0], cur[1]
            merges.append(f"{a} {b}")
            vocab.setdefault(a + b, len(vocab))
            cur = [a + b] + cur[2:]
    merges = list(dict.fromkeys(merges))
    with open(os.path.join(tokenizer_dir, "vocab.json"), "w") as fh:
        json.dump(vocab, fh)
    with open(os.path.join(tokenizer_dir, "merges.txt"), "w") as fh:
        fh.write("#version: 0.2\n" + "\n".join(merges) + "\n")
    tokenizer = CLIPTokenizer(os.path.join(tokenizer_dir, "vocab.json"),
                              os.path.join(tokenizer_dir, "merges.txt"), model_max_length=77,
                              pad_token="!")
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=37, num_hidden_layers=2,
        num_attention_heads=4, max_position_embeddings=77, bos_token_id=0, eos_token_id=1, pad_token_id=2))
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=1,
        block_out_channels=(8, 8, 16, 16),
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32, attention_head_dim=2, norm_num_groups=4)
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, sample_size=64, layers_per_block=1,
        block_out_channels=(8, 8, 16, 16), norm_num_groups=4,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4)
    from diffusers import PNDMScheduler

    scheduler = PNDMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              num_train_timesteps=1000, skip_prk_steps=True, steps_offset=1)
    return dict(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler)


def write_toy_galaxies(folder, n: int, seed: int = 0):
    """``n`` 16x16 PNG 'galaxies' in ``folder``: even ones "smooth" (a bright central square on noise),
    odd ones "features" (noise only); yields ``(index, path, smooth, rng)`` so callers add labels."""
    from pathlib import Path

    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        smooth = i % 2 == 0
        im = rng.integers(0, 60, (16, 16, 3)).astype(np.uint8)
        if smooth:
            im[5:11, 5:11] = 220
        path = folder / f"g{i}.png"
        Image.fromarray(im).save(path)
        yield i, path, smooth, rng
