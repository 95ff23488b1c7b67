"""A trained, measured and documented morphology classifier from prepared caches.

:func:`fit_from_caches` is the classifier's release protocol: complete the single-class labels,
hold out the fixed test split, choose the heads, train
(:func:`galaxysd_core.training.classifier.train_classifier`), measure each head on the held-out
real images (:func:`evaluate_classifier`: precision, recall, ROC AUC) and the consistency of those
images with their own captions, then save the folder with its card (:func:`classifier_card`),
``split_test_ids.csv`` and ``metrics.csv``. ``train/train_classifier.py`` is its command line.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence, Union

import numpy as np
import torch

from galaxysd_core._utils import library_versions
from galaxysd_core.errors import GalaxySDDataError, GalaxySDValueError
from galaxysd_core.evaluation.metrics.consistency import consistency_on_real
from galaxysd_core.models.classifier import ClassifierConfig, ImageLike, MorphologyClassifier
from galaxysd_core.training.classifier import TrainSettings, train_classifier
from galaxysd_core.training.classifier_data import (DEFAULT_EXCLUSIVE_SOURCES, SPLIT_NAME, complete_exclusive_negatives,
                                                    fixed_test_split, label_counts, select_heads)


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


def classifier_card(model: MorphologyClassifier, report: Mapping[str, Any]) -> str:
    """Markdown model card (``README.md``) of a classifier from the report of :func:`fit_from_caches`."""
    m = report["metrics"]
    lines = [
        "# GalaxySD morphology classifier",
        "",
        f"Compact CNN (`galaxysd_core/models/classifier.py`, {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M "
        f"parameters, {model.config.image_size}x{model.config.image_size} input, {model.embedding_dim}-d embedding) "
        "that says which Galaxy Zoo 2 features an image shows. Used for prompt consistency and as the "
        "feature space of the domain distribution metrics (`galaxysd_core/evaluation/metrics`). It is NOT an "
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
    settings : galaxysd_core.training.classifier.TrainSettings, optional
    test_fraction : float
        Share of each caption group held out (by id hash, see
        :func:`~galaxysd_core.training.classifier_data.fixed_test_split`).
    min_positives, min_negatives : int
        Label counts a head needs (:func:`~galaxysd_core.training.classifier_data.select_heads`), on
        the training part.
    exclusive_sources : sequence of str
        Sources with single-class labels
        (:func:`~galaxysd_core.training.classifier_data.complete_exclusive_negatives`).
    feature_columns : sequence of str, optional
        Heads to train; chosen by ``select_heads`` when omitted.

    Returns
    -------
    dict
        The report also stored in ``config.json["training"]``.
    """
    import pandas as pd

    from galaxysd_core.data.cache import PreparedDataset

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
        "versions": library_versions(),
    }
    out = Path(out_dir)
    model.save_pretrained(out, card=classifier_card(model, report), extra_config=report)
    pd.DataFrame({"id": index["id"].iloc[test_idx].astype(str).to_numpy(),
                  "source": index["source"].iloc[test_idx].to_numpy(),
                  "caption": index["caption"].iloc[test_idx].to_numpy()}).to_csv(out / SPLIT_NAME, index=False)
    metrics.to_csv(out / "metrics.csv", index=False)
    return report
