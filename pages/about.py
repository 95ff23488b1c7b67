"""About / Getting started: what the app does, and what to set up when something is missing."""
from __future__ import annotations

import streamlit as st

from galaxysd_core import __version__, config
from galaxysd_core.studio.store import describe_url
from pages import _ui

_ui.ensure_app_navigation()

status = _ui.model_status()
st.title("GalaxySD Studio" if status.ok else "Getting started with GalaxySD Studio")
st.markdown(
    "Generate Galaxy Zoo 2 style galaxies from morphology prompts such as "
    "`sdss, features or disk-shaped, spiral galaxy, {dust lane:1.5}` (feature weights after Ma, Sun et al. 2025, "
    "*Can AI Dream of Unseen Galaxies?*, arXiv:2506.16233), compare them with real galaxies, read the "
    "model's metrics and vet candidate galaxies.")

st.subheader("Model")
if status.ok:
    st.success(f"Using {status.message}.", icon=":material/check_circle:")
else:
    st.warning(status.message, icon=":material/warning:")
    st.markdown(
        "Until a model is configured the **Generate** page cannot make images; **Metrics** shows whatever "
        "metric files exist, **Real vs synthetic** shows real galaxies only and **Candidates** works fully.")

st.subheader("Real data")
data = config.data_dir()
if data is not None and data.is_dir():
    st.success(f"Real galaxies are read from `{data}` (`{config.DATA_DIR_ENV}`).", icon=":material/check_circle:")
elif data is not None:
    st.warning(f"`{config.DATA_DIR_ENV}` points to `{data}`, which is not a folder.", icon=":material/warning:")
else:
    _ui.data_dir_notice()

st.subheader("Pages")
st.markdown(
    "- **Generate**: one control per Galaxy Zoo 2 question (answers of one question exclude each other), "
    "each with a weight from 0.5 to 2.0; the prompt text follows the controls and vice versa. Seeds, "
    "sampler, steps and guidance are yours; start from a real galaxy if you like; every image downloads as "
    "PNG (settings embedded, AUTOMATIC1111 style) or FITS (provenance header), or all as a zip. "
    "*Load settings from a PNG* restores every control; *Extrapolation sweep* shows one feature's weight "
    "against seeds. Features marked *(unseen in training)* never occurred in the model's training captions.\n"
    "- **Metrics**: training curves, realism/diversity trade-offs, morphology distributions and the "
    "classifier card, read from files (nothing is recomputed in the app).\n"
    "- **Real vs synthetic**: real galaxies with a caption beside generated ones, light-profile histograms, "
    "and a *spot the fake* quiz.\n"
    "- **Candidates**: vet a candidate catalog (CSV/ECSV with id, score, image_path and optional ra/dec) with "
    "keyboard shortcuts; verdicts are saved immediately and export as CSV or ECSV.")

st.subheader("Configuration")
st.markdown(
    f"| variable | meaning | now |\n|---|---|---|\n"
    f"| `{config.MODEL_DIR_ENV}` | model folder | `{config.model_dir()}` |\n"
    f"| `{config.DATA_DIR_ENV}` | real galaxies | `{data or 'not set'}` |\n"
    f"| `{config.ALLOW_SERVER_PATHS_ENV}` | visitors may type server paths (inside the allowed folders) | "
    f"`{'1 (on)' if config.allow_server_paths() else 'off'}` |\n"
    f"| `{config.CATALOGS_DIR_ENV}` | folder of catalogs visitors may open by path | "
    f"`{'set' if config.catalogs_dir() else 'not set'}` |\n"
    f"| `{config.CANDIDATES_ENV}` | catalog the Candidates page opens first | "
    f"`{'set' if config.candidates_path() else 'shipped catalog'}` |\n"
    f"| `{config.STORE_URL_ENV}` | verdict and quiz store (SQLAlchemy URL) | `{describe_url()}` |\n"
    f"| `GALAXYSD_HOME` | folder of the default SQLite store | `{config.state_dir()}` |")
st.markdown(f"Candidate verdicts and quiz answers are saved in `{describe_url()}`; set `{config.STORE_URL_ENV}` "
            f"(any SQLAlchemy URL, e.g. PostgreSQL) or `GALAXYSD_HOME` (folder of the default SQLite file, "
            f"default `~/.galaxysd`) to move them.")
st.markdown(f"**Public deployments.** Visitors can only upload files unless `{config.ALLOW_SERVER_PATHS_ENV}=1`; even "
            f"then every typed path must resolve (links followed) inside the allowed folders: the real-data "
            f"folder, `{config.CATALOGS_DIR_ENV}`, the model folder and the shipped assets. Image paths in "
            f"catalogs never leave the catalog's image folder. Root-level keys of `.streamlit/secrets.toml` "
            f"become environment variables, so these can be set there too.")
st.caption(f"galaxysd_core {__version__}. Images: SDSS; labels: Galaxy Zoo (Lintott et al. 2008; "
           f"Willett et al. 2013; Hart et al. 2016).")
