"""`galaxysd detg scan` and the D-ETG catalog (cli.detg, science.detg_catalog, science.sky_positions): a toy catalog
with one broken image, positions from IAU-style names, links, training exclusion, provenance."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from galaxysd_core.cli import main as cli_main
from galaxysd_core.models.classifier import ClassifierConfig, MorphologyClassifier
from galaxysd_core.science.candidates import read_candidates
from galaxysd_core.science.detg_components import ARTIFACT_COLUMN
from galaxysd_core.science.sky_positions import add_positions, position_from_name
from galaxysd_core.science.vote_truth import DUST_LANE_COLUMN, SMOOTH_COLUMN

torch.set_num_threads(1)
NAMES = ["J165028.64+384910.0", "J130612.44-030441.3", "J000635.73-003415.9", "588848901537202306",
         "J101937.71+024550.8"]


def test_positions_from_names():
    ra, dec = position_from_name("J165028.64+384910.0")
    assert ra == pytest.approx(15 * (16 + 50 / 60 + 28.64 / 3600)) and dec == pytest.approx(38 + 49 / 60 + 10.0 / 3600)
    ra, dec = position_from_name("SDSS J130612.44-030441.3")
    assert ra == pytest.approx(196.551833, abs=1e-6) and dec == pytest.approx(-3.078139, abs=1e-6)
    assert position_from_name("588848901537202306") is None and position_from_name("J246060.00+000000.0") is None
    t = add_positions(pd.DataFrame({"id": ["J165028.64+384910.0", "x1", "J130612.44-030441.3"],
                                    "ra": [np.nan, 10.0, 196.552], "dec": [np.nan, -5.0, -3.07813]}))
    assert list(t["position_from"]) == ["name", "catalog", "catalog"]  # the catalog's ra/dec wins
    assert t["skyserver_url"].str.contains("skyserver.sdss.org").all() and t["legacy_url"].str.contains("legacysurvey").all()
    assert add_positions(pd.DataFrame({"id": ["587722952767439450"]}))["skyserver_url"].iloc[0] == ""


@pytest.fixture
def toy(tmp_path):
    """A catalog of 5 galaxy JPEGs + one broken file, a tiny detector (one training id) and a tiny classifier."""
    rng = np.random.default_rng(0)
    (tmp_path / "imgs").mkdir()
    y, x = np.mgrid[0:48, 0:48] - 24
    rows = []
    for i, name in enumerate(NAMES):
        g = np.exp(-0.5 * ((x / (4 + i)) ** 2 + (y / 6) ** 2))[..., None] * np.array([1.0, 0.8, 0.6])
        arr = np.clip(230 * g + rng.normal(8, 3, g.shape), 0, 255).astype(np.uint8)
        Image.fromarray(arr).save(tmp_path / "imgs" / f"{name}.jpg", quality=92)
        rows.append({"id": name, "filename": f"imgs/{name}.jpg"})
    (tmp_path / "imgs" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    rows.append({"id": "J120000.00+100000.0", "filename": "imgs/broken.jpg"})
    pd.DataFrame(rows).to_csv(tmp_path / "catalog.csv", index=False)
    torch.manual_seed(0)
    det = MorphologyClassifier(ClassifierConfig(feature_columns=[DUST_LANE_COLUMN], channels=[4, 8], image_size=32))
    det.save_pretrained(tmp_path / "det", extra_config={"arm": "real", "seed": 0, "heldout": [
        {"split": "test", "truth": "dust_lane", "roc_auc": 0.5}]})
    pd.DataFrame({"id": [NAMES[2]], "source": ["gz2_cutouts"], "split": ["train"]}).to_csv(
        tmp_path / "det" / "training_ids.csv", index=False)
    MorphologyClassifier(ClassifierConfig(feature_columns=[SMOOTH_COLUMN, ARTIFACT_COLUMN, "t08_odd_feature_a24_merger"],
                                          output="softmax",
                                          channels=[4, 8], image_size=16)).save_pretrained(tmp_path / "clf")
    return tmp_path


def test_cli_scan_ranks_skips_and_links(toy, capsys, monkeypatch):
    monkeypatch.setenv("GALAXYSD_DATA_DIR", str(toy))
    out = toy / "out" / "cands.csv"
    rc = cli_main(["detg", "scan", "--detector", str(toy / "det"), "--catalog", str(toy / "catalog.csv"),
                   "--classifier", str(toy / "clf"), "--out", str(out), "--crop-fraction", "1", "--workers", "0",
                   "--batch-size", "2", "--quiet"])
    assert rc == 0
    err = capsys.readouterr()
    assert "skipped imgs/broken.jpg" in err.err and "1 skipped" in err.out and "1 training galaxies left out" in err.out
    cat = pd.read_csv(out, dtype={"id": str})
    assert list(cat["id"]) == sorted(cat["id"], key=lambda i: -cat.set_index("id").loc[i, "score"])
    assert set(cat["id"]) == set(NAMES) - {NAMES[2]}  # broken and training galaxies are left out
    assert list(cat["rank"]) == [1, 2, 3, 4]
    for _, grp in cat.groupby("source"):  # ranks and percentiles within each image source
        assert list(grp["rank_in_source"]) == list(range(1, len(grp) + 1))
        assert grp["percentile_in_source"].iloc[0] == 100.0 and grp["percentile_in_source"].is_monotonic_decreasing
    np.testing.assert_allclose(cat["score"], cat["p_dust"] * cat["p_early"], rtol=1e-5)
    # early type = no spiral arms and not an artifact (the tiny classifier predicts no t04: p_spiral 0)
    np.testing.assert_allclose(cat["p_early"], (1 - cat["p_spiral"]) * (1 - cat["p_artifact"]), rtol=1e-5)
    assert (cat["p_spiral"] == 0).all() and (cat["score_from"] == "detector").all()
    np.testing.assert_allclose(cat["p_dust"], cat["p_dust_cnn"])  # no ranker.json: the detector alone
    assert cat["dust_vote_pred"].between(0, 1).all()
    by = cat.set_index("id")
    assert by.loc[NAMES[0], "ra"] == pytest.approx(252.619333, abs=1e-5) and by.loc[NAMES[0], "position_from"] == "name"
    assert "ra=252.619333" in by.loc[NAMES[0], "skyserver_url"] and "dec=38.819444" in by.loc[NAMES[0], "legacy_url"]
    assert np.isnan(by.loc[NAMES[3], "ra"]) and pd.isna(by.loc[NAMES[3], "skyserver_url"])  # an SDSS objid
    assert all(p.startswith("imgs/") for p in cat["image_path"])  # relative to the data folder
    skipped = pd.read_csv(toy / "out" / "cands.skipped.csv")
    assert list(skipped["id"]) == ["J120000.00+100000.0"] and skipped["reason"].iloc[0]
    prov = json.loads((toy / "out" / "cands.provenance.json").read_text())
    assert prov["detector"]["arm"] == "real" and prov["n_skipped"] == 1 and prov["n_training_excluded"] == 1
    assert prov["classifier"]["fingerprint"] and "torch" in prov["versions"] and "p_early" in prov["score"]
    ecsv = read_candidates(toy / "out" / "cands.ecsv")  # the Candidates page reads it (images under the data dir)
    assert len(ecsv.table) == 4 and ecsv.table["image_exists"].all()

    rc = cli_main(["detg", "scan", "--detector", str(toy / "det"), "--catalog", str(toy / "catalog.csv"),
                   "--classifier", str(toy / "clf"), "--out", str(toy / "all.csv"), "--crop-fraction", "1",
                   "--workers", "0", "--include-training", "--top", "2", "--quiet"])
    all_ = pd.read_csv(toy / "all.csv", dtype={"id": str})
    assert rc == 0 and len(all_) == 2 and "used_in_training" in all_.columns


def test_out_of_fold_scores_and_the_blended_dust_component(toy, monkeypatch):
    """A cross-validated detector folder: its training galaxies stay in the catalog with their
    out-of-fold score, and ranker.json's ``cnn+v2`` averages the detector with classifier v2's dust votes."""
    from galaxysd_core.science.detg_catalog import records_from_catalogs, scan_catalog

    det = toy / "det"
    pd.DataFrame({"id": [NAMES[2]], "fold": [3], "p_dust_cnn_oof": [0.875]}).to_csv(det / "oof_scores.csv", index=False)
    (det / "ranker.json").write_text(json.dumps({"dust": "cnn+v2", "views": 1}))
    rec = records_from_catalogs([toy / "catalog.csv"], crop_fraction=1.0)
    judge = MorphologyClassifier.from_pretrained(toy / "clf")
    cat = scan_catalog(rec, det, judge=judge, progress=False, scan_kwargs={"workers": 0, "batch_size": 2}).table
    by = cat.set_index("id")
    assert NAMES[2] in by.index and by.loc[NAMES[2], "score_from"] == "out_of_fold"
    assert by.loc[NAMES[2], "p_dust_cnn"] == pytest.approx(0.875) and bool(by.loc[NAMES[2], "used_in_training"])
    np.testing.assert_allclose(cat["p_dust"], 0.5 * (cat["p_dust_cnn"] + cat["dust_vote_pred"]), rtol=1e-6)
    np.testing.assert_allclose(cat["score"], cat["p_dust"] * (1 - cat["p_spiral"]) * (1 - cat["p_artifact"]), rtol=1e-6)
    (det / "ranker.json").write_text(json.dumps({"dust": "v2_dust_votes"}))
    cat = scan_catalog(rec, det, judge=judge, progress=False, scan_kwargs={"workers": 0, "batch_size": 2}).table
    np.testing.assert_allclose(cat["p_dust"], cat["dust_vote_pred"])
    (det / "ranker.json").write_text(json.dumps({"dust": "magic"}))
    from galaxysd_core.errors import GalaxySDFileError

    with pytest.raises(GalaxySDFileError, match="unknown dust component"):
        scan_catalog(rec, det, judge=judge, progress=False, scan_kwargs={"workers": 0})


def test_source_shares_compare_the_top_with_the_scan():
    from galaxysd_core.science.detg_catalog import source_shares

    t = pd.DataFrame({"id": [f"g{i}" for i in range(10)], "score": np.arange(10)[::-1] / 10.0,
                      "source": ["a"] * 4 + ["b"] * 6})
    sh = source_shares(t, top=4).set_index("source")
    assert sh.loc["a", "n_top"] == 4 and sh.loc["b", "n_top"] == 0
    assert sh.loc["a", "share_scanned"] == pytest.approx(0.4) and sh.loc["a", "ratio"] == pytest.approx(2.5)


def test_cli_scan_errors(toy, capsys):
    assert cli_main(["detg", "scan", "--detector", str(toy / "nope"), "--catalog", str(toy / "catalog.csv"),
                     "--out", str(toy / "x.csv"), "--crop-fraction", "1", "--quiet"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert cli_main(["detg", "scan", "--detector", str(toy / "det"), "--catalog", str(toy / "catalog.csv"),
                     "--out", str(toy / "x.csv"), "--top", "0"]) == 2
