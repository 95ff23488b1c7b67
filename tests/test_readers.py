"""Readers: GZ2 release layout (tiny synthetic fixture), catalogs + images, vote tables."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from galaxysd_core.data.catalog import read_catalog
from galaxysd_core.data.gz2_release import read_gz2_release, read_vote_table
from galaxysd_core.data.records import records_to_frame
from galaxysd_core.schema.captioning import Captioner
from galaxysd_core.errors import GalaxySDDataError, GalaxySDFileError
from galaxysd_core.schema.gz2 import ANSWERS

SPIRAL = {"t01_smooth_or_features_a02_features_or_disk": 0.9, "t02_edgeon_a05_no": 0.9,
          "t03_bar_a07_no_bar": 0.8, "t04_spiral_a08_spiral": 0.9, "t10_arms_winding_a28_tight": 0.7,
          "t11_arms_number_a32_2": 0.8, "t05_bulge_prominence_a12_obvious": 0.6, "t06_odd_a15_no": 0.9}
RING = {"t01_smooth_or_features_a01_smooth": 0.9, "t07_rounded_a16_completely_round": 0.8,
        "t06_odd_a14_yes": 0.8, "t08_odd_feature_a19_ring": 0.7}
SPIRAL_CAPTION = ("sdss, features or disk-shaped, spiral galaxy, tightly wound spiral arms, 2 spiral arms, "
                  "obvious bulge prominence")
RING_CAPTION = "sdss, smooth, completely round galaxy, ring galaxy"
#: raw fractions of galaxy 2: a majority for "features", whose follow-up question got no votes
RING_RAW = {**RING, "t01_smooth_or_features_a01_smooth": 0.4, "t01_smooth_or_features_a02_features_or_disk": 0.6}


def vote_row(spec, raw=None, votes=30):
    """One Hart-2016-style row: debiased fractions from ``spec``, raw from ``raw`` (default same)."""
    raw = spec if raw is None else raw
    row = {}
    for a in ANSWERS:
        d, f = spec.get(a.column, 0.0), raw.get(a.column, 0.0)
        row.update({a.column + "_count": round(f * votes), a.column + "_fraction": f,
                    a.column + "_weighted_fraction": f, a.column + "_debiased": d,
                    a.column + "_flag": 0})
    return row


def write_jpeg(path, size=(48, 48), color=(200, 160, 90)):
    yy, xx = np.mgrid[: size[1], : size[0]]
    r = np.hypot(xx - size[0] / 2, yy - size[1] / 2)
    img = (np.exp(-(r / 6.0) ** 2)[..., None] * np.array(color)).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path, format="JPEG", quality=90)


def make_gz2_release(root: Path, gz: bool = False) -> Path:
    """GZ2 release layout: gz2_hart16.csv[.gz], gz2_filename_mapping.csv, images_gz2/images/*.jpg.

    Galaxies: 1 spiral, 2 ring (raw fractions: features), 3 spiral without image mapping,
    4 spiral whose mapped image file is missing.
    """
    rows = []
    for objid, spec, raw in [("587722981736120347", SPIRAL, None), ("587722981736579107", RING, RING_RAW),
                             ("587722981741363294", SPIRAL, None), ("587722981741363999", SPIRAL, None)]:
        rows.append({"dr7objid": objid, "ra": 150.0 + len(rows), "dec": 2.5, "rastring": "x",
                     "decstring": "y", "sample": "original", "gz2_class": "Sc", "total_classifications": 30,
                     "total_votes": 120, **vote_row(spec, raw)})
    name = "gz2_hart16.csv.gz" if gz else "gz2_hart16.csv"
    root.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(root / name, index=False)
    pd.DataFrame({"objid": ["587722981736120347", "587722981736579107", "587722981741363999"],
                  "sample": ["original"] * 3, "asset_id": [3, 7, 11]}).to_csv(
        root / "gz2_filename_mapping.csv", index=False)
    write_jpeg(root / "images_gz2" / "images" / "3.jpg")
    write_jpeg(root / "images_gz2" / "images" / "7.jpg")
    return root


@pytest.mark.parametrize("gz", [False, True])
def test_gz2_release(tmp_path, gz):
    root = make_gz2_release(tmp_path / "gz2", gz=gz)
    recs = read_gz2_release(root)
    assert [r.id for r in recs] == ["587722981736120347", "587722981736579107", "587722981741363294",
                                    "587722981741363999"]
    assert recs[0].caption == SPIRAL_CAPTION
    assert recs[1].caption == RING_CAPTION
    assert recs[0].image_path == root / "images_gz2" / "images" / "3.jpg" and recs[0].image_path.is_file()
    assert recs[2].image_path is None  # not in the mapping
    assert recs[3].image_path == root / "images_gz2" / "images" / "11.jpg"  # mapped, file absent
    assert recs[0].extra["ra"] == pytest.approx(150.0) and recs[0].extra["asset_id"] == "3"
    assert recs[0].targets["t04_spiral_a08_spiral"] == 1.0
    assert recs[0].targets["t04_spiral_a09_no_spiral"] == 0.0
    assert math.isnan(recs[0].targets["t07_rounded_a16_completely_round"])
    assert {r.source for r in recs} == {"gz2_hart16"} and {r.label_kind for r in recs} == {"votes"}


def test_gz2_release_raw_fractions_and_limit(tmp_path):
    root = make_gz2_release(tmp_path / "gz2")
    recs = read_gz2_release(root, captioner=Captioner(debiased=False), limit=2)
    assert len(recs) == 2
    assert recs[0].caption == SPIRAL_CAPTION
    # raw fractions of galaxy 2: t02 got no votes, but every non-star galaxy is asked t06 -> t08
    assert recs[1].caption == "sdss, features or disk-shaped, ring galaxy"


def test_gz2_release_nan_row(tmp_path):
    root = make_gz2_release(tmp_path / "gz2")
    df = pd.read_csv(root / "gz2_hart16.csv", dtype={"dr7objid": str})
    df.loc[1, "t01_smooth_or_features_a01_smooth_debiased"] = np.nan
    df.loc[1, "t01_smooth_or_features_a01_smooth_weighted_fraction"] = np.nan  # no fallback either
    df.to_csv(root / "gz2_hart16.csv", index=False)
    with pytest.raises(GalaxySDDataError, match="587722981736579107.*t01_smooth_or_features_a01_smooth_debiased"):
        read_gz2_release(root)
    with pytest.warns(UserWarning, match="1 rows"):
        recs = read_gz2_release(root, on_error="skip")
    assert len(recs) == 3 and "587722981736579107" not in {r.id for r in recs}


def test_gz2_release_missing_parts(tmp_path):
    with pytest.raises(GalaxySDFileError, match="does not exist"):
        read_gz2_release(tmp_path / "nope")
    root = make_gz2_release(tmp_path / "gz2")
    (root / "gz2_filename_mapping.csv").unlink()
    with pytest.raises(GalaxySDFileError, match="gz2_filename_mapping.csv"):
        read_gz2_release(root)


# --------------------------------------------------------------------------- catalogs

def test_gz1_catalog(shared_data):
    recs = read_catalog(shared_data("gz1_sdss/labels.csv"), limit=40)
    assert len(recs) == 40
    r = recs[0]
    assert r.id == "588848901537202306" and r.source == "gz1_sdss" and r.label_kind == "gz1_class"
    assert r.image_path == shared_data("gz1_sdss/images/588848901537202306.jpeg")
    assert r.caption == "sdss, smooth" and r.targets["t01_smooth_or_features_a01_smooth"] == 1.0
    assert all(rec.image_path.is_file() for rec in recs)
    labels = pd.read_csv(shared_data("gz1_sdss/labels.csv"), nrows=40)
    # the derived 0/1 flags of labels.csv agree with the targets
    for rec, spiral, edge in zip(recs, labels["gz2_t04_spiral_yes"], labels["gz2_t02_edgeon_yes"]):
        assert (rec.targets["t04_spiral_a08_spiral"] == 1.0) == bool(spiral)
        assert (rec.targets["t02_edgeon_a04_yes"] == 1.0) == bool(edge)


def test_gz2_examples_catalog(shared_data):
    recs = read_catalog(shared_data("gz2_examples/labels.csv"))
    assert len(recs) == 86 and {r.label_kind for r in recs} == {"gz2_answer"}
    labels = pd.read_csv(shared_data("gz2_examples/labels.csv"))
    for rec, col in zip(recs, labels["gz2_column"]):
        assert rec.targets[col] == 1.0
        assert rec.image_path.is_file()
        assert rec.id == Path(rec.image_path).stem  # no id column: the file stem


def test_generic_answer_catalog(tmp_path):
    write_jpeg(tmp_path / "imgs" / "a.png")
    pd.DataFrame({"file": ["a.png", "b.png", ""],
                  "morph": ["dust lane; t03_bar_a06_bar", "t09_bulge_shape_a26_boxy", "ring galaxy"]}).to_csv(
        tmp_path / "cat.csv", index=False)
    recs = read_catalog(tmp_path / "cat.csv", images=tmp_path / "imgs", answer_column="morph",
                                source="mine")
    assert recs[0].caption == ("sdss, features or disk-shaped, bar-shaped structure in the center of galaxy, "
                               "dust lane")
    assert recs[0].image_path == tmp_path / "imgs" / "a.png" and recs[0].id == "a"
    assert recs[1].caption.endswith("with boxy edge-on bulge")
    assert recs[2].image_path is None and recs[2].id == "row2"
    with pytest.raises(GalaxySDDataError, match="neither a GZ2 answer column"):
        pd.DataFrame({"file": ["a.png"], "morph": ["blue blob"]}).to_csv(tmp_path / "bad.csv", index=False)
        read_catalog(tmp_path / "bad.csv", answer_column="morph")


def test_vote_fraction_catalog(tmp_path):
    write_jpeg(tmp_path / "g1.jpg")
    df = pd.DataFrame([{"objid": "1", "filename": "g1.jpg", **vote_row(RING)},
                       {"objid": "2", "filename": "g2.jpg", **vote_row(SPIRAL)}])
    df.to_csv(tmp_path / "cat.csv", index=False)
    recs = read_catalog(tmp_path / "cat.csv")
    assert [r.caption for r in recs] == [RING_CAPTION, SPIRAL_CAPTION]
    assert recs[0].label_kind == "votes" and recs[0].image_path == tmp_path / "g1.jpg"


def test_catalog_without_labels(tmp_path):
    pd.DataFrame({"filename": ["a.jpg"], "colour": ["red"]}).to_csv(tmp_path / "c.csv", index=False)
    with pytest.raises(GalaxySDDataError, match="cannot tell how the catalog is labelled"):
        read_catalog(tmp_path / "c.csv")
    with pytest.raises(GalaxySDFileError):
        read_catalog(tmp_path / "missing.csv")


# --------------------------------------------------------------------------- vote tables

def test_stripe82_vote_table(shared_data):
    recs = read_vote_table(shared_data("gz2_stripe82_votes/willett13_table5_stripe82.csv.gz"), limit=200)
    assert len(recs) == 200
    assert all(r.image_path is None for r in recs)
    assert recs[0].id == "8647474690312307154"
    assert recs[0].caption == "sdss, features or disk-shaped"
    assert recs[0].extra["ra"] == pytest.approx(309.3204) and "dec" in recs[0].extra
    assert recs[0].source == "willett13_table5_stripe82"
    frame = records_to_frame(recs)
    assert list(frame.columns[:4]) == ["id", "caption", "source", "image_path"]
    assert frame.shape == (200, 4 + 37)


def test_vote_table_missing_columns(tmp_path):
    pd.DataFrame({"objid": [1], "t01_smooth_or_features_a01_smooth_fraction": [0.5]}).to_csv(
        tmp_path / "v.csv", index=False)
    with pytest.raises(GalaxySDDataError, match="_debiased"):
        read_vote_table(tmp_path / "v.csv")
