"""``galaxysd generate`` end to end on a tiny model."""
import pytest

from galaxysd_core.cli import main
from galaxysd_core.io.fits import read_fits
from galaxysd_core.io.png import read_png_parameters
from tiny_models import build_tiny_pipeline


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("m") / "tiny"
    build_tiny_pipeline(seed=0).save_pretrained(folder)
    return folder


def test_generate_writes_png_and_fits_with_parameters(tiny_model, tmp_path, capsys):
    prompt = "sdss, smooth, {completely round:1.3} galaxy, {dust lane:1.3}"
    code = main(["generate", prompt, "-n", "2", "--seed", "5", "--steps", "2", "--guidance", "6.5",
                 "--out", str(tmp_path), "--fits", "--model", str(tiny_model), "--quiet"])
    assert code == 0
    pngs = sorted(tmp_path.glob("*.png"))
    assert [p.name for p in pngs] == ["galaxysd_000_seed5.png", "galaxysd_001_seed6.png"]
    info = read_png_parameters(pngs[1])
    assert info["prompt"] == prompt and info["seed"] == 6 and info["num_inference_steps"] == 2
    assert info["guidance_scale"] == 6.5 and info["scheduler"] == "ddim"
    data, header = read_fits(tmp_path / "galaxysd_000_seed5.fits")
    assert data.shape == (32, 32, 3)
    assert header["prompt"] == prompt and header["seed"] == 5


def test_generate_reports_bad_prompt(tiny_model, tmp_path, capsys):
    code = main(["generate", "sdss, smoth", "--out", str(tmp_path), "--model", str(tiny_model), "--quiet"])
    assert code == 2
    assert "smooth" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.png"))


def test_generate_reports_missing_model(tmp_path, capsys):
    code = main(["generate", "sdss, smooth", "--out", str(tmp_path), "--model", str(tmp_path / "none"), "--quiet"])
    assert code == 2 and "does not exist" in capsys.readouterr().err
