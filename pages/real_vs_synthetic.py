"""Real vs synthetic: real galaxies with a caption beside generated ones, light profiles, spot the fake."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from galaxysd_core.studio import app_state
from galaxysd_core.errors import GalaxySDError
from galaxysd_core.evaluation.metrics.physical import STAT_UNITS, STATS, compare_physical, physical_stats
from pages import _ui

_ui.ensure_app_navigation()

ss = st.session_state
CUSTOM = "(type a prompt)"

st.title("Real vs synthetic")
data_dir = _ui.data_dir_input()
pipe = _ui.get_pipeline(show_notice=False)
if pipe is None:
    st.info(f"Generation is off: {_ui.model_status().message} Real galaxies are still shown.", icon=":material/info:")
if data_dir is None:
    _ui.data_dir_notice()
    st.stop()
try:
    index, problems = _ui.get_real_index(data_dir)
except GalaxySDError as exc:
    _ui.show_error(exc)
    st.stop()
for p in problems:
    st.warning(p)
if len(index) == 0:
    st.warning(f"No galaxies with images found in `{data_dir}`. It should hold a GZ2 release (gz2_hart16.csv, "
               f"gz2_filename_mapping.csv, images_gz2/) or folders with a labels.csv and images.")
    _ui.data_dir_notice()
    st.stop()

counts = app_state.caption_counts(index)
st.caption(f"{len(index)} real galaxies with {len(counts)} distinct captions in `{data_dir}`.")
resolution = pipe.default_size if pipe is not None else 64

for k, v in (("keep.rvs.custom", "sdss, features or disk-shaped, spiral galaxy"), ("keep.rvs.n", 8),
             ("keep.rvs.seed", 0)):
    ss.setdefault(k, v)
c1, c2, c3 = st.columns([5, 2, 2])
captions = counts["caption"].tolist()
labels = {c: f"{c}  ({n})" for c, n in zip(counts["caption"], counts["count"])}
choice = c1.selectbox("Prompt (captions of the data folder, most common first)", [*captions, CUSTOM],
                      key="keep.rvs.caption", format_func=lambda c: labels.get(c, c))
if choice == CUSTOM:
    prompt = c1.text_input("Prompt", key="keep.rvs.custom")
else:
    prompt = choice
n = c2.slider("Galaxies per side", 2, 16, key="keep.rvs.n")
seed = c3.number_input("Seed", 0, app_state.MAX_UI_SEED, key="keep.rvs.seed")

try:
    rows, match = app_state.real_matches(index, prompt, n, seed=int(seed))
except GalaxySDError as exc:
    _ui.show_error(exc)
    st.stop()

left, right = st.columns(2, gap="large")
with left:
    st.subheader("Real")
    if match == "none":
        st.info("No real galaxy in the data folder has these features.")
        real = np.zeros((0, resolution, resolution, 3), np.uint8)
    else:
        real, real_ids = app_state.load_real_images(rows, resolution)
        st.caption(f"{len(real)} galaxies ({match}), cut out and resized to {resolution} px like the training data")
        grid = st.columns(4)
        for i, (img, rid) in enumerate(zip(real, real_ids)):
            grid[i % 4].image(_ui.enlarge(img, 128), caption=rid)

with right:
    st.subheader("Generated")
    key = (prompt, int(n), int(seed))
    if st.button("Generate for comparison", key="btn.rvs.generate", disabled=pipe is None, type="primary"):
        bar = st.progress(0.0, text="Generating ...")
        try:
            items = app_state.generate(pipe, app_state.GenerationRequest(prompt=prompt, n_images=int(n), seed=int(seed)),
                                       callback=lambda s, t: bar.progress(s / t, text=f"Denoising step {s}/{t}"))
            ss["rvs.generated"] = {"key": key, "images": np.stack([it.image for it in items])}
        except GalaxySDError as exc:
            _ui.show_error(exc)
        bar.empty()
    gen = ss.get("rvs.generated")
    fake = gen["images"] if gen and gen["key"] == key else None
    if fake is None:
        st.caption("Press the button to generate the same number of galaxies with this prompt.")
    else:
        st.caption(f"{len(fake)} generated with seeds {int(seed)}..{int(seed) + len(fake) - 1}")
        grid = st.columns(4)
        for i, img in enumerate(fake):
            grid[i % 4].image(_ui.enlarge(img, 128), caption=f"seed {int(seed) + i}")

# ----------------------------------------------------------------------------- light profiles
if fake is not None and len(real) >= 2:
    st.subheader("Light-profile statistics")
    more, _ = app_state.real_matches(index, prompt, 64, seed=int(seed))
    ref, _ = app_state.load_real_images(more, resolution)
    real_stats, fake_stats = physical_stats(ref), physical_stats(fake)
    dist = compare_physical(real_stats, fake_stats)
    fig = make_subplots(rows=1, cols=len(STATS), subplot_titles=[
        f"{s} ({STAT_UNITS[s]})" if STAT_UNITS[s] else s for s in STATS])
    for j, s in enumerate(STATS):
        for name, tab, colour in (("real", real_stats, "#1f77b4"), ("generated", fake_stats, "#ff7f0e")):
            fig.add_trace(go.Histogram(x=tab[s], name=name, marker_color=colour, opacity=0.6, showlegend=j == 0,
                                       histnorm="probability", nbinsx=15), row=1, col=j + 1)
    fig.update_layout(barmode="overlay", height=320, margin=dict(t=50, b=30), legend=dict(orientation="h", y=-0.2))
    st.plotly_chart(fig, key="rvs.hist")
    st.caption(f"{len(ref)} real vs {len(fake)} generated. 1-D Wasserstein distances: "
               + ", ".join(f"{s} {dist[f'wasserstein_{s}']:.3g}" for s in STATS)
               + ". Measured on the cutouts as shown (not calibrated photometry).")

# ----------------------------------------------------------------------------- quiz
st.divider()
st.subheader("Spot the fake")
st.caption("Four galaxies with this prompt; one was generated. Click the one you think is fake.")
store = _ui.get_store()
sid = _ui.session_id()
if st.button("New round", key="btn.rvs.quiz_new", disabled=pipe is None):
    try:
        pool, pool_match = app_state.real_matches(index, prompt, 32, seed=int(np.random.default_rng().integers(1e9)))
        if len(pool) < 3:
            pool, pool_match = index.sample(min(32, len(index))), "any caption"
        real_q, ids_q = app_state.load_real_images(pool, resolution)
        fake_seed = app_state.random_seed()
        item = app_state.generate(pipe, app_state.GenerationRequest(prompt=prompt, n_images=1, seed=fake_seed))[0]
        ss["rvs.quiz"] = app_state.new_quiz_round(real_q, ids_q, item.image, prompt, fake_seed)
        ss["rvs.quiz_match"] = pool_match
    except GalaxySDError as exc:
        _ui.show_error(exc)


def answer(i: int) -> None:
    q = ss.get("rvs.quiz")
    if q is None or q.answered is not None:
        return
    q.answered = i
    try:
        store.add_quiz_answer(session_id=sid, chosen=i, fake_index=q.fake_index, prompt=q.prompt, user=_ui.user_name())
    except GalaxySDError as exc:
        ss["rvs.quiz_error"] = str(exc)


quiz = ss.get("rvs.quiz")
if quiz is not None:
    if ss.get("rvs.quiz_match") == "any caption":
        st.caption(":orange[Too few real galaxies with this prompt: the real ones have other captions.]")
    cols = st.columns(4)
    for i, (col, img) in enumerate(zip(cols, quiz.images)):
        with col:
            st.image(_ui.enlarge(img, 192))
            if quiz.answered is None:
                st.button("This one is fake", key=f"btn.rvs.quiz_pick.{i}", on_click=answer, args=(i,),
                          shortcut=str(i + 1))
            elif i == quiz.fake_index:
                st.markdown(f":orange[**generated** (seed {quiz.fake_seed})]")
            else:
                st.markdown(f"real: {quiz.real_ids[i if i < quiz.fake_index else i - 1]}")
    if quiz.answered is not None:
        (st.success if quiz.correct else st.error)(
            "Right, that one was generated." if quiz.correct else
            f"Not quite: image {quiz.fake_index + 1} was generated.")
if ss.get("rvs.quiz_error"):
    st.error(ss.pop("rvs.quiz_error"))
try:
    mine, everyone = store.quiz_summary(sid), store.quiz_summary()
    st.caption(f"Your score: {mine['correct']}/{mine['answered']} · everyone: {everyone['correct']}/"
               f"{everyone['answered']}" + (f" ({100 * everyone['accuracy']:.0f} % spotted; 25 % is chance)"
                                            if everyone["accuracy"] is not None else ""))
except GalaxySDError as exc:
    _ui.show_error(exc)
