"""The AUTOMATIC1111 (A1111) ``parameters`` text: the settings convention many tools read.

::

    sdss, smooth, {completely round galaxy:1.3}
    Negative prompt: merger
    Steps: 20, Sampler: DDIM, CFG scale: 6.5, Seed: 0, Size: 64x64, Model: galaxysd-mini,
    Feature guidance: "dust lane=4; merger=-2"

(the last item only with guidance per feature, :mod:`galaxysd_core.pipelines.feature_guidance`; a
GalaxySD extension that other tools ignore)

:func:`format_a1111_parameters` writes it from a :func:`~galaxysd_core.io.provenance.provenance`
dict and :func:`parse_a1111_parameters` reads it back, so settings can also be loaded from PNGs
written by other A1111-style tools.
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, Dict, List, Mapping, Tuple

from galaxysd_core._utils import format_feature_text, parse_feature_list
from galaxysd_core.errors import GalaxySDValueError

#: Scheduler names of :mod:`galaxysd_core.pipelines.pipeline_galaxysd` -> sampler names written by AUTOMATIC1111.
A1111_SAMPLER_NAMES: Dict[str, str] = {"ddim": "DDIM", "euler_a": "Euler a", "euler": "Euler",
                                       "dpmpp": "DPM++ 2M"}
_SAMPLER_FROM_A1111: Dict[str, str] = {v.lower(): k for k, v in A1111_SAMPLER_NAMES.items()}
_SAMPLER_FROM_A1111.update({"dpm++ 2m karras": "dpmpp", "euler_a": "euler_a", "ddim": "ddim"})
#: A1111 parameter line: ``key: value`` items, values with commas quoted as JSON strings.
_A1111_PARAM_RE = re.compile(r'\s*(\w[\w \-/+]*):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')


def _a1111_value(value: Any) -> str:
    text = f"{value:g}" if isinstance(value, float) else str(value)
    if any(c in text for c in ',:"\n'):
        return json.dumps(text)
    return text


def format_a1111_parameters(info: Mapping[str, Any]) -> str:
    """The A1111 ``parameters`` text of a :func:`~galaxysd_core.io.provenance.provenance` dict.

    Examples
    --------
    >>> print(format_a1111_parameters({"prompt": "sdss, smooth", "seed": 3, "num_inference_steps": 20,
    ...       "scheduler": "ddim", "guidance_scale": 6.5, "width": 64, "height": 64}))
    sdss, smooth
    Steps: 20, Sampler: DDIM, CFG scale: 6.5, Seed: 3, Size: 64x64
    """
    lines = [str(info.get("prompt", ""))]
    neg = info.get("negative_prompt")
    if isinstance(neg, str) and neg.strip():
        lines.append(f"Negative prompt: {neg}")
    items: List[Tuple[str, Any]] = []
    if info.get("num_inference_steps") is not None:
        items.append(("Steps", int(info["num_inference_steps"])))
    sched = info.get("scheduler")
    if sched:
        items.append(("Sampler", A1111_SAMPLER_NAMES.get(str(sched), str(sched))))
    if info.get("guidance_scale") is not None:
        items.append(("CFG scale", float(info["guidance_scale"])))
    if info.get("seed") is not None:
        items.append(("Seed", int(info["seed"])))
    if info.get("width") and info.get("height"):
        items.append(("Size", f"{int(info['width'])}x{int(info['height'])}"))
    model = info.get("model_name") or (Path(str(info["model"])).name if info.get("model") else None)
    if model:
        items.append(("Model", model))
    if info.get("strength") is not None and info.get("init_image"):
        items.append(("Denoising strength", float(info["strength"])))
    feats = info.get("feature_guidance") or []
    if feats:
        items.append(("Feature guidance", format_feature_text(feats)))
    if info.get("software"):
        items.append(("Version", info["software"]))
    lines.append(", ".join(f"{k}: {_a1111_value(v)}" for k, v in items))
    return "\n".join(lines)


def _number(text: str, kind: type, what: str) -> Any:
    try:
        value = kind(text)
    except (TypeError, ValueError):
        raise GalaxySDValueError(f"PNG parameters: {what} {text!r} is not a number") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise GalaxySDValueError(f"PNG parameters: {what} {text!r} is not finite")
    return value


def parse_a1111_parameters(text: str) -> Dict[str, Any]:
    """Settings from an A1111 ``parameters`` text (the inverse of :func:`format_a1111_parameters`).

    Returns
    -------
    dict
        ``prompt``, ``negative_prompt`` and, when present, ``num_inference_steps``, ``scheduler``
        (our name; unknown samplers are kept in ``sampler`` only), ``guidance_scale``, ``seed``,
        ``width``, ``height``, ``model_name``, ``strength``.

    Raises
    ------
    GalaxySDValueError
        For a text without a prompt, or a malformed number.
    """
    if not isinstance(text, str) or not text.strip():
        raise GalaxySDValueError("PNG 'parameters' chunk is empty")
    lines = text.strip().split("\n")
    params_line = ""
    if len(lines) > 1 and _A1111_PARAM_RE.findall(lines[-1]) and lines[-1].lstrip().startswith(
            ("Steps:", "Sampler:", "Seed:", "CFG scale:", "Size:", "Model:")):
        params_line = lines.pop()
    prompt_lines: List[str] = []
    neg_lines: List[str] = []
    in_neg = False
    for line in lines:
        if line.startswith("Negative prompt:"):
            in_neg = True
            line = line[len("Negative prompt:"):].strip()
        (neg_lines if in_neg else prompt_lines).append(line)
    out: Dict[str, Any] = {"prompt": "\n".join(prompt_lines).strip(), "negative_prompt": "\n".join(neg_lines).strip()}
    if not out["prompt"]:
        raise GalaxySDValueError("PNG 'parameters' chunk has no prompt")
    for key, raw in _A1111_PARAM_RE.findall(params_line):
        value = raw.strip()
        if value.startswith('"') and value.endswith('"'):
            try:
                value = json.loads(value)
            except ValueError:
                value = value[1:-1]
        key = key.strip()
        if key == "Steps":
            out["num_inference_steps"] = _number(value, int, "Steps")
        elif key == "Sampler":
            out["sampler"] = value
            sched = _SAMPLER_FROM_A1111.get(value.lower())
            if sched:
                out["scheduler"] = sched
        elif key == "Feature guidance":
            out["feature_guidance"] = parse_feature_list(value)
        elif key == "CFG scale":
            out["guidance_scale"] = _number(value, float, "CFG scale")
        elif key == "Seed":
            out["seed"] = _number(value, int, "Seed")
        elif key == "Size":
            m = re.fullmatch(r"\s*(\d+)\s*x\s*(\d+)\s*", value)
            if not m:
                raise GalaxySDValueError(f"PNG parameters: Size {value!r} is not WIDTHxHEIGHT")
            out["width"], out["height"] = int(m.group(1)), int(m.group(2))
        elif key == "Model":
            out["model_name"] = value
        elif key == "Denoising strength":
            out["strength"] = _number(value, float, "Denoising strength")
            out["init_image"] = True
        elif key == "Version":
            out["software"] = value
    return out
