#!/usr/bin/env python
"""Train GalaxySD-mini from scratch, or fine-tune a Stable Diffusion 1.5 folder, on accelerate.

Examples
--------
From scratch on prepared caches (see ``galaxysd data prepare``)::

    python train/train_diffusion.py --caches cache/gz1_64 cache/gz2_examples_64 \\
        --output_dir runs/galaxysd-mini --resume_from_checkpoint latest

Fine-tune SD 1.5 like GalaxySD (batch 16, 10k steps, lr 1.6e-6 one-cycle, fp16), multi-GPU::

    accelerate launch train/train_diffusion.py --pretrained_model_name_or_path /models/sd15 \\
        --sd15_recipe --caches cache/gz2_256 --output_dir runs/galaxysd-sd15

Any setting of :class:`galaxysd_core.training.diffusion.DiffusionTrainConfig` can come from
``--config file.yaml``; flags override it.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from pathlib import Path


from galaxysd_core.errors import GalaxySDError  # noqa: E402
from galaxysd_core.training.diffusion import DiffusionTrainConfig, train_diffusion  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="YAML file of DiffusionTrainConfig settings")
    parser.add_argument("--sd15_recipe", action="store_true", help="GalaxySD's SD 1.5 fine-tuning recipe")
    simple = {f.name: f for f in fields(DiffusionTrainConfig)}
    for name, f in simple.items():
        if name in ("model",):
            continue
        if name in ("caches", "validation_prompts"):
            parser.add_argument(f"--{name}", nargs="+")
        elif f.type in ("bool",):
            parser.add_argument(f"--{name}", type=lambda s: s.lower() in ("1", "true", "yes"), metavar="BOOL")
        elif f.type in ("int",):
            parser.add_argument(f"--{name}", type=int)
        elif f.type in ("float", "Optional[float]"):
            parser.add_argument(f"--{name}", type=float)
        elif f.type in ("Optional[int]",):
            parser.add_argument(f"--{name}", type=int)
        else:
            parser.add_argument(f"--{name}")
    args = parser.parse_args(argv)
    overrides = {k: v for k, v in vars(args).items() if k in simple and v is not None}
    try:
        if args.config:
            cfg = DiffusionTrainConfig.from_yaml(args.config)
            for k, v in overrides.items():
                setattr(cfg, k, v)
            cfg.__post_init__()
        elif args.sd15_recipe:
            if not overrides.get("pretrained_model_name_or_path"):
                parser.error("--sd15_recipe needs --pretrained_model_name_or_path")
            cfg = DiffusionTrainConfig.sd15_finetune(overrides.pop("pretrained_model_name_or_path"), **overrides)
        else:
            cfg = DiffusionTrainConfig(**overrides)
        final = train_diffusion(cfg)
    except GalaxySDError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"model written to {final}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
