"""Samplers of the pipeline by name: ``scheduler="ddim" | "euler_a" | "euler" | "dpmpp"``, and the
scheduler a model folder saves.

Every call gets a fresh scheduler built from the model's scheduler config (never the shared
instance, so concurrent calls cannot corrupt each other's state). A folder's own scheduler class is
the one its ``model_index.json`` names (the diffusers rule), e.g. ``DDIMScheduler`` for the shipped
GalaxySD-mini and ``PNDMScheduler`` for Stable Diffusion 1.5; ``scheduler=None`` samples with it.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Optional

import diffusers
from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, EulerAncestralDiscreteScheduler, EulerDiscreteScheduler
from diffusers.schedulers.scheduling_utils import SchedulerMixin

from galaxysd_core.errors import GalaxySDFileError, GalaxySDValueError

#: Scheduler names accepted by ``scheduler=`` -> (class, extra config).
SCHEDULERS: Dict[str, tuple] = {
    "ddim": (DDIMScheduler, {}),
    "euler_a": (EulerAncestralDiscreteScheduler, {}),
    "euler": (EulerDiscreteScheduler, {}),
    "dpmpp": (DPMSolverMultistepScheduler, {"algorithm_type": "dpmsolver++", "solver_order": 2}),
}


def make_scheduler(config, name: Optional[str] = None, default: Optional[type] = None):
    """A new scheduler of ``name`` (case-insensitive) from a scheduler ``config``.

    ``name`` None gives the class ``default`` (the model's own scheduler class; DDIM when None too).

    Raises
    ------
    GalaxySDValueError
        For a name not in :data:`SCHEDULERS`.
    """
    if name is None:
        return (default or DDIMScheduler).from_config(config)
    key = str(name).lower()
    if key not in SCHEDULERS:
        raise GalaxySDValueError(f"unknown scheduler {name!r}; choose one of {sorted(SCHEDULERS)}")
    klass, extra = SCHEDULERS[key]
    return klass.from_config(config, **extra)


def scheduler_name(klass: type) -> str:
    """The :data:`SCHEDULERS` name of a scheduler class (its first), else the class name."""
    for key, (known, _) in SCHEDULERS.items():
        if klass is known:
            return key
    return klass.__name__


def saved_scheduler_class(root: Path) -> type:
    """The scheduler class a pipeline folder saves: ``model_index.json``'s ``scheduler`` entry
    (``["diffusers", "DDIMScheduler"]``), else ``scheduler/scheduler_config.json``'s ``_class_name``.

    Only scheduler classes of diffusers are accepted (no code is imported from a folder).

    Raises
    ------
    GalaxySDFileError
        When neither file names a diffusers scheduler class.
    """
    root = Path(root)
    name = None
    for path, pick in ((root / "model_index.json", lambda d: (d.get("scheduler") or [None, None])[-1]),
                       (root / "scheduler" / "scheduler_config.json", lambda d: d.get("_class_name"))):
        try:
            data = json.loads(path.read_text())
            name = pick(data) if isinstance(data, dict) else None
        except (OSError, ValueError, TypeError, IndexError, AttributeError):
            name = None
        if name is not None:
            break
    try:
        klass = getattr(diffusers, name, None) if isinstance(name, str) and name.isidentifier() else None
    except (ImportError, RuntimeError):  # a class of an optional backend (e.g. Flax) that is not installed
        klass = None
    if isinstance(klass, type) and issubclass(klass, SchedulerMixin):
        return klass
    named = f"names {str(name)[:80]!r}, not a diffusers scheduler class" if name is not None else "names no scheduler class"
    raise GalaxySDFileError(f"model folder {str(root)!r} {named} (model_index.json 'scheduler' or "
                            f"scheduler/scheduler_config.json '_class_name', e.g. 'DDIMScheduler')")
