"""Generation history (studio/history.py): stored with settings, searchable, reusable, pruned in one transaction."""
import json
import threading

import numpy as np
import pytest

from galaxysd_core.errors import GalaxySDValueError
from galaxysd_core.studio import generation
from galaxysd_core.studio.history import (HISTORY_MAX_ENV, MAX_THUMB_BYTES, GenerationHistory, history_limit,
                                          record_generation, thumbnail_png)
from galaxysd_core.studio.store import Store


def _items(prompt, seed, n=2, fg=None, neg=""):
    params = {"negative_prompt": neg, "num_inference_steps": 12, "guidance_scale": 2.5, "scheduler": "ddim",
              "feature_guidance": [[p, v] for p, v in (fg or {}).items()], "tree_negatives": False}
    rng = np.random.default_rng(seed)
    return [generation.GalleryItem(image=rng.integers(0, 255, (32, 32, 3), dtype=np.uint8), prompt=prompt,
                                   seed=seed + i, parameters=params) for i in range(n)]


def _request(prompt, seed, fg=None, n=2):
    return generation.GenerationRequest(prompt=prompt, seed=seed, n_images=n, steps=12, guidance=2.5,
                                        feature_guidance=dict(fg or {}))


@pytest.fixture
def history(tmp_path):
    return GenerationHistory(Store(f"sqlite:///{tmp_path / 'store.sqlite'}"), max_entries=100)


def test_record_search_by_prompt_and_feature_and_reuse(history):
    a = record_generation(history, _items("sdss, smooth, completely round galaxy", 5),
                          generation.request_settings(_request("sdss, smooth, completely round galaxy", 5)),
                          model_fingerprint="abc123", session_id="s1", user="ana")
    b = record_generation(history, _items("sdss, smooth, in-between round galaxy", 9, fg={"dust lane": 6.0}),
                          generation.request_settings(_request("sdss, smooth, in-between round galaxy", 9,
                                                               {"dust lane": 6.0})), session_id="s2")
    assert history.count() == 2 and history.count("s1") == 1
    assert [e.id for e in history.search()] == [b, a]                      # newest first
    assert [e.id for e in history.search("ROUND GALAXY")] == [b, a]        # case-insensitive
    assert [e.id for e in history.search("completely")] == [a]
    assert [e.id for e in history.search(feature="dust lane")] == [b]     # a guided feature is searchable
    assert [e.id for e in history.search(feature="smooth")] == [b, a]     # so is a prompt feature
    assert history.search(feature="round") == []                          # whole phrases, not substrings
    assert [e.id for e in history.search(session_id="s1")] == [a]
    assert history.search("100%_") == []                                  # LIKE wildcards are literal
    assert set(history.features_in_use()) >= {"smooth", "dust lane", "completely round galaxy"}
    e = history.get(b)
    assert e.feature_guidance == {"dust lane": 6.0} and e.n_images == 2 and e.seed == 9
    assert "dust lane guidance 6" in e.summary and e.thumbnail[:8] == b"\x89PNG\r\n\x1a\n"
    settings, _ = e.reuse_settings()
    assert settings["prompt"] == "sdss, smooth, in-between round galaxy"
    assert settings["seed"] == 9 and settings["n_images"] == 2 and settings["steps"] == 12
    assert settings["guidance"] == 2.5
    assert "dust lane" in settings["feature_strengths"]
    assert history.get(a).model_fingerprint == "abc123" and history.get(a).user == "ana"


def test_compare_with_the_current_controls(history):
    eid = record_generation(history, _items("sdss, smooth", 1), generation.request_settings(_request("sdss, smooth", 1)))
    e = history.get(eid)
    assert e.changes_to(generation.request_settings(_request("sdss, smooth", 1))) == []
    now = generation.request_settings(_request("sdss, smooth, merger", 1, {"merger": 4.0}))
    changes = e.changes_to(now)
    assert "+ merger" in changes and any(c.startswith("feature guidance") for c in changes)


def test_pruning_keeps_the_newest_and_zero_keeps_nothing(tmp_path):
    h = GenerationHistory(Store(f"sqlite:///{tmp_path / 's.sqlite'}"), max_entries=3)
    ids = [record_generation(h, _items("sdss, smooth", i, n=1), {"prompt": "sdss, smooth", "seed": i})
           for i in range(5)]
    assert h.count() == 3 and [e.id for e in h.search()] == ids[:1:-1]
    assert h.get(ids[0]) is None
    assert h.prune(1) == 2 and h.count() == 1
    none = GenerationHistory(h.store, max_entries=0)
    assert none.add(prompt="sdss, smooth", seed=0, n_images=1, settings={}, record={}) is None


def test_concurrent_writers_lose_nothing_and_never_exceed_the_limit(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'c.sqlite'}")
    h = GenerationHistory(store, max_entries=1000)
    errors = []

    def work(w):
        try:
            for i in range(10):
                h.add(prompt=f"sdss, smooth, w{w}", seed=i, n_images=1, settings={}, record={}, session_id=f"w{w}")
        except Exception as exc:  # pragma: no cover - the failure being tested for
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(6)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert not errors and h.count() == 60
    assert all(h.count(f"w{w}") == 10 for w in range(6))
    small = GenerationHistory(store, max_entries=7)
    small.add(prompt="sdss, smooth", seed=0, n_images=1, settings={}, record={})
    assert small.count() == 7 and store.integrity_check() == "ok"


def test_validation_and_limits(history, monkeypatch):
    with pytest.raises(GalaxySDValueError, match="needs a prompt"):
        history.add(prompt=" ", seed=0, n_images=1, settings={}, record={})
    with pytest.raises(GalaxySDValueError, match="n_images"):
        history.add(prompt="sdss", seed=0, n_images=0, settings={}, record={})
    with pytest.raises(GalaxySDValueError, match="JSON"):
        history.add(prompt="sdss", seed=0, n_images=1, settings={"x": object()}, record={})
    with pytest.raises(GalaxySDValueError, match="200 characters"):
        history.search("x" * 201)
    monkeypatch.setenv(HISTORY_MAX_ENV, "-3")
    with pytest.raises(GalaxySDValueError, match=HISTORY_MAX_ENV):
        history_limit()
    monkeypatch.setenv(HISTORY_MAX_ENV, "12")
    assert history_limit() == 12


def test_thumbnail_is_a_box_averaged_strip_under_the_size_limit():
    import io

    from PIL import Image

    ims = [np.full((128, 128, 3), v, np.uint8) for v in (0, 100, 200, 250, 30)]
    ims[0][0, 0] = 255  # one bright pixel: box-averaged (2 x 2 -> 1) to a quarter of its value
    im = Image.open(io.BytesIO(thumbnail_png(ims)))
    assert im.size == (256, 64)                      # the first 4 images at 64 px
    px = np.asarray(im)
    assert px[0, 0, 0] == 64 and px[10, 70, 0] == 100 and px[10, 200, 0] == 250
    noise = [np.random.default_rng(0).integers(0, 255, (256, 256, 3), dtype=np.uint8)] * 4
    assert len(thumbnail_png(noise, px=128)) <= MAX_THUMB_BYTES
