"""Feature-weighted text embeddings, as GalaxySD does it, with a numerically sound rescale.

GalaxySD (Ma, Sun et al. 2025, arXiv:2506.16233, Sec. 2.3, following the long-prompt-weighting
recipe of the diffusers community pipeline ``lpw_stable_diffusion``):

1. run the text encoder on the *plain* prompt (weights removed);
2. multiply its output (after the final layer norm) at each token by that token's weight;
3. rescale the embedding so that its mean equals the mean of the unweighted embedding.

The same is applied to the negative prompt.

What step 3 does on the shipped model (``python bench/bench_weighting.py``: the 30 training
captions of ``assets/galaxysd-mini``, each phrase but the survey prefix weighted alone at 0, 0.5,
0.8, 1.2, 1.5, 2 and 3, i.e. 406 prompts; 290 with weights in the app's range [0.5, 2]):

* the mean it preserves is essentially the mean of the final layer norm's bias (2.4e-4), not a
  property of the prompt: 2.0e-4 to 8.0e-4 over all 48 positions and 6.4e-4 to 1.1e-3 over the
  prompt's own tokens, against a spread (standard deviation) of 0.985: |mean| / spread <= 1.2e-3;
* restoring it over all positions, as published, takes factors of 0.73 to 1.23 (0.84 to 1.10 in
  [0.5, 2]): a weight on one tag rescales all ~40 padding positions and every other tag, by up to
  27 % of their size (16 % in [0.5, 2]), and 6 % to 37 % of the total squared change of the
  embedding lands outside the weighted tag; over the prompt's own tokens only, the same exact
  restore swings further (0.47 to 2.31; 0.64 to 1.40 in [0.5, 2]; up to 63 % of the change outside
  the tag), because ~8 tokens share the mean instead of 48;
* yet the weighting alone shifts the mean of the prompt's tokens by at most 1.3e-3 of the spread
  (6.6e-4 in [0.5, 2]), below the standard error of a mean over 5-16 tokens x 128 channels
  (spread / sqrt(640 .. 2048) = 0.022 to 0.040 of the spread): the published rescale moves the
  embedding by up to a quarter of its size to correct a shift that is statistical noise.

So GalaxySD's formula is kept with two changes that make it numerically sound:

* the mean is taken over the prompt's real tokens (start token to end token) and only they are
  rescaled; padding is never changed by a weight;
* the mean is restored to within :data:`MEAN_TOLERANCE` (1 %) of the spread of the unweighted
  embedding (8 times the largest shift measured above, below the standard error): the factor is
  the one closest to 1 that brings the weighted mean into that band, so it is 1 when the mean
  already lies inside and continuous in the weights. It is never negative or infinite (a mean that
  changed sign cannot be restored by scaling; such rows are left unscaled) and lies within
  ``[1/MAX_FACTOR, MAX_FACTOR]``.

On the shipped model the weighted mean always lies inside the band (factor 1 for all 406
prompts), so a weight changes exactly the tokens of its tag (by ``|w - 1|`` of their size) and
nothing else. On a text encoder whose mean is a sizeable part of its spread (|mean| / spread
above ~0.08 for a 1.5 weight on a quarter of the tokens), GalaxySD's rescale acts as published, on
the prompt's tokens.
``tolerance=0`` with ``mask=None`` is the published formula (used by the measurement).
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import torch

from galaxysd_core.errors import GalaxySDValueError
from galaxysd_core.prompts.grammar import ParsedPrompt

#: How close (in units of the unweighted embedding's standard deviation) the weighted embedding's
#: mean over the prompt's tokens must stay to the unweighted one before the rescale acts.
MEAN_TOLERANCE = 0.01
#: Largest factor (and smallest, as 1/MAX_FACTOR) the rescale may apply: the largest prompt weight.
MAX_FACTOR = 3.0


def _tokenize(tokenizer, parsed: ParsedPrompt, max_length: int,
              cache: Dict[str, List[int]]) -> Tuple[List[int], List[float], int]:
    ids: List[int] = []
    weights: List[float] = []
    for word, weight in zip(parsed.words, parsed.weights):
        if word not in cache:
            cache[word] = list(tokenizer(word, add_special_tokens=False).input_ids)
        ids.extend(cache[word])
        weights.extend([float(weight)] * len(cache[word]))
    if len(ids) + 2 > max_length:
        raise GalaxySDValueError(
            f"prompt needs {len(ids) + 2} tokens but the text encoder takes at most {max_length}; "
            f"shorten it: {parsed.text!r}")
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    n_pad = max_length - len(ids) - 2
    return [bos, *ids, eos, *([pad] * n_pad)], [1.0, *weights, 1.0, *([1.0] * n_pad)], len(ids) + 2


def tokenize_weighted(tokenizer, parsed: ParsedPrompt, max_length: int,
                      cache: Dict[str, List[int]] | None = None) -> Tuple[List[int], List[float]]:
    """Token ids and per-token weights of a parsed prompt, padded to ``max_length``.

    Each word is tokenized on its own (CLIP's BPE and the word-level tokenizer both split on
    spaces and commas first, so this equals tokenizing the whole text) and every token of a word
    gets the word's weight. Special tokens and padding get weight 1.

    Raises
    ------
    GalaxySDValueError
        If the prompt needs more than ``max_length`` tokens (no silent truncation).
    """
    ids, weights, _ = _tokenize(tokenizer, parsed, max_length, {} if cache is None else cache)
    return ids, weights


def rescale_factor(hidden: torch.Tensor, weighted: torch.Tensor, mask: Optional[torch.Tensor] = None,
                   tolerance: float = MEAN_TOLERANCE) -> torch.Tensor:
    """Factor ``(batch,)`` of step 3: brings the mean of ``weighted`` over the masked tokens (and all
    channels) to within ``tolerance`` standard deviations of the mean of ``hidden``, closest to 1.

    Parameters
    ----------
    hidden, weighted : torch.Tensor
        ``(batch, tokens, dim)`` unweighted and weighted embeddings.
    mask : torch.Tensor, optional
        ``(batch, tokens)`` True at the tokens the mean is taken over; None = all tokens.
    tolerance : float
        Band half-width in units of the standard deviation of ``hidden`` over the masked entries;
        0 restores the mean exactly (GalaxySD as published).
    """
    h, wt = hidden.double(), weighted.double()
    m = torch.ones(h.shape[:2], dtype=torch.bool, device=h.device) if mask is None else mask.to(torch.bool)
    m3 = m.unsqueeze(-1).to(h.dtype)
    count = m3.sum(dim=(-2, -1)) * h.shape[-1]
    mean0 = (h * m3).sum(dim=(-2, -1)) / count
    mean1 = (wt * m3).sum(dim=(-2, -1)) / count
    var0 = (((h - mean0[:, None, None]) * m3) ** 2).sum(dim=(-2, -1)) / count.clamp(min=2)
    band = float(tolerance) * var0.sqrt()
    target = torch.minimum(torch.maximum(mean1, mean0 - band), mean0 + band)
    factor = torch.where(mean1 != 0, target / mean1, torch.ones_like(mean1))
    # A mean that changed sign (or vanished) cannot be restored by scaling: leave such rows unscaled.
    factor = torch.where(torch.isfinite(factor) & (factor > 0), factor, torch.ones_like(factor))
    return factor.clamp(1.0 / MAX_FACTOR, MAX_FACTOR)


def apply_token_weights(hidden: torch.Tensor, weights: torch.Tensor, rescale: bool = True,
                        mask: Optional[torch.Tensor] = None, tolerance: float = MEAN_TOLERANCE) -> torch.Tensor:
    """Multiply text-encoder output by per-token weights and restore its mean (see the module notes).

    Parameters
    ----------
    hidden : torch.Tensor
        ``(batch, tokens, dim)`` output of the text encoder's final layer norm.
    weights : torch.Tensor
        ``(batch, tokens)`` weights.
    rescale : bool
        Rescale each prompt's embedding so its mean over tokens and channels is kept (GalaxySD).
        ``False`` exposes the intermediate step for tests.
    mask : torch.Tensor, optional
        ``(batch, tokens)`` True at the prompt's real tokens (start to end token); only they enter
        the mean and are rescaled. None = every position (GalaxySD as published).
    tolerance : float
        :data:`MEAN_TOLERANCE` by default; see :func:`rescale_factor`.
    """
    if hidden.shape[:2] != weights.shape or (mask is not None and mask.shape != weights.shape):
        raise GalaxySDValueError(f"weights of shape {tuple(weights.shape)} do not match embeddings {tuple(hidden.shape)}")
    weights = weights.to(hidden.dtype)
    if bool((weights == 1).all()):
        return hidden
    weighted = hidden * weights.unsqueeze(-1)
    if not rescale:
        return weighted
    factor = rescale_factor(hidden, weighted, mask, tolerance).to(hidden.dtype)[:, None, None]
    if mask is None:
        return weighted * factor
    return torch.where(mask.to(torch.bool).unsqueeze(-1), weighted * factor, weighted)


@torch.no_grad()
def embed_prompts(text_encoder, tokenizer, parsed: Sequence[ParsedPrompt], max_length: int,
                  device: torch.device | str = "cpu") -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Unweighted embeddings ``(n, max_length, dim)`` of parsed prompts (steps 1 of the module notes),
    their per-token weights ``(n, max_length)`` and the mask of their real tokens ``(n, max_length)``."""
    cache: Dict[str, List[int]] = {}
    rows = [_tokenize(tokenizer, p, max_length, cache) for p in parsed]
    ids = torch.tensor([r[0] for r in rows], dtype=torch.long, device=device)
    weights = torch.tensor([r[1] for r in rows], dtype=torch.float32, device=device)
    mask = torch.arange(max_length, device=device)[None, :] < torch.tensor([[r[2]] for r in rows], device=device)
    return text_encoder(ids)[0], weights, mask


@torch.no_grad()
def encode_weighted_prompts(text_encoder, tokenizer, parsed: Sequence[ParsedPrompt], max_length: int,
                            device: torch.device | str = "cpu") -> torch.Tensor:
    """Weighted embeddings ``(len(parsed), max_length, dim)`` of parsed prompts."""
    hidden, weights, mask = embed_prompts(text_encoder, tokenizer, parsed, max_length, device)
    return apply_token_weights(hidden, weights, mask=mask)
