"""Generate page: feature controls <-> prompt text, sampling settings, gallery, downloads, sweeps."""
from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import numpy as np
import streamlit as st

from galaxysd_core.errors import GalaxySDError
from galaxysd_core.io.fits import fits_bytes
from galaxysd_core.io.png import png_bytes, read_png_parameters
from galaxysd_core.io.uploads import load_uploaded_image
from galaxysd_core.pipelines.schedulers import SCHEDULERS
from galaxysd_core.studio import controls, generation, limits, real_data, sweep
from galaxysd_core.studio.session import Stopwatch
from pages import _ui

_ui.ensure_app_navigation()

OFF = "off"
DEFAULT_PROMPT = "sdss, smooth, completely round galaxy"
CONTROLS = controls.question_controls()
ALL_PHRASES = [p for c in CONTROLS for p in c.phrases]
SCHEDULER_LABELS = {"ddim": "DDIM", "euler_a": "Euler ancestral", "euler": "Euler", "dpmpp": "DPM++ 2M"}
INIT_MODES = {"noise": "Text only (start from noise)", "upload": "Upload a galaxy image",
              "data": "Galaxy from the data folder"}
ss = st.session_state

# Keys starting with "keep." survive page switches (app.py re-assigns them every run).
K_PROMPT, K_NEG = "keep.gen.prompt", "keep.gen.negative"
K_TREE_NEG = "keep.gen.tree_negatives"
K_STEPS, K_GUID, K_SCHED = "keep.gen.steps", "keep.gen.guidance", "keep.gen.scheduler"
K_SEEDMODE, K_SEED, K_N = "keep.gen.seed_mode", "keep.gen.seed", "keep.gen.n_images"
K_INIT, K_STRENGTH, K_REAL = "keep.gen.init_mode", "keep.gen.strength", "keep.gen.real_pick"
K_SW_PHRASE, K_SW_RANGE, K_SW_N, K_SW_SEEDS = ("keep.sweep.phrase", "keep.sweep.range", "keep.sweep.n_weights",
                                               "keep.sweep.n_seeds")


def qkey(stem: str) -> str:
    return f"keep.gen.q.{stem}"


def wkey(stem: str) -> str:
    return f"keep.gen.w.{stem}"


# ----------------------------------------------------------------------------- state sync (callbacks)
def _controls_state() -> Dict[str, Tuple[Optional[str], float]]:
    return {c.stem: (None if ss[qkey(c.stem)] == OFF else ss[qkey(c.stem)], float(ss[wkey(c.stem)]))
            for c in CONTROLS}


def on_controls_change() -> None:
    """A feature control moved: rebuild the prompt text."""
    try:
        ss[K_PROMPT] = controls.prompt_from_controls(_controls_state())
        ss["gen.prompt_error"], ss["gen.prompt_notes"] = None, []
    except GalaxySDError as exc:  # pragma: no cover - controls only offer valid values
        ss["gen.prompt_error"] = str(exc)


def on_text_change() -> None:
    """The prompt text was edited: move the controls (or keep them and report the grammar's error)."""
    try:
        state, notes = controls.controls_from_prompt(ss[K_PROMPT])
    except GalaxySDError as exc:
        ss["gen.prompt_error"] = str(exc)
        return
    for stem, (phrase, weight) in state.items():
        ss[qkey(stem)] = phrase or OFF
        ss[wkey(stem)] = float(weight)
    ss["gen.prompt_error"], ss["gen.prompt_notes"] = None, notes


def apply_settings(settings: Dict, notes: List[str]) -> None:
    """Set every control from restored settings (PNG or a gallery image)."""
    ss[K_PROMPT] = settings["prompt"]
    on_text_change()
    ss[K_NEG] = settings.get("negative_prompt", "")
    ss[K_TREE_NEG] = bool(settings.get("tree_negatives", ss.get(K_TREE_NEG, True)))
    for key, name in ((K_STEPS, "steps"), (K_GUID, "guidance"), (K_SCHED, "scheduler"), (K_SEED, "seed"),
                      (K_N, "n_images"), (K_STRENGTH, "strength")):
        if name in settings:
            ss[key] = settings[name]
    if "seed" in settings:
        ss[K_SEEDMODE] = "fixed"
    ss["gen.loaded_notes"] = notes


def on_settings_png() -> None:
    """A PNG was uploaded to "load settings": restore every control."""
    file = ss.get("up.gen.settings_png")
    ss["gen.png_error"], ss["gen.loaded_notes"] = None, []
    if file is None:
        return
    try:
        info = read_png_parameters(file)
        settings, notes = controls.settings_from_png(info)
    except GalaxySDError as exc:
        ss["gen.png_error"] = str(exc)
        return
    apply_settings(settings, [f"settings loaded from {getattr(file, 'name', 'the PNG')}"] + notes)


def on_use_item(uid: str) -> None:
    """"Reuse" under a gallery image: restore its settings."""
    item = next((it for it in ss.get("gen.gallery", []) if it.uid == uid), None)
    if item is None:
        return
    settings, notes = generation.reuse_settings(item)
    apply_settings(settings, [f"settings of seed {item.seed} restored"] + notes)


def init_state() -> None:
    defaults = {K_NEG: "", K_TREE_NEG: True, K_STEPS: 20, K_GUID: 6.5, K_SCHED: "ddim", K_SEEDMODE: "fixed", K_SEED: 0, K_N: 4,
                K_INIT: "noise", K_STRENGTH: 0.6, K_SW_PHRASE: "dust lane", K_SW_RANGE: (0.8, 2.0), K_SW_N: 4,
                K_SW_SEEDS: 2}
    for k, v in defaults.items():
        ss.setdefault(k, v)
    for c in CONTROLS:
        ss.setdefault(qkey(c.stem), OFF)
        ss.setdefault(wkey(c.stem), 1.0)
    if K_PROMPT not in ss:
        ss[K_PROMPT] = DEFAULT_PROMPT
        on_text_change()
    ss.setdefault("gen.gallery", [])


# ----------------------------------------------------------------------------- page
st.title("Generate galaxies")
pipe = _ui.get_pipeline()
init_state()
unseen = pipe.unseen_features(ALL_PHRASES) if pipe is not None else []

left, right = st.columns([5, 6], gap="large")

with left:
    st.subheader("Features")
    st.caption("One control per Galaxy Zoo 2 question, in decision-tree order; answers of one question exclude "
               "each other. Weights above 1 emphasise a feature; beyond ~1.5 the model extrapolates."
               + (f" Features marked {controls.UNSEEN_LABEL} never occurred in the training captions."
                  if unseen else ""))
    for c in CONTROLS:
        a, b = st.columns([3, 2])
        a.selectbox(f"Q{c.number}. {c.text}", [OFF, *c.phrases], key=qkey(c.stem), on_change=on_controls_change,
                    format_func=lambda p: p if p == OFF else controls.feature_label(p, unseen))
        b.slider("weight", controls.SLIDER_MIN, controls.SLIDER_MAX, step=controls.SLIDER_STEP, key=wkey(c.stem),
                 on_change=on_controls_change, disabled=ss[qkey(c.stem)] == OFF,
                 label_visibility="hidden" if c is not CONTROLS[0] else "visible")

with right:
    st.subheader("Prompt")
    st.text_area("Prompt (editable; `{phrase:1.3}` sets a weight)", key=K_PROMPT, on_change=on_text_change,
                 height=90, max_chars=1000)
    if ss.get("gen.prompt_error"):
        st.error(f"Prompt not understood: {ss['gen.prompt_error']}", icon=":material/error:")
    for note in ss.get("gen.prompt_notes") or []:
        st.caption(f":orange[{note}]")
    current_unseen = [p for p in controls.features_from_controls(_controls_state()) if p in unseen]
    if current_unseen:
        st.warning(f"{', '.join(current_unseen)}: never seen in training — the model can only extrapolate "
                   f"from related captions.", icon=":material/explore:")
    st.text_input("Negative prompt (steer away from; optional)", key=K_NEG, max_chars=1000,
                  placeholder="e.g. merger, star or artifact")
    if not str(ss[K_NEG]).strip():
        st.checkbox("Empty: exclude the other morphologies of the GZ2 tree", key=K_TREE_NEG,
                    help="With an empty negative prompt, steer away from the answers the Galaxy Zoo 2 decision "
                         "tree rules out for this prompt (e.g. 'smooth' and 'edge-on galaxy' for a spiral). "
                         "Off: plain unconditional guidance, as GalaxySD samples.")
        if ss[K_TREE_NEG] and pipe is not None and not ss.get("gen.prompt_error"):
            try:
                auto = pipe.tree_negative_prompt(ss[K_PROMPT])
            except GalaxySDError:
                auto = ""
            st.caption(f"automatic negative prompt: `{auto}`" if auto else
                       "automatic negative prompt: none (the tree rules nothing out for this prompt)")

    st.subheader("Sampling")
    c1, c2 = st.columns(2)
    c1.slider("Steps", 1, limits.MAX_UI_STEPS, key=K_STEPS)
    c2.slider("Guidance scale", 0.0, 15.0, step=0.5, key=K_GUID,
              help="Classifier-free guidance; 1 or below disables it. Higher = more of the prompted class, "
                   "less variety: for GalaxySD-mini 5 is the best balance (model card, assets/galaxysd-mini).")
    c1.selectbox("Sampler", list(SCHEDULERS), key=K_SCHED, format_func=lambda s: SCHEDULER_LABELS.get(s, s))
    c2.slider("Number of images", 1, limits.MAX_REQUEST_IMAGES, key=K_N)
    c1.radio("Seed", ["fixed", "random"], key=K_SEEDMODE, horizontal=True,
             help="Image i of a request uses seed + i.")
    c2.number_input("Seed value", 0, limits.MAX_UI_SEED, step=1, key=K_SEED,
                    disabled=ss[K_SEEDMODE] == "random")
    load = int(ss[K_N]) * int(ss[K_STEPS])
    st.caption(f"{ss[K_N]} images x {ss[K_STEPS]} steps = {load} image-steps "
               f"(limit {limits.MAX_IMAGE_STEPS} per request)")

    with st.expander("Start from a real galaxy (img2img)", expanded=ss[K_INIT] != "noise"):
        st.radio("Start image", list(INIT_MODES), key=K_INIT, format_func=INIT_MODES.get)
        init_image: Optional[np.ndarray] = None
        if ss[K_INIT] == "upload":
            up = st.file_uploader("Galaxy image (PNG or JPEG, at most 20 MB)", type=["png", "jpg", "jpeg"],
                                  key="up.gen.init")
            if up is not None:
                try:
                    init_image = load_uploaded_image(up)
                except GalaxySDError as exc:
                    _ui.show_error(exc)
        elif ss[K_INIT] == "data":
            data_dir = _ui.data_dir_input()
            if data_dir is None:
                _ui.data_dir_notice()
            else:
                try:
                    index, problems = _ui.get_real_index(data_dir)
                    rows, match = real_data.start_image_choices(index, ss[K_PROMPT])
                    if len(rows) == 0:
                        st.info(f"No galaxies with images found in `{data_dir}`.")
                    else:
                        labels = {str(r.id): f"{r.id} — {r.caption}" for r in rows.itertuples()}
                        pick = st.selectbox(f"Galaxy ({match}, {len(rows)} shown)", list(labels), key=K_REAL,
                                            format_func=lambda i: labels.get(i, i))
                        init_image = real_data.load_real_image(rows, pick, pipe.default_size if pipe else 64)
                except GalaxySDError as exc:
                    _ui.show_error(exc)
        if ss[K_INIT] != "noise":
            st.slider("Strength (1 = ignore the start image)", 0.05, 1.0, step=0.05, key=K_STRENGTH)
            if init_image is not None:
                st.image(_ui.enlarge(init_image, 128), caption="start image")

    pressed = st.button("Generate", type="primary", key="btn.gen.generate", disabled=pipe is None,
                        icon=":material/auto_awesome:")
    progress_slot = st.empty()
    if pressed and pipe is not None:
        if ss.get("gen.prompt_error"):  # already shown under the prompt: once is enough
            st.toast("Fix the prompt first (see the message under it).", icon=":material/error:")
        elif ss[K_INIT] != "noise" and init_image is None:
            st.error("Choose a start image first, or switch the start image to 'Text only'.")
        else:
            seed = generation.random_seed() if ss[K_SEEDMODE] == "random" else int(ss[K_SEED])
            request = generation.GenerationRequest(
                prompt=ss[K_PROMPT], negative_prompt=ss[K_NEG], tree_negatives=bool(ss[K_TREE_NEG]),
                n_images=int(ss[K_N]), steps=int(ss[K_STEPS]),
                guidance=float(ss[K_GUID]), scheduler=ss[K_SCHED], seed=seed,
                init_image=init_image if ss[K_INIT] != "noise" else None, strength=float(ss[K_STRENGTH]))
            busy = limits.GATE.running > 0
            bar = progress_slot.progress(0.0, text="Waiting for another generation to finish ..." if busy
                                         else "Encoding the prompt ...")

            def on_step(step: int, total: int) -> None:
                bar.progress(step / total, text=f"Denoising step {step}/{total}")

            try:
                with Stopwatch() as sw:
                    items = generation.generate(pipe, request, callback=on_step)
            except GalaxySDError as exc:
                progress_slot.empty()
                _ui.show_error(exc)
            else:
                progress_slot.empty()
                ss["gen.gallery"] = generation.add_to_gallery(ss["gen.gallery"], items)
                ss["gen.last_seconds"] = sw.seconds
                st.toast(f"{len(items)} image(s) in {sw.seconds:.1f} s")

    with st.expander("Load settings from a PNG"):
        st.file_uploader("PNG saved by GalaxySD Studio (or AUTOMATIC1111)", type=["png"], key="up.gen.settings_png",
                         on_change=on_settings_png)
        if ss.get("gen.png_error"):
            st.error(ss["gen.png_error"], icon=":material/error:")
    for note in ss.get("gen.loaded_notes") or []:
        st.caption(f":blue[{note}]")

# ----------------------------------------------------------------------------- gallery
st.divider()
gallery: List[generation.GalleryItem] = ss.get("gen.gallery", [])
head, z, clear = st.columns([6, 2, 1])
head.subheader(f"Gallery ({len(gallery)} image{'s' if len(gallery) != 1 else ''} this session)")
if gallery:
    # The data callable runs later in a thread without this session's state (deferred download), so it
    # gets the gallery items now; the zip itself is only built when the button is pressed.
    z.download_button("Download all (zip)", data=lambda items=tuple(gallery): generation.gallery_zip(items),
                      file_name="galaxysd_gallery.zip", mime="application/zip", key="dl.gen.zip",
                      on_click="ignore", icon=":material/folder_zip:")
    if clear.button("Clear", key="btn.gen.clear"):
        ss["gen.gallery"] = []
        st.rerun()
    per_row = 4
    for start in range(0, len(gallery), per_row):
        cols = st.columns(per_row)
        for col, item in zip(cols, gallery[start:start + per_row]):
            with col:
                st.image(_ui.enlarge(item.image), caption=f"seed {item.seed} · {item.created}")
                st.caption(f"`{item.prompt}`")
                d1, d2, d3 = st.columns(3)
                d1.download_button("PNG", key=f"dl.gen.png.{item.uid}", file_name=f"{item.file_stem}.png",
                                   mime="image/png", on_click="ignore",
                                   data=lambda it=item: png_bytes(it.image, it.prompt, it.seed, it.parameters))
                d2.download_button("FITS", key=f"dl.gen.fits.{item.uid}", file_name=f"{item.file_stem}.fits",
                                   mime="application/fits", on_click="ignore",
                                   data=lambda it=item: fits_bytes(it.image, it.prompt, it.seed, it.parameters))
                d3.button("Reuse", key=f"btn.gen.use.{item.uid}", on_click=on_use_item, args=(item.uid,),
                          help="Restore the settings of this image")
else:
    st.caption("Generated images appear here; they are kept while this browser tab is open.")

# ----------------------------------------------------------------------------- sweep
st.divider()
with st.expander("Extrapolation sweep: one feature's weight x seeds", expanded=bool(ss.get("gen.sweep"))):
    st.caption("Generates the current prompt with one feature at several weights, with the same seeds at every "
               "weight, to see where the model stops following the feature (GalaxySD Sec. 3).")
    s1, s2, s3, s4 = st.columns([3, 3, 2, 2])
    s1.selectbox("Feature", ALL_PHRASES, key=K_SW_PHRASE, format_func=lambda p: controls.feature_label(p, unseen))
    s2.slider("Weight range", 0.0, 3.0, step=0.1, key=K_SW_RANGE)
    s3.slider("Weights", 2, 6, key=K_SW_N)
    s4.slider("Seeds", 1, 4, key=K_SW_SEEDS)
    lo, hi = ss[K_SW_RANGE]
    weights = sweep.sweep_values(lo, hi, int(ss[K_SW_N]))
    first_seed = int(ss[K_SEED]) if ss[K_SEEDMODE] == "fixed" else 0
    seeds = sweep.sweep_seeds(first_seed, int(ss[K_SW_SEEDS]))
    st.caption(f"weights {', '.join(f'{w:g}' for w in weights)} · seeds {', '.join(map(str, seeds))} · "
               f"{len(weights) * len(seeds)} images x {ss[K_STEPS]} steps")
    if st.button("Run sweep", key="btn.gen.sweep", disabled=pipe is None, icon=":material/grid_view:"):
        slot = st.empty()
        bar = slot.progress(0.0, text="Sweep ...")
        try:
            ss["gen.sweep"] = sweep.run_sweep(
                pipe, ss[K_PROMPT], ss[K_SW_PHRASE], weights, seeds, negative_prompt=ss[K_NEG],
                tree_negatives=bool(ss[K_TREE_NEG]),
                steps=int(ss[K_STEPS]), guidance=float(ss[K_GUID]), scheduler=ss[K_SCHED],
                callback=lambda s, t: bar.progress(s / t, text=f"Denoising step {s}/{t}"))
        except GalaxySDError as exc:
            _ui.show_error(exc)
        slot.empty()
    result: Optional[sweep.SweepResult] = ss.get("gen.sweep")
    if result is not None:
        if result.phrase in unseen:
            st.warning(f"'{result.phrase}' never occurred in training: every column is an extrapolation.")
        header = st.columns(len(result.weights) + 1)
        header[0].markdown("**seed \\ weight**")
        for col, w in zip(header[1:], result.weights):
            col.markdown(f"**{result.phrase} {w:g}**")
        for seed, row in zip(result.seeds, result.grid):
            cols = st.columns(len(result.weights) + 1)
            cols[0].markdown(f"seed {seed}")
            for col, item in zip(cols[1:], row):
                col.image(_ui.enlarge(item.image, 128))
        st.download_button("Download sweep (zip)", key="dl.gen.sweep",
                           data=lambda r=result: generation.gallery_zip([it for row in r.grid for it in row]),
                           file_name=f"galaxysd_sweep_{result.phrase.replace(' ', '_')}.zip", mime="application/zip",
                           on_click="ignore")
