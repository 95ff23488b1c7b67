"""``galaxysd generate`` end to end on a tiny model, and where commands write by default."""
import argparse
from pathlib import Path

import pytest

from galaxysd_core.cli import main
from galaxysd_core.io.fits import read_fits
from galaxysd_core.io.png import read_png_parameters
from tiny_models import build_tiny_pipeline

REPO = Path(__file__).resolve().parents[1]


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


@pytest.fixture(scope="module")
def tiny_model_with_counts(tmp_path_factory):
    """The tiny model with training caption counts: every feature seen except 'dust lane'."""
    import json

    from galaxysd_core.schema.gz2 import caption_phrases

    folder = tmp_path_factory.mktemp("m") / "tiny-counts"
    build_tiny_pipeline(seed=0).save_pretrained(folder)
    counts = {p: (0 if p == "dust lane" else 10) for p in caption_phrases()}  # as written by training: no 'sdss'
    (folder / "training_captions.json").write_text(json.dumps({"feature_counts": counts}))
    return folder


def test_unseen_features_never_include_the_survey_prefix(tiny_model_with_counts):
    from galaxysd_core.pipelines.pipeline_galaxysd import load_pipeline

    pipe = load_pipeline(tiny_model_with_counts)
    assert pipe.unseen_features(["sdss", "smooth", "dust lane", "a photo"]) == ["dust lane"]


@pytest.mark.parametrize("prompt, note", [
    ("sdss, smooth, completely round galaxy", None),
    ("sdss, smooth, {completely round galaxy:1.3}, {dust lane:1.2}", "never saw dust lane in training"),
])
def test_generate_notes_only_unseen_features_never_the_survey_prefix(tiny_model_with_counts, tmp_path, capsys,
                                                                     prompt, note):
    code = main(["generate", prompt, "-n", "1", "--seed", "0", "--steps", "1", "--out", str(tmp_path),
                 "--model", str(tiny_model_with_counts), "--quiet"])
    notes = [line for line in capsys.readouterr().out.splitlines() if line.startswith("note:")]
    assert code == 0
    assert not any("sdss" in line for line in notes), notes  # the survey prefix is not a feature
    assert [note in line for line in notes] == ([] if note is None else [True]), notes


def test_generate_without_out_writes_to_galaxysd_output_in_the_current_folder(tiny_model, tmp_path, monkeypatch,
                                                                               capsys):
    monkeypatch.chdir(tmp_path)
    code = main(["generate", "sdss, smooth", "-n", "1", "--seed", "3", "--steps", "1", "--model", str(tiny_model),
                 "--quiet"])
    assert code == 0
    assert [p.name for p in (tmp_path / "galaxysd-output" / "generate").glob("*.png")] == ["galaxysd_000_seed3.png"]


def _parser_of(module_main, monkeypatch) -> argparse.ArgumentParser:
    """The argparse parser a script's ``main([])`` builds (caught at ``parse_args``, nothing runs)."""
    class Built(Exception):
        pass

    def stop(self, *args, **kwargs):
        raise Built(self)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", stop)
    with pytest.raises(Built) as info:
        module_main([])
    return info.value.args[0]


@pytest.mark.parametrize("script", ["train/train_classifier.py", "train/experiment_augmentation.py",
                                    "train/search_detg.py"])
def test_script_default_outputs_stay_out_of_assets(script, tmp_path, monkeypatch):
    """Only the explicit release step (train/finalize_model.py) or a typed --out writes into assets/."""
    import importlib.util

    from galaxysd_core import config

    monkeypatch.chdir(tmp_path)
    spec = importlib.util.spec_from_file_location(f"script_{Path(script).stem}", REPO / script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = next(a for a in _parser_of(module.main, monkeypatch)._actions if "--out" in a.option_strings)
    assert out.default is not None
    default = Path(out.default).resolve()
    assert not default.is_relative_to(config.ASSETS_DIR.resolve()), default
    assert default.is_relative_to(tmp_path.resolve() / config.OUTPUT_DIR_NAME), default


def test_cli_output_defaults_are_resolved_at_run_time():
    from galaxysd_core.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["generate", "sdss, smooth"]).out is None
    assert parser.parse_args(["evaluate", "--prompts", "sdss, smooth"]).out is None


def test_readme_examples_use_the_data_variable_and_say_where_files_go():
    text = (REPO / "README.md").read_text()
    shared = [line for line in text.splitlines() if "../shared" in line]
    assert shared and all("GALAXYSD_DATA_DIR=../shared/data" in line for line in shared), shared
    assert "$GALAXYSD_DATA_DIR/gz1_sdss/labels.csv" in text
    assert "galaxysd-output/" in text and "~/.galaxysd/store.sqlite" in text and "GALAXYSD_STORE_URL" in text
    assert "--out samples/" not in text and "--out results/" not in text


def test_slider_option_uses_the_models_default_strength_and_contrast(tiny_model, tmp_path):
    from galaxysd_core.pipelines.feature_defaults import FeatureDefaults

    folder = tmp_path / "model"
    import shutil

    shutil.copytree(tiny_model, folder)
    mid = "in-between round galaxy"
    FeatureDefaults(guidance_scale=1.5, strengths={mid: 3.0}, contrast={mid: 1.0}).save(folder)
    code = main(["generate", f"sdss, smooth, {mid}", "-n", "1", "--seed", "0", "--steps", "1", "--guidance", "1.5",
                 "--slider", f"{mid}=default", "--out", str(tmp_path / "o"), "--model", str(folder), "--quiet"])
    assert code == 0
    info = read_png_parameters(next((tmp_path / "o").glob("*.png")))
    assert info["feature_guidance"] == [[mid, 4.5], ["completely round galaxy", -3.0], ["cigar shaped galaxy", -3.0]]
    assert main(["generate", "sdss, smooth", "--slider", "smooth=strong", "--model", str(folder), "--quiet",
                 "--out", str(tmp_path / "p")]) == 2
