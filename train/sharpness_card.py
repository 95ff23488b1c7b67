"""Sharpness of a model's galaxies against real ones (radially averaged power spectra), into its card (thin wrapper).

Writes ``metrics/sharpness.json``, ``sharpness.png`` and the card section "Sharpness" of the model
folder. Logic: :mod:`galaxysd_core.evaluation.sharpness`.

    OMP_NUM_THREADS=2 python train/sharpness_card.py --model assets/galaxysd-mini \\
        --reference-caches cache/gz2_cutouts_128 --n 32
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from galaxysd_core import config as gconfig
from galaxysd_core.errors import GalaxySDError

PROMPTS = ("sdss, features or disk-shaped, spiral galaxy", "sdss, smooth, in-between round galaxy")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=str(gconfig.DEFAULT_MODEL_DIR))
    p.add_argument("--reference-caches", nargs="+", required=True)
    p.add_argument("--prompts", nargs="+", default=list(PROMPTS))
    p.add_argument("--n", type=int, default=32)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args(argv)
    import torch

    from galaxysd_core.evaluation.feature_curves import replace_card_section
    from galaxysd_core.evaluation.plots import sharpness_plot
    from galaxysd_core.evaluation.reference import RealReference
    from galaxysd_core.evaluation.sharpness import measure_sharpness
    from galaxysd_core.pipelines.pipeline_galaxysd import load_pipeline

    torch.set_num_threads(a.threads)
    try:
        pipe = load_pipeline(a.model)
        real = RealReference.from_caches(a.reference_caches)
        reports = [measure_sharpness(pipe, real, pr, a.n) for pr in a.prompts]
    except GalaxySDError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    folder = Path(a.model)
    sharpness_plot(reports[0], folder / "sharpness.png", title=f"{reports[0]['prompt']}: {a.n} seeds vs {a.n} real")
    rows = [{"prompt": r["prompt"], "n_generated": r["n_generated"], "n_real": r["n_real"], **r["ratios"],
             "middle_without_noise": r["ratios_without_noise"]["middle"],
             "real_middle_noise_share": r["real_noise_share"]["middle"],
             "structure_middle": r["structure"]["middle"], "structure": r["structure"],
             "without_noise": r["ratios_without_noise"], "real_noise_share": r["real_noise_share"]}
            for r in reports]
    (folder / "metrics").mkdir(exist_ok=True)
    (folder / "metrics" / "sharpness.json").write_text(json.dumps({"goal_middle": 0.7, "rows": rows}, indent=1) + "\n")
    lines = ["## Sharpness", "",
             "Radially averaged power spectrum of the luminance (Hann window) of generated galaxies against real "
             "galaxies of the same caption; ratio of generated to real power in thirds of the frequency range "
             "(low: the light profile; middle: arms, bars, lanes; high: pixel noise, for generated images the added "
             "sky noise). Goal: middle >= 0.7. Made by `train/sharpness_card.py` "
             "(`galaxysd_core/evaluation/sharpness.py`); the model's recommended settings.", "",
             "Most of the real middle-third power is sky noise: the power spectrum of the corners of the same real "
             "cutouts (the sky-noise floor) holds the share in the column *real noise share*. The pipeline adds "
             "sky noise with that measured spectrum (`sky_noise.json`, `pipelines/sky_noise.py`), so the "
             "middle-band ratio is mostly a check of the noise model. What is left for arms, bars and lanes is "
             "*structure*: the same seeds without added noise over the real power minus its floor (uncertain "
             "when the floor is most of the real power: the real structure is then a small difference).", "",
             "![sharpness](sharpness.png)", "",
             "| prompt | generated / real | low | middle | high | middle without added noise | real noise share "
             "(middle) | structure (middle) | middle >= 0.7 |", "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        lines.append(f"| `{r['prompt']}` | {r['n_generated']} / {r['n_real']} | {r['low']:.2f} | {r['middle']:.2f} | "
                     f"{r['high']:.2f} | {r['middle_without_noise']:.2f} | {r['real_middle_noise_share']:.2f} | "
                     f"{r['structure_middle']:.2f} | {'yes' if r['middle'] >= 0.7 else '**no**'} |")
    readme = folder / "README.md"
    readme.write_text(replace_card_section(readme.read_text(), "\n".join(lines) + "\n", title="## Sharpness"))
    for r in rows:
        print(f"{r['prompt']}: low {r['low']:.2f} middle {r['middle']:.2f} high {r['high']:.2f}; without noise "
              f"{r['middle_without_noise']:.2f}; real noise share {r['real_middle_noise_share']:.2f}; structure "
              f"{r['structure_middle']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
