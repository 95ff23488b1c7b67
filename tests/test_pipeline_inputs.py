"""Inputs of a pipeline call (issue 11, point 4): numbers in range, the start image conversion, the
whole seed range, the folder's own scheduler, one parse per prompt, unchanged provenance."""
import json
import shutil
from collections import Counter
from fractions import Fraction

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler, EulerAncestralDiscreteScheduler, PNDMScheduler
from PIL import Image

import galaxysd_core.pipelines.pipeline_galaxysd as pipeline_module
from galaxysd_core.errors import GalaxySDFileError, GalaxySDValueError
from galaxysd_core.pipelines.inputs import MAX_SEED, start_image_rgb8
from galaxysd_core.pipelines.pipeline_galaxysd import GalaxySDPipeline

SMOOTH = "sdss, smooth"




def _start(size=32):
    y, x = np.mgrid[0:size, 0:size] - size / 2
    return (255 * np.exp(-(x ** 2 + y ** 2) / 50.0))[..., None].repeat(3, -1).astype(np.uint8)


# ----------------------------------------------------------------------------- numbers
@pytest.mark.parametrize("name, value", [
    ("eta", float("nan")), ("eta", "x"), ("eta", float("inf")), ("eta", -0.1), ("eta", 1.5), ("eta", True),
    ("eta", None),
    ("guidance_scale", True), ("guidance_scale", "6.5"), ("guidance_scale", float("inf")),
    ("strength", float("nan")), ("strength", True), ("strength", "0.5"), ("strength", 0.0), ("strength", 1.5),
    ("num_inference_steps", True), ("num_inference_steps", 2.0), ("num_inference_steps", "20"),
    ("num_inference_steps", float("nan")),
    ("num_images_per_prompt", True), ("num_images_per_prompt", 2.0),
])
def test_numbers_must_be_real_and_in_range(pipe, name, value):
    args = dict(prompt=SMOOTH, num_inference_steps=2, seed=0, output_type="np")
    args[name] = value
    with pytest.raises(GalaxySDValueError, match=name) as info:
        pipe(**args)
    assert "must be" in str(info.value) and repr(value) in str(info.value)


def test_eta_bounds_and_numpy_numbers_are_accepted(pipe):
    for eta in (0, 0.0, 1, np.float32(0.5), Fraction(1, 2)):
        out = pipe(SMOOTH, eta=eta, num_inference_steps=2, seed=0, output_type="np",
                   guidance_scale=np.float64(4.0), num_images_per_prompt=np.int64(1))
        assert out.images.std() > 0 and out.parameters["eta"] == float(eta)
    with_eta = pipe(SMOOTH, eta=1.0, num_inference_steps=3, seed=0, output_type="np").images
    without = pipe(SMOOTH, eta=0.0, num_inference_steps=3, seed=0, output_type="np").images
    assert not np.array_equal(with_eta, without), "DDIM's eta reaches the sampler"


# ----------------------------------------------------------------------------- start image
def test_float_start_image_in_0_1_is_the_uint8_image(pipe):
    u8 = _start()
    as_float = u8.astype(np.float32) / 255.0
    assert np.array_equal(np.asarray(start_image_rgb8(as_float)), u8)
    x_float = pipe._image_to_tensor(start_image_rgb8(as_float), 32, 32)
    x_u8 = pipe._image_to_tensor(start_image_rgb8(u8), 32, 32)
    assert torch.equal(x_float, x_u8) and float(x_float.max()) > 0.9, "a bright start stays bright"
    args = dict(strength=0.5, num_inference_steps=4, seed=1, output_type="np")
    from_float = pipe(SMOOTH, image=as_float, **args).images
    assert np.array_equal(from_float, pipe(SMOOTH, image=u8, **args).images)
    assert np.array_equal(from_float, pipe(SMOOTH, image=Image.fromarray(u8), **args).images)
    black = pipe(SMOOTH, image=np.zeros_like(u8), **args).images
    assert not np.array_equal(from_float, black)


def test_start_images_are_resized_with_lanczos_like_pil(pipe):
    big = np.asarray(Image.fromarray(_start(64)).resize((48, 48), Image.Resampling.BICUBIC))
    x = pipe._image_to_tensor(start_image_rgb8(big), 32, 32)
    expected = np.asarray(Image.fromarray(big).resize((32, 32), Image.Resampling.LANCZOS), np.float32) / 127.5 - 1
    assert x.shape == (1, 3, 32, 32)
    np.testing.assert_allclose(x[0].permute(1, 2, 0).numpy(), expected, atol=1e-6)


@pytest.mark.parametrize("image, match", [
    (np.full((32, 32, 3), 200.0, np.float32), r"\[0, 1\].*\[200, 200\]"),
    (np.full((32, 32, 3), -0.5), r"\[0, 1\]"),
    (np.full((32, 32, 3), np.nan, np.float32), r"\[0, 1\]"),
    (np.zeros((32, 32, 3), np.int64), "uint8"),
    (np.zeros((32, 32, 4), np.uint8), "shape"),
    ("start.png", "PIL image"),
])
def test_bad_start_images_are_refused(pipe, image, match):
    with pytest.raises(GalaxySDValueError, match=match):
        pipe(SMOOTH, image=image, strength=0.5, num_inference_steps=2, seed=0)


def test_strength_that_leaves_no_step_is_refused_before_work(pipe):
    with pytest.raises(GalaxySDValueError, match="leaves no denoising step"):
        pipe(SMOOTH, image=_start(), strength=0.1, num_inference_steps=2, seed=0)


# ----------------------------------------------------------------------------- seeds
def test_every_seed_of_a_call_lies_in_range(pipe):
    args = dict(num_inference_steps=1, output_type="latent", guidance_scale=1.0)
    with pytest.raises(GalaxySDValueError, match=r"at most 9223372036854775806") as info:
        pipe(SMOOTH, num_images_per_prompt=2, seed=MAX_SEED, **args)
    assert "9223372036854775808" in str(info.value)
    with pytest.raises(GalaxySDValueError, match="at most"):
        pipe([SMOOTH, "sdss, merger"], num_images_per_prompt=2, seed=MAX_SEED - 2, **args)
    top = pipe(SMOOTH, num_images_per_prompt=2, seed=MAX_SEED - 1, **args)
    assert top.seeds == [MAX_SEED - 1, MAX_SEED] and all(type(s) is int for s in top.seeds)
    assert pipe(SMOOTH, seed=MAX_SEED, **args).seeds == [MAX_SEED]
    for bad in ([1, 2**63], [-1, 0], 2**63, [True, 1], 1.0):
        with pytest.raises(GalaxySDValueError, match="seed"):
            pipe(SMOOTH, num_images_per_prompt=2 if isinstance(bad, list) else 1, seed=bad, **args)
    assert pipe(SMOOTH, num_images_per_prompt=2, seed=[np.int64(5), np.uint64(2**63 - 1)], **args).seeds == [5, MAX_SEED]
    drawn = pipe(SMOOTH, num_images_per_prompt=8, seed=None, **args).seeds
    assert all(type(s) is int and 0 <= s < 2**31 for s in drawn)


# ----------------------------------------------------------------------------- scheduler of the folder
def test_the_folder_scheduler_class_is_loaded(pipe, saved, tmp_path):
    assert type(GalaxySDPipeline.from_pretrained(saved).scheduler) is DDIMScheduler
    folder = tmp_path / "euler"
    shutil.copytree(saved, folder)
    EulerAncestralDiscreteScheduler.from_config(pipe.scheduler.config).save_pretrained(folder / "scheduler")
    index = json.loads((folder / "model_index.json").read_text())
    index["scheduler"] = ["diffusers", "EulerAncestralDiscreteScheduler"]
    (folder / "model_index.json").write_text(json.dumps(index))
    loaded = GalaxySDPipeline.from_pretrained(folder)
    loaded.set_progress_bar_config(disable=True)
    assert type(loaded.scheduler) is EulerAncestralDiscreteScheduler
    args = dict(num_inference_steps=3, seed=4, output_type="np")
    own = loaded(SMOOTH, scheduler=None, **args)
    assert own.parameters["scheduler"] == "euler_a"
    assert np.array_equal(own.images, loaded(SMOOTH, scheduler="euler_a", **args).images)
    default = loaded(SMOOTH, **args)  # the default sampler of a call stays DDIM
    assert default.parameters["scheduler"] == "ddim" and not np.array_equal(default.images, own.images)


def test_a_folder_naming_no_scheduler_class_is_refused(saved, tmp_path):
    folder = tmp_path / "bad"
    shutil.copytree(saved, folder)
    index = json.loads((folder / "model_index.json").read_text())
    for bad in (["diffusers", "AutoencoderKL"], ["diffusers", "NoSuchScheduler"], ["os", "system"]):
        index["scheduler"] = bad
        (folder / "model_index.json").write_text(json.dumps(index))
        with pytest.raises(GalaxySDFileError, match="not a diffusers scheduler class"):
            GalaxySDPipeline.from_pretrained(folder)


def test_sd15_style_folder_keeps_its_pndm_scheduler(pipe, saved, tmp_path):
    folder = tmp_path / "pndm"
    shutil.copytree(saved, folder)
    PNDMScheduler.from_config(pipe.scheduler.config, skip_prk_steps=True).save_pretrained(folder / "scheduler")
    index = json.loads((folder / "model_index.json").read_text())
    index["scheduler"] = ["diffusers", "PNDMScheduler"]
    (folder / "model_index.json").write_text(json.dumps(index))
    loaded = GalaxySDPipeline.from_pretrained(folder)
    assert type(loaded.scheduler) is PNDMScheduler
    loaded.set_progress_bar_config(disable=True)
    out = loaded(SMOOTH, scheduler=None, num_inference_steps=3, seed=0, output_type="np")
    assert out.parameters["scheduler"] == "PNDMScheduler" and out.images.std() > 0


# ----------------------------------------------------------------------------- one parse per prompt
def test_each_prompt_is_parsed_once_per_call(pipe, monkeypatch):
    counts = Counter()
    real = pipeline_module.parse_prompt

    def counting(text, **kw):
        counts[text] += 1
        return real(text, **kw)

    monkeypatch.setattr(pipeline_module, "parse_prompt", counting)
    spiral = "sdss, features or disk-shaped, {spiral galaxy:1.2}"
    args = dict(num_images_per_prompt=2, seed=0, num_inference_steps=1, output_type="latent")
    pipe([spiral, spiral, "sdss, merger"], **args)  # automatic GZ2-tree negatives
    assert counts[spiral] == 2 and counts["sdss, merger"] == 1  # once per prompt given
    assert counts["sdss, smooth, star or artifact, edge-on galaxy"] == 1  # the shared negative, once
    counts.clear()
    pipe([spiral, "sdss, merger"], negative_prompt="sdss, star or artifact", **args)
    assert counts == Counter({spiral: 1, "sdss, merger": 1, "sdss, star or artifact": 1})


# ----------------------------------------------------------------------------- provenance
def test_provenance_output_is_unchanged(pipe):
    spiral = "sdss, features or disk-shaped, {spiral galaxy:1.2}"
    out = pipe([spiral, "sdss, merger"], num_images_per_prompt=2, seed=3, num_inference_steps=3, output_type="np",
               guidance_scale=5.0)
    neg = "sdss, smooth, star or artifact, edge-on galaxy"
    assert out.seeds == [3, 4, 5, 6] and out.prompts == [spiral, spiral, "sdss, merger", "sdss, merger"]
    assert out.negative_prompts == [neg, neg, "", ""]
    assert out.parameters == dict(
        negative_prompt=[neg, ""], tree_negatives=True, num_images_per_prompt=2, num_inference_steps=3,
        guidance_scale=5.0, scheduler="ddim", eta=0.0, height=32, width=32, sky_noise=False, latent_mean=False, strength=None,
        init_image=False, model=None, model_name=None, feature_guidance=[])
    img = pipe(SMOOTH, image=_start(), strength=0.5, num_inference_steps=4, seed=1, scheduler="euler_a", eta=0.3,
               output_type="np", negative_prompt="sdss, merger")
    assert img.parameters == dict(
        negative_prompt="sdss, merger", tree_negatives=False, num_images_per_prompt=1, num_inference_steps=4,
        guidance_scale=6.5, scheduler="euler_a", eta=0.3, height=32, width=32, sky_noise=False, latent_mean=False, strength=0.5,
        init_image=True, model=None, model_name=None, feature_guidance=[])
