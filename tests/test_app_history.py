"""History page (pages/history.py) driven with AppTest: every Generate is kept, searchable, reusable, comparable."""
from __future__ import annotations

import pytest

pytest.importorskip("streamlit.testing.v1")
from test_app_pages import env, run_app, texts, tiny_model  # noqa: E402,F401  (fixtures and helpers)


def _generate(at, seed, prompt=None):
    if prompt is not None:
        at.text_area(key="keep.gen.prompt").set_value(prompt).run()
    at.slider(key="keep.gen.n_images").set_value(2).run()
    at.slider(key="keep.gen.steps").set_value(2).run()
    at.number_input(key="keep.gen.seed").set_value(seed).run()
    at.button(key="btn.gen.generate").click().run()
    assert not at.exception and not at.error, texts(at.error)


def test_history_keeps_searches_reuses_and_compares(env):
    at = run_app()
    _generate(at, 31)
    _generate(at, 44, "sdss, smooth, in-between round galaxy, merger")
    at.switch_page("pages/history.py").run()
    assert not at.exception, [e.value for e in at.exception]
    page = texts(at.markdown) + texts(at.caption)
    assert "2 generations stored, 2 of them from this session" in page
    assert "sdss, smooth, completely round galaxy" in page and "merger" in page
    assert len(at.image) >= 2  # one thumbnail strip per entry
    # search by feature, then by text
    at.selectbox(key="hist.feature").set_value("merger").run()
    shown = [b.key for b in at.button if b.key and b.key.startswith("btn.hist.reuse.")]
    assert len(shown) == 1
    at.selectbox(key="hist.feature").set_value("any feature").run()
    at.text_input(key="hist.text").set_value("COMPLETELY").run()
    shown = [b.key for b in at.button if b.key and b.key.startswith("btn.hist.reuse.")]
    assert len(shown) == 1
    first_id = shown[0].rsplit(".", 1)[1]
    # compare with the current controls (the merger prompt, seed 44)
    at.button(key=f"btn.hist.compare.{first_id}").click().run()
    cmp_text = texts(at.markdown)
    assert f"Entry {first_id} next to the current settings" in texts(at.subheader)
    assert "+ merger" in cmp_text and "seed 31 → 44" in cmp_text
    # reuse: back on Generate with the first entry's settings
    at.button(key=f"btn.hist.reuse.{first_id}").click().run()
    at.switch_page("pages/generate.py").run()  # (st.switch_page already went there; again is harmless)
    assert at.text_area(key="keep.gen.prompt").value == "sdss, smooth, completely round galaxy"
    assert at.number_input(key="keep.gen.seed").value == 31 and at.slider(key="keep.gen.n_images").value == 2
    assert "settings of history entry" in texts(at.caption)
    # the automatic GZ2-tree negative prompt is restored as automatic, not typed into the box
    assert at.text_input(key="keep.gen.negative").value == "" and at.checkbox(key="keep.gen.tree_negatives").value


def test_history_empty_and_a_bad_limit(env, monkeypatch):
    at = run_app("history")
    assert "Nothing generated yet" in texts(at.info)
    monkeypatch.setenv("GALAXYSD_HISTORY_MAX", "lots")
    at = run_app("history")
    assert "GALAXYSD_HISTORY_MAX" in texts(at.error)
