"""GalaxySD Studio: a multipage Streamlit app over :mod:`galaxysd_core`.

Run with ``streamlit run app.py``. Configuration comes from the environment:
``GALAXYSD_MODEL_DIR`` (model folder; default ``assets/galaxysd-mini``), ``GALAXYSD_DATA_DIR``
(real Galaxy Zoo images) and ``GALAXYSD_STORE_URL`` (verdict store; default SQLite under
``~/.galaxysd``). Visitors can only upload files unless ``GALAXYSD_ALLOW_SERVER_PATHS=1``, and typed
paths must stay inside the configured folders (README "Deploying publicly"). Pages: Generate, Compare,
Metrics, Real vs synthetic, Candidates, History, About.
"""
from __future__ import annotations

from pathlib import Path

import streamlit as st

ROOT = Path(__file__).resolve().parent
from galaxysd_core import __version__  # noqa: E402
from galaxysd_core.studio.model_status import model_status  # noqa: E402

st.set_page_config(page_title="GalaxySD Studio", page_icon=":material/blur_on:", layout="wide")

status = model_status()
pages = [
    st.Page(str(ROOT / "pages" / "generate.py"), title="Generate", icon=":material/auto_awesome:", default=status.ok),
    st.Page(str(ROOT / "pages" / "compare.py"), title="Compare", icon=":material/compare_arrows:"),
    st.Page(str(ROOT / "pages" / "metrics.py"), title="Metrics", icon=":material/monitoring:"),
    st.Page(str(ROOT / "pages" / "real_vs_synthetic.py"), title="Real vs synthetic", icon=":material/compare:"),
    st.Page(str(ROOT / "pages" / "candidates.py"), title="Candidates", icon=":material/fact_check:"),
    st.Page(str(ROOT / "pages" / "history.py"), title="History", icon=":material/history:"),
    st.Page(str(ROOT / "pages" / "about.py"), title="About" if status.ok else "Getting started",
            icon=":material/info:", default=not status.ok),
]
# The navigation is drawn as page links in the sidebar below, not by Streamlit: on a server's first run
# Streamlit sees the pages/ folder and lists every file in it (pages/_ui.py as "ui", app.py as "app")
# until st.navigation replaces the list. `.streamlit/config.toml` hides that automatic list
# (client.showSidebarNavigation = false), which hides st.navigation's sidebar menu as well.
page = st.navigation(pages, position="hidden")

# Widget values under "keep." keys survive page switches: Streamlit drops the state of widgets that a
# run does not draw, unless the key is re-assigned (the documented multipage pattern).
for _key in [k for k in st.session_state.keys() if isinstance(k, str) and k.startswith("keep.")]:
    st.session_state[_key] = st.session_state[_key]

with st.sidebar:
    for _page in pages:
        st.page_link(_page)
    st.divider()
    if status.ok:
        st.caption(f"Model: **{status.path.name}**")
    else:
        st.caption(":orange[No model found] — see *Getting started*.")
    st.text_input("Your name (optional)", key="user_name", max_chars=100,
                  help="Stored with your candidate verdicts and quiz answers.")
    st.caption(f"GalaxySD Studio · galaxysd_core {__version__}")

page.run()
