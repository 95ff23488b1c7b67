"""Measurements behind the classifier's settings: vote likelihood and input resolution.

:func:`compare_arms` trains several configurations ("arms") on the same caches, the same fixed
id-hash split and the same heads, each for the same wall-clock budget, and measures every head on
the held-out images:

* ``auc``: ROC AUC of the head probability against the caption truth on all test images (what
  the card reports);
* ``auc_reached``: ROC AUC of the conditional probability among test images whose question was
  reached;
* ``auc_votes``: the same on the test images of vote sources only (``gz2_cutouts``);
* ``auc_conditional``: ROC AUC of the expected vote fraction of the answer, on vote-source test
  images whose question was answered: how well the votes themselves are learned, independent of
  how head probabilities are read from them;
* ``images_per_s``: inference speed of the arm (``predict_proba``, this process's threads).

``train/compare_classifier.py`` is its command line; the table it writes is summarised in the
classifier card (:mod:`galaxysd_core.evaluation.classifier_card`).
"""
from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np

from galaxysd_core.errors import GalaxySDValueError
from galaxysd_core.evaluation.classifier_card import summarize  # noqa: F401 (re-exported for train/)
from galaxysd_core.evaluation.classifier_release import TrainingData, load_training_data, train_on
from galaxysd_core.models.classifier import ClassifierConfig
from galaxysd_core.training.classifier import TrainSettings

logger = logging.getLogger(__name__)


@dataclass
class Arm:
    """One configuration of :func:`compare_arms`.

    Parameters
    ----------
    name : str
        Label in the table, e.g. ``"dirichlet-64"``.
    output : str
        ``"dirichlet"``, ``"softmax"`` or ``"sigmoid"``.
    image_size, stem_stride : int
        Network input side (pixels) and stem reduction.
    """

    name: str
    output: str = "dirichlet"
    image_size: int = 64
    stem_stride: int = 2

    @classmethod
    def parse(cls, text: str) -> "Arm":
        """``"dirichlet:64"``, ``"softmax:64"``, ``"dirichlet:128:4"`` (output:size[:stem])."""
        parts = str(text).split(":")
        try:
            size = int(parts[1]) if len(parts) > 1 else 64
            stem = int(parts[2]) if len(parts) > 2 else 2
        except ValueError:
            raise GalaxySDValueError(f"arm {text!r}: write output:size[:stem], e.g. 'dirichlet:128:4'") from None
        return cls(name=f"{parts[0]}-{size}" + (f"-s{stem}" if stem != 2 else ""), output=parts[0],
                   image_size=size, stem_stride=stem)


def _conditional_auc(fractions: np.ndarray, targets: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    known = ~np.isnan(targets)
    y = targets[known].astype(int)
    if y.min(initial=1) == y.max(initial=0):
        return float("nan")
    return float(roc_auc_score(y, fractions[known]))


def speed(model, images: np.ndarray, repeats: int = 2, batch_size: int = 256) -> float:
    """Images per second of ``model.predict_proba`` on ``images`` (best of ``repeats``)."""
    model.predict_proba(images[:batch_size], batch_size=batch_size)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        model.predict_proba(images, batch_size=batch_size)
        best = min(best, time.perf_counter() - t0)
    return len(images) / best


def evaluate_arm(model, data: TrainingData, history: Dict[str, Any], arm: Arm) -> List[Dict[str, Any]]:
    """Rows of the comparison table for one trained arm (one per head)."""
    te = data.test_idx
    targets = data.targets()[te]
    votes = data.has_votes()[te]
    m_all = data.evaluate(model)
    m_votes = data.evaluate(model, votes)
    cond = {}
    if model.is_vote_model and votes.any():
        fr = model.predict_fractions(data.images[te][votes]).numpy()
        for k, col in enumerate(model.feature_columns):
            cond[col] = _conditional_auc(fr[:, model.config.vote_columns.index(col)], targets[votes][:, k])
    ips = speed(model, data.images[te][:1024])
    rows = []
    for a, v in zip(m_all.to_dict("records"), m_votes.to_dict("records")):
        rows.append({"arm": arm.name, **asdict(arm), "column": a["column"], "phrase": a["phrase"],
                     "n_pos": a["n_pos"], "n_neg": a["n_neg"], "auc": a["auc"], "precision": a["precision"],
                     "recall": a["recall"], "auc_reached": a["auc_reached"], "auc_votes": v["auc"],
                     "n_pos_votes": v["n_pos"],
                     "auc_conditional": cond.get(a["column"], float("nan")),
                     "steps": history["steps"], "epochs_run": history["epochs_run"],
                     "wall_time_s": round(history["wall_time_s"], 1), "images_per_s": round(ips, 1)})
    return rows


def compare_arms(cache_dirs: Sequence[Union[str, Path]], arms: Sequence[Union[Arm, str]], out_csv: Union[str, Path],
                 *, settings: Optional[TrainSettings] = None, progress: bool = False,
                 min_positives: int = 30, min_negatives: int = 30):
    """Train and measure every arm on the same data, split and heads; write and return the table.

    Rows are appended to ``out_csv`` after each arm, so an interrupted comparison keeps the arms
    already measured.
    """
    import pandas as pd

    settings = settings or TrainSettings(max_minutes=4.0)
    arms = [a if isinstance(a, Arm) else Arm.parse(a) for a in arms]
    data = load_training_data(cache_dirs, min_positives=min_positives, min_negatives=min_negatives)
    out = Path(out_csv)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows: List[Dict[str, Any]] = []
    for arm in arms:
        config = ClassifierConfig(feature_columns=data.heads, output=arm.output, image_size=arm.image_size,
                                  stem_stride=arm.stem_stride)
        logger.info("arm %s: training for at most %s min", arm.name, settings.max_minutes)
        model, history = train_on(data, config, settings, progress=progress)
        rows += evaluate_arm(model, data, history, arm)
        model.save_pretrained(out.parent / f"{out.stem}_{arm.name}", extra_config={"history": history})
        pd.DataFrame(rows).to_csv(out, index=False)
        logger.info("arm %s done: %s steps, %.0f s", arm.name, history["steps"], history["wall_time_s"])
    return pd.DataFrame(rows)


def evaluate_saved(cache_dirs: Sequence[Union[str, Path]], arms: Sequence[Union[Arm, str]],
                   out_csv: Union[str, Path], *, min_positives: int = 30, min_negatives: int = 30):
    """Measure again the arms saved by :func:`compare_arms` (``<out stem>_<arm>`` folders next to
    ``out_csv``) with the current evaluation code; writes and returns the table."""
    import pandas as pd

    from galaxysd_core.models.classifier import MorphologyClassifier

    arms = [a if isinstance(a, Arm) else Arm.parse(a) for a in arms]
    data = load_training_data(cache_dirs, min_positives=min_positives, min_negatives=min_negatives)
    out = Path(out_csv)
    rows: List[Dict[str, Any]] = []
    for arm in arms:
        model = MorphologyClassifier.from_pretrained(out.parent / f"{out.stem}_{arm.name}")
        rows += evaluate_arm(model, data, model.training_info["history"], arm)
    pd.DataFrame(rows).to_csv(out, index=False)
    return pd.DataFrame(rows)


