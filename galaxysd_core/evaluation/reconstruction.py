"""How much of a galaxy survives the VAE: reconstruction quality of held-out real galaxies.

Two views of one question (issue "GalaxySD-mini v2", point 1):

* pixels: PSNR (dB, images in [0, 1]) of the reconstruction (posterior mean, decoded) against the
  original, and the same after a 3x3 box blur of both, which discounts the sky noise an 8x VAE
  cannot keep (:mod:`galaxysd_core.pipelines.sky_noise` adds it back after decoding);
* morphology: the morphology classifier's head probabilities on the reconstructions against those
  on the originals (mean absolute difference and the agreement of the 0.5-thresholded labels),
  and the ROC AUC of each head against the volunteers' caption truth on both, so "do dust lanes,
  bars and rings survive" is answered with numbers. The dust lane has no classifier head (fewer
  than 30 majority examples), so its predicted vote fraction (``t08 dust lane x t06 odd``) is
  compared instead (Pearson correlation, originals vs reconstructions).
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from galaxysd_core.errors import GalaxySDValueError

#: Heads reported by default (those whose detail needs pixels).
DETAIL_HEADS = ("features or disk-shaped", "edge-on galaxy", "bar-shaped structure in the center of galaxy",
                "spiral galaxy", "ring galaxy", "merger", "obvious bulge prominence")
DUST_COLUMN = "t08_odd_feature_a38_dust_lane"
ODD_COLUMN = "t06_odd_a14_yes"


@torch.no_grad()
def reconstruct(vae, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """uint8 reconstructions (posterior mean, decoded) of uint8 ``(N, H, W, 3)`` images."""
    out = []
    for i in range(0, len(images), batch_size):
        x = torch.from_numpy(np.ascontiguousarray(images[i:i + batch_size])).permute(0, 3, 1, 2).float() / 127.5 - 1
        x = x.to(next(vae.parameters()).device, dtype=vae.dtype)
        y = vae.decode(vae.encode(x).latent_dist.mean).sample.float().clamp(-1, 1)
        out.append(((y + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0,) + images.shape[1:], np.uint8)


def psnr(a: np.ndarray, b: np.ndarray, blur: int = 1) -> np.ndarray:
    """Per-image PSNR (dB, [0, 1] range) of uint8 image stacks; ``blur`` > 1 box-blurs both first."""
    x = torch.from_numpy(np.asarray(a)).permute(0, 3, 1, 2).float() / 255.0
    y = torch.from_numpy(np.asarray(b)).permute(0, 3, 1, 2).float() / 255.0
    if blur > 1:
        x, y = (F.avg_pool2d(t, blur, stride=1, padding=blur // 2, count_include_pad=False) for t in (x, y))
    mse = (x - y).pow(2).flatten(1).mean(1).clamp_min(1e-10)
    return (10 * torch.log10(1.0 / mse)).numpy()


def dust_fraction(classifier, images: np.ndarray) -> Optional[np.ndarray]:
    """Predicted fraction of volunteers marking a dust lane (``f(dust lane | odd) x f(odd)``), or None
    for a classifier that does not predict votes."""
    cols = list(getattr(classifier.config, "vote_columns", []) or [])
    if not classifier.is_vote_model or DUST_COLUMN not in cols or ODD_COLUMN not in cols:
        return None
    f = classifier.predict_fractions(images).numpy()
    return f[:, cols.index(DUST_COLUMN)] * f[:, cols.index(ODD_COLUMN)]


def reconstruction_report(vae, images: np.ndarray, classifier=None, truth: Optional[np.ndarray] = None,
                          heads: Sequence[str] = DETAIL_HEADS, batch_size: int = 64) -> Dict:
    """Reconstruction quality of real galaxies (module docstring).

    Parameters
    ----------
    vae : AutoencoderKL
    images : numpy.ndarray
        uint8 ``(N, H, W, 3)`` held-out real galaxies at the VAE's resolution.
    classifier : MorphologyClassifier, optional
        The morphology judge (no morphology rows without one).
    truth : numpy.ndarray, optional
        ``(N, classifier heads)`` 0/1 caption truth (NaN = unknown) for the per-head ROC AUC.
    heads : sequence of str
        Caption phrases of the heads to report (those the classifier has).

    Returns
    -------
    dict
        ``n``, ``psnr_db`` (mean), ``psnr_db_blur3``, and ``heads``: a list of rows
        ``{feature, mean_abs_diff, label_agreement, auc_original, auc_reconstructed, positives}``,
        plus ``dust_lane`` ``{corr, mean_original, mean_reconstructed}`` when available.
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8 or len(images) < 2:
        raise GalaxySDValueError(f"expected >= 2 uint8 images (N, H, W, 3), got {images.dtype} {images.shape}")
    rec = reconstruct(vae, images, batch_size)
    report = {"n": int(len(images)), "psnr_db": float(psnr(images, rec).mean()),
              "psnr_db_blur3": float(psnr(images, rec, blur=3).mean()), "heads": []}
    if classifier is None:
        return report
    from sklearn.metrics import roc_auc_score

    p0, p1 = classifier.predict_proba(images).numpy(), classifier.predict_proba(rec).numpy()
    rows: List[Dict] = []
    for phrase in heads:
        k = classifier.head_index(phrase)
        if k is None:
            continue
        row = {"feature": phrase, "mean_abs_diff": float(np.abs(p0[:, k] - p1[:, k]).mean()),
               "label_agreement": float(((p0[:, k] >= 0.5) == (p1[:, k] >= 0.5)).mean()),
               "auc_original": None, "auc_reconstructed": None, "positives": None}
        if truth is not None:
            t = np.asarray(truth, dtype=float)[:, k]
            ok = ~np.isnan(t)
            row["positives"] = int(np.nansum(t[ok]))
            if ok.any() and 0 < t[ok].sum() < ok.sum():
                row["auc_original"] = float(roc_auc_score(t[ok], p0[ok, k]))
                row["auc_reconstructed"] = float(roc_auc_score(t[ok], p1[ok, k]))
        rows.append(row)
    report["heads"] = rows
    d0, d1 = dust_fraction(classifier, images), dust_fraction(classifier, rec)
    if d0 is not None:
        corr = float(np.corrcoef(d0, d1)[0, 1]) if d0.std() > 0 and d1.std() > 0 else float("nan")
        report["dust_lane"] = {"corr": corr, "mean_original": float(d0.mean()), "mean_reconstructed": float(d1.mean())}
    return report
