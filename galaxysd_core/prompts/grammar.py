"""Feature-weighted prompt grammar of GalaxySD.

Syntax (Ma, Sun et al. 2025, arXiv:2506.16233, Sec. 2.3; the ``(text:w)`` form is the common
AUTOMATIC1111 convention):

* ``{phrase:w}`` or ``(phrase:w)``: the words of ``phrase`` get weight ``w``;
* ``{phrase}`` or ``(phrase)``: weight :data:`DEFAULT_EMPHASIS` (1.1);
* groups nest and weights multiply: ``{{dust lane:1.2}:1.5}`` gives 1.8;
* ``\\{``, ``\\}``, ``\\(``, ``\\)`` are literal characters (rejected by the vocabulary check).

Every word's final weight must lie in [:data:`MIN_WEIGHT`, :data:`MAX_WEIGHT`]. Weights beyond
about 2 push the text embedding far outside anything seen in training; the app's sliders offer
0.5-2.0.

The parse result is the plain prompt (what the tokenizer sees) and one weight per word, which the
pipeline spreads over the tokens of each word (:mod:`galaxysd_core.prompts.weighting`).
"""
from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from galaxysd_core.errors import GalaxySDValueError
from galaxysd_core.schema.gz2 import ANSWER_BY_PHRASE, SURVEY_PREFIX, caption_phrases

#: Weight of a group written without an explicit weight, ``{phrase}`` (GalaxySD; A1111).
DEFAULT_EMPHASIS = 1.1
#: Smallest and largest accepted per-word weight after nesting.
MIN_WEIGHT = 0.0
MAX_WEIGHT = 3.0
#: Longest prompt accepted, in characters (SD's CLIP sees 77 tokens; we refuse absurd inputs early).
MAX_PROMPT_CHARS = 1000
#: Decimal places kept by :func:`build_prompt`.
WEIGHT_DECIMALS = 2

_OPEN = {"{": "}", "(": ")"}
_WEIGHT_RE = re.compile(r"^\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*$")


def known_phrases() -> List[str]:
    """The caption vocabulary: the survey prefix and every caption phrase of the GZ2 schema."""
    return [SURVEY_PREFIX, *caption_phrases()]


def known_words() -> List[str]:
    words = []
    for phrase in known_phrases():
        for w in phrase.split():
            if w not in words:
                words.append(w)
    return words


@dataclass(frozen=True)
class ParsedPrompt:
    """Result of :func:`parse_prompt`.

    Attributes
    ----------
    text : str
        Plain prompt without weight syntax, words separated by single spaces and ``", "``.
    words : list of str
        Words of ``text`` (commas are separate items, weight 1).
    weights : list of float
        One weight per entry of ``words``.
    """

    text: str
    words: Tuple[str, ...]
    weights: Tuple[float, ...]

    @property
    def is_weighted(self) -> bool:
        return any(w != 1.0 for w in self.weights)

    def segments(self) -> List[Tuple[str, float]]:
        """Consecutive words of equal weight joined: ``[("sdss, smooth,", 1.0), ("dust lane", 1.3)]``."""
        out: List[Tuple[str, float]] = []
        for word, weight in zip(self.words, self.weights):
            if out and out[-1][1] == weight:
                sep = "" if word == "," else " "
                out[-1] = (out[-1][0] + sep + word, weight)
            else:
                out.append((word, weight))
        return out

    def phrase_weights(self) -> Dict[str, float]:
        """Weight of every tag (comma-separated chunk) of the prompt.

        A tag whose words carry different weights reports the weight that differs most from 1.
        """
        out: Dict[str, float] = {}
        chunk: List[str] = []
        cw: List[float] = []
        for word, weight in [*zip(self.words, self.weights), (",", 1.0)]:
            if word == ",":
                if chunk:
                    out[" ".join(chunk)] = max(cw, key=lambda v: abs(v - 1.0))
                chunk, cw = [], []
            else:
                chunk.append(word)
                cw.append(weight)
        return out


def suggest_phrases(tag: str, pool: Sequence[str], n: int = 3) -> List[str]:
    """Known phrases closest to a misspelt or unknown tag, best first (``[]`` when none is close).

    :mod:`difflib` ranks whole phrases first (``"dust lne"`` -> ``"dust lane"``); when no phrase is
    close, each word is corrected against the known words and words matching nothing (``"a"``) are
    dropped before ranking again (``"a dust lne"``, ``"sprial galaxy"``); last come phrases that
    contain the tag's remaining words or the tag itself (``"bar"`` -> ``"bar-shaped structure ..."``).
    """
    tag = " ".join(str(tag).lower().split())
    pool = list(dict.fromkeys(pool))
    out = difflib.get_close_matches(tag, pool, n=n, cutoff=0.6)
    if out:
        return out
    words = list(dict.fromkeys(w for p in pool for w in p.split()))
    fixed = [w if w in words else next(iter(difflib.get_close_matches(w, words, n=1, cutoff=0.7)), "")
             for w in tag.split()]
    fixed_tag = " ".join(w for w in fixed if w)
    if fixed_tag:
        if fixed_tag in pool:
            return [fixed_tag]
        out = difflib.get_close_matches(fixed_tag, pool, n=n, cutoff=0.6)
        if out:
            return out
        have = set(fixed_tag.split())
        out = sorted((p for p in pool if have <= set(p.split())),
                     key=lambda p: -difflib.SequenceMatcher(None, fixed_tag, p).ratio())[:n]
        if out:
            return out
    return [p for p in pool if len(tag) >= 3 and tag in p][:n]


def _did_you_mean(tag: str, pool: Sequence[str]) -> str:
    """``"did you mean 'dust lane'?"`` (or the closest few), or what the vocabulary is when nothing is close."""
    close = suggest_phrases(tag, pool)
    if not close:
        examples = [p for p in ("smooth", "spiral galaxy", "edge-on galaxy", "merger", "dust lane") if p in pool]
        return ("no known phrase is close; the model knows only the Galaxy Zoo 2 caption phrases"
                + (f", e.g. {', '.join(repr(p) for p in examples)}" if examples else ""))
    return "did you mean " + " or ".join(repr(p) for p in close) + "?"


def _tokenize(text: str) -> List[Tuple[str, str]]:
    """Split into ('open', c) / ('close', c) / ('text', s) items, handling backslash escapes."""
    items: List[Tuple[str, str]] = []
    buf = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text) and text[i + 1] in "{}()\\":
            buf.append(text[i + 1])
            i += 2
            continue
        if ch in "{(" or ch in "})":
            if buf:
                items.append(("text", "".join(buf)))
                buf = []
            items.append(("open" if ch in "{(" else "close", ch))
        else:
            buf.append(ch)
        i += 1
    if buf:
        items.append(("text", "".join(buf)))
    return items


def _parse_weight(raw: str, context: str) -> float:
    m = _WEIGHT_RE.match(raw)
    if not m:
        raise GalaxySDValueError(
            f"weight {raw.strip()!r} in {context!r} is not a number; write e.g. '{{dust lane:1.3}}'")
    value = float(m.group(1))
    if not math.isfinite(value):
        raise GalaxySDValueError(f"weight {raw.strip()!r} in {context!r} is not finite")
    return value


def parse_prompt(text: str, *, vocabulary: Optional[Sequence[str]] = None, strict: bool = True) -> ParsedPrompt:
    """Parse a feature-weighted prompt.

    Parameters
    ----------
    text : str
        Prompt such as ``"sdss, smooth, {completely round:1.3} galaxy, {dust lane:1.3}"``.
    vocabulary : sequence of str, optional
        Known tags (comma-separated chunks). Defaults to :func:`known_phrases`.
    strict : bool
        When True (default) every tag must be a known phrase, as the shipped model only knows the
        caption vocabulary. Use False for a full Stable Diffusion text encoder.

    Returns
    -------
    ParsedPrompt

    Raises
    ------
    GalaxySDValueError
        Unbalanced brackets, a malformed or out-of-range weight, an empty prompt, or (strict) an
        unknown word or tag; the message names the tag and suggests the closest known
        phrases (:func:`suggest_phrases`).
    """
    if not isinstance(text, str):
        raise GalaxySDValueError(f"prompt must be a string, got {type(text).__name__}")
    if len(text) > MAX_PROMPT_CHARS:
        raise GalaxySDValueError(f"prompt has {len(text)} characters; at most {MAX_PROMPT_CHARS} are accepted")
    if any(ord(c) < 32 and c not in "\t\n\r" for c in text):
        raise GalaxySDValueError("prompt contains control characters; use plain text")

    words: List[str] = []
    weights: List[float] = []
    # stack of (closing char, start index in words)
    stack: List[Tuple[str, int, int]] = []
    items = _tokenize(text)
    for kind, value in items:
        if kind == "open":
            stack.append((_OPEN[value], len(words), len(weights)))
            continue
        if kind == "close":
            if not stack or stack[-1][0] != value:
                raise GalaxySDValueError(
                    f"unbalanced {value!r} in prompt {text!r}; groups are written {{phrase:1.3}} or (phrase:1.3)")
            _, start, _ = stack.pop()
            # The weight, if any, was recorded as a pending marker at the end of the group.
            factor = DEFAULT_EMPHASIS
            if words[start:] and isinstance(words[-1], tuple):
                factor = words.pop()[1]  # type: ignore[index]
                weights.pop()
            for k in range(start, len(words)):
                if words[k] != ",":
                    weights[k] *= factor
            continue
        # text: split off a trailing ':weight' when inside a group
        body = value
        if stack and ":" in body:
            body, raw_w = body.rsplit(":", 1)
            if ":" in body:
                raise GalaxySDValueError(f"more than one ':' in group {value!r}; write {{phrase:1.3}}")
            w = _parse_weight(raw_w, value)
        else:
            if ":" in body:
                raise GalaxySDValueError(
                    f"':' outside a group in {value!r}; weights go inside braces, e.g. {{dust lane:1.3}}")
            w = None
        for part in re.split(r"(,)", body):
            if part == ",":
                words.append(",")
                weights.append(1.0)
            else:
                for word in part.split():
                    words.append(word.lower())
                    weights.append(1.0)
        if w is not None:
            words.append(("__weight__", w))  # type: ignore[arg-type]
            weights.append(1.0)
    if stack:
        raise GalaxySDValueError(f"unclosed {stack[-1][0]!r} group in prompt {text!r}")
    if any(isinstance(w, tuple) for w in words):  # pragma: no cover - defensive
        raise GalaxySDValueError(f"misplaced weight in prompt {text!r}")

    # tidy commas: drop leading/duplicate/trailing commas
    clean_w: List[str] = []
    clean_x: List[float] = []
    for word, weight in zip(words, weights):
        if word == "," and (not clean_w or clean_w[-1] == ","):
            continue
        clean_w.append(word)
        clean_x.append(weight)
    while clean_w and clean_w[-1] == ",":
        clean_w.pop()
        clean_x.pop()
    if not any(w != "," for w in clean_w):
        raise GalaxySDValueError("prompt is empty; start from e.g. 'sdss, smooth, completely round galaxy'")

    for word, weight in zip(clean_w, clean_x):
        if not (MIN_WEIGHT <= weight <= MAX_WEIGHT) or not math.isfinite(weight):
            raise GalaxySDValueError(
                f"weight {weight:g} of {word!r} is outside the accepted range "
                f"[{MIN_WEIGHT:g}, {MAX_WEIGHT:g}]; weights above ~2 leave the trained embedding space")

    plain = ""
    for word in clean_w:
        plain += "," if word == "," else (" " if plain else "") + word
    parsed = ParsedPrompt(text=plain, words=tuple(clean_w), weights=tuple(clean_x))

    if strict:
        pool = list(vocabulary) if vocabulary is not None else known_phrases()
        vocab_words = {w for p in pool for w in p.split()}
        for tag in parsed.phrase_weights():
            unknown = [w for w in tag.split() if w not in vocab_words]
            if unknown:
                which = (f"word {unknown[0]!r}" if len(unknown) == 1
                         else "words " + ", ".join(repr(w) for w in unknown))
                raise GalaxySDValueError(f"unknown {which} in {tag!r}; {_did_you_mean(tag, pool)}")
            if tag not in pool:
                raise GalaxySDValueError(f"unknown phrase {tag!r}; {_did_you_mean(tag, pool)}")
    return parsed


def build_prompt(features: Mapping[str, float], *, prefix: str = SURVEY_PREFIX) -> str:
    """Prompt text from ``{phrase: weight}``, as produced by the app's sliders.

    Phrases are written in tree order, weight 1 plainly and other weights as ``{phrase:w}``
    (rounded to :data:`WEIGHT_DECIMALS`). ``features_from_prompt(build_prompt(x)) == x``.

    Raises
    ------
    GalaxySDValueError
        For an unknown phrase or a weight outside [MIN_WEIGHT, MAX_WEIGHT].
    """
    order = {p: i for i, p in enumerate(caption_phrases())}
    parts = [prefix] if prefix else []
    for phrase in sorted(features, key=lambda p: order.get(p, len(order))):
        if phrase not in ANSWER_BY_PHRASE:
            raise GalaxySDValueError(
                f"unknown feature {phrase!r}; {_did_you_mean(phrase, caption_phrases())}")
        w = round(float(features[phrase]), WEIGHT_DECIMALS)
        if not (MIN_WEIGHT <= w <= MAX_WEIGHT):
            raise GalaxySDValueError(f"weight {w:g} of {phrase!r} is outside [{MIN_WEIGHT:g}, {MAX_WEIGHT:g}]")
        parts.append(phrase if w == 1.0 else f"{{{phrase}:{w:g}}}")
    return ", ".join(parts)


def features_from_prompt(text: str) -> Dict[str, float]:
    """``{phrase: weight}`` of the caption features in a prompt (the survey prefix is dropped).

    The inverse of :func:`build_prompt`; used by the app to move sliders after the prompt text is
    edited.
    """
    parsed = parse_prompt(text)
    return {tag: round(w, WEIGHT_DECIMALS) for tag, w in parsed.phrase_weights().items()
            if tag != SURVEY_PREFIX}


def prompt_tags(text: str, *, keep_prefix: bool = True) -> Tuple[str, ...]:
    """Sorted tags of a prompt or caption, weights and order ignored, tags weighted 0 dropped.

    The matching key of prompts against real captions (``"sdss, {spiral galaxy:1.3}, features or
    disk-shaped"`` and ``"sdss, features or disk-shaped, spiral galaxy"`` give the same key); the
    survey prefix is kept unless ``keep_prefix`` is False.
    """
    tags = parse_prompt(text, strict=False).phrase_weights()
    return tuple(sorted(t for t, w in tags.items() if w > 0 and (keep_prefix or t != SURVEY_PREFIX)))
