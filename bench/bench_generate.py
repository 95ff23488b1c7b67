#!/usr/bin/env python
"""Generation and training speed of a GalaxySD model on this machine (prints numbers; not a test).

Prints: warm wall time for 8 images at the model's resolution with 20 and 50 steps (guidance on,
the model's sky noise on), model FLOPs per image (torch.utils.flop_counter), the GFLOP/s of a plain
float32 matmul measured in the same run, their ratio (efficiency), the VAE decode of 8 latents and
the sky-noise step on their own, and training throughput (UNet + text encoder, images/s).
Goal of GalaxySD-mini v2 (128 px): 8 images x 20 steps <= 1.5 s warm on an idle 2-core machine.
With one feature guided (3 UNet branches per step, :mod:`galaxysd_core.pipelines.feature_guidance`)
the same run prints the guided figure beside the plain one (goal: <= 1.5 s as well), and the figure
of a slider with contrast ("in-between round galaxy" pushing its 2 alternatives away: 5 branches).

Usage: python bench/bench_generate.py [--model DIR] [--threads N]
"""
from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from galaxysd_core.config import model_dir
from galaxysd_core.pipelines.pipeline_galaxysd import load_pipeline
from galaxysd_core.prompts.tokenization import text_max_length

PROMPT = "sdss, smooth, {completely round galaxy:1.3}, {dust lane:1.3}"


def matmul_gflops(n: int = 1024, repeats: int = 20) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    t0 = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n**3 * repeats / (time.perf_counter() - t0) / 1e9


GUIDED_PROMPT = "sdss, features or disk-shaped, spiral galaxy"
GUIDED_FEATURE = {"bar-shaped structure in the center of galaxy": 4.5}
CONTRAST_PROMPT = "sdss, smooth, in-between round galaxy"


def _call(pipe, steps: int, guided):
    if guided == "contrast":
        from galaxysd_core.pipelines.feature_guidance import contrast_scales

        return pipe(CONTRAST_PROMPT, num_images_per_prompt=8, seed=0, num_inference_steps=steps, guidance_scale=1.5,
                    output_type="np", feature_guidance=contrast_scales("in-between round galaxy", 4.0, 1.5, 1.0))
    if guided:
        return pipe(GUIDED_PROMPT, num_images_per_prompt=8, seed=0, num_inference_steps=steps, guidance_scale=1.5,
                    output_type="np", feature_guidance=GUIDED_FEATURE)
    return pipe(PROMPT, num_images_per_prompt=8, seed=0, num_inference_steps=steps, guidance_scale=6.5,
                output_type="np")


def timed_generation(pipe, steps: int, repeats: int = 3, guided: bool = False) -> float:
    _call(pipe, steps, guided)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        _call(pipe, steps, guided)
        best = min(best, time.perf_counter() - t0)
    return best


def flops_per_image(pipe, steps: int, guided: bool = False) -> float:
    with FlopCounterMode(display=False) as counter:
        _call(pipe, steps, guided)
    return counter.get_total_flops() / 8


def best_of(fn, repeats: int = 5) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def decode_seconds(pipe) -> float:
    """Warm VAE decode of 8 latents at the model's resolution."""
    size = pipe.unet.config.sample_size
    z = torch.randn(8, pipe.unet.config.in_channels, size, size)
    with torch.no_grad():
        return best_of(lambda: pipe.vae.decode(z).sample)


def noise_seconds(pipe) -> float:
    """Warm sky-noise fields for 8 images (0 when the model has no noise model)."""
    from galaxysd_core.pipelines.sky_noise import sky_noise_fields

    if pipe.sky_noise is None:
        return 0.0
    gens = [torch.Generator().manual_seed(i) for i in range(8)]
    return best_of(lambda: sky_noise_fields(pipe.sky_noise, gens, pipe.default_size, pipe.default_size))


def training_throughput(pipe, batch: int = 64, steps: int = 5) -> float:
    unet, te = pipe.unet.train(), pipe.text_encoder.train()
    opt = torch.optim.AdamW(list(unet.parameters()) + list(te.parameters()), lr=1e-5)
    size = unet.config.sample_size
    lat = torch.randn(batch, unet.config.in_channels, size, size)
    ids = torch.randint(0, te.config.vocab_size, (batch, text_max_length(pipe.tokenizer, te)))
    t = torch.randint(0, 1000, (batch,))

    def step():
        loss = F.mse_loss(unet(lat, t, encoder_hidden_states=te(ids)[0]).sample, lat)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    unet.eval()
    te.eval()
    return batch * steps / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="model folder (default $GALAXYSD_MODEL_DIR or the shipped model)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    pipe = load_pipeline(model_dir(args.model))
    print(f"model: {pipe.source_path}  resolution {pipe.default_size}px  torch threads {torch.get_num_threads()}")
    n_unet = sum(p.numel() for p in pipe.unet.parameters()) / 1e6
    n_vae = sum(p.numel() for p in pipe.vae.parameters()) / 1e6
    n_te = sum(p.numel() for p in pipe.text_encoder.parameters()) / 1e6
    print(f"parameters: unet {n_unet:.2f}M  vae {n_vae:.2f}M  text encoder {n_te:.2f}M")
    gflops_peak = matmul_gflops()
    print(f"float32 matmul 1024^3: {gflops_peak:.1f} GFLOP/s")
    walls = {}
    for steps, guided in ((20, False), (20, True), (20, "contrast"), (50, False)):
        wall = timed_generation(pipe, steps, guided=guided)
        walls[(steps, guided)] = wall
        flops = flops_per_image(pipe, steps, guided)
        achieved = flops * 8 / wall / 1e9
        what = ("one feature with contrast (5 branches), guidance 1.5" if guided == "contrast" else
                "one feature guided (3 branches), guidance 1.5" if guided else "guidance 6.5 (2 branches)")
        print(f"8 images, {steps} steps, {what}: {wall:.3f} s warm  "
              f"({flops / 1e9:.2f} GFLOP/image, {achieved:.1f} GFLOP/s achieved, "
              f"efficiency {100 * achieved / gflops_peak:.0f}% of matmul)")
    print(f"guided / plain (20 steps, same run): {walls[(20, True)] / walls[(20, False)]:.2f}x; "
          f"contrast / plain: {walls[(20, 'contrast')] / walls[(20, False)]:.2f}x")
    print(f"VAE decode of 8 latents: {decode_seconds(pipe):.3f} s warm; sky noise for 8 images: "
          f"{noise_seconds(pipe):.4f} s")
    print(f"training throughput (UNet + text encoder, batch 64): {training_throughput(pipe):.1f} images/s")


if __name__ == "__main__":
    main()
