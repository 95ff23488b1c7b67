"""Morphometry: light-profile statistics of galaxy cutouts (real or generated).

Used by data preparation (derived roundness labels, scale matching between sources) and by
the evaluation (real-vs-generated comparison in :mod:`galaxysd_core.evaluation.metrics.physical`).

Per image (all lengths in pixels of the image as given):

``r50``
    Half-light radius: radius of the circle around the light centroid holding half the
    background-subtracted flux inside the largest circle that fits in the image.
``concentration``
    ``C = 5 log10(r80 / r20)`` (Bershady et al. 2000; Conselice 2003, ApJS 147, 1). A Gaussian
    has C = 2.14, an exponential disc about 2.7, a de Vaucouleurs profile about 5.2.
``asymmetry``
    Rotational asymmetry ``A = sum|I - I_180| / sum|I| - B`` inside ``1.5 r80`` (Conselice et al.
    2000, ApJ 529, 886), minimised over rotation centres within +-1 pixel of the centroid. The
    background term ``B`` is taken from the noise instead of a sky patch (a 64x64 cutout has
    none to spare): for Gaussian noise of rms sigma, ``E|n_1 - n_2| = 2 sigma / sqrt(pi)``, so
    ``B = N_aperture 2 sigma / (sqrt(pi) sum|I|)``.
``ellipticity``
    ``1 - b/a`` from the flux-weighted second moments of pixels above 1 sigma of the background
    (a = sqrt of the larger eigenvalue of the moment matrix).
``colour_gr``
    ``-2.5 log10(F_blue / F_green)`` inside ``r80``. SDSS colour JPEGs map g, r, i to blue, green,
    red (Lupton et al. 2004, PASP 116, 133), so this follows g-r, but the asinh stretch and JPEG
    compression make it a *proxy*, ordered like g-r, not a calibrated magnitude.

Background level and noise come from the image border (outer 4 pixels): 3-sigma clipped mean and
standard deviation (iterated to convergence).

Why not statmorph / photutils
    statmorph (Rodriguez-Gomez et al. 2019) needs a segmentation map, a PSF-aware noise model and
    calibrated fluxes, and photutils a source detection step; neither is installed, and for centred
    64x64 JPEG cutouts with one galaxy the circular-aperture versions here (~100 lines, numpy/scipy)
    give the same ordering at a fraction of the cost and without failure modes on generated images.
    Numbers are therefore comparable between real and generated images measured *by this module*,
    not with published CAS tables.
"""
from __future__ import annotations

import math
from typing import Dict, List, Sequence

import numpy as np

from galaxysd_core.errors import GalaxySDValueError

#: Statistics computed per image, in table order.
STATS: tuple = ("r50", "concentration", "asymmetry", "ellipticity", "colour_gr")
#: Units of :data:`STATS` for tables and plots.
STAT_UNITS: Dict[str, str] = {"r50": "pixel", "concentration": "", "asymmetry": "", "ellipticity": "",
                              "colour_gr": "mag (proxy)"}
#: Border width (pixels) used for the background estimate.
BORDER = 4
#: Sub-pixel oversampling of the curve of growth (per axis).
OVERSAMPLE = 3


def _to_float_image(image) -> np.ndarray:
    img = np.asarray(image)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=-1)
    if img.ndim == 3 and img.shape[0] == 3 and img.shape[-1] != 3:
        img = np.moveaxis(img, 0, -1)
    if img.ndim != 3 or img.shape[-1] != 3:
        raise GalaxySDValueError(f"expected an RGB image (H, W, 3), got shape {np.shape(image)}")
    if img.shape[0] < 2 * BORDER + 4 or img.shape[1] < 2 * BORDER + 4:
        raise GalaxySDValueError(f"image {img.shape[:2]} is too small for light-profile statistics (>= 16 px)")
    return img.astype(np.float64) / 255.0 if img.dtype == np.uint8 else img.astype(np.float64)


def _background(channel: np.ndarray) -> tuple:
    b = BORDER
    border = np.concatenate([channel[:b].ravel(), channel[-b:].ravel(), channel[b:-b, :b].ravel(),
                             channel[b:-b, -b:].ravel()])
    # 3-sigma clipped mean, not median: the asinh stretch and JPEG clipping at 0 skew the sky noise,
    # and flux sums need its expectation (the median leaves a positive pedestal that inflates radii).
    # Own 6-line loop: scipy.stats.sigmaclip can clip every pixel of a near-constant border.
    kept = border
    for _ in range(10):
        m, s = kept.mean(), kept.std()
        nxt = kept[np.abs(kept - m) <= 3.0 * s]
        if nxt.size == kept.size or nxt.size < 10:
            break
        kept = nxt
    return float(kept.mean()), float(kept.std())


def _radius_fraction(r: np.ndarray, flux: np.ndarray, fractions: Sequence[float], total: float) -> List[float]:
    order = np.argsort(r, kind="stable")
    rs, cum = r[order], np.cumsum(flux[order])
    out = []
    for q in fractions:
        target = q * total
        i = int(np.argmax(cum >= target))
        if cum[i] < target:
            out.append(math.nan)
            continue
        if i == 0:
            out.append(float(rs[0]))
            continue
        c0, c1 = cum[i - 1], cum[i]
        t = 0.0 if c1 == c0 else (target - c0) / (c1 - c0)
        out.append(float(rs[i - 1] + t * (rs[i] - rs[i - 1])))
    return out


def _asymmetry(lum: np.ndarray, centre: tuple, r_ap: float, sigma: float) -> float:
    from scipy.ndimage import map_coordinates

    h, w = lum.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    best = math.inf
    for dy in (-1.0, -0.5, 0.0, 0.5, 1.0):
        for dx in (-1.0, -0.5, 0.0, 0.5, 1.0):
            cy, cx = centre[0] + dy, centre[1] + dx
            ap = (yy - cy) ** 2 + (xx - cx) ** 2 <= r_ap ** 2
            if ap.sum() < 4:
                continue
            rot = map_coordinates(lum, [2 * cy - yy[ap], 2 * cx - xx[ap]], order=1, mode="nearest")
            denom = np.abs(lum[ap]).sum()
            if denom <= 0:
                continue
            a = np.abs(lum[ap] - rot).sum() / denom - ap.sum() * 2.0 * sigma / math.sqrt(math.pi) / denom
            best = min(best, a)
    return best if math.isfinite(best) else math.nan


def light_profile_stats(image) -> Dict[str, float]:
    """Light-profile statistics of one galaxy image (see the module docstring).

    Parameters
    ----------
    image : array_like
        ``(H, W, 3)`` RGB, ``uint8`` 0-255 or float in [0, 1]; the galaxy near the centre.

    Returns
    -------
    dict
        :data:`STATS` plus ``r20``, ``r80`` (pixels), ``centroid_x``, ``centroid_y`` (pixels) and
        ``flux`` (background-subtracted luminance sum). NaN where a statistic is undefined (for
        example a blank image).
    """
    img = _to_float_image(image)
    h, w, _ = img.shape
    nan = {k: math.nan for k in (*STATS, "r20", "r80", "centroid_x", "centroid_y", "flux")}
    lum = img.mean(axis=-1)
    bg, sigma = _background(lum)
    lum = lum - bg
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)

    # centroid: positive flux, refined inside a quarter-image radius around the first guess
    pos = np.clip(lum, 0, None)
    if pos.sum() <= 0:
        return nan
    cy, cx = (pos * yy).sum() / pos.sum(), (pos * xx).sum() / pos.sum()
    for _ in range(2):
        near = pos * (((yy - cy) ** 2 + (xx - cx) ** 2) <= (0.25 * min(h, w)) ** 2)
        if near.sum() <= 0:
            break
        cy, cx = (near * yy).sum() / near.sum(), (near * xx).sum() / near.sum()
    r_max = min(cy + 0.5, cx + 0.5, h - 0.5 - cy, w - 0.5 - cx)
    if r_max < 2:
        return nan

    # oversampled curve of growth: every pixel split into OVERSAMPLE^2 equal sub-pixels
    offs = (np.arange(OVERSAMPLE) + 0.5) / OVERSAMPLE - 0.5
    oy, ox = np.meshgrid(offs, offs, indexing="ij")
    ry = (yy[..., None, None] + oy - cy).ravel()
    rx = (xx[..., None, None] + ox - cx).ravel()
    r = np.hypot(ry, rx)
    f = np.repeat(lum.ravel(), OVERSAMPLE ** 2) / OVERSAMPLE ** 2
    inside = r <= r_max
    total = float(f[inside].sum())
    if total <= 0:
        return nan
    r20, r50, r80 = _radius_fraction(r[inside], f[inside], (0.2, 0.5, 0.8), total)
    conc = 5.0 * math.log10(r80 / r20) if r20 and r20 > 0 and r80 > 0 else math.nan

    asym = _asymmetry(lum, (cy, cx), min(1.5 * r80, r_max), sigma) if math.isfinite(r80) else math.nan

    # second moments of pixels above the noise, inside the full aperture
    rr2 = (yy - cy) ** 2 + (xx - cx) ** 2
    sel = (rr2 <= r_max ** 2) & (lum > (sigma if sigma > 0 else 0.0))
    wgt = np.where(sel, lum, 0.0)
    if wgt.sum() > 0:
        my = (wgt * yy).sum() / wgt.sum()
        mx = (wgt * xx).sum() / wgt.sum()
        qyy = (wgt * (yy - my) ** 2).sum() / wgt.sum()
        qxx = (wgt * (xx - mx) ** 2).sum() / wgt.sum()
        qxy = (wgt * (yy - my) * (xx - mx)).sum() / wgt.sum()
        lam = np.linalg.eigvalsh(np.array([[qxx, qxy], [qxy, qyy]]))
        ell = 1.0 - math.sqrt(max(lam[0], 0.0) / lam[1]) if lam[1] > 0 else math.nan
    else:
        ell = math.nan

    # colour proxy inside r80 (blue = g, green = r in SDSS composites)
    colour = math.nan
    if math.isfinite(r80):
        ap = rr2 <= r80 ** 2
        fluxes = []
        for c in (2, 1):  # blue, green
            ch = img[..., c]
            cbg, _ = _background(ch)
            fluxes.append(float((ch[ap] - cbg).sum()))
        if fluxes[0] > 0 and fluxes[1] > 0:
            colour = -2.5 * math.log10(fluxes[0] / fluxes[1])

    return {"r50": r50, "concentration": conc, "asymmetry": asym, "ellipticity": ell, "colour_gr": colour,
            "r20": r20, "r80": r80, "centroid_x": float(cx), "centroid_y": float(cy), "flux": total}


def physical_stats(images, progress: bool = False):
    """:func:`light_profile_stats` for a batch of images.

    Parameters
    ----------
    images : array_like
        ``(N, H, W, 3)`` uint8 or float, or a sequence of such images.
    progress : bool
        Show a tqdm bar.

    Returns
    -------
    pandas.DataFrame
        One row per image.
    """
    import pandas as pd
    from tqdm.auto import tqdm

    rows = [light_profile_stats(im) for im in tqdm(images, desc="light profiles", disable=not progress)]
    cols = [*STATS, "r20", "r80", "centroid_x", "centroid_y", "flux"]
    return pd.DataFrame(rows, columns=cols)
