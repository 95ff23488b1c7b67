"""SDSS-like sky noise for generated galaxies: measured on real cutouts, added after decoding.

Why: an 8x-downsampling VAE cannot represent pixel-level sky noise (a 16x16x4 latent of a 128 px
image keeps ~2% of its numbers), so decoded galaxies sit on an unnaturally smooth sky and are easy
to tell from real cutouts. As image simulators do (GalSim's ``Image.addNoise`` on noiseless
profiles; Rowe et al. 2015, Astron. Comput. 10, 121), the pipeline adds the missing noise:
Gaussian, per colour channel, correlated over neighbouring pixels like the resampled SDSS JPEG
cutouts (white noise smoothed by a Gaussian kernel whose width reproduces the measured lag-1
correlation).

The noise model of a model folder lives in ``sky_noise.json``; it is measured at release time
(:func:`measure_sky_noise` on real cutouts and on VAE reconstructions of the same cutouts, so only
the *missing* variance is added: ``sigma_add**2 = sigma_real**2 - sigma_reconstructed**2``).
Background estimates use the outer frame of each cutout (16 px of 128, scaled with the size), with
robust statistics (3-sigma clipping around the median, window from the median absolute deviation), so neighbours and stars in the frame barely bias
them. Values are in 8-bit pixel units (0-255).
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import List, Optional, Sequence, Union

import numpy as np
import torch

from galaxysd_core.errors import GalaxySDFileError, GalaxySDValueError

#: File of the noise model in a model folder.
SKY_NOISE_FILE = "sky_noise.json"
#: Width of the background frame as a fraction of the image side (16 px at 128 px).
FRAME_FRACTION = 0.125
#: MAD -> standard deviation of a Gaussian.
MAD_TO_SIGMA = 1.4826


@dataclass
class SkyBackground:
    """Robust background statistics of a set of images (8-bit units, per channel R, G, B).

    Attributes
    ----------
    level : list of float
        Median background level (median over images of each image's frame median).
    sigma : list of float
        Median per-image noise (clipped standard deviation of the frame).
    lag1 : list of float
        Median lag-1 autocorrelation of the frame noise (0 = white noise).
    n_images : int
    """

    level: List[float]
    sigma: List[float]
    lag1: List[float]
    n_images: int


@dataclass
class SkyNoise:
    """The noise the pipeline adds after decoding.

    Attributes
    ----------
    sigma : list of float
        Gaussian sigma per channel (8-bit units) of the added noise.
    kernel_sigma : float
        Gaussian smoothing (pixels at ``resolution``) of the white noise; the added noise has
        unit-normalised variance ``sigma**2`` after smoothing.
    resolution : int
        Image side (pixels) the model was measured at; other sizes scale ``kernel_sigma``.
    source : dict
        How it was measured (real and reconstructed backgrounds, images, caches).
    """

    sigma: List[float]
    kernel_sigma: float
    resolution: int
    source: dict = field(default_factory=dict)

    def save(self, folder: Union[str, Path]) -> Path:
        path = Path(folder) / SKY_NOISE_FILE
        path.write_text(json.dumps(asdict(self), indent=1))
        return path

    @classmethod
    def load(cls, folder: Union[str, Path]) -> Optional["SkyNoise"]:
        """The noise model of a model folder, None when it has none.

        Raises
        ------
        GalaxySDFileError
            If ``sky_noise.json`` exists but is not a valid noise model.
        """
        path = Path(folder) / SKY_NOISE_FILE
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text())
            noise = cls(sigma=[float(s) for s in data["sigma"]], kernel_sigma=float(data["kernel_sigma"]),
                        resolution=int(data["resolution"]), source=dict(data.get("source", {})))
        except (ValueError, KeyError, TypeError) as exc:
            raise GalaxySDFileError(f"{str(path)!r} is not a valid sky-noise model: {exc}") from exc
        if len(noise.sigma) != 3 or min(noise.sigma) < 0 or noise.kernel_sigma < 0 or noise.resolution < 1:
            raise GalaxySDFileError(f"{str(path)!r} is not a valid sky-noise model (3 sigmas >= 0, kernel >= 0)")
        return noise


def _frame(images: np.ndarray) -> int:
    return max(2, int(round(images.shape[1] * FRAME_FRACTION)))


def measure_background(images: np.ndarray) -> SkyBackground:
    """Robust background level, noise and lag-1 correlation of uint8 ``(N, H, W, 3)`` images.

    Per image and channel: the outer frame's median (level), its clipped standard deviation (sigma) and the
    lag-1 correlation ``1 - var(dx) / (2 var)`` from the clipped variance of horizontal neighbour differences
    inside the frame; the medians over images are returned.
    """
    x = np.asarray(images)
    if x.ndim != 4 or x.shape[-1] != 3 or len(x) == 0:
        raise GalaxySDValueError(f"expected uint8 images (N, H, W, 3), got shape {x.shape}")
    x = x.astype(np.float32)
    b = _frame(x)
    top, bottom = x[:, :b], x[:, -b:]
    strips = [top, bottom, x[:, b:-b, :b].transpose(0, 2, 1, 3), x[:, b:-b, -b:].transpose(0, 2, 1, 3)]
    vals = np.concatenate([s.reshape(len(x), -1, 3) for s in strips], axis=1)
    level = np.median(vals, axis=1)
    sigma = _clipped_sigma(vals, level)
    diffs = np.concatenate([np.diff(s, axis=2).reshape(len(x), -1, 3) for s in (top, bottom)], axis=1)
    sigma_d = _clipped_sigma(diffs, np.median(diffs, axis=1))
    with np.errstate(divide="ignore", invalid="ignore"):
        lag1 = np.where(sigma > 0, 1.0 - sigma_d ** 2 / (2 * np.maximum(sigma, 1e-6) ** 2), 0.0)
    return SkyBackground(level=np.median(level, 0).round(3).tolist(), sigma=np.median(sigma, 0).round(3).tolist(),
                         lag1=np.clip(np.median(lag1, 0), -1, 0.999).round(3).tolist(), n_images=int(len(x)))


def _clipped_sigma(values: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """Standard deviation of ``values`` ``(N, M, 3)`` within 3 robust sigmas of ``centre`` ``(N, 3)``.

    The MAD alone is quantised on 8-bit data (a sky sigma of 5 counts has a MAD of 3.4, rounded
    to 3 or 4), so it only sets the clipping window; the clipped standard deviation is divided
    by 0.9866, its value for a Gaussian clipped at 3 sigma.
    """
    dev = values - centre[:, None]
    window = 3.0 * np.maximum(MAD_TO_SIGMA * np.median(np.abs(dev), axis=1), 1.0)
    inside = np.abs(dev) <= window[:, None]
    n = np.maximum(inside.sum(axis=1), 2)
    mean = (dev * inside).sum(axis=1) / n
    var = (((dev - mean[:, None]) ** 2) * inside).sum(axis=1) / (n - 1)
    return np.sqrt(var) / 0.9866


def kernel_for_lag1(lag1: float) -> float:
    """Sigma (pixels) of the Gaussian kernel giving smoothed white noise this lag-1 correlation:
    ``rho = exp(-1 / (4 s**2))`` for a Gaussian kernel of sigma ``s``; 0 for white noise."""
    if lag1 <= 0.0:
        return 0.0
    return float(math.sqrt(-1.0 / (4.0 * math.log(min(lag1, 0.999)))))


def sky_noise_from_backgrounds(real: SkyBackground, reconstructed: SkyBackground, resolution: int,
                               source: Optional[dict] = None) -> SkyNoise:
    """The noise to add: the variance real cutouts have and reconstructions lack, per channel,
    correlated like the real frames' noise."""
    sigma = [float(math.sqrt(max(r * r - g * g, 0.0))) for r, g in zip(real.sigma, reconstructed.sigma)]
    kernel = kernel_for_lag1(float(np.mean(real.lag1)))
    info = dict(real=asdict(real), reconstructed=asdict(reconstructed), **(source or {}))
    return SkyNoise(sigma=[round(s, 3) for s in sigma], kernel_sigma=round(kernel, 3), resolution=int(resolution),
                    source=info)


def _gaussian_kernel(sigma: float) -> torch.Tensor:
    radius = max(1, int(math.ceil(3 * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


def sky_noise_fields(noise: SkyNoise, generators: Sequence[torch.Generator], height: int, width: int
                     ) -> torch.Tensor:
    """Noise images ``(N, 3, height, width)`` in 8-bit units, one per generator (reproducible per
    seed: drawn on the CPU from each image's own generator).

    The white noise is smoothed separably and rescaled so each channel's standard deviation is
    ``noise.sigma`` whatever the kernel.
    """
    fields = torch.cat([torch.randn((1, 3, height, width), generator=g, dtype=torch.float32) for g in generators])
    ks = noise.kernel_sigma * (height / noise.resolution)
    if ks > 0.05:
        k = _gaussian_kernel(ks)
        pad = len(k) // 2
        w = k.view(1, 1, 1, -1).repeat(3, 1, 1, 1)
        fields = torch.nn.functional.conv2d(torch.nn.functional.pad(fields, (pad, pad, 0, 0), mode="reflect"),
                                            w, groups=3)
        fields = torch.nn.functional.conv2d(torch.nn.functional.pad(fields, (0, 0, pad, pad), mode="reflect"),
                                            w.transpose(2, 3), groups=3)
        fields = fields / float(torch.sqrt((torch.outer(k, k) ** 2).sum()))  # unit variance again
    return fields * torch.tensor(noise.sigma, dtype=torch.float32).view(1, 3, 1, 1)
