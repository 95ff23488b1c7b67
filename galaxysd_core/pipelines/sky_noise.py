"""SDSS-like sky noise for generated galaxies: measured on real cutouts, added after decoding.

Why: an 8x-downsampling VAE cannot represent pixel-level sky noise (a 16x16x4 latent of a 128 px
image keeps ~2% of its numbers), so decoded galaxies sit on an unnaturally smooth sky and are easy
to tell from real cutouts. As image simulators do (GalSim's ``Image.addNoise`` on noiseless
profiles; Rowe et al. 2015, Astron. Comput. 10, 121), the pipeline adds the missing noise:
Gaussian, correlated over neighbouring pixels and between the colour channels like the resampled
SDSS JPEG cutouts. Two noise models:

* **measured power spectrum** (preferred; ``spectrum`` in ``sky_noise.json``): the radially averaged
  power spectrum per channel of sky patches (the image corners) of real cutouts minus that of their
  VAE reconstructions, and the channels' correlation; noise is drawn as white noise coloured by the
  square root of that spectrum in Fourier space. This is what GalSim's ``CorrelatedNoise`` does with
  a noise field measured from an image (Rowe et al. 2015, Sec. 6). The sky of the GZ2 cutouts has a
  steep, scale-free spectrum (most of the power in the middle third of the frequencies of a 128 px
  cutout is sky noise, not galaxy structure), which a Gaussian kernel cannot reproduce: with it, the
  added noise has almost no power above 0.15 cycles per pixel;
* **Gaussian kernel** (older folders): white noise smoothed by a Gaussian kernel whose width
  reproduces the measured lag-1 correlation, each channel independent.

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
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from galaxysd_core.errors import GalaxySDFileError, GalaxySDValueError

#: File of the noise model in a model folder.
SKY_NOISE_FILE = "sky_noise.json"
#: Width of the background frame as a fraction of the image side (16 px at 128 px).
FRAME_FRACTION = 0.125
#: MAD -> standard deviation of a Gaussian.
MAD_TO_SIGMA = 1.4826
#: Side of the corner patches the noise spectrum is measured on, as a fraction of the image side
#: (32 px of 128: sky in nearly every GZ2 cutout, whose galaxy is scaled to the centre).
SPECTRUM_PATCH_FRACTION = 0.25
#: Fraction of the patches dropped before averaging: those with the most power above
#: :data:`SPECTRUM_TRIM_FREQUENCY` (neighbours, stars, the galaxy's own outskirts).
SPECTRUM_TRIM = 0.2
#: Frequency (cycles per pixel) above which patch power ranks patches and channels are correlated.
SPECTRUM_TRIM_FREQUENCY = 1.0 / 6.0


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
class NoiseSpectrum:
    """Radially averaged noise power spectrum per channel and the channels' correlation.

    Attributes
    ----------
    freq : list of float
        Ring centres in cycles per pixel at the model's resolution (ring width 1 / ``patch``).
    power : list of list of float
        Per channel (R, G, B), the power per Fourier mode in 8-bit units squared, normalised so that
        the variance of a field is the mean of its power over the frequency grid.
    correlation : list of list of float
        3 x 3 correlation of the channels' noise above :data:`SPECTRUM_TRIM_FREQUENCY`.
    patch : int
        Side (pixels) of the patches measured.
    n_patches : int
        Patches averaged (after dropping :data:`SPECTRUM_TRIM` of them).
    """

    freq: List[float]
    power: List[List[float]]
    correlation: List[List[float]]
    patch: int
    n_patches: int

    @classmethod
    def from_dict(cls, data: dict) -> "NoiseSpectrum":
        spec = cls(freq=[float(f) for f in data["freq"]], power=[[float(p) for p in ch] for ch in data["power"]],
                   correlation=[[float(c) for c in row] for row in data["correlation"]], patch=int(data["patch"]),
                   n_patches=int(data.get("n_patches", 0)))
        f, pw, c = np.asarray(spec.freq), np.asarray(spec.power), np.asarray(spec.correlation)
        if (f.ndim != 1 or len(f) < 2 or np.any(np.diff(f) <= 0) or pw.shape != (3, len(f)) or c.shape != (3, 3)
                or not np.all(np.isfinite(pw)) or np.any(pw < 0) or not np.all(np.isfinite(c))):
            raise ValueError("spectrum needs increasing frequencies, 3 finite non-negative power rows of the "
                             "same length and a finite 3 x 3 correlation")
        return spec


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
        Image side (pixels) the model was measured at; other sizes scale ``kernel_sigma`` and the
        spectrum's frequencies.
    source : dict
        How it was measured (real and reconstructed backgrounds, images, caches).
    spectrum : NoiseSpectrum, optional
        The measured power spectrum of the missing noise; when present it is used instead of
        ``sigma`` and ``kernel_sigma`` (module docstring).
    """

    sigma: List[float]
    kernel_sigma: float
    resolution: int
    source: dict = field(default_factory=dict)
    spectrum: Optional[NoiseSpectrum] = None

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
            spectrum = NoiseSpectrum.from_dict(data["spectrum"]) if data.get("spectrum") else None
            noise = cls(sigma=[float(s) for s in data["sigma"]], kernel_sigma=float(data["kernel_sigma"]),
                        resolution=int(data["resolution"]), source=dict(data.get("source", {})), spectrum=spectrum)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
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


def _corner_patches(images: np.ndarray) -> np.ndarray:
    """The four corner patches ``(4N, s, s, 3)`` (float32, each patch's median removed per channel)."""
    x = np.asarray(images)
    if x.ndim != 4 or x.shape[-1] != 3 or len(x) == 0 or x.shape[1] != x.shape[2]:
        raise GalaxySDValueError(f"expected square uint8 images (N, H, H, 3), got shape {x.shape}")
    s = max(8, int(round(x.shape[1] * SPECTRUM_PATCH_FRACTION)))
    x = x.astype(np.float32)
    p = np.concatenate([x[:, :s, :s], x[:, :s, -s:], x[:, -s:, :s], x[:, -s:, -s:]])
    return p - np.median(p, axis=(1, 2), keepdims=True)


def _ring_index(n: int) -> Tuple[np.ndarray, np.ndarray]:
    """Ring of every FFT mode of an ``n x n`` grid (width 1 / n, ring 0 = DC) and the ring centres."""
    f = np.fft.fftfreq(n)
    r = np.sqrt(f[:, None] ** 2 + f[None, :] ** 2)
    ring = np.floor(r * n + 0.5).astype(int)
    return ring, np.arange(ring.max() + 1) / n


def measure_noise_spectrum(images: np.ndarray, trim: float = SPECTRUM_TRIM) -> NoiseSpectrum:
    """Noise power spectrum of the sky in the corners of uint8 ``(N, H, H, 3)`` cutouts.

    Per corner patch (side :data:`SPECTRUM_PATCH_FRACTION` of the image; median removed, Hann
    window, power normalised by the window so a field's variance is the mean power of its modes)
    the power of every channel is averaged in rings of width 1 / patch. The ``trim`` fraction of
    patches with the most luminance power above :data:`SPECTRUM_TRIM_FREQUENCY` (sources) is
    dropped; the rest are averaged. Ring 0 (the patch mean) is left out. The channels' correlation
    is that of their Fourier modes above :data:`SPECTRUM_TRIM_FREQUENCY` in the kept patches.
    For a steep spectrum the window leaks power into the lowest rings (x1.2-2 at rings 1-4 for a
    power law of slope -3 on 32 px patches, tests/test_sky_noise_spectrum.py); above them the
    measurement is within 10 % (from 0.15 cycles per pixel, the middle and highest thirds).
    """
    p = _corner_patches(images)
    n = p.shape[1]
    w = np.outer(np.hanning(n), np.hanning(n)).astype(np.float32)
    F = np.fft.fft2(np.moveaxis(p * w[None, :, :, None], -1, 1)) / np.sqrt(float((w ** 2).mean()) * n * n)
    ring, centres = _ring_index(n)
    hi = centres[ring] > SPECTRUM_TRIM_FREQUENCY
    score = (np.abs(F.mean(axis=1)) ** 2)[:, hi].mean(axis=1)
    keep = np.argsort(score, kind="stable")[: max(1, int(round(len(p) * (1.0 - float(trim)))))]
    Fk = F[keep]
    power2 = (np.abs(Fk) ** 2).mean(axis=0)  # (3, n, n)
    counts = np.bincount(ring.ravel())
    rings = np.stack([np.bincount(ring.ravel(), weights=power2[c].ravel()) / counts for c in range(3)])
    cross = np.einsum("kcm,kdm->cd", Fk[:, :, hi], np.conj(Fk[:, :, hi])).real
    d = np.sqrt(np.maximum(np.diag(cross), 1e-12))
    corr = cross / np.outer(d, d)
    return NoiseSpectrum(freq=centres[1:].round(6).tolist(), power=rings[:, 1:].round(5).tolist(),
                         correlation=corr.round(4).tolist(), patch=int(n), n_patches=int(len(keep)))


def missing_spectrum(real: NoiseSpectrum, reconstructed: NoiseSpectrum) -> NoiseSpectrum:
    """The power real cutouts have and their reconstructions lack (clipped at 0), with the real
    channels' correlation."""
    if real.freq != reconstructed.freq:
        raise GalaxySDValueError("the two spectra were measured on different patch sizes")
    power = np.maximum(np.asarray(real.power) - np.asarray(reconstructed.power), 0.0)
    return NoiseSpectrum(freq=list(real.freq), power=power.round(5).tolist(), correlation=real.correlation,
                         patch=real.patch, n_patches=real.n_patches)


def _channel_mixing(correlation) -> torch.Tensor:
    """A matrix ``L`` with ``L L^T`` = the (nearest positive semi-definite) correlation."""
    c = np.asarray(correlation, dtype=np.float64)
    c = 0.5 * (c + c.T)
    vals, vecs = np.linalg.eigh(c)
    L = vecs @ np.diag(np.sqrt(np.clip(vals, 0.0, None)))
    return torch.from_numpy(L.astype(np.float32))


def _spectral_amplitude(spec: NoiseSpectrum, height: int, width: int, resolution: int) -> torch.Tensor:
    """``sqrt(power)`` per channel on the ``height x width`` FFT grid ``(3, height, width)``; the
    frequencies are scaled to the model's resolution, power below the first ring falls linearly
    to 0 at the mean, above the last ring it stays at the last ring's."""
    scale = max(height, width) / float(resolution)
    fy, fx = np.fft.fftfreq(height), np.fft.fftfreq(width)
    r = np.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2) * scale
    freq = np.concatenate([[0.0], spec.freq])
    amp = np.stack([np.sqrt(np.interp(r, freq, np.concatenate([[0.0], ch]))) for ch in spec.power])
    return torch.from_numpy(amp.astype(np.float32))


def spectrum_to_sigma(spec: NoiseSpectrum, sigma: Sequence[float], resolution: int) -> NoiseSpectrum:
    """``spec`` with each channel's power scaled so that noise drawn from it at ``resolution`` has the
    standard deviation ``sigma`` (8-bit units): the shape from the corners, the level from the frame's
    clipped statistics (:func:`measure_background`, robust to sources that trimming leaves in)."""
    amp = _spectral_amplitude(spec, resolution, resolution, resolution).numpy().astype(np.float64)
    var = (amp ** 2).mean(axis=(1, 2))
    k = np.where(var > 0, np.asarray(sigma, dtype=np.float64) ** 2 / np.maximum(var, 1e-12), 0.0)
    power = (np.asarray(spec.power) * k[:, None]).round(5).tolist()
    return NoiseSpectrum(freq=list(spec.freq), power=power, correlation=spec.correlation, patch=spec.patch,
                         n_patches=spec.n_patches)


def _gaussian_kernel(sigma: float) -> torch.Tensor:
    radius = max(1, int(math.ceil(3 * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


def sky_noise_fields(noise: SkyNoise, generators: Sequence[torch.Generator], height: int, width: int
                     ) -> torch.Tensor:
    """Noise images ``(N, 3, height, width)`` in 8-bit units, one per generator (reproducible per
    seed: drawn on the CPU from each image's own generator).

    With a measured spectrum the white noise is mixed between the channels (their correlation) and
    coloured by the square root of each channel's power spectrum; otherwise it is smoothed separably
    by the Gaussian kernel and rescaled so each channel's standard deviation is ``noise.sigma``.
    """
    fields = torch.cat([torch.randn((1, 3, height, width), generator=g, dtype=torch.float32) for g in generators])
    if noise.spectrum is not None:  # white noise, mixed between channels, coloured in Fourier space
        mixed = torch.einsum("cd,ndhw->nchw", _channel_mixing(noise.spectrum.correlation), fields)
        amp = _spectral_amplitude(noise.spectrum, height, width, noise.resolution)
        return torch.fft.ifft2(torch.fft.fft2(mixed) * amp[None]).real
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
