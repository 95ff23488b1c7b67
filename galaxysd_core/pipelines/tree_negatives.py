"""The automatic GZ2-tree negative prompt, and the negative prompt each prompt of a call gets.

The automatic negative of a prompt lists the other morphologies at the GZ2 decision-tree branch
points the prompt passes through (:func:`galaxysd_core.schema.gz2.tree_exclusions`, Willett et al.
2013 Fig. 1), e.g. ``"sdss, smooth, star or artifact, edge-on galaxy"`` for ``"sdss, features or
disk-shaped, spiral galaxy"``. GalaxySD itself samples with plain unconditional guidance.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple, Union

from galaxysd_core.prompts.grammar import ParsedPrompt
from galaxysd_core.schema.gz2 import SURVEY_PREFIX, tree_exclusions


def tree_negative(parsed: ParsedPrompt) -> str:
    """Automatic negative prompt of a parsed prompt (``""`` when the tree rules nothing out).

    Phrases weighted 0 do not count; the survey prefix is kept when the prompt has it.
    """
    tags = [t for t, w in parsed.phrase_weights().items() if w > 0]
    excluded = tree_exclusions(tags)
    if not excluded:
        return ""
    return ", ".join(([SURVEY_PREFIX] if SURVEY_PREFIX in tags else []) + excluded)


def negative_prompts_for(parsed: Sequence[ParsedPrompt], negative_prompt: Optional[Union[str, Sequence[str]]],
                         tree_negatives: bool) -> Tuple[List[str], bool]:
    """One negative prompt per prompt, and whether they are the automatic ones.

    ``negative_prompt`` None with ``tree_negatives``: :func:`tree_negative` of each prompt.
    Otherwise the given negative (one for all, or one per prompt; None -> ``""``, unconditional).
    """
    automatic = negative_prompt is None and bool(tree_negatives)
    if automatic:
        negs = [tree_negative(p) for p in parsed]
    else:
        negs = list(negative_prompt) if isinstance(negative_prompt, (list, tuple)) else [negative_prompt] * len(parsed)
        if len(negs) == 1:
            negs = negs * len(parsed)
    return ["" if n is None else str(n) for n in negs], automatic
