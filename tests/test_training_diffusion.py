"""Diffusion training: tiny GalaxySD-mini run, resume after SIGKILL, SD-1.5-shaped fine-tune."""
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from galaxysd_core.schema.captioning import answer_targets
from galaxysd_core.data.cache import prepare_dataset
from tiny_models import TINY_CONFIG, build_tiny_sd15_components
from galaxysd_core.pipelines.pipeline_galaxysd import GalaxySDPipeline
from galaxysd_core._utils import dihedral
from galaxysd_core.training.config import DiffusionTrainConfig
from galaxysd_core.training.data import feature_counts
from galaxysd_core.training.diffusion import train_diffusion

REPO = Path(__file__).resolve().parents[1]
CAPTIONS = {
    "sdss, smooth": ["t01_smooth_or_features_a01_smooth"],
    "sdss, features or disk-shaped, edge-on galaxy": ["t02_edgeon_a04_yes"],
}


def _blob(size, q, angle, seed):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:size, :size] - size / 2
    xr = x * math.cos(angle) + y * math.sin(angle)
    yr = -x * math.sin(angle) + y * math.cos(angle)
    img = np.exp(-(xr**2 + (yr / q) ** 2) / (2 * (size / 10) ** 2))
    rgb = np.stack([img * 230, img * 200, img * 160], -1) + rng.normal(0, 4, (size, size, 3))
    return np.clip(rgb, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def tiny_cache(tmp_path_factory):
    root = tmp_path_factory.mktemp("cache")
    records = []
    for i in range(12):
        caption = list(CAPTIONS)[i % 2]
        path = root / f"g{i}.png"
        Image.fromarray(_blob(48, 1.0 if i % 2 == 0 else 0.25, i * 0.5, i)).save(path)
        records.append(dict(id=f"g{i}", image_path=path, caption=caption, source="synthetic",
                            targets=answer_targets(CAPTIONS[caption])))
    report = prepare_dataset(records, root / "prepared", resolution=32, crop_fraction=1.0, show_progress=False,
                             shard_size=5)
    assert report.written == 12 and report.shards == 3  # the training tests run on the sharded format
    return root / "prepared"


def _tiny_cfg(cache, out, **kw):
    base = dict(output_dir=str(out), caches=[str(cache)], model=TINY_CONFIG.to_dict(), derive_roundness=False,
                vae_steps=2, vae_batch_size=4, train_batch_size=4, max_train_steps=4, checkpointing_steps=2,
                validation_steps=2, validation_seeds=1, validation_inference_steps=2,
                validation_prompts=["sdss, smooth"], lr_warmup_steps=1)
    base.update(kw)
    return DiffusionTrainConfig(**base)


def test_dihedral_covers_eight_distinct_transforms():
    import torch

    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    outs = {tuple(dihedral(x, k).flatten().tolist()) for k in range(8)}
    assert len(outs) == 8


def test_feature_counts():
    counts = feature_counts(["sdss, smooth", "sdss, smooth, dust lane", "sdss, merger"])
    assert counts["smooth"] == 2 and counts["dust lane"] == 1 and counts["ring galaxy"] == 0


def test_config_validation_and_yaml_round_trip(tmp_path):
    from galaxysd_core.errors import GalaxySDValueError

    with pytest.raises(GalaxySDValueError):
        DiffusionTrainConfig(stage="everything")
    with pytest.raises(GalaxySDValueError):
        DiffusionTrainConfig(caption_dropout=1.5)
    cfg = DiffusionTrainConfig(max_train_steps=7, caches=["a"])
    cfg.save(tmp_path / "c.yaml")
    assert DiffusionTrainConfig.from_yaml(tmp_path / "c.yaml") == cfg
    sd = DiffusionTrainConfig.sd15_finetune("/models/sd15")
    assert (sd.train_batch_size, sd.max_train_steps, sd.learning_rate, sd.lr_scheduler, sd.mixed_precision) == \
        (16, 10_000, 1.6e-6, "one_cycle", "fp16")


@pytest.mark.slow
def test_tiny_run_writes_model_log_and_validation(tiny_cache, tmp_path):
    out = tmp_path / "run"
    final = train_diffusion(_tiny_cfg(tiny_cache, out), show_progress=False)
    pipe = GalaxySDPipeline.from_pretrained(final)
    img = pipe("sdss, smooth", seed=0, num_inference_steps=2, output_type="np").images
    assert img.shape == (1, 32, 32, 3)
    rows = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r.get("event") == "validation"] == [2, 4]
    assert (out / "validation" / "step-000004.png").is_file()
    assert (out / "snapshots" / "step-000002" / "model_index.json").is_file()
    info = json.loads((final / "training_captions.json").read_text())
    assert info["feature_counts"]["smooth"] == 6 and info["feature_counts"]["edge-on galaxy"] == 6
    assert pipe.unseen_features(["smooth", "dust lane"]) == ["dust lane"]
    assert (final / "train_config.yaml").is_file() and (out / "vae_stage" / "final" / "config.json").is_file()
    vae_cfg = json.loads((final / "vae" / "config.json").read_text())
    assert vae_cfg["scaling_factor"] != 0.18215, "latent scale is measured on the data"
    start = [r for r in rows if r.get("event") == "start"][0]
    assert start["unet"]["effective_batch"] == 4 and start["unet"]["steps_per_epoch"] == 3  # 12 images / 4
    assert start["vae"] == {"effective_batch": 4, "steps_per_epoch": 3, "steps": 2}
    # one latent per image (the dihedral transforms applied on the fly), sharded on disk
    (manifest,) = (out / "latents").glob("*/latents.json")
    info = json.loads(manifest.read_text())
    assert info["copies"] == 1 and info["n"] == 12 and np.load(manifest.parent / info["shards"][0]).shape[0] == 12
    # the mean training latent sampling starts around, with the model and every snapshot
    import torch

    from galaxysd_core.pipelines.latent_mean import measure_latent_mean

    z = torch.as_tensor(np.load(manifest.parent / info["shards"][0]))
    torch.testing.assert_close(pipe.latent_mean, measure_latent_mean(z))
    assert (out / "snapshots" / "step-000002" / "latent_mean.safetensors").is_file()


@pytest.mark.slow
def test_resume_after_sigkill_continues_step_count(tiny_cache, tmp_path):
    out = tmp_path / "run"
    cfg = _tiny_cfg(tiny_cache, out, max_train_steps=400, checkpointing_steps=2, validation_steps=1000,
                    save_snapshots=False, resume_from_checkpoint="latest")
    cfg_path = tmp_path / "cfg.yaml"
    cfg.save(cfg_path)
    cmd = [sys.executable, str(REPO / "train" / "train_diffusion.py"), "--config", str(cfg_path)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 240
        while time.time() < deadline:
            done = sorted(out.glob("checkpoint-*/DONE"))
            if any(int(p.parent.name.split("-")[1]) >= 4 for p in done):
                break
            assert proc.poll() is None, "training exited before it could be killed"
            time.sleep(0.2)
        else:
            pytest.fail("no checkpoint within 240 s")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    completed = [int(p.parent.name.split("-")[1]) for p in out.glob("checkpoint-*/DONE")]
    last = max(completed)
    cfg2 = DiffusionTrainConfig.from_yaml(cfg_path)
    cfg2.max_train_steps = last + 2
    final = train_diffusion(cfg2, show_progress=False)
    rows = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    resumes = [r for r in rows if r.get("event") == "resume"]
    assert resumes and resumes[-1]["step"] == last
    assert rows[-1]["event"] == "done" and rows[-1]["step"] == last + 2
    assert (final / "unet" / "diffusion_pytorch_model.safetensors").is_file()


@pytest.mark.slow
def test_sd15_shaped_finetune_two_steps(tiny_cache, tmp_path):
    comps = build_tiny_sd15_components(str(tmp_path / "tok"))
    sd = tmp_path / "sd15"
    GalaxySDPipeline(**comps).save_pretrained(sd)
    # make the folder look like runwayml/stable-diffusion-v1-5 (StableDiffusionPipeline + extra components)
    index = json.loads((sd / "model_index.json").read_text())
    index.update({"_class_name": "StableDiffusionPipeline", "safety_checker": [None, None],
                  "feature_extractor": [None, None], "requires_safety_checker": False})
    (sd / "model_index.json").write_text(json.dumps(index))
    before = GalaxySDPipeline.from_pretrained(sd)
    assert not before.strict_vocabulary and before.default_size == 64
    cfg = DiffusionTrainConfig.sd15_finetune(str(sd), caches=[str(tiny_cache)], output_dir=str(tmp_path / "ft"),
                                             max_train_steps=2, train_batch_size=2, mixed_precision="no",
                                             lr_warmup_steps=1, checkpointing_steps=1, validation_steps=2,
                                             validation_seeds=1, validation_inference_steps=2,
                                             validation_prompts=["sdss, smooth"], learning_rate=1e-3)
    final = train_diffusion(cfg, show_progress=False)
    after = GalaxySDPipeline.from_pretrained(final)
    import torch

    changed = any(not torch.equal(a, b) for a, b in zip(before.unet.parameters(), after.unet.parameters()))
    te_changed = any(not torch.equal(a, b) for a, b in
                     zip(before.text_encoder.parameters(), after.text_encoder.parameters()))
    vae_same = all(torch.equal(a, b) for a, b in zip(before.vae.parameters(), after.vae.parameters()))
    assert changed and te_changed and vae_same, "UNet and text encoder are fine-tuned, the VAE is frozen"
    out = after("sdss, smooth, {dust lane:1.3}", seed=0, num_inference_steps=2, output_type="np")
    assert out.images.shape == (1, 64, 64, 3)
    assert (tmp_path / "ft" / "checkpoint-2" / "DONE").is_file()


def test_train_script_flags_of_the_readme(tmp_path, monkeypatch):
    import importlib.util

    spec = importlib.util.spec_from_file_location("train_diffusion_script", REPO / "train" / "train_diffusion.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    seen = []
    monkeypatch.setattr(script, "train_diffusion", lambda cfg: seen.append(cfg) or tmp_path)
    assert script.main(["--caches", "cache/gz1_64", "cache/gz2_examples_64", "--output_dir", "runs/galaxysd-mini",
                        "--resume_from_checkpoint", "latest"]) == 0
    assert seen[-1] == DiffusionTrainConfig(caches=["cache/gz1_64", "cache/gz2_examples_64"],
                                            output_dir="runs/galaxysd-mini", resume_from_checkpoint="latest")
    assert script.main(["--sd15_recipe", "--pretrained_model_name_or_path", "/models/sd15", "--caches", "c",
                        "--train_batch_size", "8", "--use_ema", "false"]) == 0
    assert seen[-1] == DiffusionTrainConfig.sd15_finetune("/models/sd15", caches=["c"], train_batch_size=8,
                                                          use_ema=False)
    cfg = DiffusionTrainConfig(max_train_steps=7, caches=["a"], shuffle_tags=False)
    cfg.save(tmp_path / "c.yaml")
    assert script.main(["--config", str(tmp_path / "c.yaml"), "--max_train_steps", "4000"]) == 0
    assert seen[-1] == DiffusionTrainConfig(max_train_steps=4000, caches=["a"], shuffle_tags=False)
    assert script.main(["--stage", "everything"]) == 2  # a GalaxySDValueError, reported without a traceback
    with pytest.raises(SystemExit):
        script.main(["--sd15_recipe"])


def _log_rows(out):
    return [json.loads(line) for line in (Path(out) / "train_log.jsonl").read_text().splitlines()]


def _free_port():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
@pytest.mark.parametrize("variant", [
    dict(gradient_accumulation_steps=2),
    dict(gradient_accumulation_steps=3, lr_scheduler="one_cycle", train_text_encoder=False, use_ema=False),
], ids=["cosine-text-encoder-ema", "one-cycle-frozen-text-encoder"])
def test_two_processes_follow_the_one_process_lr_curve_and_step_count(tiny_cache, tmp_path, variant):
    """``accelerate launch`` with 2 CPU processes (gloo): VAE and UNet learning rates at every
    logged optimizer step, the step count and the checkpoints equal those of a 1-process run
    (accelerate steps a prepared scheduler once per process), with gradient accumulation, and
    only the main process writes the log; a 2-process checkpoint resumes on 1 process."""
    kw = dict(vae_steps=4, max_train_steps=4, lr_warmup_steps=2, log_every=1, checkpointing_steps=2,
              validation_steps=4, save_snapshots=False, num_threads=1, **variant)
    one = tmp_path / "one"
    train_diffusion(_tiny_cfg(tiny_cache, one, **kw), show_progress=False)
    two = tmp_path / "two"
    cfg_path = tmp_path / "two.yaml"
    _tiny_cfg(tiny_cache, two, **kw).save(cfg_path)
    # accelerate's --cpu launcher starts one process without MPI; the torchrun launcher with
    # ACCELERATE_USE_CPU gives MULTI_CPU on gloo
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_port", str(_free_port()), str(REPO / "train" / "train_diffusion.py"),
           "--config", str(cfg_path)]
    env = dict(os.environ, ACCELERATE_USE_CPU="1", OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (two / "checkpoint-4" / "random_states_1.pkl").is_file(), "two processes ran"
    rows_one, rows_two = _log_rows(one), _log_rows(two)

    def curve(rows, **match):
        return [(r["step"], r["lr"]) for r in rows if "lr" in r and all(r.get(k) == v for k, v in match.items())]

    unet_one = curve(rows_one, event="train")
    assert [s for s, _ in unet_one] == [1, 2, 3, 4]
    assert curve(rows_two, event="train") == unet_one
    vae_one = curve(rows_one, stage="vae")
    assert [s for s, _ in vae_one] == [2, 4] and curve(rows_two, stage="vae") == vae_one
    accum = variant["gradient_accumulation_steps"]
    for rows, world in ((rows_one, 1), (rows_two, 2)):
        (start,) = [r for r in rows if r.get("event") == "start"]
        assert start["num_processes"] == world and start["unet"]["effective_batch"] == 4 * world * accum
        assert start["unet"]["steps_per_epoch"] == math.ceil(12 / (4 * world * accum))
    for rows in (rows_one, rows_two):  # one row per event: nothing written twice
        assert [r["step"] for r in rows if r.get("event") in ("validation", "done")] == [4, 4]
        assert sum(r.get("event") == "data" for r in rows) == 1
    assert sorted(p.parent.name for p in two.glob("checkpoint-*/DONE")) == ["checkpoint-2", "checkpoint-4"]
    assert GalaxySDPipeline.from_pretrained(two / "model") is not None
    # the 2-process checkpoint at step 2 resumed on 1 process continues the same step count and lr curve
    train_diffusion(_tiny_cfg(tiny_cache, two, resume_from_checkpoint="checkpoint-2", **kw), show_progress=False)
    rows = _log_rows(two)
    after = rows[max(i for i, r in enumerate(rows) if r.get("event") == "resume"):]
    assert after[0]["step"] == 2 and curve(after, event="train") == unet_one[2:]


def test_batches_differ_per_process_and_micro_step_and_keep_one_process_seeds():
    import torch

    from galaxysd_core.training.data import batch_generator, caption_rng

    legacy = torch.randint(0, 10**6, (4,), generator=torch.Generator().manual_seed(3 * 1_000_003 + 7))
    assert torch.equal(torch.randint(0, 10**6, (4,), generator=batch_generator(3, 7)), legacy)
    assert caption_rng(3, 7).random() == __import__("random").Random(3 * 7919 + 7).random()
    draws = {tuple(torch.randint(0, 10**6, (4,), generator=batch_generator(3, step, 2, rank, micro, 2)).tolist())
             for step in range(3) for rank in range(2) for micro in range(2)}
    assert len(draws) == 12, "every (step, process, accumulated batch) draws its own batch"
    assert caption_rng(3, 7, 2, 0).random() != caption_rng(3, 7, 2, 1).random()


def test_lr_schedules_per_optimizer_step_with_several_processes_and_resume():
    import torch

    from galaxysd_core.training.schedules import make_lr_scheduler, seek_lr_scheduler, vae_lr_scheduler

    def opt():
        return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)

    def curve(sched, processes, steps):
        lrs = []
        for _ in range(steps):
            lrs.append(sched.get_last_lr()[0])
            sched.optimizer.step()
            for _ in range(processes):  # what accelerate's prepared scheduler does per optimizer step
                sched.step()
        return lrs

    for name in ("cosine", "constant", "one_cycle"):
        cfg = DiffusionTrainConfig(max_train_steps=12, lr_warmup_steps=4, lr_scheduler=name)
        one = curve(make_lr_scheduler(cfg, opt()), 1, 14)
        for processes in (2, 3):
            assert curve(make_lr_scheduler(cfg, opt(), processes), processes, 14) == one, (name, processes)
        # resume a 2-process checkpoint at optimizer step 5 on 1 process
        two = make_lr_scheduler(cfg, opt(), 2)
        curve(two, 2, 5)
        resumed = make_lr_scheduler(cfg, opt(), 1)
        resumed.load_state_dict(two.state_dict())
        seek_lr_scheduler(resumed, 5, 1)
        assert curve(resumed, 1, 9) == one[5:]
    assert curve(vae_lr_scheduler(opt(), 300, 4), 4, 300) == curve(vae_lr_scheduler(opt(), 300), 1, 300)


def test_step_batches_are_the_in_memory_draws_whatever_the_workers(tmp_path):
    """The DataLoader batches of (row, transform) pairs are those batch_generator draws (the rows and
    transforms the earlier in-memory loop drew), the same with 0 or 2 workers, and the loader
    leaves the global torch generator alone."""
    import torch

    from galaxysd_core.training.data import StepBatchSampler, batch_generator, batch_loader
    from galaxysd_core.training.latent_cache import LatentCache

    stored = torch.randn(10 * 8, 2, 4, 4)
    np.save(tmp_path / "latents-00000.npy", stored[:48].numpy())
    np.save(tmp_path / "latents-00001.npy", stored[48:].numpy())
    from galaxysd_core.data.shards import ShardedArray

    on_disk = LatentCache(ShardedArray([tmp_path / "latents-00000.npy", tmp_path / "latents-00001.npy"]), 10, 8,
                          tmp_path)
    sampler = StepBatchSampler(3, 10, 6, 2, 5, num_processes=2, process_index=1, accumulation_steps=2)
    expected = []
    for step in range(2, 5):
        for micro in range(2):
            g = batch_generator(3, step, 2, 1, micro, 2)
            idx = torch.randint(0, 10, (6,), generator=g)
            k = torch.randint(0, 8, (6,), generator=g)
            expected.append((idx, stored.view(10, 8, 2, 4, 4)[idx, k]))
            assert torch.equal(sampler.draw(step, micro)[1], idx)
    torch.manual_seed(0)
    for workers in (0, 2):
        got = list(batch_loader(on_disk.dataset(), sampler, workers))
        assert len(got) == len(expected) == len(sampler) == 6
        for (rows, z), (idx, want) in zip(got, expected):
            assert torch.equal(rows, idx) and torch.equal(z, want)
    assert torch.equal(torch.get_rng_state(), torch.manual_seed(0).get_state())


def test_identity_latents_are_transformed_on_the_fly():
    import torch

    from galaxysd_core.training.latent_cache import LatentCache

    z = torch.randn(3, 2, 4, 4)
    cache = LatentCache(z, 3, 1, Path("."))
    rows, out = cache.dataset().__getitems__([(0, 0), (2, 5), (1, 3), (2, 5)])
    assert torch.equal(rows, torch.tensor([0, 2, 1, 2]))
    for got, (r, k) in zip(out, [(0, 0), (2, 5), (1, 3), (2, 5)]):
        assert torch.equal(got, dihedral(z[r:r + 1], k)[0])


def test_training_data_stays_lazy_with_held_out_ids_and_warns_for_old_caches(tiny_cache, tmp_path, caplog):
    import pandas as pd

    from galaxysd_core.data.cache import PreparedDataset
    from galaxysd_core.data.shards import ShardedArray
    from galaxysd_core.training.data import load_training_data

    pd.DataFrame({"id": ["g3", "g4"]}).to_csv(tmp_path / "split_test_ids.csv", index=False)
    cfg = _tiny_cfg(tiny_cache, tmp_path / "run", exclude_ids_from=str(tmp_path))
    images, captions, _, _ = load_training_data(cfg, show_progress=False)
    full = PreparedDataset.load(tiny_cache)
    assert isinstance(images, ShardedArray) and len(images) == len(captions) == 10
    assert np.array_equal(images[3], full.images[5])  # g3 and g4 left out
    try:
        from test_dataset_cache import write_format1_cache
    except ImportError:
        from tests.test_dataset_cache import write_format1_cache
    write_format1_cache(tmp_path / "old", full)
    with caplog.at_level("WARNING", logger="galaxysd_core.training.data"):
        images, _, _, _ = load_training_data(_tiny_cfg(tmp_path / "old", tmp_path / "r2"), show_progress=False)
    assert isinstance(images, np.ndarray) and "galaxysd data convert" in caplog.text


@pytest.mark.slow
def test_streamed_loop_equals_the_in_memory_loop(tiny_cache, tmp_path):
    """With the 8 transforms encoded, streaming the sharded latent cache through a DataLoader with
    2 workers trains exactly what the in-memory loop trains (same losses, same weights)."""
    from safetensors.torch import load_file

    kw = dict(vae_steps=2, max_train_steps=3, log_every=1, validation_steps=100, checkpointing_steps=100,
              save_snapshots=False, latent_dihedral="encoded", num_threads=1)
    train_diffusion(_tiny_cfg(tiny_cache, tmp_path / "mem", latent_loading="memory", **kw), show_progress=False)
    (tmp_path / "disk").mkdir()
    import shutil

    shutil.copytree(tmp_path / "mem" / "vae_stage", tmp_path / "disk" / "vae_stage")  # the same VAE
    train_diffusion(_tiny_cfg(tiny_cache, tmp_path / "disk", latent_loading="stream", dataloader_num_workers=2,
                              **kw), show_progress=False)
    losses = [[r["loss"] for r in _log_rows(tmp_path / run) if r.get("event") == "train"] for run in ("mem", "disk")]
    assert len(losses[0]) == 3 and losses[0] == losses[1]
    weights = [load_file(str(tmp_path / run / "model" / "unet" / "diffusion_pytorch_model.safetensors"))
               for run in ("mem", "disk")]
    assert all(np.array_equal(weights[0][k].numpy(), weights[1][k].numpy()) for k in weights[0])
    (manifest,) = (tmp_path / "disk" / "latents").glob("*/latents.json")
    assert json.loads(manifest.read_text())["copies"] == 8


def test_v3_settings_objective_zero_snr_and_their_checks():
    from diffusers import DDPMScheduler

    from galaxysd_core.errors import GalaxySDValueError
    from galaxysd_core.training.diffusion import scheduler_overrides

    assert scheduler_overrides(DiffusionTrainConfig()) == {}
    cfg = DiffusionTrainConfig(prediction_type="v_prediction", zero_terminal_snr=True)
    over = scheduler_overrides(cfg)
    assert over == {"prediction_type": "v_prediction", "rescale_betas_zero_snr": True, "timestep_spacing": "trailing"}
    sched = DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, **over)
    assert float(sched.alphas_cumprod[-1]) == 0.0  # the last timestep carries no signal
    with pytest.raises(GalaxySDValueError, match="needs prediction_type v_prediction"):
        DiffusionTrainConfig(zero_terminal_snr=True)
    with pytest.raises(GalaxySDValueError, match="prediction_type"):
        DiffusionTrainConfig(prediction_type="sample")
    with pytest.raises(GalaxySDValueError, match="partial_vote_threshold"):
        DiffusionTrainConfig(partial_vote_threshold=1.5)
    with pytest.raises(GalaxySDValueError, match="rare_oversampling"):
        DiffusionTrainConfig(rare_oversampling=0.5)
