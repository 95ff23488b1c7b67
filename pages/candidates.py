"""Candidates page: vet a candidate catalog by eye; verdicts are stored at once and export as CSV/ECSV."""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Optional

import streamlit as st

from galaxysd_core import config
from galaxysd_core.errors import GalaxySDError
from galaxysd_core.science import candidates as cands
from galaxysd_core.science.eye_check import eye_check_sentence, read_eye_check
from galaxysd_core.studio import display
from galaxysd_core.studio.path_policy import MAX_CATALOG_UPLOAD_BYTES, PathPolicy
from galaxysd_core.science.sky_positions import candidate_position, dr7_explore_url
from galaxysd_core.studio.vetting import (confirmation_summary, extra_columns, format_value, probability_columns,
                                          vetting_cursor)
from pages import _ui

_ui.ensure_app_navigation()

ss = st.session_state
SOURCES = {"shipped": "Shipped catalog", "path": "Catalog file on the server", "upload": "Upload a catalog"}
BADGE = {"yes": ":green[**yes**]", "no": ":red[**no**]", "unsure": ":orange[**unsure**]", None: ":gray[not vetted]"}


@st.cache_resource(show_spinner=False)
def _index_cache() -> dict:
    """Process-wide holder of the catalogs' "more like this" indexes (built outside any cached function,
    so the progress bar of a build is never replayed)."""
    return {}


def similarity_index(source: str, stamp: str, catalog, progress=None):
    """The catalog's "more like this" index (built once per catalog and classifier, cached on disk too)."""
    from galaxysd_core.science.similarity import catalog_index
    from galaxysd_core.science.synthetic import model_fingerprint

    cache = _index_cache()
    key = (source, stamp)
    if key not in cache:
        while len(cache) >= 4:  # a few catalogs at a time
            cache.pop(next(iter(cache)))
        cache[key] = catalog_index(catalog, _ui.get_classifier(), cache_dir=config.state_dir() / "similarity",
                                   classifier_id=model_fingerprint(config.DEFAULT_CLASSIFIER_DIR), progress=progress)
    return cache[key]


def page_index(bar):
    """The open catalog's similarity index, its build shown on ``bar`` (st.progress)."""
    stamp = hashlib.sha256("|".join(catalog.table["id"]).encode()).hexdigest()[:16]
    return similarity_index(str(catalog.source), stamp, catalog,
                            lambda d, t: bar.progress(d / t, text=f"Embedding {d} of {t} galaxies ..."))


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
    """Store a verdict immediately and move on to the next unvetted candidate.

    The acknowledgement (a toast naming the candidate, the verdict and the stored vote's number) is
    set only after the store's commit returned; a failed write (full disk, unreachable store) shows
    its message instead, keeps the candidate and its note on screen and acknowledges nothing.
    """
    ss.pop("cand.flash", None)
    try:
        row_id = _ui.get_store().add_verdict(catalog, cand_id, verdict, note=ss.get(note_key, ""),
                                             user=_ui.user_name(), session_id=_ui.session_id())
    except GalaxySDError as exc:
        ss["cand.error"] = str(exc)
        return
    ss["cand.flash"] = f"{cand_id}: {verdict} saved (vote #{row_id})"
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
if catalog.skipped:  # bad rows (empty or shared id, bad score or position) are left out, the rest is shown
    shown = "; ".join(f"{s['row']}: {s['reason']}" for s in catalog.skipped[:3])
    st.warning(f"{len(catalog.skipped)} rows of `{catalog.name}` were left out ({shown}"
               f"{'; ...' if len(catalog.skipped) > 3 else ''}); the other {len(catalog)} are shown. Fix those rows "
               "in the file to vet them.", icon=":material/rule:")
if catalog.needs_data_dir:
    st.info(f"The images of catalog `{catalog.name}` are real survey cutouts, which are not shipped: their "
            f"paths are relative to the real-data folder. Set `{config.DATA_DIR_ENV}` before starting the app "
            f"(e.g. `{config.DATA_DIR_ENV}=../shared/data streamlit run app.py`) to see them; vetting works "
            "without images too.", icon=":material/folder_open:")
images_missing = not catalog.needs_data_dir and not catalog.table["image_exists"].any() and not catalog.refused_ids
if images_missing:
    st.warning(f"None of the {len(catalog)} image paths of `{catalog.name}` exists under "
               f"`{catalog.images_dir or 'the catalog folder'}`; vetting works without images, or choose the image "
               "folder the paths are relative to.", icon=":material/hide_image:")
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
RERANK_KEY = f"cand.rerank.{catalog.name}"
rerank = ss.get(RERANK_KEY)
if rerank is not None:  # the unvetted in the order of the head fitted on this person's verdicts
    merged["rerank"] = merged["id"].map(rerank["p"])
    merged = merged.sort_values(["rerank", "score"], ascending=False, na_position="last").reset_index(drop=True)
prog = cands.progress(merged)
conf = confirmation_summary(prog)
st.progress(conf["share_vetted"],
            text=f"**{prog['vetted']} / {prog['total']} vetted** · **{conf['confirmed']} visibly confirmed** (yes"
                 + (f", {100 * conf['share_confirmed']:.0f} % of those vetted" if conf["share_confirmed"] is not None
                    else "") + f") · {prog['no']} no · {prog['unsure']} unsure — catalog `{catalog.name}`, "
                 + (f"re-ranked from {rerank['n']} verdicts at {rerank['when']}" if rerank else "sorted by score"))
try:  # the developers' shipped look at the top of the shipped catalog, next to the visitors' verdicts
    check = read_eye_check(cands.default_catalog_path()) if ss.get("keep.cand.source") == "shipped" else None
except GalaxySDError as exc:
    check = None
    _ui.show_error(exc)
if check:
    st.info(eye_check_sentence(check) + (f" {check['notes']}" if check.get("notes") else ""),
            icon=":material/visibility:")
PROBS = probability_columns(catalog.table.columns)

ss.setdefault("keep.cand.filter", "all")
f1, f2, f3, f4, f5 = st.columns([3, 1.2, 1.3, 1.5, 1.2])
which = f1.segmented_control("Show", list(cands.VERDICT_FILTERS), key="keep.cand.filter") or "all"
view = cands.filter_by_verdict(merged, which)
for col, fmt, label, ext, mime in ((f2, "csv", "CSV", "csv", "text/csv"), (f3, "ecsv", "ECSV", "ecsv", "text/plain"),
                                   (f4, "votable", "VOTable", "vot", "application/x-votable+xml"),
                                   (f5, "fits", "FITS", "fits", "application/fits")):
    col.download_button(f"Export {label}", key=f"dl.cand.{fmt}", file_name=f"{catalog.name}_vetted.{ext}", mime=mime,
                        data=lambda fmt=fmt: cands.export_vetted(catalog, merged, fmt), disabled=prog["vetted"] == 0,
                        on_click="ignore", icon=":material/download:",
                        help=f"The vetted candidates as {label}" + (" (ra/dec in deg, UCDs: TOPCAT, Aladin)"
                                                                    if fmt in ("votable", "fits") else ""))
r1, f6, r2 = st.columns([1.6, 1.6, 4])
if r1.button("Re-rank from my verdicts", key="btn.cand.rerank", icon=":material/model_training:",
             disabled=prog["yes"] == 0 or prog["no"] == 0,
             help="Fit a small head (logistic regression on the classifier embedding + the score) to your yes/no "
                  "verdicts and put the unvetted candidates in its order (needs at least one yes and one no)"):
    import datetime as _dt

    from galaxysd_core.science.rerank import rerank_catalog

    bar = st.progress(0.0, text="Building the similarity index of this catalog (once) ...")
    try:
        index = page_index(bar)
        verdicts = {str(k): v.verdict for k, v in latest.items()}
        p = rerank_catalog(index, catalog.table, verdicts)
        ss[RERANK_KEY] = {"p": p, "n": sum(v in ("yes", "no") for v in verdicts.values()),
                          "when": _dt.datetime.now().strftime("%H:%M")}
        bar.empty()
        st.rerun()
    except GalaxySDError as exc:
        bar.empty()
        _ui.show_error(exc)
if rerank is not None:
    r2.caption(f"Unvetted candidates in the order learned from your {rerank['n']} yes/no verdicts ({rerank['when']}); "
               "vetted ones first. Vote on, then re-rank again.")
    if r2.button("Back to score order", key="btn.cand.rerank_off", type="tertiary"):
        ss.pop(RERANK_KEY, None)
        st.rerun()
if f6.button("Send to TOPCAT/Aladin", key="btn.cand.samp", disabled=prog["vetted"] == 0, icon=":material/send:",
             help="Broadcast the vetted candidates over SAMP to the tools connected to a running hub"):
    from galaxysd_core.io.sky_tables import send_over_samp

    try:
        n = send_over_samp(cands.export_vetted(catalog, merged, "votable"), f"{catalog.name}_vetted")
        st.toast(f"Sent {prog['vetted']} vetted candidates to {n} SAMP tool(s).", icon=":material/check:")
    except GalaxySDError as exc:
        _ui.show_error(exc)
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

def sky_markdown(r) -> str:
    pos = candidate_position(r["ra"], r["dec"], r["id"])
    if pos is None:
        dr7 = dr7_explore_url(r["id"])
        return f"no ra/dec in the catalog: [SDSS DR7 Explore]({dr7}) (by object id) shows its position" if dr7 else ""
    return f"{pos.label()}  \n[SDSS SkyServer]({pos.skyserver}) · [Legacy Survey viewer]({pos.legacy})"


def probability_table(r):
    import pandas as pd

    return pd.DataFrame({"component": PROBS, "probability": [format_value(r[c]) for c in PROBS]})


def open_candidate(cand_id: str) -> None:
    ss["cand.enlarged"] = cand_id


def more_like(cand_id: str) -> None:
    ss["cand.similar"] = cand_id


def show_similar(cand_id: str) -> None:
    """The 12 catalog galaxies most like ``cand_id`` in classifier v2's embedding, each one click from vetting."""
    bar = st.progress(0.0, text="Building the similarity index of this catalog (once) ...")
    try:
        index = page_index(bar)
        res = index.similar(cand_id, min(12, len(index) - 1))
    except GalaxySDError as exc:
        bar.empty()
        _ui.show_error(exc)
        return
    bar.empty()
    h, x = st.columns([6, 1])
    h.markdown(f"**More like {cand_id}** (classifier v2 embedding, cosine similarity; {len(index)} galaxies indexed)")
    x.button("Close", key="btn.cand.similar_close", on_click=lambda: ss.pop("cand.similar", None), type="tertiary")
    by = merged.set_index("id")
    cols = st.container(key="cand-similar").columns(6)
    for i, r in enumerate(res.itertuples(index=False)):
        m = by.loc[r.id]
        with cols[i % 6]:
            thumb = _ui.thumbnail(m["image_file"], 120, root=catalog.images_dir) if m["image_exists"] else None
            if thumb is not None:
                st.image(thumb)
            st.button(r.id, key=f"btn.cand.simopen.{r.id}", on_click=go_to, args=(catalog.name, r.id),
                      width="stretch", type="tertiary")
            st.caption(f"sim {r.similarity:.2f} · score {format_value(m['score'])} · "
                       f"{BADGE[m['verdict']] if isinstance(m['verdict'], str) else BADGE[None]}")


@st.dialog("Candidate", width="large")
def enlarged(r) -> None:
    a, b = st.columns([3, 2])
    big = _ui.thumbnail(r["image_file"], 640, root=catalog.images_dir) if r["image_exists"] else None
    if big is not None:
        z1, z2, z3 = a.columns([2, 2, 1])
        zoom = z1.select_slider("Zoom", options=list(display.ZOOMS), value=1.0, key="cand.view.zoom",
                                format_func=lambda v: f"{v:g}x")
        stretch = z2.radio("Stretch", list(display.STRETCHES), horizontal=True, key="cand.view.stretch",
                           help="asinh lifts faint structure (lane edges, tidal features) without saturating the bulge")
        invert = z3.checkbox("Invert", key="cand.view.invert", help="dark lanes show as bright on an inverted image")
        a.image(display.vetting_view(big, zoom, stretch, invert),
                caption=f"{r['image_path']} · {zoom:g}x · {stretch}" + (" · inverted" if invert else ""))
    else:
        a.caption("(no image)")
    with b:
        st.markdown(f"**{r['id']}**  \nscore {format_value(r['score'])}")
        sky = sky_markdown(r)
        st.markdown(sky or "no position: no sky links")
        if PROBS:
            st.table(probability_table(r).set_index("component"))
        for c in extra_columns(catalog.table.columns):
            if c not in PROBS:
                st.caption(f"{c}: {format_value(r[c])}")
        st.button("More like this", key="btn.cand.similar_dialog", on_click=more_like, args=(r["id"],),
                  icon=":material/join:")


main, side = st.columns([3, 2], gap="large")
with main:
    st.subheader(f"{row['id']}  ·  score {format_value(row['score'])}")
    img = _ui.thumbnail(row["image_file"], _ui.LARGE_PX, root=catalog.images_dir) if row["image_exists"] else None
    a, b = st.columns([3, 2])
    if img is not None:
        a.image(img)
        e1, e2 = a.columns(2)
        e1.button("Enlarge", key="btn.cand.enlarge", on_click=open_candidate, args=(row["id"],),
                  icon=":material/zoom_in:", type="tertiary", help="Bigger image with every component probability")
        e2.button("More like this", key="btn.cand.similar", on_click=more_like, args=(row["id"],),
                  icon=":material/join:", type="tertiary",
                  help="The catalog galaxies nearest to this one in the morphology classifier's embedding")
    elif row["image_refused"]:
        a.warning(f"Image path `{row['image_path']}` refused: it leaves the catalog's image folder, so it is "
                  "never opened.", icon=":material/block:")
    elif catalog.needs_data_dir or images_missing:
        a.caption("(no image: see the notice at the top)")
    else:
        a.warning(f"Image not found: `{row['image_path']}`")
    with b:
        st.markdown(f"Current verdict: {BADGE[row['verdict']] if isinstance(row['verdict'], str) else BADGE[None]}")
        if isinstance(row["note"], str) and row["note"]:
            st.caption(f"note: {row['note']}")
        sky = sky_markdown(row)
        if sky:
            st.markdown(sky)
        else:
            st.caption("no position (no ra/dec, and the id encodes none): no sky links")
        if PROBS:
            st.caption("component probabilities: " + " · ".join(f"{c} {format_value(row[c])}" for c in PROBS))
        for c in extra_columns(catalog.table.columns):
            if c not in PROBS:
                st.caption(f"{c}: {format_value(row[c])}")
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
    if ss.get("cand.similar"):
        show_similar(ss["cand.similar"])
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
    # full ids under the thumbnails: long SDSS object ids wrap instead of being cut with an ellipsis
    st.markdown("<style>.st-key-cand-grid button p, .st-key-cand-grid button div {white-space: normal !important; "
                "overflow-wrap: anywhere; text-overflow: clip !important; overflow: visible !important;}</style>",
                unsafe_allow_html=True)
    grid = st.container(key="cand-grid").columns(3)
    for i, r in enumerate(view.iloc[start:start + cursor.per_page].itertuples(index=False)):
        with grid[i % 3]:
            thumb = _ui.thumbnail(r.image_file, 120, root=catalog.images_dir) if r.image_exists else None
            if thumb is not None:
                st.image(thumb)
            elif r.image_refused:
                st.caption("(image refused)")
            elif not (catalog.needs_data_dir or images_missing):
                st.caption("(no image)")
            label = f"{'▶ ' if r.id == current else ''}{r.id}"
            st.button(label, key=f"btn.cand.open.{r.id}", on_click=go_to, args=(catalog.name, r.id),
                      width="stretch", type="tertiary")
            st.caption(f"{format_value(r.score)} · {BADGE[r.verdict] if isinstance(r.verdict, str) else BADGE[None]}")

if ss.get("cand.enlarged") is not None:
    pick = merged[merged["id"] == ss.pop("cand.enlarged")]
    if len(pick):
        enlarged(pick.iloc[0])
