"""Compact CNN morphology classifier with an embedding output, and its saved-folder format.

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

This module owns the network (:class:`ClassifierConfig`, :class:`MorphologyClassifier`), the image
layout it accepts (:func:`images_to_tensor`) and the folder it is saved as (``config.json`` +
``model.safetensors`` + ``README.md``). Training lives in :mod:`galaxysd_core.training.classifier`
(loss, augmentation, optimisation) and :mod:`galaxysd_core.training.classifier_data` (labels,
heads, the fixed held-out split); training on prepared caches with the held-out evaluation and
the card in :mod:`galaxysd_core.evaluation.classifier_release`.

Heads and outputs
-----------------
A head is trained for a *captioned* GZ2 answer (a feature a prompt can name) when the training
images carry at least 30 majority-gated positives (and negatives) for it
(:func:`galaxysd_core.training.classifier_data.select_heads`). The shipped classifier (v2) learns
from the Galaxy Zoo 2 votes of ``gz2_cutouts`` plus the single labels of ``gz1_sdss`` and
``gz2_examples``; its heads are :data:`DEFAULT_FEATURE_COLUMNS` (the card in
``assets/classifier/README.md`` lists them with their held-out figures).

``ClassifierConfig.output`` says what the last layer predicts:

* ``"sigmoid"`` (v1, and the one-head detectors of the science code): one logit per head, trained
  with binary cross-entropy on 1/0 labels;
* ``"dirichlet"`` (v2) or ``"softmax"``: one output per answer of every modelled question
  (:attr:`ClassifierConfig.vote_columns`), trained on the vote counts / fractions themselves
  (:mod:`galaxysd_core.training.vote_losses`); :meth:`MorphologyClassifier.forward` still returns
  one logit per head, the logit of the probability of the majority-gated label computed from the
  predicted vote distributions (:func:`galaxysd_core.models.vote_heads.head_probabilities`), so
  consistency, the app and the science code use every kind the same way.

Architecture
------------
Five 3x3 convolution blocks (BatchNorm, ReLU) with 32-64-128-256-256 channels; the stem
(``stem_stride``) reduces the input by 2 (a strided convolution) or 4 (strided convolution and
max-pool, for 128-px input at the cost of 64-px input), blocks 2-4 end in a 2x2 max-pool; global
average pooling gives a 256-d embedding, then dropout and one linear layer: about 0.98 M
parameters (3.9 MB in float32) and about 67 M multiply-adds per image, so it trains on two shared
CPU cores in minutes.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from galaxysd_core import __version__
from galaxysd_core._utils import jsonable
from galaxysd_core.errors import GalaxySDFileError, GalaxySDValueError
from galaxysd_core.models.vote_heads import (OUTPUT_KINDS, VOTE_OUTPUTS, VoteLayout, concentrations,
                                             expected_fractions, head_logits, output_columns)
from galaxysd_core.schema.gz2 import ANSWER_BY_COLUMN, ANSWER_BY_PHRASE

#: Side of the square input the network sees (pixels); other sizes are resized bilinearly.
IMAGE_SIZE = 64
#: File names of a saved classifier folder.
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "README.md"
#: Default feature columns: the heads of the shipped classifier v2, the captioned answers with at
#: least 30 majority-gated positives in gz2_cutouts + gz1_sdss + gz2_examples (see module docstring).
DEFAULT_FEATURE_COLUMNS: Tuple[str, ...] = (
    "t01_smooth_or_features_a01_smooth",
    "t01_smooth_or_features_a02_features_or_disk",
    "t01_smooth_or_features_a03_star_or_artifact",
    "t07_rounded_a16_completely_round",
    "t07_rounded_a17_in_between",
    "t07_rounded_a18_cigar_shaped",
    "t02_edgeon_a04_yes",
    "t09_bulge_shape_a25_rounded",
    "t09_bulge_shape_a27_no_bulge",
    "t03_bar_a06_bar",
    "t04_spiral_a08_spiral",
    "t05_bulge_prominence_a10_no_bulge",
    "t05_bulge_prominence_a11_just_noticeable",
    "t05_bulge_prominence_a12_obvious",
    "t08_odd_feature_a19_ring",
    "t08_odd_feature_a22_irregular",
    "t08_odd_feature_a23_other",
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
        Input reduction of the first block: 1 (convolution + max-pool), 2 (strided convolution:
        replaces the first max-pool, as in ResNet stems: half the training cost at 64x64 for the
        same receptive fields) or 4 (strided convolution + max-pool: a 128-px input at the cost
        of a 64-px one).
    output : {"sigmoid", "dirichlet", "softmax"}
        What the last layer predicts (see "Heads and outputs" in the module docstring).
    vote_columns : list of str
        Vote outputs (every answer of the modelled questions); derived from ``feature_columns``
        for the vote kinds, empty for ``"sigmoid"``. Stored so a saved config shows them.
    """

    feature_columns: List[str] = field(default_factory=lambda: list(DEFAULT_FEATURE_COLUMNS))
    image_size: int = IMAGE_SIZE
    channels: List[int] = field(default_factory=lambda: [32, 64, 128, 256, 256])
    dropout: float = 0.2
    stem_stride: int = 2
    output: str = "sigmoid"
    vote_columns: List[str] = field(default_factory=list)

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
        if self.stem_stride not in (1, 2, 4):
            raise GalaxySDValueError(f"stem_stride must be 1, 2 or 4, got {self.stem_stride}")
        if self.output not in OUTPUT_KINDS:
            raise GalaxySDValueError(f"output must be one of {OUTPUT_KINDS}, got {self.output!r}")
        derived = output_columns(self.feature_columns) if self.output in VOTE_OUTPUTS else []
        if self.vote_columns and list(self.vote_columns) != derived:
            raise GalaxySDValueError(
                f"vote_columns {list(self.vote_columns)} do not match the heads (expected {derived}); "
                f"leave vote_columns empty, they are derived from feature_columns")
        self.vote_columns = derived
        if 2 ** (len(self.channels) - 1) * (2 if self.stem_stride == 4 else 1) > self.image_size:
            raise GalaxySDValueError(
                f"{len(self.channels)} blocks pool a {self.image_size}px image below 1 pixel; "
                f"use fewer channels entries or a larger image_size")
        if not 0.0 <= self.dropout < 1.0:
            raise GalaxySDValueError(f"dropout must be in [0, 1), got {self.dropout}")

    @property
    def feature_phrases(self) -> List[str]:
        return [ANSWER_BY_COLUMN[c].phrase for c in self.feature_columns]

    @property
    def n_outputs(self) -> int:
        """Width of the last layer: one per head (sigmoid) or per vote column."""
        return len(self.vote_columns) if self.output in VOTE_OUTPUTS else len(self.feature_columns)

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ClassifierConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in names}
        # configs written before ``stem_stride`` existed describe the stride-1 + max-pool stem; the
        # weights have the same shapes either way, so the default must not silently change the network
        kwargs.setdefault("stem_stride", 1)
        kwargs.setdefault("output", "sigmoid")  # v1 folders predate vote outputs
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
    >>> clf.eval()(torch.rand(2, 3, 64, 64)).shape[0]
    2
    """

    def __init__(self, config: Optional[ClassifierConfig] = None) -> None:
        super().__init__()
        self.config = config or ClassifierConfig()
        blocks: List[nn.Module] = []
        c_in = 3
        stride = self.config.stem_stride
        for i, c_out in enumerate(self.config.channels):
            first_strided = i == 0 and stride >= 2
            layers: List[nn.Module] = [nn.Conv2d(c_in, c_out, 3, stride=2 if first_strided else 1, padding=1,
                                                 bias=False),
                                       nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
            if i < len(self.config.channels) - 1 and (not first_strided or stride == 4):
                layers.append(nn.MaxPool2d(2))
            blocks.append(nn.Sequential(*layers))
            c_in = c_out
        self.features = nn.Sequential(*blocks)
        self.dropout = nn.Dropout(self.config.dropout)
        self.head = nn.Linear(c_in, self.config.n_outputs)
        self.layout = VoteLayout.for_heads(self.config.feature_columns) if self.is_vote_model else None
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

    @property
    def device(self) -> torch.device:
        """Device of the weights: ``predict_*`` / ``embed_images`` move their input there, results to the CPU."""
        return next(self.parameters()).device

    @property
    def is_vote_model(self) -> bool:
        """Whether the network predicts vote distributions (``output`` dirichlet or softmax)."""
        return self.config.output in VOTE_OUTPUTS

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

    def vote_outputs(self, x: torch.Tensor) -> torch.Tensor:
        """Raw last-layer outputs ``(N, n_outputs)`` (what the training loss sees)."""
        return self.head(self.dropout(self.embed(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, n_heads)`` for images ``(N, 3, H, W)`` in [0, 1].

        For vote models the logit of the majority-gated label's probability
        (:func:`~galaxysd_core.models.vote_heads.head_logits`), so ``sigmoid(forward(x))`` is the
        head probability for every output kind.
        """
        raw = self.vote_outputs(x)
        if not self.is_vote_model:
            return raw
        return head_logits(concentrations(raw, self.layout, self.config.output), self.layout)

    @torch.no_grad()
    def predict_logits(self, images: ImageLike, batch_size: int = 256) -> torch.Tensor:
        """:meth:`forward` in eval mode, batched: head logits (rank-preserving where probabilities
        round to 0 or 1, e.g. for ROC AUC)."""
        return self._batched(images, self.forward, batch_size)

    @torch.no_grad()
    def predict_conditional(self, images: ImageLike, batch_size: int = 256) -> torch.Tensor:
        """Logit of a majority for each head's answer given its question was reached,
        ``(N, n_heads)`` (vote models; equal to :meth:`predict_logits` for sigmoid models)."""
        if not self.is_vote_model:
            return self.predict_logits(images, batch_size)

        def conditional(x: torch.Tensor) -> torch.Tensor:
            alpha = concentrations(self.vote_outputs(x), self.layout, self.config.output)
            return head_logits(alpha, self.layout, gated=False)

        return self._batched(images, conditional, batch_size)

    @torch.no_grad()
    def predict_fractions(self, images: ImageLike, batch_size: int = 256) -> torch.Tensor:
        """Expected vote fraction of every vote column given its question was asked,
        ``(N, len(config.vote_columns))``; vote models only."""
        if not self.is_vote_model:
            raise GalaxySDValueError("predict_fractions needs a classifier trained on votes (output dirichlet "
                                     "or softmax); this one predicts labels")

        def fractions(x: torch.Tensor) -> torch.Tensor:
            alpha = concentrations(self.vote_outputs(x), self.layout, self.config.output)
            return expected_fractions(alpha, self.layout)

        return self._batched(images, fractions, batch_size)

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
                outs.append(fn(images_to_tensor(images[i:i + batch_size]).to(self.device)).cpu())
            if not outs:
                dim = (self.num_features if fn == self.embed else len(self.config.vote_columns)
                       if getattr(fn, "__name__", "") == "fractions" else len(self.feature_columns))
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
        cfg = {"_class_name": type(self).__name__, "_galaxysd_version": __version__,
               **self.config.to_dict(),
               "feature_phrases": self.feature_phrases, "embedding_dim": self.embedding_dim}
        if extra_config:
            cfg["training"] = jsonable(dict(extra_config))
        (out / CONFIG_NAME).write_text(json.dumps(cfg, indent=2) + "\n")
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        save_file(state, str(out / WEIGHTS_NAME), metadata={"format": "pt", "class": type(self).__name__})
        _chmod_umask(out / WEIGHTS_NAME)  # safetensors writes 0600; give it the permissions of the other files
        (out / CARD_NAME).write_text(card if card is not None else _minimal_card(self))
        return out

    @classmethod
    def from_pretrained(cls, directory: Union[str, Path],
                        map_location: Union[str, torch.device] = "cpu") -> "MorphologyClassifier":
        """Load a folder written by :meth:`save_pretrained` (safetensors only, never pickle) onto the
        device ``map_location`` (resolve a ``--device`` with :func:`galaxysd_core.pipelines.devices.resolve_device`).

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
            raise GalaxySDFileError(f"{str(cfg_path)!r} is not a valid classifier config.json ({exc})") from exc
        except GalaxySDValueError as exc:
            raise GalaxySDFileError(f"{str(cfg_path)!r} describes an invalid classifier: {exc}") from exc
        try:
            state = load_file(str(w_path), device="cpu")  # copied into the model, which then moves
        except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
            raise GalaxySDFileError(
                f"{str(w_path)!r} is not a readable safetensors file ({exc}); re-train or re-download "
                f"the classifier") from exc
        model = cls(config)
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise GalaxySDFileError(
                f"weights in {str(w_path)!r} do not match {CONFIG_NAME} ({str(exc).splitlines()[0]}); "
                f"the two files come from different models") from exc
        model.training_info = raw.get("training", {})
        return model.to(map_location).eval()


def _chmod_umask(path: Path) -> None:
    import os
    mask = os.umask(0)
    os.umask(mask)
    try:
        os.chmod(path, 0o666 & ~mask)
    except OSError:  # pragma: no cover - e.g. a read-only or foreign file system
        pass


def _minimal_card(model: MorphologyClassifier) -> str:
    heads = "\n".join(f"- `{c}` ({p})" for c, p in zip(model.feature_columns, model.feature_phrases))
    return (f"# GalaxySD morphology classifier\n\nCompact CNN (see `galaxysd_core/models/classifier.py`).\n\n"
            f"Heads:\n{heads}\n\nEmbedding dimension: {model.embedding_dim}.\n")
