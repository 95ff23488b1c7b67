"""The decoder stage (galaxysd_core/training/decoder.py): spectral loss and a tiny fine-tune."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from galaxysd_core.errors import GalaxySDValueError
from galaxysd_core.training.decoder import CONFIG_FILE, DecoderFinetuneConfig, finetune_decoder, spectral_loss


def _images(n=8, size=32, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 255, (n, size, size, 3)).astype(np.uint8)


def test_spectral_loss_is_phase_free_and_punishes_blur():
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    assert float(spectral_loss(x, x)) == 0.0
    # a circular shift changes every pixel but no Fourier amplitude
    shifted = torch.roll(x, shifts=(3, 5), dims=(2, 3))
    assert float(torch.nn.functional.l1_loss(shifted, x)) > 0.3
    assert float(spectral_loss(shifted, x)) < 1e-4
    blurred = torch.nn.functional.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
    assert float(spectral_loss(blurred, x)) > 0.3
    with pytest.raises(GalaxySDValueError, match="shapes differ"):
        spectral_loss(x, x[:1])


def test_spectral_loss_expected_value():
    # one image whose amplitudes are exactly twice the target's: |log 2 a - log a| = log 2 where eps is negligible
    x = torch.zeros(1, 1, 4, 4)
    x[0, 0, 0, 0] = 1.0
    val = float(spectral_loss(2 * x, x, eps=1e-12))
    assert val == pytest.approx(np.log(2.0), rel=1e-5)


@pytest.mark.parametrize("bad, match", [(dict(steps=0), "steps"), (dict(learning_rate=0), "learning_rate"),
                                        (dict(spectral_weight=-1), "spectral_weight"), (dict(crop=-8), "crop")])
def test_config_checks(bad, match, tmp_path):
    with pytest.raises(GalaxySDValueError, match=match):
        DecoderFinetuneConfig(pretrained_model=str(tmp_path), output_dir=str(tmp_path), **bad)


def test_finetune_changes_only_the_decoder_and_resumes(saved, tmp_path):
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    cfg = DecoderFinetuneConfig(pretrained_model=str(saved), output_dir=str(tmp_path / "run"), steps=3,
                                batch_size=4, crop=16, checkpointing_steps=2, learning_rate=1e-2)
    out = finetune_decoder(cfg, images=_images(), show_progress=False)
    before = AutoencoderKL.from_pretrained(saved / "vae", use_safetensors=True)
    after = AutoencoderKL.from_pretrained(out / "vae", use_safetensors=True)
    sb, sa = before.state_dict(), after.state_dict()
    enc = [k for k in sb if k.startswith(("encoder.", "quant_conv."))]
    dec = [k for k in sb if k.startswith(("decoder.", "post_quant_conv."))]
    assert enc and dec
    assert all(torch.equal(sb[k], sa[k]) for k in enc)  # the UNet's latents stay valid
    assert any(not torch.equal(sb[k], sa[k]) for k in dec)
    assert after.config.scaling_factor == before.config.scaling_factor
    assert (out / "unet").is_dir() and (out / "text_encoder").is_dir()
    assert json.loads((out / CONFIG_FILE).read_text())["spectral_weight"] == 0.1
    assert sorted(p.name for p in (tmp_path / "run").glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-3"]
    # resuming a finished run trains nothing more and gives the same decoder
    again = finetune_decoder(cfg, images=_images(), show_progress=False)
    sa2 = AutoencoderKL.from_pretrained(again / "vae", use_safetensors=True).state_dict()
    assert all(torch.equal(sa[k], sa2[k]) for k in dec)


def test_crop_must_fit_the_latent_grid(saved, tmp_path):
    cfg = DecoderFinetuneConfig(pretrained_model=str(saved), output_dir=str(tmp_path / "run"), steps=1, crop=15)
    with pytest.raises(GalaxySDValueError, match="multiple of 2 px"):
        finetune_decoder(cfg, images=_images(), show_progress=False)
