"""The training data's mean latent, used to start sampling from the marginal of the first timestep.

Why: with Stable Diffusion's schedule the last training timestep still carries signal
(``sqrt(alpha_bar_T) ~ 0.07`` for ``scaled_linear``), so the model learns to read the image's
low-frequency content (mean brightness, the sky level) from it. Sampling then starts from zero-mean
noise, i.e. from a latent whose "signal" is the all-zero latent, and the model completes a
medium-brightness image: galaxies on a grey-brown fog instead of a dark sky (Lin et al. 2024,
"Common Diffusion Noise Schedules and Sample Steps are Flawed", WACV, Sec. 3). GZ2 cutouts are
mostly dark sky, so the effect is large: on the shipped GalaxySD-mini v2 the frame level of
generated galaxies was 34/28/16 counts (R/G/B) against 9/7/5 for real cutouts.

The fix of that paper (zero terminal SNR + v-prediction) needs retraining. This module does the
inference-time part that needs none: start from ``x_T ~ N(sqrt(alpha_bar_T) mu, 1 - alpha_bar_T)``,
the marginal the model was trained on when the data are summarised by their mean latent ``mu``
(``scheduler.add_noise(mu, noise, t_0)``, the same call img2img uses). ``mu`` (``C x h x w``) is
measured on the training latents and averaged over the 8 flips/rotations the training applies, so
it is a centred, round "mean galaxy" on the mean sky; its share in ``x_T`` is small (0.07 of the
noise scale), so diversity is kept. Measured on the shipped model (16 images x 2 prompts, same
seeds): frame level 34/28/16 -> 11/9/5 (smooth) and 40/35/30 -> 7/5/5 (spiral).

A model folder stores ``mu`` in ``latent_mean.safetensors`` (with how it was measured in the
metadata); folders without it sample as before.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Optional, Union

import torch

from galaxysd_core.errors import GalaxySDFileError, GalaxySDValueError

__all__ = ["LATENT_MEAN_FILE", "measure_latent_mean", "save_latent_mean", "load_latent_mean", "initial_latents"]

#: File of the mean latent in a model folder.
LATENT_MEAN_FILE = "latent_mean.safetensors"


def _dihedral_mean(mean: torch.Tensor) -> torch.Tensor:
    """Average of the 8 flips/rotations of a ``(C, h, w)`` map (square maps only)."""
    views = []
    for k in range(4):
        r = torch.rot90(mean, k, dims=(1, 2))
        views += [r, torch.flip(r, dims=(2,))]
    return torch.stack(views).mean(0)


def measure_latent_mean(batches: Union[torch.Tensor, Iterable[torch.Tensor]], dihedral: bool = True) -> torch.Tensor:
    """Mean ``(C, h, w)`` of scaled training latents (what the UNet sees), float32.

    Parameters
    ----------
    batches : Tensor or iterable of Tensor
        ``(N, C, h, w)`` latents (``(z - shift_factor) * scaling_factor``), one tensor or batches of them.
    dihedral : bool
        Average over the 8 flips/rotations (the training's on-the-fly augmentation); needs square maps.

    Raises
    ------
    GalaxySDValueError
        No latents, inconsistent shapes, or non-finite values.
    """
    if isinstance(batches, torch.Tensor):
        batches = [batches]
    total, n = None, 0
    for b in batches:
        b = torch.as_tensor(b).float()
        if b.ndim != 4:
            raise GalaxySDValueError(f"latents must be (N, C, h, w), got shape {tuple(b.shape)}")
        s = b.sum(0)
        if total is None:
            total = s
        elif s.shape != total.shape:
            raise GalaxySDValueError(f"latent batches differ in shape: {tuple(s.shape)} vs {tuple(total.shape)}")
        else:
            total = total + s
        n += b.shape[0]
    if total is None or n == 0:
        raise GalaxySDValueError("no latents to measure the mean of")
    mean = total / n
    if not torch.isfinite(mean).all():
        raise GalaxySDValueError("the latents contain NaN or infinite values")
    if dihedral:
        if mean.shape[1] != mean.shape[2]:
            raise GalaxySDValueError(f"dihedral averaging needs square latents, got {tuple(mean.shape[1:])}")
        mean = _dihedral_mean(mean)
    return mean.contiguous()


def save_latent_mean(folder: Union[str, Path], mean: torch.Tensor, source: Optional[dict] = None) -> Path:
    """Write ``latent_mean.safetensors`` (tensor ``mean``, metadata ``source`` as JSON) into ``folder``."""
    from safetensors.torch import save_file

    path = Path(folder) / LATENT_MEAN_FILE
    save_file({"mean": mean.detach().float().cpu().contiguous()}, str(path),
              metadata={"source": json.dumps(source or {}, default=str)})
    return path


def load_latent_mean(folder: Union[str, Path], shape: Optional[tuple] = None) -> Optional[torch.Tensor]:
    """The mean latent of a model folder, None when it has none.

    Parameters
    ----------
    folder : path
        Model folder.
    shape : tuple, optional
        Expected ``(C, h, w)`` (the UNet's channels and sample size).

    Raises
    ------
    GalaxySDFileError
        The file exists but is unreadable, not finite or of another shape.
    """
    from safetensors.torch import load_file

    path = Path(folder) / LATENT_MEAN_FILE
    if not path.is_file():
        return None
    try:
        mean = load_file(str(path))["mean"].float()
    except Exception as exc:  # truncated / not safetensors / no "mean" tensor
        raise GalaxySDFileError(f"{str(path)!r} is not a valid mean-latent file: {type(exc).__name__}") from exc
    if mean.ndim != 3 or (shape is not None and tuple(mean.shape) != tuple(shape)) or not torch.isfinite(mean).all():
        raise GalaxySDFileError(f"{str(path)!r} holds a mean latent of shape {tuple(mean.shape)}; the model's "
                                f"UNet expects {tuple(shape) if shape else '(C, h, w)'} finite values: re-measure it "
                                f"(train/finalize_model.py) or delete the file")
    return mean


def initial_latents(noise: torch.Tensor, mean: Optional[torch.Tensor], scheduler, first_timestep: torch.Tensor) -> torch.Tensor:
    """Start latents of a text-to-image call: ``noise * init_noise_sigma`` without a mean, else a draw of
    the first timestep's marginal around the mean, ``scheduler.add_noise(mean, noise, t_0)``.

    Parameters
    ----------
    noise : Tensor
        ``(N, C, h, w)`` standard normal draws (per-image seeded).
    mean : Tensor or None
        ``(C, h, w)`` mean latent (:func:`load_latent_mean`).
    scheduler : diffusers scheduler
        The call's scheduler, timesteps already set.
    first_timestep : Tensor
        The first timestep of the schedule (a 1-element tensor).
    """
    if mean is None:
        return noise * scheduler.init_noise_sigma
    mu = mean.to(device=noise.device, dtype=noise.dtype).unsqueeze(0).expand_as(noise)
    return scheduler.add_noise(mu, noise, first_timestep.repeat(noise.shape[0]))
