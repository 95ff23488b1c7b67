"""Candidates page: vet a candidate catalog by eye; verdicts are stored at once and export as CSV/ECSV."""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Optional

import streamlit as st

from galaxysd_core import config
from galaxysd_core.errors import GalaxySDError
from galaxysd_core.science import candidates as cands
from galaxysd_core.studio.path_policy import MAX_CATALOG_UPLOAD_BYTES, PathPolicy
from galaxysd_core.studio.vetting import extra_columns, vetting_cursor
from pages import _ui

_ui.ensure_app_navigation()

ss = st.session_state
SOURCES = {"shipped": "Shipped catalog", "path": "Catalog file on the server", "upload": "Upload a catalog"}
BADGE = {"yes": ":green[**yes**]", "no": ":red[**no**]", "unsure": ":orange[**unsure**]", None: ":gray[not vetted]"}


@st.cache_data(show_spinner="Reading the catalog ...", max_entries=8)
def _read_path(path: str, images: str, mtime: float, data_dir: str) -> cands.CandidateCatalog:
    # data_dir is part of the cache key: catalogs of real galaxies resolve images against it
    return cands.read_candidates(path, images_dir=images or None)


@st.cache_data(show_spinner="Reading the catalog ...", max_entries=8)
def _read_bytes(digest: str, data: bytes, name: str, images: str) -> cands.CandidateCatalog:
    return cands.read_candidates(data, name=Path(name).stem, images_dir=images or None)


def load_catalog() -> Optional[cands.CandidateCatalog]:
    """The catalog chosen at the top of the page (None, with a message, when there is none).

    Server paths (a catalog file, an image folder) are offered only when the operator enables them
    (``$GALAXYSD_ALLOW_SERVER_PATHS``), and then pass the path policy: only files inside the
    configured folders are read. Uploads are size-limited; their image paths resolve only inside
    the image folder (or the real-data folder for catalogs of real galaxies).
    """
    policy = PathPolicy.from_config()
    sources = [k for k in SOURCES if k != "path" or policy.allow_typed]
    for k, v in (("keep.cand.source", "shipped"), ("keep.cand.path", ""), ("keep.cand.images", "")):
        ss.setdefault(k, v)
    if ss["keep.cand.source"] not in sources:
        ss["keep.cand.source"] = "shipped"
    c1, c2 = st.columns([2, 3])
    source = c1.radio("Catalog", sources, key="keep.cand.source", format_func=SOURCES.get)
    try:
        if source == "shipped":
            path = cands.default_catalog_path()
            if path is None:
                c2.info("No shipped catalog (assets/detg_candidates or assets/demo_candidates).")
                return None
            c2.caption(f"`{path}`" + (" (synthetic demo galaxies)" if "demo_candidates" in str(path) else ""))
            return _read_path(str(path), "", path.stat().st_mtime, str(config.data_dir() or ""))
        images = ""
        if policy.allow_typed:
            typed = c2.text_input("Image folder (default: the catalog's folder)", key="keep.cand.images",
                                  help=f"A folder inside the server's allowed folders ({policy.describe()}).")
            if typed.strip():
                images = str(policy.check_typed(typed, what="image folder", kind="dir"))
        if source == "path":
            text = c2.text_input("Catalog file (CSV or ECSV with id, score, image_path; ra, dec optional)",
                                 key="keep.cand.path",
                                 help=f"A file inside the server's allowed folders ({policy.describe()}).")
            if not text.strip():
                return None
            p = policy.check_typed(text, what="catalog file", kind="file")
            return _read_path(str(p), images, p.stat().st_mtime, str(config.data_dir() or ""))
        up = c2.file_uploader("Catalog (CSV or ECSV)", type=["csv", "ecsv"], key="up.cand.file",
                              max_upload_size=max(1, MAX_CATALOG_UPLOAD_BYTES // 2**20))
        if up is None:
            return None
        policy.check_upload_size(up.size)
        data = up.getvalue()
        if not images:
            c2.caption(":orange[Relative image paths of an uploaded catalog need an image folder"
                       + (".]" if policy.allow_typed else " on the server, which this server does not offer "
                          "(images of real-data catalogs come from its data folder).]"))
        return _read_bytes(hashlib.sha256(data).hexdigest(), data, up.name, images)
    except GalaxySDError as exc:
        _ui.show_error(exc)
        return None


def _current_key(name: str) -> str:
    return f"cand.current.{name}"


def vote(catalog: str, cand_id: str, verdict: str, note_key: str, next_id: Optional[str]) -> None:
    """Store a verdict immediately and move on to the next unvetted candidate."""
    try:
        _ui.get_store().add_verdict(catalog, cand_id, verdict, note=ss.get(note_key, ""), user=_ui.user_name(),
                                    session_id=_ui.session_id())
    except GalaxySDError as exc:
        ss["cand.error"] = str(exc)
        return
    ss["cand.flash"] = f"{cand_id}: {verdict} saved"
    if next_id is not None:
        ss[_current_key(catalog)] = next_id


def go_to(catalog: str, cand_id: Optional[str]) -> None:
    if cand_id is not None:
        ss[_current_key(catalog)] = cand_id


# ----------------------------------------------------------------------------- page
st.title("Candidates")
catalog = load_catalog()
if catalog is None:
    st.stop()
if catalog.needs_data_dir:
    st.info(f"The images of catalog `{catalog.name}` are real survey cutouts, which are not shipped: their "
            f"paths are relative to the real-data folder. Set `{config.DATA_DIR_ENV}` before starting the app "
            f"(e.g. `{config.DATA_DIR_ENV}=../shared/data streamlit run app.py`) to see them; vetting works "
            "without images too.", icon=":material/folder_open:")
if catalog.refused_ids:
    shown = ", ".join(catalog.refused_ids[:10]) + (" ..." if len(catalog.refused_ids) > 10 else "")
    st.warning(f"{len(catalog.refused_ids)} image path(s) refused (ids {shown}): absolute paths, '..' that climbs "
               "out and symbolic links out of the catalog's image folder are never opened. Write image paths "
               "relative to the image folder.", icon=":material/block:")
store = _ui.get_store()
try:
    latest = store.latest_verdicts(catalog.name)
except GalaxySDError as exc:
    _ui.show_error(exc)
    st.stop()
merged = cands.merge_verdicts(catalog, latest)
prog = cands.progress(merged)
st.progress(prog["vetted"] / prog["total"] if prog["total"] else 0.0,
            text=f"**{prog['vetted']} / {prog['total']} vetted** · {prog['yes']} yes · {prog['no']} no · "
                 f"{prog['unsure']} unsure — catalog `{catalog.name}`, sorted by score")

ss.setdefault("keep.cand.filter", "all")
f1, f2, f3 = st.columns([3, 1, 1])
which = f1.segmented_control("Show", list(cands.VERDICT_FILTERS), key="keep.cand.filter") or "all"
view = cands.filter_by_verdict(merged, which)
f2.download_button("Export CSV", key="dl.cand.csv", file_name=f"{catalog.name}_vetted.csv", mime="text/csv",
                   data=lambda: cands.export_vetted(catalog, merged, "csv"), disabled=prog["vetted"] == 0,
                   on_click="ignore", icon=":material/download:")
f3.download_button("Export ECSV", key="dl.cand.ecsv", file_name=f"{catalog.name}_vetted.ecsv", mime="text/plain",
                   data=lambda: cands.export_vetted(catalog, merged, "ecsv"), disabled=prog["vetted"] == 0,
                   on_click="ignore", icon=":material/download:")
if ss.get("cand.error"):
    st.error(ss.pop("cand.error"), icon=":material/error:")
if ss.get("cand.flash"):
    st.toast(ss.pop("cand.flash"), icon=":material/check:")
if len(view) == 0:
    st.info(f"No candidates with verdict '{which}'." if which != "unvetted" else "Every candidate is vetted.")
    st.stop()

cursor = vetting_cursor(view, merged, ss.get(_current_key(catalog.name)))
ss[_current_key(catalog.name)] = current = cursor.current
row = view.iloc[cursor.pos]

main, side = st.columns([3, 2], gap="large")
with main:
    st.subheader(f"{row['id']}  ·  score {row['score']:.3g}")
    img = _ui.thumbnail(row["image_file"], _ui.LARGE_PX, root=catalog.images_dir) if row["image_exists"] else None
    a, b = st.columns([3, 2])
    if img is not None:
        a.image(img)
    elif row["image_refused"]:
        a.warning(f"Image path `{row['image_path']}` refused: it leaves the catalog's image folder, so it is "
                  "never opened.", icon=":material/block:")
    else:
        a.warning(f"Image not found: `{row['image_path']}`")
    with b:
        st.markdown(f"Current verdict: {BADGE[row['verdict']] if isinstance(row['verdict'], str) else BADGE[None]}")
        if isinstance(row["note"], str) and row["note"]:
            st.caption(f"note: {row['note']}")
        sky = cands.skyserver_url(row["ra"], row["dec"])
        if sky:
            st.markdown(f"ra {row['ra']:.5f}°, dec {row['dec']:+.5f}°  \n[SDSS SkyServer]({sky}) · "
                        f"[Legacy Survey viewer]({cands.legacy_survey_url(row['ra'], row['dec'])})")
        else:
            st.caption("no coordinates: no sky links")
        for c in extra_columns(catalog.table.columns):
            st.caption(f"{c}: {row[c]}")
        note_key = f"cand.note.{catalog.name}.{row['id']}"
        ss.setdefault(note_key, row["note"] if isinstance(row["note"], str) else "")
        st.text_input("Note (saved with the verdict)", key=note_key, max_chars=2000)
    v1, v2, v3, n1, n2 = st.columns(5)
    args = lambda v: (catalog.name, row["id"], v, note_key, cursor.after_vote)  # noqa: E731
    v1.button("Yes", key="btn.cand.yes", on_click=vote, args=args("yes"), shortcut="Y", type="primary",
              width="stretch")
    v2.button("No", key="btn.cand.no", on_click=vote, args=args("no"), shortcut="N", width="stretch")
    v3.button("Unsure", key="btn.cand.unsure", on_click=vote, args=args("unsure"), shortcut="U", width="stretch")
    n1.button("Previous", key="btn.cand.prev", on_click=go_to, args=(catalog.name, cursor.previous),
              shortcut="Left", disabled=cursor.previous is None, width="stretch")
    n2.button("Next", key="btn.cand.next", on_click=go_to, args=(catalog.name, cursor.next), shortcut="Right",
              disabled=cursor.next is None, width="stretch")
    st.caption(f"Keys: Y / N / U vote (saved at once, then the next unvetted candidate opens), ← / → move. "
               f"{cursor.pos + 1} of {len(cursor.ids)} shown.")
    history = store.verdict_history(catalog.name, row["id"])
    if len(history) > 1:
        with st.expander(f"History ({len(history)} votes)"):
            for h in reversed(history):
                st.caption(f"{h.created_at:%Y-%m-%d %H:%M} · {h.verdict} · {h.user or 'anonymous'}"
                           + (f" · {h.note}" if h.note else ""))

with side:
    start = cursor.page_start  # the grid follows the candidate in view
    h1, h2, h3 = st.columns([4, 1, 1])
    h1.markdown(f"**{len(view)} candidates** ({which}) · page {cursor.page} of {cursor.pages}")
    h2.button("‹", key="btn.cand.page_prev", on_click=go_to, args=(catalog.name, cursor.previous_page),
              disabled=cursor.previous_page is None, help="previous page")
    h3.button("›", key="btn.cand.page_next", on_click=go_to, args=(catalog.name, cursor.next_page),
              disabled=cursor.next_page is None, help="next page")
    grid = st.columns(3)
    for i, r in enumerate(view.iloc[start:start + cursor.per_page].itertuples(index=False)):
        with grid[i % 3]:
            thumb = _ui.thumbnail(r.image_file, 120, root=catalog.images_dir) if r.image_exists else None
            if thumb is not None:
                st.image(thumb)
            else:
                st.caption("(image refused)" if r.image_refused else "(no image)")
            label = f"{'▶ ' if r.id == current else ''}{r.id}"
            st.button(label, key=f"btn.cand.open.{r.id}", on_click=go_to, args=(catalog.name, r.id),
                      width="stretch", type="tertiary")
            st.caption(f"{r.score:.3g} · {BADGE[r.verdict] if isinstance(r.verdict, str) else BADGE[None]}")
