"""The feature controls of the Generate page and their round trips with prompt text and stored settings.

One control per GZ2 question (:func:`question_controls`, in decision-tree order), so answers of
one question, which exclude each other, cannot both be on. A control state is
``{question stem: (phrase or None, weight)}``; it converts to and from ``{phrase: weight}``
features and the prompt text (:mod:`galaxysd_core.prompts.grammar`). :func:`settings_from_png`
turns the settings stored in a PNG (or a gallery image) back into control values, clamped to
the ranges the controls offer.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from galaxysd_core.errors import GalaxySDValueError
from galaxysd_core.pipelines.inputs import MAX_GUIDANCE
from galaxysd_core.prompts.grammar import build_prompt, features_from_prompt
from galaxysd_core.schema.gz2 import QUESTION_BY_STEM, TREE_ORDER, captioned_answers
from galaxysd_core.studio.limits import MAX_REQUEST_IMAGES, MAX_UI_SEED, MAX_UI_STEPS

#: Weight range of the feature sliders (the grammar accepts 0-3, beyond ~2 is extrapolation).
SLIDER_MIN, SLIDER_MAX, SLIDER_STEP = 0.5, 2.0, 0.05
#: Label of a feature never seen in training.
UNSEEN_LABEL = "(unseen in training)"
#: Caption phrase -> stem of the GZ2 question it answers.
PHRASE_QUESTION: Dict[str, str] = {a.phrase: a.question for a in captioned_answers()}

#: ``{question stem: (phrase or None, weight)}``: what the controls show.
ControlState = Dict[str, Tuple[Optional[str], float]]


@dataclass(frozen=True)
class QuestionControl:
    """One control of the Generate page: a GZ2 question and its captioned answers (tree order)."""

    stem: str
    text: str
    phrases: Tuple[str, ...]

    @property
    def number(self) -> int:
        """Question number in the GZ2 tree (``t04_spiral`` -> 4)."""
        return int(self.stem[1:3])


def question_controls() -> List[QuestionControl]:
    """One :class:`QuestionControl` per GZ2 question with captioned answers, in tree order."""
    by_q: Dict[str, List[str]] = {}
    for a in captioned_answers():
        by_q.setdefault(a.question, []).append(a.phrase)
    return [QuestionControl(stem, QUESTION_BY_STEM[stem].text, tuple(by_q[stem])) for stem in TREE_ORDER
            if stem in by_q]


def controls_from_features(features: Mapping[str, float]) -> Tuple[ControlState, List[str]]:
    """Control states ``{question stem: (phrase or None, weight)}`` of ``{phrase: weight}``.

    Weights outside the slider range are clamped; the returned notes say so (the prompt text
    keeps the exact weight until a control is moved).

    Raises
    ------
    GalaxySDValueError
        When two answers of the same question are on (they exclude each other), or a phrase is
        not a caption feature.
    """
    state: ControlState = {c.stem: (None, 1.0) for c in question_controls()}
    notes: List[str] = []
    for phrase, weight in features.items():
        stem = PHRASE_QUESTION.get(phrase)
        if stem is None:
            raise GalaxySDValueError(f"{phrase!r} is not a caption feature the sliders know")
        if state[stem][0] is not None:
            raise GalaxySDValueError(
                f"{state[stem][0]!r} and {phrase!r} both answer the GZ2 question "
                f"\"{QUESTION_BY_STEM[stem].text}\"; they exclude each other, keep one")
        w = float(weight)
        clamped = min(max(w, SLIDER_MIN), SLIDER_MAX)
        if not math.isclose(clamped, w):
            notes.append(f"weight {w:g} of {phrase!r} is outside the slider range "
                         f"[{SLIDER_MIN:g}, {SLIDER_MAX:g}]; the slider shows {clamped:g}, the text keeps {w:g}")
        state[stem] = (phrase, round(clamped, 2))
    return state, notes


def features_from_controls(state: Mapping[str, Tuple[Optional[str], float]]) -> Dict[str, float]:
    """``{phrase: weight}`` of the controls that are on (inverse of :func:`controls_from_features`)."""
    return {phrase: round(float(w), 2) for phrase, w in state.values() if phrase}


def prompt_from_controls(state: Mapping[str, Tuple[Optional[str], float]]) -> str:
    """Prompt text of the controls (``build_prompt``; just ``"sdss"`` when all are off)."""
    return build_prompt(features_from_controls(state))


def controls_from_prompt(text: str) -> Tuple[ControlState, List[str]]:
    """Control states of a prompt text (via ``features_from_prompt``); raises the grammar's errors."""
    return controls_from_features(features_from_prompt(text))


def feature_label(phrase: str, unseen: Sequence[str] = ()) -> str:
    """Option label of a feature, marked with :data:`UNSEEN_LABEL` when the model never saw it in training."""
    return f"{phrase} {UNSEEN_LABEL}" if phrase in unseen else phrase


def settings_from_png(info: Mapping[str, Any]) -> Tuple[Dict[str, Any], List[str]]:
    """Control values of the Generate page from :func:`galaxysd_core.io.png.read_png_parameters`.

    Returns
    -------
    settings : dict
        ``prompt``, ``negative_prompt``, ``tree_negatives`` and, when stored, ``steps``, ``guidance``, ``scheduler``,
        ``seed``, ``n_images``, ``strength``, clamped to the ranges the controls offer.
    notes : list of str
        What was clamped or could not be restored (e.g. an unknown sampler, the start image).

    Raises
    ------
    GalaxySDValueError
        When the PNG has no prompt.
    """
    from galaxysd_core.pipelines.schedulers import SCHEDULERS  # imports diffusers: only when needed

    prompt = info.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise GalaxySDValueError("the PNG's settings have no prompt")
    out: Dict[str, Any] = {"prompt": prompt.strip(), "negative_prompt": str(info.get("negative_prompt") or ""),
                           # the recorded negative prompt is the one used; only a GalaxySD Studio image that
                           # used the automatic one says so (others: exactly what was recorded, nothing added)
                           "tree_negatives": bool(info.get("tree_negatives", False))}
    notes: List[str] = []

    def clamp(name: str, value: Any, lo: float, hi: float, kind: type) -> None:
        try:
            v = kind(value)
        except (TypeError, ValueError):
            notes.append(f"{name} {value!r} is not a number; kept the current value")
            return
        c = min(max(v, lo), hi)
        if c != v:
            notes.append(f"{name} {v:g} is outside [{lo:g}, {hi:g}]; set to {c:g}")
        out[name] = kind(c)

    if info.get("num_inference_steps") is not None:
        clamp("steps", info["num_inference_steps"], 1, MAX_UI_STEPS, int)
    if info.get("guidance_scale") is not None:
        clamp("guidance", info["guidance_scale"], 0.0, MAX_GUIDANCE, float)
    if info.get("seed") is not None:
        clamp("seed", info["seed"], 0, MAX_UI_SEED, int)
    if info.get("num_images_per_prompt") is not None:
        clamp("n_images", info["num_images_per_prompt"], 1, MAX_REQUEST_IMAGES, int)
    sched = info.get("scheduler")
    if sched in SCHEDULERS:
        out["scheduler"] = sched
    elif sched or info.get("sampler"):
        notes.append(f"sampler {sched or info.get('sampler')!r} is not available; kept the current one")
    if info.get("init_image"):
        if info.get("strength") is not None:
            clamp("strength", info["strength"], 0.05, 1.0, float)
        notes.append("the image was made from a real galaxy (img2img); pick the start image again")
    return out, notes
