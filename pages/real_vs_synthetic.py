"""Real vs synthetic: real galaxies with a caption beside generated ones, light profiles, spot the fake."""
from __future__ import annotations

import numpy as np
import streamlit as st

from galaxysd_core.errors import GalaxySDError
from galaxysd_core.studio.comparison import compare_light_profiles
from galaxysd_core.studio.figures import HOW_TO_READ, light_profile_figure
from galaxysd_core.studio.generation import GenerationRequest, generate
from galaxysd_core.studio.limits import MAX_UI_SEED
from galaxysd_core.studio.quiz import start_quiz_round
from galaxysd_core.studio.model_facts import training_crops
from galaxysd_core.studio.palette import family_colour
from galaxysd_core.studio.real_data import (caption_counts, default_source, real_matches, reference_images,
                                            with_training_crops)
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

sources = sorted(index["source"].dropna().unique().tolist())
ss.setdefault("keep.rvs.source", default_source(index) or "all")
if ss["keep.rvs.source"] not in ["all", *sources]:
    ss["keep.rvs.source"] = "all"
source = st.selectbox("Real galaxies from", ["all", *sources], key="keep.rvs.source",
                      help="gz2_cutouts (GZ2 vote fractions and images together) is the default when the data folder "
                           "has it.")
if source != "all":
    index = index[index["source"] == source].reset_index(drop=True)
index, framed = with_training_crops(index, training_crops(_ui.model_status().path))
counts = caption_counts(index)
resolution = pipe.default_size if pipe is not None else 64
crops = index.groupby("source")["crop"].first().to_dict() if len(index) else {}
WHY = {"training": "as in the model's training data", "scale-matched": "the reference galaxy scale"}
st.caption(f"{len(index)} real galaxies with {len(counts)} distinct captions in `{data_dir}`"
           + (f" ({source})" if source != "all" else "") + ". Cut out to "
           + ", ".join(("the full" if c >= 1 else f"the central {c:.2g} of the") + f" {s} frame "
                       f"({WHY.get(framed.get(s), 'default crop')})" for s, c in crops.items())
           + f" and resized to {resolution} px, so real and generated images share size and framing.")

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
seed = c3.number_input("Seed", 0, MAX_UI_SEED, key="keep.rvs.seed")

try:
    rows, match = real_matches(index, prompt, n, seed=int(seed))
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
        real, real_ids = _ui.real_cutouts(rows, resolution)
        st.caption(f"{len(real)} galaxies ({match}), cut out and resized to {resolution} px like the training data")
        grid = st.columns(4)
        for i, (img, rid) in enumerate(zip(real, real_ids)):
            grid[i % 4].image(_ui.enlarge(img, 128), caption=rid)

with right:
    st.subheader("Generated")
    key = (prompt, int(n), int(seed), source, resolution)
    if st.button("Generate for comparison", key="btn.rvs.generate", disabled=pipe is None, type="primary"):
        bar = st.progress(0.0, text="Generating ...")
        try:
            items = generate(pipe, GenerationRequest(prompt=prompt, n_images=int(n), seed=int(seed)),
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
    if "profiles" not in gen:  # measured once per generation, not on every rerun of the page
        gen["profiles"] = compare_light_profiles(reference_images(index, prompt, resolution, n=64, seed=int(seed)),
                                                 fake)
    profiles = gen["profiles"]
    st.plotly_chart(light_profile_figure(profiles.real, profiles.generated, family_colour(prompt)), key="rvs.hist")
    st.caption(HOW_TO_READ["light_profiles"] + " " + profiles.summary())

# ----------------------------------------------------------------------------- quiz
st.divider()
st.subheader("Spot the fake")
st.caption(f"Four galaxies with this prompt, all {resolution} px with the same framing and display size; one was "
           "generated. Click the one you think is fake.")
store = _ui.get_store()
sid = _ui.session_id()
if st.button("New round", key="btn.rvs.quiz_new", disabled=pipe is None):
    try:
        ss["rvs.quiz"] = start_quiz_round(pipe, index, prompt, resolution)
    except GalaxySDError as exc:
        _ui.show_error(exc)


def answer(i: int) -> None:
    q = ss.get("rvs.quiz")
    if q is None or not q.answer(i):
        return
    try:
        store.add_quiz_answer(session_id=sid, chosen=i, fake_index=q.fake_index, prompt=q.prompt, user=_ui.user_name())
    except GalaxySDError as exc:
        ss["rvs.quiz_error"] = str(exc)


quiz = ss.get("rvs.quiz")
if quiz is not None:
    if quiz.match == "any caption":
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
                st.markdown(f"real: {quiz.real_id(i)}")
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
