"""``galaxysd evaluate``: generate images for prompts (and sweeps) and write metric tables.

Examples
--------
::

    galaxysd evaluate --model assets/galaxysd-mini --prompts prompts.txt -n 64 --out runs/eval \\
        --real-cache cache/gz1_64 --sweep guidance=1,3,6.5 --sweep "weight:spiral galaxy=0.8,1.3,2.0"
    galaxysd evaluate --checkpoints runs/mini --prompts "sdss, smooth" -n 32 --out runs/eval_steps \\
        --real-cache cache/gz1_64

Writes ``evaluation.csv`` / ``evaluation.json`` (``checkpoints.*`` with ``--checkpoints``),
``real_benchmark.json`` (with a real cache) and ``evaluation_config.json`` to ``--out``.
"""
from __future__ import annotations

import argparse
import math

from galaxysd_core.cli.generate import add_device_arguments
from galaxysd_core.config import OUTPUT_DIR_NAME
from galaxysd_core.errors import GalaxySDValueError


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register the ``evaluate`` sub-command."""
    from galaxysd_core.config import DEFAULT_CLASSIFIER_DIR
    from galaxysd_core.evaluation.config import EvaluationConfig

    d = EvaluationConfig()
    p = subparsers.add_parser(
        "evaluate", help="generate images and measure consistency, PRDC, domain FD/KID, light profiles",
        description="Generate N images per prompt (and sweep point) with fixed seeds and write a tidy "
                    "metric table (CSV + JSON) and the real-image benchmark.")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--model", help="pipeline folder (default: $GALAXYSD_MODEL_DIR or the shipped model)")
    src.add_argument("--checkpoints", metavar="DIR",
                     help="training folder: evaluate every pipeline snapshot (metrics over training steps)")
    p.add_argument("--prompts", nargs="+", required=True, metavar="FILE_OR_TEXT",
                   help="prompt texts, or files with one prompt per line ('#' starts a comment)")
    p.add_argument("-n", "--num-images", type=int, default=d.n, help="images per prompt and sweep point")
    p.add_argument("--seed", type=int, default=d.seed, help="first seed (image i uses seed+i)")
    p.add_argument("--steps", type=int, default=d.steps, help="denoising steps")
    p.add_argument("--guidance", type=float, default=d.guidance, help="classifier-free guidance scale")
    p.add_argument("--scheduler", default=d.scheduler, help="ddim, euler_a, euler or dpmpp")
    p.add_argument("--negative-prompt", default=None)
    p.add_argument("--sweep", action="append", default=[], metavar="VAR=V1,V2,...",
                   help="'guidance=1,3,6.5', 'steps=10,20' or 'weight:dust lane=0.8,1.3,2.0' (repeatable; "
                        "each sweep varies one setting)")
    p.add_argument("--real-cache", nargs="+", default=None, metavar="DIR",
                   help="prepared cache(s) of real images (reference for PRDC, FD, KID, light profiles)")
    p.add_argument("--max-real", type=int, default=d.max_real, help="largest real reference sample")
    p.add_argument("--min-reference", type=int, default=d.min_reference,
                   help="real images with the prompt's caption needed to compare with them only "
                        "(else all real images are the reference)")
    p.add_argument("--classifier", default=str(DEFAULT_CLASSIFIER_DIR), help="morphology classifier folder")
    p.add_argument("--k", type=int, default=d.k, help="neighbours of precision/recall/density/coverage")
    p.add_argument("--out", default=None,
                   help=f"output folder for the tables (default ./{OUTPUT_DIR_NAME}/evaluation in the current "
                        f"folder; the Metrics page reads <model>/metrics)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_device_arguments(p)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from galaxysd_core.config import model_dir, output_dir
    from galaxysd_core.evaluation.checkpoints import evaluate_checkpoints
    from galaxysd_core.evaluation.config import EvaluationConfig, Sweep, read_prompts
    from galaxysd_core.evaluation.runner import evaluate
    from galaxysd_core.pipelines.devices import device_environment

    if args.num_images < 1:
        raise GalaxySDValueError(f"-n must be >= 1, got {args.num_images}")
    out = str(args.out or output_dir("evaluation"))
    config = EvaluationConfig(n=args.num_images, seed=args.seed, steps=args.steps, guidance=args.guidance,
                              scheduler=args.scheduler, negative_prompt=args.negative_prompt, k=args.k,
                              max_real=args.max_real, min_reference=args.min_reference)
    prompts = read_prompts(args.prompts)
    sweeps = [Sweep.parse(s) for s in args.sweep]
    if args.real_cache is None:
        print("note: no --real-cache given; only prompt consistency is computed")
    if args.checkpoints and sweeps:
        raise GalaxySDValueError("--sweep cannot be combined with --checkpoints; run them separately")
    # Every pipeline the evaluation loads (one model, or each snapshot) goes through load_pipeline, which
    # reads $GALAXYSD_DEVICE / $GALAXYSD_DTYPE: set for this command, checked before anything loads.
    with device_environment(args.device, args.dtype) as choice:
        print(f"device: {choice.describe()}")
        if args.checkpoints:
            res = evaluate_checkpoints(args.checkpoints, prompts, config=config, classifier=args.classifier,
                                       real=args.real_cache, out_dir=out, progress=not args.quiet)
        else:
            res = evaluate(str(model_dir(args.model)), prompts, config=config, sweeps=sweeps,
                           classifier=args.classifier, real=args.real_cache, out_dir=out,
                           progress=not args.quiet)
    cols = [c for c in ("step", "prompt", "sweep_variable", "sweep_value", "consistency", "precision", "recall",
                        "density", "coverage", "domain_fd", "domain_kid") if c in res.table.columns]
    with_pd_opts(lambda: print(res.table[cols].to_string(index=False)))
    if res.benchmark is not None:
        c = res.benchmark["consistency_on_real"]
        val = c.get("consistency")
        print(f"real-image consistency ({c['images']}, n={c['n_images']}): "
              f"{'n/a' if val is None or (isinstance(val, float) and math.isnan(val)) else f'{val:.3f}'} "
              f"(GalaxySD paper: {res.benchmark['paper_real_consistency']})")
    print(f"tables written to {out}")
    return 0


def with_pd_opts(fn) -> None:
    import pandas as pd

    with pd.option_context("display.width", 200, "display.max_colwidth", 60, "display.float_format", "{:.3f}".format):
        fn()
