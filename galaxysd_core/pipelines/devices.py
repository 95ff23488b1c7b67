"""Which device and dtype the models run on (``--device`` / ``$GALAXYSD_DEVICE``, ``--dtype`` / ``$GALAXYSD_DTYPE``).

Devices: ``auto`` (the default) is CUDA when ``torch.cuda.is_available()``, else Apple's MPS when
available, else the CPU; ``cpu``, ``cuda``, ``cuda:N`` and ``mps`` ask for one. Asking for a device
this machine does not have raises :class:`~galaxysd_core.errors.GalaxySDValueError` naming the
devices it has and how to choose.

Dtypes (:data:`DTYPE_NAMES`): ``auto`` is float16 on CUDA (half the memory and several times the
speed of float32 on tensor cores; Stable Diffusion 1.5 runs in float16 without loss that shows in
images), float32 on the CPU (float16 convolutions are slow or missing there) and on MPS (the safe
choice; float16 on request). ``bf16`` on CUDA needs ``torch.cuda.is_bf16_supported()`` (Ampere and
newer). ``fp16`` on the CPU is refused.

Seeds: random numbers are always drawn from CPU ``torch.Generator`` objects and then moved to the
device (:func:`initial_noise`; the samplers' own noise goes through diffusers' ``randn_tensor``,
which does the same for CPU generators), so a seed gives the same starting noise on every device,
as diffusers recommends ("Reproducible pipelines" in the diffusers documentation). Images from the
same seed still differ slightly between devices and dtypes (different kernels), not in content.
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
from dataclasses import dataclass
from typing import Iterator, List, Optional, Sequence, Tuple, Union

import torch

from galaxysd_core.config import DEVICE_ENV, DTYPE_ENV
from galaxysd_core.errors import GalaxySDValueError

logger = logging.getLogger(__name__)

__all__ = ["DEVICE_NAMES", "DTYPE_NAMES", "DeviceChoice", "available_devices", "choose_device",
           "cpu_generators", "describe_pipeline_device", "device_environment", "initial_noise",
           "resolve_device", "resolve_dtype"]

#: Accepted device names (``cuda:N`` names GPU N).
DEVICE_NAMES = ("auto", "cpu", "cuda", "cuda:N", "mps")
#: Accepted dtype names and the dtypes they stand for (``auto``: the policy of :func:`resolve_dtype`).
DTYPE_NAMES = {"auto": None, "fp32": torch.float32, "float32": torch.float32, "fp16": torch.float16,
               "float16": torch.float16, "half": torch.float16, "bf16": torch.bfloat16,
               "bfloat16": torch.bfloat16}
_SHORT = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}
_DEVICE_RE = re.compile(r"^(auto|cpu|mps|cuda(?::(\d+))?)$")
_HOW = f"choose with --device or ${DEVICE_ENV} (auto, cpu, cuda, cuda:N, mps)"

DeviceLike = Union[str, torch.device, None]
DtypeLike = Union[str, torch.dtype, None]


# ---------------------------------------------------------------------------------------- devices
def _cuda_count() -> int:
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def available_devices() -> List[str]:
    """Devices this machine offers, e.g. ``["cpu"]`` or ``["cpu", "cuda:0", "cuda:1"]``."""
    out = ["cpu"]
    if torch.cuda.is_available():
        out += [f"cuda:{i}" for i in range(max(1, _cuda_count()))]
    if _mps_available():
        out.append("mps")
    return out


def _requested(name: DeviceLike, env: str) -> Tuple[str, str]:
    """``(value, who asked)`` of a device or dtype request: the argument, else the variable, else auto."""
    if name is not None and str(name).strip():
        return str(name).strip().lower(), "requested"
    value = os.environ.get(env, "").strip().lower()
    if value:
        return value, f"${env}={value}"
    return "auto", "default"


def resolve_device(name: DeviceLike = None) -> torch.device:
    """The device to run on.

    Parameters
    ----------
    name : str or torch.device, optional
        ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``; None reads ``$GALAXYSD_DEVICE``
        (unset: ``auto`` = CUDA when available, else MPS, else CPU).

    Raises
    ------
    GalaxySDValueError
        For an unknown name, or a device this machine does not have.
    """
    return choose_device(name).device


def _resolve(name: DeviceLike) -> Tuple[torch.device, str]:
    if isinstance(name, torch.device):
        name = str(name)
    value, who = _requested(name, DEVICE_ENV)
    match = _DEVICE_RE.match(value)
    if match is None:
        raise GalaxySDValueError(f"unknown device {value!r} ({who}); {_HOW}")
    have = ", ".join(available_devices())
    if value == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device()), f"{who}: auto, CUDA available"
        if _mps_available():
            return torch.device("mps"), f"{who}: auto, Apple MPS available"
        return torch.device("cpu"), f"{who}: auto, no CUDA or MPS device"
    if value.startswith("cuda"):
        if not torch.cuda.is_available():
            raise GalaxySDValueError(
                f"device {value!r} ({who}) is not available: PyTorch sees no CUDA GPU on this machine "
                f"(CUDA build: {torch.version.cuda or 'no, a CPU-only PyTorch'}). Available: {have}; "
                f"use --device auto or cpu, or unset ${DEVICE_ENV}")
        index = int(match.group(2)) if match.group(2) is not None else torch.cuda.current_device()
        if index >= max(1, _cuda_count()):
            raise GalaxySDValueError(f"device {value!r} ({who}) does not exist; available: {have}; {_HOW}")
        return torch.device("cuda", index), who
    if value == "mps" and not _mps_available():
        raise GalaxySDValueError(f"device 'mps' ({who}) is not available on this machine (Apple silicon with "
                                 f"a PyTorch built with MPS needed). Available: {have}; {_HOW}")
    return torch.device(value), who


# ----------------------------------------------------------------------------------------- dtypes
def _dtype_request(dtype: DtypeLike) -> Tuple[Optional[torch.dtype], str]:
    if isinstance(dtype, torch.dtype):
        if dtype not in _SHORT:
            raise GalaxySDValueError(f"dtype {dtype} is not supported; use fp32, fp16 or bf16")
        return dtype, "requested"
    value, who = _requested(dtype, DTYPE_ENV)
    if value not in DTYPE_NAMES:
        raise GalaxySDValueError(f"unknown dtype {value!r} ({who}); use auto, fp32, fp16 or bf16 "
                                 f"(--dtype or ${DTYPE_ENV})")
    return DTYPE_NAMES[value], who


def resolve_dtype(device: Union[str, torch.device], dtype: DtypeLike = None) -> torch.dtype:
    """The dtype for ``device``: the request (``dtype``, else ``$GALAXYSD_DTYPE``) checked, or the policy.

    Policy of ``auto``: float16 on CUDA, float32 on the CPU and on MPS (module docstring).

    Raises
    ------
    GalaxySDValueError
        For an unknown name, float16 on the CPU, bfloat16 on a GPU without it, or bfloat16 on MPS.
    """
    return _dtype_for(torch.device(device), dtype)[0]


def _dtype_for(device: torch.device, dtype: DtypeLike) -> Tuple[torch.dtype, str]:
    want, who = _dtype_request(dtype)
    if want is None:
        return (torch.float16, "float16 on CUDA") if device.type == "cuda" else (torch.float32, "float32 off CUDA")
    name = _SHORT[want]
    if device.type == "cpu" and want == torch.float16:
        raise GalaxySDValueError(f"dtype fp16 ({who}) is not supported on the CPU (slow or missing float16 kernels); "
                                 f"use --dtype fp32 (or auto) on the CPU, or run on a GPU with --device cuda")
    if device.type == "cuda" and want == torch.bfloat16 and not torch.cuda.is_bf16_supported():
        raise GalaxySDValueError(f"dtype bf16 ({who}) is not supported by {torch.cuda.get_device_name(device)}; "
                                 f"use --dtype fp16 (or auto) on this GPU")
    if device.type == "mps" and want == torch.bfloat16:
        raise GalaxySDValueError(f"dtype bf16 ({who}) is not supported on MPS by every PyTorch version; "
                                 f"use --dtype fp16 or fp32")
    return want, f"{name} ({who})"


# ------------------------------------------------------------------------------------- the choice
@dataclass(frozen=True)
class DeviceChoice:
    """Where and in which precision the models run.

    Attributes
    ----------
    device : torch.device
    dtype : torch.dtype
    reason : str
        Why, e.g. ``"default: auto, CUDA available; float16 on CUDA"``.
    """

    device: torch.device
    dtype: torch.dtype
    reason: str = ""

    def describe(self) -> str:
        """One line for people: ``"cuda:0 (NVIDIA H200), float16"`` or ``"cpu, float32"``."""
        dtype = str(self.dtype).replace("torch.", "")
        if self.device.type == "cuda":
            index = self.device.index if self.device.index is not None else 0
            try:
                gpu = torch.cuda.get_device_name(index)
            except Exception:  # a device description must never fail (e.g. a driver hiccup)
                gpu = "GPU"
            return f"cuda:{index} ({gpu}), {dtype}"
        return f"{self.device}, {dtype}"


def choose_device(device: DeviceLike = None, dtype: DtypeLike = None) -> DeviceChoice:
    """Device (flag, else ``$GALAXYSD_DEVICE``, else auto) and dtype (flag, else ``$GALAXYSD_DTYPE``,
    else the policy) to run a pipeline on.

    Raises
    ------
    GalaxySDValueError
        For an unknown or unavailable device, or a dtype the device does not support.
    """
    dev, dev_reason = _resolve(device)
    dt, dt_reason = _dtype_for(dev, dtype)
    return DeviceChoice(device=dev, dtype=dt, reason=f"{dev_reason}; {dt_reason}")


def describe_pipeline_device(pipe) -> str:
    """Where a loaded pipeline runs, for the app's sidebar: ``"cuda:0 (NVIDIA H200), float16"``.

    Read from the modules themselves (the UNet's parameters), so it stays true however the
    pipeline was placed.
    """
    module = getattr(pipe, "unet", None)
    try:
        param = next(module.parameters())
        return DeviceChoice(param.device, param.dtype).describe()
    except (AttributeError, StopIteration, TypeError):
        return DeviceChoice(torch.device(getattr(pipe, "device", "cpu")),
                            getattr(pipe, "dtype", torch.float32)).describe()


@contextlib.contextmanager
def device_environment(device: DeviceLike = None, dtype: DtypeLike = None) -> Iterator[DeviceChoice]:
    """Set ``$GALAXYSD_DEVICE`` / ``$GALAXYSD_DTYPE`` for the block (restored afterwards).

    For commands whose library calls load pipelines deep inside (evaluation over prompts or
    checkpoints): every :func:`~galaxysd_core.pipelines.pipeline_galaxysd.load_pipeline` inside the
    block follows the request. The request is checked first, so an unavailable device fails before
    anything loads. Not thread-safe (it changes the process environment): for commands, not the app.
    """
    choice = choose_device(device, dtype)
    old = {k: os.environ.get(k) for k in (DEVICE_ENV, DTYPE_ENV)}
    if device is not None:
        os.environ[DEVICE_ENV] = str(choice.device)
    if dtype is not None:
        os.environ[DTYPE_ENV] = _SHORT[choice.dtype]
    try:
        yield choice
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# ------------------------------------------------------------------------------------------ seeds
def cpu_generators(seeds: Sequence[int]) -> List[torch.Generator]:
    """One seeded CPU generator per seed (the same numbers on every machine and device)."""
    return [torch.Generator("cpu").manual_seed(int(s)) for s in seeds]


def initial_noise(shape: Sequence[int], generators: Sequence[torch.Generator], device: DeviceLike = "cpu",
                  dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Starting noise ``(len(generators), *shape[1:])``: one float32 draw per CPU generator, then moved.

    Drawing on the CPU in float32 and only then moving and casting makes the noise of a seed
    independent of the device and dtype the pipeline runs on.
    """
    one = (1, *tuple(shape)[1:])
    noise = torch.cat([torch.randn(one, generator=g, dtype=torch.float32) for g in generators])
    return noise.to(device=torch.device(device) if device is not None else "cpu", dtype=dtype)
