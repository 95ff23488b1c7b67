"""PNG / FITS provenance, settings read-back, zip and upload validation (galaxysd_core.io)."""
from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from galaxysd_core.io.a1111 import format_a1111_parameters, parse_a1111_parameters
from galaxysd_core.io.archives import zip_images
from galaxysd_core.io.fits import fits_bytes, read_fits, save_fits
from galaxysd_core.io.png import png_bytes, read_png_parameters, save_png
from galaxysd_core.io.provenance import provenance
from galaxysd_core.io.uploads import load_uploaded_image
from galaxysd_core.errors import GalaxySDValueError

PARAMS = dict(negative_prompt="merger", num_images_per_prompt=4, num_inference_steps=20, guidance_scale=6.5,
              scheduler="euler_a", eta=0.0, height=32, width=32, strength=None, init_image=False,
              model="/models/galaxysd-mini", model_name="galaxysd-mini")
PROMPT = "sdss, features or disk-shaped, spiral galaxy, {dust lane:1.5}"


@pytest.fixture
def image() -> np.ndarray:
    rng = np.random.default_rng(0)
    return (rng.random((32, 32, 3)) * 255).astype(np.uint8)


def _png_with_text(img: np.ndarray, **texts: str) -> bytes:
    meta = PngImagePlugin.PngInfo()
    for k, v in texts.items():
        meta.add_text(k, v)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG", pnginfo=meta)
    return buf.getvalue()


def test_png_has_a1111_parameters_chunk(image):
    data = png_bytes(image, PROMPT, 7, PARAMS)
    text = Image.open(io.BytesIO(data)).text["parameters"]
    lines = text.split("\n")
    assert lines[0] == PROMPT
    assert lines[1] == "Negative prompt: merger"
    assert lines[2].startswith("Steps: 20, Sampler: Euler a, CFG scale: 6.5, Seed: 7, Size: 32x32, "
                               "Model: galaxysd-mini")


def test_png_pixels_and_json_round_trip(image, tmp_path):
    path = save_png(tmp_path / "a" / "g.png", image, PROMPT, 7, PARAMS)
    assert np.array_equal(np.asarray(Image.open(path)), image)
    info = read_png_parameters(path)
    assert info["source"] == "galaxysd"
    assert info["prompt"] == PROMPT and info["seed"] == 7
    for key, value in PARAMS.items():
        assert info[key] == value
    assert info["software"].startswith("galaxysd_core")


def test_read_parameters_from_a1111_only_png(image):
    text = ('sdss, smooth, {completely round galaxy:1.3}\nNegative prompt: merger\n'
            'Steps: 35, Sampler: DPM++ 2M, CFG scale: 7, Seed: 123, Size: 64x64, Model: "my, model", '
            'Denoising strength: 0.55')
    info = read_png_parameters(_png_with_text(image, parameters=text))
    assert info["source"] == "a1111"
    assert info["prompt"] == "sdss, smooth, {completely round galaxy:1.3}"
    assert info["negative_prompt"] == "merger"
    assert (info["num_inference_steps"], info["scheduler"], info["guidance_scale"], info["seed"]) == (35, "dpmpp", 7.0, 123)
    assert (info["width"], info["height"], info["model_name"], info["strength"]) == (64, 64, "my, model", 0.55)


def test_a1111_format_parse_inverse():
    info = provenance(PROMPT, 3, PARAMS)
    back = parse_a1111_parameters(format_a1111_parameters(info))
    assert back["prompt"] == PROMPT and back["seed"] == 3 and back["scheduler"] == "euler_a"
    assert back["num_inference_steps"] == 20 and back["guidance_scale"] == 6.5


def test_unknown_sampler_is_kept_but_not_mapped(image):
    info = read_png_parameters(_png_with_text(image, parameters="sdss, smooth\nSteps: 5, Sampler: UniPC"))
    assert info["sampler"] == "UniPC" and "scheduler" not in info


@pytest.mark.parametrize("payload,match", [
    (b"GIF89a" + b"\0" * 40, "not a PNG"),
    (b"", "empty"),
    (b"\x89PNG\r\n\x1a\n" + b"garbage" * 5, "corrupt"),
])
def test_read_png_parameters_rejects_bad_files(payload, match):
    with pytest.raises(GalaxySDValueError, match=match):
        read_png_parameters(payload)


def test_read_png_parameters_rejects_png_without_settings(image):
    with pytest.raises(GalaxySDValueError, match="no generation settings"):
        read_png_parameters(_png_with_text(image))


def test_read_png_parameters_size_limit(image):
    data = png_bytes(image, PROMPT, 1, PARAMS)
    with pytest.raises(GalaxySDValueError, match="larger than|MB"):
        read_png_parameters(io.BytesIO(data), max_bytes=100)


def test_fits_cube_and_header(image):
    from astropy.io import fits

    long_prompt = ", ".join(["sdss", "features or disk-shaped", "spiral galaxy", "{tightly wound spiral arms:1.5}",
                             "2 spiral arms", "obvious bulge prominence", "{dust lane:1.8}", "ring galaxy"])
    assert len(long_prompt) > 68  # longer than one FITS card value
    data = fits_bytes(image, long_prompt, 42, PARAMS)
    with fits.open(io.BytesIO(data)) as hdul:
        hdr, cube = hdul[0].header, hdul[0].data
        raw_cards = hdr.tostring(sep="\n")
    assert cube.shape == (3, 32, 32) and cube.dtype.kind == "f"
    assert float(cube.min()) >= 0.0 and float(cube.max()) <= 1.0
    # FITS row 1 is the bottom row: the cube is the image flipped vertically
    assert np.allclose(cube[0, 0] * 255, image[-1, :, 0], atol=1e-3)
    assert hdr["PROMPT"] == long_prompt and "CONTINUE" in raw_cards
    assert (hdr["SEED"], hdr["STEPS"], hdr["GUIDANCE"], hdr["SAMPLER"], hdr["MODEL"]) == (
        42, 20, 6.5, "euler_a", "galaxysd-mini")
    assert hdr["SOFTWARE"].startswith("galaxysd_core") and hdr["DATE"]
    assert json.loads(hdr["GSDPARAM"])["negative_prompt"] == "merger"


def test_fits_round_trip_uint8(image, tmp_path):
    path = save_fits(tmp_path / "g.fits", image, PROMPT, 5, PARAMS, dtype="uint8")
    back, info = read_fits(path)
    assert back.dtype == np.uint8 and np.array_equal(back, image)
    assert info["prompt"] == PROMPT and info["seed"] == 5


def test_fits_rejects_bad_dtype(image):
    with pytest.raises(GalaxySDValueError):
        fits_bytes(image, PROMPT, 1, PARAMS, dtype="int64")


def test_zip_images(image):
    items = [dict(image=image, prompt=PROMPT, seed=s, parameters=PARAMS) for s in (3, 4)]
    data = zip_images(items)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = sorted(zf.namelist())
        assert names == ["galaxysd_000_seed3.fits", "galaxysd_000_seed3.png", "galaxysd_001_seed4.fits",
                         "galaxysd_001_seed4.png", "manifest.json"]
        manifest = json.loads(zf.read("manifest.json"))
        assert [m["seed"] for m in manifest] == [3, 4]
        assert read_png_parameters(zf.read("galaxysd_001_seed4.png"))["seed"] == 4
    with pytest.raises(GalaxySDValueError, match="no images"):
        zip_images([])


def test_load_uploaded_image_accepts_png_and_jpeg(image):
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG")
    arr = load_uploaded_image(buf.getvalue())
    assert arr.shape == (32, 32, 3) and arr.dtype == np.uint8
    rgba = np.dstack([image, np.full((32, 32), 255, np.uint8)])
    buf = io.BytesIO()
    Image.fromarray(rgba).save(buf, format="PNG")
    assert np.array_equal(load_uploaded_image(buf.getvalue()), image)


def test_load_uploaded_image_rejections(image):
    with pytest.raises(GalaxySDValueError, match="not an image"):
        load_uploaded_image(b"hello world, not an image")
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    with pytest.raises(GalaxySDValueError, match="pixels"):
        load_uploaded_image(buf.getvalue(), max_pixels=100)
    with pytest.raises(GalaxySDValueError, match="MB"):
        load_uploaded_image(buf.getvalue(), max_bytes=10)
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="GIF")
    with pytest.raises(GalaxySDValueError, match="GIF"):
        load_uploaded_image(buf.getvalue())
    tiny = io.BytesIO()
    Image.fromarray(image[:4, :4]).save(tiny, format="PNG")
    with pytest.raises(GalaxySDValueError, match="4x4"):
        load_uploaded_image(tiny.getvalue())
