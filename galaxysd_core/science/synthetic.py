"""Synthetic galaxies for the science experiments: the generator and a cache of what it made.

Owns :func:`generator_factory` (the GalaxySD pipeline the experiment scripts generate with, loaded
lazily, or an untrained GalaxySD-mini for smoke runs), :func:`model_fingerprint` (identity of a
model folder's weights) and :func:`generate_cached`: images are generated once per (model, prompt,
count, seed, guidance, steps, negative-prompt mode) and cached as safetensors (plus the settings as
JSON) under ``cache/synthetic/``, so re-running an experiment never regenerates them.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple, Union

import numpy as np

from galaxysd_core.errors import GalaxySDFileError, GalaxySDValueError

__all__ = ["model_fingerprint", "generator_factory", "generate_cached"]

logger = logging.getLogger(__name__)


def model_fingerprint(model_dir: Union[str, Path]) -> str:
    """Short SHA-256 of a pipeline folder's weight files (identifies the model in caches and provenance)."""
    root = Path(model_dir)
    files = sorted(p for p in root.rglob("*.safetensors") if p.is_file())
    if not files:
        raise GalaxySDFileError(f"{str(root)!r} holds no safetensors weights; is it a GalaxySD model folder?")
    h = hashlib.sha256()
    for p in files:
        h.update(str(p.relative_to(root)).encode())
        with open(p, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:16]


def generator_factory(model: Optional[str]) -> Tuple[Callable[[], Any], str, str]:
    """``(pipe_factory, model_id, model_path)`` of the generator the experiment scripts use.

    ``model`` is a model folder (None: ``$GALAXYSD_MODEL_DIR`` or the shipped model) or
    ``"random"`` for an untrained GalaxySD-mini (smoke runs of the scripts: the set-up, not the
    science). The factory loads the pipeline when first called (on a synthetic-cache miss) and
    returns the same one afterwards;
    ``model_id`` (folder name + weights fingerprint) keys the caches.
    """
    if model == "random":
        def random_factory():
            from galaxysd_core.models.mini import build_mini_components
            from galaxysd_core.pipelines.pipeline_galaxysd import GalaxySDPipeline, load_pipeline

            return load_pipeline(GalaxySDPipeline(**build_mini_components(seed=0)))

        return random_factory, "random-mini", "random"
    from galaxysd_core.config import model_dir
    from galaxysd_core.pipelines.pipeline_galaxysd import load_pipeline

    model_path = str(model_dir(model))
    model_id = f"{Path(model_path).name}:{model_fingerprint(model_path)}"

    loaded: list = []

    def pipe_factory():  # loads once per process (every cache miss used to reload the weights)
        if not loaded:
            loaded.append(load_pipeline(model_path))
        return loaded[0]

    return pipe_factory, model_id, model_path


def generate_cached(pipe_factory: Callable[[], Any], prompt: str, n: int, *, seed: int, guidance_scale: float,
                    num_inference_steps: int, cache_dir: Optional[Union[str, Path]], model_id: str,
                    max_per_call: int = 64, progress: bool = False,
                    tree_negatives: bool = True) -> Tuple[np.ndarray, Dict[str, Any]]:
    """Generate ``n`` images for ``prompt`` once and cache them (safetensors + JSON settings).

    Parameters
    ----------
    pipe_factory : callable
        Returns the :class:`~galaxysd_core.pipelines.pipeline_galaxysd.GalaxySDPipeline` (called only on a cache miss).
    seed : int
        Image ``i`` uses seed ``seed + i`` (reproducible, independent of batching).
    cache_dir : path or None
        Folder of the cache (None: no caching).
    model_id : str
        Identity of the model (e.g. :func:`model_fingerprint`), part of the cache key.
    max_per_call : int
        Images per pipeline call (memory bound; does not change the images).
    progress : bool
        Show a tqdm progress bar while generating (nothing is shown for a cache hit).
    tree_negatives : bool
        Use the pipeline's automatic GZ2-tree negative prompt (its default); part of the cache key.

    Returns
    -------
    images : numpy.ndarray
        ``uint8 (n, H, W, 3)``.
    info : dict
        Settings, ``cached`` flag, ``seconds`` spent generating, cache file.
    """
    from safetensors.numpy import load_file, save_file

    if n < 1:
        raise GalaxySDValueError(f"number of synthetic images must be >= 1, got {n}")
    settings = {"prompt": prompt, "n": int(n), "seed": int(seed), "guidance_scale": float(guidance_scale),
                "num_inference_steps": int(num_inference_steps), "scheduler": "ddim", "model_id": model_id,
                "tree_negatives": bool(tree_negatives)}
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:20]
    path = Path(cache_dir) / f"{key}.safetensors" if cache_dir else None
    if path is not None and path.is_file():
        try:
            arr = load_file(str(path))["images"]
            if len(arr) == n:
                return arr, {**settings, "cached": True, "seconds": 0.0, "file": str(path)}
        except Exception as exc:  # corrupt cache entry: regenerate
            logger.warning("synthetic cache entry %s is unreadable (%s); regenerating", path, exc)
    pipe = pipe_factory()
    t = time.perf_counter()
    chunks = []
    done = 0
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=n, desc="generate", unit="img", leave=False)
    try:
        while done < n:
            k = min(max_per_call, n - done)
            out = pipe(prompt, num_images_per_prompt=k, seed=[seed + done + i for i in range(k)],
                       num_inference_steps=num_inference_steps, guidance_scale=guidance_scale, output_type="np",
                       tree_negatives=tree_negatives)
            chunks.append(np.asarray(out.images, dtype=np.uint8))
            settings["negative_prompt_used"] = (getattr(out, "negative_prompts", None) or [""])[0]
            done += k
            logger.debug("generated %d/%d for %r", done, n, prompt)
            if bar is not None:
                bar.update(k)
    finally:
        if bar is not None:
            bar.close()
    arr = np.concatenate(chunks)
    seconds = time.perf_counter() - t
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        save_file({"images": np.ascontiguousarray(arr)}, str(tmp),
                  metadata={"settings": json.dumps(settings), "seconds": f"{seconds:.2f}"})
        tmp.replace(path)
        path.with_suffix(".json").write_text(json.dumps({**settings, "seconds": seconds}, indent=2) + "\n")
    return arr, {**settings, "cached": False, "seconds": seconds, "file": str(path) if path else None}
