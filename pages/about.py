"""About / Getting started: what the app does, and what to set up when something is missing."""
from __future__ import annotations

import streamlit as st

from galaxysd_core import __version__, config
from galaxysd_core.pipelines.generation_defaults import FALLBACK, GenerationDefaults
from galaxysd_core.studio.model_facts import RARE_THRESHOLD, model_facts
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
    recommended = GenerationDefaults.load(status.path) or FALLBACK  # the card's chosen settings
    facts = model_facts(status.path, guidance=st.session_state.get("keep.gen.guidance", recommended.guidance_scale))
    if facts.card.get("summary"):
        st.markdown(f"**{facts.card.get('title') or facts.name}.** {facts.card['summary']}")
    made = [f"{facts.image_size} x {facts.image_size} px images" if facts.image_size else None,
            f"trained on {facts.n_images:,} real galaxies" if facts.n_images else None,
            f"{facts.step:,} training steps" if facts.step else None]
    if any(made):
        st.markdown("It draws " + ", ".join(m for m in made if m) + ".")
    st.markdown("#### What it can and cannot draw")
    if facts.counts is None:
        st.info("This model folder has no `training_captions.json`, so which features it has seen is unknown.",
                icon=":material/help:")
    else:
        seen, rare, never = facts.well_seen(), facts.rare(), facts.never()
        st.markdown(
            f"- **Seen often** ({len(seen)} features, at least {RARE_THRESHOLD} training captions each): "
            + (", ".join(f"{p} ({facts.counts[p]:,})" for p in seen) or "none") + ".\n"
            f"- **Rarely seen** ({len(rare)}, fewer than {RARE_THRESHOLD} captions: expect extrapolation, the "
            f"images may not show the feature at all): "
            + (", ".join(f"{p} ({facts.counts[p]})" for p in rare) or "none") + ".\n"
            f"- **Never seen** ({len(never)}: pure extrapolation): " + (", ".join(never) or "none") + ".")
    if facts.measured is not None and len(facts.measured):
        m = facts.measured
        g = m["guidance"].iloc[0] if "guidance" in m.columns else None
        st.markdown("Measured prompt consistency (share of generated images in which the morphology classifier sees "
                    "every prompted feature it has a head for" + (f", guidance {g:g}" if g is not None else "") + "):")
        st.markdown("\n".join(f"- `{r.prompt}`: **{100 * r.consistency:.0f} %**"
                               + (f" of {int(r.n)} images" if "n" in m.columns and r.n == r.n else "")
                               for r in m.itertuples()))
        st.caption(f"From `{status.path.name}/metrics` (written by `galaxysd evaluate`); the Metrics page has the rest.")
    else:
        st.caption("No evaluation table in the model's `metrics/` folder: nothing measured yet "
                   "(write one with `galaxysd evaluate`).")
    if facts.card.get("text"):
        with st.expander(f"Model card ({status.path.name}/README.md)"):
            st.markdown(facts.card["text"])
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
    "The latest images appear beside the controls, enlarged without blur; *Enlarge* shows one with its seed and "
    "every setting. *Load settings from a PNG* restores every control. Beside every answer: how many training "
    f"captions it was seen in; below {RARE_THRESHOLD} it is marked *rarely seen: expect extrapolation*. The controls follow the GZ2 decision tree, so only answers a volunteer "
    "could give together can be combined.\n"
    "- **Compare**: the same seeds twice with one difference (a feature on/off, two weights, two guidance scales, "
    "two models), side by side with the difference image; and the extrapolation sweep of one feature's weight, "
    "with the classifier's probability of the feature under each column.\n"
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
