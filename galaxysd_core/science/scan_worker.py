"""What one scan worker does: receive the detector, decode image files, score them.

Owns the detector's transport to workers as a safetensors byte string (never a pickled module;
:func:`model_to_bytes` / :func:`model_from_bytes`, deserialised once per process), the decoding of
image files exactly as the prepared training caches were made (:func:`decode_images`: Pillow in
JPEG *draft* mode, centre crop, Lanczos resize via :func:`galaxysd_core.data.decode.load_image`, so
a detector trained on a cache sees the same pixels when it scans the files), batched inference
(:func:`infer_scores`: eval mode, no gradients, channels-last, sigmoid of one head) and
:func:`score_chunk`, the task every engine of :mod:`galaxysd_core.science.scan` runs on a chunk of
files. With a *judge* (the morphology classifier v2) the same decoded images also give the
early-type gate and the predicted dust-lane votes
(:func:`galaxysd_core.science.detg_components.component_probabilities`). Unreadable, truncated or
missing files get a NaN score and the reason, never an exception.
"""
from __future__ import annotations

import hashlib
import json
import struct
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

__all__ = ["model_to_bytes", "model_from_bytes", "decode_images", "infer_scores", "infer_components", "score_chunk"]

# per-process cache of deserialised models (key: sha256 of the blob): the detector and the judge
_MODEL_CACHE: Dict[str, Any] = {}
_CACHE_SIZE = 2


def model_to_bytes(model) -> bytes:
    """Serialise a :class:`MorphologyClassifier` to safetensors bytes (config in the metadata)."""
    from safetensors.torch import save

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    meta = {"config": json.dumps(model.config.to_dict()), "class": type(model).__name__}
    return save(state, metadata=meta)


def model_from_bytes(blob: bytes, threads: Optional[int] = None):
    """Inverse of :func:`model_to_bytes` (cached per process); returns the model in eval mode."""
    import torch
    from safetensors.torch import load

    from galaxysd_core.models.classifier import ClassifierConfig, MorphologyClassifier

    if threads:
        torch.set_num_threads(int(threads))
    key = hashlib.sha256(blob).hexdigest()
    model = _MODEL_CACHE.get(key)
    if model is None:
        n = struct.unpack("<Q", blob[:8])[0]
        header = json.loads(blob[8:8 + n])
        cfg = json.loads(header.get("__metadata__", {}).get("config", "{}"))
        model = MorphologyClassifier(ClassifierConfig.from_dict(cfg))
        model.load_state_dict(load(blob), strict=True)
        model.eval().to(memory_format=torch.channels_last)
        while len(_MODEL_CACHE) >= _CACHE_SIZE:  # a detector and a judge per process at a time
            _MODEL_CACHE.pop(next(iter(_MODEL_CACHE)))
        _MODEL_CACHE[key] = model
    return model


def decode_images(files: Sequence[str], crop_fractions: Sequence[float], resolution: int = 64
                  ) -> Tuple[np.ndarray, List[str]]:
    """Decode, crop and resize image files (draft-mode JPEG); failures give zeros and a reason.

    Returns
    -------
    images : numpy.ndarray
        ``uint8 (N, resolution, resolution, 3)``.
    reasons : list of str
        ``""`` for decoded images, else why the file was skipped.
    """
    from galaxysd_core.data.decode import load_image
    from galaxysd_core.errors import ImageRejected

    out = np.zeros((len(files), resolution, resolution, 3), dtype=np.uint8)
    reasons = [""] * len(files)
    for i, (f, c) in enumerate(zip(files, crop_fractions)):
        try:
            out[i] = load_image(f, resolution, float(c))
        except ImageRejected as exc:
            reasons[i] = str(exc)
    return out, reasons


def infer_scores(model, images: np.ndarray, head: int = 0, batch_size: int = 64) -> np.ndarray:
    """Sigmoid of logit ``head`` of ``model`` for uint8 ``(N, H, W, 3)`` images, in batches of
    ``batch_size`` (inference mode, channels-last input; the model must be in eval mode).

    Returns
    -------
    numpy.ndarray
        ``float64 (N,)`` probabilities.
    """
    import torch

    scores = np.empty(len(images), dtype=np.float64)
    with torch.inference_mode():
        for i in range(0, len(images), batch_size):
            x = torch.from_numpy(images[i:i + batch_size]).permute(0, 3, 1, 2).float().div_(255.0)
            x = x.contiguous(memory_format=torch.channels_last)
            scores[i:i + batch_size] = torch.sigmoid(model(x)[:, head]).double().numpy()
    return scores


def infer_components(judge, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """The judge's ``(N, 5)`` components of uint8 images (channels-last input, inference mode)."""
    from galaxysd_core.science.detg_components import component_probabilities

    return component_probabilities(judge, images, batch_size)


def score_chunk(blob: bytes, files: Sequence[str], crop_fractions: Sequence[float], resolution: int = 64,
                head: int = 0, batch_size: int = 64, threads: int = 1,
                judge_blob: Optional[bytes] = None) -> Dict[str, Any]:
    """Worker function of every engine: decode ``files`` and score them with the detector ``blob``
    (and, with ``judge_blob``, the classifier's components of the same images).

    Returns
    -------
    dict
        ``scores`` (float array, NaN for skipped files), ``reasons`` (list of str), ``decode_s`` and
        ``infer_s`` (seconds spent in each stage); ``components`` ``(N, 5)`` (NaN rows for skipped
        files) with a judge.
    """
    model = model_from_bytes(blob, threads=threads)
    judge = model_from_bytes(judge_blob, threads=threads) if judge_blob else None
    t0 = time.perf_counter()
    images, reasons = decode_images(files, crop_fractions, resolution)
    t1 = time.perf_counter()
    bad = [bool(r) for r in reasons]
    scores = infer_scores(model, images, head, batch_size)
    scores[bad] = np.nan
    out = {"scores": scores, "reasons": reasons, "decode_s": t1 - t0}
    if judge is not None:
        comps = infer_components(judge, images, batch_size)
        comps[bad] = np.nan
        out["components"] = comps
    out["infer_s"] = time.perf_counter() - t1
    return out
