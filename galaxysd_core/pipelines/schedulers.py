"""Samplers of the pipeline by name: ``scheduler="ddim" | "euler_a" | "euler" | "dpmpp"``.

Every call gets a fresh scheduler built from the model's scheduler config (never the shared
instance, so concurrent calls cannot corrupt each other's state).
"""
from __future__ import annotations

from typing import Dict, Optional

from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, EulerAncestralDiscreteScheduler, EulerDiscreteScheduler

from galaxysd_core.errors import GalaxySDValueError

#: Scheduler names accepted by ``scheduler=`` -> (class, extra config).
SCHEDULERS: Dict[str, tuple] = {
    "ddim": (DDIMScheduler, {}),
    "euler_a": (EulerAncestralDiscreteScheduler, {}),
    "euler": (EulerDiscreteScheduler, {}),
    "dpmpp": (DPMSolverMultistepScheduler, {"algorithm_type": "dpmsolver++", "solver_order": 2}),
}


def make_scheduler(config, name: Optional[str] = None):
    """A new scheduler of ``name`` (case-insensitive; DDIM when None) from a scheduler ``config``.

    Raises
    ------
    GalaxySDValueError
        For a name not in :data:`SCHEDULERS`.
    """
    if name is None:
        return DDIMScheduler.from_config(config)
    key = str(name).lower()
    if key not in SCHEDULERS:
        raise GalaxySDValueError(f"unknown scheduler {name!r}; choose one of {sorted(SCHEDULERS)}")
    klass, extra = SCHEDULERS[key]
    return klass.from_config(config, **extra)
