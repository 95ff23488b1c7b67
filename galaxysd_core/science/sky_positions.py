"""Sky positions of catalog rows and the links to the SDSS SkyServer and the Legacy Survey viewer.

A row's position is its catalog's ``ra``/``dec`` (ICRS degrees) when valid. Otherwise it is the
position an IAU-style name encodes: ``gz2_cutouts`` ids are ``JHHMMSS.ss+DDMMSS.s`` (truncated
sexagesimal J2000; IAU Recommendations for Nomenclature), e.g. ``J165028.64+384910.0`` ->
ra 252.61933, dec +38.81944, accurate to the last digit (0.15" in ra, 0.1" in dec), well inside
one SDSS pixel (0.396"). SDSS object ids (``587722952767439450``, the ``gz1_sdss`` names) do not
encode a position: such rows get no position; DR7 ``objID``s get a link to the DR7 Explore page,
which shows theirs.

The one owner of these positions and links: the D-ETG catalog (:func:`add_positions`), the
vetting store (:mod:`galaxysd_core.science.candidates` re-exports the URL builders) and the
Candidates page (:func:`candidate_position`) all use it.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Optional, Tuple
from urllib.parse import urlencode

import numpy as np
import pandas as pd

__all__ = ["SkyPosition", "position_from_name", "candidate_position", "add_positions", "skyserver_url",
           "legacy_survey_url", "dr7_explore_url", "SDSS_DR", "LEGACY_LAYER"]

#: SkyServer data release of the Explore links and the Legacy Survey viewer layer.
SDSS_DR = "dr18"
LEGACY_LAYER = "ls-dr10"
#: SDSS DR7 object Explore tool (DR7 ``objID``s, as in Galaxy Zoo 1, are not the ids of DR8 and later).
DR7_EXPLORE = "https://cas.sdss.org/dr7/en/tools/explore/obj.asp"
_DR7_OBJID = re.compile(r"^58\d{16}$")

#: ``J`` + HHMMSS(.s...) + sign + DDMMSS(.s...), optionally after a survey prefix ("SDSS J...").
_JNAME = re.compile(r"(?:^|[^A-Za-z0-9])J(\d{2})(\d{2})(\d{2}(?:\.\d+)?)([+-])(\d{2})(\d{2})(\d{2}(?:\.\d+)?)(?:$|[^0-9.])")


def _valid(ra: Any, dec: Any) -> Optional[Tuple[float, float]]:
    """``(ra, dec)`` as floats when finite and on the sky (0 <= ra < 360, |dec| <= 90), else None."""
    try:
        ra, dec = float(ra), float(dec)
    except (TypeError, ValueError):
        return None
    if not (math.isfinite(ra) and math.isfinite(dec)) or not (0.0 <= ra < 360.0 and -90.0 <= dec <= 90.0):
        return None
    return ra, dec


def skyserver_url(ra: Any, dec: Any) -> Optional[str]:
    """SDSS SkyServer Explore page of the object nearest (ra, dec) (degrees); None without valid coordinates."""
    c = _valid(ra, dec)
    if c is None:
        return None
    return (f"https://skyserver.sdss.org/{SDSS_DR}/VisualTools/explore/summary?"
            + urlencode({"ra": f"{c[0]:.6f}", "dec": f"{c[1]:.6f}"}))


def legacy_survey_url(ra: Any, dec: Any, zoom: int = 16) -> Optional[str]:
    """Legacy Survey sky viewer (layer :data:`LEGACY_LAYER`) centred on and marking (ra, dec); None
    without valid coordinates."""
    c = _valid(ra, dec)
    if c is None:
        return None
    return "https://www.legacysurvey.org/viewer?" + urlencode(
        {"ra": f"{c[0]:.6f}", "dec": f"{c[1]:.6f}", "layer": LEGACY_LAYER, "zoom": int(zoom),
         "mark": f"{c[0]:.6f},{c[1]:.6f}"})


def dr7_explore_url(name: Any) -> Optional[str]:
    """SDSS DR7 Explore page of a DR7 ``objID`` (18 digits starting ``58``, e.g. Galaxy Zoo 1's
    ``587731890041389215``), which shows its position; None for other ids."""
    text = str(name or "").strip()
    return f"{DR7_EXPLORE}?" + urlencode({"id": text}) if _DR7_OBJID.match(text) else None


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
    return _valid(ra, dec)


@dataclass(frozen=True)
class SkyPosition:
    """A sky position (ICRS degrees) and where it came from: ``"catalog"`` or ``"name"``."""

    ra: float
    dec: float
    origin: str

    @property
    def skyserver(self) -> str:
        """SDSS SkyServer Explore page of the nearest object (:func:`skyserver_url`)."""
        return skyserver_url(self.ra, self.dec)

    @property
    def legacy(self) -> str:
        """Legacy Survey viewer at the position (:func:`legacy_survey_url`)."""
        return legacy_survey_url(self.ra, self.dec)

    def label(self) -> str:
        """``"ra 252.61933°, dec +38.81944°"`` (+ ``" (from the name)"`` when derived from the id)."""
        return f"ra {self.ra:.5f}°, dec {self.dec:+.5f}°" + (" (from the name)" if self.origin == "name" else "")


def candidate_position(ra: Any, dec: Any, name: Any = None) -> Optional[SkyPosition]:
    """The catalog's (ra, dec) when valid, else the position in ``name`` (:func:`position_from_name`), else None."""
    ok = _valid(ra, dec)
    if ok is not None:
        return SkyPosition(ok[0], ok[1], "catalog")
    pos = position_from_name(name)
    return SkyPosition(pos[0], pos[1], "name") if pos else None


def add_positions(table: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``table`` (``id`` and optionally ``ra``, ``dec``) with ``ra``, ``dec``,
    ``position_from`` (``catalog`` / ``name`` / ``""``), ``skyserver_url`` and ``legacy_url``
    (``""`` without a position)."""
    out = table.copy()
    has = "ra" in out.columns and "dec" in out.columns
    ra_in = out["ra"].to_numpy() if has else np.full(len(out), np.nan)
    dec_in = out["dec"].to_numpy() if has else np.full(len(out), np.nan)
    positions = [candidate_position(a, b, name) for a, b, name in zip(ra_in, dec_in, out["id"].astype(str))]
    out["ra"] = [p.ra if p else np.nan for p in positions]
    out["dec"] = [p.dec if p else np.nan for p in positions]
    out["position_from"] = [p.origin if p else "" for p in positions]
    out["skyserver_url"] = [p.skyserver if p else "" for p in positions]
    out["legacy_url"] = [p.legacy if p else "" for p in positions]
    return out
