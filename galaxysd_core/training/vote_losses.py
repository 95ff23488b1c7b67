"""Losses on volunteer votes for the morphology classifier (one term per GZ2 question).

* :func:`dirichlet_multinomial_nll`: the votes ``n`` of one question are a Dirichlet-multinomial
  draw with the predicted concentrations ``alpha`` (Walmsley et al. 2022, MNRAS 509, 3966, Sec. 3;
  zoobot ``losses.dirichlet_loss``). A question nobody answered (``sum n = 0``: not reached, not
  asked in the table) has likelihood 1 and adds nothing, so partial trees need no extra mask.
* :func:`masked_soft_cross_entropy`: cross-entropy of the softmax of one question's outputs
  against its vote fractions (normalised to sum 1); questions without fractions (NaN, all zero or
  fewer than ``min_votes`` votes) are masked.
* :func:`vote_loss`: either of them summed over the questions of a
  :class:`~galaxysd_core.models.vote_heads.VoteLayout` and averaged over the batch.

The targets come from :func:`galaxysd_core.training.classifier_data.vote_targets` (real counts
where a source has them, single labels as one-hot "votes" elsewhere).
"""
from __future__ import annotations

import torch

from galaxysd_core.errors import GalaxySDValueError
from galaxysd_core.models.vote_heads import VoteLayout, concentrations


def dirichlet_multinomial_nll(counts: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """Negative log-likelihood of vote counts under a Dirichlet-multinomial, per row.

    ``log P(n | alpha) = log N! - sum log n_k! + log G(A) - log G(N + A) + sum [log G(n_k + alpha_k)
    - log G(alpha_k)]`` with ``N = sum n_k`` and ``A = sum alpha_k`` (G the gamma function). torch
    has no Dirichlet-multinomial distribution (zoobot takes it from pyro, not a dependency here);
    this is the closed form written with ``torch.lgamma``.

    Parameters
    ----------
    counts : torch.Tensor
        ``(N, K)`` non-negative vote counts of one question (NaN counts as 0: no votes).
    alpha : torch.Tensor
        ``(N, K)`` positive concentrations.

    Returns
    -------
    torch.Tensor
        ``(N,)``; exactly 0 for rows without votes.
    """
    if counts.shape != alpha.shape:
        raise GalaxySDValueError(f"counts {tuple(counts.shape)} and concentrations {tuple(alpha.shape)} differ")
    n = torch.nan_to_num(counts, nan=0.0).clamp_min(0.0)
    total_n = n.sum(dim=1)
    total_a = alpha.sum(dim=1)
    log_p = (torch.lgamma(total_n + 1) - torch.lgamma(n + 1).sum(dim=1)
             + torch.lgamma(total_a) - torch.lgamma(total_n + total_a)
             + (torch.lgamma(n + alpha) - torch.lgamma(alpha)).sum(dim=1))
    return -log_p


def masked_soft_cross_entropy(logits: torch.Tensor, fractions: torch.Tensor,
                              counts: torch.Tensor | None = None, min_votes: float = 1.0) -> torch.Tensor:
    """Soft cross-entropy of one question per row, 0 where the question has no usable fractions.

    Parameters
    ----------
    logits : torch.Tensor
        ``(N, K)`` raw outputs of one question.
    fractions : torch.Tensor
        ``(N, K)`` vote fractions (any non-negative scale, normalised per row; NaN = unknown).
    counts : torch.Tensor, optional
        ``(N, K)`` vote counts; rows with fewer than ``min_votes`` votes are masked (NaN counts:
        the row's fractions are used as they are, e.g. one-hot labels).

    Returns
    -------
    torch.Tensor
        ``(N,)`` loss per row and the ``(N,)`` float mask of rows that count.
    """
    if logits.shape != fractions.shape:
        raise GalaxySDValueError(f"logits {tuple(logits.shape)} and fractions {tuple(fractions.shape)} differ")
    f = torch.nan_to_num(fractions, nan=0.0).clamp_min(0.0)
    total = f.sum(dim=1)
    mask = (total > 0) & ~torch.isnan(fractions).all(dim=1)
    if counts is not None:
        n = counts.sum(dim=1)
        mask = mask & (torch.isnan(n) | (n >= min_votes))
    target = f / total.clamp_min(1e-12)[:, None]
    loss = -(target * torch.log_softmax(logits, dim=1)).sum(dim=1)
    return torch.where(mask, loss, torch.zeros_like(loss)), mask.to(loss.dtype)


def vote_loss(raw: torch.Tensor, counts: torch.Tensor, fractions: torch.Tensor, layout: VoteLayout,
              kind: str) -> torch.Tensor:
    """Sum over questions, mean over rows, of the vote loss of ``kind`` (``"dirichlet"`` / ``"softmax"``).

    Parameters
    ----------
    raw : torch.Tensor
        ``(N, n_outputs)`` raw outputs (:meth:`MorphologyClassifier.vote_outputs`).
    counts, fractions : torch.Tensor
        ``(N, n_outputs)`` targets in ``layout.columns`` order (NaN = no votes).
    """
    if raw.shape != counts.shape or raw.shape != fractions.shape:
        raise GalaxySDValueError(f"outputs {tuple(raw.shape)}, counts {tuple(counts.shape)} and fractions "
                                 f"{tuple(fractions.shape)} must have the same shape")
    total = raw.new_zeros(raw.shape[0])
    if kind == "dirichlet":
        alpha = concentrations(raw, layout, kind)
        for a, b in layout.slices.values():
            total = total + dirichlet_multinomial_nll(counts[:, a:b], alpha[:, a:b])
    elif kind == "softmax":
        for a, b in layout.slices.values():
            loss, _ = masked_soft_cross_entropy(raw[:, a:b], fractions[:, a:b], counts[:, a:b])
            total = total + loss
    else:
        raise GalaxySDValueError(f"vote loss kind must be 'dirichlet' or 'softmax', got {kind!r}")
    return total.mean()
