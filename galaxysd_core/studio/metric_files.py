"""The metric files the Metrics page plots, read without recomputing anything.

Training and evaluation write their tables into ``<model>/metrics`` (``training_metrics.csv`` or
``checkpoints.csv``, ``real_benchmark.json``, ``pareto.csv`` or ``evaluation.csv``,
``morphology_distribution/<source>/features.csv``); the classifier card and the augmentation
results live under ``assets``. :func:`read_metrics` reads them all into a :class:`MetricsBundle`,
listing the files that exist but cannot be used; :func:`how_to_make` says which command writes a
missing one. Column choices of the tables (which prompt column, which sweep, which realism
metric) are made here too.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

import pandas as pd

from galaxysd_core import config
from galaxysd_core.errors import GalaxySDValueError
from galaxysd_core.science.augmentation_report import readme_notes

#: File names looked up in ``<model>/metrics`` (first found wins).
TRAINING_FILES = ("training_metrics.csv", "checkpoints.csv")
PARETO_FILES = ("pareto.csv", "evaluation.csv")
BENCHMARK_FILE = "real_benchmark.json"
MORPHOLOGY_DIR = "morphology_distribution"
#: Column roles of the Pareto plot and the names accepted for each (first present wins).
PARETO_ROLES: Dict[str, Tuple[str, ...]] = {
    "realism": ("realism", "precision", "density"),
    "diversity": ("diversity", "recall", "coverage"),
    "consistency": ("consistency",),
    "sweep_value": ("sweep_value", "value", "weight", "guidance"),
    "prompt": ("base_prompt", "prompt"),
    "sweep_variable": ("sweep_variable", "variable", "sweep"),
}
#: Metric columns plotted over training steps, when present.
TRAINING_METRICS = ("consistency", "precision", "recall", "density", "coverage", "domain_fd", "domain_kid", "loss",
                    "val_loss")
#: Metrics of the augmentation results (``<metric>_mean`` / ``<metric>_std`` columns), F1 first, with their names.
AUGMENTATION_METRICS: Dict[str, str] = {"f1": "F1", "precision": "purity (precision)",
                                        "recall": "completeness (recall)", "ap": "average precision (AP)",
                                        "auc": "ROC AUC"}


@dataclass
class MetricsBundle:
    """Metric files of a model (and of the classifier / augmentation assets), read without recomputing.

    Every table is None when its file is missing; ``problems`` lists files that exist but could
    not be read.
    """

    metrics_dir: Path
    training: Optional[pd.DataFrame] = None
    training_file: Optional[Path] = None
    #: A training table with one row per prompt and step (``checkpoints.csv``), for the per-prompt
    #: distance plot; the same as :attr:`training` when that one has a prompt column.
    training_per_prompt: Optional[pd.DataFrame] = None
    benchmark: Optional[Dict[str, Any]] = None
    pareto: Optional[pd.DataFrame] = None
    pareto_file: Optional[Path] = None
    morphology: Dict[str, Dict[str, pd.DataFrame]] = field(default_factory=dict)
    classifier_readme: Optional[str] = None
    classifier_metrics: Optional[pd.DataFrame] = None
    augmentation: Optional[pd.DataFrame] = None
    augmentation_readme: Optional[str] = None
    augmentation_notes: Optional[str] = None
    problems: List[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return all(x is None for x in (self.training, self.benchmark, self.pareto, self.classifier_readme,
                                       self.augmentation)) and not self.morphology


def _read_csv_tolerant(path: Path, problems: List[str]) -> Optional[pd.DataFrame]:
    try:
        df = pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        problems.append(f"{path.name}: cannot be read ({type(exc).__name__}: {exc})")
        return None
    if len(df) == 0:
        problems.append(f"{path.name}: has no rows")
        return None
    return df


def benchmark_consistency(bench: Optional[Mapping[str, Any]]) -> List[Tuple[str, float]]:
    """Horizontal reference lines of the consistency plot: ``[(label, value), ...]``.

    Reads ``consistency`` (flat layout) or ``consistency_on_real.consistency`` (written by
    :mod:`galaxysd_core.evaluation.runner`) and ``paper_real_consistency``.
    """
    if not bench:
        return []
    out: List[Tuple[str, float]] = []
    val = bench.get("consistency")
    if isinstance(val, Mapping):
        val = val.get("consistency", val.get("overall"))
    if val is None and isinstance(bench.get("consistency_on_real"), Mapping):
        val = bench["consistency_on_real"].get("consistency")
    if isinstance(val, (int, float)) and math.isfinite(val):
        out.append(("real images (our classifier)", float(val)))
    paper = bench.get("paper_real_consistency")
    if isinstance(paper, (int, float)) and math.isfinite(paper):
        out.append(("real images (GalaxySD paper)", float(paper)))
    return out


def pareto_columns(df: pd.DataFrame) -> Dict[str, Optional[str]]:
    """Column used for each role of :data:`PARETO_ROLES` (None where absent)."""
    return {role: next((c for c in names if c in df.columns and df[c].notna().any()), None)
            for role, names in PARETO_ROLES.items()}


def read_metrics(model_dir: os.PathLike, assets_dir: Optional[os.PathLike] = None) -> MetricsBundle:
    """Read every metric file the Metrics page shows.

    Parameters
    ----------
    model_dir : path-like
        Model folder; tables are read from ``<model_dir>/metrics``.
    assets_dir : path-like, optional
        Folder with ``classifier/README.md`` and ``augmentation/results.csv`` (default the
        repository's ``assets``).
    """
    mdir = Path(model_dir) / "metrics"
    assets = Path(assets_dir) if assets_dir is not None else config.ASSETS_DIR
    b = MetricsBundle(metrics_dir=mdir)
    if mdir.is_dir():
        for name in TRAINING_FILES:
            if (mdir / name).is_file():
                df = _read_csv_tolerant(mdir / name, b.problems)
                if df is not None and "step" not in df.columns:
                    b.problems.append(f"{name}: no 'step' column (columns: {list(df.columns)[:10]})")
                    df = None
                if df is not None:
                    b.training, b.training_file = df.sort_values("step", kind="stable"), mdir / name
                    break
        if b.training is not None and prompt_column(b.training) is not None:
            b.training_per_prompt = b.training
        elif b.training is not None:
            for name in TRAINING_FILES:
                path = mdir / name
                if path != b.training_file and path.is_file():
                    df = _read_csv_tolerant(path, b.problems)
                    if df is not None and "step" in df.columns and prompt_column(df) is not None:
                        b.training_per_prompt = df.sort_values("step", kind="stable")
                        break
        bench = mdir / BENCHMARK_FILE
        if bench.is_file():
            try:
                data = json.loads(bench.read_text(encoding="utf-8"))
                if not isinstance(data, dict):
                    raise ValueError("top level is not an object")
                b.benchmark = data
            except (OSError, ValueError) as exc:
                b.problems.append(f"{BENCHMARK_FILE}: cannot be read ({exc})")
        for name in PARETO_FILES:
            if (mdir / name).is_file():
                df = _read_csv_tolerant(mdir / name, b.problems)
                if df is not None:
                    cols = pareto_columns(df)
                    if cols["realism"] is None or cols["diversity"] is None:
                        b.problems.append(f"{name}: needs realism/precision and diversity/recall columns "
                                          f"(columns: {list(df.columns)[:10]})")
                    else:
                        b.pareto, b.pareto_file = df, mdir / name
                        break
        morph = mdir / MORPHOLOGY_DIR
        for feat_file in sorted(morph.rglob("features.csv")) if morph.is_dir() else []:
            label = feat_file.parent.name if feat_file.parent != morph else "training data"
            feats = _read_csv_tolerant(feat_file, b.problems)
            combos = (_read_csv_tolerant(feat_file.parent / "combinations.csv", b.problems)
                      if (feat_file.parent / "combinations.csv").is_file() else None)
            if feats is not None and {"feature", "count"} <= set(feats.columns):
                b.morphology[label] = {"features": feats, "combinations": combos}
            elif feats is not None:
                b.problems.append(f"{feat_file.relative_to(mdir)}: needs 'feature' and 'count' columns")
    readme = assets / "classifier" / "README.md"
    if readme.is_file():
        b.classifier_readme = readme.read_text(encoding="utf-8", errors="replace")
        if (assets / "classifier" / "metrics.csv").is_file():
            b.classifier_metrics = _read_csv_tolerant(assets / "classifier" / "metrics.csv", b.problems)
    aug = assets / "augmentation" / "results.csv"
    if aug.is_file():
        b.augmentation = _read_csv_tolerant(aug, b.problems)
    aug_readme = assets / "augmentation" / "README.md"
    if aug_readme.is_file():
        b.augmentation_readme = aug_readme.read_text(encoding="utf-8", errors="replace")
        b.augmentation_notes = readme_notes(b.augmentation_readme) or None
    return b


def prompt_column(df: pd.DataFrame) -> Optional[str]:
    """The prompt column of a metrics table: ``base_prompt``, else ``prompt``, else None."""
    return next((c for c in ("base_prompt", "prompt") if c in df.columns), None)


def training_prompts(df: pd.DataFrame) -> List[str]:
    """Prompts of a training-metrics table to choose from (sorted), or ``[]`` when it has at most one."""
    pcol = prompt_column(df)
    if pcol is None or df[pcol].nunique() <= 1:
        return []
    return sorted(df[pcol].dropna().unique().tolist())


def sweep_variables(df: pd.DataFrame, cols: Mapping[str, Optional[str]]) -> List[str]:
    """Sweeps of a Pareto table to choose from (sorted), or ``[]`` when it holds at most one."""
    col = cols.get("sweep_variable")
    if col is None or df[col].nunique() <= 1:
        return []
    return sorted(df[col].dropna().astype(str).unique().tolist())


def sweep_rows(df: pd.DataFrame, cols: Mapping[str, Optional[str]], variable: Optional[str]) -> pd.DataFrame:
    """Rows of one sweep (all rows when ``variable`` is None or the table has no sweep column)."""
    col = cols.get("sweep_variable")
    if variable is None or col is None:
        return df
    return df[df[col].astype(str) == str(variable)]


def augmentation_metrics(aug: pd.DataFrame) -> List[str]:
    """Metrics of the augmentation results to plot, F1 first (``[]`` for a table without them).

    A metric is listed when ``results.csv`` has its ``<metric>_mean`` column (written by
    :func:`galaxysd_core.science.augmentation.summarize`) and the ``task, shots, arm`` columns of
    the bars; counts such as ``n_seeds`` are settings, not metrics.
    """
    if not {"task", "shots", "arm"} <= set(aug.columns):
        return []
    return [m for m in AUGMENTATION_METRICS if f"{m}_mean" in aug.columns and aug[f"{m}_mean"].notna().any()]


def _missing(what: str, path: Path, action: str, command: str, note: str = "") -> str:
    text = f"No {what} yet (`{path}`). {action} with\n\n`{command}`"
    return text + (f"\n\n({note})." if note else "")


def how_to_make(kind: str, metrics_dir: os.PathLike, model_dir: os.PathLike,
                assets_dir: Optional[os.PathLike] = None) -> str:
    """What is missing and the command that writes it, for the Metrics page's empty sections.

    Parameters
    ----------
    kind : {"training", "pareto", "morphology", "classifier", "augmentation"}
    metrics_dir, model_dir : path-like
        The model's ``metrics`` folder and the model folder.
    assets_dir : path-like, optional
        Default :data:`galaxysd_core.config.ASSETS_DIR`.
    """
    rel, assets = Path(metrics_dir), Path(assets_dir) if assets_dir is not None else config.ASSETS_DIR
    if kind == "training":
        return _missing("training metrics", rel / TRAINING_FILES[0], "Evaluate the training snapshots",
                        f"galaxysd evaluate --checkpoints runs/galaxysd-mini --prompts prompts.txt "
                        f"-n 32 --real-cache cache/gz1_64 --out {rel}",
                        f"writes `{TRAINING_FILES[1]}`, read here as well, and `{BENCHMARK_FILE}`")
    if kind == "pareto":
        return _missing("sweep table", rel / PARETO_FILES[0], "Produce one",
                        f"galaxysd evaluate --model {model_dir} --prompts prompts.txt -n 64 "
                        f"--real-cache cache/gz1_64 --sweep guidance=1,3,6.5,9 --sweep "
                        f"\"weight:dust lane=0.8,1.3,2.0\" --out {rel}",
                        f"writes `{PARETO_FILES[1]}`, read here as well")
    if kind == "morphology":
        return _missing("morphology distribution", rel / MORPHOLOGY_DIR / "<source>" / "features.csv",
                        "Write one per source",
                        f"galaxysd data describe --source catalog --catalog "
                        f"${config.DATA_DIR_ENV}/gz1_sdss/labels.csv --out {rel / MORPHOLOGY_DIR / 'gz1_sdss'}")
    if kind == "classifier":
        return (f"No classifier card (`{assets / 'classifier' / 'README.md'}`). Train the classifier with "
                f"`python train/train_classifier.py`.")
    if kind == "augmentation":
        return (f"No augmentation results (`{assets / 'augmentation' / 'results.csv'}`): they appear here "
                f"once the augmentation experiment has been run.")
    raise GalaxySDValueError(f"unknown metrics section {kind!r}; one of training, pareto, morphology, "
                             f"classifier, augmentation")


#: Columns of the classifier's per-feature table on the Metrics page, with their labels.
CLASSIFIER_TABLE_COLUMNS = {"phrase": "feature", "n_pos": "test positives", "n_neg": "test negatives",
                            "precision": "precision", "recall": "recall", "auc": "ROC AUC",
                            "auc_reached": "AUC if reached", "goal": "AUC goal", "meets_goal": "meets goal"}


def classifier_table(metrics: Optional[pd.DataFrame]) -> Optional[pd.DataFrame]:
    """The classifier card's held-out figures per head (``assets/classifier/metrics.csv``), with
    readable column names; None when the file is absent or has no ``phrase`` column."""
    if metrics is None or "phrase" not in metrics.columns:
        return None
    cols = [c for c in CLASSIFIER_TABLE_COLUMNS if c in metrics.columns]
    return metrics[cols].rename(columns=CLASSIFIER_TABLE_COLUMNS).reset_index(drop=True)


def generated_vs_real_table(bundle: "MetricsBundle") -> Optional[pd.DataFrame]:
    """Per feature, how often generated images prompting it and held-out real images captioned with
    it show it (:func:`galaxysd_core.evaluation.feature_comparison.feature_comparison` of the
    evaluation table and the real benchmark); None without an evaluation table with ``seen:``
    columns."""
    from galaxysd_core.evaluation.feature_comparison import feature_comparison

    table = bundle.pareto
    if table is None or "prompt" not in table.columns or not any(c.startswith("seen:") for c in table.columns):
        return None
    return feature_comparison(table, bundle.benchmark)
