"""Checkpoints of a training run: ``accelerator.save_state`` folders ``checkpoint-<step>``.

A ``DONE`` file written after the state marks a complete checkpoint, so a run killed mid-save is
resumed from the previous one (under ``accelerate launch`` every process saves its part and the
main process writes ``DONE`` once all have). accelerate stores optimizer/RNG state with
``torch.save``; only the run's own checkpoint folders are ever read back (model weights themselves
are safetensors).
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import List, Optional

from galaxysd_core.errors import GalaxySDFileError


def list_checkpoints(folder: Path) -> List[Path]:
    """``checkpoint-<step>`` folders of ``folder``, by increasing step (complete or not)."""
    found = [p for p in Path(folder).glob("checkpoint-*") if p.is_dir() and re.fullmatch(r"checkpoint-\d+", p.name)]
    return sorted(found, key=checkpoint_step)


def checkpoint_step(checkpoint: Path) -> int:
    """The step of a ``checkpoint-<step>`` folder."""
    return int(Path(checkpoint).name.split("-")[1])


def resolve_resume(folder: Path, resume: Optional[str]) -> Optional[Path]:
    """The checkpoint to resume from: None without ``resume``; for ``"latest"`` the newest complete
    checkpoint of ``folder`` (None when there is none); else the named folder (absolute, relative
    to the working directory, or inside ``folder``).

    Raises
    ------
    GalaxySDFileError
        If a named checkpoint does not exist.
    """
    if not resume:
        return None
    if resume == "latest":
        ckpts = [c for c in list_checkpoints(folder) if (c / "DONE").exists()]
        return ckpts[-1] if ckpts else None
    path = Path(resume)
    path = path if path.is_absolute() or path.exists() else Path(folder) / resume
    if not path.is_dir():
        raise GalaxySDFileError(f"checkpoint {str(path)!r} does not exist; use 'latest' or a checkpoint-<step> folder")
    return path


def save_checkpoint(accelerator, folder: Path, step: int, limit: int) -> None:
    """Save the accelerator state as ``folder/checkpoint-<step>`` and keep the newest ``limit``."""
    target = Path(folder) / f"checkpoint-{step}"
    accelerator.save_state(str(target))
    accelerator.wait_for_everyone()  # every process has written its RNG state before DONE marks the folder
    if accelerator.is_main_process:
        (target / "DONE").write_text(str(step))  # marks a complete checkpoint (a kill mid-save leaves none)
        for old in list_checkpoints(folder)[:-limit]:
            shutil.rmtree(old, ignore_errors=True)
