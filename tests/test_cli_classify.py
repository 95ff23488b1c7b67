"""``galaxysd classify``: any catalog (labelled or not) and the GZ2 release layout -> id + one probability
column per head; bad or missing images are skipped and listed, never crash the run."""
from __future__ import annotations

import pandas as pd
import pytest
import torch

from galaxysd_core import cli
from galaxysd_core.models.classifier import ClassifierConfig, MorphologyClassifier

try:
    from test_readers import make_gz2_release, write_jpeg
except ImportError:  # tests imported as a package
    from tests.test_readers import make_gz2_release, write_jpeg

HEADS = ["t01_smooth_or_features_a01_smooth", "t03_bar_a06_bar", "t08_odd_feature_a38_dust_lane"]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("clf")
    MorphologyClassifier(ClassifierConfig(feature_columns=HEADS, output="dirichlet", channels=[4, 8],
                                          image_size=16)).save_pretrained(folder)
    return folder


@pytest.fixture
def unlabelled_catalog(tmp_path):
    write_jpeg(tmp_path / "imgs" / "a.jpg")
    write_jpeg(tmp_path / "imgs" / "b.jpg", color=(90, 120, 220))
    (tmp_path / "imgs" / "bad.jpg").write_text("not a jpeg")
    pd.DataFrame({"id": ["ga", "gb", "gbad", "gmissing"],
                  "filename": ["a.jpg", "b.jpg", "bad.jpg", "nope.jpg"]}).to_csv(tmp_path / "cat.csv", index=False)
    return tmp_path / "cat.csv"


def test_classify_catalog_without_labels_skips_bad_images(tiny_model, unlabelled_catalog, tmp_path, capsys):
    out = tmp_path / "out" / "classes.csv"
    rc = cli.main(["classify", "--model", str(tiny_model), "--catalog", str(unlabelled_catalog),
                   "--images-dir", str(tmp_path / "imgs"), "--out", str(out), "--quiet"])
    captured = capsys.readouterr()
    assert rc == 0
    table = pd.read_csv(out, dtype={"id": str})
    assert list(table.columns) == ["id", *HEADS]
    assert table["id"].tolist() == ["ga", "gb"]
    assert table[HEADS].ge(0).all().all() and table[HEADS].le(1).all().all()
    skipped = pd.read_csv(tmp_path / "out" / "classes.skipped.csv", dtype={"id": str})
    assert set(skipped["id"]) == {"gbad", "gmissing"} and skipped["reason"].str.len().gt(0).all()
    assert "bad.jpg" in captured.err and "nope.jpg" in captured.err
    assert "classified 2 images (2 skipped" in captured.out and "images/s" in captured.out


def test_classify_labelled_catalog_and_gz2_release(tiny_model, tmp_path, capsys):
    write_jpeg(tmp_path / "a.jpg")
    pd.DataFrame({"dr7objid": ["1"], "filename": ["a.jpg"], "gz1_class_name": ["elliptical"]}).to_csv(
        tmp_path / "labels.csv", index=False)
    out = tmp_path / "c.csv"
    assert cli.main(["classify", "--model", str(tiny_model), "--catalog", str(tmp_path / "labels.csv"),
                     "--out", str(out), "--quiet"]) == 0
    assert pd.read_csv(out, dtype={"id": str})["id"].tolist() == ["1"]
    root = make_gz2_release(tmp_path / "gz2")
    out2 = tmp_path / "gz2.csv"
    assert cli.main(["classify", "--model", str(tiny_model), "--source", "gz2", "--root", str(root),
                     "--out", str(out2), "--quiet"]) == 0
    assert len(pd.read_csv(out2)) == 2  # 4 galaxies: one without mapping, one with a missing file
    assert len(pd.read_csv(tmp_path / "gz2.skipped.csv")) == 2


def test_classify_errors_exit_2(tiny_model, tmp_path, capsys):
    assert cli.main(["classify", "--model", str(tiny_model), "--out", str(tmp_path / "x.csv")]) == 2
    assert "--catalog" in capsys.readouterr().err
    pd.DataFrame({"colour": ["red"]}).to_csv(tmp_path / "nocol.csv", index=False)
    assert cli.main(["classify", "--model", str(tiny_model), "--catalog", str(tmp_path / "nocol.csv"),
                     "--out", str(tmp_path / "x.csv")]) == 2
    assert "image-path column" in capsys.readouterr().err
    assert cli.main(["classify", "--model", str(tmp_path / "nomodel"), "--catalog", str(tmp_path / "nocol.csv"),
                     "--out", str(tmp_path / "x.csv")]) == 2
