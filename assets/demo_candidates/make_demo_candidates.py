"""Regenerate the demo candidate catalog (synthetic galaxies drawn with numpy; no real images).

Run from the repository root::

    .venv/bin/python assets/demo_candidates/make_demo_candidates.py

Writes ``candidates.csv`` and ``images/cand_XX.png`` next to this file. Every image is a toy
model (Sersic-like bulge + exponential disc, optional spiral arms, bar, ring or dust lane, sky
noise) so the Candidates page can be tried without any data; the ra/dec values are arbitrary
points in the SDSS footprint, not the positions of these (imaginary) galaxies.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
SIZE = 96


def draw(rng: np.random.Generator, kind: str) -> np.ndarray:
    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(float) - (SIZE - 1) / 2
    pa = rng.uniform(0, np.pi)
    q = rng.uniform(0.45, 0.95) if kind != "edge-on dust lane" else 0.22
    xr = x * np.cos(pa) + y * np.sin(pa)
    yr = (-x * np.sin(pa) + y * np.cos(pa)) / q
    r = np.hypot(xr, yr)
    theta = np.arctan2(yr, xr)
    bulge = np.exp(-7.67 * ((r / rng.uniform(3, 6)) ** 0.25 - 1))
    bulge /= bulge.max()
    disc = np.exp(-r / rng.uniform(7, 12))
    light = 0.8 * bulge + disc
    colour = np.stack([light * 1.0, light * 0.85, light * 0.7], -1)  # reddish bulge + disc
    if kind in ("spiral", "barred spiral", "ring + spiral"):
        arms = 0.5 * (1 + np.cos(2 * (theta - np.log(r + 1) * rng.uniform(1.5, 2.5))))
        blue = disc * arms * np.exp(-r / 18) * 1.6
        colour += np.stack([blue * 0.6, blue * 0.8, blue * 1.2], -1)
    if kind == "barred spiral":
        bar = np.exp(-(xr / 10) ** 2 - (yr * q / 2.2) ** 2)
        colour += 0.6 * bar[..., None] * np.array([1.0, 0.9, 0.75])
    if kind in ("ring", "ring + spiral"):
        ring = np.exp(-((r - rng.uniform(14, 20)) / 2.0) ** 2)
        colour += 0.3 * ring[..., None] * np.array([0.6, 0.8, 1.2])
    if kind in ("dust lane", "edge-on dust lane"):
        lane = 1 - 0.8 * np.exp(-(yr * q / 2.2) ** 2) * np.exp(-(xr / 22) ** 4)
        colour *= lane[..., None] ** np.array([1.3, 1.1, 0.9])
    if kind == "merger":
        dx, dy = rng.uniform(10, 18, 2) * rng.choice([-1, 1], 2)
        r2 = np.hypot(x - dx, y - dy)
        colour += 0.7 * np.exp(-r2 / 4.0)[..., None] * np.array([1.0, 0.85, 0.7])
        t = np.linspace(0, 1, 200)  # a curved tidal tail from the companion
        tx, ty = dx + t * 25 * np.sign(dx), dy + 12 * np.sign(dy) * t ** 2
        tail = np.zeros_like(x)
        for px, py, w in zip(tx, ty, 1 - t):
            tail += w * np.exp(-((x - px) ** 2 + (y - py) ** 2) / 6.0)
        colour += 0.02 * tail[..., None] * np.array([0.7, 0.8, 1.0])
    img = colour / np.percentile(colour, 99.7)
    img = np.arcsinh(6 * img) / np.arcsinh(6)  # asinh stretch like SDSS colour composites
    img += rng.normal(0, 0.025, img.shape)
    return (np.clip(img, 0, 1) * 255).round().astype(np.uint8)


def main() -> None:
    rng = np.random.default_rng(2025)
    kinds = ["ring", "dust lane", "barred spiral", "spiral", "merger", "ring + spiral", "edge-on dust lane",
             "smooth", "spiral", "ring", "smooth", "merger"]
    (HERE / "images").mkdir(exist_ok=True)
    rows = []
    for i, kind in enumerate(kinds):
        img = draw(rng, kind)
        rel = f"images/cand_{i:02d}.png"
        Image.fromarray(img).save(HERE / rel, optimize=True)
        score = round(float(np.clip(0.97 - 0.07 * i + rng.normal(0, 0.02), 0.01, 0.99)), 3)
        has_coords = i not in (3, 8, 11)
        ra = round(float(rng.uniform(140, 220)), 5) if has_coords else ""
        dec = round(float(rng.uniform(0, 50)), 5) if has_coords else ""
        rows.append({"id": f"demo-{i:02d}", "score": score, "image_path": rel, "ra": ra, "dec": dec,
                     "drawn_as": kind})
    with open(HERE / "candidates.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    print(f"wrote {len(rows)} candidates to {HERE}")


if __name__ == "__main__":
    main()
