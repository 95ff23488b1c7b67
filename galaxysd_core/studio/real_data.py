"""Real galaxies of the configured data folder, for the app: sources, an index, caption matching, cutouts.

:func:`real_sources` finds the readable sources of a data folder (a GZ2 release, catalog folders
with a ``labels.csv``), :func:`load_real_index` reads them into one table with each caption's
features, :func:`real_matches` picks the galaxies matching a prompt and :func:`load_real_images`
cuts them out exactly like the training data (:func:`galaxysd_core.data.decode.load_image`).
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import pandas as pd

from galaxysd_core import config
from galaxysd_core.data.catalog import read_catalog
from galaxysd_core.data.decode import default_crop_fraction, load_image
from galaxysd_core.data.gz2_release import GZ2_MAPPING_NAME, read_gz2_release
from galaxysd_core.errors import GalaxySDError, GalaxySDFileError, ImageRejected
from galaxysd_core.io.paths import resolved
from galaxysd_core.prompts.grammar import prompt_tags

#: Largest number of GZ2-release rows read for the app (the full release has ~240k).
REAL_GZ2_LIMIT = 30_000
#: Columns of :func:`load_real_index`.
INDEX_COLUMNS = ("id", "caption", "image_path", "source", "crop")


@dataclass(frozen=True)
class RealSource:
    """A source of real galaxies in the data folder: ``kind`` is ``"catalog"`` or ``"gz2"``."""

    name: str
    kind: str
    path: Path


def real_sources(data_dir: os.PathLike) -> List[RealSource]:
    """Sources of real galaxies with images in ``data_dir``.

    Understands a GZ2 release folder (``gz2_hart16.csv`` + mapping + images, at the top or one
    level down) and catalog folders with a ``labels.csv`` (the layout of the shared data:
    ``gz1_sdss/labels.csv``, ``gz2_examples/labels.csv``).

    Raises
    ------
    GalaxySDFileError
        When ``data_dir`` is not a folder.
    """
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise GalaxySDFileError(f"data folder {str(root)!r} does not exist; set {config.DATA_DIR_ENV} or the "
                                f"sidebar path to a folder with Galaxy Zoo images (download GZ2 with "
                                f"'galaxysd data download --out <folder>')")
    out: List[RealSource] = []
    for folder in [root, *sorted(p for p in root.iterdir() if p.is_dir())]:
        if (folder / GZ2_MAPPING_NAME).is_file():
            out.append(RealSource(folder.name, "gz2", folder))
        if (folder / "labels.csv").is_file():
            out.append(RealSource(folder.name, "catalog", folder / "labels.csv"))
    return out


def load_real_index(data_dir: os.PathLike, limit: Optional[int] = None) -> Tuple[pd.DataFrame, List[str]]:
    """Index of the real galaxies of ``data_dir``: ``id, caption, features, image_path, source, crop``.

    Returns
    -------
    index : pandas.DataFrame
        Rows with an image path only; ``features`` is the sorted tuple of caption features
        (:func:`galaxysd_core.prompts.grammar.prompt_tags`, survey prefix dropped: the matching key
        of :func:`real_matches`) and ``crop`` the central crop fraction of the source's cutouts.
    problems : list of str
        Sources that could not be read, with the reason, and how many image paths of a source were
        skipped because they leave ``data_dir`` (only images inside it are ever shown).

    Raises
    ------
    GalaxySDFileError
        When ``data_dir`` is missing. An empty index is returned when nothing usable is found.
    """
    rows: List[Dict[str, Any]] = []
    problems: List[str] = []
    root = resolved(data_dir)
    for src in real_sources(data_dir):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if src.kind == "gz2":
                    recs = read_gz2_release(src.path, limit=limit or REAL_GZ2_LIMIT, on_error="skip")
                else:
                    recs = read_catalog(src.path, limit=limit, on_error="skip")
        except GalaxySDError as exc:
            problems.append(f"{src.name}: {exc}")
            continue
        outside = 0
        for r in recs:
            if r.image_path is None:
                continue
            if not resolved(r.image_path).is_relative_to(root):  # absolute, '..' or a link out of the data folder
                outside += 1
                continue
            rows.append({"id": r.id, "caption": r.caption, "image_path": str(r.image_path), "source": r.source,
                         "crop": default_crop_fraction(r.label_kind, r.source)})
        if outside:
            problems.append(f"{src.name}: {outside} image path(s) leave the data folder (absolute, '..' or a "
                            f"symbolic link out of it) and are skipped")
    df = pd.DataFrame(rows, columns=list(INDEX_COLUMNS))
    keys: Dict[str, Tuple[str, ...]] = {c: prompt_tags(c, keep_prefix=False) for c in df["caption"].unique()}
    df["features"] = [keys[c] for c in df["caption"]]
    return df, problems


def caption_counts(index: pd.DataFrame) -> pd.DataFrame:
    """``caption, count`` of an index, most common first."""
    if len(index) == 0:
        return pd.DataFrame(columns=["caption", "count"])
    counts = index["caption"].value_counts()
    return pd.DataFrame({"caption": counts.index.tolist(), "count": counts.to_numpy().astype(int)})


def real_matches(index: pd.DataFrame, prompt: str, n: int, seed: int = 0) -> Tuple[pd.DataFrame, str]:
    """Up to ``n`` real galaxies for a prompt, and how they match.

    Exact caption matches first (same features, weights ignored); if there are none, galaxies
    whose caption contains every prompted feature ("has these features"). Random order fixed by
    ``seed``.

    Returns
    -------
    rows : pandas.DataFrame
    match : str
        ``"same caption"``, ``"has these features"`` or ``"none"``.
    """
    if len(index) == 0:
        return index.iloc[:0], "none"
    want = prompt_tags(prompt, keep_prefix=False)
    exact = index[index["features"].map(lambda f: f == want)]
    match = "same caption"
    if len(exact) == 0:
        wanted = set(want)
        exact = index[index["features"].map(lambda f: wanted <= set(f))] if wanted else index.iloc[:0]
        match = "has these features"
    if len(exact) == 0:
        return exact, "none"
    rng = np.random.default_rng(seed)
    take = rng.permutation(len(exact))[: int(n)]
    return exact.iloc[np.sort(take)], match


def start_image_choices(index: pd.DataFrame, prompt: str, n: int = 200) -> Tuple[pd.DataFrame, str]:
    """Galaxies offered as img2img start images: :func:`real_matches` of the prompt, else the first ``n``
    of the index (match ``"any caption"``)."""
    rows, match = real_matches(index, prompt, n)
    if match == "none":
        return index.head(n), "any caption"
    return rows, match


def load_real_images(rows: pd.DataFrame, resolution: int) -> Tuple[np.ndarray, List[str]]:
    """Cutouts ``(N, resolution, resolution, 3)`` uint8 of index rows, and the ids kept.

    Unreadable images are skipped (the decoder refuses corrupt or oversized files).
    """
    images, ids = [], []
    for _, r in rows.iterrows():
        try:
            images.append(load_image(r["image_path"], resolution=int(resolution), crop_fraction=float(r["crop"])))
            ids.append(str(r["id"]))
        except ImageRejected:
            continue
    if not images:
        return np.zeros((0, resolution, resolution, 3), np.uint8), []
    return np.stack(images), ids


def load_real_image(rows: pd.DataFrame, galaxy_id: str, resolution: int) -> Optional[np.ndarray]:
    """Cutout of the galaxy with id ``galaxy_id`` among ``rows``, or None when absent or unreadable."""
    images, _ = load_real_images(rows[rows["id"].astype(str) == str(galaxy_id)], resolution)
    return images[0] if len(images) else None


def reference_images(index: pd.DataFrame, prompt: str, resolution: int, n: int = 64, seed: int = 0) -> np.ndarray:
    """Up to ``n`` cutouts of real galaxies matching ``prompt`` (the reference sample of the light-profile
    comparison); empty ``(0, resolution, resolution, 3)`` when none match."""
    rows, _ = real_matches(index, prompt, n, seed=seed)
    images, _ = load_real_images(rows, resolution)
    return images


#: Real source preferred by the Real vs synthetic page when the data folder has it (GZ2 votes and images).
PREFERRED_SOURCE = "gz2_cutouts"


def default_source(index: pd.DataFrame) -> Optional[str]:
    """:data:`PREFERRED_SOURCE` when the index has galaxies from it, else None (all sources)."""
    return PREFERRED_SOURCE if len(index) and (index["source"] == PREFERRED_SOURCE).any() else None


#: Crops that bring each shared source to the reference galaxy scale (median half-light radius 0.198 of
#: the frame, :data:`galaxysd_core.data.scale.REFERENCE_R50_FRACTION`), as measured by ``galaxysd data
#: prepare --crop-fraction auto`` (:func:`galaxysd_core.data.scale.match_crop_fraction`; README "Real
#: data"). Used for sources the model's training caches do not cover: the decoder's defaults (0.35 /
#: 0.5) would show ``gz2_cutouts`` galaxies twice as large as any model draws them.
SCALE_MATCHED_CROPS: Dict[str, float] = {"gz2_cutouts": 1.0, "gz1_sdss": 0.31, "gz2_examples": 0.39}


def with_training_crops(index: pd.DataFrame, crops: Dict[str, float]) -> Tuple[pd.DataFrame, Dict[str, str]]:
    """The index with each source's ``crop`` set to frame its galaxies as the model saw them.

    ``crops`` is :func:`galaxysd_core.studio.model_facts.training_crops` of the model (the crop of
    every source it was trained on); other sources get :data:`SCALE_MATCHED_CROPS` (the same galaxy
    scale) where listed, else keep the decoder's default. Cutting real galaxies out this way gives
    them the framing of the generated ones.

    Returns
    -------
    index : pandas.DataFrame
    how : dict
        ``{source: "training" or "scale-matched"}`` for the sources whose crop was set.
    """
    if not len(index):
        return index, {}
    present = set(index["source"])
    chosen: Dict[str, float] = {}
    how: Dict[str, str] = {}
    for table, label in ((crops, "training"), (SCALE_MATCHED_CROPS, "scale-matched")):
        for src, crop in table.items():
            if src in present and src not in chosen:
                chosen[src], how[src] = float(crop), label
    if not chosen:
        return index, {}
    out = index.copy()
    out["crop"] = [chosen.get(s, c) for s, c in zip(out["source"], out["crop"])]
    return out, how
