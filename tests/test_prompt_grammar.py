"""Feature-weighted prompt grammar, with property-based fuzzing (hypothesis)."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from galaxysd_core.prompts import grammar as g
from galaxysd_core.errors import GalaxySDValueError
from galaxysd_core.schema.gz2 import caption_phrases

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def test_plain_caption_parses_with_unit_weights():
    p = g.parse_prompt("sdss, smooth, completely round galaxy")
    assert p.text == "sdss, smooth, completely round galaxy"
    assert not p.is_weighted and set(p.weights) == {1.0}


@pytest.mark.parametrize("text, phrase, weight", [
    ("sdss, {dust lane:1.3}", "dust lane", 1.3),
    ("sdss, (dust lane:0.5)", "dust lane", 0.5),
    ("sdss, {dust lane}", "dust lane", g.DEFAULT_EMPHASIS),
    ("sdss, {{dust lane:1.2}:1.5}", "dust lane", 1.8),
])
def test_weights(text, phrase, weight):
    p = g.parse_prompt(text)
    assert p.text == f"sdss, {phrase}"
    assert p.phrase_weights()[phrase] == pytest.approx(weight)


@pytest.mark.parametrize("text, match", [
    ("sdss, {dust lane:1.3", "unclosed"),
    ("sdss, dust lane:1.3}", "unbalanced|outside"),
    ("sdss, {dust lane:abc}", "not a number"),
    ("sdss, {dust lane:9}", "outside the accepted range"),
    ("sdss, {dust lane:-1}", "outside the accepted range"),
    ("", "empty"),
    (" , , ", "empty"),
    ("sdss, spiral galxy", "unknown word"),
    ("sdss, galaxy spiral", "unknown phrase"),
    ("x" * (g.MAX_PROMPT_CHARS + 1), "characters"),
    ("sdss\x00", "control"),
])
def test_errors_are_actionable(text, match):
    with pytest.raises(GalaxySDValueError, match=match):
        g.parse_prompt(text)


@pytest.mark.parametrize("text, message", [
    ("sdss, dust lne", "unknown word 'lne' in 'dust lne'; did you mean 'dust lane'?"),
    # an extra word and a typo: both named, the tag's real phrase suggested (not "closest: []" on 'a')
    ("sdss, smooth, a dust lne", "unknown words 'a', 'lne' in 'a dust lne'; did you mean 'dust lane'?"),
    ("sdss, smoth", "unknown word 'smoth' in 'smoth'; did you mean 'smooth'?"),
    ("sdss, mergr", "did you mean 'merger'?"),
    ("sdss, {dust lnae:1.3}", "in 'dust lnae'; did you mean 'dust lane'?"),
    ("sdss, feautres or disk shaped", "did you mean 'features or disk-shaped'?"),
    ("sdss, sprial galaxy", "did you mean 'spiral galaxy'"),
    ("sdss, edge on galaxy", "did you mean 'edge-on galaxy'"),
    ("sdss, galaxy spiral", "unknown phrase 'galaxy spiral'; did you mean 'spiral galaxy'?"),
    ("sdss, completely round", "unknown phrase 'completely round'; did you mean 'completely round galaxy'?"),
    ("sdss, bar", "did you mean 'bar-shaped structure in the center of galaxy'?"),
])
def test_typos_suggest_the_real_phrase(text, message):
    with pytest.raises(GalaxySDValueError) as info:
        g.parse_prompt(text)
    assert message in str(info.value)
    assert "[]" not in str(info.value)


def test_unknown_word_without_a_close_phrase_names_the_vocabulary():
    with pytest.raises(GalaxySDValueError) as info:
        g.parse_prompt("sdss, smooth, xyzzy")
    text = str(info.value)
    assert "unknown word 'xyzzy' in 'xyzzy'" in text and "no known phrase is close" in text
    assert "'spiral galaxy'" in text and "[]" not in text


def test_suggest_phrases_over_phrases_and_words():
    pool = g.known_phrases()
    assert g.suggest_phrases("dust lne", pool)[0] == "dust lane"
    assert g.suggest_phrases("a dust lne", pool) == ["dust lane"]
    assert g.suggest_phrases("ring", pool) == ["ring galaxy"]
    assert g.suggest_phrases("xyzzy", pool) == []
    with pytest.raises(GalaxySDValueError, match="unknown feature 'spiral galxy'; did you mean 'spiral galaxy'"):
        g.build_prompt({"spiral galxy": 1.0})


def test_non_strict_accepts_any_words():
    assert g.parse_prompt("a photo of a {red:1.2} galaxy", strict=False).phrase_weights()[
        "a photo of a red galaxy"] == pytest.approx(1.2)


def test_build_prompt_and_inverse():
    feats = {"dust lane": 1.3, "smooth": 1.0, "ring galaxy": 0.5}
    text = g.build_prompt(feats)
    assert text == "sdss, smooth, {ring galaxy:0.5}, {dust lane:1.3}"
    assert g.features_from_prompt(text) == feats
    with pytest.raises(GalaxySDValueError, match="unknown feature"):
        g.build_prompt({"spiral galxy": 1.0})
    with pytest.raises(GalaxySDValueError):
        g.build_prompt({"smooth": 5.0})


# --------------------------------------------------------------------------- fuzzing

_alphabet = st.sampled_from(list("{}()\\:,.-+eE0123456789 abcdgilmnorstuw\t\n") + ["sdss", "dust lane", "é", "\x00"])


@FUZZ
@given(st.lists(_alphabet, max_size=40).map("".join))
def test_any_text_parses_or_raises_value_error(text):
    for strict in (True, False):
        try:
            p = g.parse_prompt(text, strict=strict)
        except GalaxySDValueError:
            continue
        assert isinstance(p, g.ParsedPrompt)
        assert len(p.words) == len(p.weights)
        assert all(g.MIN_WEIGHT <= w <= g.MAX_WEIGHT for w in p.weights)


@FUZZ
@given(st.text(max_size=60))
def test_arbitrary_unicode_never_crashes(text):
    try:
        g.parse_prompt(text, strict=False)
    except GalaxySDValueError:
        pass


_weights = st.floats(min_value=g.MIN_WEIGHT, max_value=g.MAX_WEIGHT, allow_nan=False).map(
    lambda w: round(w, g.WEIGHT_DECIMALS))


@FUZZ
@given(st.dictionaries(st.sampled_from(caption_phrases()), _weights, min_size=1, max_size=8))
def test_build_then_parse_roundtrip(features):
    text = g.build_prompt(features)
    assert text.startswith("sdss")
    assert g.features_from_prompt(text) == pytest.approx(features)
    assert set(g.features_from_prompt(text)) == set(features)
