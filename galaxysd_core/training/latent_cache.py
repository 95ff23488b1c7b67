"""The latent cache of the UNet stage: VAE latents of every training image under all 8 dihedral
transforms (flips and quarter turns), encoded once and stored as safetensors."""
from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path

import numpy as np
import torch

from galaxysd_core._utils import dihedral
from galaxysd_core.training.data import to_unit_range


def cache_key(vae, images: np.ndarray) -> str:
    """Fingerprint of the VAE weights and the data (a sample of 64 images and their number)."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(images[:: max(1, len(images) // 64)]).tobytes())
    h.update(str(len(images)).encode())
    for p in list(vae.parameters())[:4]:
        h.update(p.detach().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


@torch.no_grad()
def encode_latent_cache(vae, images: np.ndarray, path: Path, batch_size: int = 256,
                        show_progress: bool = True, save: bool = True) -> torch.Tensor:
    """Latents of every image under all 8 dihedral transforms, ``(8, N, C, h, w)``, cached in ``path``.

    Latents are the posterior means, normalised with the VAE's ``shift_factor`` and
    ``scaling_factor``. The file is keyed by :func:`cache_key`, so it is computed once and reused
    on resume; a different VAE or data set recomputes it. ``save=False`` (processes other than
    the main one) reads a matching file but never writes one.
    """
    from safetensors.torch import load_file, save_file
    from tqdm.auto import tqdm

    key = cache_key(vae, images)
    if path.is_file():
        blob = load_file(str(path))
        if "key_" + key in blob:
            return blob["latents"]
    data = to_unit_range(images)
    device = next(vae.parameters()).device
    out = []
    total = 8 * math.ceil(len(data) / batch_size)
    bar = tqdm(total=total, desc="latent cache", disable=not show_progress)
    for k in range(8):
        chunks = []
        for i in range(0, len(data), batch_size):
            x = dihedral(data[i:i + batch_size], k).to(device, dtype=vae.dtype)
            z = vae.encode(x).latent_dist.mean
            shift = getattr(vae.config, "shift_factor", None) or 0.0
            chunks.append(((z - shift) * vae.config.scaling_factor).float().cpu())
            bar.update()
        out.append(torch.cat(chunks))
    bar.close()
    latents = torch.stack(out)
    if not save:
        return latents
    tmp = path.with_suffix(".tmp")
    save_file({"latents": latents.contiguous(), "key_" + key: torch.zeros(1)}, str(tmp))
    os.replace(tmp, path)
    return latents
