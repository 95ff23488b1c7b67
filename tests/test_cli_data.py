"""``galaxysd data ...``: prepare, describe, download --list."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from galaxysd_core import cli
from galaxysd_core.data.cache import PreparedDataset

try:
    from test_readers import SPIRAL_CAPTION, make_gz2_release, write_jpeg
except ImportError:  # tests imported as a package
    from tests.test_readers import SPIRAL_CAPTION, make_gz2_release, write_jpeg

STRIPE82 = "gz2_stripe82_votes/willett13_table5_stripe82.csv.gz"


@pytest.fixture
def tiny_catalog(tmp_path):
    write_jpeg(tmp_path / "images" / "a.jpg")
    write_jpeg(tmp_path / "images" / "b.jpg", color=(90, 120, 220))
    (tmp_path / "images" / "c.jpg").write_text("not a jpeg")
    pd.DataFrame({"dr7objid": ["1", "2", "3", "4"],
                  "filename": ["images/a.jpg", "images/b.jpg", "images/c.jpg", "images/d.jpg"],
                  "gz1_class_name": ["elliptical", "edge_on", "merger", "spiral_clockwise"]}).to_csv(
        tmp_path / "labels.csv", index=False)
    return tmp_path / "labels.csv"


def test_prepare_catalog_reports_skips(tiny_catalog, tmp_path, capsys):
    out = tmp_path / "cache"
    rc = cli.main(["data", "prepare", "--source", "catalog", "--catalog", str(tiny_catalog), "--out", str(out),
                   "--resolution", "16", "--quiet"])
    text = capsys.readouterr().out
    assert rc == 0
    assert "prepared 2 of 4" in text and "skipped 2" in text and "c.jpg" in text and "d.jpg" in text
    ds = PreparedDataset.load(out)
    assert ds.images.shape == (2, 16, 16, 3)
    assert ds.captions == ["sdss, smooth", "sdss, features or disk-shaped, edge-on galaxy"]
    assert ds.config["crop_fraction"] == 0.35 and ds.config["source"]["kind"] == "catalog"


def test_prepare_flags(tiny_catalog, tmp_path, capsys):
    out = tmp_path / "cache"
    assert cli.main(["data", "prepare", "--source", "catalog", "--catalog", str(tiny_catalog), "--out", str(out),
                     "--resolution", "8", "--crop-fraction", "0.9", "--limit", "1", "--quiet"]) == 0
    ds = PreparedDataset.load(out)
    assert len(ds) == 1 and ds.config["crop_fraction"] == 0.9 and ds.config["source"]["limit"] == 1


def test_prepare_gz2_release(tmp_path, capsys):
    root = make_gz2_release(tmp_path / "gz2")
    out = tmp_path / "cache"
    assert cli.main(["data", "prepare", "--source", "gz2", "--root", str(root), "--out", str(out),
                     "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "prepared 2 of 4" in text and "no image for this galaxy" in text and "file not found" in text
    ds = PreparedDataset.load(out)
    assert ds.captions[0] == SPIRAL_CAPTION and ds.config["crop_fraction"] == 0.5
    assert ds.config["caption_settings"]["debiased"] is True
    assert cli.main(["data", "prepare", "--source", "gz2", "--root", str(root), "--out", str(out),
                     "--raw-fractions", "--quiet"]) == 0
    assert PreparedDataset.load(out).config["caption_settings"]["debiased"] is False


def test_data_dir_env_resolves_relative_paths(tiny_catalog, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GALAXYSD_DATA_DIR", str(tiny_catalog.parent))
    monkeypatch.chdir(tmp_path / "images")
    assert cli.main(["data", "prepare", "--source", "catalog", "--catalog", "labels.csv",
                     "--out", str(tmp_path / "c2"), "--resolution", "8", "--quiet"]) == 0


def test_errors_exit_2(tmp_path, capsys):
    assert cli.main(["data", "prepare", "--source", "catalog", "--out", str(tmp_path / "x")]) == 2
    assert "--catalog" in capsys.readouterr().err
    assert cli.main(["data", "describe", "--source", "votes", "--catalog", str(tmp_path / "missing.csv")]) == 2
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["data", "prepare", "--source", "nope", "--out", "x"])


def test_describe_votes(shared_data, tmp_path, capsys):
    out = tmp_path / "stats"
    rc = cli.main(["data", "describe", "--source", "votes", "--catalog", str(shared_data(STRIPE82)),
                   "--limit", "1000", "--top", "5", "--out", str(out)])
    text = capsys.readouterr().out
    assert rc == 0
    assert text.startswith("1000 galaxies") and "feature counts:" in text and "top 5 combinations:" in text
    features = pd.read_csv(out / "features.csv")
    combos = pd.read_csv(out / "combinations.csv")
    summary = json.loads((out / "summary.json").read_text())
    assert combos["count"].sum() == 1000 == summary["n_galaxies"]
    t01 = features.set_index("feature").loc[["smooth", "features or disk-shaped", "star or artifact"], "count"]
    assert 0 < t01.sum() <= 1000
    assert len(summary["top_combinations"]) == 5


def test_describe_catalog(shared_data, capsys):
    assert cli.main(["data", "describe", "--source", "catalog", "--catalog",
                     str(shared_data("gz2_examples/labels.csv"))]) == 0
    assert capsys.readouterr().out.startswith("86 galaxies")


def test_download_list(capsys):
    assert cli.main(["data", "download", "--list", "--base-url", "http://mirror.example/gz2"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and all("http://mirror.example/gz2/" in line for line in lines)


def test_describe_api_counts_and_membership():
    from galaxysd_core.schema.morphology_stats import NO_FEATURE, describe

    caps = ["sdss, smooth, completely round galaxy", "sdss, completely round galaxy, smooth", "sdss",
            "sdss, features or disk-shaped, spiral galaxy, dust lane"]
    st = describe(pd.DataFrame({"caption": caps}), top=2)
    assert st.n_galaxies == 4
    f = st.features.set_index("feature")["count"]
    assert f["smooth"] == 2 and f["dust lane"] == 1 and f["ring galaxy"] == 0 and len(f) == 31
    assert st.combinations.iloc[0]["combination"] == "smooth + completely round galaxy"
    assert st.combinations.iloc[0]["count"] == 2 and NO_FEATURE in set(st.combinations["combination"])
    m = st.membership()
    assert m["count"].sum() == 4 and bool(m.iloc[0]["smooth"]) and not bool(m.iloc[0]["dust lane"])
    assert len(st.top_combinations()) == 2


def test_prepare_gz2_cutouts_votes_reports_absent_tasks_and_fallbacks(shared_data, tmp_path, capsys):
    """A catalog with Hart et al. 2016 vote columns but no t10/t11 (the shared gz2_cutouts) is read as votes:
    the arm questions are 'not asked', NaN debiased values fall back to weighted fractions, both reported."""
    labels = shared_data("gz2_cutouts/labels.csv")
    out = tmp_path / "cutouts"
    rc = cli.main(["data", "prepare", "--source", "catalog", "--catalog", str(labels), "--out", str(out),
                   "--resolution", "32", "--crop-fraction", "1", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 0
    assert "not asked" in err and "t10_arms_winding, t11_arms_number" in err
    assert "replaced by the weighted fraction" in err
    cfg = json.loads((out / "prepare_config.json").read_text())
    report = cfg["caption_settings"]["report"]
    assert report["absent_tasks"] == ["t10_arms_winding", "t11_arms_number"]
    assert report["n_fallbacks"] > 0 and report["rows_with_fallback"] > 0
    ds = PreparedDataset.load(out)
    assert len(ds.index) == 7551 and ds.images.shape[1:] == (32, 32, 3)
    captions = ds.index["caption"]
    assert not captions.str.contains("spiral arm").any()  # never invented for an absent task
    assert captions.str.contains("spiral galaxy").sum() > 1000 and captions.str.contains("dust lane").sum() >= 10
    arms = [c for c in ds.index.columns if c.startswith(("t10_", "t11_"))]
    assert arms and ds.index[arms].isna().all().all()  # "not asked" is NaN, never 0 ("no")


def test_describe_gz2_cutouts_prints_feature_and_combination_counts(shared_data, capsys):
    labels = shared_data("gz2_cutouts/labels.csv")
    assert cli.main(["data", "describe", "--source", "catalog", "--catalog", str(labels)]) == 0
    text = capsys.readouterr().out
    assert "7551 galaxies" in text and "bar-shaped structure in the center of galaxy" in text
    assert "top 10 combinations" in text and "smooth + in-between round galaxy" in text


def test_crop_fraction_flag_accepts_auto_and_refuses_nonsense(tiny_catalog, tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli.main(["data", "prepare", "--source", "catalog", "--catalog", str(tiny_catalog), "--out",
                  str(tmp_path / "x"), "--crop-fraction", "1.5"])
    assert "crop fraction must be in (0, 1]" in capsys.readouterr().err
    rc = cli.main(["data", "prepare", "--source", "catalog", "--catalog", str(tiny_catalog), "--out",
                   str(tmp_path / "auto"), "--resolution", "16", "--crop-fraction", "auto", "--quiet"])
    assert rc == 0
    cfg = json.loads((tmp_path / "auto" / "prepare_config.json").read_text())
    assert cfg["source"]["scale_match"]["trials"] and 0 < cfg["crop_fraction"] <= 1


def test_prepare_workers_shards_resume_and_convert(tiny_catalog, tmp_path, capsys):
    out = tmp_path / "cache"
    args = ["data", "prepare", "--source", "catalog", "--catalog", str(tiny_catalog), "--out", str(out),
            "--resolution", "16", "--quiet", "--workers", "2", "--shard-size", "1"]
    assert cli.main(args) == 0
    assert "prepared 2 of 4" in capsys.readouterr().out
    ds = PreparedDataset.load(out)
    assert ds.is_sharded and len(ds.config["shards"]) == 2 and ds.config["shard_size"] == 1
    assert cli.main(args) == 0  # re-run: every shard kept, skip report unchanged
    text = capsys.readouterr().out
    assert "4 of 4 shards already done" in text and "skipped 2" in text and "c.jpg" in text
    with pytest.raises(SystemExit):
        cli.main(args[:-4] + ["--workers", "0"])
    assert "must be >= 1" in capsys.readouterr().err
    # a cache of the earlier format: converted in place
    try:
        from test_dataset_cache import write_format1_cache
    except ImportError:
        from tests.test_dataset_cache import write_format1_cache
    write_format1_cache(tmp_path / "old", ds)
    assert not PreparedDataset.load(tmp_path / "old").is_sharded
    assert cli.main(["data", "convert", str(tmp_path / "old"), str(out)]) == 0
    text = capsys.readouterr().out
    assert "old: 2 images, converted to 1 shards" in text and "cache: 2 images, already sharded" in text
    assert PreparedDataset.load(tmp_path / "old").is_sharded
