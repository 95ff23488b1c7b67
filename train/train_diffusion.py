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

On several processes ``--train_batch_size`` is per process and ``--max_train_steps`` counts
optimizer steps; the learning rate at each step is that of a 1-process run. Two CPU processes
(gloo), e.g. to check a setup without GPUs::

    ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2 --num_machines 1 \\
        --mixed_precision no --dynamo_backend no train/train_diffusion.py --config run.yaml

Every setting of :class:`galaxysd_core.training.config.DiffusionTrainConfig` is a flag; the base
values come from ``--config file.yaml``, else from ``--sd15_recipe``, else from the defaults, and
flags override them. Booleans take a value (``--use_ema false``) or a ``--no_`` flag.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import asdict

from transformers import HfArgumentParser

from galaxysd_core.errors import GalaxySDError
from galaxysd_core.training.config import DiffusionTrainConfig
from galaxysd_core.training.diffusion import train_diffusion


class _HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    pass


def build_parser(base: DiffusionTrainConfig) -> HfArgumentParser:
    """Flags of every config field (defaults from ``base``) plus ``--config`` and ``--sd15_recipe``."""
    parser = HfArgumentParser(DiffusionTrainConfig, description=__doc__, formatter_class=_HelpFormatter,
                              conflict_handler="resolve")
    parser.add_argument("--config", help="YAML file of DiffusionTrainConfig settings (the base values)")
    parser.add_argument("--sd15_recipe", action="store_true",
                        help="GalaxySD's SD 1.5 fine-tuning recipe as the base values "
                             "(needs --pretrained_model_name_or_path)")
    # HfArgumentParser would call dict() on the text of a dict field; the model sizes come as JSON
    parser.add_argument("--model", type=json.loads, help=DiffusionTrainConfig.__dataclass_fields__["model"]
                        .metadata["help"])
    parser.set_defaults(**asdict(base))
    return parser


def main(argv=None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("galaxysd_core").setLevel(logging.INFO)
    parser = build_parser(DiffusionTrainConfig())
    first = parser.parse_args(argv)  # checks every flag; only --config / --sd15_recipe are used from it
    if first.sd15_recipe and not first.config and not first.pretrained_model_name_or_path:
        parser.error("--sd15_recipe needs --pretrained_model_name_or_path")
    try:
        if first.config:
            base = DiffusionTrainConfig.from_yaml(first.config)
        elif first.sd15_recipe:
            base = DiffusionTrainConfig.sd15_finetune(first.pretrained_model_name_or_path)
        else:
            base = DiffusionTrainConfig()
        cfg, _extra = build_parser(base).parse_args_into_dataclasses(argv)
        final = train_diffusion(cfg)
    except GalaxySDError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"model written to {final}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
