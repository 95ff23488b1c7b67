"""Device and dtype choice (``--device`` / ``$GALAXYSD_DEVICE``, ``--dtype`` / ``$GALAXYSD_DTYPE``).

The choice logic runs on any machine with ``torch.cuda`` / MPS availability monkeypatched; the
tests at the end that need a real GPU are skipped without one.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from galaxysd_core import cli
from galaxysd_core.config import DEVICE_ENV, DTYPE_ENV
from galaxysd_core.errors import GalaxySDValueError
from galaxysd_core.pipelines import devices
from galaxysd_core.pipelines.devices import (DeviceChoice, choose_device, cpu_generators, describe_pipeline_device,
                                             device_environment, initial_noise, resolve_device, resolve_dtype)
from galaxysd_core.pipelines.pipeline_galaxysd import load_pipeline
from tiny_models import build_tiny_pipeline

HAS_CUDA = torch.cuda.is_available()
PROMPT = "sdss, smooth, {completely round:1.3} galaxy"
CALL = dict(seed=7, num_inference_steps=2, guidance_scale=3.0, output_type="np")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    monkeypatch.delenv(DEVICE_ENV, raising=False)
    monkeypatch.delenv(DTYPE_ENV, raising=False)


@pytest.fixture
def fake_cuda(monkeypatch):
    """A machine that 'has' one CUDA GPU, an NVIDIA H200 with bfloat16 (nothing runs on it)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "NVIDIA H200")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    monkeypatch.setattr(devices, "_mps_available", lambda: False)


@pytest.fixture
def cpu_only(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(devices, "_mps_available", lambda: False)


# ------------------------------------------------------------------------------------ devices
def test_auto_is_cuda_when_available(fake_cuda):
    assert resolve_device() == torch.device("cuda", 0)
    assert resolve_device("auto") == torch.device("cuda", 0)
    assert resolve_device("cuda") == torch.device("cuda", 0)
    assert resolve_device("CUDA:0 ") == torch.device("cuda", 0)


def test_auto_is_cpu_without_gpu(cpu_only):
    assert resolve_device() == torch.device("cpu")
    assert "no CUDA or MPS" in choose_device().reason


def test_auto_is_mps_without_cuda_on_apple(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(devices, "_mps_available", lambda: True)
    choice = choose_device()
    assert choice.device == torch.device("mps") and choice.dtype == torch.float32


def test_env_var_is_honoured_and_the_flag_beats_it(fake_cuda, monkeypatch):
    monkeypatch.setenv(DEVICE_ENV, "cpu")
    choice = choose_device()
    assert choice.device == torch.device("cpu") and DEVICE_ENV in choice.reason
    monkeypatch.setenv(DEVICE_ENV, "mps")  # unavailable, but the flag wins before it is looked at
    assert resolve_device("cuda") == torch.device("cuda", 0)
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


@pytest.mark.parametrize("name", ["gpu", "cuda:x", "tpu", "cuda0", "cpu:1"])
def test_unknown_device_names_say_what_to_use(cpu_only, name):
    with pytest.raises(GalaxySDValueError, match="unknown device") as err:
        resolve_device(name)
    assert "auto, cpu, cuda, cuda:N, mps" in str(err.value)


def test_unknown_name_in_the_env_var_names_the_variable(cpu_only, monkeypatch):
    monkeypatch.setenv(DEVICE_ENV, "gpu")
    with pytest.raises(GalaxySDValueError, match=DEVICE_ENV):
        resolve_device()


def test_unavailable_devices_say_what_is_available(cpu_only, monkeypatch):
    with pytest.raises(GalaxySDValueError, match="not available") as err:
        resolve_device("cuda")
    assert "Available: cpu" in str(err.value) and "--device" in str(err.value)
    monkeypatch.setenv(DEVICE_ENV, "cuda:0")
    with pytest.raises(GalaxySDValueError, match=f"{DEVICE_ENV}=cuda:0"):
        resolve_device()
    with pytest.raises(GalaxySDValueError, match="mps.*not available"):
        resolve_device("mps")


def test_missing_gpu_index_is_refused(fake_cuda):
    with pytest.raises(GalaxySDValueError, match="does not exist.*cuda:0"):
        resolve_device("cuda:3")


# ------------------------------------------------------------------------------------- dtypes
def test_dtype_policy(fake_cuda):
    assert resolve_dtype("cpu") == torch.float32
    assert resolve_dtype("cuda:0") == torch.float16
    assert resolve_dtype("mps") == torch.float32
    assert resolve_dtype("cuda:0", "bf16") == torch.bfloat16
    assert resolve_dtype("cuda:0", "fp32") == torch.float32
    assert resolve_dtype("cpu", torch.bfloat16) == torch.bfloat16
    assert resolve_dtype("mps", "fp16") == torch.float16
    assert choose_device("cuda").dtype == torch.float16


def test_dtype_requests_that_cannot_work_are_refused(fake_cuda, monkeypatch):
    with pytest.raises(GalaxySDValueError, match="fp16.*not supported on the CPU.*fp32"):
        resolve_dtype("cpu", "fp16")
    with pytest.raises(GalaxySDValueError, match="unknown dtype 'fp8'"):
        resolve_dtype("cuda", "fp8")
    with pytest.raises(GalaxySDValueError, match="bf16.*MPS"):
        resolve_dtype("mps", "bf16")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    with pytest.raises(GalaxySDValueError, match="bf16.*not supported by NVIDIA H200.*fp16"):
        resolve_dtype("cuda:0", "bf16")


def test_dtype_env_var_is_honoured_and_the_flag_beats_it(fake_cuda, monkeypatch):
    monkeypatch.setenv(DTYPE_ENV, "bf16")
    assert choose_device("cuda").dtype == torch.bfloat16
    assert choose_device("cuda", "fp32").dtype == torch.float32
    monkeypatch.setenv(DTYPE_ENV, "fp16")
    with pytest.raises(GalaxySDValueError, match=DTYPE_ENV):
        choose_device("cpu")


def test_describe(fake_cuda):
    assert choose_device().describe() == "cuda:0 (NVIDIA H200), float16"
    assert choose_device("cuda", "bf16").describe() == "cuda:0 (NVIDIA H200), bfloat16"
    assert DeviceChoice(torch.device("cpu"), torch.float32).describe() == "cpu, float32"


def test_device_environment_sets_and_restores(cpu_only, monkeypatch):
    monkeypatch.setenv(DTYPE_ENV, "fp32")
    with device_environment("cpu", "bf16") as choice:
        assert choice.dtype == torch.bfloat16
        assert resolve_device() == torch.device("cpu")
        assert choose_device().dtype == torch.bfloat16
    import os

    assert DEVICE_ENV not in os.environ and os.environ[DTYPE_ENV] == "fp32"
    with pytest.raises(GalaxySDValueError, match="not available"):
        with device_environment("cuda"):
            pass  # pragma: no cover - refused before the block runs


# ------------------------------------------------------------------------------------- seeds
def test_same_seed_same_initial_noise_whatever_the_device_string(cpu_only):
    shape = (1, 4, 8, 8)
    ref = torch.randn(shape, generator=torch.Generator("cpu").manual_seed(5))
    for device in ("cpu", torch.device("cpu"), resolve_device("auto"), None):
        noise = initial_noise(shape, cpu_generators([5, 6]), device)
        assert noise.device.type == "cpu" and noise.shape == (2, 4, 8, 8)
        assert torch.equal(noise[:1], ref)
    # the dtype is applied after drawing in float32: the same numbers, rounded
    half = initial_noise(shape, cpu_generators([5]), "cpu", torch.bfloat16)
    assert half.dtype == torch.bfloat16 and torch.equal(half, ref.to(torch.bfloat16))
    # noise moved to another device (meta: shape and dtype only) is still drawn on the CPU generator
    gens = cpu_generators([5])
    assert initial_noise(shape, gens, "meta").device.type == "meta"
    assert gens[0].device.type == "cpu" and not torch.equal(
        torch.randn(shape, generator=gens[0]), ref)  # the draw consumed the generator


def test_pipeline_draws_its_noise_through_initial_noise(pipe, monkeypatch):
    import galaxysd_core.pipelines.pipeline_galaxysd as module

    seen = []

    def spy(shape, generators, device, dtype):
        seen.append(([g.device.type for g in generators], torch.device(device).type, dtype))
        return initial_noise(shape, generators, device, dtype)

    monkeypatch.setattr(module, "initial_noise", spy)
    pipe(PROMPT, **{**CALL, "num_inference_steps": 1})
    assert seen == [(["cpu"], "cpu", torch.float32)]


# ------------------------------------------------------------------------------ load_pipeline
@pytest.fixture(scope="module")
def reference_images(pipe):
    return pipe(PROMPT, **CALL).images


def test_load_pipeline_on_cpu_equals_the_default(pipe, saved, reference_images):
    assert load_pipeline(pipe, device="cpu") is pipe
    np.testing.assert_array_equal(pipe(PROMPT, **CALL).images, reference_images)
    default = load_pipeline(saved)
    explicit = load_pipeline(saved, device="cpu", dtype="fp32")
    assert default.device_choice.device == torch.device("cpu") and default.unet.dtype == torch.float32
    np.testing.assert_array_equal(default(PROMPT, **CALL).images, reference_images)
    np.testing.assert_array_equal(explicit(PROMPT, **CALL).images, reference_images)
    assert describe_pipeline_device(default) == "cpu, float32"


def test_load_pipeline_follows_the_env_var(saved, monkeypatch):
    monkeypatch.setenv(DTYPE_ENV, "bf16")
    loaded = load_pipeline(saved)
    assert loaded.unet.dtype == loaded.vae.dtype == loaded.text_encoder.dtype == torch.bfloat16
    assert describe_pipeline_device(loaded) == "cpu, bfloat16"
    out = loaded(PROMPT, **CALL).images
    assert out.dtype == np.uint8 and out.shape == (1, 32, 32, 3)
    monkeypatch.setenv(DEVICE_ENV, "cuda")
    if not HAS_CUDA:
        with pytest.raises(GalaxySDValueError, match="not available"):
            load_pipeline(saved)


def test_load_pipeline_leaves_a_pipeline_object_where_it_is(monkeypatch):
    fresh = build_tiny_pipeline(seed=0)
    monkeypatch.setenv(DTYPE_ENV, "bf16")
    assert load_pipeline(fresh).unet.dtype == torch.float32  # shared modules (training snapshots) stay put
    assert load_pipeline(fresh, dtype="bf16").unet.dtype == torch.bfloat16


def test_app_loader_uses_the_configured_device(saved, monkeypatch):
    from galaxysd_core.studio.model_status import load_app_pipeline

    assert describe_pipeline_device(load_app_pipeline(saved)) == "cpu, float32"
    if not HAS_CUDA:
        monkeypatch.setenv(DEVICE_ENV, "cuda")
        with pytest.raises(GalaxySDValueError, match="not available"):
            load_app_pipeline(saved)


# ---------------------------------------------------------------------------------------- CLI
def test_cli_generate_device_cpu_works(saved, tmp_path, capsys):
    code = cli.main(["generate", "sdss, smooth", "-n", "1", "--seed", "1", "--steps", "1", "--model", str(saved),
                     "--out", str(tmp_path), "--device", "cpu", "--dtype", "fp32"])
    assert code == 0 and len(list(tmp_path.glob("*.png"))) == 1
    assert "device: cpu, float32" in capsys.readouterr().err


@pytest.mark.skipif(HAS_CUDA, reason="checks the error of a machine without a GPU")
@pytest.mark.parametrize("extra", [["--device", "cuda"], ["--dtype", "fp16", "--device", "cpu"]])
def test_cli_generate_refuses_unavailable_choices_cleanly(saved, tmp_path, capsys, extra):
    code = cli.main(["generate", "sdss, smooth", "-n", "1", "--steps", "1", "--model", str(saved),
                     "--out", str(tmp_path), "--quiet", *extra])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and "Traceback" not in err
    assert ("not available" in err and "Available: cpu" in err) or "fp32" in err
    assert not list(tmp_path.glob("*.png"))


@pytest.mark.skipif(HAS_CUDA, reason="checks the error of a machine without a GPU")
def test_cli_evaluate_and_classify_refuse_cuda_cleanly(saved, tmp_path, capsys):
    code = cli.main(["evaluate", "--model", str(saved), "--prompts", "sdss, smooth", "-n", "1",
                     "--out", str(tmp_path / "ev"), "--device", "cuda", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "not available" in err and not (tmp_path / "ev").exists()
    (tmp_path / "cat.csv").write_text("id,filename\na,a.jpg\n")
    code = cli.main(["classify", "--catalog", str(tmp_path / "cat.csv"), "--out", str(tmp_path / "c.csv"),
                     "--device", "cuda", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "not available" in err and "Traceback" not in err


def test_cli_help_documents_the_device_flags(capsys):
    for command in ("generate", "evaluate", "classify"):
        with pytest.raises(SystemExit):
            cli.main([command, "--help"])
        text = capsys.readouterr().out
        assert "--device" in text and DEVICE_ENV in text
        assert ("--dtype" in text) == (command != "classify")


# --------------------------------------------------------------------------------- classifier
@pytest.fixture(scope="module")
def tiny_classifier(tmp_path_factory):
    from galaxysd_core.models.classifier import ClassifierConfig, MorphologyClassifier

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("clf")
    MorphologyClassifier(ClassifierConfig(feature_columns=["t01_smooth_or_features_a01_smooth"], channels=[4, 8],
                                          image_size=16)).save_pretrained(folder)
    return folder


def test_classifier_loads_onto_the_device_and_predicts_to_cpu(tiny_classifier, monkeypatch):
    from galaxysd_core.models.classifier import MorphologyClassifier

    assert MorphologyClassifier.from_pretrained(tiny_classifier, map_location="meta").device.type == "meta"
    model = MorphologyClassifier.from_pretrained(tiny_classifier, map_location=torch.device("cpu"))
    assert model.device == torch.device("cpu")
    images = np.random.default_rng(0).integers(0, 255, (3, 16, 16, 3), dtype=np.uint8)
    real = model.predict_proba(images, batch_size=2)
    assert real.device.type == "cpu" and real.shape == (3, 1)
    # a model 'on another device' (meta stands in for a GPU) gets its input batches moved there
    seen = []
    monkeypatch.setattr(MorphologyClassifier, "device", property(lambda self: torch.device("meta")))
    monkeypatch.setattr(model, "forward", lambda x: (seen.append(x.device.type), torch.zeros(len(x), 1))[1])
    probs = model.predict_proba(images, batch_size=2)
    assert probs.device.type == "cpu" and probs.shape == (3, 1) and seen == ["meta", "meta"]


@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU")
def test_classifier_on_cuda_matches_cpu(tiny_classifier):
    from galaxysd_core.models.classifier import MorphologyClassifier

    images = np.random.default_rng(0).integers(0, 255, (4, 16, 16, 3), dtype=np.uint8)
    cpu = MorphologyClassifier.from_pretrained(tiny_classifier).predict_proba(images)
    gpu_model = MorphologyClassifier.from_pretrained(tiny_classifier, map_location="cuda")
    assert gpu_model.device.type == "cuda"
    gpu = gpu_model.predict_proba(images)
    assert gpu.device.type == "cpu" and torch.allclose(cpu, gpu, atol=1e-4)


def test_cli_classify_device_cpu_reports_the_device(tiny_classifier, tmp_path, capsys):
    from PIL import Image

    Image.new("RGB", (20, 20), (120, 80, 40)).save(tmp_path / "a.jpg")
    pd.DataFrame({"id": ["a"], "filename": ["a.jpg"]}).to_csv(tmp_path / "cat.csv", index=False)
    code = cli.main(["classify", "--model", str(tiny_classifier), "--catalog", str(tmp_path / "cat.csv"),
                     "--out", str(tmp_path / "c.csv"), "--device", "cpu", "--quiet"])
    assert code == 0 and "on cpu" in capsys.readouterr().out
    assert len(pd.read_csv(tmp_path / "c.csv")) == 1


# ------------------------------------------------------------------------------- a real GPU
@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU")
@pytest.mark.parametrize("dtype", ["fp32", "fp16"])
def test_pipeline_generates_on_cuda(saved, reference_images, dtype):
    gpu = load_pipeline(saved, device="cuda", dtype=dtype)
    assert gpu.unet.device.type == "cuda"
    out = gpu(PROMPT, **CALL).images
    assert out.shape == reference_images.shape and out.dtype == np.uint8
    # the same seed gives the same starting noise: images agree up to kernel differences
    assert np.abs(out.astype(int) - reference_images.astype(int)).mean() < (2 if dtype == "fp32" else 8)
    for sampler in ("euler_a", "dpmpp"):  # samplers that draw noise per step from the CPU generators
        assert gpu(PROMPT, **{**CALL, "scheduler": sampler}).images.shape == out.shape
