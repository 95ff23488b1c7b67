"""The accelerate config examples of train/accelerate/ are what `accelerate launch` reads: one GPU,
8 GPUs of one machine, 2 machines of 8 GPUs; the effective batch they give is logged at start."""
from __future__ import annotations

from pathlib import Path

import pytest

from galaxysd_core.training.config import DiffusionTrainConfig
from galaxysd_core.training.data import steps_per_epoch
from galaxysd_core.training.diffusion import start_row

CONFIGS = Path(__file__).resolve().parents[1] / "train" / "accelerate"


@pytest.mark.parametrize("name, multi_gpu, processes, machines", [
    ("1gpu", False, 1, 1), ("8gpu", True, 8, 1), ("2nodes", True, 16, 2)])
def test_launcher_reads_the_examples(name, multi_gpu, processes, machines):
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser

    path = CONFIGS / f"{name}.yaml"
    args = launch_command_parser().parse_args(["--config_file", str(path), "train/train_diffusion.py"])
    args, _, _ = _validate_launch_command(args)
    assert (bool(args.multi_gpu), args.num_processes, args.num_machines) == (multi_gpu, processes, machines)
    assert args.mixed_precision == "fp16" and args.machine_rank == 0
    if machines > 1:
        assert args.main_process_ip and args.main_process_port
        second = launch_command_parser().parse_args(["--config_file", str(path), "--machine_rank", "1", "x.py"])
        assert _validate_launch_command(second)[0].machine_rank == 1


def test_start_row_effective_batch_and_steps_per_epoch_on_full_gz2():
    cfg = DiffusionTrainConfig.sd15_finetune("/models/sd15", train_batch_size=2)
    row = start_row(cfg, 239_695, 8)  # the 8-GPU example with GalaxySD's batch 16
    assert row["unet"]["effective_batch"] == 16 and row["unet"]["steps_per_epoch"] == 14_981
    assert row["num_processes"] == 8 and "vae" not in row  # fine-tuning: no VAE stage
    acc = DiffusionTrainConfig(train_batch_size=8, gradient_accumulation_steps=4)
    assert start_row(acc, 1000, 2)["unet"]["effective_batch"] == 64
    assert steps_per_epoch(1000, 8, 2, 4) == 16 and steps_per_epoch(1, 64) == 1
