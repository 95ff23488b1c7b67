"""Sharpness of generated galaxies: radially averaged power spectra against real galaxies of the same caption.

An 8x VAE decodes a 16x16 latent to 128 px, and generated galaxies can look like upsampled latents
next to real cutouts. The radially averaged power spectrum (RAPS) of the images says at which
spatial frequencies the power is missing. The frequencies are split into thirds of the Nyquist
range: the lowest third holds the galaxy's overall light profile, the middle third the structure
astronomers look at (spiral arms, bars, dust lanes: a few to ~10 pixels at 128 px), the highest
third is dominated by pixel noise (for generated images: the added SDSS sky noise). The figure of
merit is the *ratio of generated to real power in the middle third* (1 = as sharp as real).

In the GZ2 cutouts most of that middle-third power is **sky noise**, not galaxy structure: the
noise power spectrum measured in the corners (:func:`~galaxysd_core.pipelines.sky_noise.measure_noise_spectrum`)
accounts for ~90 % of it in 32 real spirals. So the report also gives the *structure* ratio:
the power of the generated galaxies *without* added noise over the real power *minus its sky-noise
floor* (:func:`noise_floor`). It is the number to read for arms, bars and lanes; it is uncertain
where the floor is most of the real power (the real structure is then a small difference).

Owns :data:`BANDS`, :func:`radial_power_spectrum`, :func:`noise_floor`, :func:`structure_ratios`,
:func:`band_ratios`, :func:`sharpness_report` and :func:`measure_sharpness`.
"""
from __future__ import annotations

from typing import Dict, Tuple

import numpy as np

from galaxysd_core.errors import GalaxySDValueError

__all__ = ["BANDS", "radial_power_spectrum", "noise_floor", "structure_ratios", "band_ratios", "sharpness_report",
           "measure_sharpness"]

#: Thirds of the frequency range (cycles per pixel, Nyquist = 0.5).
BANDS = {"low": (0.0, 1 / 6), "middle": (1 / 6, 2 / 6), "high": (2 / 6, 0.5)}


def radial_power_spectrum(images: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Mean radially averaged power spectrum of the luminance of square uint8 / float images.

    Each image's mean is removed and a Hann window applied before the FFT (no edge leakage);
    power is averaged in rings of one frequency bin.

    Returns
    -------
    freq : numpy.ndarray
        Ring centres in cycles per pixel (0 .. 0.5).
    power : numpy.ndarray
        Mean power per ring over the images.
    """
    x = np.asarray(images, dtype=np.float64)
    if x.ndim == 4:
        x = x.mean(axis=-1)  # luminance (equal weights of the gri-as-RGB channels)
    if x.ndim != 3 or x.shape[1] != x.shape[2] or x.shape[1] < 8:
        raise GalaxySDValueError(f"need square images (N, H, W[, 3]) of at least 8 px, got {np.shape(images)}")
    n = x.shape[1]
    w = np.hanning(n)
    win = np.outer(w, w)
    x = (x - x.mean(axis=(1, 2), keepdims=True)) * win
    p = np.abs(np.fft.fftshift(np.fft.fft2(x), axes=(1, 2))) ** 2
    fy, fx = np.meshgrid(np.fft.fftshift(np.fft.fftfreq(n)), np.fft.fftshift(np.fft.fftfreq(n)), indexing="ij")
    r = np.sqrt(fx ** 2 + fy ** 2)
    edges = np.arange(0, 0.5 + 1 / n, 1 / n)
    which = np.digitize(r.ravel(), edges) - 1
    mean_p = p.mean(axis=0).ravel()
    k = len(edges) - 1
    sums = np.bincount(which.clip(0, k), weights=mean_p, minlength=k + 1)[:k]
    counts = np.bincount(which.clip(0, k), minlength=k + 1)[:k]
    return 0.5 * (edges[:-1] + edges[1:]), sums / np.maximum(counts, 1)


def noise_floor(images: np.ndarray, freq: np.ndarray) -> np.ndarray:
    """The sky noise's share of :func:`radial_power_spectrum` of ``images`` at ``freq``: the luminance
    power spectrum of their corners (:func:`~galaxysd_core.pipelines.sky_noise.measure_noise_spectrum`,
    channels combined with their correlation) in the units of :func:`radial_power_spectrum`
    (times ``n**2`` and the Hann window's mean square)."""
    from galaxysd_core.pipelines.sky_noise import measure_noise_spectrum

    x = np.asarray(images)
    spec = measure_noise_spectrum(x)
    pw, rho = np.sqrt(np.asarray(spec.power)), np.asarray(spec.correlation)
    lum = np.einsum("cf,df,cd->f", pw, pw, rho) / 9.0  # luminance = mean of the 3 channels
    n = x.shape[1]
    w = np.hanning(n)
    scale = n * n * float((np.outer(w, w) ** 2).mean())
    return scale * np.interp(freq, np.concatenate([[0.0], spec.freq]), np.concatenate([[0.0], lum]))


def structure_ratios(clean_generated: np.ndarray, real: np.ndarray) -> Dict[str, Dict[str, float]]:
    """Per band of :data:`BANDS`: ``structure`` = power of generated galaxies without added noise over
    the real power minus the real sky-noise floor (:func:`noise_floor`), and ``real_noise_share`` = the
    floor's share of the real power (module docstring)."""
    f, pg = radial_power_spectrum(clean_generated)
    fr, pr = radial_power_spectrum(real)
    if len(f) != len(fr):
        raise GalaxySDValueError("generated and real images must have the same size")
    floor = noise_floor(real, f)
    out: Dict[str, Dict[str, float]] = {"structure": {}, "real_noise_share": {}}
    for name, (lo, hi) in BANDS.items():
        m = (f > lo) & (f <= hi)
        real_structure = float(np.clip(pr[m] - floor[m], 0.0, None).sum())
        out["structure"][name] = float(pg[m].sum() / real_structure) if real_structure > 0 else float("nan")
        out["real_noise_share"][name] = float(min(floor[m].sum() / pr[m].sum(), 1.0))
    return out


def band_ratios(generated: np.ndarray, real: np.ndarray) -> Dict[str, float]:
    """Generated / real power in each band of :data:`BANDS` (module docstring)."""
    fg, pg = radial_power_spectrum(generated)
    fr, pr = radial_power_spectrum(real)
    if len(fg) != len(fr):
        raise GalaxySDValueError("generated and real images must have the same size")
    out = {}
    for name, (lo, hi) in BANDS.items():
        m = (fg > lo) & (fg <= hi)
        out[name] = float(pg[m].sum() / pr[m].sum())
    return out


def sharpness_report(generated: np.ndarray, real: np.ndarray) -> Dict[str, object]:
    """Band ratios plus both spectra (for the card's figure)."""
    f, pg = radial_power_spectrum(generated)
    _, pr = radial_power_spectrum(real)
    return {"ratios": band_ratios(generated, real), "freq": f, "power_generated": pg, "power_real": pr,
            "n_generated": int(len(generated)), "n_real": int(len(real))}


def measure_sharpness(pipe, real, prompt: str, n: int = 32, seed: int = 0, **generate_kwargs) -> Dict[str, object]:
    """:func:`sharpness_report` of ``n`` generated galaxies of ``prompt`` (the model's recommended
    settings unless overridden) against ``n`` real galaxies of the same caption.

    Parameters
    ----------
    real : RealReference
        Real galaxies; the first ``n`` with exactly the prompt's tags are used (fewer when there are fewer).

    Raises
    ------
    GalaxySDValueError
        When fewer than 8 real galaxies have the caption.
    """
    from galaxysd_core.evaluation.runner import generate

    idx, how = real.select(prompt, 8)
    if how != "same caption":
        raise GalaxySDValueError(f"fewer than 8 real galaxies with the caption {prompt!r}; pick a common caption")
    d = pipe.generation_defaults
    kw = dict(steps=d.num_inference_steps, guidance=d.guidance_scale, tree_negatives=d.tree_negatives)
    kw.update(generate_kwargs)
    gen = generate(pipe, prompt, n, seed, **kw)
    ref = real.images[idx[:n]]
    out = sharpness_report(gen, ref)
    clean = generate(pipe, prompt, n, seed, **kw, sky_noise=False)  # the same galaxies, no added noise
    out["ratios_without_noise"] = band_ratios(clean, ref)
    out.update(structure_ratios(clean, ref))
    out["power_generated_clean"] = radial_power_spectrum(clean)[1]
    out["noise_floor_real"] = noise_floor(ref, out["freq"])
    out.update(prompt=prompt, seed=int(seed))
    return out
