#!/usr/bin/env python
"""GPU cost of GalaxySD's Stable Diffusion 1.5 recipe: training throughput and generation time at 512 px.

Builds components with the shapes of Stable Diffusion 1.5 (``runwayml/stable-diffusion-v1-5``:
UNet2DConditionModel 320/640/1280/1280 with cross-attention width 768, AutoencoderKL 128/256/512/512,
a 12-layer width-768 CLIPTextModel with CLIP's 49408-token embedding; randomly initialised, since no
weights can be downloaded; the project's word tokenizer, so GZ2 captions parse) and saves them as a
model folder. Then measures

(a) training as ``train/train_diffusion.py --sd15_recipe`` runs it (``DiffusionTrainConfig.sd15_finetune``:
    batch 16, fp16 mixed precision, EMA, UNet + text encoder) for ``--steps`` steps on a prepared
    cache upsampled to 512 px: images/s between the first and last logged step (warm-up excluded),
    peak ``torch.cuda.max_memory_allocated``, and the projected wall time of the recipe's 10k steps;
(b) generation at 512 px, 40 steps, guidance 6.5: seconds per image through
    :func:`~galaxysd_core.pipelines.pipeline_galaxysd.load_pipeline` (device and dtype chosen as the
    CLI does) and through the app's loader and request path
    (:func:`galaxysd_core.studio.model_status.load_app_pipeline`, :func:`galaxysd_core.studio.generation.generate`).

Prints the numbers and writes them with the settings and versions to ``<out>/bench_gpu_sd15.json``.

Examples
--------
::

    # once, where the real data is: a small cache that travels to the GPU machine (13 MB)
    galaxysd data prepare --source catalog --catalog ../shared/data/gz2_cutouts/labels.csv \\
        --limit 256 --resolution 128 --out tmp/gz2_cutouts_256
    # on the GPU machine (about 5 minutes on an H200)
    python bench/bench_gpu_sd15.py --cache tmp/gz2_cutouts_256 --steps 200 --out galaxysd-output/bench_gpu_sd15
    # anywhere, to check the script (tiny SD-shaped model, 64 px, 2 steps, CPU)
    OMP_NUM_THREADS=1 python bench/bench_gpu_sd15.py --quick --cache tmp/gz2_cutouts_256 --device cpu
"""
from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from galaxysd_core._utils import library_versions
from galaxysd_core.config import output_dir
from galaxysd_core.errors import GalaxySDError
from galaxysd_core.pipelines.devices import choose_device, describe_pipeline_device, device_environment

PROMPT = "sdss, features or disk-shaped, spiral galaxy, {dust lane:1.3}"
RECIPE_STEPS, RECIPE_BATCH = 10_000, 16  # GalaxySD's SD 1.5 fine-tuning (Ma, Sun et al. 2025, Sec. 2.2)

# Stable Diffusion 1.5's published configs (unet/, vae/, text_encoder/ config.json of runwayml/stable-diffusion-v1-5)
SD15 = dict(
    unet=dict(sample_size=64, layers_per_block=2, block_out_channels=(320, 640, 1280, 1280), cross_attention_dim=768,
              attention_head_dim=8, norm_num_groups=32),
    vae=dict(sample_size=512, layers_per_block=2, block_out_channels=(128, 256, 512, 512), norm_num_groups=32),
    text=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
              vocab_size=49408, projection_dim=768),
)
# --quick: the same architecture at toy widths (64 px), so the whole script runs on a CPU in seconds
QUICK = dict(
    unet=dict(sample_size=8, layers_per_block=1, block_out_channels=(8, 8, 16, 16), cross_attention_dim=32,
              attention_head_dim=2, norm_num_groups=4),
    vae=dict(sample_size=64, layers_per_block=1, block_out_channels=(8, 8, 16, 16), norm_num_groups=4),
    text=dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4, vocab_size=1000,
              projection_dim=32),
)


def build_sd15_shaped(sizes: dict, seed: int = 0):
    """A GalaxySDPipeline with SD 1.5's architecture (``sizes``: :data:`SD15` or :data:`QUICK`), random weights."""
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from galaxysd_core.pipelines.pipeline_galaxysd import GalaxySDPipeline
    from galaxysd_core.prompts.tokenization import build_word_tokenizer

    torch.manual_seed(seed)
    tokenizer = build_word_tokenizer(max_length=77)
    unet = UNet2DConditionModel(
        in_channels=4, out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        **sizes["unet"])
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, scaling_factor=0.18215,
                        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                        **sizes["vae"])
    text_encoder = CLIPTextModel(CLIPTextConfig(
        max_position_embeddings=77, hidden_act="quick_gelu", pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, **sizes["text"]))
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              num_train_timesteps=1000, clip_sample=False, set_alpha_to_one=False, steps_offset=1)
    return GalaxySDPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler)


def n_params(module) -> int:
    return sum(p.numel() for p in module.parameters())


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def bench_training(folder: Path, cache: str, run_dir: Path, steps: int, batch: int, log_every: int,
                   on_gpu: bool) -> dict:
    """(a): the --sd15_recipe config for ``steps`` steps; throughput from train_log.jsonl."""
    from galaxysd_core.training.config import DiffusionTrainConfig
    from galaxysd_core.training.diffusion import train_diffusion

    cfg = DiffusionTrainConfig.sd15_finetune(
        str(folder), caches=[cache], output_dir=str(run_dir), max_train_steps=steps, train_batch_size=batch,
        log_every=log_every, checkpointing_steps=10 * steps, validation_steps=10 * steps, save_snapshots=False,
        **({} if on_gpu else {"mixed_precision": "no"}))
    if on_gpu:
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    # Training must start from float32 weights (fp16 mixed precision keeps float32 master weights); the
    # loader's GPU default is float16, so the fine-tuning load is asked for fp32 on the chosen device.
    with device_environment(dtype="fp32"):
        train_diffusion(cfg, show_progress=False)
    wall = time.perf_counter() - t0
    rows = [json.loads(line) for line in (run_dir / "train_log.jsonl").read_text().splitlines()]
    train = [r for r in rows if r.get("event") == "train"]
    done = next((r for r in rows if r.get("event") == "done"), {})
    out = dict(steps=steps, batch_size=batch, mixed_precision=cfg.mixed_precision, use_ema=cfg.use_ema,
               train_text_encoder=cfg.train_text_encoder, resolution_px=None, wall_s_total=round(wall, 1),
               logged=[{k: r[k] for k in ("step", "loss", "wall_s")} for r in train])
    if len(train) >= 2:
        first, last = train[0], train[-1]
        sec = last["wall_s"] - first["wall_s"]
        ips = (last["step"] - first["step"]) * batch / sec
        out.update(images_per_s=round(ips, 2), s_per_step=round(sec / (last["step"] - first["step"]), 4),
                   setup_s=round(first["wall_s"] - first["step"] * sec / (last["step"] - first["step"]), 1),
                   projected_recipe_hours=round(RECIPE_STEPS * RECIPE_BATCH / ips / 3600, 2))
    out["final_save_s"] = round(done.get("wall_s", 0) - (train[-1]["wall_s"] if train else 0), 1) if done else None
    if on_gpu:
        out["peak_gpu_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    return out


def bench_generation(folder: Path, size: int, steps: int, repeats: int, device, dtype) -> dict:
    """(b): seconds per image through load_pipeline and through the app's loader + request path."""
    from galaxysd_core.pipelines.pipeline_galaxysd import load_pipeline
    from galaxysd_core.studio.generation import GenerationRequest, generate
    from galaxysd_core.studio.model_status import load_app_pipeline

    def timed(fn) -> float:
        _sync()
        t = time.perf_counter()
        fn()
        _sync()
        return time.perf_counter() - t

    call = dict(num_inference_steps=steps, guidance_scale=6.5, height=size, width=size, output_type="np")
    res = {}
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    pipe = load_pipeline(folder, device=device, dtype=dtype)
    res["load_pipeline_s"] = round(time.perf_counter() - t, 2)
    res["device"] = describe_pipeline_device(pipe)
    pipe(PROMPT, seed=0, **{**call, "num_inference_steps": 2})  # warm-up (kernels, allocator)
    single = [timed(lambda i=i: pipe(PROMPT, seed=i, **call)) for i in range(repeats)]
    batch4 = timed(lambda: pipe(PROMPT, seed=0, num_images_per_prompt=4, **call))
    res.update(pipeline_s_per_image=round(statistics.median(single), 3),
               pipeline_s_single=[round(s, 3) for s in single],
               pipeline_s_per_image_batch4=round(batch4 / 4, 3))
    if torch.cuda.is_available():
        res["peak_gpu_memory_gib_batch4"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    del pipe
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    # the app: its loader reads $GALAXYSD_DEVICE / $GALAXYSD_DTYPE (set here to the same choice)
    with device_environment(device, dtype):
        t = time.perf_counter()
        app_pipe = load_app_pipeline(folder)
        res["app_load_s"] = round(time.perf_counter() - t, 2)
    res["app_device"] = describe_pipeline_device(app_pipe)
    req = GenerationRequest(prompt=PROMPT, n_images=1, steps=steps, guidance=6.5, seed=0)
    generate(app_pipe, GenerationRequest(prompt=PROMPT, n_images=1, steps=2, seed=0))  # warm-up
    app = [timed(lambda: generate(app_pipe, req)) for _ in range(repeats)]
    res.update(app_s_per_image=round(statistics.median(app), 3), app_s_single=[round(s, 3) for s in app])
    return res


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__[__doc__.find("Examples"):])
    p.add_argument("--cache", required=True, help="prepared cache to train on (upsampled to the model's 512 px)")
    p.add_argument("--steps", type=int, default=200, help="training steps (default 200; --quick: 2)")
    p.add_argument("--batch-size", type=int, default=RECIPE_BATCH, help="training batch (default 16, the recipe's)")
    p.add_argument("--gen-steps", type=int, default=40, help="denoising steps per image (default 40)")
    p.add_argument("--repeats", type=int, default=3, help="timed generations per path (default 3)")
    p.add_argument("--device", default=None, help="auto|cpu|cuda|cuda:N|mps (default $GALAXYSD_DEVICE, else auto)")
    p.add_argument("--dtype", default=None, help="generation dtype auto|fp32|fp16|bf16 (default: fp16 on CUDA)")
    p.add_argument("--quick", action="store_true", help="tiny SD-shaped model, 64 px, 2 steps: checks the script")
    p.add_argument("--skip-training", action="store_true", help="only (b) generation")
    p.add_argument("--work", default=None, help="folder for the model and the run (default: a temporary folder)")
    p.add_argument("--out", default=None,
                   help="folder for bench_gpu_sd15.json (default ./galaxysd-output/bench_gpu_sd15)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    steps = 2 if args.quick and args.steps == 200 else args.steps
    batch = 2 if args.quick and args.batch_size == RECIPE_BATCH else args.batch_size
    gen_steps = 2 if args.quick and args.gen_steps == 40 else args.gen_steps
    repeats = 1 if args.quick and args.repeats == 3 else args.repeats
    try:
        choice = choose_device(args.device, args.dtype)
        on_gpu = choice.device.type == "cuda"
        print(f"device: {choice.describe()} ({choice.reason})")
        work_tmp = None if args.work else tempfile.TemporaryDirectory(prefix="bench_sd15_")
        work = Path(args.work or work_tmp.name)
        work.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        pipe = build_sd15_shaped(QUICK if args.quick else SD15)
        size = pipe.default_size
        params = {k: n_params(getattr(pipe, k)) for k in ("unet", "vae", "text_encoder")}
        folder = work / "sd15_shaped"
        pipe.save_pretrained(folder, safe_serialization=True)
        del pipe
        built = time.perf_counter() - t
        print(f"SD 1.5-shaped model ({'quick, toy widths' if args.quick else 'full size'}), random weights: "
              f"{', '.join(f'{k} {v / 1e6:.1f} M' for k, v in params.items())} parameters; {size} px; "
              f"built and saved in {built:.1f} s")
        report = dict(quick=args.quick, device=choice.describe(), device_reason=choice.reason, resolution_px=size,
                      parameters=params, build_and_save_s=round(built, 1), cache=args.cache,
                      versions=library_versions(),
                      gpu=torch.cuda.get_device_name(choice.device) if on_gpu else None)
        if not args.skip_training:
            with device_environment(args.device):
                train = bench_training(folder, args.cache, work / "run", steps, batch, 1 if steps < 20 else 10,
                                       on_gpu)
            train["resolution_px"] = size
            report["training"] = train
            print(f"(a) training, --sd15_recipe, batch {batch}, {steps} steps at {size} px: "
                  f"{train.get('images_per_s', float('nan'))} images/s ({train.get('s_per_step')} s/step), "
                  f"peak GPU memory {train.get('peak_gpu_memory_gib', 'n/a')} GiB, setup {train.get('setup_s')} s; "
                  f"projected {RECIPE_STEPS} steps x batch {RECIPE_BATCH}: {train.get('projected_recipe_hours')} h")
        gen = bench_generation(folder, size, gen_steps, repeats, args.device, args.dtype)
        report["generation"] = dict(gen, steps=gen_steps, guidance=6.5, resolution_px=size)
        print(f"(b) generation, {size} px, {gen_steps} steps, guidance 6.5, on {gen['device']}: "
              f"{gen['pipeline_s_per_image']} s/image via load_pipeline ({gen['pipeline_s_per_image_batch4']} s/image "
              f"in a batch of 4), {gen['app_s_per_image']} s/image via the app's loader and request path; "
              f"load {gen['load_pipeline_s']} s / {gen['app_load_s']} s")
    except GalaxySDError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    target = Path(args.out) if args.out else output_dir("bench_gpu_sd15")
    target.mkdir(parents=True, exist_ok=True)
    (target / "bench_gpu_sd15.json").write_text(json.dumps(report, indent=1) + "\n")
    print(f"written {target / 'bench_gpu_sd15.json'}")
    if work_tmp is not None:
        work_tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
