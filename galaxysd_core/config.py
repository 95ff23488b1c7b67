"""Configuration read from the environment: where real data and the default model live.

Paths to real data never appear in code; they come from these variables or from CLI flags.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

#: Environment variable naming a folder of real galaxies (the layout of ../shared/data or a GZ2 download).
DATA_DIR_ENV = "GALAXYSD_DATA_DIR"
#: Environment variable naming the model folder the app and CLI use (default: the shipped model).
MODEL_DIR_ENV = "GALAXYSD_MODEL_DIR"
#: Environment variable naming the SQL store URL (default: SQLite file under ~/.galaxysd).
STORE_URL_ENV = "GALAXYSD_STORE_URL"
#: Environment variable naming the candidate catalog (file or folder) the Candidates page opens first
#: (default: the shipped D-ETG catalog ``assets/detg_candidates``, else the demo catalog).
CANDIDATES_ENV = "GALAXYSD_CANDIDATES"
#: Environment variable naming a folder of candidate catalogs visitors may open by typing a path.
CATALOGS_DIR_ENV = "GALAXYSD_CATALOGS_DIR"
#: Environment variable that lets visitors type server paths at all ("1"/"true"/"yes"; default off:
#: a public deployment only offers uploads and the operator-configured folders).
ALLOW_SERVER_PATHS_ENV = "GALAXYSD_ALLOW_SERVER_PATHS"
#: Environment variable choosing the device models run on: ``auto`` (default: CUDA when available,
#: else Apple MPS, else CPU), ``cpu``, ``cuda``, ``cuda:N`` or ``mps`` (:mod:`galaxysd_core.pipelines.devices`).
DEVICE_ENV = "GALAXYSD_DEVICE"
#: Environment variable choosing the pipeline's dtype: ``auto`` (float16 on CUDA, float32 elsewhere),
#: ``fp32``, ``fp16`` or ``bf16`` (the app's only way to choose one; the CLI has ``--dtype``).
DTYPE_ENV = "GALAXYSD_DTYPE"
#: Value of a catalog's ``image_root`` metadata meaning "image paths are relative to the real-data folder".
DATA_DIR_IMAGE_ROOT = "$" + DATA_DIR_ENV

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ASSETS_DIR = PROJECT_ROOT / "assets"
DEFAULT_MODEL_DIR = ASSETS_DIR / "galaxysd-mini"
DEFAULT_CLASSIFIER_DIR = ASSETS_DIR / "classifier"
#: Where commands and scripts write when no output folder is given: ``galaxysd-output/`` in the
#: current folder (git-ignored here). Only the explicit release steps (``train/finalize_model.py``,
#: or an ``--out assets/...`` you type) write into ``assets/``.
OUTPUT_DIR_NAME = "galaxysd-output"


def data_dir(override: Optional[str | os.PathLike] = None) -> Optional[Path]:
    """Configured real-data folder (flag value first, then ``$GALAXYSD_DATA_DIR``), or None."""
    value = override or os.environ.get(DATA_DIR_ENV)
    return Path(value).expanduser() if value else None


def candidates_path() -> Optional[Path]:
    """Catalog named by ``$GALAXYSD_CANDIDATES`` (file or folder), or None when unset."""
    value = os.environ.get(CANDIDATES_ENV, "").strip()
    return Path(value).expanduser() if value else None


def model_dir(override: Optional[str | os.PathLike] = None) -> Path:
    """Model folder to use: flag value, ``$GALAXYSD_MODEL_DIR``, or the shipped default."""
    value = override or os.environ.get(MODEL_DIR_ENV)
    return Path(value).expanduser() if value else DEFAULT_MODEL_DIR


def output_dir(kind: str) -> Path:
    """Default output folder of a command or script: ``./galaxysd-output/<kind>`` (current folder)."""
    return Path.cwd() / OUTPUT_DIR_NAME / kind


def state_dir() -> Path:
    """Folder for the user's local state (store, caches): ``~/.galaxysd`` or ``$GALAXYSD_HOME``."""
    return Path(os.environ.get("GALAXYSD_HOME", Path.home() / ".galaxysd")).expanduser()


def catalogs_dir() -> Optional[Path]:
    """Folder named by ``$GALAXYSD_CATALOGS_DIR`` (catalogs a visitor may open by path), or None."""
    value = os.environ.get(CATALOGS_DIR_ENV, "").strip()
    return Path(value).expanduser() if value else None


def allow_server_paths() -> bool:
    """Whether the operator lets visitors type server paths (``$GALAXYSD_ALLOW_SERVER_PATHS``).

    Root-level keys of ``.streamlit/secrets.toml`` are exported as environment variables by
    Streamlit, so ``GALAXYSD_ALLOW_SERVER_PATHS = "1"`` there works as well.
    """
    return os.environ.get(ALLOW_SERVER_PATHS_ENV, "").strip().lower() in {"1", "true", "yes", "on"}
