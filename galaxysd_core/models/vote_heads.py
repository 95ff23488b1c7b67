"""Vote outputs of the morphology classifier and the head probabilities read from them.

A classifier trained on volunteer votes (``ClassifierConfig.output`` ``"dirichlet"`` or
``"softmax"``) predicts, for every answer of every *modelled* question, one raw output; the answers
of a question share one distribution over vote fractions:

* ``"dirichlet"``: Dirichlet concentrations ``alpha = 1 + 99 sigmoid(raw)`` per answer (the range
  1-100 of zoobot, Walmsley et al. 2022, MNRAS 509, 3966), so the votes of a question follow a
  Dirichlet-multinomial (:func:`galaxysd_core.training.vote_losses.dirichlet_multinomial_nll`);
* ``"softmax"``: expected fractions ``softmax(raw)`` per question (trained with soft cross-entropy
  on the vote fractions), read as a Dirichlet of fixed total concentration
  :data:`SOFTMAX_CONCENTRATION` so both kinds give head probabilities the same way.

The modelled questions (:func:`modelled_questions`) are those of the heads plus the questions
that gate them in the GZ2 tree (a bar head needs t01 "features" and t02 "not edge-on").

Head probabilities
------------------
The evaluation truth (and what a prompt asks for) is the majority-gated label the captioner writes
(:class:`galaxysd_core.schema.captioning.Captioner`): an answer is present when its question was
reached (the gating answer chosen and above the Willett et al. 2013 Table 3 threshold) and the
answer has a majority. The head probability is that event under the predicted distributions::

    P(answer) = R(question) * P(f_answer >= 0.5)
    R(q)      = sum over gates g of q:  R(question of g) * P(f_g >= threshold of q at g)

with ``f`` Beta-distributed (the marginal of the Dirichlet) and questions treated as independent.
So "bar" is only probable for a galaxy that is probably a face-on disc, which makes the head usable
on any image (an elliptical gets a low bar probability instead of an unconstrained one).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

import torch

from galaxysd_core.errors import GalaxySDValueError
from galaxysd_core.schema.captioning import WILLETT13_GATES, WILLETT13_REACHED_THRESHOLDS
from galaxysd_core.schema.gz2 import ANSWER_BY_COLUMN, QUESTION_BY_STEM, QUESTIONS, ROOT_QUESTION

#: Output kinds: one logit per head (labels), Dirichlet concentrations or softmax fractions (votes).
OUTPUT_KINDS = ("sigmoid", "dirichlet", "softmax")
VOTE_OUTPUTS = ("dirichlet", "softmax")
#: Range of the Dirichlet concentrations (zoobot: 1 + 99 * sigmoid).
CONCENTRATION_MIN = 1.0
CONCENTRATION_MAX = 100.0
#: Total concentration given to softmax fractions when reading head probabilities (a Dirichlet of
#: this strength is about as sharp as ~20 votes).
SOFTMAX_CONCENTRATION = 20.0
#: Fraction an answer needs to be the majority answer (the captioner's ``answer_threshold``).
MAJORITY = 0.5
#: Grid points of the Beta tail integral (midpoint rule on [0, 1]; errors ~1e-3 for the
#: concentrations used here, 1-100 per answer).
GRID = 256


def _gates(stem: str) -> List[str]:
    if stem == ROOT_QUESTION:
        return []
    gates = WILLETT13_GATES.get(stem)
    if gates:
        return list(gates)
    return [a.column for a in ANSWER_BY_COLUMN.values() if a.leads_to == stem]


def modelled_questions(head_columns: Sequence[str]) -> List[str]:
    """Questions of ``head_columns`` and every question gating them, in table order (t01..t11)."""
    needed = set()
    todo = [ANSWER_BY_COLUMN[c].question for c in head_columns]
    while todo:
        stem = todo.pop()
        if stem in needed:
            continue
        needed.add(stem)
        todo += [ANSWER_BY_COLUMN[g].question for g in _gates(stem)]
    return [q.stem for q in QUESTIONS if q.stem in needed]


def output_columns(head_columns: Sequence[str]) -> List[str]:
    """All answers of the modelled questions, in table order: the vote outputs of the network."""
    return [a.column for stem in modelled_questions(head_columns) for a in QUESTION_BY_STEM[stem].answers]


@dataclass(frozen=True)
class VoteLayout:
    """Where each question's answers sit among the vote outputs, and how questions gate each other.

    Attributes
    ----------
    columns : tuple of str
        Output answer columns (:func:`output_columns`).
    questions : tuple of str
        Modelled question stems, table order.
    slices : dict
        ``{question: (start, stop)}`` into ``columns``.
    gates : dict
        ``{question: ((output index of the gating answer, threshold), ...)}``; empty for the root.
    heads : tuple of int
        Output index of every head column, in head order.
    """

    columns: Tuple[str, ...]
    questions: Tuple[str, ...]
    slices: Dict[str, Tuple[int, int]]
    gates: Dict[str, Tuple[Tuple[int, float], ...]]
    heads: Tuple[int, ...]

    @classmethod
    def for_heads(cls, head_columns: Sequence[str]) -> "VoteLayout":
        """Layout of a vote classifier with these heads."""
        if not head_columns:
            raise GalaxySDValueError("a vote classifier needs at least one head column")
        questions = modelled_questions(head_columns)
        columns = output_columns(head_columns)
        pos = {c: i for i, c in enumerate(columns)}
        slices, start = {}, 0
        for stem in questions:
            n = len(QUESTION_BY_STEM[stem].answers)
            slices[stem] = (start, start + n)
            start += n
        gates = {}
        for stem in questions:
            reached = WILLETT13_REACHED_THRESHOLDS.get(stem, 0.0)
            entries = []
            for g in _gates(stem):
                # a captioned gate must be the chosen (majority) answer AND pass the threshold; an
                # uncaptioned one (t06 "odd") only the threshold (see Captioner.answers)
                thr = max(MAJORITY, reached) if ANSWER_BY_COLUMN[g].captioned else reached
                entries.append((pos[g], float(thr)))
            gates[stem] = tuple(entries)
        return cls(columns=tuple(columns), questions=tuple(questions), slices=slices, gates=gates,
                   heads=tuple(pos[c] for c in head_columns))

    def question_of_output(self) -> List[str]:
        """Question stem of every output column."""
        return [ANSWER_BY_COLUMN[c].question for c in self.columns]


def concentrations(raw: torch.Tensor, layout: VoteLayout, kind: str) -> torch.Tensor:
    """Dirichlet concentrations ``(N, n_outputs)`` from raw network outputs."""
    if kind == "dirichlet":
        return CONCENTRATION_MIN + (CONCENTRATION_MAX - CONCENTRATION_MIN) * torch.sigmoid(raw)
    if kind == "softmax":
        parts = [torch.softmax(raw[:, a:b], dim=1) * SOFTMAX_CONCENTRATION for a, b in layout.slices.values()]
        return torch.cat(parts, dim=1)
    raise GalaxySDValueError(f"output kind must be one of {VOTE_OUTPUTS}, got {kind!r}")


def totals(alpha: torch.Tensor, layout: VoteLayout) -> torch.Tensor:
    """Per-output total concentration of its question, ``(N, n_outputs)``."""
    return torch.cat([alpha[:, a:b].sum(dim=1, keepdim=True).expand(-1, b - a) for a, b in layout.slices.values()],
                     dim=1)


def expected_fractions(alpha: torch.Tensor, layout: VoteLayout) -> torch.Tensor:
    """Expected vote fraction of every answer given its question was asked, ``(N, n_outputs)``."""
    return alpha / totals(alpha, layout)


def _log_tails(a: torch.Tensor, b: torch.Tensor, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(log P(f >= x), log P(f < x))`` for ``f ~ Beta(a, b)``, elementwise, by the midpoint rule.

    torch has no regularised incomplete beta function; the normalised density on :data:`GRID`
    midpoints in log space is differentiable, accurate to ~1e-3 for the concentrations used here
    (a, b >= 1 keeps the density bounded) and keeps tails of 1e-30 distinct (no ties at 0 or 1).
    """
    t = (torch.arange(GRID, dtype=a.dtype, device=a.device) + 0.5) / GRID
    logpdf = (a[..., None] - 1) * torch.log(t) + (b[..., None] - 1) * torch.log1p(-t)
    log_norm = torch.logsumexp(logpdf, dim=-1)
    upper = t >= x[..., None]
    neg_inf = torch.tensor(float("-inf"), dtype=a.dtype, device=a.device)
    log_up = torch.logsumexp(torch.where(upper, logpdf, neg_inf), dim=-1) - log_norm
    log_low = torch.logsumexp(torch.where(upper, neg_inf, logpdf), dim=-1) - log_norm
    return log_up, log_low


def beta_survival(a: torch.Tensor, b: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``P(f >= x)`` for ``f ~ Beta(a, b)``, elementwise (broadcast); see :func:`_log_tails`."""
    return torch.exp(_log_tails(a, b, x)[0])


def _log1mexp(z: torch.Tensor) -> torch.Tensor:
    """``log(1 - exp(z))`` for ``z <= 0``, stable at both ends (Maechler 2012)."""
    z = z.clamp(max=-1e-30)
    return torch.where(z > -0.6931, torch.log(-torch.expm1(z)), torch.log1p(-torch.exp(z)))


def head_logits(alpha: torch.Tensor, layout: VoteLayout, gated: bool = True) -> torch.Tensor:
    """Logit of the probability of the majority-gated label of every head, ``(N, n_heads)``.

    ``gated=False`` leaves out ``R(question)``: the probability of a majority for the answer given
    its question was reached (the conditional probability, for galaxies known to reach it). Computed
    in log space (``1 - R S = (1 - R) + R (1 - S)``) so very small and very large probabilities keep
    their order; all Beta tails come from one batched call (heads, then gates).
    """
    total = totals(alpha, layout)
    rest = total - alpha
    heads = list(layout.heads)
    pairs = [(i, MAJORITY) for i in heads]
    if gated:
        pairs += [(idx, thr) for stem in layout.questions for idx, thr in layout.gates[stem]]
    cols = [i for i, _ in pairs]
    x = torch.tensor([thr for _, thr in pairs], dtype=alpha.dtype, device=alpha.device).expand(alpha.shape[0], -1)
    log_up, log_low = _log_tails(alpha[:, cols], rest[:, cols], x)
    n = len(heads)
    if not gated:
        return log_up[:, :n] - log_low[:, :n]
    q_of = layout.question_of_output()
    log_r: Dict[str, torch.Tensor] = {}
    k = n
    for stem in layout.questions:  # table order lists every gate's question before the questions it gates
        gates = layout.gates[stem]
        if not gates:
            log_r[stem] = torch.zeros(alpha.shape[0], dtype=alpha.dtype, device=alpha.device)
            continue
        terms = []
        for idx, _ in gates:
            terms.append(log_r[q_of[idx]] + log_up[:, k])
            k += 1
        log_r[stem] = torch.logsumexp(torch.stack(terms, dim=1), dim=1).clamp(max=0.0)
    lr = torch.stack([log_r[q_of[i]] for i in heads], dim=1)
    log_p = lr + log_up[:, :n]
    log_not_p = torch.logaddexp(_log1mexp(lr), lr + log_low[:, :n])
    return log_p - log_not_p


def head_probabilities(alpha: torch.Tensor, layout: VoteLayout, gated: bool = True) -> torch.Tensor:
    """Probability of the majority-gated label of every head, ``(N, n_heads)`` (module docstring)."""
    return torch.sigmoid(head_logits(alpha, layout, gated))
