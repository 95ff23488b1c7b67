"""VOTable / FITS candidate tables (io.sky_tables, science.candidates.export_vetted): astropy reads back
what was written, units and UCDs included; SAMP against astropy's own hub started in the test."""
from __future__ import annotations

import io
import threading
import time

import numpy as np
import pandas as pd
import pytest

from galaxysd_core.errors import GalaxySDValueError
from galaxysd_core.io.sky_tables import fits_table_bytes, send_over_samp, votable_bytes

DF = pd.DataFrame({"id": ["J082444.91+465425.9", "587731890039816362"], "score": [0.38, 0.10],
                   "ra": [126.187125, np.nan], "dec": [46.907194, np.nan], "p_dust": [0.38, 0.2],
                   "verdict": ["yes", "no"], "note": ["clear lane", ""], "skyserver_url": ["https://x", ""]})


def test_votable_round_trip_keeps_values_units_and_ucds():
    from astropy.io.votable import parse

    vot = parse(io.BytesIO(votable_bytes(DF, {"catalog": "detg", "verdict_counts": {"yes": 1}})))
    table = vot.get_first_table()
    t = table.to_table()
    assert list(t["id"]) == list(DF["id"]) and list(t["verdict"]) == ["yes", "no"]
    np.testing.assert_allclose(t["ra"][0], 126.187125) and np.testing.assert_allclose(t["score"], [0.38, 0.10])
    assert str(t["ra"].unit) == "deg" and str(t["dec"].unit) == "deg"
    ucd = {f.name: f.ucd for f in table.fields}
    assert ucd["ra"] == "pos.eq.ra;meta.main" and ucd["dec"] == "pos.eq.dec;meta.main"
    assert ucd["id"] == "meta.id;meta.main" and ucd["p_dust"] == "stat.probability"
    assert np.ma.is_masked(t["ra"][1]) or np.isnan(t["ra"][1])


def test_fits_table_round_trip_keeps_values_units_and_ucds():
    from astropy.io import fits
    from astropy.table import Table

    data = fits_table_bytes(DF, {"catalog": "detg"})
    t = Table.read(io.BytesIO(data), format="fits")
    assert [str(v) for v in t["id"]] == list(DF["id"]) and str(t["ra"].unit) == "deg"
    np.testing.assert_allclose(t["dec"][0], 46.907194)
    hdr = fits.open(io.BytesIO(data))[1].header
    cols = [hdr[f"TTYPE{i}"] for i in range(1, hdr["TFIELDS"] + 1)]
    assert hdr[f"TUCD{cols.index('ra') + 1}"] == "pos.eq.ra;meta.main" and hdr["CATALOG"] == "detg"


def test_export_vetted_offers_votable_and_fits(tmp_path):
    from galaxysd_core.science.candidates import EXPORT_FORMATS, export_vetted, merge_verdicts, read_candidates

    pd.DataFrame({"id": ["a", "b"], "score": [0.9, 0.1], "image_path": ["a.png", "b.png"], "ra": [10.0, 11.0],
                  "dec": [-1.0, 2.0]}).to_csv(tmp_path / "c.csv", index=False)
    cat = read_candidates(tmp_path / "c.csv")
    merged = merge_verdicts(cat, {})
    merged.loc[0, "verdict"] = "yes"
    assert set(EXPORT_FORMATS) == {"csv", "ecsv", "votable", "fits"}
    from astropy.io.votable import parse

    t = parse(io.BytesIO(export_vetted(cat, merged, "votable"))).get_first_table().to_table()
    assert list(t["id"]) == ["a"] and str(t["ra"].unit) == "deg"
    with pytest.raises(GalaxySDValueError, match="export format"):
        export_vetted(cat, merged, "xls")


def test_no_samp_hub_gives_a_clear_message(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("SAMP_HUB", raising=False)
    with pytest.raises(GalaxySDValueError, match="no SAMP hub is running"):
        send_over_samp(votable_bytes(DF), "x", hub_timeout_s=0.5)


def test_samp_sends_the_table_to_a_listening_client(tmp_path, monkeypatch):
    from astropy.io.votable import parse
    from astropy.samp import SAMPHubServer, SAMPIntegratedClient

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("SAMP_HUB", raising=False)
    hub = SAMPHubServer(web_profile=False)
    hub.start()
    received = {}
    got = threading.Event()
    listener = SAMPIntegratedClient(name="fake TOPCAT")
    try:
        listener.connect()

        def on_table(private_key, sender_id, mtype, params, extra):
            from urllib.parse import urlparse
            from urllib.request import url2pathname

            received.update(params)
            received["rows"] = len(parse(url2pathname(urlparse(params["url"]).path)).get_first_table().array)
            got.set()

        listener.bind_receive_notification("table.load.votable", on_table)
        n = send_over_samp(votable_bytes(DF), "detg_vetted")
        assert n == 1
        assert got.wait(10), "the listening client never got the table"
        assert received["name"] == "detg_vetted" and received["rows"] == 2
    finally:
        listener.disconnect()
        hub.stop()
