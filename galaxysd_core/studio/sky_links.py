"""Sky positions of candidates and links to the SDSS SkyServer and the Legacy Survey viewer.

A candidate's position is its catalog's ``ra``/``dec`` (ICRS degrees) when given. Otherwise it is
derived from an IAU-style position name, ``JHHMMSS.ss+DDMMSS.s`` (the ids of the ``gz2_cutouts``
set, e.g. ``J165028.64+384910.0`` -> ra 252.61933, dec +38.81944; IAU Recommendations for
Nomenclature, truncated sexagesimal J2000 coordinates): such a name is accurate to its last digit
(0.15 arcsec in ra, 0.1 arcsec in dec here), well inside one SDSS pixel (0.396 arcsec). SDSS object
ids (``587731890041389215``) do not encode a position and get no links.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Optional
from urllib.parse import urlencode

#: SkyServer data release of the links (DR17 navigate tool) and the Legacy Survey layer.
SKYSERVER_NAVI = "https://skyserver.sdss.org/dr17/VisualTools/navi"
LEGACY_VIEWER = "https://www.legacysurvey.org/viewer"
LEGACY_LAYER = "ls-dr10"

#: ``J`` + HHMMSS(.s...) + sign + DDMMSS(.s...), optionally after a survey prefix ("SDSS J...").
_JNAME = re.compile(r"(?:^|[^A-Za-z0-9])J(\d{2})(\d{2})(\d{2}(?:\.\d+)?)([+-])(\d{2})(\d{2})(\d{2}(?:\.\d+)?)(?:$|[^0-9.])")


@dataclass(frozen=True)
class SkyPosition:
    """A sky position (ICRS degrees) and where it came from: ``"catalog"`` or ``"name"``."""

    ra: float
    dec: float
    origin: str

    @property
    def skyserver(self) -> str:
        """SDSS SkyServer DR17 navigate view centred on the position."""
        return skyserver_url(self.ra, self.dec)

    @property
    def legacy(self) -> str:
        """Legacy Survey (DR10) viewer centred on the position."""
        return legacy_survey_url(self.ra, self.dec)

    def label(self) -> str:
        """``"ra 252.61933°, dec +38.81944°"`` (+ ``" (from the name)"`` when derived from the id)."""
        return f"ra {self.ra:.5f}°, dec {self.dec:+.5f}°" + (" (from the name)" if self.origin == "name" else "")


def _valid(ra: Any, dec: Any) -> Optional[tuple]:
    try:
        ra, dec = float(ra), float(dec)
    except (TypeError, ValueError):
        return None
    if not (math.isfinite(ra) and math.isfinite(dec)) or not (0.0 <= ra < 360.0 and -90.0 <= dec <= 90.0):
        return None
    return ra, dec


def position_from_name(name: Any) -> Optional[SkyPosition]:
    """Position encoded in an IAU-style ``JHHMMSS.ss+DDMMSS.s`` name, or None.

    >>> p = position_from_name("J165028.64+384910.0")
    >>> round(p.ra, 5), round(p.dec, 5)
    (252.61933, 38.81944)
    """
    m = _JNAME.search(str(name or ""))
    if m is None:
        return None
    hh, mm, ss, sign, dd, am, asec = m.groups()
    if int(mm) >= 60 or float(ss) >= 60 or int(am) >= 60 or float(asec) >= 60:
        return None
    ra = 15.0 * (int(hh) + int(mm) / 60.0 + float(ss) / 3600.0)
    dec = (int(dd) + int(am) / 60.0 + float(asec) / 3600.0) * (-1.0 if sign == "-" else 1.0)
    ok = _valid(ra, dec)
    return SkyPosition(ok[0], ok[1], "name") if ok else None


def candidate_position(ra: Any, dec: Any, name: Any = None) -> Optional[SkyPosition]:
    """The catalog's (ra, dec) when valid, else the position in ``name`` (:func:`position_from_name`), else None."""
    ok = _valid(ra, dec)
    if ok is not None:
        return SkyPosition(ok[0], ok[1], "catalog")
    return position_from_name(name)


def skyserver_url(ra: float, dec: float, scale: float = 0.2) -> str:
    """SDSS SkyServer DR17 navigate tool at (ra, dec), ``scale`` arcsec per pixel."""
    return f"{SKYSERVER_NAVI}?" + urlencode({"ra": f"{ra:.6f}", "dec": f"{dec:.6f}", "scale": f"{scale:g}"})


def legacy_survey_url(ra: float, dec: float, zoom: int = 16) -> str:
    """Legacy Survey sky viewer (layer :data:`LEGACY_LAYER`) at (ra, dec)."""
    return f"{LEGACY_VIEWER}?" + urlencode({"ra": f"{ra:.6f}", "dec": f"{dec:.6f}", "layer": LEGACY_LAYER,
                                            "zoom": int(zoom)})


#: SDSS DR7 object Explore tool (DR7 ``objID``s, as in Galaxy Zoo 1, are not the ids of DR8 and later).
DR7_EXPLORE = "https://cas.sdss.org/dr7/en/tools/explore/obj.asp"
_DR7_OBJID = re.compile(r"^58\d{16}$")


def dr7_explore_url(name: Any) -> Optional[str]:
    """SDSS DR7 Explore page of a DR7 ``objID`` (18 digits starting ``58``, e.g. Galaxy Zoo 1's
    ``587731890041389215``), which shows its position; None for other ids."""
    text = str(name or "").strip()
    return f"{DR7_EXPLORE}?" + urlencode({"id": text}) if _DR7_OBJID.match(text) else None
