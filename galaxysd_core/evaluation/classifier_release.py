"""A trained, measured and documented morphology classifier from prepared caches.

:func:`fit_from_caches` is the classifier's release protocol: load the caches
(:func:`load_training_data`: complete the single-class labels, hold out the fixed test split,
choose the heads, build the vote targets), train
(:func:`galaxysd_core.training.classifier.train_classifier`), measure each head on the held-out
real images (:func:`evaluate_classifier`: precision, recall, ROC AUC against the majority-gated
labels, with the goals of :data:`GOALS`) and the consistency of those images with their own
captions, then save the folder with its card
(:func:`galaxysd_core.evaluation.classifier_card.classifier_card`), ``split_test_ids.csv`` and
``metrics.csv``. ``train/train_classifier.py`` is its command line; the loss and resolution
comparisons behind the shipped settings are in :mod:`galaxysd_core.evaluation.classifier_experiments`.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import numpy as np
import torch

from galaxysd_core._utils import library_versions
from galaxysd_core.errors import GalaxySDDataError, GalaxySDValueError
from galaxysd_core.evaluation.classifier_card import GOALS, classifier_card  # noqa: F401 (GOALS re-exported)
from galaxysd_core.evaluation.metrics.consistency import consistency_on_real
from galaxysd_core.models.classifier import ClassifierConfig, ImageLike, MorphologyClassifier
from galaxysd_core.training.classifier import TrainSettings, train_classifier
from galaxysd_core.training.classifier_data import (DEFAULT_EXCLUSIVE_SOURCES, DEFAULT_HARD_LABEL_VOTES, SPLIT_NAME,
                                                    caption_truth, complete_exclusive_negatives, fixed_test_split,
                                                    label_counts, select_heads, vote_targets)

#: Name of the experiments table copied next to a released classifier (read by the card).
EXPERIMENTS_NAME = "experiments.csv"


def _auc(y: np.ndarray, p: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else np.nan


def evaluate_classifier(model: MorphologyClassifier, images: ImageLike, targets: np.ndarray,
                        threshold: float = 0.5, batch_size: int = 256, probs: Optional[np.ndarray] = None,
                        reached_targets: Optional[np.ndarray] = None, conditional: Optional[np.ndarray] = None,
                        scores: Optional[np.ndarray] = None):
    """Per-head precision, recall and ROC AUC (scikit-learn) on labelled images.

    Parameters
    ----------
    targets : numpy.ndarray
        ``(N, n_heads)`` truth, 1/0/NaN (NaN skipped per head): for a release the caption truth
        (:func:`~galaxysd_core.training.classifier_data.caption_truth`).
    probs : numpy.ndarray, optional
        Head probabilities; computed with ``predict_proba`` when omitted.
    scores : numpy.ndarray, optional
        Scores ranked for the AUC (e.g. logits, which keep their order where probabilities round
        to 0 or 1); default ``probs``.
    reached_targets, conditional : numpy.ndarray, optional
        Majority-gated targets known only where the question was reached, and the conditional
        scores (``predict_conditional`` logits): give ``auc_reached``, the AUC among galaxies whose
        question was reached (how well the answer is told apart from its siblings).

    Returns
    -------
    pandas.DataFrame
        Columns ``column, phrase, n_pos, n_neg, precision, recall, auc, auc_reached, n_reached,
        threshold, goal, meets_goal`` (``goal`` NaN and ``meets_goal`` None for heads without a goal).
    """
    import pandas as pd
    from sklearn.metrics import precision_score, recall_score

    if probs is None:
        probs = model.predict_proba(images, batch_size=batch_size).numpy()
    t = np.asarray(targets, dtype=float)
    rows = []
    for k, (col, phrase) in enumerate(zip(model.feature_columns, model.feature_phrases)):
        known = ~np.isnan(t[:, k])
        y, p = t[known, k].astype(int), probs[known, k]
        pred = (p >= threshold).astype(int)
        n_pos, n_neg = int(y.sum()), int((1 - y).sum())
        auc = _auc(y, (scores if scores is not None else probs)[known, k])
        auc_reached, n_reached = np.nan, 0
        if reached_targets is not None:
            r = np.asarray(reached_targets, dtype=float)[:, k]
            ok = ~np.isnan(r)
            score = (conditional if conditional is not None else probs)[ok, k]
            auc_reached, n_reached = _auc(r[ok].astype(int), score), int(ok.sum())
        goal = GOALS.get(col, np.nan)
        rows.append({
            "column": col, "phrase": phrase, "n_pos": n_pos, "n_neg": n_neg,
            "precision": float(precision_score(y, pred, zero_division=np.nan)) if len(y) else np.nan,
            "recall": float(recall_score(y, pred, zero_division=np.nan)) if len(y) else np.nan,
            "auc": auc, "auc_reached": auc_reached, "n_reached": n_reached, "threshold": threshold, "goal": goal,
            "meets_goal": None if math.isnan(goal) or math.isnan(auc) else bool(auc >= goal),
        })
    return pd.DataFrame(rows)


@dataclass
class TrainingData:
    """Prepared caches ready for classifier training: images, index, split and heads.

    Attributes
    ----------
    images : numpy.ndarray
        ``uint8 (N, H, W, 3)`` of all caches.
    index : pandas.DataFrame
        Cache index after label completion (:func:`complete_exclusive_negatives`).
    train_idx, test_idx : numpy.ndarray
        Row indices of the fixed id-hash split.
    heads : list of str
        Head answer columns.
    """

    images: np.ndarray
    index: Any
    train_idx: np.ndarray
    test_idx: np.ndarray
    heads: List[str]
    caches: List[str]

    def targets(self, columns: Optional[Sequence[str]] = None) -> np.ndarray:
        """Majority-gated 1/0/NaN targets ``(N, K)`` of ``columns`` (default the heads)."""
        return self.index[list(columns or self.heads)].to_numpy(dtype=np.float32)

    def truth(self, columns: Optional[Sequence[str]] = None) -> np.ndarray:
        """Caption truth ``(N, K)`` (:func:`~galaxysd_core.training.classifier_data.caption_truth`)."""
        return caption_truth(self.index, list(columns or self.heads))

    def answered_targets(self, columns: Sequence[str]) -> np.ndarray:
        """Targets ``(N, K)`` where the column's question has an answer (a 1), NaN elsewhere: the
        galaxies whose question was reached (completed single-class negatives do not count)."""
        from galaxysd_core.schema.gz2 import ANSWER_BY_COLUMN, QUESTION_BY_STEM

        t = self.targets(columns).astype(float)
        for k, c in enumerate(columns):
            q = [a.column for a in QUESTION_BY_STEM[ANSWER_BY_COLUMN[c].question].answers]
            answered = (self.index[q].to_numpy(dtype=float) == 1).any(axis=1)
            t[~answered, k] = np.nan
        return t

    def evaluate(self, model: MorphologyClassifier, rows: Optional[np.ndarray] = None):
        """:func:`evaluate_classifier` of ``model`` on the test images (or ``rows`` of them)."""
        te = self.test_idx if rows is None else self.test_idx[rows]
        images = self.images[te]
        logits = model.predict_logits(images).numpy()
        return evaluate_classifier(model, None, self.truth()[te], probs=1.0 / (1.0 + np.exp(-logits.astype(float))),
                                   scores=logits, reached_targets=self.answered_targets(model.feature_columns)[te],
                                   conditional=model.predict_conditional(images).numpy())

    def has_votes(self) -> np.ndarray:
        """Rows whose source has vote columns (bool ``(N,)``)."""
        col = "t01_smooth_or_features_a01_smooth_count"
        return self.index[col].notna().to_numpy() if col in self.index.columns else np.zeros(len(self.index), bool)


def load_training_data(cache_dirs: Sequence[Union[str, Path]], *, test_fraction: float = 0.15,
                       min_positives: int = 30, min_negatives: int = 30,
                       exclusive_sources: Sequence[str] = DEFAULT_EXCLUSIVE_SOURCES,
                       feature_columns: Optional[Sequence[str]] = None) -> TrainingData:
    """Load and concatenate caches, complete single-class labels, split by id hash, choose the heads.

    Heads are the captioned answers with ``min_positives`` majority-gated positives and
    ``min_negatives`` negatives in the training part (:func:`select_heads`), unless given.
    """
    from galaxysd_core.data.cache import PreparedDataset

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
    heads = list(feature_columns) if feature_columns else select_heads(index.iloc[train_idx], min_positives,
                                                                       min_negatives)
    return TrainingData(images=ds.images, index=index, train_idx=train_idx, test_idx=test_idx, heads=heads,
                        caches=[str(d) for d in cache_dirs])


def train_on(data: TrainingData, config: ClassifierConfig, settings: TrainSettings, *,
             hard_label_votes: float = DEFAULT_HARD_LABEL_VOTES, progress: bool = True):
    """Train ``config`` on the training part of ``data``; returns ``(model, history)``."""
    tr = data.train_idx
    votes = None
    if config.output != "sigmoid":
        counts, fractions = vote_targets(data.index, config.vote_columns, hard_label_votes)
        votes = (counts[tr], fractions[tr])
    return train_classifier(data.images[tr], data.targets(config.feature_columns)[tr], config, settings, progress,
                            votes=votes)


def below_rule_metrics(model: MorphologyClassifier, data: TrainingData) -> List[Dict[str, Any]]:
    """Held-out figures of captioned answers that have no head but whose question is modelled.

    A vote classifier predicts every answer of its modelled questions (t08 holds dust lane and
    disturbed, whose 26 and 24 majority positives are below the head rule); a view of the same
    weights with those answers as extra heads measures them, for the card only.
    """
    from galaxysd_core.schema.gz2 import ANSWER_BY_COLUMN

    if not model.is_vote_model:
        return []
    extra = [c for c in model.config.vote_columns
             if ANSWER_BY_COLUMN[c].captioned and c not in model.feature_columns]
    if not extra:
        return []
    view = MorphologyClassifier(ClassifierConfig(**{**model.config.to_dict(), "vote_columns": [],
                                                    "feature_columns": model.feature_columns + extra}))
    if view.config.vote_columns != model.config.vote_columns:
        return []
    view.load_state_dict(model.state_dict())
    data_eval = TrainingData(images=data.images, index=data.index, train_idx=data.train_idx,
                             test_idx=data.test_idx, heads=view.feature_columns, caches=data.caches)
    rows = data_eval.evaluate(view.eval()).to_dict("records")
    return [r for r in rows if r["column"] in extra and r["n_pos"] > 0]


def fit_from_caches(cache_dirs: Sequence[Union[str, Path]], out_dir: Union[str, Path], *,
                    settings: Optional[TrainSettings] = None, test_fraction: float = 0.15,
                    min_positives: int = 30, min_negatives: int = 30,
                    exclusive_sources: Sequence[str] = DEFAULT_EXCLUSIVE_SOURCES,
                    feature_columns: Optional[Sequence[str]] = None, progress: bool = True,
                    output: str = "dirichlet", image_size: int = 64, stem_stride: int = 2,
                    hard_label_votes: float = DEFAULT_HARD_LABEL_VOTES,
                    experiments: Optional[Union[str, Path]] = None, bench: Optional[Union[str, Path]] = None,
                    ) -> Dict[str, Any]:
    """Train on prepared caches with the fixed held-out split, evaluate, and save everything.

    Writes ``config.json``, ``model.safetensors``, ``README.md`` (card with held-out precision,
    recall and ROC AUC per head against :data:`GOALS`, settings, wall time), ``split_test_ids.csv``
    and ``metrics.csv`` to ``out_dir``.

    Parameters
    ----------
    cache_dirs : sequence of path
        Folders of :class:`galaxysd_core.data.cache.PreparedDataset` caches (same resolution).
    out_dir : path
        Output folder (e.g. ``assets/classifier``).
    settings : galaxysd_core.training.classifier.TrainSettings, optional
    test_fraction : float
        Share of each caption group held out (by id hash, see
        :func:`~galaxysd_core.training.classifier_data.fixed_test_split`).
    min_positives, min_negatives : int
        Label counts a head needs, on the training part.
    exclusive_sources : sequence of str
        Sources with single-class labels
        (:func:`~galaxysd_core.training.classifier_data.complete_exclusive_negatives`).
    feature_columns : sequence of str, optional
        Heads to train; chosen by ``select_heads`` when omitted.
    output : {"dirichlet", "softmax", "sigmoid"}
        Vote likelihood (or hard labels, v1), see :class:`~galaxysd_core.models.classifier.ClassifierConfig`.
    image_size, stem_stride : int
        Network input side (pixels) and stem reduction.
    hard_label_votes : float
        Votes a single label counts as (:func:`~galaxysd_core.training.classifier_data.vote_targets`).
    experiments : path, optional
        CSV of :func:`galaxysd_core.evaluation.classifier_experiments.compare_arms` (copied to
        ``experiments.csv`` and summarised in the card).
    bench : path, optional
        JSON written by ``bench/bench_classifier.py`` (inference speed, shown in the card).

    Returns
    -------
    dict
        The report also stored in ``config.json["training"]``.
    """
    import pandas as pd

    settings = settings or TrainSettings()
    data = load_training_data(cache_dirs, test_fraction=test_fraction, min_positives=min_positives,
                              min_negatives=min_negatives, exclusive_sources=exclusive_sources,
                              feature_columns=feature_columns)
    config = ClassifierConfig(feature_columns=data.heads, output=output, image_size=image_size,
                              stem_stride=stem_stride)
    model, history = train_on(data, config, settings, hard_label_votes=hard_label_votes, progress=progress)
    te = data.test_idx
    metrics = data.evaluate(model)
    votes_te = data.has_votes()[te]
    metrics_votes = data.evaluate(model, votes_te)
    cons = consistency_on_real(model, data.images[te], data.index["caption"].iloc[te].tolist())
    index = data.index
    report: Dict[str, Any] = {
        "caches": data.caches,
        "n_total": int(len(index)), "n_train": int(len(data.train_idx)), "n_test": int(len(te)),
        "n_test_with_votes": int(votes_te.sum()),
        "sources": {str(k): int(v) for k, v in index["source"].value_counts().items()},
        "settings": {**settings.to_dict(), "test_fraction": test_fraction, "min_positives": min_positives,
                     "min_negatives": min_negatives, "exclusive_sources": list(exclusive_sources),
                     "output": output, "image_size": image_size, "stem_stride": stem_stride,
                     "hard_label_votes": hard_label_votes},
        "history": history,
        "train_label_counts": label_counts(index.iloc[data.train_idx], data.heads).to_dict("records"),
        "metrics": metrics.to_dict("records"),
        "metrics_vote_sources": metrics_votes.to_dict("records"),
        "below_rule_metrics": below_rule_metrics(model, data),
        "consistency_on_real_test": cons.overall,
        "consistency_per_feature_test": cons.per_feature,
        "torch_threads": torch.get_num_threads(),
        "versions": library_versions(),
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    exp_table = None
    if experiments is not None:
        exp_table = pd.read_csv(experiments)
        exp_table.to_csv(out / EXPERIMENTS_NAME, index=False)
        report["experiments"] = EXPERIMENTS_NAME
    if bench is not None:
        report["bench"] = json.loads(Path(bench).read_text())
    model.save_pretrained(out, card=classifier_card(model, report, exp_table), extra_config=report)
    pd.DataFrame({"id": index["id"].iloc[te].astype(str).to_numpy(),
                  "source": index["source"].iloc[te].to_numpy(),
                  "caption": index["caption"].iloc[te].to_numpy()}).to_csv(out / SPLIT_NAME, index=False)
    metrics.to_csv(out / "metrics.csv", index=False)
    return report


def refresh_card(folder: Union[str, Path], *, bench: Optional[Union[str, Path]] = None,
                 experiments: Optional[Union[str, Path]] = None, reevaluate: bool = False) -> Path:
    """Rewrite the card of a released classifier from its stored report, optionally with a new
    bench JSON, a new experiments table, or held-out metrics measured again with the current
    evaluation code on the caches it was trained on (same split and heads; no training).
    """
    import pandas as pd

    folder = Path(folder)
    model = MorphologyClassifier.from_pretrained(folder)
    report: Dict[str, Any] = dict(model.training_info)
    cfg_path = folder / "config.json"
    cfg = json.loads(cfg_path.read_text())
    if bench is not None:
        report["bench"] = json.loads(Path(bench).read_text())
    if experiments is not None:
        pd.read_csv(experiments).to_csv(folder / EXPERIMENTS_NAME, index=False)
        report["experiments"] = EXPERIMENTS_NAME
    if reevaluate:
        st = report["settings"]
        data = load_training_data(report["caches"], test_fraction=st["test_fraction"],
                                  exclusive_sources=st["exclusive_sources"], feature_columns=model.feature_columns)
        metrics = data.evaluate(model)
        votes_te = data.has_votes()[data.test_idx]
        report["metrics"] = metrics.to_dict("records")
        report["metrics_vote_sources"] = data.evaluate(model, votes_te).to_dict("records")
        report["below_rule_metrics"] = below_rule_metrics(model, data)
        metrics.to_csv(folder / "metrics.csv", index=False)
    from galaxysd_core._utils import jsonable

    cfg["training"] = jsonable(report)
    cfg_path.write_text(json.dumps(cfg, indent=2) + "\n")
    exp = folder / EXPERIMENTS_NAME
    card = classifier_card(model, cfg["training"], pd.read_csv(exp) if exp.is_file() else None)
    (folder / "README.md").write_text(card)
    return folder / "README.md"
