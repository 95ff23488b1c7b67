"""Feature weighting of text embeddings (GalaxySD Sec. 2.3)."""
import pytest
import torch

from galaxysd_core.errors import GalaxySDValueError
from tiny_models import build_tiny_pipeline
from galaxysd_core.prompts.grammar import parse_prompt
from galaxysd_core.prompts.weighting import apply_token_weights, encode_weighted_prompts, tokenize_weighted


@pytest.fixture(scope="module")
def pipe():
    return build_tiny_pipeline(seed=0)


def _encode(pipe, text):
    return encode_weighted_prompts(pipe.text_encoder, pipe.tokenizer, [parse_prompt(text)], 48)


def test_weight_one_everywhere_equals_unweighted(pipe):
    plain = _encode(pipe, "sdss, smooth, completely round galaxy, dust lane")
    explicit = _encode(pipe, "sdss, smooth, {completely round galaxy:1}, {dust lane:1.0}")
    assert torch.equal(plain, explicit)


def test_weight_changes_only_weighted_tokens_before_rescaling(pipe):
    parsed_plain = parse_prompt("sdss, smooth, dust lane")
    parsed = parse_prompt("sdss, smooth, {dust lane:1.5}")
    ids, w = tokenize_weighted(pipe.tokenizer, parsed, 48)
    ids0, w0 = tokenize_weighted(pipe.tokenizer, parsed_plain, 48)
    assert ids == ids0, "weights must not change the token ids"
    hidden = pipe.text_encoder(torch.tensor([ids]))[0]
    weighted = apply_token_weights(hidden, torch.tensor([w]), rescale=False)
    changed = ~torch.isclose(weighted, hidden).all(dim=-1)[0]
    dust = pipe.tokenizer.convert_tokens_to_ids("dust")
    lane = pipe.tokenizer.convert_tokens_to_ids("lane")
    expected = torch.tensor([i in (dust, lane) for i in ids])
    assert torch.equal(changed, expected)
    assert torch.allclose(weighted[0, expected], hidden[0, expected] * 1.5)


def test_rescaling_restores_the_mean(pipe):
    plain = _encode(pipe, "sdss, smooth, dust lane")
    weighted = _encode(pipe, "sdss, smooth, {dust lane:1.8}")
    assert not torch.allclose(plain, weighted)
    assert torch.allclose(plain.mean(), weighted.mean(), rtol=1e-5, atol=1e-6)


def test_too_long_prompt_is_refused(pipe):
    long = ", ".join(["sdss"] + ["smooth"] * 60)
    with pytest.raises(GalaxySDValueError, match="tokens"):
        tokenize_weighted(pipe.tokenizer, parse_prompt(long), 48)


def test_mismatched_weight_shape_is_refused():
    with pytest.raises(GalaxySDValueError):
        apply_token_weights(torch.zeros(1, 4, 8), torch.ones(1, 5) * 2)
