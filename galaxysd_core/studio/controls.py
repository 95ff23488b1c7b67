"""The feature controls of the Generate page and their round trips with prompt text and stored settings.

One control per GZ2 question (:func:`question_controls`, in decision-tree order), so answers of
one question, which exclude each other, cannot both be on. A control state is
``{question stem: (phrase or None, weight)}``; it converts to and from ``{phrase: weight}``
features and the prompt text (:mod:`galaxysd_core.prompts.grammar`). :func:`settings_from_png`
turns the settings stored in a PNG (or a gallery image) back into control values, clamped to
the ranges the controls offer.

The controls follow the GZ2 decision tree (Willett et al. 2013 Fig. 1): :func:`control_views`
offers at each question only the answers that some path through the tree shares with the answers
chosen elsewhere, and disables a question none of whose answers can join them. Choices further down
a question's own branch do not hide its answers: :func:`choose` sets the answer and turns off the
later ones it no longer leads to, as changing an early answer of a questionnaire clears the
questions that follow from it (so going from "smooth, completely round" to "features or
disk-shaped" is one step). The controls thus only build prompts a volunteer could have given (the
same paths, :data:`~galaxysd_core.schema.gz2.TREE_PATHS`, decide the automatic negative prompt);
typed text can still contradict the tree, which :func:`tree_conflicts` reports.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Set, Tuple

from galaxysd_core.errors import GalaxySDValueError
from galaxysd_core.pipelines.inputs import MAX_GUIDANCE
from galaxysd_core.prompts.grammar import build_prompt, features_from_prompt
from galaxysd_core.schema.gz2 import ANSWER_BY_PHRASE, QUESTION_BY_STEM, TREE_ORDER, TREE_PATHS, captioned_answers
from galaxysd_core.studio.limits import MAX_REQUEST_IMAGES, MAX_UI_SEED, MAX_UI_STEPS

#: Weight range of the feature sliders (the grammar accepts 0-3, beyond ~2 is extrapolation).
SLIDER_MIN, SLIDER_MAX, SLIDER_STEP = 0.5, 2.0, 0.05
#: Strength range of the feature-guidance sliders (multiples of the guidance scale: 0 = the feature
#: off, 1 = the plain prompt, above 1 extrapolates, below 0 pushes the feature away). On the 0.25 grid
#: a strength times a guidance scale on the 0.5 grid is exact in binary floating point, so a stored
#: scale converts back to the same strength ("Reuse" and PNG settings reproduce the image).
STRENGTH_MIN, STRENGTH_MAX, STRENGTH_STEP = -2.0, 8.0, 0.25
#: What the feature sliders drive.
MECHANISMS = {"guidance": "Feature guidance: same galaxy, the feature grows (default)",
              "weight": "Embedding weight {phrase:w} (GalaxySD Sec. 2.3)"}
#: Label of a feature never seen in training.
UNSEEN_LABEL = "(unseen in training)"
#: Caption phrase -> stem of the GZ2 question it answers.
PHRASE_QUESTION: Dict[str, str] = {a.phrase: a.question for a in captioned_answers()}

#: ``{question stem: (phrase or None, weight)}``: what the controls show.
ControlState = Dict[str, Tuple[Optional[str], float]]


#: Short names of the GZ2 questions for the controls' labels (the full question is the tooltip).
SHORT_QUESTIONS: Dict[str, str] = {
    "t01_smooth_or_features": "Smooth or features?", "t07_rounded": "How round?", "t02_edgeon": "Edge-on disc?",
    "t09_bulge_shape": "Edge-on bulge shape", "t03_bar": "Bar?", "t04_spiral": "Spiral arms?",
    "t10_arms_winding": "Arm winding", "t11_arms_number": "Number of arms", "t05_bulge_prominence": "Bulge prominence",
    "t08_odd_feature": "Odd feature", "t06_odd": "Anything odd?"}


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

    @property
    def label(self) -> str:
        """Short label, e.g. ``"Q4. Spiral arms?"`` (:data:`SHORT_QUESTIONS`)."""
        return f"Q{self.number}. {SHORT_QUESTIONS.get(self.stem, self.text)}"


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


def feature_scales(strengths: Mapping[str, float], guidance: float,
                   contrast: Optional[Mapping[str, float]] = None) -> Dict[str, float]:
    """Absolute feature-guidance scales ``{phrase: strength x guidance}`` of the sliders' strengths.

    Strength 1 is the plain prompt and needs no extra branch: it is left out (exactly plain CFG).
    A feature with a ``contrast`` weight (the model's ``feature_defaults.json``) also pushes the
    other answers of its GZ2 question away above strength 1
    (:func:`~galaxysd_core.pipelines.feature_guidance.contrast_scales`).
    """
    from galaxysd_core.pipelines.feature_guidance import contrast_scales

    out: Dict[str, float] = {}
    for p, m in strengths.items():
        for q, s in contrast_scales(p, float(m), float(guidance), float((contrast or {}).get(p, 0.0))):
            out[q] = out.get(q, 0.0) + s
    return out


def contrast_note(phrase: Optional[str], contrast: Optional[Mapping[str, float]]) -> Optional[str]:
    """One line under a slider whose feature uses contrast (what it also pushes away), else None."""
    from galaxysd_core.schema.gz2 import alternative_answers

    w = float((contrast or {}).get(phrase, 0.0)) if phrase else 0.0
    alts = alternative_answers(phrase) if phrase else []
    if w <= 0 or not alts:
        return None
    return f"above 1 it also pushes away: {', '.join(alts)} (contrast w {w:g}, model default)"


def fold_contrast(scales: Mapping[str, float], guidance: float) -> Tuple[Dict[str, float], Dict[str, float]]:
    """Inverse of the contrast in :func:`feature_scales`: ``scales`` without the alternatives' push.

    A recorded image's feature guidance holds the pushed-away alternatives as negative scales; a
    slider shows only its feature. When *every* alternative of a feature guided above strength 1
    has the same negative scale, they are the slider's contrast: they are removed and the weight
    ``w = -s_alt / ((m - 1) g)`` is returned. Anything else (a hand-made negative feature) is kept.

    Returns
    -------
    scales : dict
        Without the folded alternatives.
    weights : dict
        Feature phrase -> the contrast weight found.
    """
    from galaxysd_core.schema.gz2 import alternative_answers

    out = {p: float(s) for p, s in scales.items()}
    weights: Dict[str, float] = {}
    g = float(guidance)
    if g <= 0:
        return out, weights
    for p, s in list(out.items()):
        m = s / g
        alts = alternative_answers(p)
        if m <= 1.0 or p not in out or not alts or not all(q in out for q in alts):
            continue
        vals = [out[q] for q in alts]
        if vals[0] < 0 and all(math.isclose(v, vals[0], rel_tol=1e-9, abs_tol=1e-12) for v in vals):
            weights[p] = -vals[0] / ((m - 1.0) * g)
            for q in alts:
                del out[q]
    return out, weights


def strengths_from_scales(scales: Mapping[str, float], guidance: float) -> Dict[str, float]:
    """Inverse of :func:`feature_scales`: ``{phrase: scale / guidance}`` (guidance <= 0 gives the scale)."""
    g = float(guidance)
    return {p: (float(s) / g if g > 0 else float(s)) for p, s in scales.items()}


def feature_label(phrase: str, unseen: Sequence[str] = ()) -> str:
    """Option label of a feature, marked with :data:`UNSEEN_LABEL` when the model never saw it in training."""
    return f"{phrase} {UNSEEN_LABEL}" if phrase in unseen else phrase


# ----------------------------------------------------------------------------- the GZ2 tree
def tree_consistent(phrases: Sequence[str]) -> bool:
    """True when one path through the GZ2 tree gives every answer of ``phrases`` (unknown phrases ignored)."""
    cols = {ANSWER_BY_PHRASE[p].column for p in phrases if p in ANSWER_BY_PHRASE}
    return not cols or any(cols <= path for path in TREE_PATHS)


@dataclass(frozen=True)
class QuestionView:
    """What one question's control offers for the current choices.

    Attributes
    ----------
    options : tuple of str
        Answers that can join the choices made at the questions that do not follow from this one
        (the current answer is kept even when typed text made it contradictory, so the control
        can show it).
    disabled : bool
        True when no answer of this question can follow those choices (and none is chosen).
    reason : str
        Why answers are missing or the question is disabled, e.g. ``"not asked with 'smooth'"``.
    """

    options: Tuple[str, ...]
    disabled: bool
    reason: str = ""


def _descendants(stem: str) -> Set[str]:
    """Questions reachable from ``stem`` through its answers (Willett et al. 2013 Fig. 1)."""
    seen: Set[str] = set()
    todo = [stem]
    while todo:
        for a in QUESTION_BY_STEM[todo.pop()].answers:
            if a.leads_to and a.leads_to not in seen:
                seen.add(a.leads_to)
                todo.append(a.leads_to)
    return seen


#: ``{question stem: questions that follow from it}``.
DESCENDANTS: Dict[str, Set[str]] = {q: _descendants(q) for q in QUESTION_BY_STEM}


def _constraining(state: Mapping[str, Tuple[Optional[str], float]], stem: str) -> List[str]:
    """Answers chosen at the questions that do not follow from ``stem`` (tree order)."""
    return [state[q][0] for q in TREE_ORDER
            if q != stem and q not in DESCENDANTS[stem] and q in state and state[q][0]]


def control_views(state: Mapping[str, Tuple[Optional[str], float]]) -> Dict[str, QuestionView]:
    """``{question stem: QuestionView}`` of every control for the control state ``state``.

    An answer is offered when the GZ2 tree has a path through it and every answer chosen at the
    questions that do not follow from its own; answers that clash only with choices further down
    their own branch stay offered, and :func:`choose` turns those choices off.
    """
    views: Dict[str, QuestionView] = {}
    for c in question_controls():
        before = _constraining(state, c.stem)
        current = state.get(c.stem, (None, 1.0))[0]
        allowed = tuple(p for p in c.phrases if p == current or tree_consistent([*before, p]))
        excluded = [p for p in c.phrases if p not in allowed]
        blockers = [b for b in before if any(not tree_consistent([b, p]) for p in excluded)] or before
        why = f"with {', '.join(repr(b) for b in blockers)}" if blockers else ""
        if not allowed:
            views[c.stem] = QuestionView((), True, f"not asked {why}".strip())
        else:
            views[c.stem] = QuestionView(allowed, False, f"{len(excluded)} answer(s) ruled out {why}".strip()
                                         if excluded else "")
    return views


def choose(state: Mapping[str, Tuple[Optional[str], float]], stem: str, phrase: Optional[str],
           weight: Optional[float] = None) -> Tuple[ControlState, List[str]]:
    """Set question ``stem`` to ``phrase`` (None = off) and turn off the answers the tree then rules out.

    The new answer wins; the other chosen answers are kept in tree order while they stay on one
    path through the tree with it and the ones kept before them.

    Returns
    -------
    state : dict
        The new control state.
    notes : list of str
        One line per answer turned off, saying why.

    Raises
    ------
    GalaxySDValueError
        For an unknown question or an answer of another question.
    """
    if stem not in QUESTION_BY_STEM:
        raise GalaxySDValueError(f"unknown GZ2 question {stem!r}")
    if phrase is not None and PHRASE_QUESTION.get(phrase) != stem:
        raise GalaxySDValueError(f"{phrase!r} is not an answer of \"{QUESTION_BY_STEM[stem].text}\"")
    new: ControlState = {k: (v[0], float(v[1])) for k, v in state.items()}
    new[stem] = (phrase, float(new.get(stem, (None, 1.0))[1] if weight is None else weight))
    kept: List[str] = [phrase] if phrase else []
    notes: List[str] = []
    for q in TREE_ORDER:
        if q == stem or q not in new or not new[q][0]:
            continue
        other = new[q][0]
        if tree_consistent([*kept, other]):
            kept.append(other)
        else:
            new[q] = (None, new[q][1])
            notes.append(f"turned off {other!r}: the GZ2 tree does not lead there with {phrase!r}"
                         if phrase else f"turned off {other!r}: it contradicts the other answers")
    return new, notes


def tree_conflicts(features: Sequence[str]) -> List[str]:
    """Why a set of caption features contradicts the GZ2 tree (empty when one path holds them all).

    Features are taken in tree order; each one that no path shares with the ones before it gets a
    line naming an earlier feature it cannot follow (or "the answers before it" when only their
    combination excludes it).
    """
    order = {p: i for i, p in enumerate(a.phrase for a in captioned_answers())}
    feats = sorted((f for f in features if f in ANSWER_BY_PHRASE), key=lambda f: order.get(f, len(order)))
    out: List[str] = []
    kept: List[str] = []
    for f in feats:
        if tree_consistent([*kept, f]):
            kept.append(f)
            continue
        other = next((k for k in kept if not tree_consistent([k, f])), None)
        out.append(f"{other!r} and {f!r} cannot both hold: no path through the GZ2 tree gives both answers"
                   if other else f"{f!r} cannot follow the answers before it on the GZ2 tree")
    return out


def settings_from_png(info: Mapping[str, Any], contrast: Optional[Mapping[str, float]] = None
                      ) -> Tuple[Dict[str, Any], List[str]]:
    """Control values of the Generate page from :func:`galaxysd_core.io.png.read_png_parameters`.

    The alternatives a slider pushed away (its contrast) fold back into that slider
    (:func:`fold_contrast`); ``contrast``, the loaded model's weights, adds a note when they differ.

    Returns
    -------
    settings : dict
        ``prompt``, ``negative_prompt``, ``tree_negatives`` and, when stored, ``steps``, ``guidance``, ``scheduler``,
        ``seed``, ``n_images``, ``strength``, clamped to the ranges the controls offer, and
        ``feature_strengths`` (``{phrase: strength}`` of guidance per feature, empty without it).
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
    # the recorded negative prompt is the one used; only a GalaxySD Studio image that used the automatic
    # one says so (others: exactly what was recorded, nothing added). The automatic one is rebuilt from
    # the prompt (the same text), so the negative-prompt box stays empty and the checkbox on.
    automatic = bool(info.get("tree_negatives", False))
    out: Dict[str, Any] = {"prompt": prompt.strip(),
                           "negative_prompt": "" if automatic else str(info.get("negative_prompt") or ""),
                           "tree_negatives": automatic}
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
    feats = info.get("feature_guidance") or []
    out["feature_strengths"] = {}
    if feats:
        g = float(out.get("guidance", info.get("guidance_scale") or 1.0))
        pairs: Dict[str, float] = {}
        for item in feats:
            try:
                phrase, scale = str(item[0]), float(item[1])
            except (TypeError, ValueError, IndexError):
                notes.append(f"feature guidance {item!r} is not (phrase, scale); left out")
                continue
            pairs[phrase] = scale
        # the recorded guidance scale (before clamping) made the contrast
        folded, found = fold_contrast(pairs, float(info.get("guidance_scale") or g))
        for phrase, w in found.items():
            now = float((contrast or {}).get(phrase, 0.0))
            if contrast is not None and not math.isclose(now, w, rel_tol=1e-6, abs_tol=1e-9):
                notes.append(f"the image pushed the other answers of {phrase!r} away with contrast {w:g}; "
                             f"this model's slider uses {now:g}, so the remake can differ")
        for phrase, scale in folded.items():
            m = strengths_from_scales({phrase: scale}, g)[phrase]
            c = min(max(m, STRENGTH_MIN), STRENGTH_MAX)
            c = round(c / STRENGTH_STEP) * STRENGTH_STEP
            if c != m:
                notes.append(f"strength {m:g} of {phrase!r} set to {c:g} (the sliders' range and steps)")
            out["feature_strengths"][phrase] = float(c)
    if info.get("init_image"):
        if info.get("strength") is not None:
            clamp("strength", info["strength"], 0.05, 1.0, float)
        notes.append("the image was made from a real galaxy (img2img); pick the start image again")
    return out, notes
