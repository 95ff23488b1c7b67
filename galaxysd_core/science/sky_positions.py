"""Sky positions of catalog rows: the catalog's ra/dec, else the position an IAU-style name encodes.

``gz2_cutouts`` ids are IAU-style position names ``JHHMMSS.ss+DDMMSS.s`` (truncated sexagesimal
J2000; IAU Recommendations for Nomenclature), e.g. ``J165028.64+384910.0`` -> ra 252.61933,
dec +38.81944, accurate to the last digit (0.15" in ra, 0.1" in dec), well inside one SDSS pixel
(0.396"). SDSS object ids (``587722952767439450``, the ``gz1_sdss`` names) do not encode a
position: such rows get no position and no links. The links are those of the Candidates page
(:func:`galaxysd_core.science.candidates.skyserver_url`, :func:`~galaxysd_core.science.candidates.legacy_survey_url`).

Owns :func:`position_from_name` and :func:`add_positions`.
"""
from __future__ import annotations

import math
import re
from typing import Any, Optional, Tuple

import numpy as np
import pandas as pd

__all__ = ["position_from_name", "add_positions"]

#: ``J`` + HHMMSS(.s...) + sign + DDMMSS(.s...), optionally after a survey prefix ("SDSS J...").
_JNAME = re.compile(r"(?:^|[^A-Za-z0-9])J(\d{2})(\d{2})(\d{2}(?:\.\d+)?)([+-])(\d{2})(\d{2})(\d{2}(?:\.\d+)?)(?:$|[^0-9.])")


def position_from_name(name: Any) -> Optional[Tuple[float, float]]:
    """``(ra, dec)`` in degrees encoded in a ``JHHMMSS.ss+DDMMSS.s`` name, or None.

    >>> [round(v, 5) for v in position_from_name("J165028.64+384910.0")]
    [252.61933, 38.81944]
    """
    m = _JNAME.search(str(name or ""))
    if m is None:
        return None
    hh, mm, ss, sign, dd, am, asec = m.groups()
    if int(hh) >= 24 or int(mm) >= 60 or float(ss) >= 60 or int(dd) > 90 or int(am) >= 60 or float(asec) >= 60:
        return None
    ra = 15.0 * (int(hh) + int(mm) / 60.0 + float(ss) / 3600.0)
    dec = (int(dd) + int(am) / 60.0 + float(asec) / 3600.0) * (-1.0 if sign == "-" else 1.0)
    return (ra, dec) if abs(dec) <= 90.0 else None


def _valid(ra: Any, dec: Any) -> bool:
    try:
        ra, dec = float(ra), float(dec)
    except (TypeError, ValueError):
        return False
    return math.isfinite(ra) and math.isfinite(dec) and 0.0 <= ra < 360.0 and -90.0 <= dec <= 90.0


def add_positions(table: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``table`` (``id`` and optionally ``ra``, ``dec``) with ``ra``, ``dec``,
    ``position_from`` (``catalog`` / ``name`` / ``""``), ``skyserver_url`` and ``legacy_url``."""
    from galaxysd_core.science.candidates import legacy_survey_url, skyserver_url

    out = table.copy()
    ra = out["ra"].to_numpy(dtype=float, copy=True) if "ra" in out.columns else np.full(len(out), np.nan)
    dec = out["dec"].to_numpy(dtype=float, copy=True) if "dec" in out.columns else np.full(len(out), np.nan)
    origin = []
    for i, name in enumerate(out["id"].astype(str)):
        if _valid(ra[i], dec[i]):
            origin.append("catalog")
            continue
        pos = position_from_name(name)
        ra[i], dec[i] = pos if pos else (np.nan, np.nan)
        origin.append("name" if pos else "")
    out["ra"], out["dec"], out["position_from"] = ra, dec, origin
    out["skyserver_url"] = [skyserver_url(a, b) or "" for a, b in zip(ra, dec)]
    out["legacy_url"] = [legacy_survey_url(a, b) or "" for a, b in zip(ra, dec)]
    return out
