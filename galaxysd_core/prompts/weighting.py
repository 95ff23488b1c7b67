"""Feature-weighted text embeddings, as GalaxySD does it.

GalaxySD (Ma, Sun et al. 2025, arXiv:2506.16233, Sec. 2.3, following the long-prompt-weighting
recipe of the diffusers community pipeline ``lpw_stable_diffusion``):

1. run the text encoder on the *plain* prompt (weights removed);
2. multiply its output (after the final layer norm) at each token by that token's weight;
3. rescale the whole embedding so that its mean equals the mean of the unweighted embedding.

The same is applied to the negative prompt.
"""
from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import torch

from galaxysd_core.errors import GalaxySDValueError
from galaxysd_core.prompts.grammar import ParsedPrompt


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
    cache = {} if cache is None else cache
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
    return [bos, *ids, eos, *([pad] * n_pad)], [1.0, *weights, 1.0, *([1.0] * n_pad)]


def apply_token_weights(hidden: torch.Tensor, weights: torch.Tensor, rescale: bool = True) -> torch.Tensor:
    """Multiply text-encoder output by per-token weights and restore its mean.

    Parameters
    ----------
    hidden : torch.Tensor
        ``(batch, tokens, dim)`` output of the text encoder's final layer norm.
    weights : torch.Tensor
        ``(batch, tokens)`` weights.
    rescale : bool
        Rescale each prompt's embedding so its mean over tokens and channels is unchanged
        (GalaxySD). ``False`` exposes the intermediate step for tests.
    """
    if hidden.shape[:2] != weights.shape:
        raise GalaxySDValueError(f"weights of shape {tuple(weights.shape)} do not match embeddings {tuple(hidden.shape)}")
    weights = weights.to(hidden.dtype)
    if bool((weights == 1).all()):
        return hidden
    previous_mean = hidden.float().mean(dim=(-2, -1))
    weighted = hidden * weights.unsqueeze(-1)
    if not rescale:
        return weighted
    current_mean = weighted.float().mean(dim=(-2, -1))
    ratio = previous_mean / current_mean
    # A mean of (almost) zero cannot be restored by scaling; leave such rows unscaled.
    ratio = torch.where(torch.isfinite(ratio) & (current_mean.abs() > 1e-12), ratio, torch.ones_like(ratio))
    return weighted * ratio.to(hidden.dtype)[:, None, None]


@torch.no_grad()
def encode_weighted_prompts(text_encoder, tokenizer, parsed: Sequence[ParsedPrompt], max_length: int,
                            device: torch.device | str = "cpu") -> torch.Tensor:
    """Weighted embeddings ``(len(parsed), max_length, dim)`` of parsed prompts."""
    cache: Dict[str, List[int]] = {}
    rows = [tokenize_weighted(tokenizer, p, max_length, cache) for p in parsed]
    ids = torch.tensor([r[0] for r in rows], dtype=torch.long, device=device)
    weights = torch.tensor([r[1] for r in rows], dtype=torch.float32, device=device)
    hidden = text_encoder(ids)[0]
    return apply_token_weights(hidden, weights)
