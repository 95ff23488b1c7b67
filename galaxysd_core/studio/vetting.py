"""Where the Candidates page is in a catalog: the candidate shown, where a vote moves on to, the grid page.

The page shows one candidate of the filtered view (sorted by score) at a time. After a vote the
next *unvetted* candidate opens (searching forward and wrapping around), so vetting a catalog is
one key press per candidate; :class:`VettingCursor` holds that position and the paging of the
thumbnail grid that follows it.
"""
from __future__ import annotations

from dataclasses import dataclass
import math
import numbers
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from galaxysd_core.errors import GalaxySDValueError

#: Candidates per page of the thumbnail grid.
PER_PAGE = 12
#: Catalog columns shown in their own place on the page (the others are listed as extra fields).
SHOWN_COLUMNS = ("id", "score", "image_path", "image_file", "image_exists", "image_refused", "ra", "dec")


@dataclass(frozen=True)
class VettingCursor:
    """Position of the candidate shown among the ids of the view, and its neighbours.

    Attributes
    ----------
    ids : tuple of str
        Candidate ids of the view, in display order.
    pos : int
        Index of the candidate shown.
    next_unvetted : str or None
        First candidate after ``pos`` (wrapping around) without a verdict.
    per_page : int
        Candidates per grid page.
    """

    ids: Tuple[str, ...]
    pos: int
    next_unvetted: Optional[str]
    per_page: int = PER_PAGE

    @property
    def current(self) -> str:
        return self.ids[self.pos]

    @property
    def previous(self) -> Optional[str]:
        """Candidate before the current one, or None at the start."""
        return self.ids[self.pos - 1] if self.pos > 0 else None

    @property
    def next(self) -> Optional[str]:
        """Candidate after the current one, or None at the end."""
        return self.ids[self.pos + 1] if self.pos + 1 < len(self.ids) else None

    @property
    def after_vote(self) -> Optional[str]:
        """Candidate to open after a vote: the next unvetted one, else simply the next."""
        return self.next_unvetted or self.next

    @property
    def pages(self) -> int:
        return max(1, -(-len(self.ids) // self.per_page))

    @property
    def page(self) -> int:
        """Grid page (1-based) holding the current candidate: the grid follows the candidate in view."""
        return self.pos // self.per_page + 1

    @property
    def page_start(self) -> int:
        """Index of the first candidate of :attr:`page`."""
        return (self.page - 1) * self.per_page

    @property
    def previous_page(self) -> Optional[str]:
        """First candidate of the previous grid page, or None on the first page."""
        return self.ids[max(0, self.page_start - self.per_page)] if self.page > 1 else None

    @property
    def next_page(self) -> Optional[str]:
        """First candidate of the next grid page, or None on the last page."""
        return self.ids[min(len(self.ids) - 1, self.page_start + self.per_page)] if self.page < self.pages else None


def vetting_cursor(view: pd.DataFrame, merged: pd.DataFrame, current: Optional[str],
                   per_page: int = PER_PAGE) -> VettingCursor:
    """Cursor on ``current`` in the filtered ``view`` (both from
    :func:`galaxysd_core.science.candidates.merge_verdicts`: ``id`` and ``verdict`` columns).

    When ``current`` is not in the view (first visit, or a filter hid it), the first unvetted
    candidate of the view opens, else its first candidate. ``merged`` (the whole catalog) decides
    which candidates are already vetted.

    Raises
    ------
    GalaxySDValueError
        For an empty view (the page says so before asking for a cursor).
    """
    ids: List[str] = view["id"].tolist()
    if not ids:
        raise GalaxySDValueError("no candidates in the view; choose another filter")
    if current not in ids:
        unvetted = view.loc[view["verdict"].isna(), "id"].tolist()
        current = unvetted[0] if unvetted else ids[0]
    pos = ids.index(current)
    vetted = set(merged.loc[merged["verdict"].notna(), "id"])
    after = ids[pos + 1:] + ids[:pos]
    next_unvetted = next((i for i in after if i not in vetted), None)
    return VettingCursor(ids=tuple(ids), pos=pos, next_unvetted=next_unvetted, per_page=per_page)


def extra_columns(columns: Sequence[str], limit: int = 8) -> List[str]:
    """Up to ``limit`` catalog columns beyond :data:`SHOWN_COLUMNS`, listed under the candidate."""
    return [c for c in columns if c not in SHOWN_COLUMNS][:limit]


#: Prefixes / suffixes of catalog columns holding probabilities (the component scores of a candidate).
PROBABILITY_PREFIXES = ("p_", "prob_")
PROBABILITY_SUFFIXES = ("_prob", "_probability", "_p")


def probability_columns(columns: Sequence[str]) -> List[str]:
    """Catalog columns that hold probabilities (``p_dust_lane``, ``smooth_prob``, ...), in table order."""
    out = []
    for c in columns:
        low = str(c).lower()
        if low.startswith(PROBABILITY_PREFIXES) or low.endswith(PROBABILITY_SUFFIXES):
            out.append(c)
    return out


def format_value(value: Any, digits: int = 3) -> str:
    """A catalog value for display: floats with ``digits`` significant digits, NaN as ``"–"``, the rest as text."""
    if value is None:
        return "–"
    if isinstance(value, (str, bool, np.bool_, numbers.Integral)):
        return str(value)
    try:
        f = float(value)
    except (TypeError, ValueError):
        return str(value)
    if not math.isfinite(f):
        return "–"
    if abs(f) >= 10 ** int(digits):  # large values: all integer digits, no exponent
        return f"{f:,.0f}"
    return f"{f:.{int(digits)}g}"


def confirmation_summary(progress: Mapping[str, int]) -> Dict[str, Any]:
    """Counts of a catalog's vetting (:func:`galaxysd_core.science.candidates.progress`) for display.

    Returns ``{"confirmed", "vetted", "total", "share_vetted", "share_confirmed"}``: *confirmed* are
    the candidates judged "yes" by eye; ``share_confirmed`` is over the vetted ones (None before any).
    """
    total, vetted, yes = int(progress.get("total", 0)), int(progress.get("vetted", 0)), int(progress.get("yes", 0))
    return {"confirmed": yes, "vetted": vetted, "total": total,
            "share_vetted": vetted / total if total else 0.0,
            "share_confirmed": yes / vetted if vetted else None}
