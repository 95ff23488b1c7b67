"""Generate page: prompt and GZ2-tree controls on the left, the latest images on the right, the gallery below."""
from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import numpy as np
import streamlit as st

from galaxysd_core.errors import GalaxySDError
from galaxysd_core.io.fits import fits_bytes
from galaxysd_core.io.png import png_bytes, read_png_parameters
from galaxysd_core.io.uploads import load_uploaded_image
from galaxysd_core.pipelines.schedulers import SCHEDULERS
from galaxysd_core.studio import controls, display, generation, limits, model_facts, real_data
from galaxysd_core.studio.session import Stopwatch
from pages import _ui

_ui.ensure_app_navigation()

OFF = "off"
DEFAULT_PROMPT = "sdss, smooth, completely round galaxy"
CONTROLS = controls.question_controls()
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
K_MECH = "keep.gen.mechanism"


def qkey(stem: str) -> str:
    return f"keep.gen.q.{stem}"


def wkey(stem: str) -> str:
    return f"keep.gen.w.{stem}"


def gkey(stem: str) -> str:
    return f"keep.gen.s.{stem}"


def recommended_strength(phrase: Optional[str]) -> float:
    """The loaded model's default guidance strength of a feature (feature_defaults.json; 1 = plain prompt)."""
    return float((ss.get("gen.feature_defaults") or {}).get(phrase, 1.0)) if phrase else 1.0


def guided_features() -> Dict[str, float]:
    """Absolute feature-guidance scales of the chosen answers' strength sliders (empty in weight mode)."""
    if ss.get(K_MECH) != "guidance":
        return {}
    strengths = {ss[qkey(c.stem)]: float(ss[gkey(c.stem)]) for c in CONTROLS if ss[qkey(c.stem)] != OFF}
    return controls.feature_scales(strengths, float(ss[K_GUID]), ss.get("gen.contrast"))


# ----------------------------------------------------------------------------- state sync (callbacks)
def _controls_state() -> Dict[str, Tuple[Optional[str], float]]:
    return {c.stem: (None if ss[qkey(c.stem)] == OFF else ss[qkey(c.stem)], float(ss[wkey(c.stem)]))
            for c in CONTROLS}


def _write_prompt(notes: List[str]) -> None:
    try:
        ss[K_PROMPT] = controls.prompt_from_controls(_controls_state())
        ss["gen.prompt_error"], ss["gen.prompt_notes"] = None, notes
    except GalaxySDError as exc:  # pragma: no cover - controls only offer valid values
        ss["gen.prompt_error"] = str(exc)


def on_answer_change(stem: str) -> None:
    """A question's answer changed: turn off what the GZ2 tree now rules out, rebuild the prompt."""
    before = {c.stem: ss[qkey(c.stem)] for c in CONTROLS}
    state, notes = controls.choose(_controls_state(), stem, None if ss[qkey(stem)] == OFF else ss[qkey(stem)])
    for s, (phrase, _) in state.items():
        ss[qkey(s)] = phrase or OFF
        if (phrase or OFF) != before.get(s):  # a newly chosen answer starts at the model's default strength
            ss[gkey(s)] = recommended_strength(phrase)
    _write_prompt(notes)


def on_weight_change() -> None:
    _write_prompt([])


def on_text_change() -> None:
    """The prompt text was edited: move the controls (or keep them and report the grammar's error)."""
    try:
        state, notes = controls.controls_from_prompt(ss[K_PROMPT])
    except GalaxySDError as exc:
        ss["gen.prompt_error"] = str(exc)
        return
    for stem, (phrase, weight) in state.items():
        if (phrase or OFF) != ss.get(qkey(stem)):
            ss[gkey(stem)] = 1.0  # typed text: the plain prompt until the slider moves
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
    for c in CONTROLS:  # the plain prompt unless the settings guided the feature
        ss[gkey(c.stem)] = 1.0
    strengths = settings.get("feature_strengths") or {}
    if strengths:
        ss[K_MECH] = "guidance"
        for phrase, m in strengths.items():
            stem = controls.PHRASE_QUESTION.get(phrase)
            if stem is None:
                notes = notes + [f"feature guidance of {phrase!r} is not a slider of this page; left out"]
                continue
            if ss[qkey(stem)] != phrase:  # guided but not in the prompt text: the same as in it
                state, more = controls.choose(_controls_state(), stem, phrase)
                for s_, (p_, _) in state.items():
                    ss[qkey(s_)] = p_ or OFF
                _write_prompt(more)
            ss[gkey(stem)] = float(m)
    ss["gen.loaded_notes"] = notes


def on_settings_png() -> None:
    """A PNG was uploaded to "load settings": restore every control."""
    file = ss.get("up.gen.settings_png")
    ss["gen.png_error"], ss["gen.loaded_notes"] = None, []
    if file is None:
        return
    try:
        info = read_png_parameters(file)
        settings, notes = controls.settings_from_png(info, ss.get("gen.contrast"))
    except GalaxySDError as exc:
        ss["gen.png_error"] = str(exc)
        return
    apply_settings(settings, [f"settings loaded from {getattr(file, 'name', 'the PNG')}"] + notes)


def on_use_item(uid: str) -> None:
    """"Reuse" under a gallery image: restore its settings."""
    item = next((it for it in ss.get("gen.gallery", []) if it.uid == uid), None)
    if item is None:
        return
    settings, notes = generation.reuse_settings(item, ss.get("gen.contrast"))
    apply_settings(settings, [f"settings of seed {item.seed} restored"] + notes)


def init_state(pipe) -> None:
    rec = generation.recommended_ui_settings(pipe, limits.MAX_UI_STEPS)  # the model card's chosen defaults
    defaults = {K_NEG: "", K_TREE_NEG: rec["tree_negatives"], K_STEPS: rec["steps"], K_GUID: rec["guidance"],
                K_SCHED: "ddim", K_SEEDMODE: "fixed", K_SEED: 0, K_N: 4, K_INIT: "noise", K_STRENGTH: 0.6,
                K_MECH: "guidance"}
    for k, v in defaults.items():
        ss.setdefault(k, v)
    fd = getattr(pipe, "feature_defaults", None)
    ss["gen.feature_defaults"] = dict(fd.strengths) if fd is not None else {}
    ss["gen.contrast"] = dict(fd.contrast) if fd is not None else {}
    for c in CONTROLS:
        ss.setdefault(qkey(c.stem), OFF)
        ss.setdefault(wkey(c.stem), 1.0)
        ss.setdefault(gkey(c.stem), 1.0)
    if K_PROMPT not in ss:
        ss[K_PROMPT] = DEFAULT_PROMPT
        on_text_change()
    ss.setdefault("gen.gallery", [])
    pending = ss.pop("gen.pending_settings", None)  # "Reuse settings" on the History page
    if pending is not None:
        apply_settings(*pending)


def feature_option(phrase: str, counts: Optional[dict]) -> str:
    return OFF if phrase == OFF else model_facts.option_label(phrase, counts)


# ----------------------------------------------------------------------------- page
_ui.crisp()
st.title("Generate galaxies")
pipe = _ui.get_pipeline()
init_state(pipe)
counts = _ui.model_counts()
size = pipe.default_size if pipe is not None else None

left, right = st.columns([4, 7], gap="medium")
with right:
    st.subheader("Latest images")
    progress_slot = st.empty()
    results_box = st.container(key="crisp-results")

with left:
    st.text_area("Prompt (editable; `{phrase:1.3}` sets a weight)", key=K_PROMPT, on_change=on_text_change,
                 height=80, max_chars=1000)
    if ss.get("gen.prompt_error"):
        st.error(f"Prompt not understood: {ss['gen.prompt_error']}", icon=":material/error:")
    for note in ss.get("gen.prompt_notes") or []:
        st.caption(f":orange[{note}]")
    current = controls.features_from_controls(_controls_state())
    conflicts = controls.tree_conflicts(list(current)) if not ss.get("gen.prompt_error") else []
    for line in conflicts:
        st.warning(f"{line}. The controls cannot build this prompt; turn one of them off.",
                   icon=":material/account_tree:")
    rare = [p for p in current if model_facts.is_rare(p, counts)]
    if rare:
        st.warning(f"{', '.join(f'{p} ({counts.get(p, 0)})' for p in rare)}: seen in fewer than "
                   f"{model_facts.RARE_THRESHOLD} training captions — expect extrapolation.", icon=":material/explore:")
    st.text_input("Negative prompt (steer away from; optional)", key=K_NEG, max_chars=1000,
                  placeholder="e.g. merger, star or artifact")
    if not str(ss[K_NEG]).strip():
        st.checkbox("Automatic negative prompt (GZ2 tree)", key=K_TREE_NEG,
                    help="With an empty negative prompt, steer away from the answers the Galaxy Zoo 2 decision "
                         "tree rules out for this prompt (e.g. 'smooth' and 'edge-on galaxy' for a spiral). "
                         "Off: plain unconditional guidance, as GalaxySD samples.")
        if ss[K_TREE_NEG] and pipe is not None and not ss.get("gen.prompt_error"):
            if conflicts:
                st.caption(":orange[automatic negative prompt: none — this prompt contradicts the GZ2 tree, so "
                           "the tree rules nothing out]")
            else:
                try:
                    auto = pipe.tree_negative_prompt(ss[K_PROMPT])
                except GalaxySDError:
                    auto = ""
                st.caption(f"automatic negative prompt: `{auto}`" if auto else
                           "automatic negative prompt: none (the tree rules nothing out for this prompt)")
    pressed = st.button("Generate", type="primary", key="btn.gen.generate", disabled=pipe is None,
                        icon=":material/auto_awesome:", width="stretch")

    st.caption(f"{ss[K_N]} images · {ss[K_STEPS]} steps · guidance {ss[K_GUID]:g} · "
               f"{SCHEDULER_LABELS.get(ss[K_SCHED], ss[K_SCHED])} · "
               f"{'random seed' if ss[K_SEEDMODE] == 'random' else f'seed {ss[K_SEED]}'}"
               + ("".join(f" · {p} guidance {v:g}" for p, v in guided_features().items())))
    # a fixed label: an expander whose label changes is a new element, and would close while its sliders move
    with st.expander("Sampling settings", expanded=False):
        c1, c2 = st.columns(2)
        c1.slider("Steps", 1, limits.MAX_UI_STEPS, key=K_STEPS)
        c2.slider("Guidance scale", 0.0, 15.0, step=0.5, key=K_GUID,
                  help="Classifier-free guidance; 1 or below disables it. Higher = more of the prompted class, "
                       "less variety (the model card and the Metrics page show the measured trade-off).")
        c1.selectbox("Sampler", list(SCHEDULERS), key=K_SCHED, format_func=lambda s: SCHEDULER_LABELS.get(s, s))
        c2.slider("Number of images", 1, limits.MAX_REQUEST_IMAGES, key=K_N)
        c1.radio("Seed", ["fixed", "random"], key=K_SEEDMODE, horizontal=True, help="Image i of a request uses seed + i.")
        c2.number_input("Seed value", 0, limits.MAX_UI_SEED, step=1, key=K_SEED, disabled=ss[K_SEEDMODE] == "random")
        st.caption(f"{ss[K_N]} images x {ss[K_STEPS]} steps = {int(ss[K_N]) * int(ss[K_STEPS])} image-steps "
                   f"(limit {limits.MAX_IMAGE_STEPS} per request)")

    st.subheader("Features")
    st.caption("One control per Galaxy Zoo 2 question, in decision-tree order (hover for the full question). "
               "Choosing an answer hides the answers and disables the questions the tree rules out with it. The "
               "number after each answer: training captions it was seen in; ⚠ below "
               f"{model_facts.RARE_THRESHOLD}: rarely seen, expect extrapolation.")
    st.radio("Sliders drive", list(controls.MECHANISMS), key=K_MECH, format_func=controls.MECHANISMS.get,
             help="Feature guidance (default): each feature gets its own guidance on top of the prompt without it, "
                  "so the same seed keeps its galaxy while the feature grows; strength 1 = the plain prompt, 0 = "
                  "without the feature, below 0 pushes it away; a new answer starts at the model's measured default "
                  "(model card). Embedding weight: GalaxySD's {phrase:w}, the text encoder's output times w.")
    guided = ss[K_MECH] == "guidance"
    views = controls.control_views(_controls_state())
    for i, c in enumerate(CONTROLS):
        view = views[c.stem]
        chosen = ss[qkey(c.stem)]
        options = [OFF, *view.options] if chosen == OFF or chosen in view.options else [OFF, *view.options, chosen]
        a, b = st.columns([3, 2])
        a.selectbox(c.label, options, key=qkey(c.stem), on_change=on_answer_change, args=(c.stem,),
                    disabled=view.disabled, help=f"{c.text}" + (f" — {view.reason}" if view.reason else ""),
                    format_func=lambda p, d=view.disabled: ("— not asked" if d and p == OFF
                                                            else feature_option(p, counts)))
        if guided:
            rec = recommended_strength(None if chosen == OFF else chosen)
            b.slider("strength (1 = plain prompt)", controls.STRENGTH_MIN, controls.STRENGTH_MAX,
                     step=controls.STRENGTH_STEP, key=gkey(c.stem), disabled=chosen == OFF,
                     label_visibility="visible" if i == 0 else "hidden",
                     help=f"Guidance of this feature, x the guidance scale; the model's default: {rec:g}")
            note = controls.contrast_note(None if chosen == OFF else chosen, ss.get("gen.contrast"))
            if note:
                b.caption(note)
        else:
            b.slider("weight", controls.SLIDER_MIN, controls.SLIDER_MAX, step=controls.SLIDER_STEP, key=wkey(c.stem),
                     on_change=on_weight_change, disabled=ss[qkey(c.stem)] == OFF,
                     label_visibility="visible" if i == 0 else "hidden")

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
            elif pipe is not None:
                try:
                    index, problems = _ui.get_real_index(data_dir)
                    rows, match = real_data.start_image_choices(index, ss[K_PROMPT])
                    if len(rows) == 0:
                        st.info(f"No galaxies with images found in `{data_dir}`.")
                    else:
                        labels = {str(r.id): f"{r.id} — {r.caption}" for r in rows.itertuples()}
                        pick = st.selectbox(f"Galaxy ({match}, {len(rows)} shown)", list(labels), key=K_REAL,
                                            format_func=lambda i: labels.get(i, i))
                        init_image = real_data.load_real_image(rows, pick, pipe.default_size)
                except GalaxySDError as exc:
                    _ui.show_error(exc)
        if ss[K_INIT] != "noise":
            st.slider("Strength (1 = ignore the start image)", 0.05, 1.0, step=0.05, key=K_STRENGTH)
            if init_image is not None:
                st.image(_ui.enlarge(init_image, 128), caption="start image")

    with st.expander("Load settings from a PNG"):
        st.file_uploader("PNG saved by GalaxySD Studio (or AUTOMATIC1111)", type=["png"], key="up.gen.settings_png",
                         on_change=on_settings_png)
        if ss.get("gen.png_error"):
            st.error(ss["gen.png_error"], icon=":material/error:")
    for note in ss.get("gen.loaded_notes") or []:
        st.caption(f":blue[{note}]")

# ----------------------------------------------------------------------------- generation (shown on the right)
if pressed and pipe is not None:
    if ss.get("gen.prompt_error"):  # already shown under the prompt: once is enough
        st.toast("Fix the prompt first (see the message under it).", icon=":material/error:")
    elif ss[K_INIT] != "noise" and init_image is None:
        with left:
            st.error("Choose a start image first, or switch the start image to 'Text only'.")
    else:
        seed = generation.random_seed() if ss[K_SEEDMODE] == "random" else int(ss[K_SEED])
        request = generation.GenerationRequest(
            prompt=ss[K_PROMPT], negative_prompt=ss[K_NEG], tree_negatives=bool(ss[K_TREE_NEG]),
            n_images=int(ss[K_N]), steps=int(ss[K_STEPS]), guidance=float(ss[K_GUID]), scheduler=ss[K_SCHED],
            seed=seed, init_image=init_image if ss[K_INIT] != "noise" else None, strength=float(ss[K_STRENGTH]),
            feature_guidance=guided_features())
        wait, ahead = limits.GATE.estimate_wait(), limits.GATE.running + limits.GATE.waiting
        bar = progress_slot.progress(0.0, text=f"Waiting for {ahead} other generation{'s' if ahead != 1 else ''} to "
                                     f"finish (about {max(1, round(wait))} s) ..." if wait > 0 else "Encoding the prompt ...")

        def on_step(step: int, total: int) -> None:
            bar.progress(step / total, text=f"Denoising step {step}/{total}")

        try:
            with Stopwatch() as sw:
                items = generation.generate(pipe, request, callback=on_step)
        except GalaxySDError as exc:
            progress_slot.empty()
            with right:
                _ui.show_error(exc)
        else:
            progress_slot.empty()
            ss["gen.gallery"] = generation.add_to_gallery(ss["gen.gallery"], items)
            ss["gen.latest"] = [it.uid for it in items]
            ss["gen.latest_settings"] = generation.request_settings(request)
            ss["gen.last_seconds"] = sw.seconds
            try:  # the history is a convenience: a store failure must not cost the images
                _ui.get_history().add_generation(items, ss["gen.latest_settings"], model_fingerprint=_ui.model_fingerprint(),
                                                 session_id=_ui.session_id(), user=_ui.user_name())
            except GalaxySDError as exc:
                st.toast(f"Not kept in the history: {exc}", icon=":material/history:")

gallery: List[generation.GalleryItem] = ss.get("gen.gallery", [])
latest_ids = set(ss.get("gen.latest", []))
latest = [it for it in gallery if it.uid in latest_ids]  # in seed order (the gallery keeps batches in order)
now = generation.request_settings(generation.GenerationRequest(
    prompt=ss[K_PROMPT], negative_prompt=ss[K_NEG], tree_negatives=bool(ss[K_TREE_NEG]),
    n_images=int(ss[K_N]), steps=int(ss[K_STEPS]), guidance=float(ss[K_GUID]), scheduler=ss[K_SCHED],
    seed=None if ss[K_SEEDMODE] == "random" else int(ss[K_SEED]), feature_guidance=guided_features()))
ss["gen.current_settings"] = now  # the History page compares its entries with these
with results_box:
    if latest:
        changes = generation.settings_changes(ss.get("gen.latest_settings"), now)
        side = latest[0].image.shape[0]
        st.caption(f"`{latest[0].prompt}` · {len(latest)} image(s), {side} px shown "
                   f"{display.display_factor(side)}x (nearest neighbour)"
                   + (f" · {ss['gen.last_seconds']:.1f} s" if ss.get("gen.last_seconds") else ""))
        if changes:
            st.info("Changed since these images: " + "; ".join(changes) + ". Press **Generate** to see the effect, "
                    "or compare both settings on the same seeds on the **Compare** page.", icon=":material/difference:")
        per_row = 2
        for start in range(0, len(latest), per_row):
            cols = st.columns(per_row)
            for col, item in zip(cols, latest[start:start + per_row]):
                with col:
                    _ui.show_generated(item, f"seed {item.seed}", key=f"btn.gen.enlarge.{item.uid}")
    else:
        st.info("Press **Generate**: the images appear here"
                + (f", {size} px shown at {size * display.display_factor(size)} px." if size else "."),
                icon=":material/auto_awesome:")

# ----------------------------------------------------------------------------- gallery
st.divider()
head, z, clear = st.columns([6, 2, 1])
head.subheader(f"Gallery ({len(gallery)} image{'s' if len(gallery) != 1 else ''} this session)")
if gallery:
    # The data callable runs later in a thread without this session's state (deferred download), so it
    # gets the gallery items now; the zip itself is only built when the button is pressed.
    z.download_button("Download all (zip)", data=lambda items=tuple(gallery): generation.gallery_zip(items),
                      file_name="galaxysd_gallery.zip", mime="application/zip", key="dl.gen.zip",
                      on_click="ignore", icon=":material/folder_zip:")
    if clear.button("Clear", key="btn.gen.clear"):
        ss["gen.gallery"], ss["gen.latest"] = [], []
        st.rerun()
    per_row = 4
    with st.container(key="crisp-gallery"):
        for start in range(0, len(gallery), per_row):
            cols = st.columns(per_row)
            for col, item in zip(cols, gallery[start:start + per_row]):
                with col:
                    _ui.show_generated(item, f"seed {item.seed} · {item.created}", px=display.THUMB_PX,
                                       key=f"btn.gen.gal_enlarge.{item.uid}")
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
    st.caption("Generated images are kept here while this browser tab is open.")
st.page_link("pages/compare.py", label="Compare two settings on the same seeds, or sweep a feature's weight",
             icon=":material/compare_arrows:")
st.page_link("pages/history.py", label="Every generation of every session, with its settings: the history",
             icon=":material/history:")
_ui.show_enlarged_dialog()
