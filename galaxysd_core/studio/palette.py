"""One colour per prompt family, the same in every plot; neutral greys for everything else.

A colour on the Metrics and Real vs synthetic pages always means a *prompt family* (the main
morphology a prompt asks for: round, cigar-shaped, spiral, edge-on, merger, ...), whichever plot it
is in. Metrics drawn in one plot (precision and recall, or the bars of the classifier card) are told
apart by line dashes, markers and shades of grey, never by the family colours. Smooth families are
warm (red to brown, the colour of the red sequence), disc families cool (blues, purple).
"""
from __future__ import annotations

from typing import Dict, Iterable, List, Tuple

from galaxysd_core.errors import GalaxySDValueError
from galaxysd_core.prompts.grammar import prompt_tags

#: (family, caption feature that makes a prompt belong to it), most specific first.
FAMILY_RULES: Tuple[Tuple[str, str], ...] = (
    ("edge-on", "edge-on galaxy"), ("spiral", "spiral galaxy"),
    ("barred", "bar-shaped structure in the center of galaxy"), ("merger", "merger"),
    ("cigar-shaped", "cigar shaped galaxy"), ("in-between round", "in-between round galaxy"),
    ("round", "completely round galaxy"), ("smooth", "smooth"), ("disc", "features or disk-shaped"),
    ("star or artifact", "star or artifact"),
)
#: Odd features (GZ2 t08) other than "merger" make the family "odd feature".
ODD_FEATURES = ("ring galaxy", "lens or arc", "disturbed galaxy", "irregular galaxy", "other odd feature", "dust lane")
#: Colour of each family (plotly's D3 and its light variants), and of prompts outside every family.
FAMILY_COLOURS: Dict[str, str] = {
    "round": "#d62728", "in-between round": "#ff7f0e", "cigar-shaped": "#8c564b", "smooth": "#e377c2",
    "spiral": "#1f77b4", "barred": "#17becf", "edge-on": "#9467bd", "disc": "#6baed6",
    "merger": "#2ca02c", "odd feature": "#98df8a", "star or artifact": "#bcbd22", "other": "#c49c94",
}
#: Line of a quantity that belongs to no prompt (e.g. the mean over prompts), and the real-data reference.
NEUTRAL = "#262626"
REAL = "#7f7f7f"
#: Greys for several metrics or arms in one plot (dark to light), and the dash of each line.
GREYS = ("#262626", "#636363", "#969696", "#bdbdbd", "#4a4a4a", "#808080")
DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")
SYMBOLS = ("circle", "square", "diamond", "triangle-up", "x", "cross")
#: Bar fill patterns that tell several bars of one group apart together with the greys.
PATTERNS = ("", "/", ".", "x", "\\", "-")


def prompt_family(prompt: str) -> str:
    """Family of a prompt or caption (:data:`FAMILY_RULES`; ``"other"`` when none applies).

    >>> prompt_family("sdss, features or disk-shaped, {spiral galaxy:1.3}")
    'spiral'
    """
    try:
        tags = set(prompt_tags(str(prompt), keep_prefix=False))
    except GalaxySDValueError:
        return "other"
    for family, feature in FAMILY_RULES:
        if feature in tags:
            return family
    return "odd feature" if tags & set(ODD_FEATURES) else "other"


def family_colour(prompt: str) -> str:
    """The colour of a prompt's family (:data:`FAMILY_COLOURS`)."""
    return FAMILY_COLOURS[prompt_family(prompt)]


def prompt_colours(prompts: Iterable[str]) -> Dict[str, str]:
    """``{prompt: family colour}`` for a plot's ``color_discrete_map``."""
    return {str(p): family_colour(str(p)) for p in prompts}


def prompt_symbols(prompts: Iterable[str]) -> Dict[str, str]:
    """``{prompt: marker symbol}``: prompts of the same family get different markers (first one a circle)."""
    seen: Dict[str, int] = {}
    out: Dict[str, str] = {}
    for p in dict.fromkeys(str(p) for p in prompts):
        fam = prompt_family(p)
        out[p] = SYMBOLS[seen.get(fam, 0) % len(SYMBOLS)]
        seen[fam] = seen.get(fam, 0) + 1
    return out


def legend_families(prompts: Iterable[str]) -> List[Tuple[str, str]]:
    """``[(family, colour), ...]`` of the families among ``prompts``, in :data:`FAMILY_COLOURS` order."""
    fams = {prompt_family(str(p)) for p in prompts}
    return [(f, c) for f, c in FAMILY_COLOURS.items() if f in fams]
