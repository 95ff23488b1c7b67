"""What the loaded model has seen and what it was measured to draw, read from its folder (no loading).

Everything comes from the model folder itself, so a retrained or replaced model (another image
size, other training captions) is described correctly without code changes:

* ``training_captions.json`` (written by training): ``feature_counts`` (training captions naming
  each caption feature), ``n_images``, ``step``;
* ``unet/config.json`` and ``vae/config.json``: the image size (``sample_size`` times the VAE's
  downsampling, as :attr:`GalaxySDPipeline.default_size`);
* ``README.md`` (the model card): its title and first paragraph;
* ``metrics/evaluation.csv`` (or ``pareto.csv``; written by ``galaxysd evaluate``): the measured
  prompt consistency per prompt and guidance;
* ``train_config.yaml``: the prepared caches it was trained on, whose ``prepare_config.json``
  gives the crop (framing) of each real source (:func:`training_crops`).

A feature seen in fewer than :data:`RARE_THRESHOLD` training captions is marked "rarely seen:
expect extrapolation" in the app.
"""
from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

import pandas as pd

from galaxysd_core import config
from galaxysd_core.pipelines.model_folder import TRAINING_CAPTIONS_FILE
from galaxysd_core.schema.gz2 import caption_phrases

logger = logging.getLogger(__name__)

#: Below this many training captions a feature is "rarely seen" (the app marks it).
RARE_THRESHOLD = 30
#: Mark of a rarely seen feature, and of a feature never seen.
RARE_LABEL = "rarely seen: expect extrapolation"
NEVER_LABEL = "never seen: pure extrapolation"
#: Metric tables with per-prompt consistency (first found wins).
EVALUATION_FILES = ("evaluation.csv", "pareto.csv")


def _read_json(path: Path) -> Dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        logger.warning("%s: not readable (%s)", path, exc)
        return {}
    return data if isinstance(data, dict) else {}


def training_captions(model_dir: os.PathLike) -> Dict[str, Any]:
    """Content of the folder's ``training_captions.json`` (``{}`` when absent or unreadable)."""
    path = Path(model_dir) / TRAINING_CAPTIONS_FILE
    return _read_json(path) if path.is_file() else {}


def feature_counts(model_dir: os.PathLike) -> Optional[Dict[str, int]]:
    """``{caption feature: training captions naming it}`` (every caption feature, 0 when unnamed),
    or None when the folder does not record its training captions."""
    raw = training_captions(model_dir).get("feature_counts")
    if not isinstance(raw, Mapping):
        return None
    counts: Dict[str, int] = {}
    for k, v in raw.items():
        try:
            counts[str(k)] = int(v)
        except (TypeError, ValueError):
            continue
    return {p: counts.get(p, 0) for p in caption_phrases()}


def seen_label(phrase: str, counts: Optional[Mapping[str, int]], threshold: int = RARE_THRESHOLD) -> str:
    """Short label of how often the model saw ``phrase`` in training: ``"1,980 captions"``,
    ``"5 captions · rarely seen: expect extrapolation"``, ``"never seen: pure extrapolation"``, or
    ``""`` when the counts are unknown."""
    if counts is None:
        return ""
    n = int(counts.get(phrase, 0))
    if n == 0:
        return NEVER_LABEL
    text = f"{n:,} caption{'s' if n != 1 else ''}"
    return f"{text} · {RARE_LABEL}" if n < threshold else text


def option_label(phrase: str, counts: Optional[Mapping[str, int]], threshold: int = RARE_THRESHOLD) -> str:
    """Compact option label of a feature with its training-caption count: ``"smooth · 4,649"``,
    ``"dust lane · 2 ⚠ rarely seen: expect extrapolation"``, ``"ring galaxy · 0 ⚠ never seen"``
    (just the phrase when the counts are unknown)."""
    if counts is None:
        return phrase
    n = int(counts.get(phrase, 0))
    mark = " ⚠ never seen" if n == 0 else f" ⚠ {RARE_LABEL}" if n < threshold else ""
    return f"{phrase} · {n:,}{mark}"


def is_rare(phrase: str, counts: Optional[Mapping[str, int]], threshold: int = RARE_THRESHOLD) -> bool:
    """True when ``counts`` are known and ``phrase`` was seen in fewer than ``threshold`` captions."""
    return counts is not None and int(counts.get(phrase, 0)) < threshold


def image_size(model_dir: os.PathLike) -> Optional[int]:
    """Image side (pixels) the folder's model generates, from the UNet and VAE configs (None if unknown)."""
    unet = _read_json(Path(model_dir) / "unet" / "config.json")
    vae = _read_json(Path(model_dir) / "vae" / "config.json")
    try:
        return int(unet["sample_size"]) * 2 ** (len(vae["block_out_channels"]) - 1)
    except (KeyError, TypeError, ValueError):
        return None


def card_summary(model_dir: os.PathLike) -> Dict[str, str]:
    """``{"title", "summary", "text"}`` of the folder's model card ``README.md`` (empty strings without one).

    ``summary`` is the first paragraph after the title."""
    path = Path(model_dir) / "README.md"
    try:
        text = path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""
    except OSError:
        text = ""
    title, paragraphs = "", []
    for block in text.split("\n\n"):
        b = block.strip()
        if not b:
            continue
        if b.startswith("# ") and not title:
            title = b[2:].strip().splitlines()[0]
            continue
        if b.startswith("#"):
            if title and paragraphs:
                break
            continue
        paragraphs.append(b)
        break
    return {"title": title, "summary": paragraphs[0] if paragraphs else "", "text": text}


def measured_prompts(model_dir: os.PathLike, guidance: Optional[float] = None) -> Optional[pd.DataFrame]:
    """Measured prompt consistency per prompt at one guidance, from the folder's evaluation table.

    Parameters
    ----------
    model_dir : path-like
    guidance : float, optional
        Rows at the guidance closest to this one are used (default: the largest measured).

    Returns
    -------
    pandas.DataFrame or None
        ``prompt, guidance, n, consistency, negative_prompt`` (one row per prompt, consistency =
        share of images in which the classifier sees every prompted feature it has a head for),
        or None without an evaluation table with ``prompt`` and ``consistency``.
    """
    mdir = Path(model_dir) / "metrics"
    for name in EVALUATION_FILES:
        path = mdir / name
        if not path.is_file():
            continue
        try:
            df = pd.read_csv(path)
        except (OSError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError):
            continue
        if not {"prompt", "consistency"} <= set(df.columns):
            continue
        if "sweep_variable" in df.columns and (df["sweep_variable"] == "guidance").any():
            df = df[df["sweep_variable"] == "guidance"]
        if "guidance" in df.columns and df["guidance"].notna().any():
            values = sorted(df["guidance"].dropna().unique())
            pick = values[-1] if guidance is None else min(values, key=lambda g: abs(g - float(guidance)))
            df = df[df["guidance"] == pick]
        cols = [c for c in ("prompt", "guidance", "n", "consistency", "negative_prompt") if c in df.columns]
        out = df[cols].drop_duplicates("prompt").reset_index(drop=True)
        if "negative_prompt" in out.columns:
            out["negative_prompt"] = out["negative_prompt"].fillna("")
        return out
    return None


@dataclass
class ModelFacts:
    """What the About page says about the loaded model (every field read from its folder).

    Attributes
    ----------
    name : str
        Folder name.
    image_size : int or None
        Generated image side, pixels.
    n_images, step : int or None
        Training images and optimisation steps recorded in ``training_captions.json``.
    counts : dict or None
        :func:`feature_counts`.
    card : dict
        :func:`card_summary`.
    measured : pandas.DataFrame or None
        :func:`measured_prompts`.
    threshold : int
        The "rarely seen" threshold.
    """

    name: str
    image_size: Optional[int]
    n_images: Optional[int]
    step: Optional[int]
    counts: Optional[Dict[str, int]]
    card: Dict[str, str] = field(default_factory=dict)
    measured: Optional[pd.DataFrame] = None
    threshold: int = RARE_THRESHOLD

    def well_seen(self) -> List[str]:
        """Features seen in at least :attr:`threshold` captions, most seen first."""
        if self.counts is None:
            return []
        return sorted((p for p, n in self.counts.items() if n >= self.threshold), key=lambda p: -self.counts[p])

    def rare(self) -> List[str]:
        """Features seen at least once but in fewer than :attr:`threshold` captions, most seen first."""
        if self.counts is None:
            return []
        return sorted((p for p, n in self.counts.items() if 0 < n < self.threshold), key=lambda p: -self.counts[p])

    def never(self) -> List[str]:
        """Features never seen in training (tree order)."""
        return [] if self.counts is None else [p for p, n in self.counts.items() if n == 0]


def model_facts(model_dir: os.PathLike, guidance: Optional[float] = None) -> ModelFacts:
    """:class:`ModelFacts` of a model folder (missing files leave fields None)."""
    folder = Path(model_dir)
    tc = training_captions(folder)

    def as_int(v: Any) -> Optional[int]:
        try:
            return int(v) if v is not None and math.isfinite(float(v)) else None
        except (TypeError, ValueError):
            return None

    return ModelFacts(name=folder.name, image_size=image_size(folder), n_images=as_int(tc.get("n_images")),
                      step=as_int(tc.get("step")), counts=feature_counts(folder), card=card_summary(folder),
                      measured=measured_prompts(folder, guidance))


def training_crops(model_dir: os.PathLike, root: Optional[os.PathLike] = None) -> Dict[str, float]:
    """``{real source name: crop fraction}`` of the caches the model was trained on.

    Read from the folder's ``train_config.yaml`` (``caches``, relative to ``root``, default the
    project root) and each cache's ``prepare_config.json`` (``crop_fraction``) and ``index.csv``
    (``source`` column). Real galaxies shown next to generated ones are cut out with these crops,
    so both have the framing the model learned. Empty when the caches are not on this machine.
    """
    import yaml  # a dependency of diffusers/accelerate; only needed here

    path = Path(model_dir) / "train_config.yaml"
    try:
        cfg = yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, yaml.YAMLError):
        return {}
    base = Path(root) if root is not None else config.PROJECT_ROOT
    out: Dict[str, float] = {}
    for entry in (cfg or {}).get("caches") or []:
        cache = Path(str(entry))
        cache = cache if cache.is_absolute() else base / cache
        prep = _read_json(cache / "prepare_config.json") if (cache / "prepare_config.json").is_file() else {}
        crop = prep.get("crop_fraction")
        if not isinstance(crop, (int, float)) or not 0 < crop <= 1:
            continue
        try:
            sources = pd.read_csv(cache / "index.csv", usecols=["source"], nrows=2000)["source"].dropna().unique()
        except (OSError, ValueError, KeyError, pd.errors.ParserError, pd.errors.EmptyDataError):
            continue
        for s in sources:
            out.setdefault(str(s), float(crop))
    return out
