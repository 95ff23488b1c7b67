"""Candidate tables for the tools astronomers use: VOTable and FITS binary tables with units and UCDs,
and SAMP messages to TOPCAT, Aladin or DS9.

Tables are built with :class:`astropy.table.Table` (:func:`sky_table`): ``ra``/``dec`` in degrees
(ICRS), every column with the IVOA Unified Content Descriptor (UCD1+) that says what it is
(``pos.eq.ra;meta.main``, ``meta.id;meta.main``, ``meta.ref.url``, ...), and the metadata as table
keywords. :func:`votable_bytes` writes a VOTable 1.4 (``astropy.io.votable``); :func:`fits_table_bytes`
a FITS binary table (``astropy.io.fits``). :func:`send_over_samp` broadcasts a VOTable as
``table.load.votable`` through a running SAMP hub (``astropy.samp``) and raises
:class:`~galaxysd_core.errors.GalaxySDValueError` with a clear message when no hub runs.

Owns :data:`UCDS`, :data:`UNITS`, :func:`sky_table`, :func:`votable_bytes`, :func:`fits_table_bytes`,
:func:`send_over_samp`.
"""
from __future__ import annotations

import io
import json
import tempfile
from pathlib import Path
from typing import Any, Mapping, Optional

import numpy as np
import pandas as pd

from galaxysd_core.errors import GalaxySDValueError

__all__ = ["UCDS", "UNITS", "sky_table", "votable_bytes", "fits_table_bytes", "send_over_samp"]

#: Column -> UCD1+ (IVOA); probabilities of the D-ETG score get ``stat.probability``.
UCDS = {"id": "meta.id;meta.main", "ra": "pos.eq.ra;meta.main", "dec": "pos.eq.dec;meta.main",
        "score": "stat.likelihood", "rank": "meta.number", "verdict": "meta.code.class", "note": "meta.note",
        "vetted_by": "meta.curation", "vetted_at": "time.creation", "skyserver_url": "meta.ref.url",
        "legacy_url": "meta.ref.url", "image_path": "meta.ref.url;meta.file", "source": "meta.dataset",
        "known_caption": "meta.note", "similarity": "stat.correlation"}
#: Column -> unit (astropy string).
UNITS = {"ra": "deg", "dec": "deg"}


def _ucd(name: str) -> Optional[str]:
    if name in UCDS:
        return UCDS[name]
    if name.startswith("p_") or name in ("dust_vote_pred", "dust_lane_votes") or name.endswith("_prob"):
        return "stat.probability"
    return None


def sky_table(df: pd.DataFrame, meta: Optional[Mapping[str, Any]] = None):
    """An :class:`astropy.table.Table` of ``df`` with units, UCDs and ``meta`` (JSON text for non-scalars)."""
    from astropy.table import Table

    clean = df.reset_index(drop=True).copy()
    for c in clean.columns:
        if clean[c].dtype == object:
            clean[c] = clean[c].map(lambda v: "" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v))
        elif clean[c].dtype == bool:
            clean[c] = clean[c].astype(bool)
    t = Table.from_pandas(clean)
    for c in t.colnames:
        if c in UNITS:
            t[c].unit = UNITS[c]
        u = _ucd(c)
        if u:
            t[c].meta["ucd"] = u
    for k, v in dict(meta or {}).items():
        t.meta[str(k)[:60]] = v if isinstance(v, (str, int, float, bool)) else json.dumps(v, default=str)
    return t


def votable_bytes(df: pd.DataFrame, meta: Optional[Mapping[str, Any]] = None, name: str = "galaxysd") -> bytes:
    """VOTable 1.4 (XML, TABLEDATA) of ``df`` with units and UCDs (module docstring)."""
    from astropy.io.votable import from_table

    t = sky_table(df, meta)
    vot = from_table(t, table_id=name)
    field_by = {f.name: f for f in vot.get_first_table().fields}
    for c in t.colnames:
        if "ucd" in t[c].meta and c in field_by:
            field_by[c].ucd = t[c].meta["ucd"]
    buf = io.BytesIO()
    vot.to_xml(buf)
    return buf.getvalue()


def fits_table_bytes(df: pd.DataFrame, meta: Optional[Mapping[str, Any]] = None) -> bytes:
    """FITS file with one binary-table extension of ``df`` (units in TUNITn; UCDs as TUCDn keywords)."""
    from astropy.io import fits

    t = sky_table(df, {k: v for k, v in dict(meta or {}).items()})
    hdu = fits.table_to_hdu(t)
    for i, c in enumerate(t.colnames, start=1):
        if "ucd" in t[c].meta:
            hdu.header[f"TUCD{i}"] = t[c].meta["ucd"]
    buf = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(buf)
    return buf.getvalue()


def send_over_samp(votable: bytes, name: str, *, hub_timeout_s: float = 3.0, client_name: str = "GalaxySD Studio"
                   ) -> int:
    """Broadcast a VOTable to every SAMP client (TOPCAT, Aladin, DS9) of the running hub.

    Returns
    -------
    int
        Number of clients subscribed to ``table.load.votable`` that were sent the table.

    Raises
    ------
    GalaxySDValueError
        When no SAMP hub is running (start TOPCAT or Aladin, which run one), or no client takes tables.
    """
    import warnings

    with warnings.catch_warnings():  # astropy 8 deprecates astropy.samp for pyvo.samp (same API); it still works
        warnings.simplefilter("ignore")
        from astropy.samp import SAMPHubError, SAMPIntegratedClient

    import socket

    client = SAMPIntegratedClient(name=client_name, description="GalaxySD Studio candidate tables")
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(hub_timeout_s)  # a stale lockfile must not hang the page
    try:
        client.connect()
    except (SAMPHubError, OSError, ConnectionError) as exc:
        raise GalaxySDValueError("no SAMP hub is running on this machine: start TOPCAT or Aladin (they run one), "
                                 "then send again") from exc
    finally:
        socket.setdefaulttimeout(previous)
    tmp = Path(tempfile.mkdtemp(prefix="galaxysd-samp-")) / f"{Path(name).stem or 'candidates'}.vot"
    tmp.write_bytes(votable)
    try:
        takers = client.get_subscribed_clients("table.load.votable")
        if not takers:
            raise GalaxySDValueError("a SAMP hub runs but no tool that loads tables is connected (open TOPCAT or "
                                     "Aladin)")
        client.notify_all({"samp.mtype": "table.load.votable",
                           "samp.params": {"url": tmp.as_uri(), "name": str(name)}})
        return len(takers)
    finally:
        client.disconnect()
