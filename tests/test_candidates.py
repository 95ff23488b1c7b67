"""Candidate catalogs: reading CSV/ECSV, validation, verdict merging, export, sky links."""
from __future__ import annotations

import io
import math
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import numpy as np
import pandas as pd
import pytest

from galaxysd_core.science import candidates as cands
from galaxysd_core.errors import GalaxySDDataError, GalaxySDFileError, GalaxySDValueError
from galaxysd_core.studio.store import Store

DEMO = Path(__file__).resolve().parents[1] / "assets" / "demo_candidates"


def _write_csv(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture
def catalog_dir(tmp_path) -> Path:
    from PIL import Image

    (tmp_path / "img").mkdir()
    for i in range(3):
        Image.fromarray(np.full((16, 16, 3), 40 * i, np.uint8)).save(tmp_path / "img" / f"c{i}.png")
    _write_csv(tmp_path / "cands.csv",
               "id,score,image_path,ra,dec,extra\n"
               "0042,0.2,img/c0.png,150.1,2.2,a\n"
               "b,0.9,img/c1.png,,,b\n"
               "c,0.5,img/missing.png,10,-5,c\n")
    return tmp_path


def test_demo_catalog_is_shipped_and_valid():
    cat = cands.read_candidates(DEMO)
    assert cat.name == "demo_candidates"
    assert len(cat) >= 10
    assert cat.table["image_exists"].all()
    assert list(cat.table["score"]) == sorted(cat.table["score"], reverse=True)
    assert cat.has_coordinates and cat.table["ra"].isna().any()  # some rows without coordinates
    assert cands.default_catalog_path() is not None


def test_default_catalog_follows_environment_then_shipped(monkeypatch, tmp_path):
    from galaxysd_core import config

    monkeypatch.setenv(config.CANDIDATES_ENV, str(DEMO))
    assert cands.default_catalog_path() == DEMO / "candidates.csv"
    monkeypatch.setenv(config.CANDIDATES_ENV, str(DEMO / "candidates.csv"))
    assert cands.default_catalog_path() == DEMO / "candidates.csv"
    monkeypatch.setenv(config.CANDIDATES_ENV, str(tmp_path / "nothing.csv"))
    with pytest.raises(GalaxySDFileError, match="GALAXYSD_CANDIDATES"):
        cands.default_catalog_path()
    monkeypatch.setenv(config.CANDIDATES_ENV, str(tmp_path))
    with pytest.raises(GalaxySDFileError, match="no candidates.ecsv"):
        cands.default_catalog_path()
    monkeypatch.delenv(config.CANDIDATES_ENV)
    # unset: the shipped D-ETG catalog wins over the demo when it exists
    detg = tmp_path / "detg_candidates"
    monkeypatch.setattr(cands, "DETG_CATALOG_DIR", detg)
    assert cands.default_catalog_path() == DEMO / "candidates.csv"
    detg.mkdir()
    (detg / "candidates.csv").write_text("id,score,image_path\na,0.5,x.png\n")
    assert cands.default_catalog_path() == detg / "candidates.csv"


def test_shipped_detg_catalog_is_valid_and_points_into_the_data_folder(monkeypatch):
    path = cands.DETG_CATALOG_DIR / "candidates.ecsv"
    if not path.is_file():
        pytest.skip("assets/detg_candidates is not shipped in this checkout")
    monkeypatch.delenv("GALAXYSD_DATA_DIR", raising=False)
    cat = cands.read_candidates(path)
    assert cat.needs_data_dir and len(cat) >= 100
    assert list(cat.table["score"]) == sorted(cat.table["score"], reverse=True)
    assert not any(Path(p).is_absolute() for p in cat.table["image_path"])  # no machine-specific paths
    from conftest import shared_data_path

    data = shared_data_path()
    if not data.is_dir():
        pytest.skip(f"real data folder {data} not found: cannot check that the catalog's images resolve")
    monkeypatch.setenv("GALAXYSD_DATA_DIR", str(data))
    cat = cands.read_candidates(path)
    assert cat.table["image_exists"].all()


def test_read_csv_sorts_and_resolves(catalog_dir):
    cat = cands.read_candidates(catalog_dir / "cands.csv")
    t = cat.table
    assert cat.name == "cands" and list(t["id"]) == ["b", "c", "0042"]  # by score, id kept as text
    assert list(t["image_exists"]) == [True, False, True]
    assert Path(t.loc[0, "image_file"]) == (catalog_dir / "img" / "c1.png").resolve()
    assert math.isnan(t.loc[0, "ra"]) and t.loc[2, "ra"] == pytest.approx(150.1)
    assert "extra" in t.columns
    assert t.set_index("id").loc["0042", "extra"] == "a"  # other columns kept, aligned with their id


def test_read_ecsv_with_aliases_and_meta(tmp_path):
    from astropy.table import Table

    t = Table({"candidate_id": ["x1", "x2"], "prob": [0.3, 0.7], "filename": ["a.png", "b.png"],
               "RA": [10.0, 20.0], "DEC": [1.0, 2.0]}, meta={"search": "detg", "version": 2})
    path = tmp_path / "found.ecsv"
    t.write(path, format="ascii.ecsv")
    cat = cands.read_candidates(path)
    assert list(cat.table["id"]) == ["x2", "x1"]
    assert cat.meta["search"] == "detg"
    assert cat.table.loc[0, "ra"] == 20.0


def test_upload_bytes_without_image_folder(catalog_dir):
    data = (catalog_dir / "cands.csv").read_bytes()
    cat = cands.read_candidates(io.BytesIO(data))
    assert not cat.table["image_exists"].any()  # relative paths cannot be resolved
    cat = cands.read_candidates(data, name="up", images_dir=catalog_dir)
    assert cat.name == "up" and cat.table["image_exists"].sum() == 2


@pytest.mark.parametrize("text,match", [
    ("id,image_path\na,x.png\n", r"lacks column\(s\) \['score'\]"),
    ("id,score,image_path\na,1,x.png\na,2,y.png\n", "duplicate id"),
    ("id,score,image_path\na,high,x.png\n", "not a finite number"),
    ("id,score,image_path\na,nan,x.png\n", "not a finite number"),
    ("id,score,image_path,ra,dec\na,1,x.png,400,0\n", "ra 400"),
    ("id,score,image_path,ra,dec\na,1,x.png,10,-91\n", "dec -91"),
    ("id,score,image_path\n,1,x.png\n", "empty id"),
    ("id,score,image_path\n", "no rows"),
    ("", "empty"),
])
def test_validation_errors(tmp_path, text, match):
    with pytest.raises(GalaxySDDataError, match=match):
        cands.read_candidates(_write_csv(tmp_path / "bad.csv", text))


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(GalaxySDFileError):
        cands.read_candidates(tmp_path / "nope.csv")
    with pytest.raises(GalaxySDFileError, match="candidates.ecsv"):
        cands.read_candidates(tmp_path)


def test_malformed_ecsv_and_limits(tmp_path):
    with pytest.raises(GalaxySDDataError, match="ECSV"):
        cands.read_candidates(_write_csv(tmp_path / "x.ecsv", "# %ECSV 1.0\n# ---\n# datatype: [oops\nid\n"))
    big = "id,score,image_path\n" + "".join(f"c{i},{i},x.png\n" for i in range(20))
    with pytest.raises(GalaxySDDataError, match="rows"):
        cands.read_candidates(_write_csv(tmp_path / "big.csv", big), max_rows=10)
    with pytest.raises(GalaxySDDataError, match="MB"):
        cands.read_candidates(tmp_path / "big.csv", max_bytes=50)


def test_merge_progress_filter_with_store(catalog_dir, tmp_path):
    cat = cands.read_candidates(catalog_dir / "cands.csv")
    store = Store(f"sqlite:///{tmp_path / 's.sqlite'}")
    store.add_verdict(cat.name, "b", "yes", note="nice ring", user="ana")
    store.add_verdict(cat.name, "c", "no")
    store.add_verdict(cat.name, "c", "unsure")  # the newest vote counts
    store.add_verdict(cat.name, "not-in-catalog", "yes")
    merged = cands.merge_verdicts(cat, store.latest_verdicts(cat.name))
    assert list(merged["verdict"].iloc[:2]) == ["yes", "unsure"] and pd.isna(merged["verdict"].iloc[2])
    assert merged.loc[0, "note"] == "nice ring" and merged.loc[0, "vetted_by"] == "ana"
    assert cands.progress(merged) == {"total": 3, "vetted": 2, "yes": 1, "no": 0, "unsure": 1, "remaining": 1}
    assert list(cands.filter_by_verdict(merged, "unvetted")["id"]) == ["0042"]
    assert list(cands.filter_by_verdict(merged, "yes")["id"]) == ["b"]
    assert len(cands.filter_by_verdict(merged, "all")) == 3
    with pytest.raises(GalaxySDValueError):
        cands.filter_by_verdict(merged, "maybe")


def test_export_csv_and_ecsv(catalog_dir):
    from astropy.table import Table

    cat = cands.read_candidates(catalog_dir / "cands.csv")
    merged = cands.merge_verdicts(cat, {"b": {"verdict": "yes", "note": "ring, clear", "user": "ana",
                                              "created_at": pd.Timestamp("2025-01-02T03:04:05Z")},
                                        "0042": "no"})
    csv = pd.read_csv(io.BytesIO(cands.export_vetted(cat, merged, "csv")), dtype={"id": str})
    assert list(csv["id"]) == ["b", "0042"] and list(csv["verdict"]) == ["yes", "no"]
    assert csv.loc[0, "note"] == "ring, clear" and "image_file" not in csv.columns
    assert csv.loc[0, "vetted_at"].startswith("2025-01-02T03:04:05")
    t = Table.read(io.BytesIO(cands.export_vetted(cat, merged, "ecsv")), format="ascii.ecsv")
    assert list(t["id"]) == ["b", "0042"] and str(t["ra"].unit) == "deg"
    assert t.meta["catalog"] == "cands" and t.meta["verdict_counts"]["vetted"] == 2
    all_rows = pd.read_csv(io.BytesIO(cands.export_vetted(cat, merged, "csv", only_vetted=False)))
    assert len(all_rows) == 3
    with pytest.raises(GalaxySDValueError):
        cands.export_vetted(cat, merged, "xlsx")


def test_sky_links():
    sky = cands.skyserver_url(150.1, 2.2)
    q = parse_qs(urlparse(sky).query)
    assert sky.startswith("https://skyserver.sdss.org/") and q["ra"] == ["150.100000"] and q["dec"] == ["2.200000"]
    ls = cands.legacy_survey_url(150.1, -2.2)
    q = parse_qs(urlparse(ls).query)
    assert ls.startswith("https://www.legacysurvey.org/viewer?") and q["dec"] == ["-2.200000"]
    for bad in ((float("nan"), 1.0), (None, 1.0), (10.0, 95.0), (-1.0, 0.0), ("abc", 1)):
        assert cands.skyserver_url(*bad) is None and cands.legacy_survey_url(*bad) is None


# ------------------------------------------------------------------------------------ server files stay unread
CANARY = "canary-7f3a9c1e"


@pytest.mark.parametrize("text", ["GALAXYSD_CANARY=canary-7f3a9c1e\x00PATH=/usr/bin\x00HOME=/root\x00",
                                  "root:x:0:0:root:/root:/bin/bash\ncanary-7f3a9c1e:x:1:1::/:/bin/sh\n",
                                  "canary-7f3a9c1e\n"])
def test_a_non_catalog_file_is_refused_without_echoing_its_content(tmp_path, text):
    # what /proc/self/environ, /etc/passwd or /etc/hostname look like to the CSV reader
    with pytest.raises(GalaxySDDataError) as info:
        cands.read_candidates(_write_csv(tmp_path / "environ", text))
    msg = str(info.value)
    assert "lacks column(s) ['id', 'score', 'image_path']" in msg and "Accepted names" in msg
    assert CANARY not in msg and "root:x" not in msg and "PATH=" not in msg


def test_an_ecsv_error_never_quotes_the_header(tmp_path):
    text = ("# %ECSV 1.0\n# ---\n# datatype:\n# - {name: id, datatype: string}\n"
            f"{CANARY}_a {CANARY}_b\nx y\n")
    with pytest.raises(GalaxySDDataError, match="not a valid ECSV table") as info:
        cands.read_candidates(_write_csv(tmp_path / "x.ecsv", text))
    assert CANARY not in str(info.value)


def test_image_paths_that_leave_the_image_root_are_refused_and_never_opened(tmp_path, monkeypatch):
    from PIL import Image

    root = tmp_path / "cat"
    (root / "img").mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "img" / "ok.png")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "outside.png")  # a real image, outside
    (root / "img" / "link.png").symlink_to(tmp_path / "outside.png")
    _write_csv(root / "cands.csv", "id,score,image_path\n"
               f"abs,0.9,{tmp_path / 'outside.png'}\npasswd,0.8,/etc/passwd\nup,0.7,../../etc/passwd\n"
               "up2,0.6,img/../../outside.png\nlink,0.5,img/link.png\nhome,0.4,~/x.png\n"
               "ok,0.3,img/ok.png\nok2,0.2,img/../img/ok.png\n")
    opened = []
    real_is_file = Path.is_file
    monkeypatch.setattr(Path, "is_file", lambda self: opened.append(str(self)) or real_is_file(self))
    cat = cands.read_candidates(root / "cands.csv")
    t = cat.table.set_index("id")
    assert cat.refused_ids == ["abs", "passwd", "up", "up2", "link", "home"]
    assert list(t.loc[["ok", "ok2"], "image_exists"]) == [True, True]
    assert not t.loc[cat.refused_ids, "image_exists"].any() and (t.loc[cat.refused_ids, "image_file"] == "").all()
    assert not [p for p in opened if "outside" in p or p.endswith("passwd")]  # not even probed
    # uploads without an image folder: absolute and '..' paths are refused, relative ones unresolved
    up = cands.read_candidates((root / "cands.csv").read_bytes())
    assert up.refused_ids == ["abs", "passwd", "up", "up2", "home", "ok2"] and not up.table["image_exists"].any()
    # real-data catalogs: the root is $GALAXYSD_DATA_DIR
    monkeypatch.setenv("GALAXYSD_DATA_DIR", str(root))
    ecsv = ("# %ECSV 1.0\n# ---\n# datatype:\n# - {name: id, datatype: string}\n# - {name: score, datatype: float64}\n"
            "# - {name: image_path, datatype: string}\n# meta: {image_root: $GALAXYSD_DATA_DIR}\n"
            "id score image_path\ng1 0.9 img/ok.png\ng2 0.4 ../outside.png\n")
    real = cands.read_candidates(ecsv.encode())
    assert real.refused_ids == ["g2"] and real.table.set_index("id").loc["g1", "image_exists"]
    merged = cands.merge_verdicts(cat, {"abs": "yes"})
    assert "image_refused" not in pd.read_csv(io.BytesIO(cands.export_vetted(cat, merged, "csv"))).columns
