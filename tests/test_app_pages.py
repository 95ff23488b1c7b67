"""Streamlit pages driven with AppTest (tiny random model, synthetic data folder, temporary store),
plus the non-UI logic behind them (galaxysd_core.studio)."""
from __future__ import annotations

import io
import json
import secrets
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from galaxysd_core import config
from galaxysd_core.errors import GalaxySDValueError, ServerBusyError
from galaxysd_core.io.png import png_bytes
from galaxysd_core.pipelines.pipeline_galaxysd import load_pipeline
from galaxysd_core.studio import controls, figures, generation, limits, metric_files, palette, real_data
from galaxysd_core.studio.quiz import new_quiz_round
from galaxysd_core.studio.store import Store

torch.set_num_threads(1)
pytest.importorskip("streamlit.testing.v1")
from streamlit.testing.v1 import AppTest  # noqa: E402

APP = str(Path(__file__).resolve().parents[1] / "app.py")
DEMO_CATALOG = Path(__file__).resolve().parents[1] / "assets" / "demo_candidates"
TIMEOUT = 180
UNSEEN = ("dust lane", "ring galaxy")
RARE = {"merger": 12}  # seen, but fewer than model_facts.RARE_THRESHOLD times


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """A tiny random pipeline saved like a trained one (with training caption counts)."""
    from galaxysd_core.schema.gz2 import caption_phrases
    from tiny_models import build_tiny_pipeline

    folder = tmp_path_factory.mktemp("tiny") / "tiny-model"
    build_tiny_pipeline(seed=0).save_pretrained(folder)
    counts = {p: (0 if p in UNSEEN else RARE.get(p, 100)) for p in caption_phrases()}
    (folder / "training_captions.json").write_text(json.dumps({"feature_counts": counts}))
    return folder


def _blob(seed: int, size: int = 64) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] - size / 2
    light = np.exp(-(x ** 2 + (y / rng.uniform(0.5, 1)) ** 2) / (2 * rng.uniform(4, 8) ** 2))
    img = np.stack([light, 0.9 * light, 0.8 * light], -1) + rng.normal(0, 0.02, (size, size, 3))
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """A tiny synthetic real-data folder in the layout of gz2_examples (labels.csv + images)."""
    root = tmp_path_factory.mktemp("data")
    src = root / "examples"
    (src / "images").mkdir(parents=True)
    rows = []
    for i in range(10):
        col = "t01_smooth_or_features_a01_smooth" if i < 6 else "t08_odd_feature_a38_dust_lane"
        name = f"images/g{i}.png"
        Image.fromarray(_blob(i)).save(src / name)
        rows.append({"filename": name, "gz2_column": col})
    pd.DataFrame(rows).to_csv(src / "labels.csv", index=False)
    return root


@pytest.fixture
def env(monkeypatch, tmp_path, tiny_model):
    """Environment of one app session: tiny model, fresh store, no data folder, the demo catalog."""
    monkeypatch.setenv("GALAXYSD_MODEL_DIR", str(tiny_model))
    monkeypatch.setenv("GALAXYSD_CANDIDATES", str(DEMO_CATALOG))
    monkeypatch.setenv("GALAXYSD_STORE_URL", f"sqlite:///{tmp_path / 'store.sqlite'}")
    monkeypatch.setenv("GALAXYSD_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("GALAXYSD_DATA_DIR", raising=False)
    return tmp_path


def run_app(page: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    if page:
        at.switch_page(f"pages/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def plot_values(trace_values) -> list:
    """Values of a plotly trace array from a chart spec (plain list or base64 typed array)."""
    if isinstance(trace_values, dict) and "bdata" in trace_values:
        import base64

        return np.frombuffer(base64.b64decode(trace_values["bdata"]), dtype=trace_values["dtype"]).tolist()
    return list(trace_values)


def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


# ----------------------------------------------------------------------------- generate page
def test_generate_controls_write_the_prompt(env):
    at = run_app()
    assert at.title[0].value == "Generate galaxies"
    assert at.text_area(key="keep.gen.prompt").value == "sdss, smooth, completely round galaxy"
    at.selectbox(key="keep.gen.q.t08_odd_feature").set_value("dust lane").run()
    assert at.text_area(key="keep.gen.prompt").value == "sdss, smooth, completely round galaxy, dust lane"
    assert at.radio(key="keep.gen.mechanism").value == "guidance"  # sliders drive feature guidance by default
    at.radio(key="keep.gen.mechanism").set_value("weight").run()
    at.slider(key="keep.gen.w.t08_odd_feature").set_value(1.5).run()
    assert at.text_area(key="keep.gen.prompt").value == "sdss, smooth, completely round galaxy, {dust lane:1.5}"
    # switching the first answer of the tree turns off the answers it no longer leads to, and says so
    at.selectbox(key="keep.gen.q.t01_smooth_or_features").set_value("features or disk-shaped").run()
    assert at.text_area(key="keep.gen.prompt").value == "sdss, features or disk-shaped, {dust lane:1.5}"
    assert at.selectbox(key="keep.gen.q.t07_rounded").value == "off"
    assert "turned off 'completely round galaxy'" in texts(at.caption)
    assert at.slider(key="keep.gen.w.t07_rounded").disabled
    assert "cannot both hold" not in texts(at.warning)  # a consistent prompt: no tree warning


def test_generate_controls_follow_the_gz2_tree(env):
    at = run_app()  # default prompt: smooth, completely round
    spiral = at.selectbox(key="keep.gen.q.t04_spiral")
    assert spiral.disabled and spiral.options == ["— not asked"] and "not asked with 'smooth'" in spiral.help
    assert not at.selectbox(key="keep.gen.q.t07_rounded").disabled
    assert not at.selectbox(key="keep.gen.q.t08_odd_feature").disabled  # odd features follow smooth galaxies too
    at.selectbox(key="keep.gen.q.t01_smooth_or_features").set_value("features or disk-shaped").run()
    assert at.selectbox(key="keep.gen.q.t07_rounded").disabled
    at.selectbox(key="keep.gen.q.t04_spiral").set_value("spiral galaxy").run()
    assert at.text_area(key="keep.gen.prompt").value == "sdss, features or disk-shaped, spiral galaxy"
    # a spiral rules out the roundness of smooth galaxies, wherever it is chosen from
    at.selectbox(key="keep.gen.q.t01_smooth_or_features").set_value("off").run()
    assert at.selectbox(key="keep.gen.q.t07_rounded").disabled
    assert not at.selectbox(key="keep.gen.q.t11_arms_number").disabled


def test_typed_prompt_against_the_tree_is_flagged_not_silently_unguided(env):
    at = run_app()
    at.text_area(key="keep.gen.prompt").set_value("sdss, features or disk-shaped, completely round galaxy").run()
    assert not at.error  # the grammar accepts it, as before
    assert "cannot both hold" in texts(at.warning)
    assert "contradicts the GZ2 tree" in texts(at.caption)


def test_generate_text_moves_the_controls(env):
    at = run_app()
    at.radio(key="keep.gen.mechanism").set_value("weight").run()
    at.text_area(key="keep.gen.prompt").set_value(
        "sdss, features or disk-shaped, {spiral galaxy:1.3}, 2 spiral arms").run()
    assert at.selectbox(key="keep.gen.q.t01_smooth_or_features").value == "features or disk-shaped"
    assert at.selectbox(key="keep.gen.q.t04_spiral").value == "spiral galaxy"
    assert at.slider(key="keep.gen.w.t04_spiral").value == pytest.approx(1.3)
    assert at.selectbox(key="keep.gen.q.t11_arms_number").value == "2 spiral arms"
    assert at.selectbox(key="keep.gen.q.t07_rounded").value == "off"
    assert not at.error


@pytest.mark.parametrize("text,message", [
    ("sdss, {smooth:1.3", "unclosed"),
    ("sdss, smooth, purple galaxy", "unknown word 'purple'"),
    ("sdss, smooth, features or disk-shaped", "exclude each other"),
])
def test_generate_invalid_text_shows_the_grammar_error(env, text, message):
    at = run_app()
    at.text_area(key="keep.gen.prompt").set_value(text).run()
    assert message in texts(at.error)
    assert at.selectbox(key="keep.gen.q.t07_rounded").value == "completely round galaxy"  # controls unchanged


def test_generate_weight_beyond_slider_is_noted(env):
    at = run_app()
    at.radio(key="keep.gen.mechanism").set_value("weight").run()
    at.text_area(key="keep.gen.prompt").set_value("sdss, smooth, {completely round galaxy:2.6}").run()
    assert at.slider(key="keep.gen.w.t07_rounded").value == pytest.approx(2.0)
    assert "text keeps 2.6" in texts(at.caption)


def test_generate_automatic_negative_prompt_shown_used_and_switchable(env):
    at = run_app()
    at.slider(key="keep.gen.n_images").set_value(1).run()
    at.slider(key="keep.gen.steps").set_value(2).run()
    at.text_area(key="keep.gen.prompt").set_value("sdss, features or disk-shaped, spiral galaxy").run()
    assert "automatic negative prompt: `sdss, smooth, star or artifact, edge-on galaxy`" in texts(at.caption)
    at.button(key="btn.gen.generate").click().run()
    item = at.session_state["gen.gallery"][0]
    assert item.parameters["negative_prompt"] == "sdss, smooth, star or artifact, edge-on galaxy"
    assert item.parameters["tree_negatives"] is True
    at.checkbox(key="keep.gen.tree_negatives").uncheck().run()
    assert "automatic negative prompt" not in texts(at.caption)
    at.button(key="btn.gen.generate").click().run()
    item = at.session_state["gen.gallery"][0]
    assert item.parameters["negative_prompt"] == "" and item.parameters["tree_negatives"] is False
    # a typed negative prompt replaces the automatic one (the checkbox disappears)
    at.text_input(key="keep.gen.negative").set_value("sdss, merger").run()
    assert not [c for c in at.checkbox if c.key == "keep.gen.tree_negatives"]


def test_generate_button_makes_images(env):
    at = run_app()
    at.slider(key="keep.gen.n_images").set_value(2).run()
    at.slider(key="keep.gen.steps").set_value(3).run()
    at.number_input(key="keep.gen.seed").set_value(11).run()
    n_before = len(at.image)
    at.button(key="btn.gen.generate").click().run()
    assert not at.exception and not at.error, texts(at.error)
    gallery = at.session_state["gen.gallery"]
    assert len(gallery) == 2 and [it.seed for it in gallery] == [11, 12]
    assert gallery[0].image.shape == (32, 32, 3) and gallery[0].image.dtype == np.uint8
    assert len(at.image) >= n_before + 2
    assert "seed 11" in " ".join(c for im in at.image for c in im.captions)
    assert "Gallery (2 images" in texts(at.subheader)
    # a second press adds to the gallery, newest first
    at.radio(key="keep.gen.seed_mode").set_value("random").run()
    at.button(key="btn.gen.generate").click().run()
    assert len(at.session_state["gen.gallery"]) == 4


@pytest.mark.parametrize("prompt", ["sdss, dust lne", "sdss, smooth, a dust lne", "sdss, {smooth:1.3"])
def test_generate_with_a_bad_prompt_shows_the_error_once(env, prompt):
    at = run_app()
    at.text_area(key="keep.gen.prompt").set_value(prompt).run()
    assert len(at.error) == 1, texts(at.error)
    at.button(key="btn.gen.generate").click().run()
    assert len(at.error) == 1, texts(at.error)  # pressing Generate does not repeat it
    assert "Prompt not understood" in at.error[0].value
    assert at.session_state["gen.gallery"] == []


def test_generate_request_limit_message(env):
    at = run_app()
    at.slider(key="keep.gen.n_images").set_value(16).run()
    at.slider(key="keep.gen.steps").set_value(100).run()
    at.button(key="btn.gen.generate").click().run()
    assert "image-steps" in texts(at.error)
    assert at.session_state["gen.gallery"] == []


def test_generate_features_show_training_counts_and_rare_marks(env):
    at = run_app()
    options = at.selectbox(key="keep.gen.q.t08_odd_feature").options
    assert "dust lane · 0 ⚠ never seen" in options
    assert "merger · 12 ⚠ rarely seen: expect extrapolation" in options
    assert "smooth · 100" in at.selectbox(key="keep.gen.q.t01_smooth_or_features").options
    assert not at.warning
    at.selectbox(key="keep.gen.q.t08_odd_feature").set_value("merger").run()
    assert "merger (12): seen in fewer than 30 training captions" in texts(at.warning)


def test_load_settings_from_png_restores_every_control(env):
    at = run_app()
    params = dict(negative_prompt="merger", num_images_per_prompt=3, num_inference_steps=7, guidance_scale=4.5,
                  scheduler="euler_a", height=32, width=32, strength=None, init_image=False, model_name="tiny")
    png = png_bytes(_blob(0, 32), "sdss, features or disk-shaped, {ring galaxy:1.4}", 1234, params)
    at.file_uploader(key="up.gen.settings_png").set_value(("settings.png", png, "image/png")).run()
    assert not at.error, texts(at.error)
    assert at.text_area(key="keep.gen.prompt").value == "sdss, features or disk-shaped, {ring galaxy:1.4}"
    assert at.selectbox(key="keep.gen.q.t08_odd_feature").value == "ring galaxy"
    assert at.session_state["keep.gen.w.t08_odd_feature"] == pytest.approx(1.4)
    assert at.session_state["keep.gen.s.t08_odd_feature"] == 1.0  # no feature guidance stored: the plain prompt
    assert at.selectbox(key="keep.gen.q.t07_rounded").value == "off"
    assert at.text_input(key="keep.gen.negative").value == "merger"
    assert at.slider(key="keep.gen.steps").value == 7
    assert at.slider(key="keep.gen.guidance").value == pytest.approx(4.5)
    assert at.selectbox(key="keep.gen.scheduler").value == "euler_a"
    assert at.number_input(key="keep.gen.seed").value == 1234
    assert at.radio(key="keep.gen.seed_mode").value == "fixed"
    assert at.slider(key="keep.gen.n_images").value == 3


def test_load_settings_rejects_a_non_png(env):
    at = run_app()
    at.file_uploader(key="up.gen.settings_png").set_value(("x.png", b"not a png at all", "image/png")).run()
    assert "not a PNG" in texts(at.error)
    assert not at.exception


def test_generated_png_round_trips_into_the_controls(env):
    """Generate, take the PNG a user would download, load it back: same settings."""
    at = run_app()
    at.slider(key="keep.gen.n_images").set_value(1).run()
    at.slider(key="keep.gen.steps").set_value(2).run()
    at.selectbox(key="keep.gen.scheduler").set_value("dpmpp").run()
    at.button(key="btn.gen.generate").click().run()
    item = at.session_state["gen.gallery"][0]
    png = png_bytes(item.image, item.prompt, item.seed, item.parameters)
    at.selectbox(key="keep.gen.scheduler").set_value("ddim").run()
    at.slider(key="keep.gen.steps").set_value(30).run()
    at.file_uploader(key="up.gen.settings_png").set_value(("g.png", png, "image/png")).run()
    assert at.selectbox(key="keep.gen.scheduler").value == "dpmpp"
    assert at.slider(key="keep.gen.steps").value == 2


def test_extrapolation_sweep_grid(env):
    at = run_app()
    at.slider(key="keep.gen.steps").set_value(2).run()  # the Compare page uses the Generate page's sampling
    at.switch_page("pages/compare.py").run()
    at.radio(key="keep.sweep.mechanism").set_value("weight").run()
    at.selectbox(key="keep.sweep.phrase").set_value("merger").run()
    at.slider(key="keep.sweep.range").set_value((0.8, 2.0)).run()
    at.slider(key="keep.sweep.n_weights").set_value(3).run()
    at.slider(key="keep.sweep.n_seeds").set_value(2).run()
    at.button(key="btn.gen.sweep").click().run()
    assert not at.error, texts(at.error)
    result = at.session_state["gen.sweep"]
    assert result.weights == [0.8, 1.4, 2.0] and result.seeds == [0, 1]
    assert len(result.grid) == 2 and all(len(row) == 3 for row in result.grid)
    assert result.grid[1][2].prompt.endswith("{merger:2}") and result.grid[1][2].seed == 1
    assert result.grid[0][0].parameters["num_inference_steps"] == 2
    # the shipped classifier has a "merger" head: one probability per image, a mean under every column
    probs = result.column_probabilities()
    assert len(probs) == 3 and all(0.0 <= p <= 1.0 for p in probs)
    assert f"**{probs[0]:.2f}**" in texts(at.markdown)


def test_guidance_sliders_generate_reuse_and_sweep(env):
    """The default slider mechanism: strength x guidance is the feature's own guidance; the image's
    settings record it, "Reuse" restores the strength, and the Compare page sweeps it on fixed seeds."""
    at = run_app()
    at.slider(key="keep.gen.n_images").set_value(1).run()
    at.slider(key="keep.gen.steps").set_value(2).run()
    at.slider(key="keep.gen.guidance").set_value(2.0).run()
    at.selectbox(key="keep.gen.q.t08_odd_feature").set_value("merger").run()
    assert at.slider(key="keep.gen.s.t08_odd_feature").value == 1.0  # the tiny model has no measured default
    at.slider(key="keep.gen.s.t08_odd_feature").set_value(3.0).run()
    assert "merger guidance 6" in texts(at.caption)
    at.button(key="btn.gen.generate").click().run()
    assert not at.error, texts(at.error)
    item = at.session_state["gen.gallery"][0]
    assert item.parameters["feature_guidance"] == [["merger", 6.0]]
    at.slider(key="keep.gen.s.t08_odd_feature").set_value(1.0).run()
    assert "feature guidance merger 6 → none" in texts(at.info)
    at.button(key=f"btn.gen.use.{item.uid}").click().run()
    assert at.slider(key="keep.gen.s.t08_odd_feature").value == 3.0
    at.switch_page("pages/compare.py").run()
    assert at.radio(key="keep.sweep.mechanism").value == "guidance"
    at.selectbox(key="keep.sweep.phrase").set_value("merger").run()
    at.slider(key="keep.sweep.strength_range").set_value((0.0, 4.0)).run()
    at.slider(key="keep.sweep.n_weights").set_value(3).run()
    at.slider(key="keep.sweep.n_seeds").set_value(1).run()
    at.button(key="btn.gen.sweep").click().run()
    assert not at.error, texts(at.error)
    res = at.session_state["gen.sweep"]
    assert res.mechanism == "guidance" and res.weights == [0.0, 2.0, 4.0]
    fg = [row.parameters["feature_guidance"] for row in res.grid[0]]
    assert fg == [[["merger", 0.0]], [["merger", 4.0]], [["merger", 8.0]]]
    assert "merger strength 2" in texts(at.markdown)


def test_sweep_of_a_feature_without_classifier_head_says_so(env):
    at = run_app("compare")
    at.session_state["keep.gen.steps"] = 1
    at.selectbox(key="keep.sweep.phrase").set_value("dust lane").run()
    at.slider(key="keep.sweep.n_weights").set_value(2).run()
    at.slider(key="keep.sweep.n_seeds").set_value(1).run()
    at.button(key="btn.gen.sweep").click().run()
    assert not at.error, texts(at.error)
    assert at.session_state["gen.sweep"].probs is None
    assert "no head for 'dust lane'" in texts(at.caption)
    assert "every column is an extrapolation" in texts(at.warning)  # never seen by the tiny model


@pytest.fixture(scope="module")
def second_model(tiny_model) -> Path:
    """Another tiny model next to the first (the Compare page offers sibling folders)."""
    from tiny_models import build_tiny_pipeline

    folder = tiny_model.parent / "tiny-model-b"
    if not folder.is_dir():
        build_tiny_pipeline(seed=1).save_pretrained(folder)
    return folder


@pytest.mark.parametrize("kind", ["feature", "weight", "guidance", "model"])
def test_compare_ab_pairs_use_the_same_seeds_with_one_difference(env, second_model, kind):
    at = run_app("compare")
    at.session_state["keep.gen.steps"] = 2
    at.radio(key="keep.ab.kind").set_value(kind).run()
    at.slider(key="keep.ab.n").set_value(2).run()
    at.number_input(key="keep.ab.seed").set_value(5).run()
    if kind in ("feature", "weight"):
        at.selectbox(key="keep.ab.phrase").set_value("merger").run()
    if kind == "model":
        assert set(at.selectbox(key="keep.ab.model_b").options) >= {"tiny-model", "tiny-model-b"}
        at.selectbox(key="keep.ab.model_b").set_value(str(second_model)).run()
    at.button(key="btn.ab.run").click().run()
    assert not at.exception and not at.error, texts(at.error)
    result = at.session_state["cmp.ab"]
    assert [p.seed for p in result.pairs] == [5, 6]
    for pair in result.pairs:
        assert pair.a.seed == pair.b.seed and pair.diff.shape == pair.a.image.shape and pair.diff.dtype == np.uint8
    a, b = result.pairs[0].a, result.pairs[0].b
    if kind == "feature":
        assert "merger" in a.prompt and "merger" not in b.prompt and a.parameters["guidance_scale"] == 6.5
    elif kind == "weight":
        assert "merger" in a.prompt and "{merger" not in a.prompt and "{merger:1.8}" in b.prompt
    elif kind == "guidance":
        assert a.prompt == b.prompt and (a.parameters["guidance_scale"], b.parameters["guidance_scale"]) == (3.0, 6.5)
    else:
        assert a.prompt == b.prompt and not np.array_equal(a.image, b.image)  # other weights, same seed
    if kind in ("feature", "weight"):
        assert result.pairs[0].prob_a is not None  # the shipped classifier judges "merger"
    assert "|A − B|" in texts(at.markdown)


def test_generate_start_image_from_upload(env):
    at = run_app()
    at.radio(key="keep.gen.init_mode").set_value("upload").run()
    buf = io.BytesIO()
    Image.fromarray(_blob(3)).save(buf, format="PNG")
    at.file_uploader(key="up.gen.init").set_value(("galaxy.png", buf.getvalue(), "image/png")).run()
    at.slider(key="keep.gen.n_images").set_value(1).run()
    at.slider(key="keep.gen.steps").set_value(4).run()
    at.button(key="btn.gen.generate").click().run()
    assert not at.error, texts(at.error)
    item = at.session_state["gen.gallery"][0]
    assert item.parameters["init_image"] is True and item.parameters["strength"] == pytest.approx(0.6)


def test_generate_start_image_from_data_folder(env, monkeypatch, data_dir):
    monkeypatch.setenv("GALAXYSD_DATA_DIR", str(data_dir))
    at = run_app()
    at.text_area(key="keep.gen.prompt").set_value("sdss, dust lane").run()
    at.radio(key="keep.gen.init_mode").set_value("data").run()
    pick = at.selectbox(key="keep.gen.real_pick")
    assert len(pick.options) == 4 and all("dust lane" in o for o in pick.options)  # same caption first
    at.slider(key="keep.gen.n_images").set_value(1).run()
    at.slider(key="keep.gen.steps").set_value(4).run()
    at.button(key="btn.gen.generate").click().run()
    assert not at.error, texts(at.error)
    assert at.session_state["gen.gallery"][0].parameters["init_image"] is True


def test_reuse_restores_an_images_settings(env):
    at = run_app()
    at.slider(key="keep.gen.n_images").set_value(1).run()
    at.slider(key="keep.gen.steps").set_value(3).run()
    at.number_input(key="keep.gen.seed").set_value(77).run()
    at.button(key="btn.gen.generate").click().run()
    uid = at.session_state["gen.gallery"][0].uid
    at.text_area(key="keep.gen.prompt").set_value("sdss, merger").run()
    at.slider(key="keep.gen.steps").set_value(40).run()
    at.number_input(key="keep.gen.seed").set_value(5).run()
    at.button(key=f"btn.gen.use.{uid}").click().run()
    assert at.text_area(key="keep.gen.prompt").value == "sdss, smooth, completely round galaxy"
    assert at.slider(key="keep.gen.steps").value == 3 and at.number_input(key="keep.gen.seed").value == 77


def test_without_model_generate_explains_and_about_is_default(env, monkeypatch, tmp_path):
    monkeypatch.setenv("GALAXYSD_MODEL_DIR", str(tmp_path / "no-model"))
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert not at.exception
    assert at.title[0].value == "Getting started with GalaxySD Studio"
    assert "GALAXYSD_MODEL_DIR" in texts(at.warning) and "train_diffusion.py" in texts(at.warning)
    at.switch_page("pages/generate.py").run()
    assert "No model to generate with" in texts(at.info)
    assert at.button(key="btn.gen.generate").disabled


def test_about_says_where_the_store_lives(env, monkeypatch, tmp_path):
    monkeypatch.delenv("GALAXYSD_STORE_URL")  # the default: SQLite under $GALAXYSD_HOME (else ~/.galaxysd)
    at = run_app("about")
    assert f"SQLite file {tmp_path / 'home' / 'store.sqlite'}" in texts(at.markdown)
    assert "GALAXYSD_HOME" in texts(at.markdown) and "~/.galaxysd" in texts(at.markdown)
    monkeypatch.setenv("GALAXYSD_STORE_URL", "postgresql+psycopg://vetter:canary-pw-4711@db.example/galaxysd")
    at = run_app("about")
    assert "postgresql+psycopg://vetter:***@db.example/galaxysd" in texts(at.markdown)
    assert "canary-pw-4711" not in texts(at.markdown)  # a password in the URL is never shown


def test_latest_images_beside_the_controls_and_the_enlarged_view(env):
    at = run_app()
    at.slider(key="keep.gen.n_images").set_value(2).run()
    at.slider(key="keep.gen.steps").set_value(2).run()
    assert "Press **Generate**" in texts(at.info)
    at.button(key="btn.gen.generate").click().run()
    latest = at.session_state["gen.latest"]
    assert len(latest) == 2
    # nothing changed yet; then a weight moves and the page says what differs from the images shown
    assert not [i for i in at.info if "Changed since" in i.value]
    at.selectbox(key="keep.gen.q.t08_odd_feature").set_value("merger").run()
    assert "Changed since these images: + merger" in texts(at.info)
    at.button(key=f"btn.gen.enlarge.{latest[0]}").click().run()
    assert not at.exception
    assert "**seed 0**" in texts(at.markdown)
    table = at.table[0].value
    assert {"negative_prompt", "guidance_scale", "num_inference_steps"} <= set(table.index)


def test_settings_survive_a_page_switch(env):
    at = run_app()
    at.selectbox(key="keep.gen.q.t08_odd_feature").set_value("merger").run()
    at.slider(key="keep.gen.steps").set_value(9).run()
    at.switch_page("pages/about.py").run()
    at.switch_page("pages/generate.py").run()
    assert at.selectbox(key="keep.gen.q.t08_odd_feature").value == "merger"
    assert at.slider(key="keep.gen.steps").value == 9
    assert "merger" in at.text_area(key="keep.gen.prompt").value


# ----------------------------------------------------------------------------- metrics page
def _write_metrics(model_dir: Path, assets: Path) -> None:
    from galaxysd_core.schema.morphology_stats import describe

    m = model_dir / "metrics"
    m.mkdir(parents=True)
    steps = [0, 500, 1000]
    rows = [{"step": s, "prompt": p, "consistency": 0.3 + 0.2 * i + 0.05 * j, "precision": 0.5, "recall": 0.4,
             "density": 0.7, "coverage": 0.6, "domain_fd": 30 - 10 * i, "domain_kid": 0.1}
            for i, s in enumerate(steps) for j, p in enumerate(["sdss, smooth", "sdss, merger"])]
    pd.DataFrame(rows).to_csv(m / "training_metrics.csv", index=False)
    (m / "real_benchmark.json").write_text(json.dumps({"consistency": 0.85, "paper_real_consistency": 0.895,
                                                       "real_vs_real": {"domain_fd": 2.0}}))
    pareto = [{"prompt": p, "sweep_variable": "weight:dust lane", "sweep_value": w, "realism": 0.8 - 0.2 * w,
               "diversity": 0.3 + 0.1 * w, "consistency": 0.5} for p in ("a", "b") for w in (0.8, 1.3, 2.0)]
    pd.DataFrame(pareto).to_csv(m / "pareto.csv", index=False)
    describe(["sdss, smooth", "sdss, smooth, completely round galaxy", "sdss, merger"] * 3).save(
        m / "morphology_distribution" / "gz1_sdss")
    (assets / "classifier").mkdir(parents=True)
    (assets / "classifier" / "README.md").write_text("# Test classifier card\n\nheads: smooth")
    pd.DataFrame({"phrase": ["smooth", "merger"], "precision": [0.9, 0.2], "recall": [0.8, 0.5],
                  "auc": [0.9, 0.7]}).to_csv(assets / "classifier" / "metrics.csv", index=False)
    (assets / "augmentation").mkdir()
    _augmentation_results().to_csv(assets / "augmentation" / "results.csv", index=False)
    (assets / "augmentation" / "README.md").write_text(
        "# Augmentation\n\n## Discussion\n\n<!-- notes:begin -->\n**Where synthetic data helps.** Mergers at 100 "
        "real positives.\n<!-- notes:end -->\n")


AUG_ARMS = {"real": "(a) real only", "synthetic": "(b) real + synthetic", "classic": "(c) oversampling + flips"}


def _augmentation_results() -> pd.DataFrame:
    """A results.csv in the experiment's format: 2 tasks x 2 shot settings x 3 arms, 3 seeds."""
    rows = []
    for t, task in enumerate(("merger", "spiral")):
        for k, (shots, n_pos) in enumerate((("10", 10), ("all", 103 + t))):
            for a, (arm, label) in enumerate(AUG_ARMS.items()):
                f1 = 0.1 + 0.2 * a + 0.1 * k + 0.05 * t
                rows.append({"task": task, "shots": shots, "arm": arm, "n_seeds": 3, "n_real_pos": n_pos,
                             "n_synthetic": 192 if arm == "synthetic" else 0, "precision_mean": 0.5,
                             "precision_std": 0.1, "recall_mean": 0.4, "recall_std": 0.1, "f1_mean": f1,
                             "f1_std": 0.01 * (a + 1), "ap_mean": 0.3, "ap_std": 0.02, "arm_label": label})
    return pd.DataFrame(rows)


def _metrics_page_on_fixture_files(monkeypatch, tmp_path):
    """The Metrics page run on the fixture metric files of :func:`_write_metrics`."""
    model = tmp_path / "model-with-metrics"
    assets = tmp_path / "assets"
    _write_metrics(model, assets)
    monkeypatch.setenv("GALAXYSD_MODEL_DIR", str(model))
    monkeypatch.setattr(config, "ASSETS_DIR", assets)
    return run_app("metrics")


def test_metrics_page_plots_fixture_files(env, monkeypatch, tmp_path):
    at = _metrics_page_on_fixture_files(monkeypatch, tmp_path)
    charts = at.get("plotly_chart")
    # consistency, PRDC, distances, pareto, sweep consistency, feature bars, UpSet, classifier, augmentation
    assert len(charts) >= 9, len(charts)
    assert not at.info and not at.warning, texts(at.info) + texts(at.warning)
    consistency = json.loads(charts[0].proto.spec)
    assert [round(v, 3) for v in plot_values(consistency["data"][0]["y"])] == [0.325, 0.525, 0.725]  # mean
    assert any("0.850" in str(a.get("text")) for a in consistency["layout"]["annotations"])
    assert consistency["data"][0]["line"]["color"] == palette.NEUTRAL  # the mean belongs to no prompt family
    # one sentence under every plot says how to read it, including why distances can rise
    captions = texts(at.caption)
    for key in ("consistency", "prdc", "distance", "pareto", "features", "upset", "classifier", "augmentation"):
        assert figures.HOW_TO_READ[key] in captions, key
    at.selectbox(key="metrics.train_prompt").set_value("sdss, merger").run()
    consistency = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert [round(v, 3) for v in plot_values(consistency["data"][0]["y"])] == [0.35, 0.55, 0.75]
    assert consistency["data"][0]["line"]["color"] == palette.family_colour("sdss, merger")


def test_about_says_what_the_loaded_model_can_and_cannot_draw(env, tiny_model):
    (tiny_model / "metrics").mkdir(exist_ok=True)
    pd.DataFrame({"prompt": ["sdss, smooth", "sdss, merger"], "sweep_variable": "guidance", "guidance": 6.5,
                  "n": 64, "consistency": [0.9, 0.4]}).to_csv(tiny_model / "metrics" / "evaluation.csv", index=False)
    try:
        at = run_app("about")
    finally:
        (tiny_model / "metrics" / "evaluation.csv").unlink()
    md = texts(at.markdown)
    assert "32 x 32 px images" in md  # from the folder's configs, whatever the model's size
    assert "merger (12)" in md and "Rarely seen** (1," in md
    assert "Never seen** (2: pure extrapolation): ring galaxy, dust lane" in md
    assert "`sdss, smooth`: **90 %** of 64 images" in md and "`sdss, merger`: **40 %**" in md


def _augmentation_chart(at) -> dict:
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    found = [s for s in specs if "held-out real test set" in str(s["layout"].get("title", {}).get("text", ""))]
    assert len(found) == 1, [s["layout"].get("title") for s in specs]
    return found[0]


def test_metrics_page_augmentation_grouped_bars_default_f1_and_discussion(env, monkeypatch, tmp_path):
    at = _metrics_page_on_fixture_files(monkeypatch, tmp_path)
    box = at.selectbox(key="metrics.aug_metric")
    assert box.value == "f1"  # F1 by default, and only real metrics offered (no n_seeds, n_real_pos, ...)
    assert box.options == ["F1", "purity (precision)", "completeness (recall)", "average precision (AP)"]
    spec = _augmentation_chart(at)
    assert spec["layout"]["barmode"] == "group"
    assert [t["name"] for t in spec["data"]] == list(AUG_ARMS.values())  # one trace per arm
    expected = _augmentation_results()
    for trace, arm in zip(spec["data"], AUG_ARMS):
        rows = expected[expected["arm"] == arm]
        assert plot_values(trace["y"]) == pytest.approx(rows["f1_mean"].tolist())
        assert plot_values(trace["error_y"]["array"]) == pytest.approx(rows["f1_std"].tolist())
    assert "Where synthetic data helps" in texts(at.markdown)  # the discussion of assets/augmentation/README.md
    box.set_value("ap").run()
    spec = _augmentation_chart(at)
    assert plot_values(spec["data"][0]["y"]) == pytest.approx([0.3] * 4)


def test_metrics_page_without_files_explains_how_to_make_them(env, monkeypatch, tmp_path):
    monkeypatch.setenv("GALAXYSD_MODEL_DIR", str(tmp_path / "empty-model"))
    monkeypatch.setattr(config, "ASSETS_DIR", tmp_path / "no-assets")
    at = run_app("metrics")
    info = texts(at.info)
    assert "galaxysd evaluate --checkpoints" in info and "--sweep" in info
    assert "data describe" in info and "train_classifier.py" in info and "augmentation" in info
    assert not at.get("plotly_chart")


def test_metrics_page_reports_unreadable_files(env, monkeypatch, tmp_path):
    m = tmp_path / "m" / "metrics"
    m.mkdir(parents=True)
    (m / "training_metrics.csv").write_text("consistency\n0.5\n")  # no step column
    (m / "real_benchmark.json").write_text("{not json")
    monkeypatch.setenv("GALAXYSD_MODEL_DIR", str(tmp_path / "m"))
    at = run_app("metrics")
    assert "no 'step' column" in texts(at.warning) and "real_benchmark.json" in texts(at.warning)


# ----------------------------------------------------------------------------- candidates page
def test_candidates_vote_is_stored_and_advances(env):
    at = run_app("candidates")
    assert "0 / 12 vetted" in at.get("progress")[0].proto.text
    assert "demo-00" in texts(at.subheader)
    at.text_input(key="cand.note.demo_candidates.demo-00").set_value("clear ring").run()
    at.button(key="btn.cand.yes").click().run()
    assert not at.exception and not at.error
    store = Store(f"sqlite:///{env / 'store.sqlite'}")
    latest = store.latest_verdicts("demo_candidates")
    assert latest["demo-00"].verdict == "yes" and latest["demo-00"].note == "clear ring"
    assert "1 / 12 vetted" in at.get("progress")[0].proto.text
    assert "1 visibly confirmed" in at.get("progress")[0].proto.text
    assert "demo-01" in texts(at.subheader)  # moved on to the next unvetted candidate
    at.button(key="btn.cand.no").click().run()
    at.button(key="btn.cand.unsure").click().run()
    latest = store.latest_verdicts("demo_candidates")
    assert (latest["demo-01"].verdict, latest["demo-02"].verdict) == ("no", "unsure")
    # filter: only the 'yes'
    at.get("button_group")[0].set_value("yes").run()
    assert "1 candidates" in texts(at.markdown) and "demo-00" in texts(at.subheader)
    # change a verdict: history keeps both, the latest counts
    at.button(key="btn.cand.no").click().run()
    assert store.latest_verdicts("demo_candidates")["demo-00"].verdict == "no"
    assert [v.verdict for v in store.verdict_history("demo_candidates", "demo-00")] == ["yes", "no"]


def test_candidates_navigation_and_export_buttons(env):
    at = run_app("candidates")
    at.button(key="btn.cand.next").click().run()
    assert "demo-01" in texts(at.subheader)
    at.button(key="btn.cand.open.demo-05").click().run()
    assert "demo-05" in texts(at.subheader)
    links = texts(at.markdown)
    assert "skyserver.sdss.org" in links and "legacysurvey.org/viewer" in links
    downloads = {d.proto.label: d for d in at.get("download_button")}
    assert downloads["Export CSV"].proto.disabled  # nothing vetted yet
    at.button(key="btn.cand.yes").click().run()
    downloads = {d.proto.label: d for d in at.get("download_button")}
    assert not downloads["Export CSV"].proto.disabled and not downloads["Export ECSV"].proto.disabled
    assert not downloads["Export VOTable"].proto.disabled and not downloads["Export FITS"].proto.disabled
    # no SAMP hub in the test: a clear message, no traceback
    at.button(key="btn.cand.samp").click().run()
    assert "no SAMP hub is running" in texts(at.error) and not at.exception


def test_candidates_more_like_this(env, monkeypatch, tmp_path):
    monkeypatch.setenv("GALAXYSD_HOME", str(tmp_path / "home"))
    at = run_app("candidates")
    at.button(key="btn.cand.similar").click().run()
    assert not at.exception and not at.error, texts(at.error)
    assert "More like demo-00" in texts(at.markdown)
    opened = [b for b in at.button if b.key and b.key.startswith("btn.cand.simopen.")]
    assert len(opened) == 11 and "btn.cand.simopen.demo-00" not in [b.key for b in opened]  # 12 rows, itself out
    assert list((tmp_path / "home" / "similarity").glob("*.npz"))
    opened[0].click().run()
    assert opened[0].key.rsplit(".", 1)[-1] in texts(at.subheader)  # one click to vet the neighbour


def test_candidates_bad_upload_shows_message(env):
    at = run_app("candidates")
    at.radio(key="keep.cand.source").set_value("upload").run()
    at.file_uploader(key="up.cand.file").set_value(("bad.csv", b"id,image_path\na,x.png\n", "text/csv")).run()
    assert "lacks column(s) ['score']" in texts(at.error)
    assert not at.exception


def test_candidates_catalog_from_path(env, tmp_path, monkeypatch):
    Image.fromarray(_blob(1)).save(tmp_path / "a.png")
    (tmp_path / "mine.csv").write_text("id,score,image_path\nx,0.1,a.png\ny,0.9,a.png\n")
    monkeypatch.setenv("GALAXYSD_ALLOW_SERVER_PATHS", "1")  # typed paths: only when the operator allows them,
    monkeypatch.setenv("GALAXYSD_CATALOGS_DIR", str(tmp_path))  # and only inside the allowed folders
    at = run_app("candidates")
    at.radio(key="keep.cand.source").set_value("path").run()
    at.text_input(key="keep.cand.path").set_value(str(tmp_path / "mine.csv")).run()
    assert "y" in texts(at.subheader) and "0 / 2 vetted" in at.get("progress")[0].proto.text
    assert "no sky links" in texts(at.caption)


def test_candidates_default_is_the_real_catalog_with_images_from_the_data_folder(env, monkeypatch, tmp_path):
    from galaxysd_core.science import candidates as cands

    detg = tmp_path / "detg_candidates"
    (tmp_path / "data" / "imgs").mkdir(parents=True)
    Image.fromarray(_blob(2)).save(tmp_path / "data" / "imgs" / "g.png")
    detg.mkdir()
    (detg / "candidates.ecsv").write_text(
        "# %ECSV 1.0\n# ---\n# datatype:\n# - {name: id, datatype: string}\n# - {name: score, datatype: float64}\n"
        "# - {name: image_path, datatype: string}\n# meta: {image_root: $GALAXYSD_DATA_DIR}\n"
        "id score image_path\ng1 0.9 imgs/g.png\ng2 0.4 imgs/g.png\n")
    monkeypatch.setattr(cands, "DETG_CATALOG_DIR", detg)
    monkeypatch.delenv("GALAXYSD_CANDIDATES")
    at = run_app("candidates")
    assert "0 / 2 vetted" in at.get("progress")[0].proto.text and "detg_candidates" in at.get("progress")[0].proto.text
    # without a data folder: one notice at the top, no broken image (or "no image" line) per candidate
    assert "GALAXYSD_DATA_DIR" in texts(at.info) and "Image not found" not in texts(at.warning)
    assert "(no image)" not in texts(at.caption) and len(at.image) == 0
    assert texts(at.caption).count("see the notice at the top") == 1
    monkeypatch.setenv("GALAXYSD_DATA_DIR", str(tmp_path / "data"))
    at = run_app("candidates")
    assert "GALAXYSD_DATA_DIR" not in texts(at.info) and "Image not found" not in texts(at.warning)
    assert len(at.image) >= 1 and not at.exception


def test_candidates_positions_from_names_probabilities_and_full_ids(env, tmp_path, monkeypatch):
    """A catalog like the D-ETG one: no ra/dec, gz2_cutouts position names or SDSS object ids, component
    probabilities with many digits."""
    (tmp_path / "images").mkdir()
    Image.fromarray(_blob(4)).save(tmp_path / "images" / "a.png")
    (tmp_path / "cands.csv").write_text(
        "id,score,image_path,p_dust_lane,p_smooth\n"
        "J165028.64+384910.0,0.4647781234567891,images/a.png,0.4773231234567891,0.9919161234567891\n"
        "587731890041389215,0.1,images/a.png,0.0183451234567891,0.5\n")
    monkeypatch.setenv("GALAXYSD_CANDIDATES", str(tmp_path / "cands.csv"))
    at = run_app("candidates")
    assert "J165028.64+384910.0  ·  score 0.465" in texts(at.subheader)
    md = texts(at.markdown)
    assert "ra 252.61933°, dec +38.81944° (from the name)" in md
    assert "skyserver.sdss.org/dr18/VisualTools/explore/summary?ra=252.619333&dec=38.819444" in md
    assert "legacysurvey.org/viewer?ra=252.619333&dec=38.819444&layer=ls-dr10&zoom=16" in md
    caps = texts(at.caption)
    assert "p_dust_lane 0.477 · p_smooth 0.992" in caps and "0.4773231" not in caps + md
    assert at.button(key="btn.cand.open.587731890041389215").label.endswith("587731890041389215")  # full id
    at.button(key="btn.cand.enlarge").click().run()
    table = at.table[0].value
    assert table["probability"].to_dict() == {"p_dust_lane": "0.477", "p_smooth": "0.992"}
    at.button(key="btn.cand.open.587731890041389215").click().run()
    # an SDSS DR7 object id encodes no position, but DR7's Explore tool finds the object by its id
    assert "cas.sdss.org/dr7/en/tools/explore/obj.asp?id=587731890041389215" in texts(at.markdown)


# ----------------------------------------------------------------------------- server paths stay closed
CANARY = f"canary-{secrets.token_hex(8)}"
#: The first entry of this process's /proc/self/environ and the first field of /etc/passwd: neither may
#: ever appear on a page (the old Candidates page printed both inside "Columns found: [...]").
ENVIRON_MARK = Path("/proc/self/environ").read_bytes().split(b"\0")[0].decode(errors="replace")
PASSWD_MARK = "root:x:0:0"
#: What a visitor types into every server-path input: system files, '..' out of the roots, symbolic
#: links (a folder link and a file through it) pointing out of an allowed folder; {root} = that folder.
HOSTILE_PATHS = ("/proc/self/environ", "/etc/passwd", "../../etc/passwd", "{root}/link_out", "{root}/link_out/secret.txt",
                 "link_out/secret.txt")
REFUSED = "outside the folders this server allows"


def page_text(at: AppTest) -> str:
    """Every string of the rendered page (all elements' protos, sidebar included)."""
    out = []

    def walk(node):
        if getattr(node, "proto", None) is not None:
            out.append(str(node.proto))
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(at._tree)
    return "\n".join(out)


def assert_nothing_leaked(at: AppTest) -> None:
    text = page_text(at)
    assert CANARY not in text, "a canary (environment variable / file outside the roots) reached the page"
    assert ENVIRON_MARK not in text and PASSWD_MARK not in text, "server file content reached the page"
    assert not at.exception, [e.value for e in at.exception]


@pytest.fixture
def served(env, monkeypatch, tmp_path) -> Path:
    """Server paths enabled, one allowed catalogs folder (a catalog + an image inside); outside it a canary
    file and a canary image, and a symbolic link to their folder inside; a canary in the environment."""
    root = tmp_path / "served"
    (root / "imgs").mkdir(parents=True)
    Image.fromarray(_blob(1)).save(root / "imgs" / "a.png")
    (root / "mine.csv").write_text("id,score,image_path\nx,0.1,imgs/a.png\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text(f"GALAXYSD_CANARY={CANARY}\n{PASSWD_MARK}:{CANARY}:/root:/bin/sh\n")
    Image.fromarray(_blob(9)).save(outside / "secret.png")
    (root / "link_out").symlink_to(outside, target_is_directory=True)
    monkeypatch.setenv("GALAXYSD_CANARY", CANARY)
    monkeypatch.setenv("GALAXYSD_ALLOW_SERVER_PATHS", "1")
    monkeypatch.setenv("GALAXYSD_CATALOGS_DIR", str(root))
    return root


def test_server_path_inputs_are_absent_unless_enabled(env, monkeypatch, data_dir):
    monkeypatch.setenv("GALAXYSD_DATA_DIR", str(data_dir))
    at = run_app("candidates")
    assert at.radio(key="keep.cand.source").options == ["Shipped catalog", "Upload a catalog"]
    at.radio(key="keep.cand.source").set_value("upload").run()
    assert [w.key for w in at.main.text_input] == [] and at.file_uploader(key="up.cand.file")  # uploads still work
    at = run_app("real_vs_synthetic")
    assert "data_dir" not in [w.key for w in at.sidebar.text_input]  # no box to point the app anywhere
    assert len(at.image) >= 2 and not at.error  # ... and $GALAXYSD_DATA_DIR is used as configured
    at = run_app()
    at.radio(key="keep.gen.init_mode").set_value("data").run()
    assert "data_dir" not in [w.key for w in at.sidebar.text_input] and at.selectbox(key="keep.gen.real_pick")


@pytest.mark.parametrize("typed", HOSTILE_PATHS)
def test_typed_catalog_and_image_folder_outside_the_roots_are_refused(served, typed):
    typed = typed.format(root=served)
    at = run_app("candidates")
    at.radio(key="keep.cand.source").set_value("path").run()
    at.text_input(key="keep.cand.path").set_value(typed).run()
    assert REFUSED in texts(at.error) and not at.get("progress"), texts(at.error)
    assert_nothing_leaked(at)
    at.text_input(key="keep.cand.path").set_value("mine.csv").run()  # inside the catalogs folder: fine
    assert "0 / 1 vetted" in at.get("progress")[0].proto.text and len(at.image) >= 1
    at.text_input(key="keep.cand.images").set_value(typed).run()  # the image folder box, same rule
    assert REFUSED in texts(at.error) and not at.get("progress")
    assert_nothing_leaked(at)


@pytest.mark.parametrize("typed", [*HOSTILE_PATHS, "{root}/nowhere"])
def test_sidebar_data_folder_outside_the_roots_is_refused(served, typed, data_dir, monkeypatch):
    monkeypatch.setenv("GALAXYSD_DATA_DIR", str(data_dir))
    typed = typed.format(root=served)
    for page in ("real_vs_synthetic", None):  # Real vs synthetic, and Generate's start image
        at = run_app(page)
        if page is None:
            at.radio(key="keep.gen.init_mode").set_value("data").run()
        assert at.sidebar.text_input(key="data_dir").value == str(data_dir)
        at.sidebar.text_input(key="data_dir").set_value(typed).run()
        err = texts(at.sidebar.error)
        assert (REFUSED in err) if "nowhere" not in typed else ("no real-data folder at" in err), err
        assert_nothing_leaked(at)
        assert not [i for i in at.image], "an image was shown from a refused folder"


def test_uploaded_catalog_image_paths_stay_inside_the_image_folder(served):
    outside = served.parent / "outside"
    text = ("id,score,image_path\n"
            f"abs,0.9,{outside / 'secret.png'}\nclimb,0.8,../outside/secret.png\nlink,0.7,link_out/secret.png\n"
            "passwd,0.6,/etc/passwd\nclimb2,0.5,../../etc/passwd\nenviron,0.4,/proc/self/environ\nok,0.1,imgs/a.png\n")
    at = run_app("candidates")
    at.radio(key="keep.cand.source").set_value("upload").run()
    at.text_input(key="keep.cand.images").set_value(str(served)).run()
    at.file_uploader(key="up.cand.file").set_value(("hostile.csv", text.encode(), "text/csv")).run()
    warn = texts(at.warning)
    assert "6 image path(s) refused (ids abs, climb, link, passwd, climb2, environ)" in warn, warn
    assert "Image path `" + str(outside / "secret.png") + "` refused" in warn  # the current (top) row
    assert len(at.image) == 1  # the grid shows the one image inside the folder, none from outside
    assert_nothing_leaked(at)
    for cid in ("climb", "link", "passwd", "environ"):
        at.button(key=f"btn.cand.open.{cid}").click().run()
        assert "refused: it leaves the catalog's image folder" in texts(at.warning) and len(at.image) == 1
        assert_nothing_leaked(at)


def test_thumbnails_are_read_only_inside_their_root(served):
    from pages import _ui

    inside, outside = served / "imgs" / "a.png", served.parent / "outside" / "secret.png"
    assert _ui.thumbnail(str(inside), 64, root=served) is not None
    for path in (outside, served / "link_out" / "secret.png", served / "imgs" / ".." / ".." / "outside" / "secret.png"):
        assert _ui.thumbnail(str(path), 64, root=served) is None, path
    assert _ui.thumbnail(str(inside), 64, root=None) is None  # no image folder: nothing is opened


def test_uploads_without_server_paths_refuse_absolute_image_paths_and_big_files(env, tmp_path):
    Image.fromarray(_blob(9)).save(tmp_path / "secret.png")
    text = f"id,score,image_path\nabs,0.9,{tmp_path / 'secret.png'}\nclimb,0.5,../../etc/passwd\n"
    at = run_app("candidates")
    at.radio(key="keep.cand.source").set_value("upload").run()
    at.file_uploader(key="up.cand.file").set_value(("hostile.csv", text.encode(), "text/csv")).run()
    assert "2 image path(s) refused" in texts(at.warning) and len(at.image) == 0
    assert "does not offer" in texts(at.caption)  # relative paths: no image folder on this server
    big = b"id,score,image_path\n" + b"x" * (21 * 2**20)
    at.file_uploader(key="up.cand.file").set_value(("big.csv", big, "text/csv")).run()
    assert "at most 20 MiB are accepted" in texts(at.error)
    assert_nothing_leaked(at)


# ----------------------------------------------------------------------------- real vs synthetic
def test_real_vs_synthetic_without_data_explains_setup(env):
    at = run_app("real_vs_synthetic")
    info = texts(at.info)
    assert "GALAXYSD_DATA_DIR" in info and "data download" in info


def test_real_vs_synthetic_with_data_compare_and_quiz(env, monkeypatch, data_dir):
    monkeypatch.setenv("GALAXYSD_DATA_DIR", str(data_dir))
    at = run_app("real_vs_synthetic")
    assert not at.error and not at.warning, texts(at.error) + texts(at.warning)
    assert at.selectbox(key="keep.rvs.caption").value == "sdss, smooth"  # most common caption first
    at.slider(key="keep.rvs.n").set_value(4).run()
    n_real = len(at.image)
    assert n_real == 4
    at.button(key="btn.rvs.generate").click().run()
    assert not at.error, texts(at.error)
    assert len(at.image) == 8
    assert at.get("plotly_chart"), "light-profile histograms missing"
    at.button(key="btn.rvs.quiz_new").click().run()
    quiz = at.session_state["rvs.quiz"]
    assert len(quiz.images) == 4 and 0 <= quiz.fake_index < 4
    at.button(key=f"btn.rvs.quiz_pick.{quiz.fake_index}").click().run()
    assert "Right, that one was generated" in texts(at.success)
    summary = Store(f"sqlite:///{env / 'store.sqlite'}").quiz_summary()
    assert summary == {"answered": 1, "correct": 1, "accuracy": 1.0}
    assert "Your score: 1/1" in texts(at.caption)


def test_real_vs_synthetic_prefers_gz2_cutouts_and_quiz_images_share_size(env, monkeypatch, data_dir, tmp_path):
    import shutil

    root = tmp_path / "data"
    shutil.copytree(data_dir / "examples", root / "gz2_cutouts")
    shutil.copytree(data_dir / "examples", root / "other_set")
    monkeypatch.setenv("GALAXYSD_DATA_DIR", str(root))
    at = run_app("real_vs_synthetic")
    assert at.selectbox(key="keep.rvs.source").value == "gz2_cutouts"
    assert "10 real galaxies" in texts(at.caption) and "(gz2_cutouts)" in texts(at.caption)
    assert "share size and framing" in texts(at.caption)
    at.button(key="btn.rvs.quiz_new").click().run()
    quiz = at.session_state["rvs.quiz"]
    assert len({im.shape for im in quiz.images}) == 1 and quiz.images[0].shape[0] == 32  # the model's size
    assert all(rid.startswith("g") for rid in quiz.real_ids)
    at.selectbox(key="keep.rvs.source").set_value("all").run()
    assert "20 real galaxies" in texts(at.caption)


def test_real_vs_synthetic_sidebar_path_and_bad_folder(env, tmp_path, monkeypatch):
    # the sidebar box exists only when the operator allows server paths, and only for allowed folders
    monkeypatch.setenv("GALAXYSD_ALLOW_SERVER_PATHS", "1")
    monkeypatch.setenv("GALAXYSD_CATALOGS_DIR", str(tmp_path))
    at = run_app("real_vs_synthetic")
    at.sidebar.text_input(key="data_dir").set_value(str(tmp_path / "missing")).run()
    assert "no real-data folder at" in texts(at.error)
    empty = tmp_path / "empty"
    empty.mkdir()
    at.sidebar.text_input(key="data_dir").set_value(str(empty)).run()
    assert "No galaxies with images" in texts(at.warning)


# ----------------------------------------------------------------------------- studio logic
def test_check_request_limits():
    limits.check_request(16, 50)
    with pytest.raises(GalaxySDValueError, match="image-steps"):
        limits.check_request(16, 51)
    with pytest.raises(GalaxySDValueError, match="at most 16"):
        limits.check_request(17, 1)
    with pytest.raises(GalaxySDValueError):
        limits.check_request(0, 10)


def test_generation_gate_serialises_and_times_out():
    gate = limits.GenerationGate(1)
    running, peak = [0], [0]
    lock = threading.Lock()

    def work():
        with gate.slot(timeout=30):
            with lock:
                running[0] += 1
                peak[0] = max(peak[0], running[0])
            time.sleep(0.02)
            with lock:
                running[0] -= 1

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak[0] == 1
    with gate.slot(timeout=1):
        with pytest.raises(ServerBusyError, match="busy"):
            with gate.slot(timeout=0.05):
                pass
    assert gate.running == 0 and gate.waiting == 0


def test_controls_round_trip_every_feature():
    for control in controls.question_controls():
        for phrase in control.phrases:
            for w in (0.5, 1.0, 1.35, 2.0):
                state, notes = controls.controls_from_features({phrase: w})
                assert state[control.stem] == (phrase, w) and notes == []
                text = controls.prompt_from_controls(state)
                assert controls.controls_from_prompt(text)[0] == state
    stems = [c.stem for c in controls.question_controls()]
    assert stems[0] == "t01_smooth_or_features" and "t06_odd" not in stems  # t06 has no captioned answer


def test_settings_from_png_clamps_and_notes():
    settings, notes = controls.settings_from_png({"prompt": "sdss, smooth", "num_inference_steps": 500,
                                                   "guidance_scale": 7, "scheduler": "unipc", "seed": 2**40,
                                                   "init_image": True, "strength": 0.3})
    assert settings["steps"] == limits.MAX_UI_STEPS and settings["seed"] == limits.MAX_UI_SEED
    assert settings["strength"] == 0.3 and "scheduler" not in settings
    assert any("unipc" in n for n in notes) and any("img2img" in n for n in notes)
    with pytest.raises(GalaxySDValueError):
        controls.settings_from_png({"seed": 1})


def test_real_index_and_matches(data_dir):
    index, problems = real_data.load_real_index(data_dir)
    assert problems == [] and len(index) == 10
    rows, match = real_data.real_matches(index, "sdss, {dust lane:1.5}", 10)
    assert match == "same caption" and len(rows) == 4
    rows, match = real_data.real_matches(index, "sdss, merger", 10)
    assert match == "none" and len(rows) == 0
    images, ids = real_data.load_real_images(rows.head(0), 32)
    assert images.shape == (0, 32, 32, 3) and ids == []
    images, ids = real_data.load_real_images(index.head(3), 32)
    assert images.shape == (3, 32, 32, 3) and len(ids) == 3


def test_real_index_skips_image_paths_that_leave_the_data_folder(tmp_path):
    root, outside = tmp_path / "data", tmp_path / "outside"
    (root / "src" / "images").mkdir(parents=True)
    outside.mkdir()
    Image.fromarray(_blob(0)).save(root / "src" / "images" / "in.png")
    Image.fromarray(_blob(1)).save(outside / "out.png")
    (root / "src" / "images" / "link.png").symlink_to(outside / "out.png")
    col = "t01_smooth_or_features_a01_smooth"
    pd.DataFrame({"filename": ["images/in.png", str(outside / "out.png"), "../../outside/out.png", "images/link.png"],
                  "gz2_column": [col] * 4}).to_csv(root / "src" / "labels.csv", index=False)
    index, problems = real_data.load_real_index(root)
    assert [Path(p).name for p in index["image_path"]] == ["in.png"]
    assert problems == ["src: 3 image path(s) leave the data folder (absolute, '..' or a symbolic link out of it) "
                        "and are skipped"]


def test_quiz_round_places_one_fake():
    real = np.zeros((5, 16, 16, 3), np.uint8)
    fake = np.full((32, 32, 3), 255, np.uint8)
    q = new_quiz_round(real, [f"r{i}" for i in range(5)], fake, "p", 9, rng=np.random.default_rng(1))
    assert len(q.images) == 4 and q.images[q.fake_index].mean() == 255 and q.images[q.fake_index].shape == (16, 16, 3)
    assert sum(int(im.mean() == 255) for im in q.images) == 1
    with pytest.raises(GalaxySDValueError, match="needs 3 real"):
        new_quiz_round(real[:2], ["a", "b"], fake, "p", 1)


def test_augmentation_figure_of_the_shipped_results_groups_the_arms():
    results = pd.read_csv(config.ASSETS_DIR / "augmentation" / "results.csv")
    assert metric_files.augmentation_metrics(results)[0] == "f1"
    assert "n_seeds" not in metric_files.augmentation_metrics(results)
    fig = figures.augmentation_figure(results)
    arms = results["arm"].unique()
    assert fig.layout.barmode == "group" and len(fig.data) == len(arms) == 5
    assert all(len(t.y) == len(results) // len(arms) for t in fig.data)  # every (task, shots) group has each arm
    assert max(max(t.y) for t in fig.data) <= 1.0  # side by side, not stacked (stacked F1 reached ~3.5)
    assert all(t.error_y.array is not None and len(t.error_y.array) == len(t.y) for t in fig.data)
    assert figures.augmentation_figure(results.drop(columns=["f1_mean"])) is None


def test_read_metrics_accepts_evaluation_csv_names(tmp_path):
    m = tmp_path / "metrics"
    m.mkdir()
    pd.DataFrame({"base_prompt": ["a", "a"], "sweep_variable": ["guidance"] * 2, "sweep_value": [1, 6.5],
                  "precision": [0.2, 0.6], "recall": [0.5, 0.3], "consistency": [0.1, 0.4]}).to_csv(
        m / "evaluation.csv", index=False)
    (m / "real_benchmark.json").write_text(json.dumps({"consistency_on_real": {"consistency": 0.8},
                                                       "paper_real_consistency": 0.895}))
    b = metric_files.read_metrics(tmp_path, tmp_path / "assets")
    assert b.pareto is not None and b.training is None and b.problems == []
    cols = metric_files.pareto_columns(b.pareto)
    assert (cols["realism"], cols["diversity"], cols["prompt"]) == ("precision", "recall", "base_prompt")
    assert metric_files.benchmark_consistency(b.benchmark) == [("real images (our classifier)", 0.8),
                                                           ("real images (GalaxySD paper)", 0.895)]


def test_concurrent_sessions_get_the_same_images_as_sequential_ones(tiny_model):
    """Two sessions generating at once (through the gate) get exactly what each gets alone: the
    pipeline has no lock and shares no scheduler or generator state between requests. The two
    requests are forced to overlap: their first 4 steps run in lock step (a barrier in the progress
    callback, which a lock serialising the calls would make time out)."""
    pipe = load_pipeline(tiny_model)
    reqs = [generation.GenerationRequest(prompt="sdss, smooth", n_images=2, steps=4, seed=3, scheduler="euler_a"),
            generation.GenerationRequest(prompt="sdss, merger", n_images=2, steps=6, seed=8, scheduler="dpmpp")]
    alone = [[it.image for it in generation.generate(pipe, r)] for r in reqs]
    results, errors = [None, None], []
    gate = limits.GenerationGate(2)  # let both into the pipeline at once
    barrier = threading.Barrier(2, timeout=60)

    def in_lock_step(step, total):
        if step <= 4:  # both requests have at least 4 steps
            barrier.wait()

    def run(i):
        try:
            results[i] = [it.image for it in generation.generate(pipe, reqs[i], in_lock_step, gate=gate)]
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, f"the requests could not run at the same time: {errors!r}"
    for got, expected in zip(results, alone):
        assert len(got) == 2 and all(np.array_equal(a, b) for a, b in zip(got, expected))


def test_metrics_page_shows_the_per_feature_tables_of_the_shipped_classifier(env, monkeypatch):
    """The held-out figures of every classifier head (assets/classifier/metrics.csv) and the generated-vs-real
    table per feature are shown on the Metrics page."""
    import pandas as pd

    monkeypatch.delenv("GALAXYSD_MODEL_DIR", raising=False)
    shipped = pd.read_csv(config.ASSETS_DIR / "classifier" / "metrics.csv")
    at = run_app("metrics")
    assert "Per feature, held-out real galaxies" in texts(at.subheader)
    frames = [d.value for d in at.dataframe]
    heads = next(f for f in frames if "ROC AUC" in f.columns)
    assert heads["feature"].tolist() == shipped["phrase"].tolist()
    assert heads["ROC AUC"].round(6).tolist() == shipped["auc"].round(6).tolist()
    assert {"smooth", "edge-on galaxy", "merger"} <= set(heads["feature"])
    comparison = [f for f in frames if "generated_seen" in f.columns]
    # the generated-vs-real table needs the shipped model's evaluation table (absent while a model is released)
    expected = metric_files.generated_vs_real_table(metric_files.read_metrics(config.DEFAULT_MODEL_DIR))
    assert bool(comparison) == (expected is not None)
    if expected is not None:
        assert {"feature", "has_head", "real_seen", "gap"} <= set(comparison[0].columns)


def test_candidates_rerank_from_verdicts(env, monkeypatch, tmp_path):
    monkeypatch.setenv("GALAXYSD_HOME", str(tmp_path / "home"))
    at = run_app("candidates")
    assert at.button(key="btn.cand.rerank").disabled  # needs a yes and a no
    at.button(key="btn.cand.yes").click().run()
    at.button(key="btn.cand.no").click().run()
    assert not at.button(key="btn.cand.rerank").disabled
    at.button(key="btn.cand.rerank").click().run()
    assert not at.exception and not at.error, texts(at.error)
    assert "re-ranked from 2 verdicts" in at.get("progress")[0].proto.text
    rr = at.session_state["cand.rerank.demo_candidates"]
    assert rr["n"] == 2 and rr["p"].notna().sum() == 12
    at.button(key="btn.cand.rerank_off").click().run()
    assert "sorted by score" in at.get("progress")[0].proto.text
