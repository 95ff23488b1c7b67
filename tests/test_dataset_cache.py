"""Prepared cache: safe decoding, crop + resize, format, skip report, load/concat."""
from __future__ import annotations

import json
import math
import struct
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from galaxysd_core.data import cache as dc
from galaxysd_core.data.cache_convert import convert_to_shards
from galaxysd_core.data import decode
from galaxysd_core.errors import GalaxySDDataError, GalaxySDFileError, GalaxySDValueError, ImageRejected
from galaxysd_core.data.catalog import read_catalog
from galaxysd_core.data.records import GalaxyRecord


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def write_bomb_png(path: Path, side: int = 200_000) -> None:
    """A ~100-byte PNG declaring side x side pixels (a decompression bomb header)."""
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat)
                     + _png_chunk(b"IEND", b""))


def write_target(path: Path, size=(120, 120), fmt="JPEG") -> None:
    """Red frame with a white centre square of 20 % of the side."""
    img = np.zeros((size[1], size[0], 3), np.uint8)
    img[..., 0] = 220
    cx, cy, h = size[0] // 2, size[1] // 2, min(size) // 10
    img[cy - h: cy + h, cx - h: cx + h] = 255
    Image.fromarray(img).save(path, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))


@pytest.fixture
def bad_files(tmp_path):
    good = tmp_path / "good.jpg"
    write_target(good)
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    text = tmp_path / "text.jpg"
    text.write_text("this is not an image\n")
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    bomb = tmp_path / "bomb.png"
    write_bomb_png(bomb)
    return {"good": good, "truncated": truncated, "text": text, "empty": empty, "bomb": bomb,
            "missing": tmp_path / "missing.jpg", "folder": tmp_path}


# --------------------------------------------------------------------------- load_image

def test_centre_crop_and_resize(tmp_path):
    p = tmp_path / "t.png"
    write_target(p, fmt="PNG")
    centre = decode.load_image(p, 16, crop_fraction=0.2)
    assert centre.shape == (16, 16, 3) and centre.dtype == np.uint8
    assert centre[4:12, 4:12].min() > 240  # only the white square
    whole = decode.load_image(p, 16, crop_fraction=1.0)
    assert whole[0, 0, 0] > 200 and whole[0, 0, 1] < 30  # red border visible


def test_jpeg_draft_keeps_detail(tmp_path):
    p = tmp_path / "big.jpg"
    write_target(p, size=(800, 800))
    arr = decode.load_image(p, 32, crop_fraction=0.2)
    assert arr[8:24, 8:24].min() > 230


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "CMYK", "I;16"])
def test_modes_become_rgb(tmp_path, mode):
    p = tmp_path / f"m.{'jpg' if mode == 'CMYK' else 'png'}"
    Image.new(mode, (40, 30)).save(p)
    assert decode.load_image(p, 8, 0.5).shape == (8, 8, 3)


@pytest.mark.parametrize("kind, reason", [("truncated", "truncated"), ("text", "not an image"),
                                          ("empty", "empty file"), ("bomb", "decompression bomb"),
                                          ("missing", "not found"), ("folder", "folder")])
def test_bad_files_rejected(bad_files, kind, reason):
    with pytest.raises(ImageRejected, match=reason):
        decode.load_image(bad_files[kind], 16, 0.5)


def test_pillow_bomb_error_also_caught(bad_files):
    # with our own limit lifted, Pillow's DecompressionBombError must still be turned into a skip
    with pytest.raises(ImageRejected, match="decompression bomb"):
        decode.load_image(bad_files["bomb"], 16, 0.5, max_pixels=10**12)


@pytest.mark.parametrize("kwargs", [{"resolution": 0}, {"resolution": 10_000}, {"crop_fraction": 0.0},
                                    {"crop_fraction": 1.5}])
def test_invalid_settings(bad_files, kwargs):
    args = {"resolution": 16, "crop_fraction": 0.5, **kwargs}
    with pytest.raises(GalaxySDValueError):
        decode.load_image(bad_files["good"], **args)


# --------------------------------------------------------------------------- prepare + load

def _rec(i, path, caption="sdss, smooth", source="test"):
    targets = {c: math.nan for c in dc.ANSWER_COLUMNS}
    targets["t01_smooth_or_features_a01_smooth"] = 1.0
    targets["t01_smooth_or_features_a02_features_or_disk"] = 0.0
    return GalaxyRecord(id=f"00{i}", image_path=path, caption=caption, targets=targets, source=source)


def test_prepare_skips_bad_keeps_good(tmp_path, bad_files):
    good2 = tmp_path / "good2.png"
    write_target(good2, fmt="PNG")
    order = ["good", "truncated", "text", "empty", "bomb", "missing", "folder"]
    recs = [_rec(i, bad_files[k]) for i, k in enumerate(order)] + [_rec(7, good2), _rec(8, None)]
    out = tmp_path / "cache"
    rep = dc.prepare_dataset(recs, out, resolution=16, crop_fraction=0.5, show_progress=False)
    assert (rep.seen, rep.written, rep.n_skipped) == (9, 2, 7)
    assert rep.out_dir == out
    assert {Path(s.path).name for s in rep.skipped if s.path} == {
        "truncated.jpg", "text.jpg", "empty.jpg", "bomb.png", "missing.jpg", bad_files["folder"].name}
    assert "no image" in [s for s in rep.skipped if s.id == "008"][0].reason
    assert "skipped 7" in rep.summary()

    assert sorted(p.name for p in out.iterdir()) == ["index.csv", "prepare_config.json", "shards", "skipped.csv"]
    assert sorted(p.name for p in (out / "shards").iterdir()) == ["images-00000.json", "images-00000.npy"]
    skipped = pd.read_csv(out / "skipped.csv")
    assert list(skipped.columns[:2]) == ["path", "reason"] and len(skipped) == 7
    index = pd.read_csv(out / "index.csv")
    assert tuple(index.columns) == dc.INDEX_COLUMNS and len(index.columns) == 4 + 37
    cfg = json.loads((out / "prepare_config.json").read_text())
    assert cfg["resolution"] == 16 and cfg["crop_fraction"] == 0.5
    assert cfg["counts"] == {"seen": 9, "written": 2, "skipped": 7}
    assert {"numpy", "pillow", "safetensors", "python"} <= set(cfg["versions"]) and cfg["created_utc"]

    ds = dc.PreparedDataset.load(out)
    assert len(ds) == 2 and ds.images.shape == (2, 16, 16, 3) and ds.images.dtype == np.uint8
    assert ds.index["id"].tolist() == ["000", "007"]  # ids stay strings (leading zeros kept)
    assert ds.index["image_path"].tolist() == [str(bad_files["good"]), str(good2)]
    t = ds.targets()
    assert t.shape == (2, 37) and t[0, 0] == 1.0 and t[0, 1] == 0.0 and np.isnan(t[0, 5])
    assert ds.images[0, 8, 8].min() > 200  # the white centre survived
    img, row = ds[1]
    assert img.shape == (16, 16, 3) and row["id"] == "007"


def test_all_bad_raises(tmp_path, bad_files):
    with pytest.raises(GalaxySDDataError, match="no usable image"):
        dc.prepare_dataset([_rec(0, bad_files["text"])], tmp_path / "c", 16, 0.5, show_progress=False)
    assert not (tmp_path / "c" / "index.csv").exists()


def test_rewrite_is_atomic_and_clean(tmp_path, bad_files):
    out = tmp_path / "c"
    dc.prepare_dataset([_rec(0, bad_files["good"])], out, 16, 0.5, show_progress=False)
    dc.prepare_dataset([_rec(0, bad_files["good"]), _rec(1, bad_files["good"])], out, 16, 0.5,
                       show_progress=False)
    assert len(dc.PreparedDataset.load(out)) == 2
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_concat(tmp_path, bad_files):
    a = dc.prepare_dataset([_rec(0, bad_files["good"], source="a")], tmp_path / "a", 16, 0.5, show_progress=False)
    b = dc.prepare_dataset([_rec(1, bad_files["good"], "sdss, merger", "b")] * 2, tmp_path / "b", 16, 0.5,
                           show_progress=False)
    both = dc.concat([dc.PreparedDataset.load(a.out_dir), dc.PreparedDataset.load(b.out_dir)])
    assert len(both) == 3 and both.index["source"].tolist() == ["a", "b", "b"]
    assert both.captions[-1] == "sdss, merger" and len(both.config["concatenated_from"]) == 2
    c = dc.prepare_dataset([_rec(0, bad_files["good"])], tmp_path / "c", 8, 0.5, show_progress=False)
    with pytest.raises(GalaxySDValueError, match="resolution"):
        dc.PreparedDataset.concat([dc.PreparedDataset.load(a.out_dir), dc.PreparedDataset.load(c.out_dir)])
    with pytest.raises(GalaxySDValueError):
        dc.PreparedDataset.concat([])


def test_load_errors(tmp_path):
    with pytest.raises(GalaxySDFileError, match="not a prepared cache"):
        dc.PreparedDataset.load(tmp_path)


def test_default_crop_fraction():
    assert decode.default_crop_fraction("gz1_class") == decode.GZ1_CROP_FRACTION == 0.35
    assert decode.default_crop_fraction(source="gz1_sdss") == 0.35
    assert decode.default_crop_fraction("votes", "gz2_hart16") == decode.GZ2_CROP_FRACTION == 0.5


def test_prepare_real_gz1(tmp_path, shared_data):
    recs = read_catalog(shared_data("gz1_sdss/labels.csv"), limit=12)
    rep = dc.prepare_dataset(recs, tmp_path / "gz1", resolution=32, show_progress=False)
    ds = dc.PreparedDataset.load(rep.out_dir)
    assert rep.written == 12 and ds.images.shape == (12, 32, 32, 3)
    assert ds.config["crop_fraction"] == 0.35  # chosen from the GZ1 labels
    # the galaxy is centred: the centre is brighter than the corners
    centre = ds.images[:, 12:20, 12:20].mean()
    corners = ds.images[:, :4, :4].mean()
    assert centre > corners + 20


# --------------------------------------------------------------------------- shards, resume, workers

def _five(tmp_path, bad_files, caption="sdss, smooth"):
    paths = []
    for i in range(4):
        p = tmp_path / f"src{i}.png"
        write_target(p, size=(100 + 10 * i, 100 + 10 * i), fmt="PNG")
        paths.append(p)
    paths.insert(2, bad_files["text"])  # one skipped record in shard 1
    return [_rec(i, p, caption) for i, p in enumerate(paths)]


def test_sharded_cache_is_lazy_and_rerun_skips_finished_shards(tmp_path, bad_files):
    recs = _five(tmp_path, bad_files)
    out = tmp_path / "c"
    rep = dc.prepare_dataset(recs, out, 16, 0.5, show_progress=False, shard_size=2)
    assert (rep.shards, rep.shards_reused, rep.written, rep.n_skipped) == (3, 0, 4, 1)
    ds = dc.PreparedDataset.load(out)
    assert ds.is_sharded and ds.images.shape == (4, 16, 16, 3)
    assert [s["n"] for s in ds.config["shards"]] == [2, 1, 1] and ds.config["format_version"] == 2
    first = np.asarray(ds.images)
    assert ds.index["id"].tolist() == ["000", "001", "003", "004"]
    # a crash after shard 0 and 2: the marker of shard 1 is gone, its images are decoded again
    (out / "shards" / "images-00001.json").unlink()
    stamp = (out / "shards" / "images-00000.npy").stat().st_mtime_ns
    again = dc.prepare_dataset(recs, out, 16, 0.5, show_progress=False, shard_size=2)
    assert (again.shards, again.shards_reused) == (3, 2) and "2 of 3 shards already done" in again.summary()
    assert (out / "shards" / "images-00000.npy").stat().st_mtime_ns == stamp, "a finished shard is not rewritten"
    assert np.array_equal(np.asarray(dc.PreparedDataset.load(out).images), first)
    assert [s.id for s in again.skipped] == ["002"]
    # other captions: images reused, the index rewritten
    relabel = dc.prepare_dataset(_five(tmp_path, bad_files, "sdss, merger"), out, 16, 0.5, show_progress=False,
                                 shard_size=2)
    assert relabel.shards_reused == 3 and set(dc.PreparedDataset.load(out).captions) == {"sdss, merger"}
    # another resolution or --no-resume: everything decoded again; fewer shards: stale ones removed
    assert dc.prepare_dataset(recs, out, 16, 0.5, show_progress=False, shard_size=2, resume=False).shards_reused == 0
    assert dc.prepare_dataset(recs, out, 8, 0.5, show_progress=False, shard_size=2).shards_reused == 0
    dc.prepare_dataset(recs[:2], out, 8, 0.5, show_progress=False, shard_size=2)
    assert sorted(p.name for p in (out / "shards").iterdir()) == ["images-00000.json", "images-00000.npy"]


def test_workers_give_the_same_cache(tmp_path, bad_files):
    recs = _five(tmp_path, bad_files)
    one = dc.prepare_dataset(recs, tmp_path / "one", 16, 0.5, show_progress=False, shard_size=2)
    two = dc.prepare_dataset(recs, tmp_path / "two", 16, 0.5, show_progress=False, shard_size=2, workers=2)
    a, b = dc.PreparedDataset.load(one.out_dir), dc.PreparedDataset.load(two.out_dir)
    assert np.array_equal(np.asarray(a.images), np.asarray(b.images)) and a.index.equals(b.index)
    assert [s.id for s in two.skipped] == ["002"] and b.config["workers"] == 2
    with pytest.raises(GalaxySDValueError, match="workers"):
        dc.prepare_dataset(recs, tmp_path / "x", 16, 0.5, show_progress=False, workers=0)


def write_format1_cache(folder: Path, ds: "dc.PreparedDataset") -> None:
    """The cache as the earlier single-file format (images.safetensors, format_version 1) wrote it."""
    from safetensors.numpy import save_file

    folder.mkdir(parents=True)
    save_file({"images": np.asarray(ds.images)}, str(folder / "images.safetensors"))
    ds.index.to_csv(folder / "index.csv", index=False)
    cfg = {k: v for k, v in ds.config.items() if k not in ("shards", "shard_size", "workers", "shards_reused")}
    (folder / "prepare_config.json").write_text(json.dumps({**cfg, "format_version": 1}))


def test_format1_cache_still_loads_and_converts_to_shards(tmp_path, bad_files):
    rep = dc.prepare_dataset(_five(tmp_path, bad_files), tmp_path / "new", 16, 0.5, show_progress=False)
    new = dc.PreparedDataset.load(rep.out_dir)
    old_dir = tmp_path / "old"
    write_format1_cache(old_dir, new)
    old = dc.PreparedDataset.load(old_dir)
    assert not old.is_sharded and isinstance(old.images, np.ndarray)
    assert np.array_equal(old.images, np.asarray(new.images)) and old.index.equals(new.index)
    mixed = dc.concat([old, new])  # a format-1 and a sharded cache together stay lazy
    assert mixed.is_sharded and np.array_equal(mixed.images[[0, 4]], old.images[[0, 0]])
    convert_to_shards(old_dir, shard_size=3)
    converted = dc.PreparedDataset.load(old_dir)
    assert converted.is_sharded and [s["n"] for s in converted.config["shards"]] == [3, 1]
    assert np.array_equal(np.asarray(converted.images), old.images) and converted.index.equals(old.index)
    assert not (old_dir / "images.safetensors").exists() and converted.config["converted_from_format"] == 1


def test_newer_format_and_missing_shard_are_refused(tmp_path, bad_files):
    rep = dc.prepare_dataset(_five(tmp_path, bad_files), tmp_path / "c", 16, 0.5, show_progress=False, shard_size=2)
    cfg_path = rep.out_dir / "prepare_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg_path.write_text(json.dumps({**cfg, "format_version": 99}))
    with pytest.raises(GalaxySDDataError, match="newer than this galaxysd"):
        dc.PreparedDataset.load(rep.out_dir)
    cfg_path.write_text(json.dumps(cfg))
    (rep.out_dir / "shards" / "images-00001.npy").unlink()
    with pytest.raises(GalaxySDFileError, match="finished shards are kept"):
        dc.PreparedDataset.load(rep.out_dir)
