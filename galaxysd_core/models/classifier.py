"""Compact CNN morphology classifier with an embedding output.

The classifier answers, for every GZ2 answer it has a head for, "does this image show the
feature?" (multi-label, one sigmoid per head). It serves three purposes:

* prompt-image consistency of generated galaxies (:mod:`galaxysd_core.evaluation.metrics.consistency`,
  following the "feature consistency" of Ma, Sun et al. 2025, arXiv:2506.16233, Sec. 3.2);
* a domain feature space (the 256-d penultimate layer, :meth:`MorphologyClassifier.embed`) for
  precision/recall, density/coverage, Frechet distance and KID
  (:mod:`galaxysd_core.evaluation.metrics.distribution`), because no ImageNet Inception network can be
  downloaded here and an Inception space is a poor fit for 64x64 galaxy cutouts anyway
  (Kynkaanniemi et al. 2023, "The role of ImageNet classes in Frechet Inception Distance");
* the morphology check of the candidate search.

Heads
-----
A head is trained for a *captioned* GZ2 answer (a feature a prompt can name) when the training
images carry at least ``min_positives`` positive and ``min_negatives`` negative labels for it
(:func:`select_heads`). With the data shipped for development (Galaxy Zoo 1 classes mapped to
GZ2 answers, plus 86 GZ2 example images with one answer each) this gives: smooth, features or
disk-shaped, star or artifact, edge-on galaxy, spiral galaxy and merger. The GZ2 example answers
(bars, rings, dust lanes, bulge shapes, arm counts, ...) have 1-10 images each, too few to learn
or to measure (an AUC on two positives means nothing), so they get no head; a user training on
the full GZ2 release (Hart et al. 2016) gets heads for every answer with enough labels.

Targets are 1/0/NaN per answer (:func:`galaxysd_core.schema.captioning.answer_targets`); NaN (question
not answered) is masked out of the loss (:func:`masked_bce_with_logits`) and positive labels are
up-weighted by the class balance ``n_neg / n_pos`` of each head.

Architecture
------------
Five 3x3 convolution blocks (BatchNorm, ReLU) with 32-64-128-256-256 channels on a 64x64 input;
the first convolution has stride 2 and blocks 2-4 end in a 2x2 max-pool (64 -> 32 -> 16 -> 8 -> 4
pixels); global average pooling gives a 256-d embedding, then dropout and one linear layer with a
logit per head: about 0.98 M parameters (3.9 MB in float32) and about 67 M multiply-adds per
image, so it trains on two shared CPU cores in minutes. Images are
augmented with the 8 flips/90-degree rotations of the square (galaxy morphology does not depend
on orientation; Dieleman et al. 2015, MNRAS 450, 1441).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from galaxysd_core._utils import dihedral
from galaxysd_core.errors import GalaxySDDataError, GalaxySDFileError, GalaxySDValueError
from galaxysd_core.schema.gz2 import ANSWER_BY_COLUMN, ANSWER_BY_PHRASE, captioned_answers

#: Side of the square input the network sees (pixels); other sizes are resized bilinearly.
IMAGE_SIZE = 64
#: File names of a saved classifier folder.
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "README.md"
SPLIT_NAME = "split_test_ids.csv"
#: Default feature columns: the answers the development data can train (see module docstring).
DEFAULT_FEATURE_COLUMNS: Tuple[str, ...] = (
    "t01_smooth_or_features_a01_smooth",
    "t01_smooth_or_features_a02_features_or_disk",
    "t01_smooth_or_features_a03_star_or_artifact",
    "t02_edgeon_a04_yes",
    "t04_spiral_a08_spiral",
    "t08_odd_feature_a24_merger",
)

ImageLike = Union[torch.Tensor, np.ndarray]


# ----------------------------------------------------------------------------------------------
# configuration
# ----------------------------------------------------------------------------------------------
@dataclass
class ClassifierConfig:
    """Architecture of :class:`MorphologyClassifier` (saved as ``config.json``).

    Parameters
    ----------
    feature_columns : list of str
        GZ2 answer column stems, one head each, e.g. ``"t02_edgeon_a04_yes"``.
    image_size : int
        Input side in pixels (images of other sizes are resized bilinearly).
    channels : list of int
        Output channels of the convolution blocks.
    dropout : float
        Dropout probability before the linear heads.
    stem_stride : int
        Stride of the first convolution (2 replaces the first max-pool, as in ResNet stems: half
        the training cost at 64x64 for the same receptive fields).
    """

    feature_columns: List[str] = field(default_factory=lambda: list(DEFAULT_FEATURE_COLUMNS))
    image_size: int = IMAGE_SIZE
    channels: List[int] = field(default_factory=lambda: [32, 64, 128, 256, 256])
    dropout: float = 0.2
    stem_stride: int = 2

    def __post_init__(self) -> None:
        self.feature_columns = list(self.feature_columns)
        self.channels = [int(c) for c in self.channels]
        unknown = [c for c in self.feature_columns if c not in ANSWER_BY_COLUMN]
        if unknown:
            raise GalaxySDValueError(
                f"unknown GZ2 answer columns {unknown}; use stems such as 't02_edgeon_a04_yes'")
        if not self.feature_columns:
            raise GalaxySDValueError("a classifier needs at least one feature column")
        if len(set(self.feature_columns)) != len(self.feature_columns):
            raise GalaxySDValueError(f"duplicate feature columns in {self.feature_columns}")
        if self.image_size < 16 or len(self.channels) < 1:
            raise GalaxySDValueError("image_size must be >= 16 and channels non-empty")
        if self.stem_stride not in (1, 2):
            raise GalaxySDValueError(f"stem_stride must be 1 or 2, got {self.stem_stride}")
        if 2 ** (len(self.channels) - 1) > self.image_size:
            raise GalaxySDValueError(
                f"{len(self.channels)} blocks pool a {self.image_size}px image below 1 pixel; "
                f"use fewer channels entries or a larger image_size")
        if not 0.0 <= self.dropout < 1.0:
            raise GalaxySDValueError(f"dropout must be in [0, 1), got {self.dropout}")

    @property
    def feature_phrases(self) -> List[str]:
        return [ANSWER_BY_COLUMN[c].phrase for c in self.feature_columns]

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ClassifierConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in names}
        # configs written before ``stem_stride`` existed describe the stride-1 + max-pool stem; the
        # weights have the same shapes either way, so the default must not silently change the network
        kwargs.setdefault("stem_stride", 1)
        return cls(**kwargs)


# ----------------------------------------------------------------------------------------------
# image helpers
# ----------------------------------------------------------------------------------------------
def images_to_tensor(images: ImageLike) -> torch.Tensor:
    """Float tensor ``(N, 3, H, W)`` in [0, 1] from images as the project passes them around.

    Parameters
    ----------
    images : numpy.ndarray or torch.Tensor
        ``uint8`` arrays ``(N, H, W, 3)`` (the prepared cache and pipeline output, 0-255), or
        float tensors ``(N, 3, H, W)`` already in [0, 1]. A single image (3 dimensions) is
        accepted too.

    Raises
    ------
    GalaxySDValueError
        For a shape that is not an RGB image batch.
    """
    if isinstance(images, np.ndarray):
        arr = images
        if arr.ndim == 3:
            arr = arr[None]
        if arr.ndim != 4 or arr.shape[-1] != 3:
            raise GalaxySDValueError(
                f"expected a numpy image batch (N, H, W, 3), got shape {tuple(images.shape)}")
        x = torch.from_numpy(np.ascontiguousarray(arr)).permute(0, 3, 1, 2)
        return x.float().div_(255.0) if arr.dtype == np.uint8 else x.float()
    if not isinstance(images, torch.Tensor):
        raise GalaxySDValueError(f"images must be a numpy array or torch tensor, got {type(images).__name__}")
    x = images[None] if images.ndim == 3 else images
    if x.ndim != 4:
        raise GalaxySDValueError(f"expected an image batch (N, 3, H, W), got shape {tuple(images.shape)}")
    if x.shape[1] != 3 and x.shape[-1] == 3:
        x = x.permute(0, 3, 1, 2)
    if x.shape[1] != 3:
        raise GalaxySDValueError(f"expected 3 colour channels, got shape {tuple(images.shape)}")
    if x.dtype == torch.uint8:
        return x.float().div_(255.0)
    return x.float()


def dihedral_augment(x: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Apply one of the 8 flips / 90-degree rotations of the square to every image at random.

    Parameters
    ----------
    x : torch.Tensor
        ``(N, C, H, W)`` batch with H == W.
    generator : torch.Generator, optional
        Source of randomness (for reproducible training).
    """
    ops = torch.randint(0, 8, (x.shape[0],), generator=generator)
    out = torch.empty_like(x)
    for op in range(8):
        idx = (ops == op).nonzero(as_tuple=True)[0]
        if idx.numel() == 0:
            continue
        out[idx] = dihedral(x[idx], op)
    return out


# ----------------------------------------------------------------------------------------------
# model
# ----------------------------------------------------------------------------------------------
class MorphologyClassifier(nn.Module):
    """Multi-label GZ2 morphology CNN (see the module docstring).

    Parameters
    ----------
    config : ClassifierConfig, optional
        Architecture and heads; the defaults train on the shipped development data.

    Examples
    --------
    >>> clf = MorphologyClassifier()
    >>> clf.eval()(torch.rand(2, 3, 64, 64)).shape
    torch.Size([2, 6])
    """

    def __init__(self, config: Optional[ClassifierConfig] = None) -> None:
        super().__init__()
        self.config = config or ClassifierConfig()
        blocks: List[nn.Module] = []
        c_in = 3
        stride = self.config.stem_stride
        for i, c_out in enumerate(self.config.channels):
            first_strided = i == 0 and stride == 2
            layers: List[nn.Module] = [nn.Conv2d(c_in, c_out, 3, stride=2 if first_strided else 1, padding=1,
                                                 bias=False),
                                       nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
            if i < len(self.config.channels) - 1 and not first_strided:
                layers.append(nn.MaxPool2d(2))
            blocks.append(nn.Sequential(*layers))
            c_in = c_out
        self.features = nn.Sequential(*blocks)
        self.dropout = nn.Dropout(self.config.dropout)
        self.head = nn.Linear(c_in, len(self.config.feature_columns))
        # registered so torchmetrics' FID/KID know the embedding size without a dummy pass
        self.num_features = c_in

    # -- properties ------------------------------------------------------------------------
    @property
    def feature_columns(self) -> List[str]:
        """GZ2 answer columns of the heads, in logit order."""
        return list(self.config.feature_columns)

    @property
    def feature_phrases(self) -> List[str]:
        """Caption phrases of the heads, in logit order (e.g. ``"edge-on galaxy"``)."""
        return self.config.feature_phrases

    @property
    def embedding_dim(self) -> int:
        return self.num_features

    def head_index(self, phrase_or_column: str) -> Optional[int]:
        """Index of the head for a caption phrase or answer column, None if there is none."""
        if phrase_or_column in self.config.feature_columns:
            return self.config.feature_columns.index(phrase_or_column)
        ans = ANSWER_BY_PHRASE.get(phrase_or_column)
        if ans is not None and ans.column in self.config.feature_columns:
            return self.config.feature_columns.index(ans.column)
        return None

    # -- forward ---------------------------------------------------------------------------
    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise GalaxySDValueError(
                f"classifier input must be a float tensor (N, 3, H, W) in [0, 1], got shape {tuple(x.shape)}; "
                f"use galaxysd_core.models.classifier.images_to_tensor for uint8 (N, H, W, 3) arrays")
        if x.dtype == torch.uint8:
            x = x.float() / 255.0
        s = self.config.image_size
        if x.shape[-2:] != (s, s):
            x = F.interpolate(x.float(), size=(s, s), mode="bilinear", align_corners=False, antialias=True)
        # centre the [0, 1] range; BatchNorm does the rest
        return (x.float() - 0.5) * 2.0

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate-layer embedding (global average pool), shape ``(N, embedding_dim)``."""
        h = self.features(self._prepare(x))
        return h.mean(dim=(-2, -1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, n_heads)`` for images ``(N, 3, H, W)`` in [0, 1]."""
        return self.head(self.dropout(self.embed(x)))

    @torch.no_grad()
    def predict_proba(self, images: ImageLike, batch_size: int = 256) -> torch.Tensor:
        """Sigmoid probabilities ``(N, n_heads)`` in eval mode, batched, without gradients.

        ``images`` may be a float tensor in [0, 1] or a uint8 ``(N, H, W, 3)`` array.
        """
        return torch.sigmoid(self._batched(images, self.forward, batch_size))

    @torch.no_grad()
    def embed_images(self, images: ImageLike, batch_size: int = 256) -> torch.Tensor:
        """:meth:`embed` in eval mode, batched, without gradients (any :func:`images_to_tensor` input)."""
        return self._batched(images, self.embed, batch_size)

    def _batched(self, images: ImageLike, fn, batch_size: int) -> torch.Tensor:
        was_training = self.training
        self.eval()
        try:
            outs = []
            n = len(images)
            for i in range(0, n, max(1, int(batch_size))):
                outs.append(fn(images_to_tensor(images[i:i + batch_size])))
            if not outs:
                dim = self.num_features if fn == self.embed else len(self.feature_columns)
                return torch.zeros(0, dim)
            return torch.cat(outs)
        finally:
            self.train(was_training)

    # -- persistence -----------------------------------------------------------------------
    def save_pretrained(self, directory: Union[str, Path], *, card: Optional[str] = None,
                        extra_config: Optional[Mapping[str, Any]] = None) -> Path:
        """Write ``config.json``, ``model.safetensors`` and a ``README.md`` card to ``directory``.

        Parameters
        ----------
        directory : str or Path
            Folder, created if needed.
        card : str, optional
            Markdown of the model card; a minimal card is written when omitted.
        extra_config : mapping, optional
            Extra JSON-serialisable entries stored under ``config.json["training"]`` (settings,
            metrics, versions).
        """
        from safetensors.torch import save_file

        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        cfg = {"_class_name": type(self).__name__, "_galaxysd_version": _version(),
               **self.config.to_dict(),
               "feature_phrases": self.feature_phrases, "embedding_dim": self.embedding_dim}
        if extra_config:
            cfg["training"] = _jsonable(dict(extra_config))
        (out / CONFIG_NAME).write_text(json.dumps(cfg, indent=2) + "\n")
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        save_file(state, str(out / WEIGHTS_NAME), metadata={"format": "pt", "class": type(self).__name__})
        _chmod_umask(out / WEIGHTS_NAME)  # safetensors writes 0600; give it the permissions of the other files
        (out / CARD_NAME).write_text(card if card is not None else _minimal_card(self))
        return out

    @classmethod
    def from_pretrained(cls, directory: Union[str, Path], map_location: str = "cpu") -> "MorphologyClassifier":
        """Load a folder written by :meth:`save_pretrained` (safetensors only, never pickle).

        Raises
        ------
        GalaxySDFileError
            When the folder, ``config.json`` or ``model.safetensors`` is missing or corrupt, or the
            weights do not match the configuration.
        """
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        path = Path(directory)
        if not path.is_dir():
            raise GalaxySDFileError(
                f"classifier folder {str(path)!r} does not exist; train one with "
                f"`python train/train_classifier.py --cache DIR` or use the shipped assets/classifier")
        cfg_path, w_path = path / CONFIG_NAME, path / WEIGHTS_NAME
        for p in (cfg_path, w_path):
            if not p.is_file():
                raise GalaxySDFileError(
                    f"classifier folder {str(path)!r} has no {p.name}; it must hold {CONFIG_NAME} and "
                    f"{WEIGHTS_NAME} as written by MorphologyClassifier.save_pretrained")
        try:
            raw = json.loads(cfg_path.read_text())
            config = ClassifierConfig.from_dict(raw)
        except (json.JSONDecodeError, UnicodeDecodeError, TypeError, AttributeError) as exc:
            raise GalaxySDFileError(f"{str(cfg_path)!r} is not a valid classifier config.json ({exc})") from None
        except GalaxySDValueError as exc:
            raise GalaxySDFileError(f"{str(cfg_path)!r} describes an invalid classifier: {exc}") from None
        try:
            state = load_file(str(w_path), device=map_location)
        except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
            raise GalaxySDFileError(
                f"{str(w_path)!r} is not a readable safetensors file ({exc}); re-train or re-download "
                f"the classifier") from None
        model = cls(config)
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise GalaxySDFileError(
                f"weights in {str(w_path)!r} do not match {CONFIG_NAME} ({str(exc).splitlines()[0]}); "
                f"the two files come from different models") from None
        model.training_info = raw.get("training", {})
        return model.eval()


def _chmod_umask(path: Path) -> None:
    import os

    mask = os.umask(0)
    os.umask(mask)
    try:
        os.chmod(path, 0o666 & ~mask)
    except OSError:  # pragma: no cover - e.g. a read-only or foreign file system
        pass


def _version() -> str:
    try:
        from galaxysd_core import __version__
        return __version__
    except ImportError:  # pragma: no cover
        return "unknown"


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        return v if math.isfinite(v) else None
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, Path):
        return str(obj)
    return obj


def _minimal_card(model: MorphologyClassifier) -> str:
    heads = "\n".join(f"- `{c}` ({p})" for c, p in zip(model.feature_columns, model.feature_phrases))
    return (f"# GalaxySD morphology classifier\n\nCompact CNN (see `galaxysd_core/models/classifier.py`).\n\n"
            f"Heads:\n{heads}\n\nEmbedding dimension: {model.embedding_dim}.\n")


# ----------------------------------------------------------------------------------------------
# loss, heads, split
# ----------------------------------------------------------------------------------------------
def masked_bce_with_logits(logits: torch.Tensor, targets: torch.Tensor,
                           pos_weight: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Binary cross-entropy over the known targets only.

    Parameters
    ----------
    logits, targets : torch.Tensor
        ``(N, K)``; targets are 1, 0 or NaN (unknown: the GZ2 question was not answered).
    pos_weight : torch.Tensor, optional
        ``(K,)`` weight of positive examples per head (class balance ``n_neg / n_pos``).

    Returns
    -------
    torch.Tensor
        Mean loss over the known entries (0 with a gradient when all are unknown).
    """
    if logits.shape != targets.shape:
        raise GalaxySDValueError(f"logits {tuple(logits.shape)} and targets {tuple(targets.shape)} differ")
    mask = ~torch.isnan(targets)
    safe = torch.where(mask, targets, torch.zeros_like(targets))
    loss = F.binary_cross_entropy_with_logits(logits, safe, pos_weight=pos_weight, reduction="none")
    return (loss * mask).sum() / mask.sum().clamp_min(1)


def class_balance_pos_weight(targets: np.ndarray, max_weight: float = 50.0) -> np.ndarray:
    """``n_neg / n_pos`` per column of a 1/0/NaN target matrix, clipped to [1/max, max]."""
    t = np.asarray(targets, dtype=float)
    pos = np.nansum(t == 1, axis=0).astype(float)
    neg = np.nansum(t == 0, axis=0).astype(float)
    w = neg / np.maximum(pos, 1.0)
    return np.clip(w, 1.0 / max_weight, max_weight)


def label_counts(index, columns: Optional[Sequence[str]] = None):
    """Positive / negative / unknown label counts per GZ2 answer column of a cache index."""
    import pandas as pd

    cols = [c for c in (columns or [a.column for a in captioned_answers()]) if c in index.columns]
    rows = []
    for c in cols:
        v = index[c].to_numpy(dtype=float)
        rows.append({"column": c, "phrase": ANSWER_BY_COLUMN[c].phrase, "n_pos": int(np.sum(v == 1)),
                     "n_neg": int(np.sum(v == 0)), "n_unknown": int(np.sum(np.isnan(v)))})
    return pd.DataFrame(rows, columns=["column", "phrase", "n_pos", "n_neg", "n_unknown"])


def select_heads(index, min_positives: int = 30, min_negatives: int = 30) -> List[str]:
    """Captioned answer columns with enough positive and negative labels to train a head.

    A head for a feature seen in 2 images can neither be learned nor evaluated (see module
    docstring); 30 positives leave ~4 in a 15 % test split, the least for which a recall is
    more than anecdote.
    """
    counts = label_counts(index)
    ok = counts[(counts.n_pos >= min_positives) & (counts.n_neg >= min_negatives)]
    cols = list(ok.column)
    if not cols:
        raise GalaxySDDataError(
            f"no GZ2 answer has {min_positives} positive and {min_negatives} negative labels in the "
            f"training caches; add labelled images or lower --min-positives")
    return cols


def _id_hash(value: Any, salt: str) -> float:
    digest = hashlib.sha256(f"{salt}:{value}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0 ** 64


def fixed_test_split(ids: Sequence[Any], strata: Sequence[Any], test_fraction: float = 0.15,
                     salt: str = "galaxysd-classifier-split-v1") -> np.ndarray:
    """Deterministic, stratified held-out split by id hash.

    Within every stratum (e.g. the caption) ids are ordered by ``sha256(salt:id)`` and the first
    ``round(test_fraction * n)`` (at least one when the stratum has 3 or more members) go to the
    test set. The split depends only on the ids and their strata, not on order or random state,
    so other code can reproduce it, and rare classes (mergers, stars) are represented.

    Returns
    -------
    numpy.ndarray of bool
        True for test members.
    """
    if not 0.0 < test_fraction < 1.0:
        raise GalaxySDValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    ids = list(ids)
    strata = [str(s) for s in strata]
    if len(ids) != len(strata):
        raise GalaxySDValueError("ids and strata must have the same length")
    is_test = np.zeros(len(ids), dtype=bool)
    groups: Dict[str, List[int]] = {}
    for i, s in enumerate(strata):
        groups.setdefault(s, []).append(i)
    for members in groups.values():
        n = len(members)
        k = int(round(test_fraction * n))
        if k == 0 and n >= 3:
            k = 1
        ranked = sorted(members, key=lambda i: _id_hash(ids[i], salt))
        is_test[ranked[:k]] = True
    return is_test


# ----------------------------------------------------------------------------------------------
# training and evaluation
# ----------------------------------------------------------------------------------------------
@dataclass
class TrainSettings:
    """Optimisation settings of :func:`train_classifier` (stored in the card and config.json).

    Parameters
    ----------
    epochs : int
        Passes over the training images.
    batch_size : int
        Images per step.
    learning_rate : float
        Peak AdamW learning rate (:func:`one_cycle_lr`).
    weight_decay : float
        AdamW weight decay.
    max_minutes : float or None
        Wall-clock budget of the optimisation loop; the learning-rate schedule follows the larger
        of step and time progress, so a run cut by the budget still ends annealed.
    seed : int
        Seed of initialisation, shuffling and augmentation.
    threads : int or None
        ``torch.set_num_threads`` for the run (None leaves the default).
    """

    epochs: int = 6
    batch_size: int = 64
    learning_rate: float = 3e-3
    weight_decay: float = 1e-4
    max_minutes: Optional[float] = 9.0
    seed: int = 0
    threads: Optional[int] = None

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


def one_cycle_lr(progress: float, peak: float, warmup: float = 0.1, floor: float = 0.01) -> float:
    """One-cycle learning rate (Smith & Topin 2019) at ``progress`` in [0, 1] of the run.

    Linear warm-up from ``floor * peak`` over the first ``warmup`` share, then cosine decay to
    ``floor * peak``. ``progress`` is the larger of the step share and the time-budget share, so a
    run cut by its wall-clock budget still ends annealed (own implementation: torch's OneCycleLR
    needs the number of steps in advance, which a time budget on a shared CPU cannot know).
    """
    p = min(max(float(progress), 0.0), 1.0)
    if p < warmup:
        return peak * (floor + (1.0 - floor) * p / warmup)
    q = (p - warmup) / (1.0 - warmup)
    return peak * (floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * q)))


def train_classifier(images: np.ndarray, targets: np.ndarray, config: ClassifierConfig,
                     settings: Optional[TrainSettings] = None, progress: bool = True,
                     ) -> Tuple[MorphologyClassifier, Dict[str, Any]]:
    """Train a :class:`MorphologyClassifier` on uint8 images and 1/0/NaN targets.

    Parameters
    ----------
    images : numpy.ndarray
        ``uint8 (N, H, W, 3)``.
    targets : numpy.ndarray
        ``(N, K)`` float, columns in ``config.feature_columns`` order.
    config : ClassifierConfig
    settings : TrainSettings, optional
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    model : MorphologyClassifier
        In eval mode.
    history : dict
        ``loss`` per epoch, ``steps``, ``wall_time_s``, ``pos_weight``, ``stopped_early``.
    """
    from tqdm.auto import tqdm

    settings = settings or TrainSettings()
    images = np.asarray(images)
    targets = np.asarray(targets, dtype=np.float32)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise GalaxySDValueError(f"training images must be uint8 (N, H, W, 3), got {images.dtype} {images.shape}")
    if targets.shape != (len(images), len(config.feature_columns)):
        raise GalaxySDValueError(
            f"targets shape {targets.shape} does not match {len(images)} images x "
            f"{len(config.feature_columns)} heads")
    if settings.threads:
        torch.set_num_threads(int(settings.threads))
    torch.manual_seed(settings.seed)
    gen = torch.Generator().manual_seed(settings.seed)
    model = MorphologyClassifier(config)
    model.train()
    model.to(memory_format=torch.channels_last)  # ~30 % faster convolutions on CPU; weights unchanged
    pos_weight = torch.tensor(class_balance_pos_weight(targets), dtype=torch.float32)
    opt = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay)
    steps_per_epoch = math.ceil(len(images) / settings.batch_size)
    total_steps = max(1, steps_per_epoch * settings.epochs)
    x_all = torch.from_numpy(images)  # uint8, converted per batch to save memory
    y_all = torch.from_numpy(targets)
    history: Dict[str, Any] = {"loss": [], "steps": 0, "stopped_early": False,
                               "pos_weight": pos_weight.tolist()}
    start = time.perf_counter()
    budget = None if settings.max_minutes is None else 60.0 * settings.max_minutes
    bar = tqdm(total=steps_per_epoch * settings.epochs, desc="classifier", disable=not progress)
    for epoch in range(settings.epochs):
        order = torch.randperm(len(images), generator=gen)
        total, count = 0.0, 0
        for i in range(0, len(images), settings.batch_size):
            idx = order[i:i + settings.batch_size]
            elapsed = time.perf_counter() - start
            progress_frac = history["steps"] / total_steps
            if budget is not None:
                progress_frac = max(progress_frac, elapsed / budget)
            if progress_frac >= 1.0:
                history["stopped_early"] = history["steps"] < total_steps
                break
            for group in opt.param_groups:
                group["lr"] = one_cycle_lr(progress_frac, settings.learning_rate)
            x = images_to_tensor(x_all[idx].permute(0, 3, 1, 2))
            x = dihedral_augment(x, gen).contiguous(memory_format=torch.channels_last)
            loss = masked_bce_with_logits(model(x), y_all[idx], pos_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
            count += len(idx)
            history["steps"] += 1
            bar.update(1)
            bar.set_postfix(epoch=epoch + 1, loss=f"{total / count:.4f}")
        if count:
            history["loss"].append(total / count)
        if history["stopped_early"]:
            break
    bar.close()
    history["epochs_run"] = round(history["steps"] / steps_per_epoch, 2)
    history["wall_time_s"] = time.perf_counter() - start
    model.to(memory_format=torch.contiguous_format)
    return model.eval(), history


def evaluate_classifier(model: MorphologyClassifier, images: ImageLike, targets: np.ndarray,
                        threshold: float = 0.5, batch_size: int = 256):
    """Per-head precision, recall and ROC AUC (scikit-learn) on labelled images.

    Unknown (NaN) targets are skipped per head. AUC is NaN where a head has only one class.

    Returns
    -------
    pandas.DataFrame
        Columns ``column, phrase, n_pos, n_neg, precision, recall, auc, threshold``.
    """
    import pandas as pd
    from sklearn.metrics import precision_score, recall_score, roc_auc_score

    probs = model.predict_proba(images, batch_size=batch_size).numpy()
    t = np.asarray(targets, dtype=float)
    rows = []
    for k, (col, phrase) in enumerate(zip(model.feature_columns, model.feature_phrases)):
        known = ~np.isnan(t[:, k])
        y, p = t[known, k].astype(int), probs[known, k]
        pred = (p >= threshold).astype(int)
        n_pos, n_neg = int(y.sum()), int((1 - y).sum())
        rows.append({
            "column": col, "phrase": phrase, "n_pos": n_pos, "n_neg": n_neg,
            "precision": float(precision_score(y, pred, zero_division=np.nan)) if len(y) else np.nan,
            "recall": float(recall_score(y, pred, zero_division=np.nan)) if len(y) else np.nan,
            "auc": float(roc_auc_score(y, p)) if n_pos and n_neg else np.nan,
            "threshold": threshold,
        })
    return pd.DataFrame(rows)


def load_test_ids(directory: Union[str, Path]) -> List[str]:
    """Ids of the fixed held-out split saved next to a classifier (``split_test_ids.csv``)."""
    import pandas as pd

    path = Path(directory) / SPLIT_NAME
    if not path.is_file():
        raise GalaxySDFileError(f"{str(path)!r} not found; it is written by train/train_classifier.py")
    return [str(v) for v in pd.read_csv(path, dtype={"id": str})["id"]]


# ----------------------------------------------------------------------------------------------
# from prepared caches to a saved, documented classifier
# ----------------------------------------------------------------------------------------------
#: Sources whose labels are ONE mutually exclusive class per galaxy (Galaxy Zoo 1, Lintott et al.
#: 2008: elliptical / spiral / edge-on / merger / star-or-don't-know by majority vote).
DEFAULT_EXCLUSIVE_SOURCES: Tuple[str, ...] = ("gz1_sdss",)


def complete_exclusive_negatives(index, sources: Iterable[str] = DEFAULT_EXCLUSIVE_SOURCES):
    """Fill unknown targets implied to be 0 by single-class (Galaxy Zoo 1) labels.

    GZ1 volunteers chose ONE class per galaxy, so an elliptical is (by majority) not a merger, not
    edge-on and not a spiral, although the GZ2 tree never asked those questions of it (NaN
    targets). Without this completion the spiral and merger heads would see no negatives at
    all. For rows of ``sources`` every unknown target among the GZ2 answers that GZ1 classes map
    to (:data:`galaxysd_core.schema.captioning.GZ1_CLASS_ANSWERS`) becomes 0; this reproduces the
    derived 0/1 flags shipped with the GZ1 labels (``gz2_t01_smooth`` ... ``gz2_t08_merger``).

    Returns
    -------
    pandas.DataFrame
        A copy of ``index``.
    """
    from galaxysd_core.schema.captioning import GZ1_CLASS_ANSWERS

    out = index.copy()
    cols = sorted({c for cs in GZ1_CLASS_ANSWERS.values() for c in cs if c in out.columns})
    rows = out["source"].astype(str).isin(set(sources)).to_numpy() if "source" in out.columns else None
    if rows is None or not rows.any():
        return out
    block = out.loc[rows, cols]
    out.loc[rows, cols] = block.fillna(0.0)
    return out


def _card(model: MorphologyClassifier, report: Mapping[str, Any]) -> str:
    m = report["metrics"]
    lines = [
        "# GalaxySD morphology classifier",
        "",
        f"Compact CNN (`galaxysd_core/models/classifier.py`, {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M "
        f"parameters, {model.config.image_size}x{model.config.image_size} input, {model.embedding_dim}-d embedding) "
        "that says which Galaxy Zoo 2 features an image shows. Used for prompt consistency and as the "
        "feature space of the domain distribution metrics (`galaxysd_core/metrics`). It is NOT an "
        "Inception network: `domain_fd` / `domain_kid` are not comparable with published FID/KID.",
        "",
        "## Heads",
        "",
        "| head | GZ2 answer column | train pos | train neg |",
        "|---|---|---:|---:|",
    ]
    for row in report["train_label_counts"]:
        lines.append(f"| {row['phrase']} | `{row['column']}` | {row['n_pos']} | {row['n_neg']} |")
    lines += [
        "",
        "Heads exist for captioned answers with at least "
        f"{report['settings']['min_positives']} positive and {report['settings']['min_negatives']} negative "
        "training labels. The 86 GZ2 example images label bars, rings, dust lanes, bulges and arm counts "
        "with 1-10 images each: too few to train or to evaluate a head, so those features are not "
        "checked by the consistency metric (train on the full GZ2 release to get them).",
        "",
        "## Held-out real images",
        "",
        f"Fixed split: {report['n_test']} test / {report['n_train']} train images, "
        f"{100 * report['settings']['test_fraction']:.0f} % of every caption group chosen by SHA-256 of "
        f"the id (`{SPLIT_NAME}`, reuse it for any evaluation on real images). Threshold 0.5.",
        "",
        "The class-balanced loss makes the probabilities those of a balanced prior (a feature and its "
        "absence equally common): 'more likely present than absent if both were equally frequent'. "
        "That is the question prompt consistency asks (the feature was requested), and it gives high "
        "recall for rare features; precision on this natural-prior test set is therefore low for rare "
        "classes (merger, star or artifact), where most images are negatives. ROC AUC does not depend "
        "on the threshold.",
        "",
        "| feature | test pos | test neg | precision | recall | ROC AUC |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in m:
        lines.append(f"| {row['phrase']} | {row['n_pos']} | {row['n_neg']} | {row['precision']:.3f} | "
                     f"{row['recall']:.3f} | {row['auc']:.3f} |")
    cons = report.get("consistency_on_real_test")
    if cons is not None:
        lines += ["", f"Consistency of held-out real images with their own captions: **{cons:.3f}** "
                      f"(GalaxySD paper, real images: 0.895; their classifier and label set differ)."]
    s = report["settings"]
    h = report["history"]
    lines += [
        "",
        "## Training",
        "",
        f"- data: {', '.join(report['caches'])} ({report['n_total']} images; sources: "
        f"{', '.join(f'{k} {v}' for k, v in report['sources'].items())})",
        f"- single-class sources completed with implied negatives: {', '.join(s['exclusive_sources']) or 'none'}",
        f"- loss: masked BCE (NaN targets ignored), class-balanced pos_weight {['%.3g' % w for w in h['pos_weight']]}",
        f"- augmentation: random flips and 90-degree rotations (8 symmetries of the square)",
        f"- optimiser: AdamW, peak lr {s['learning_rate']} (one-cycle, time-budget aware), weight decay {s['weight_decay']}, "
        f"batch {s['batch_size']}, epochs {h['epochs_run']}/{s['epochs']}"
        f"{' (stopped by the time budget)' if h['stopped_early'] else ''}, seed {s['seed']}",
        f"- wall time: {h['wall_time_s']:.0f} s on CPU ({report['torch_threads']} torch threads, shared machine)",
        f"- final training loss: {h['loss'][-1]:.4f}",
        f"- versions: {', '.join(f'{k} {v}' for k, v in report['versions'].items())}",
        "",
        "## Limitations",
        "",
        "- Galaxy Zoo 1 classes are majority votes on SDSS gri cutouts; the 'star or artifact' class "
        "is GZ1 'don't know / star' and small (test positives are few: its numbers are uncertain).",
        "- Trained on real images only; on generated images with artefacts the probabilities are an "
        "estimate, not ground truth.",
        "",
        "Data: SDSS (acknowledge SDSS) and Galaxy Zoo 1/2 (Lintott et al. 2008, 2011; Willett et al. 2013).",
        "",
        "## Reproduce",
        "",
        "```",
        f"python train/train_classifier.py --cache {' '.join(report['caches'])} --epochs {s['epochs']} "
        f"--batch-size {s['batch_size']} --lr {s['learning_rate']} --max-minutes {s['max_minutes']} --seed {s['seed']}",
        "```",
        "",
        "With a wall-clock budget the number of steps depends on the machine's load.",
        "",
    ]
    return "\n".join(lines)


def rewrite_card(directory: Union[str, Path]) -> Path:
    """Regenerate ``README.md`` of a trained classifier from its ``config.json`` (no retraining)."""
    folder = Path(directory)
    model = MorphologyClassifier.from_pretrained(folder)
    if not model.training_info:
        raise GalaxySDFileError(f"{str(folder / CONFIG_NAME)!r} has no training report to write a card from")
    (folder / CARD_NAME).write_text(_card(model, model.training_info))
    return folder / CARD_NAME


def fit_from_caches(cache_dirs: Sequence[Union[str, Path]], out_dir: Union[str, Path], *,
                    settings: Optional[TrainSettings] = None, test_fraction: float = 0.15,
                    min_positives: int = 30, min_negatives: int = 30,
                    exclusive_sources: Sequence[str] = DEFAULT_EXCLUSIVE_SOURCES,
                    feature_columns: Optional[Sequence[str]] = None, progress: bool = True) -> Dict[str, Any]:
    """Train on prepared caches with the fixed held-out split, evaluate, and save everything.

    Writes ``config.json``, ``model.safetensors``, ``README.md`` (card with held-out precision,
    recall and ROC AUC per head, settings, wall time), ``split_test_ids.csv`` and ``metrics.csv``
    to ``out_dir``.

    Parameters
    ----------
    cache_dirs : sequence of path
        Folders of :class:`galaxysd_core.data.cache.PreparedDataset` caches.
    out_dir : path
        Output folder (e.g. ``assets/classifier``).
    settings : TrainSettings, optional
    test_fraction : float
        Share of each caption group held out (by id hash, see :func:`fixed_test_split`).
    min_positives, min_negatives : int
        Label counts a head needs (:func:`select_heads`), on the training part.
    exclusive_sources : sequence of str
        Sources with single-class labels (:func:`complete_exclusive_negatives`).
    feature_columns : sequence of str, optional
        Heads to train; chosen by :func:`select_heads` when omitted.

    Returns
    -------
    dict
        The report also stored in ``config.json["training"]``.
    """
    import platform

    import pandas as pd

    from galaxysd_core.data.cache import PreparedDataset
    from galaxysd_core.evaluation.metrics.consistency import consistency_on_real

    settings = settings or TrainSettings()
    if not cache_dirs:
        raise GalaxySDValueError("give at least one prepared cache (--cache DIR)")
    datasets = [PreparedDataset.load(d) for d in cache_dirs]
    ds = PreparedDataset.concat(datasets) if len(datasets) > 1 else datasets[0]
    index = complete_exclusive_negatives(ds.index, exclusive_sources)
    if index["id"].duplicated().any():
        dup = index.loc[index["id"].duplicated(), "id"].iloc[0]
        raise GalaxySDDataError(f"id {dup!r} occurs in more than one cache row; give each cache once")
    is_test = fixed_test_split(index["id"].tolist(), index["caption"].tolist(), test_fraction)
    train_idx, test_idx = np.flatnonzero(~is_test), np.flatnonzero(is_test)
    cols = list(feature_columns) if feature_columns else select_heads(index.iloc[train_idx], min_positives,
                                                                      min_negatives)
    config = ClassifierConfig(feature_columns=cols)
    targets = index[cols].to_numpy(dtype=np.float32)
    model, history = train_classifier(ds.images[train_idx], targets[train_idx], config, settings, progress)
    metrics = evaluate_classifier(model, ds.images[test_idx], targets[test_idx])
    cons = consistency_on_real(model, ds.images[test_idx], index["caption"].iloc[test_idx].tolist())

    versions = {"galaxysd_core": _version(), "torch": torch.__version__, "numpy": np.__version__,
                "python": platform.python_version()}
    try:
        import sklearn
        versions["scikit-learn"] = sklearn.__version__
    except ImportError:  # pragma: no cover
        pass
    report: Dict[str, Any] = {
        "caches": [str(d) for d in cache_dirs],
        "n_total": int(len(index)), "n_train": int(len(train_idx)), "n_test": int(len(test_idx)),
        "sources": {str(k): int(v) for k, v in index["source"].value_counts().items()},
        "settings": {**settings.to_dict(), "test_fraction": test_fraction, "min_positives": min_positives,
                     "min_negatives": min_negatives, "exclusive_sources": list(exclusive_sources)},
        "history": history,
        "train_label_counts": label_counts(index.iloc[train_idx], cols).to_dict("records"),
        "metrics": metrics.to_dict("records"),
        "consistency_on_real_test": cons.overall,
        "consistency_per_feature_test": cons.per_feature,
        "torch_threads": torch.get_num_threads(),
        "versions": versions,
    }
    out = Path(out_dir)
    model.save_pretrained(out, card=_card(model, report), extra_config=report)
    pd.DataFrame({"id": index["id"].iloc[test_idx].astype(str).to_numpy(),
                  "source": index["source"].iloc[test_idx].to_numpy(),
                  "caption": index["caption"].iloc[test_idx].to_numpy()}).to_csv(out / SPLIT_NAME, index=False)
    metrics.to_csv(out / "metrics.csv", index=False)
    return report
