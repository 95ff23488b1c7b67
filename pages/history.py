"""History page: every generation kept in the store, searchable by prompt and feature, with
"Reuse settings" and "Compare with the current one" (logic: galaxysd_core.studio.history)."""
from __future__ import annotations

import io

import numpy as np
import streamlit as st
from PIL import Image

from galaxysd_core.errors import GalaxySDError
from galaxysd_core.studio.history import history_limit
from pages import _ui

_ui.ensure_app_navigation()
ss = st.session_state
ANY = "any feature"
PAGE = 24

_ui.crisp()
st.title("Generation history")
try:
    limit = history_limit()
except GalaxySDError as exc:
    _ui.show_error(exc)
    st.stop()
history = _ui.get_history()
st.caption(f"Every press of **Generate** is kept with its settings, seed, model and a thumbnail — the newest "
           f"{limit:,} of all sessions (`$GALAXYSD_HISTORY_MAX`; older ones are pruned as new ones arrive). The "
           "images themselves are remade from the settings: **Reuse settings**, then Generate.")


def reuse(entry_id: int) -> None:
    entry = history.get(entry_id)
    if entry is None:
        ss["hist.error"] = f"generation {entry_id} is no longer in the history (pruned)"
        return
    settings, notes = entry.reuse_settings(ss.get("gen.contrast"))
    ss["gen.pending_settings"] = (settings, [f"settings of history entry {entry_id} restored"] + notes)
    ss["hist.go_generate"] = True


def compare(entry_id: int) -> None:
    ss["hist.compare"] = entry_id


def strip_image(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


try:
    features = history.features_in_use()
    total, mine = history.count(), history.count(_ui.session_id())
except GalaxySDError as exc:
    _ui.show_error(exc)
    st.stop()
if ss.pop("hist.go_generate", False):
    st.switch_page("pages/generate.py")
if ss.get("hist.error"):
    st.warning(ss.pop("hist.error"), icon=":material/history:")

c1, c2, c3 = st.columns([4, 3, 2])
text = c1.text_input("Prompt contains", key="hist.text", max_chars=200, placeholder="e.g. dust lane")
feature = c2.selectbox("Feature (in the prompt or guided)", [ANY, *features], key="hist.feature")
only_mine = c3.toggle("Only this session", key="hist.mine", value=False)
st.caption(f"{total:,} generations stored, {mine:,} of them from this session.")

# ---- compare with the current controls
cmp_id = ss.get("hist.compare")
if cmp_id is not None:
    entry = history.get(int(cmp_id))
    current = ss.get("gen.current_settings")
    with st.container(border=True, key="crisp-history-compare"):
        head, close = st.columns([8, 1])
        head.subheader(f"Entry {cmp_id} next to the current settings")
        if close.button("Close", key="btn.hist.close_compare"):
            ss.pop("hist.compare", None)
            st.rerun()
        if entry is None:
            st.warning("That generation is no longer in the history (pruned).")
        else:
            left, right = st.columns(2)
            with left:
                st.markdown(f"**History entry {entry.id}** · {entry.created_at:%Y-%m-%d %H:%M} UTC")
                if entry.thumbnail:
                    st.image(_ui.enlarge(strip_image(entry.thumbnail), 256), caption=entry.summary)
                st.markdown(f"`{entry.prompt}`")
            with right:
                st.markdown("**Current** (the Generate page's controls and latest images)")
                latest_ids = set(ss.get("gen.latest", []))
                latest = [it for it in ss.get("gen.gallery", []) if it.uid in latest_ids][:4]
                if latest:
                    from galaxysd_core.studio.history import thumbnail_png

                    st.image(_ui.enlarge(strip_image(thumbnail_png([it.image for it in latest])), 256),
                             caption=f"{len(latest)} latest image(s) of this session")
                if current:
                    st.markdown(f"`{current['prompt']}`")
            if not current:
                st.info("Open the Generate page once to compare with its controls.")
            else:
                changes = entry.changes_to(current)
                if changes:
                    st.markdown("**What differs (entry → current):** " + "; ".join(changes))
                else:
                    st.success("Same settings as the current controls.", icon=":material/check:")
            if entry.model_fingerprint and entry.model_fingerprint != _ui.model_fingerprint():
                st.caption(":orange[made with another model (weights fingerprint "
                           f"{entry.model_fingerprint}); the same settings give other images now]")

# ---- the list
shown = ss.setdefault("hist.shown", PAGE)
try:
    entries = history.search(text, None if feature == ANY else feature,
                             session_id=_ui.session_id() if only_mine else None, limit=min(500, shown))
except GalaxySDError as exc:
    _ui.show_error(exc)
    st.stop()
if not entries:
    st.info("No generation matches." if (text or feature != ANY or only_mine) else
            "Nothing generated yet: generations appear here after **Generate**.", icon=":material/history:")
here = _ui.model_fingerprint()
per_row = 3
with st.container(key="crisp-history"):
    for start in range(0, len(entries), per_row):
        cols = st.columns(per_row)
        for col, e in zip(cols, entries[start:start + per_row]):
            with col, st.container(border=True):
                if e.thumbnail:
                    st.image(_ui.enlarge(strip_image(e.thumbnail), 256))
                st.markdown(f"`{e.prompt}`")
                who = e.user or ("this session" if e.session_id == _ui.session_id() else "anonymous")
                model = "" if not e.model_fingerprint or e.model_fingerprint == here else " · :orange[other model]"
                st.caption(f"#{e.id} · {e.created_at:%Y-%m-%d %H:%M} UTC · {who} · {e.summary}{model}")
                st.button("Reuse settings", key=f"btn.hist.reuse.{e.id}", on_click=reuse, args=(e.id,),
                          icon=":material/replay:", help="Set the Generate page's controls to these settings",
                          width="stretch")
                st.button("Compare with current", key=f"btn.hist.compare.{e.id}", on_click=compare, args=(e.id,),
                          icon=":material/difference:", help="This entry next to the current controls and images",
                          width="stretch")
if len(entries) >= shown and shown < 500:
    if st.button("Show more", key="btn.hist.more"):
        ss["hist.shown"] = shown + PAGE
        st.rerun()
