"""``galaxysd generate``: images from a (weighted) prompt, with provenance in every file.

Example::

    galaxysd generate "sdss, smooth, {completely round:1.3} galaxy, {dust lane:1.3}" \\
        -n 8 --seed 0 --out galaxysd-output/samples --fits
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from galaxysd_core.config import DEVICE_ENV, DTYPE_ENV, OUTPUT_DIR_NAME
from galaxysd_core.errors import GalaxySDValueError
from galaxysd_core.schema.gz2 import ANSWER_BY_PHRASE


def add_device_arguments(p: argparse.ArgumentParser, dtype: bool = True) -> None:
    """``--device`` (and ``--dtype``) of the commands that run models (generate, evaluate, classify)."""
    p.add_argument("--device", default=None, metavar="auto|cpu|cuda|cuda:N|mps",
                   help=f"device to run on (default ${DEVICE_ENV}, else auto: CUDA when available, else MPS, "
                        f"else CPU); an unavailable device is an error")
    if dtype:
        p.add_argument("--dtype", default=None, metavar="auto|fp32|fp16|bf16",
                       help=f"precision of the diffusion model (default ${DTYPE_ENV}, else auto: fp16 on CUDA, "
                            f"fp32 on CPU and MPS; bf16 needs an Ampere or newer GPU; fp16 is refused on CPU)")


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("generate", help="generate galaxies from a prompt",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("prompt", help="GalaxySD prompt, weights as {phrase:1.3}")
    p.add_argument("-n", "--num-images", type=int, default=4, help="images to generate (default 4)")
    p.add_argument("--seed", type=int, default=None, help="seed of the first image (image i uses seed+i)")
    p.add_argument("--steps", type=int, default=None,
                   help="denoising steps (default: the model's recommended value, 20 for the shipped model)")
    p.add_argument("--guidance", type=float, default=None,
                   help="classifier-free guidance scale (default: the model's recommended value, chosen from "
                        "measurements and stated in its card: generation_defaults.json)")
    p.add_argument("--sampler", default="ddim", help="ddim, euler_a, euler or dpmpp (default ddim)")
    p.add_argument("--negative", default=None,
                   help="negative prompt (default: the automatic GZ2-tree one, e.g. 'sdss, smooth, star or artifact, "
                        "edge-on galaxy' for a spiral; give '' for none)")
    p.add_argument("--no-tree-negatives", action="store_const", const=False, default=None, dest="tree_negatives",
                   help="without --negative: plain unconditional guidance (as GalaxySD samples)")
    p.add_argument("--tree-negatives", action="store_const", const=True, dest="tree_negatives",
                   help="without --negative: the automatic GZ2-tree negative prompt (default: the model's "
                        "recommended policy)")
    p.add_argument("--no-sky-noise", action="store_const", const=False, default=None, dest="sky_noise",
                   help="do not add the model's measured SDSS sky noise after decoding")
    p.add_argument("--no-latent-mean", action="store_const", const=False, default=None, dest="latent_mean",
                   help="start sampling from zero-mean noise, not around the model's mean training latent "
                        "(latent_mean.safetensors; the zero-mean start gives over-bright skies)")
    p.add_argument("--feature", action="append", default=[], metavar="PHRASE=SCALE",
                   help="guidance for one feature (repeatable), e.g. --feature \"bar-shaped structure in the center of "
                        "galaxy=4\": 0 = off, the guidance scale = as in the prompt, more extrapolates, negative "
                        "pushes it away (composable diffusion; the same galaxy per seed)")
    p.add_argument("--slider", action="append", default=[], metavar="PHRASE=STRENGTH",
                   help="the app's feature slider (repeatable): STRENGTH x the guidance scale, 1 = the plain prompt, "
                        "or 'default' for the model's measured default; where the model card chose contrast, the "
                        "other answers of the feature's GZ2 question are pushed away too (as in the app), e.g. "
                        "--slider \"in-between round galaxy=default\"")
    p.add_argument("--init-image", default=None, help="start from this real galaxy image (img2img)")
    p.add_argument("--strength", type=float, default=0.6, help="img2img strength in (0, 1] (default 0.6)")
    p.add_argument("--model", default=None, help="model folder (default $GALAXYSD_MODEL_DIR or the shipped model)")
    p.add_argument("--out", default=None,
                   help=f"output folder (default ./{OUTPUT_DIR_NAME}/generate in the current folder)")
    p.add_argument("--fits", action="store_true", help="also write FITS files with a provenance header")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_device_arguments(p)
    p.set_defaults(func=run)


def slider_features(pipe, sliders, guidance=None):
    """Feature-guidance pairs of ``--slider PHRASE=STRENGTH`` options, as the app's sliders make them
    (the model's contrast included; :meth:`~galaxysd_core.pipelines.feature_defaults.FeatureDefaults.slider_scales`).

    Raises
    ------
    GalaxySDValueError
        For a malformed option or a strength that is neither a number nor ``default``.
    """
    from galaxysd_core.pipelines.feature_defaults import FeatureDefaults

    fd = pipe.feature_defaults
    g = float(pipe.generation_defaults.guidance_scale if guidance is None else guidance)
    if fd is None:
        fd = FeatureDefaults(guidance_scale=g)
    out = []
    for text in sliders:
        phrase, sep, value = str(text).rpartition("=")
        phrase = " ".join(phrase.split())
        if not sep or not phrase:
            raise GalaxySDValueError(f"--slider takes PHRASE=STRENGTH (e.g. \"dust lane=3\"), got {text!r}")
        value = value.strip()
        if value.lower() == "default":
            m = fd.strength(phrase)
        else:
            try:
                m = float(value)
            except ValueError:
                raise GalaxySDValueError(f"--slider {text!r}: the strength must be a number or 'default'") from None
        out.extend(fd.slider_scales(phrase, m, g))
    return out


def run(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from galaxysd_core.config import model_dir, output_dir
    from galaxysd_core.io.archives import image_file_name
    from galaxysd_core.io.fits import save_fits
    from galaxysd_core.io.png import save_png
    from galaxysd_core.io.uploads import load_uploaded_image
    from galaxysd_core.pipelines.devices import describe_pipeline_device
    from galaxysd_core.pipelines.pipeline_galaxysd import load_pipeline

    if args.num_images < 1:
        raise GalaxySDValueError("--num-images must be at least 1")
    folder = model_dir(args.model)
    pipe = load_pipeline(folder, device=args.device, dtype=args.dtype)
    if not args.quiet:
        print(f"device: {describe_pipeline_device(pipe)}", file=sys.stderr)
    init = load_uploaded_image(args.init_image) if args.init_image else None
    bar = tqdm(total=args.steps or pipe.generation_defaults.num_inference_steps, desc="denoising",
               disable=args.quiet)

    def progress(step: int, total: int) -> None:
        bar.total = total
        bar.n = step
        bar.refresh()

    features = list(args.feature) + slider_features(pipe, args.slider, args.guidance)
    out = pipe(args.prompt, negative_prompt=args.negative, num_images_per_prompt=args.num_images, seed=args.seed,
               num_inference_steps=args.steps, guidance_scale=args.guidance, scheduler=args.sampler,
               image=init, strength=args.strength, callback=progress, tree_negatives=args.tree_negatives,
               sky_noise=args.sky_noise, latent_mean=args.latent_mean, feature_guidance=features or None)
    bar.close()
    target = Path(args.out) if args.out else output_dir("generate")
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for i, (image, seed, prompt) in enumerate(zip(out.images, out.seeds, out.prompts)):
        stem = image_file_name(i, seed)
        written.append(save_png(target / f"{stem}.png", image, prompt, seed, out.parameters))
        if args.fits:
            written.append(save_fits(target / f"{stem}.fits", image, prompt, seed, out.parameters))
    # Only caption features can be unseen: the survey prefix ("sdss") and free text (SD 1.5) are not features.
    features = [tag for tag in pipe.parse(args.prompt).phrase_weights() if tag in ANSWER_BY_PHRASE]
    unseen = pipe.unseen_features(features)
    if unseen:
        print(f"note: the model never saw {', '.join(unseen)} in training; these features are extrapolated")
    print(json.dumps({"written": [str(p) for p in written], "seeds": out.seeds}, indent=1))
    return 0
