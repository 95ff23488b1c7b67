"""Bad input beyond what is tested elsewhere (issue 23, part 4), driven by hypothesis.

Catalogs (CSV bytes with missing columns, wrong types, NaN / infinite / out-of-range ra and dec,
duplicate and empty ids, non-UTF-8 bytes, empty files, a header only, files over the upload limit)
and image files (truncated JPEG / PNG, 1x1, 10k x 10k headers, CMYK, 16-bit, animated, grey, RGBA,
floating point) go through ``galaxysd classify``, ``galaxysd detg scan`` (``cli.main`` in-process)
and the readers of the Candidates page (:func:`~galaxysd_core.science.candidates.read_candidates`
for the uploaded catalog, :func:`~galaxysd_core.io.uploads.load_uploaded_image` for its images).

What every test asserts: nothing escapes but :class:`~galaxysd_core.errors.GalaxySDError` (the CLI
turns it into exit status 2 and one ``error:`` line); a refused file is named in the message; the
good rows are processed (the output has exactly their ids) and every other row is listed as
skipped with a reason naming its line; no message quotes a cell of an uploaded catalog or bytes of
an uploaded image. The policy the oracles below encode (README, "Bad input"):

* the first row of an id wins; later rows with that id are skipped (classify, scan); on the
  Candidates page every row of a shared id is skipped (verdicts are stored per id);
* scan: an ra/dec that is not a sky position (text, infinite, out of range) leaves the position
  unknown (a warning names the line); Candidates: such a row is skipped; NaN or empty = unknown;
* images: CMYK, palette, grey, alpha and 16-bit images are converted (16-bit scaled by its bit
  depth), animated images give their first frame; truncated, tiny (< 8 px a side), floating-point
  and oversized images (refused from the header, never decoded) are skipped with the reason.
"""
from __future__ import annotations

import contextlib
import csv
import io
import math
import struct
import time
import zlib
from collections import Counter
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image

from galaxysd_core import cli
from galaxysd_core.data.decode import load_image
from galaxysd_core.errors import GalaxySDDataError, GalaxySDError, GalaxySDValueError, ImageRejected
from galaxysd_core.io.uploads import load_uploaded_image
from galaxysd_core.models.classifier import ClassifierConfig, MorphologyClassifier
from galaxysd_core.science import candidates as cands
from galaxysd_core.science.detg_components import ARTIFACT_COLUMN
from galaxysd_core.science.vote_truth import DUST_LANE_COLUMN, SMOOTH_COLUMN

torch.set_num_threads(1)

#: Small, reproducible fuzzing: the whole file runs in well under a minute on one core.
FUZZ = settings(max_examples=30, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                       HealthCheck.data_too_large])
#: Planted in bad cells and image bytes: no message may ever contain it.
CANARY = "canary-5e1f0b"
#: pandas reads these cells as NaN (a subset of its default na_values).
NA_CELLS = {"", "nan", "NaN", "NA", "N/A", "null", "NULL", "None", "<NA>", "-nan", "n/a"}
HEADS = ["t01_smooth_or_features_a01_smooth", "t03_bar_a06_bar", DUST_LANE_COLUMN]


# ------------------------------------------------------------------------------------------- images
def _galaxy(size: int = 40, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] - size / 2
    g = np.exp(-0.5 * ((x / (size / 6)) ** 2 + (y / (size / 9)) ** 2))[..., None] * np.array([1.0, 0.8, 0.6])
    return np.clip(230 * g + rng.normal(10, 3, g.shape), 0, 255).astype(np.uint8)


def _png_claiming(w: int, h: int) -> bytes:
    """A PNG whose header declares ``w x h`` RGB pixels, with almost no data (a decompression bomb's header)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def _jpeg_claiming(w: int, h: int) -> bytes:
    """A small baseline JPEG whose SOF0 marker is patched to declare ``w x h`` pixels."""
    buf = io.BytesIO()
    Image.fromarray(_galaxy(16)).save(buf, format="JPEG")
    data = bytearray(buf.getvalue())
    i = data.index(b"\xff\xc0")
    data[i + 5:i + 9] = struct.pack(">HH", h, w)
    return bytes(data)


def _png_with_text(arr: np.ndarray) -> bytes:
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("comment", CANARY * 4)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def _write_images(folder: Path) -> dict:
    """Every image kind under ``folder``: name -> expected skip-reason fragment (None: decoded)."""
    g = _galaxy()
    frames = [Image.fromarray(np.roll(g, 3 * i, axis=1)) for i in range(3)]

    def save(name, im, **kw):
        im.save(folder / name, **kw)

    save("rgb.png", Image.fromarray(g))
    save("rgb.jpg", Image.fromarray(g), quality=90)
    save("grey.png", Image.fromarray(g).convert("L"))
    save("rgba.png", Image.fromarray(g).convert("RGBA"))
    save("palette.png", Image.fromarray(g).convert("P"))
    save("cmyk.jpg", Image.fromarray(g).convert("CMYK"))
    save("sixteen.png", Image.fromarray(g[..., 0].astype(np.uint16) * 257))  # mode I;16, full 16-bit range
    frames[0].save(folder / "anim.gif", save_all=True, append_images=frames[1:], duration=50, loop=0)
    frames[0].save(folder / "anim.png", save_all=True, append_images=frames[1:], duration=50)
    save("comma, ü 1.png", Image.fromarray(g))  # a name that needs quoting in a CSV
    jpg = (folder / "rgb.jpg").read_bytes()
    (folder / "trunc.jpg").write_bytes(jpg[: len(jpg) // 2])
    png = _png_with_text(g)
    (folder / "trunc.png").write_bytes(png[: len(png) // 2])
    save("tiny.png", Image.fromarray(g[:1, :1]))
    (folder / "huge.png").write_bytes(_png_claiming(10_000, 10_000))
    (folder / "huge.jpg").write_bytes(_jpeg_claiming(10_000, 10_000))
    (folder / "big.png").write_bytes(_png_claiming(9_000, 9_000))  # under Pillow's limit, over ours
    save("float.tif", Image.fromarray(g[..., 0].astype(np.float32) / 255.0))
    (folder / "empty.png").write_bytes(b"")
    (folder / "text.png").write_text(f"{CANARY}\n" * 20)
    (folder / "folder.png").mkdir()
    return {"rgb.png": None, "rgb.jpg": None, "grey.png": None, "rgba.png": None, "palette.png": None,
            "cmyk.jpg": None, "sixteen.png": None, "anim.gif": None, "anim.png": None, "comma, ü 1.png": None,
            "trunc.jpg": "truncated", "trunc.png": "truncated", "tiny.png": "1x1", "huge.png": "decompression bomb",
            "huge.jpg": "decompression bomb", "big.png": "9000x9000", "float.tif": "floating-point",
            "empty.png": "empty", "text.png": "not an image", "folder.png": "folder", "missing.png": "not found"}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Image folder with every kind, a tiny classifier, a tiny D-ETG detector and its judge."""
    root = tmp_path_factory.mktemp("fuzz")
    (root / "imgs").mkdir()
    kinds = _write_images(root / "imgs")
    torch.manual_seed(0)
    MorphologyClassifier(ClassifierConfig(feature_columns=HEADS, output="dirichlet", channels=[4, 8],
                                          image_size=16)).save_pretrained(root / "clf")
    MorphologyClassifier(ClassifierConfig(feature_columns=[DUST_LANE_COLUMN], channels=[4, 8],
                                          image_size=16)).save_pretrained(root / "det")
    MorphologyClassifier(ClassifierConfig(feature_columns=[SMOOTH_COLUMN, ARTIFACT_COLUMN], output="softmax",
                                          channels=[4, 8], image_size=16)).save_pretrained(root / "judge")
    return {"root": root, "imgs": root / "imgs", "kinds": kinds}


def _run(argv):
    """``cli.main(argv)`` in-process: (exit status, stdout, stderr); only GalaxySDError may be handled inside."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = cli.main([str(a) for a in argv])
    return rc, out.getvalue(), err.getvalue()


def _classify(world, catalog: Path, out: Path, *extra):
    return _run(["classify", "--model", world["root"] / "clf", "--catalog", catalog, "--images-dir", world["imgs"],
                 "--out", out, "--crop-fraction", "1", "--quiet", *extra])


def _scan(world, catalog: Path, out: Path, *extra):
    return _run(["detg", "scan", "--detector", world["root"] / "det", "--classifier", world["root"] / "judge",
                 "--catalog", catalog, "--images-dir", world["imgs"], "--out", out, "--workers", "0",
                 "--crop-fraction", "1", "--quiet", *extra])


def _fresh(world, name: str = "case") -> Path:
    """A new empty folder for one hypothesis example."""
    base = world["root"] / "cases"
    base.mkdir(exist_ok=True)
    n = sum(1 for _ in base.iterdir())
    folder = base / f"{name}{n}"
    folder.mkdir()
    return folder


# ------------------------------------------------------------------------------------------- catalogs
_ids = st.one_of(st.builds(lambda n: f"g{n}", st.integers(0, 5)),  # few values: duplicates are common
                 st.sampled_from(["", "  ", "0042", "1e5", "True", "ü-galaxy", "a,b", 'q"uote', "x" * 300]))
_bad_numbers = st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr),
                         st.sampled_from(["", "abc", CANARY, "1e999", "-inf", "400", "-95", "360", "90", "nan"]))
#: Cells of ra / dec / score: mostly valid values, often something else.
_ra_cells = st.one_of(st.floats(0, 359.999).map(lambda v: f"{v:.6f}"), st.floats(0, 359.999).map(repr), _bad_numbers)
_dec_cells = st.one_of(st.floats(-90, 90).map(lambda v: f"{v:.6f}"), st.floats(-90, 90).map(repr), _bad_numbers)
_scores = st.one_of(st.floats(0, 1).map(repr), st.floats(-1e6, 1e6).map(repr), _bad_numbers,
                    st.sampled_from(["0.5", " 7", "1e-3"]))
_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"), max_size=8)


@st.composite
def image_catalogs(draw, kinds):
    """Rows of an image catalog (id, image, ra, dec, other), its header layout and an optional non-UTF-8 row."""
    images = st.sampled_from(sorted(kinds) + ["", "123"])
    rows = draw(st.lists(st.fixed_dictionaries({"id": _ids, "image": images, "ra": _ra_cells, "dec": _dec_cells,
                                                "other": st.one_of(_text, st.just(CANARY))}), max_size=12))
    layout = {"id": draw(st.sampled_from(["id", "objid", "dr7objid", None])),
              "image": draw(st.sampled_from(["filename", "filename", "image_path", "file", "path", None])),
              "radec": draw(st.booleans()), "order": draw(st.permutations(range(5)))}
    corrupt = rows and draw(st.integers(0, 4)) == 2  # about one catalog in five has a non-UTF-8 row
    bad_row = draw(st.integers(0, len(rows) - 1)) if corrupt else None
    return rows, layout, bad_row


def _catalog_bytes(rows, layout, bad_row):
    """CSV bytes of a catalog; (bytes, physical line of the non-UTF-8 byte or None)."""
    names = [("id", layout["id"]), ("image", layout["image"]), ("ra", "ra" if layout["radec"] else None),
             ("dec", "dec" if layout["radec"] else None), ("other", "colour")]
    cols = [names[i] for i in layout["order"] if names[i][1] is not None]
    lines = []
    for values in [[c for _, c in cols]] + [[r[k] for k, _ in cols] for r in rows]:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerow(values)
        lines.append(buf.getvalue().encode("utf-8"))
    bad_line = None
    if bad_row is not None:
        lines[bad_row + 1] = b"\xff\xfe" + lines[bad_row + 1]
        bad_line = bad_row + 2
    return b"".join(lines), bad_line


def _expected_image_rows(rows, layout, kinds):
    """Oracle of classify and scan: (ids of the output in row order, Counter of skipped ids, reasons by id)."""
    out, skipped, seen = [], Counter(), set()
    for i, r in enumerate(rows):
        cell = r["id"].strip() if layout["id"] else ""
        rid = cell or (Path(r["image"]).stem if r["image"] else f"row{i}")
        if rid in seen:
            skipped[rid] += 1
            continue
        seen.add(rid)
        if not r["image"] or r["image"] == "123" or kinds[r["image"]] is not None:
            skipped[rid] += 1
        else:
            out.append(rid)
    return out, skipped


def _coordinate(cell: str, ok):
    """The oracle's view of one coordinate cell: ``("ok", value)``, ``("unknown", None)`` (NaN, empty),
    ``("text", None)`` (not a number) or ``("range", value)`` (infinite or ``ok(value)`` false)."""
    if cell.strip() in NA_CELLS:
        return "unknown", None
    try:
        v = float(cell)
    except ValueError:
        return "text", None
    return ("ok", v) if math.isfinite(v) and ok(v) else ("range", v)


def _ra_scan(cell):  # the scan's positions: 0 <= ra < 360 (as sky_positions)
    return _coordinate(cell, lambda v: 0 <= v < 360)


def _dec(cell):
    return _coordinate(cell, lambda v: -90 <= v <= 90)


def _assert_refused(rc, out, err, catalog: Optional[Path] = None):
    """Exit status 2, nothing on stdout, one ``error:`` line last on stderr (after any ``warning:`` lines)
    naming ``catalog``; never a traceback."""
    lines = err.strip().splitlines()
    assert rc == 2 and not out.strip() and lines, (rc, out, err)
    assert lines[-1].startswith("error: ") and all(x.startswith("warning: ") for x in lines[:-1]), err
    assert catalog is None or catalog.name in lines[-1], err


@FUZZ
@given(data=st.data())
def test_classify_survives_any_catalog(world, data):
    rows, layout, bad_row = data.draw(image_catalogs(world["kinds"]))
    folder = _fresh(world, "classify")
    raw, bad_line = _catalog_bytes(rows, layout, bad_row)
    (folder / "cat.csv").write_bytes(raw)
    rc, out, err = _classify(world, folder / "cat.csv", folder / "classes.csv")
    if layout["image"] is None:
        event("refused: no image column")
        _assert_refused(rc, out, err, folder / "cat.csv")
        assert "image-path column" in err
        return
    if bad_line is not None:
        event("refused: not UTF-8")
        _assert_refused(rc, out, err, folder / "cat.csv")
        assert "not UTF-8" in err and f"line {bad_line} " in err
        return
    expected, skipped = _expected_image_rows(rows, layout, world["kinds"])
    if not expected:
        event("refused: no usable row")
        _assert_refused(rc, out, err)
        assert "no galaxy to classify" in err or "no readable image" in err
        return
    event(f"classified, {'some' if skipped else 'no'} rows skipped")
    assert rc == 0, err
    table = pd.read_csv(folder / "classes.csv", dtype={"id": str}, keep_default_na=False)
    assert table["id"].tolist() == expected
    assert table[HEADS].apply(np.isfinite).all().all()
    left = pd.read_csv(folder / "classes.skipped.csv", dtype={"id": str}, keep_default_na=False)
    assert Counter(left["id"]) == skipped
    assert left["reason"].str.len().gt(0).all()
    for reason in left["reason"]:
        assert CANARY not in reason
        if "duplicate id" in reason:
            assert "cat.csv line " in reason and "first on line" in reason
    assert f"classified {len(expected)} images ({sum(skipped.values())} skipped" in out


@FUZZ
@given(data=st.data())
def test_detg_scan_survives_any_catalog(world, data):
    rows, layout, bad_row = data.draw(image_catalogs(world["kinds"]))
    folder = _fresh(world, "scan")
    raw, bad_line = _catalog_bytes(rows, layout, bad_row)
    (folder / "cat.csv").write_bytes(raw)
    rc, out, err = _scan(world, folder / "cat.csv", folder / "d.csv")
    if layout["image"] is None:
        event("refused: no image column")
        _assert_refused(rc, out, err, folder / "cat.csv")
        return
    if bad_line is not None:
        event("refused: not UTF-8")
        _assert_refused(rc, out, err, folder / "cat.csv")
        assert f"line {bad_line} " in err
        return
    expected, skipped = _expected_image_rows(rows, layout, world["kinds"])
    first_rows = {}  # id -> the row kept for it (the first with that id)
    for i, r in enumerate(rows):
        cell = r["id"].strip() if layout["id"] else ""
        first_rows.setdefault(cell or (Path(r["image"]).stem if r["image"] else f"row{i}"), r)
    if not any(r["image"] and r["image"] != "123" and r["image"] in world["kinds"]
               for rid, r in first_rows.items()):
        event("refused: no usable row")
        _assert_refused(rc, out, err, folder / "cat.csv")
        assert "lists no image to scan" in err
        return
    if not expected:  # rows with images, none readable: refused like classify, naming the image files
        event("refused: no readable image")
        _assert_refused(rc, out, err)
        assert "no readable image among" in err
        return
    event(f"scanned, {len(expected)} rows out, {'some' if skipped else 'no'} rows skipped")
    assert rc == 0, err
    table = pd.read_csv(folder / "d.csv", dtype={"id": str}, keep_default_na=False, na_values=[""])
    assert sorted(table["id"]) == sorted(expected) and table["id"].is_unique
    left = pd.read_csv(folder / "d.skipped.csv", dtype={"id": str}, keep_default_na=False)
    assert Counter(left["id"]) == skipped and left["reason"].str.len().gt(0).all()
    assert not any(CANARY in r for r in left["reason"])
    assert table["ra"].dropna().between(0, 360).all() and table["dec"].dropna().between(-90, 90).all()
    by = table.set_index("id")
    for rid in expected:  # a valid catalog position is kept, anything else is unknown (no link)
        r = first_rows[rid]
        (ra_state, ra), (dec_state, dec) = ((_ra_scan(r["ra"]), _dec(r["dec"])) if layout["radec"]
                                            else (("unknown", None), ("unknown", None)))
        if ra_state == dec_state == "ok":
            assert by.loc[rid, "ra"] == pytest.approx(ra, rel=1e-6, abs=1e-6)
            assert by.loc[rid, "dec"] == pytest.approx(dec, rel=1e-6, abs=1e-6)
        else:
            assert math.isnan(by.loc[rid, "ra"]) and by.loc[rid, "position_from"] != "catalog"
        if {ra_state, dec_state} & {"text", "range"}:
            assert "not sky positions in degrees" in err
    assert cands.read_candidates(folder / "d.ecsv", images_dir=world["imgs"]).skipped == []  # the page opens it


# ------------------------------------------------------------------------------------------- candidates
@st.composite
def candidate_catalogs(draw):
    rows = draw(st.lists(st.fixed_dictionaries({
        "id": _ids, "score": _scores, "ra": _ra_cells, "dec": _dec_cells, "image_path": st.sampled_from(["rgb.png", "missing.png", "", "../x.png",
                                                                        "/etc/passwd", CANARY + ".png"]),
        "note": st.one_of(_text, st.just(CANARY))}), max_size=12))
    names = {"id": draw(st.sampled_from(["id", "ID", "candidate_id"])),
             "score": draw(st.sampled_from(["score", "prob", "Probability"])),
             "image_path": draw(st.sampled_from(["image_path", "filename", "file"]))}
    radec = draw(st.booleans())
    drop = draw(st.sampled_from(["id", "score", "image_path"])) if draw(st.integers(0, 5)) == 2 else None
    corrupt = rows and draw(st.integers(0, 4)) == 2
    bad_row = draw(st.integers(0, len(rows) - 1)) if corrupt else None
    as_file = draw(st.booleans())
    return rows, names, radec, drop, bad_row, as_file


def _candidate_bytes(rows, names, radec, drop, bad_row):
    keys = [k for k in ("id", "score", "image_path") if k != drop] + (["ra", "dec"] if radec else []) + ["note"]
    header = [names.get(k, k) for k in keys]
    lines = []
    for values in [header] + [[r[k] for k in keys] for r in rows]:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerow(values)
        lines.append(buf.getvalue().encode("utf-8"))
    if bad_row is not None:
        lines[bad_row + 1] = lines[bad_row + 1].replace(b",", b"\xe9,", 1)  # latin-1 "é" inside the first cell
    return b"".join(lines)


def _expected_candidates(rows, names, radec):
    """Oracle of read_candidates: (kept ids, {row: reason fragment} of the rows left out)."""
    ids = [r["id"].strip() for r in rows]  # ids are text in any spelling of the column ("0042" stays)
    counts = Counter(i for i in ids if i)
    kept, left = [], {}
    for i, r in enumerate(rows):
        line = f"line {i + 2}"
        try:
            score_ok = r["score"].strip() not in NA_CELLS and math.isfinite(float(r["score"]))
        except ValueError:
            score_ok = False
        coords = ([("ra", _coordinate(r["ra"], lambda v: 0 <= v <= 360)), ("dec", _dec(r["dec"]))]
                  if radec else [])
        bad = [f"{name} is not a number" if state == "text" else f"{name} {v:g} is outside"
               for name, (state, v) in coords if state in ("text", "range")]
        if not ids[i]:
            left[line] = "empty id"
        elif counts[ids[i]] > 1:
            left[line] = "duplicate id"
        elif not score_ok:
            left[line] = "score is not a finite number"
        elif bad:
            left[line] = bad[0]
        else:
            kept.append(ids[i])
    return kept, left


class _Upload(io.BytesIO):
    """What Streamlit's file_uploader gives: a binary file with a name and a size."""

    def __init__(self, data: bytes, name: str):
        super().__init__(data)
        self.name, self.size = name, len(data)


@settings(FUZZ, max_examples=60)
@given(case=candidate_catalogs())
def test_candidates_upload_survives_any_catalog(world, case):
    rows, names, radec, drop, bad_row, as_file = case
    data = _candidate_bytes(rows, names, radec, drop, bad_row)
    source = _Upload(data, "my upload.csv") if as_file else data
    label = "my upload.csv" if as_file else "my upload"
    try:
        cat = cands.read_candidates(source, name="my upload", images_dir=world["imgs"])
    except GalaxySDDataError as exc:
        msg = str(exc)
        event("refused: " + ("not UTF-8" if "UTF-8" in msg else "no column" if "lacks" in msg else
                             "no rows" if "no rows" in msg else "no usable row" if "usable" in msg else msg))
        assert label in msg and CANARY not in msg, msg
        if bad_row is not None:
            assert f"line {bad_row + 2} has bytes that are not UTF-8" in msg
        elif drop:
            assert f"lacks column(s) ['{drop}']" in msg
        elif not rows:
            assert "has no rows" in msg
        else:
            kept, left = _expected_candidates(rows, names, radec)
            assert not kept and "no usable row" in msg and f"all {len(rows)} rows" in msg, msg
        return
    assert drop is None and bad_row is None
    kept, left = _expected_candidates(rows, names, radec)
    event(f"read, {'some' if left else 'no'} rows skipped")
    assert sorted(cat.table["id"]) == sorted(kept)
    assert cat.table["score"].map(math.isfinite).all() and cat.table["id"].is_unique
    assert cat.table["ra"].dropna().between(0, 360).all() and cat.table["dec"].dropna().between(-90, 90).all()
    assert {s["row"]: s["reason"] for s in cat.skipped}.keys() == left.keys()
    for s in cat.skipped:
        assert left[s["row"]] in s["reason"] and CANARY not in s["reason"], (s, left)
    assert not cat.table.loc[cat.table["image_refused"], "image_exists"].any()  # refused paths are never opened


def test_candidates_file_level_problems_name_the_file(tmp_path):
    header = b"id,score,image_path\n"
    for data, match in [(b"", "is empty"), (b"   \n\n", "is empty"), (header, "has no rows"),
                        (header + b"a,0.5,x.png\nb,0.4,y.png\n\xff,0.3,z.png\n", "line 4 has bytes that are not UTF-8"),
                        (bytes(range(256)) * 8, "not UTF-8"), (header + b"a,1,x.png,extra\n", "more fields"),
                        (header + b'"a,1,x.png\n', "not a readable CSV"),
                        (f"# %ECSV 1.0\n# ---\n{CANARY}\n".encode(), "not a valid ECSV")]:
        with pytest.raises(GalaxySDDataError, match=match) as info:
            cands.read_candidates(data, name="upload-7")
        assert "upload-7" in str(info.value) and CANARY not in str(info.value)


def test_a_huge_catalog_is_refused_by_its_size_before_it_is_read(tmp_path):
    from galaxysd_core.studio.path_policy import MAX_CATALOG_UPLOAD_BYTES, PathPolicy

    big = tmp_path / "huge.csv"
    with open(big, "wb") as fh:  # a sparse file: 60 MB on paper, nothing on disk
        fh.write(b"id,score,image_path\n")
        fh.truncate(cands.MAX_CATALOG_BYTES + 10 * 2**20)
    with pytest.raises(GalaxySDDataError, match=r"huge.csv.*MB"):
        cands.read_candidates(big)

    class NeverRead(io.RawIOBase):
        name, size = "huge upload.csv", 10**10

        def read(self, *args):  # pragma: no cover - the point is that it is never called
            raise AssertionError("a file over the limit must not be read")

    with pytest.raises(GalaxySDDataError, match=r"huge upload.csv.*10000.0 MB"):
        cands.read_candidates(NeverRead())
    with pytest.raises(GalaxySDValueError, match="MiB"):  # the page's own check on the upload's size
        PathPolicy().check_upload_size(MAX_CATALOG_UPLOAD_BYTES + 1)
    with pytest.raises(GalaxySDDataError, match=r"'my upload'.*larger than 1 MB"):
        cands.read_candidates(b"id,score,image_path\n" + b"a" * 2_000_000, name="my upload", max_bytes=10**6)


# ------------------------------------------------------------------------------------------- images
def test_every_image_kind_through_classify_and_scan(world, tmp_path):
    kinds = world["kinds"]
    rows = [{"id": f"k{i}", "filename": name} for i, name in enumerate(sorted(kinds))]
    pd.DataFrame(rows).to_csv(tmp_path / "kinds.csv", index=False)
    ok = {r["id"] for r in rows if kinds[r["filename"]] is None}
    rc, out, err = _classify(world, tmp_path / "kinds.csv", tmp_path / "c.csv")
    assert rc == 0, err
    assert set(pd.read_csv(tmp_path / "c.csv")["id"]) == ok
    left = pd.read_csv(tmp_path / "c.skipped.csv").set_index("id")
    rc2, out2, err2 = _scan(world, tmp_path / "kinds.csv", tmp_path / "d.csv")
    assert rc2 == 0, err2
    assert set(pd.read_csv(tmp_path / "d.csv")["id"]) == ok
    left2 = pd.read_csv(tmp_path / "d.skipped.csv").set_index("id")
    for r in rows:
        want = kinds[r["filename"]]
        if want is None:
            continue
        for table, stderr in ((left, err), (left2, err2)):
            assert want in table.loc[r["id"], "reason"], (r, table.loc[r["id"], "reason"])
            assert r["filename"] in stderr  # the file is named
            assert CANARY not in table.loc[r["id"], "reason"]


def test_image_policies_16_bit_animated_bombs(world):
    imgs = world["imgs"]
    eight = load_image(imgs / "rgb.png", 16, 1.0)
    sixteen = load_image(imgs / "sixteen.png", 16, 1.0)  # scaled by its bit depth, not clipped to white
    assert np.abs(sixteen.astype(int) - eight[..., :1].astype(int)).max() <= 2
    first = Image.open(imgs / "anim.png")
    first.seek(0)
    first.convert("RGB").save(imgs / "first_frame.png")
    assert np.array_equal(load_image(imgs / "anim.png", 16, 1.0), load_image(imgs / "first_frame.png", 16, 1.0))
    for name, match in [("huge.png", "decompression bomb"), ("huge.jpg", "decompression bomb"),
                        ("big.png", "9000x9000"), ("tiny.png", "1x1")]:
        start = time.perf_counter()  # refused from the header: decoding 10k x 10k would take seconds and 300 MB
        with pytest.raises(ImageRejected, match=match):
            load_image(imgs / name, 64, 0.5)
        with pytest.raises(GalaxySDValueError, match=r"pixels") as info:
            load_uploaded_image(imgs / name)
        assert name in str(info.value) and time.perf_counter() - start < 2.0
    with pytest.raises(GalaxySDValueError, match="5000x5000"):  # the upload limit is lower (16 Mpx)
        load_uploaded_image(_png_claiming(5000, 5000))


def test_candidate_thumbnails_of_every_image_kind(world):
    """The Candidates page shows images through load_uploaded_image: decoded or one clear message."""
    for name, want in world["kinds"].items():
        path = world["imgs"] / name
        try:
            arr = load_uploaded_image(path)
        except GalaxySDValueError as exc:
            assert name in str(exc) or str(path) in str(exc), exc
            assert CANARY not in str(exc)
            continue
        assert want is None, (name, want)  # only the kinds classify decodes are shown
        assert arr.dtype == np.uint8 and arr.ndim == 3 and arr.shape[2] == 3


_SEED_IMAGES = {}


def _seed_image(fmt: str) -> bytes:
    if fmt not in _SEED_IMAGES:
        g = _galaxy(24, seed=1)
        if fmt == "PNG":
            _SEED_IMAGES[fmt] = _png_with_text(g)  # the canary sits in a text chunk of the file
        else:
            buf = io.BytesIO()
            Image.fromarray(g).save(buf, format=fmt)
            _SEED_IMAGES[fmt] = buf.getvalue()
    return _SEED_IMAGES[fmt]


@st.composite
def corrupted_images(draw):
    data = bytearray(_seed_image(draw(st.sampled_from(["PNG", "JPEG", "GIF", "TIFF", "BMP", "WEBP"]))))
    how = draw(st.sampled_from(["truncate", "flip", "header"]))
    if how == "truncate":
        data = data[: draw(st.integers(0, len(data) - 1))]
    else:
        top = len(data) if how == "flip" else min(len(data), 48)
        for pos, value in draw(st.lists(st.tuples(st.integers(0, top - 1), st.integers(0, 255)), min_size=1,
                                        max_size=8)):
            data[pos] = value
    return bytes(data)


@settings(FUZZ, max_examples=60)
@given(data=corrupted_images())
def test_corrupt_image_bytes_never_crash_a_decoder(world, data):
    path = _fresh(world, "img") / "galaxy.img"
    path.write_bytes(data)
    try:
        arr = load_image(path, 16, 0.5)
        assert arr.shape == (16, 16, 3) and arr.dtype == np.uint8
    except ImageRejected as exc:
        assert str(exc)
    try:
        arr = load_uploaded_image(_Upload(data, "galaxy.img"))
        assert arr.dtype == np.uint8 and arr.shape[2] == 3
    except GalaxySDValueError as exc:
        assert "galaxy.img" in str(exc) and CANARY not in str(exc)


# ------------------------------------------------------------------------------------------- the rest
@pytest.mark.parametrize("content, match", [
    (b"", "is empty"), (b"id,filename\n", None), (b"id,filename\ng1,rgb.png\ng\xff2,grey.png\n", "line 3 "),
    (b"id,colour\ng1,red\n", "image-path column"), (b"id,filename\ng1,rgb.png,a,b\n", "more fields"),
    (b'id,filename\n"g1,rgb.png\n', "cannot read")])
def test_unreadable_catalogs_are_refused_naming_the_file(world, tmp_path, content, match):
    (tmp_path / "bad.csv").write_bytes(content)
    for runner, out in ((_classify, "c.csv"), (_scan, "d.csv")):
        rc, stdout, err = runner(world, tmp_path / "bad.csv", tmp_path / out)
        _assert_refused(rc, stdout, err, tmp_path / "bad.csv")
        if match:
            assert match in err, err
        else:  # a header only
            assert "no galaxy to classify" in err or "lists no image to scan" in err, err
    with pytest.raises(GalaxySDError):
        cands.read_candidates(tmp_path / "bad.csv")


def test_a_large_catalog_is_processed_with_the_skips_summarised(world, tmp_path):
    n = 5000
    ids = [f"g{i}" for i in range(n)]
    files = ["rgb.png" if i % 1000 == 0 else f"missing{i}.png" for i in range(n)]
    pd.DataFrame({"id": ids + ["g0"], "filename": files + ["rgb.png"]}).to_csv(tmp_path / "big.csv", index=False)
    rc, out, err = _classify(world, tmp_path / "big.csv", tmp_path / "c.csv")
    assert rc == 0, err
    assert pd.read_csv(tmp_path / "c.csv")["id"].tolist() == [f"g{i}" for i in range(0, n, 1000)]
    left = pd.read_csv(tmp_path / "c.skipped.csv")
    assert len(left) == n - 5 + 1 and "big.csv line 5002: duplicate id 'g0'" in left["reason"].iloc[0]
    assert f"... {n - 5 + 1 - 20} more" in err and err.count("\nskipped ") <= 20


def test_scan_of_several_catalogs_keeps_ids_unique(world, tmp_path):
    pd.DataFrame({"id": ["a", "b"], "filename": ["rgb.png", "grey.png"], "ra": [10.0, 500.0],
                  "dec": [5.0, 5.0]}).to_csv(tmp_path / "one.csv", index=False)
    pd.DataFrame({"id": ["b", "c", "d"], "filename": ["rgba.png", "cmyk.jpg", ""]}).to_csv(tmp_path / "two.csv",
                                                                                          index=False)
    rc, out, err = _run(["detg", "scan", "--detector", world["root"] / "det", "--classifier", world["root"] / "judge",
                         "--catalog", tmp_path / "one.csv", tmp_path / "two.csv", "--images-dir", world["imgs"],
                         "--out", tmp_path / "d.csv", "--workers", "0", "--quiet"])  # --crop-fraction auto
    assert rc == 0, err
    table = pd.read_csv(tmp_path / "d.csv").set_index("id")
    assert sorted(table.index) == ["a", "b", "c"] and table.loc["b", "image_path"].endswith("grey.png")
    assert table.loc["a", "ra"] == 10.0 and math.isnan(table.loc["b", "ra"])
    assert "one.csv line 3: ra 500 is outside [0, 360) degrees" in err
    left = pd.read_csv(tmp_path / "d.skipped.csv")
    assert list(left["id"]) == ["b", "d"]
    assert "two.csv line 2: id 'b' is already on one.csv line 3" in left["reason"].iloc[0]
    assert "two.csv line 4: no image path" in left["reason"].iloc[1]
    assert "2 catalog rows left out" in out
