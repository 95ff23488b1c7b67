"""Labelled sample grids (prompts x seeds) of a pipeline, for model cards and reports."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Optional, Sequence

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
