"""Guidance per feature: a slider that moves one feature of the same galaxy (composable diffusion).

Liu et al. (2022, ECCV, "Compositional Visual Generation with Composable Diffusion Models") add
the guidance terms of several conditions. Here the conditions are the prompt without the guided
features (the *base*) and the base plus one feature each:

.. math::

    \\epsilon = \\epsilon(\\mathrm{neg}) + g\\,[\\epsilon(\\mathrm{base}) - \\epsilon(\\mathrm{neg})]
              + \\sum_i s_i\\,[\\epsilon(\\mathrm{base} + f_i) - \\epsilon(\\mathrm{base})]

with ``g`` the usual classifier-free guidance scale and ``s_i`` the feature's own scale. ``s_i = 0``
leaves the feature out (plain CFG of the base prompt, bit for bit: zero-scale branches are not
evaluated), ``s_i = g`` is plain CFG of the prompt with the feature, larger values extrapolate and
negative values push the feature away. Because the base and the noise are shared, each seed keeps
its galaxy while the feature grows or fades, which a weight of the text embedding
(``{phrase:w}``, GalaxySD Sec. 2.3) does not guarantee. All branches of one step go through one
batched UNet call (:func:`combine`).

Owns :data:`MAX_FEATURES`, :data:`SCALE_RANGE`, :class:`FeatureBranches`, :func:`parse_feature_arg`,
:func:`normalize_features`, :func:`contrast_scales`, :func:`remove_phrase`, :func:`add_phrase`, :func:`branches_for` and
:func:`combine`.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any, List, Mapping, Optional, Sequence, Tuple, Union

from galaxysd_core._utils import parse_feature_text
from galaxysd_core.errors import GalaxySDValueError
from galaxysd_core.prompts.grammar import ParsedPrompt

__all__ = ["MAX_FEATURES", "SCALE_RANGE", "FeatureBranches", "parse_feature_arg", "normalize_features",
           "remove_phrase", "add_phrase", "branches_for", "combine", "contrast_scales"]

#: Guided features per call (each adds one UNet branch per image).
MAX_FEATURES = 8
#: Allowed feature scales (negative: push the feature away): the app's strongest slider strength (8)
#: times the largest guidance scale (30); far beyond what any measured default uses.
SCALE_RANGE = (-240.0, 240.0)

FeatureSpec = Union[None, Mapping[str, float], Sequence[Union[Tuple[str, float], Sequence[Any], str]]]


def parse_feature_arg(text: str) -> Tuple[str, float]:
    """``"bar-shaped structure in the center of galaxy=4"`` -> ``(phrase, 4.0)`` (the CLI's ``--feature``;
    :func:`galaxysd_core._utils.parse_feature_text`)."""
    return parse_feature_text(text)


def normalize_features(features: FeatureSpec, known: Optional[Sequence[str]] = None) -> Tuple[Tuple[str, float], ...]:
    """Checked ``((phrase, scale), ...)`` from a dict, pairs or ``"phrase=scale"`` strings.

    Parameters
    ----------
    features : dict, sequence or None
    known : sequence of str, optional
        Phrases the model knows (GalaxySD-mini's caption vocabulary); None accepts any text.

    Raises
    ------
    GalaxySDValueError
        For an unknown or repeated phrase, more than :data:`MAX_FEATURES`, or a scale that is not a
        finite number in :data:`SCALE_RANGE`.
    """
    if features is None:
        return ()
    items = list(features.items()) if isinstance(features, Mapping) else list(features)
    out: List[Tuple[str, float]] = []
    for item in items:
        if isinstance(item, str):
            item = parse_feature_arg(item)
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise GalaxySDValueError(f"feature_guidance takes (phrase, scale) pairs, got {item!r}")
        phrase, scale = item
        if not isinstance(phrase, str) or not phrase.strip() or "," in phrase or "{" in phrase:
            raise GalaxySDValueError(f"a guided feature is one caption phrase such as 'dust lane', got {phrase!r}")
        phrase = " ".join(phrase.split())
        if known is not None and phrase not in known:
            from galaxysd_core.prompts.grammar import suggest_phrases

            hint = suggest_phrases(phrase, list(known))
            raise GalaxySDValueError(f"unknown feature {phrase!r}" + (f"; did you mean {hint[0]!r}?" if hint else ""))
        if not isinstance(scale, numbers.Real) or isinstance(scale, bool) or not math.isfinite(float(scale)) \
                or not SCALE_RANGE[0] <= float(scale) <= SCALE_RANGE[1]:
            raise GalaxySDValueError(f"the scale of feature {phrase!r} must be a number in [{SCALE_RANGE[0]:g}, "
                                     f"{SCALE_RANGE[1]:g}] (0 = off, the guidance scale = as in the prompt), "
                                     f"got {scale!r}")
        if any(p == phrase for p, _ in out):
            raise GalaxySDValueError(f"feature {phrase!r} is given twice")
        out.append((phrase, float(scale)))
    if len(out) > MAX_FEATURES:
        raise GalaxySDValueError(f"at most {MAX_FEATURES} guided features per call, got {len(out)}")
    return tuple(out)


def _chunks(parsed: ParsedPrompt) -> List[Tuple[int, int]]:
    """``[start, end)`` word spans of the comma-separated tags."""
    spans, start = [], 0
    for i, w in enumerate(parsed.words):
        if w == ",":
            spans.append((start, i))
            start = i + 1
    spans.append((start, len(parsed.words)))
    return [(a, b) for a, b in spans if b > a]


def _join(words: Sequence[str]) -> str:
    return " ".join(words).replace(" ,", ",")


def remove_phrase(parsed: ParsedPrompt, phrase: str) -> Tuple[ParsedPrompt, Optional[float]]:
    """The prompt without the tag ``phrase`` (other words keep their weights) and that tag's weight
    (None when the prompt does not hold it)."""
    target = tuple(phrase.split())
    for a, b in _chunks(parsed):
        if tuple(parsed.words[a:b]) == target:
            ws = parsed.weights[a:b]
            weight = max(ws, key=lambda w: abs(w - 1.0))
            # drop the tag and the comma before it (or after it, for the first tag)
            lo, hi = (a - 1, b) if a > 0 else (a, min(b + 1, len(parsed.words)))
            words = parsed.words[:lo] + parsed.words[hi:]
            weights = parsed.weights[:lo] + parsed.weights[hi:]
            return ParsedPrompt(text=_join(words), words=tuple(words), weights=tuple(weights)), float(weight)
    return parsed, None


def add_phrase(parsed: ParsedPrompt, phrase: str, weight: float = 1.0) -> ParsedPrompt:
    """``parsed`` followed by ``", phrase"`` (its words at ``weight``)."""
    extra = tuple(phrase.split())
    words = parsed.words + ((",",) if parsed.words else ()) + extra
    weights = parsed.weights + ((1.0,) if parsed.words else ()) + (float(weight),) * len(extra)
    return ParsedPrompt(text=_join(words), words=words, weights=weights)


def contrast_scales(phrase: str, strength: float, guidance_scale: float, weight: float,
                    alternatives: Optional[Sequence[str]] = None) -> List[Tuple[str, float]]:
    """Feature scales of one slider with *contrast*: the feature pulled in, its alternatives pushed away.

    The answers of one GZ2 question exclude each other, so a slider that makes a galaxy more
    "in-between round" should also make it less "completely round" and less "cigar shaped".
    Composable diffusion (Liu et al. 2022, Sec. 3, the negation operator) does this with a negative
    scale on each alternative's branch. Above strength 1 (the plain prompt) each alternative gets

    .. math:: s_\\mathrm{alt} = -(m - 1)\\, g\\, w

    (``m`` the slider's strength, ``g`` the guidance scale, ``w`` the model's contrast weight of the
    feature, ``feature_defaults.json``); at and below strength 1 there is no contrast, so 1 stays
    the plain prompt and 0 the base alone. Each alternative costs one more UNet branch.

    Parameters
    ----------
    phrase : str
    strength : float
        The slider's strength (a multiple of ``guidance_scale``).
    guidance_scale : float
    weight : float
        Contrast weight ``w`` (0: none).
    alternatives : sequence of str, optional
        Default: the other answers of the phrase's GZ2 question
        (:func:`galaxysd_core.schema.gz2.alternative_answers`).

    Returns
    -------
    list of (str, float)
        ``[(phrase, m g), (alternative, s_alt), ...]``; just the feature when there is no contrast,
        nothing at strength 1 without contrast (the plain prompt needs no branch).
    """
    from galaxysd_core.schema.gz2 import alternative_answers

    m, g, w = float(strength), float(guidance_scale), float(weight)
    if not all(math.isfinite(v) for v in (m, g, w)):
        raise GalaxySDValueError(f"strength, guidance and contrast weight must be finite, got {m}, {g}, {w}")
    alts = list(alternative_answers(phrase) if alternatives is None else alternatives)
    extra = [(a, -(m - 1.0) * g * w) for a in alts] if (m > 1.0 and w != 0.0) else []
    if m == 1.0 and not extra:
        return []
    return [(phrase, m * g)] + extra


@dataclass(frozen=True)
class FeatureBranches:
    """The conditions of one prompt: ``base`` (without the guided features), ``with_feature`` (base +
    feature i), their ``scales`` and ``intended`` (base + every feature of positive scale, the prompt
    the automatic negative is made from)."""

    base: ParsedPrompt
    with_feature: Tuple[ParsedPrompt, ...]
    scales: Tuple[float, ...]
    intended: ParsedPrompt


def branches_for(parsed: ParsedPrompt, features: Sequence[Tuple[str, float]]) -> FeatureBranches:
    """:class:`FeatureBranches` of a parsed prompt; zero-scale features are left out of the branches
    (they add nothing), but still removed from the base."""
    base, weights = parsed, {}
    for phrase, _ in features:
        base, w = remove_phrase(base, phrase)
        weights[phrase] = 1.0 if w is None or w <= 0 else w
    active = [(p, s) for p, s in features if s != 0.0]
    intended = base
    for p, s in features:
        if s > 0:
            intended = add_phrase(intended, p, weights[p])
    return FeatureBranches(base=base, with_feature=tuple(add_phrase(base, p, weights[p]) for p, _ in active),
                           scales=tuple(s for _, s in active), intended=intended)


def combine(eps, n_images: int, guidance_scale: float, do_cfg: bool, scales: Sequence[float]):
    """Guided noise prediction from one batched UNet output (module docstring).

    ``eps`` is ordered ``[neg (if do_cfg), base, feature_1, ..., feature_k]``, ``n_images`` rows each.
    """
    parts = list(eps.split(n_images))
    if do_cfg:
        neg, base, feats = parts[0], parts[1], parts[2:]
        out = neg + guidance_scale * (base - neg)
    else:
        base, feats = parts[0], parts[1:]
        out = base
    if len(feats) != len(scales):
        raise GalaxySDValueError(f"{len(feats)} feature branches for {len(scales)} scales")
    for s, f in zip(scales, feats):
        out = out + s * (f - base)
    return out
