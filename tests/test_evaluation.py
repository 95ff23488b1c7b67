"""Tests of galaxysd_core.evaluation (config, reference, runner, checkpoints) and the ``galaxysd evaluate``
command (tiny random models)."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from galaxysd_core.errors import GalaxySDFileError, GalaxySDValueError
from galaxysd_core.evaluation.checkpoints import evaluate_checkpoints, find_checkpoints
from galaxysd_core.evaluation.config import EvaluationConfig, Sweep, read_prompts, set_phrase_weight
from galaxysd_core.evaluation.reference import RealReference
from galaxysd_core.evaluation.runner import evaluate
from galaxysd_core.models.classifier import ClassifierConfig, MorphologyClassifier
from galaxysd_core.prompts.grammar import prompt_tags
from galaxysd_core.schema.captioning import answer_targets

SMOOTH = "sdss, smooth"
SPIRAL = "sdss, features or disk-shaped, spiral galaxy"


# ------------------------------------------------------------------------------- helpers
def test_sweep_parsing():
    assert Sweep.parse("guidance=1,3,6.5") == Sweep("guidance", [1.0, 3.0, 6.5])
    s = Sweep.parse("weight:dust  lane=0.8,1.3,2.0")
    assert s.variable == "weight:dust lane" and s.phrase == "dust lane"
    cfg = EvaluationConfig()
    assert s.apply(SPIRAL, cfg, 1.3) == (SPIRAL + ", {dust lane:1.3}", 6.5, 20)
    assert Sweep.parse("steps=5,10").apply(SMOOTH, cfg, 5) == (SMOOTH, 6.5, 5)
    for bad, msg in [("guidance", "no '='"), ("cfg=1,2", "unknown sweep variable"), ("steps=1.5", "integers"),
                     ("guidance=a,b", "numbers"), ("weight:=1", "names no phrase")]:
        with pytest.raises(GalaxySDValueError, match=msg):
            Sweep.parse(bad)


def test_prompt_helpers(tmp_path):
    assert set_phrase_weight("sdss, {spiral galaxy:1.2}", "spiral galaxy", 2.0) == "sdss, {spiral galaxy:2}"
    assert set_phrase_weight("sdss, spiral galaxy", "spiral galaxy", 1.0) == "sdss, spiral galaxy"
    assert prompt_tags("sdss, {spiral galaxy:1.3}, features or disk-shaped") == prompt_tags(SPIRAL)
    assert prompt_tags("sdss, smooth, {merger:0}") == prompt_tags(SMOOTH)
    f = tmp_path / "prompts.txt"
    f.write_text("# comment\nsdss, smooth\n\nsdss, merger\n")
    assert read_prompts([str(f), "sdss, star or artifact"]) == [SMOOTH, "sdss, merger", "sdss, star or artifact"]
    with pytest.raises(GalaxySDValueError):
        read_prompts([])


def test_find_checkpoints(tmp_path):
    for name, step in [("snapshots/step-000020", None), ("snapshots/step-000010", None), ("model", 30)]:
        d = tmp_path / name
        d.mkdir(parents=True)
        (d / "model_index.json").write_text("{}")
        if step is not None:
            (d / "training_captions.json").write_text(json.dumps({"step": step}))
    (tmp_path / "checkpoint-10").mkdir()  # accelerate state: not a pipeline
    assert [(s, p.name) for s, p in find_checkpoints(tmp_path)] == [(10, "step-000010"), (20, "step-000020"),
                                                                    (30, "model")]
    with pytest.raises(GalaxySDFileError, match="save_snapshots"):
        find_checkpoints(tmp_path / "checkpoint-10")


# ------------------------------------------------------------------------------- end to end
def blobs(n, sigma, seed):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:32, 0:32] - 15.5
    out = []
    for _ in range(n):
        s = sigma * rng.uniform(0.8, 1.2)
        g = np.exp(-0.5 * (x ** 2 + y ** 2) / s ** 2)[..., None] * np.array([0.9, 0.8, 0.6])
        out.append(np.clip(g * 255 + rng.normal(0, 5, g.shape), 0, 255).astype(np.uint8))
    return np.stack(out)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from tiny_models import build_tiny_pipeline

    root = tmp_path_factory.mktemp("eval")
    pipe = build_tiny_pipeline(seed=0)
    pipe.save_pretrained(root / "model")
    torch.manual_seed(0)
    MorphologyClassifier(ClassifierConfig(channels=[4, 8], image_size=16)).save_pretrained(root / "clf")
    # a synthetic real cache in the prepared-cache format (no real images copied)
    from PIL import Image

    from galaxysd_core.data.cache import prepare_dataset

    imgs = np.concatenate([blobs(12, 3.0, 0), blobs(12, 6.0, 1)])
    records = []
    for i, im in enumerate(imgs):
        path = root / "img" / f"g{i}.png"
        path.parent.mkdir(exist_ok=True)
        Image.fromarray(im).save(path)
        cols = ["t01_smooth_or_features_a01_smooth"] if i < 12 else ["t04_spiral_a08_spiral"]
        records.append({"id": f"g{i}", "image_path": str(path), "caption": SMOOTH if i < 12 else SPIRAL,
                        "source": "synthetic", "targets": answer_targets(cols)})
    prepare_dataset(records, root / "cache", resolution=32, crop_fraction=1.0, show_progress=False)
    pd.DataFrame({"id": ["g0", "g1", "g12", "g13"], "caption": [SMOOTH, SMOOTH, SPIRAL, SPIRAL]}).to_csv(
        root / "clf" / "split_test_ids.csv", index=False)
    return root


def test_cli_evaluate_writes_tidy_tables(tiny):
    from galaxysd_core.cli import main

    out = tiny / "out"
    rc = main(["evaluate", "--model", str(tiny / "model"), "--prompts", SMOOTH, "-n", "3", "--steps", "2",
               "--sweep", "guidance=1,6.5", "--real-cache", str(tiny / "cache"), "--classifier",
               str(tiny / "clf"), "--min-reference", "5", "--quiet", "--out", str(out)])
    assert rc == 0
    table = pd.read_csv(out / "evaluation.csv")
    assert len(table) == 2 and table["sweep_value"].tolist() == [1.0, 6.5]
    assert table["guidance"].tolist() == [1.0, 6.5] and (table["steps"] == 2).all() and (table["n"] == 3).all()
    # the negative prompt the pipeline used: none without guidance, the automatic GZ2-tree one with it
    assert table["negative_prompt"].fillna("").tolist() == ["", "sdss, features or disk-shaped, star or artifact"]
    for col in ("model", "prompt", "sweep_variable", "consistency", "precision", "recall", "density", "coverage",
                "domain_fd", "domain_kid", "wasserstein_r50", "wasserstein_concentration", "wasserstein_asymmetry",
                "wasserstein_ellipticity", "wasserstein_colour_gr", "seen:smooth", "reference", "n_real"):
        assert col in table.columns, col
    assert (table["reference"] == "same caption").all() and (table["n_real"] == 12).all()
    assert table["prdc_k"].tolist() == [2, 2]  # k lowered to n - 1 for 3 images
    assert table[["precision", "recall", "coverage"]].apply(lambda c: c.between(0, 1)).all().all()
    assert np.isfinite(table["domain_fd"]).all() and np.isfinite(table["domain_kid"]).all()
    # a random tiny model paints noise textures with no galaxy (negative background-subtracted flux),
    # so light profiles are undefined (NaN) there; finite values are tested in test_measure_known_sets
    assert "wasserstein_r50" in table.columns
    assert table["consistency"].between(0, 1).all()
    rows = json.loads((out / "evaluation.json").read_text())["rows"]
    assert rows[0]["model"] == "model" and rows[0]["sweep_variable"] == "guidance"
    bench = json.loads((out / "real_benchmark.json").read_text())
    assert bench["paper_real_consistency"] == 0.895
    assert bench["consistency_on_real"]["images"] == "classifier held-out test ids"
    assert bench["consistency_on_real"]["n_images"] == 4
    assert bench["real_vs_real"]["sample_size"] == 3 and "domain_fd" in bench["real_vs_real"]
    assert set(bench["physical"]["per_caption"]) == {SMOOTH, SPIRAL}
    per_feature = {r["feature"]: r for r in bench["real_per_feature"]}  # one row per head, then unchecked
    assert set(MorphologyClassifier.from_pretrained(tiny / "clf").feature_phrases) <= set(per_feature)
    assert per_feature["smooth"]["n_images"] == 2 and per_feature["smooth"]["has_head"]
    assert "unchecked" in table.columns
    # the two blob populations differ in size as constructed (sigma 3 vs 6 px)
    per = bench["physical"]["per_caption"]
    assert per[SPIRAL]["r50"]["median"] > 1.5 * per[SMOOTH]["r50"]["median"]
    cfg = json.loads((out / "evaluation_config.json").read_text())
    assert cfg["config"]["n"] == 3 and cfg["sweeps"][0]["variable"] == "guidance" and "torch" in cfg["versions"]


def test_evaluate_weight_sweep_without_real_and_checkpoints(tiny, tmp_path):
    from galaxysd_core.pipelines.pipeline_galaxysd import GalaxySDPipeline

    pipe = GalaxySDPipeline.from_pretrained(tiny / "model")
    cfg = EvaluationConfig(n=2, steps=1, guidance=1.0)
    res = evaluate(pipe, [SPIRAL], config=cfg, sweeps=["weight:spiral galaxy=0.5,2"], classifier=tiny / "clf",
                   progress=False)
    t = res.table
    assert t["prompt"].tolist() == ["sdss, features or disk-shaped, {spiral galaxy:0.5}",
                                    "sdss, features or disk-shaped, {spiral galaxy:2}"]
    assert (t["reference"] == "none").all() and t["precision"].isna().all() and res.benchmark is None
    assert t["n_checked"].tolist() == [2, 2]
    snaps = tmp_path / "run" / "snapshots"
    for step in (5, 10):
        pipe.save_pretrained(snaps / f"step-{step:06d}")
    real = RealReference(images=np.concatenate([blobs(6, 3.0, 2), blobs(6, 6.0, 3)]), captions=[SMOOTH] * 12,
                         ids=[str(i) for i in range(12)])
    res = evaluate_checkpoints(tmp_path / "run", [SMOOTH], config=cfg, classifier=tiny / "clf", real=real,
                               out_dir=tmp_path / "out", progress=False)
    assert res.table["step"].tolist() == [5, 10]
    # identical weights at both steps and fixed seeds: identical metrics
    a, b = res.table.iloc[0], res.table.iloc[1]
    for col in ("consistency", "precision", "domain_fd", "wasserstein_r50"):
        assert a[col] == b[col] or (math.isnan(a[col]) and math.isnan(b[col]))
    assert (tmp_path / "out" / "checkpoints.csv").is_file() and (tmp_path / "out" / "real_benchmark.json").is_file()


def test_measure_known_sets(tiny):
    from galaxysd_core.evaluation.runner import measure

    clf = MorphologyClassifier.from_pretrained(tiny / "clf")
    small, large = blobs(16, 3.0, 5), blobs(16, 6.0, 6)
    real = RealReference(images=np.concatenate([small, large]), captions=[SMOOTH] * 16 + [SPIRAL] * 16,
                         ids=[str(i) for i in range(32)])
    cfg = EvaluationConfig(n=8, k=3, kid_subsets=5, min_reference=10)
    same = measure(small[:8], SMOOTH, clf, cfg, real)  # generated = real images of that caption
    assert same["reference"] == "same caption" and same["n_real"] == 16
    assert same["precision"] == 1.0 and same["wasserstein_r50"] < 0.3
    other = measure(large[:8], SMOOTH, clf, cfg, real)  # twice as large as the smooth reference
    assert other["wasserstein_r50"] > 5 * same["wasserstein_r50"] and other["wasserstein_r50"] > 1.0
    assert other["domain_fd"] > same["domain_fd"]
    fallback = measure(small[:8], "sdss, merger", clf, cfg, real)
    assert fallback["reference"] == "all real" and fallback["n_real"] == 32


@pytest.mark.slow  # ~150 tiny pipeline calls: the whole release protocol at 1 step
def test_release_model_writes_metrics_grids_defaults_and_card(tiny, tmp_path):
    import shutil

    from galaxysd_core.evaluation.release import release_model
    from galaxysd_core.models.classifier import ClassifierConfig
    from galaxysd_core.pipelines.generation_defaults import GenerationDefaults
    from galaxysd_core.pipelines.pipeline_galaxysd import load_pipeline
    from galaxysd_core.pipelines.sky_noise import SkyNoise

    run = tmp_path / "run"
    shutil.copytree(tiny / "model", run / "model")
    (run / "model" / "training_captions.json").write_text(json.dumps(
        {"step": 7, "n_images": 24, "caption_counts": {SMOOTH: 12, SPIRAL: 12},
         "feature_counts": {"smooth": 12, "spiral galaxy": 40, "dust lane": 0}}))
    (run / "model" / "train_config.yaml").write_text("model: {resolution: 32, vae_channels: [8, 8]}\nlearning_rate: 0.001\n")
    for step in (3, 7):
        snap = run / "snapshots" / f"step-{step:06d}"
        shutil.copytree(run / "model", snap)
        info = json.loads((snap / "training_captions.json").read_text())
        (snap / "training_captions.json").write_text(json.dumps({**info, "step": step}))
    # a vote classifier (softmax over the GZ2 answers) so the dust-lane sweep can be read
    torch.manual_seed(0)
    clf = tmp_path / "vote_clf"
    MorphologyClassifier(ClassifierConfig(channels=[4, 8], image_size=16, output="softmax", feature_columns=[
        "t01_smooth_or_features_a01_smooth", "t04_spiral_a08_spiral", "t08_odd_feature_a19_ring"])).save_pretrained(clf)
    shutil.copy(tiny / "clf" / "split_test_ids.csv", clf / "split_test_ids.csv")
    out = tmp_path / "release"
    (out / "metrics").mkdir(parents=True)
    (out / "metrics" / "kept.txt").write_text("from an earlier release")
    card = release_model(run, out, [tiny / "cache"], n=2, n_sweep=2, n_checkpoints=2, steps=1,
                         guidance_values=(1.5, 4.0), classifier=clf, bench_text="bench numbers", notes=["a note"],
                         progress=False)
    assert card == out / "README.md" and (out / "model_index.json").is_file()
    assert (out / "metrics" / "kept.txt").is_file()  # metrics of an earlier release survive the copy
    for name in ("reconstruction.json", "guidance_sweep.csv", "pareto.csv", "front.png", "evaluation.csv",
                 "real_benchmark.json", "feature_effects.csv", "dust_sweep.csv", "background.json",
                 "pixel_histograms.png", "checkpoints.csv", "training_metrics.csv", "training_curves.png",
                 "figure3.csv"):
        assert (out / "metrics" / name).is_file(), name
    for name in ("samples_grid.png", "figure3.png", "dust_sweep.png", "sky_noise.json", "generation_defaults.json"):
        assert (out / name).is_file(), name
    sweep = pd.read_csv(out / "metrics" / "guidance_sweep.csv")
    assert len(sweep) == 2 * 7 * 2 and set(sweep["tree_negatives"]) == {True, False}  # policies x prompts x guidance
    front = pd.read_csv(out / "metrics" / "pareto.csv")
    assert len(front) == 4 and front["chosen"].sum() == 1 and front.loc[front["chosen"], "on_front"].all()
    chosen = front[front["chosen"]].iloc[0]
    defaults = GenerationDefaults.load(out)
    assert (defaults.guidance_scale, defaults.tree_negatives) == (chosen["guidance"], bool(chosen["tree_negatives"]))
    pipe = load_pipeline(out)  # the pipeline picks the chosen defaults and the measured noise up
    assert pipe.generation_defaults == defaults and isinstance(pipe.sky_noise, SkyNoise)
    table = pd.read_csv(out / "metrics" / "evaluation.csv")
    assert (table["guidance"] == chosen["guidance"]).all() and len(table) == 7
    fx = pd.read_csv(out / "metrics" / "feature_effects.csv")
    assert set(fx["head"]) == {"smooth", "spiral galaxy", "ring galaxy"}  # pairs the classifier can judge
    assert np.allclose(fx["delta"], fx["p_on"] - fx["p_off"])
    dust = pd.read_csv(out / "metrics" / "dust_sweep.csv")
    assert dust["weight"].tolist() == [0.0, 1.0, 1.3, 1.6, 2.0] and dust["p_dust"].between(0, 1).all()
    assert pd.read_csv(out / "metrics" / "training_metrics.csv")["step"].tolist() == [3, 7]
    text = card.read_text()
    for heading in ("## What survives the VAE", "## Recommended settings", "## Realism, diversity and consistency",
                    "## Does every feature move the image?", "### Dust-lane extrapolation", "## Sky background",
                    "## Metrics over training", "## GalaxySD's Figure 3"):
        assert heading in text, heading
    assert f"guidance {chosen['guidance']:g}" in text and "bench numbers" in text and "- a note" in text
    assert "| spiral galaxy | 40 |  |" in text and "| smooth | 12 | rarely seen |" in text
    # measured again in place after a sky-noise change: its sections replaced, the rest of the card kept
    from galaxysd_core.evaluation.release import refresh_at_defaults

    card.write_text(text + "\n## Guidance per feature (sliders)\n\nwritten by another script\n")
    before = (out / "metrics" / "evaluation.csv").stat().st_mtime_ns
    refresh_at_defaults(out, [tiny / "cache"], n=2, steps=1, classifier=clf, progress=False,
                        note="Measured again after the noise change.")
    again = card.read_text()
    assert (out / "metrics" / "evaluation.csv").stat().st_mtime_ns > before
    noise = SkyNoise.load(out)  # measured with the power spectrum now, the channels drawn independently
    assert noise.spectrum is not None and noise.spectrum.correlation == np.eye(3).tolist()
    assert np.shape(noise.source["measured_channel_correlation"]) == (3, 3)
    assert again.count("## Realism, diversity and consistency") == 1 and again.count("## Sky background") == 1
    realism = again[again.index("## Realism"):again.index("\n## ", again.index("## Realism") + 5)]
    assert "Measured again after the noise change." in realism
    assert "written by another script" in again and "- a note" in again and "## Metrics over training" in again
    with pytest.raises(GalaxySDFileError, match="README.md"):
        refresh_at_defaults(tmp_path / "nowhere", [tiny / "cache"], n=2, classifier=clf)
    with pytest.raises(GalaxySDFileError, match="model_index.json"):
        release_model(tmp_path / "nothing", tmp_path / "x", [tiny / "cache"], n=2)
