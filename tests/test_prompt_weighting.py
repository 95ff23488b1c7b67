"""Feature weighting of text embeddings (GalaxySD Sec. 2.3) and its numerically sound rescale
(issue 11, point 5)."""
from pathlib import Path

import pytest
import torch

from galaxysd_core.errors import GalaxySDValueError
from galaxysd_core.pipelines.pipeline_galaxysd import load_pipeline
from galaxysd_core.prompts.grammar import parse_prompt
from galaxysd_core.prompts.weighting import (MAX_FACTOR, MEAN_TOLERANCE, apply_token_weights, embed_prompts,
                                             encode_weighted_prompts, rescale_factor, tokenize_weighted)
from tiny_models import build_tiny_pipeline

SHIPPED = Path(__file__).resolve().parents[1] / "assets" / "galaxysd-mini"
CAPTIONS = ["sdss, smooth, completely round galaxy", "sdss, features or disk-shaped, spiral galaxy",
            "sdss, features or disk-shaped, edge-on galaxy, with rounded edge-on bulge", "sdss, merger"]


@pytest.fixture(scope="module")
def pipe():
    return build_tiny_pipeline(seed=0)


@pytest.fixture(scope="module", params=["tiny", "shipped"])
def any_pipe(request, pipe):
    if request.param == "tiny":
        return pipe
    if not (SHIPPED / "model_index.json").is_file():
        pytest.skip("the shipped model is not in this checkout")
    return load_pipeline(SHIPPED)


def _one_tag_weighted(caption, phrase, w):
    return caption.replace(phrase, f"{{{phrase}:{w}}}", 1)


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


def test_weight_one_everywhere_is_exactly_the_identity(any_pipe):
    for caption in CAPTIONS:
        hidden, weights, mask = embed_prompts(any_pipe.text_encoder, any_pipe.tokenizer, [parse_prompt(caption)], 48)
        assert torch.equal(hidden, any_pipe.text_encoder(tokenize_ids(any_pipe, caption))[0])
        for m, tol in ((mask, MEAN_TOLERANCE), (None, 0.0)):
            assert torch.equal(apply_token_weights(hidden, weights, mask=m, tolerance=tol), hidden)
        explicit = caption.replace("sdss, ", "{sdss:1}, ").replace(", smooth", ", {smooth:1.0}")
        assert torch.equal(_encode(any_pipe, explicit), hidden)


def tokenize_ids(pipe, caption):
    return torch.tensor([tokenize_weighted(pipe.tokenizer, parse_prompt(caption), 48)[0]])


def test_raising_one_tag_moves_the_embedding_most_at_that_tag(any_pipe):
    """Each phrase of each caption weighted alone: the embedding moves by |w - 1| at the tag's
    tokens and (on these models, whose mean is far below the spread) nowhere else."""
    texts, plains = [], []
    for caption in CAPTIONS:
        for phrase in parse_prompt(caption).phrase_weights():
            for w in (0.0, 0.5, 1.2, 2.0, 3.0):
                texts.append((_one_tag_weighted(caption, phrase, w), w))
                plains.append(caption)
    parsed = [parse_prompt(t) for t, _ in texts]
    encoded = encode_weighted_prompts(any_pipe.text_encoder, any_pipe.tokenizer, parsed, 48)
    plain = encode_weighted_prompts(any_pipe.text_encoder, any_pipe.tokenizer, [parse_prompt(c) for c in plains], 48)
    _, weights, _ = embed_prompts(any_pipe.text_encoder, any_pipe.tokenizer, parsed, 48)
    change = (encoded - plain).norm(dim=-1) / plain.norm(dim=-1)
    for k, (text, w) in enumerate(texts):
        tag = weights[k] != 1
        assert tag.any() and change[k, tag].min() > 10 * change[k, ~tag].max(), (text, change[k])
        assert torch.allclose(change[k, tag], torch.full_like(change[k, tag], abs(w - 1)), atol=1e-5), text


def test_rescale_restores_a_sizeable_mean_on_the_real_tokens_only():
    torch.manual_seed(0)
    hidden = torch.randn(1, 12, 16) + 0.5  # |mean| / spread = 0.5: the mean is part of the signal
    mask = torch.zeros(1, 12, dtype=torch.bool)
    mask[0, :6] = True  # 6 real tokens, 6 padding positions
    weights = torch.ones(1, 12)
    weights[0, 2:4] = 2.0
    out = apply_token_weights(hidden, weights, mask=mask)
    spread = hidden[mask].std()
    assert abs(out[mask].mean() - hidden[mask].mean()) <= MEAN_TOLERANCE * spread + 1e-6
    assert (hidden[mask] * weights[mask][:, None]).mean() - hidden[mask].mean() > 10 * MEAN_TOLERANCE * spread
    assert torch.equal(out[0, 6:], hidden[0, 6:]), "padding is never changed by a weight"
    factor = rescale_factor(hidden, hidden * weights[..., None], mask)
    assert 0.6 < float(factor) < 0.8
    assert torch.allclose(out[0, :6], hidden[0, :6] * weights[0, :6, None] * factor.float())
    published = apply_token_weights(hidden, weights, mask=None, tolerance=0.0)
    assert torch.allclose(published.mean(), hidden.mean(), atol=1e-6)  # GalaxySD as published: all positions


def test_rescale_leaves_a_mean_that_is_noise_alone(pipe):
    """The tiny model's final layer norm has zero bias: its mean is rounding noise (~1e-9 of the
    spread), and restoring it exactly takes arbitrary factors (a ratio of two roundings)."""
    for text in ("sdss, smooth, {dust lane:1.5}", "sdss, features or disk-shaped, {spiral galaxy:2}"):
        hidden, weights, mask = embed_prompts(pipe.text_encoder, pipe.tokenizer, [parse_prompt(text)], 48)
        weighted = hidden * weights[..., None]
        assert abs(float(hidden.mean())) < 1e-6 * float(hidden.std())
        assert abs(float(rescale_factor(hidden, weighted, None, tolerance=0.0)) - 1) > 0.2  # as published
        assert float(rescale_factor(hidden, weighted, mask)) == 1.0


def test_rescale_never_flips_or_explodes():
    hidden = torch.ones(1, 4, 8)
    hidden[0, 2] = -3.0  # token means 1, 1, -3, 1: the mean is 0 before weighting
    weights = torch.tensor([[1.0, 1.0, 0.5, 1.0]])
    out = apply_token_weights(hidden, weights, tolerance=0.0)
    assert torch.isfinite(out).all() and torch.equal(out, hidden * weights[..., None])  # unrestorable: unscaled
    hidden = torch.ones(1, 4, 8)
    hidden[0, 2] = -2.9  # mean 0.025 before; weighting 2 makes it -0.7: a sign change
    weights = torch.tensor([[1.0, 1.0, 2.0, 1.0]])
    assert float(rescale_factor(hidden, hidden * weights[..., None], tolerance=0.0)) == 1.0
    hidden = torch.ones(1, 4, 8)
    weights = torch.tensor([[1.0, 0.0, 0.0, 0.0]])  # restoring exactly would need a factor 4
    assert float(rescale_factor(hidden, hidden * weights[..., None], tolerance=0.0)) == MAX_FACTOR


def test_too_long_prompt_is_refused(pipe):
    long = ", ".join(["sdss"] + ["smooth"] * 60)
    with pytest.raises(GalaxySDValueError, match="tokens"):
        tokenize_weighted(pipe.tokenizer, parse_prompt(long), 48)


def test_mismatched_weight_shape_is_refused():
    with pytest.raises(GalaxySDValueError):
        apply_token_weights(torch.zeros(1, 4, 8), torch.ones(1, 5) * 2)
