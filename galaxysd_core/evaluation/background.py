"""Sky background and pixel statistics of generated galaxies against real cutouts.

The realism check of the issue "GalaxySD-mini v2" point 3 that the classifier cannot see: the
mean background level and noise of the frame (:func:`galaxysd_core.pipelines.sky_noise.measure_background`)
and the pixel histogram, for real held-out cutouts and for generated galaxies with and without the
added sky noise. Also measures the noise model a release ships (:func:`measure_release_noise`).
"""
from __future__ import annotations

from dataclasses import asdict
from typing import Dict, Sequence

import numpy as np

from galaxysd_core.pipelines.sky_noise import (SkyNoise, measure_background, measure_noise_spectrum, missing_spectrum,
                                               sky_noise_from_backgrounds, spectrum_to_sigma)

#: Histogram bins of the pixel-value comparison (8-bit values, all channels).
BINS = np.arange(0, 257, 4)


def pixel_histogram(images: np.ndarray) -> np.ndarray:
    """Normalised histogram (density per 8-bit value) of all pixel values, on :data:`BINS`."""
    h, _ = np.histogram(np.asarray(images).ravel(), bins=BINS, density=True)
    return h


def histogram_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Total-variation distance (0 = identical, 1 = disjoint) between two pixel histograms."""
    w = np.diff(BINS)
    return float(0.5 * np.sum(np.abs(a - b) * w))


def compare_backgrounds(real: np.ndarray, generated: Dict[str, np.ndarray]) -> Dict:
    """Background level / noise / lag-1 correlation and pixel-histogram distance of each generated
    set (``{name: uint8 images}``) against ``real`` (uint8 images).

    Returns
    -------
    dict
        ``{"real": {...}, "<name>": {..., "histogram_tv": float, "level_diff": [R, G, B]}, "bins": [...],
        "histograms": {name: [...]}}``, JSON-ready.
    """
    out = {"real": asdict(measure_background(real)), "bins": BINS.tolist(),
           "histograms": {"real": pixel_histogram(real).tolist()}}
    h_real = np.asarray(out["histograms"]["real"])
    for name, imgs in generated.items():
        bg = asdict(measure_background(imgs))
        h = pixel_histogram(imgs)
        bg["histogram_tv"] = histogram_distance(h_real, h)
        bg["level_diff"] = [round(g - r, 3) for g, r in zip(bg["level"], out["real"]["level"])]
        out[name] = bg
        out["histograms"][name] = h.tolist()
    return out


def measure_release_noise(vae, real_images: np.ndarray, resolution: int, sources: Sequence[str] = ()) -> SkyNoise:
    """The noise model of a release: the frame variance real held-out cutouts have and their VAE
    reconstructions lack (:func:`~galaxysd_core.pipelines.sky_noise.sky_noise_from_backgrounds`), and the
    power spectrum of that missing noise in the corners
    (:func:`~galaxysd_core.pipelines.sky_noise.measure_noise_spectrum`, used by the pipeline)."""
    from galaxysd_core.evaluation.reconstruction import reconstruct

    rec = reconstruct(vae, real_images)
    real_bg = measure_background(real_images)
    rec_bg = measure_background(rec)
    noise = sky_noise_from_backgrounds(real_bg, rec_bg, resolution,
                                       source={"n_images": int(len(real_images)), "caches": list(sources),
                                               "images": "classifier held-out test ids"})
    spectrum = missing_spectrum(measure_noise_spectrum(real_images), measure_noise_spectrum(rec))
    # The g, r, i sky noise of SDSS is independent per band (separate exposures), and each band is one
    # colour channel of the cutouts. The correlation measured in the JPEG cutouts' corners (~0.55, from
    # chroma subsampling and faint sources) is kept for the record but not drawn: measured on 64
    # spirals / 64 round galaxies, drawing it lowered the classifier-embedding precision against real
    # galaxies from 0.59 / 0.41 (Gaussian-kernel noise) to 0.39 / 0.22, drawing the channels
    # independently gave 0.62 / 0.39 (train/notes/sky_noise_spectrum.md).
    noise.source["measured_channel_correlation"] = spectrum.correlation
    spectrum.correlation = np.eye(3).tolist()
    # the shape from the corners, the level from the frame (clipped): the trimmed corner spectrum alone
    # added 11 % more noise than the real frames have (frame sigma 7.1 vs 6.4 in R)
    noise.source["corner_spectrum_sigma"] = [round(float(v), 3) for v in _spectrum_sigma(spectrum, resolution)]
    noise.spectrum = spectrum_to_sigma(spectrum, noise.sigma, resolution)
    return noise


def _spectrum_sigma(spectrum, resolution: int) -> np.ndarray:
    """Standard deviation per channel of noise drawn from ``spectrum`` at ``resolution``."""
    unit = spectrum_to_sigma(spectrum, [1.0, 1.0, 1.0], resolution)
    return np.sqrt(np.asarray(spectrum.power)[:, 0] / np.maximum(np.asarray(unit.power)[:, 0], 1e-12))
