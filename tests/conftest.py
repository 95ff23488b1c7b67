"""Shared pytest fixtures of GalaxySD Studio (keep generic; module-specific fixtures live in the tests).

Real data (read-only, never copied into the repository) is looked up at ``$GALAXYSD_DATA_DIR`` or,
by default, ``../shared/data`` next to the repository root; tests that need it are skipped with a
clear reason when it is absent.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

#: Repository root.
REPO_ROOT = Path(__file__).resolve().parents[1]

#: Default location of the shared real data: <repo>/../shared/data.
DEFAULT_SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def shared_data_path() -> Path:
    """Real-data folder: ``$GALAXYSD_DATA_DIR`` if set, else ``../shared/data``."""
    env = os.environ.get("GALAXYSD_DATA_DIR")
    return Path(env).expanduser() if env else DEFAULT_SHARED_DATA


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """Folder of the real data; skips the test when it does not exist."""
    path = shared_data_path()
    if not path.is_dir():
        pytest.skip(f"real data folder {path} not found (set GALAXYSD_DATA_DIR to the shared real-data folder)")
    return path


@pytest.fixture(scope="session")
def shared_data(shared_data_dir):
    """Callable ``shared_data("gz1_sdss/labels.csv")`` -> path, skipping when that file is missing."""

    def get(relative: str) -> Path:
        path = shared_data_dir / relative
        if not path.exists():
            pytest.skip(f"real data file {path} not found")
        return path

    return get


# ---------------------------------------------------------------------------------- tiny pipeline
@pytest.fixture(scope="module")
def pipe():
    """A tiny random GalaxySD pipeline (tests/tiny_models.py), one per test module."""
    from tiny_models import build_tiny_pipeline

    return build_tiny_pipeline(seed=0)


@pytest.fixture(scope="module")
def saved(tmp_path_factory, pipe):
    """The tiny pipeline saved as a model folder."""
    folder = tmp_path_factory.mktemp("tiny") / "model"
    pipe.save_pretrained(folder)
    return folder
