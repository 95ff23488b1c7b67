"""Labelled sample grids of a pipeline, for model cards and reports: prompts x seeds
(:func:`sample_grid`) and GalaxySD's Figure 3, a real galaxy of each prompt beside generated ones
(:func:`real_vs_generated_grid`)."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image, ImageDraw


def sample_grid(model, prompts: Sequence[str], seeds: Iterable[int] = range(8), steps: int = 20,
                guidance: float = 6.5, scale: int = 2, path: Optional[str | Path] = None) -> Image.Image:
    """One row per prompt, one column per seed, prompt text above each row.

    Parameters
    ----------
    model : path or GalaxySDPipeline
    scale : int
        Nearest-neighbour upscaling of each tile (64 px tiles become 128 px).
    """
    from galaxysd_core.pipelines.pipeline_galaxysd import load_pipeline

    pipe = load_pipeline(model)
    seeds = list(seeds)
    rows = []
    for prompt in prompts:
        out = pipe(prompt, num_images_per_prompt=len(seeds), seed=seeds, num_inference_steps=steps,
                   guidance_scale=guidance, output_type="np")
        rows.append(np.concatenate(list(out.images), axis=1))
    tile = rows[0].shape[0]
    label_h = 14
    width = rows[0].shape[1] * scale
    canvas = Image.new("RGB", (width, len(rows) * (tile * scale + label_h)), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for i, (prompt, row) in enumerate(zip(prompts, rows)):
        y = i * (tile * scale + label_h)
        draw.text((3, y + 1), f"{prompt}   (seeds {seeds[0]}-{seeds[-1]}, {steps} steps, guidance {guidance:g})",
                  fill=(0, 0, 0))
        img = Image.fromarray(row).resize((row.shape[1] * scale, row.shape[0] * scale), Image.Resampling.NEAREST)
        canvas.paste(img, (0, y + label_h))
    if path is not None:
        canvas.save(path)
    return canvas


def matching_real(prompt: str, captions: Sequence[str]) -> Tuple[Optional[int], str]:
    """Index of the first real caption with exactly the prompt's tags (weights and order ignored),
    else the first whose tags contain them; ``(None, "none")`` when no caption does.

    Returns the index and ``"exact"``, ``"contains"`` or ``"none"``.
    """
    from galaxysd_core.prompts.grammar import prompt_tags

    want = set(prompt_tags(prompt))
    superset = None
    for i, c in enumerate(captions):
        tags = set(prompt_tags(c))
        if tags == want:
            return i, "exact"
        if superset is None and want <= tags:
            superset = i
    return (superset, "contains") if superset is not None else (None, "none")


def real_vs_generated_grid(model, prompts: Dict[str, str], real_images: np.ndarray, real_captions: Sequence[str],
                           real_ids: Sequence[str], seeds: Iterable[int] = range(5), scale: int = 1,
                           path: Optional[str | Path] = None, **call_kwargs) -> Tuple[Image.Image, List[dict]]:
    """GalaxySD's Figure 3 (Ma, Sun et al. 2025): per labelled prompt, one real galaxy with that
    caption (held-out galaxies should come first in ``real_*``), a gap, then one generated galaxy
    per seed at the pipeline's defaults (``call_kwargs`` override them).

    Returns the image and one record per prompt (label, prompt, real id, how the caption matched).
    """
    from galaxysd_core.pipelines.pipeline_galaxysd import load_pipeline

    pipe = load_pipeline(model)
    seeds = list(seeds)
    size = pipe.default_size
    tile, gap, label_h = size * scale, 8, 14
    width = tile * (len(seeds) + 1) + gap
    canvas = Image.new("RGB", (width, len(prompts) * (tile + label_h)), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    records = []
    for row, (label, prompt) in enumerate(prompts.items()):
        y = row * (tile + label_h)
        k, how = matching_real(prompt, real_captions)
        real_text = f"real {real_ids[k]} ({how} caption)" if k is not None else "no real galaxy with this caption"
        draw.text((3, y + 1), f"{label}: {prompt}   | left: {real_text}", fill=(0, 0, 0))
        if k is not None:
            img = Image.fromarray(np.asarray(real_images[k])).resize((tile, tile), Image.Resampling.LANCZOS)
            canvas.paste(img, (0, y + label_h))
        out = pipe(prompt, num_images_per_prompt=len(seeds), seed=seeds, output_type="np", **call_kwargs)
        for j, im in enumerate(out.images):
            g = Image.fromarray(im).resize((tile, tile), Image.Resampling.NEAREST)
            canvas.paste(g, (tile + gap + j * tile, y + label_h))
        records.append(dict(label=label, prompt=prompt, real_id=real_ids[k] if k is not None else None, match=how))
    if path is not None:
        canvas.save(path)
    return canvas, records
