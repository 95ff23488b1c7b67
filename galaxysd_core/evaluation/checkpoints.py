"""Metrics over training steps: every pipeline snapshot of a training folder, evaluated alike.

:func:`find_checkpoints` lists the loadable snapshots (``snapshots/step-<N>``, ``model``) with their
step; :func:`evaluate_checkpoints` runs :func:`galaxysd_core.evaluation.runner.evaluate` on each
with one classifier, one real reference and the same seeds, and writes ``checkpoints.csv`` /
``checkpoints.json``.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

from galaxysd_core.errors import GalaxySDFileError
from galaxysd_core.evaluation.config import EvaluationConfig
from galaxysd_core.evaluation.reference import RealReference, classifier_test_ids
from galaxysd_core.evaluation.runner import EvaluationResult, evaluate, load_classifier, write_results
from galaxysd_core.pipelines.model_folder import TRAINING_CAPTIONS_FILE

_STEP_RE = re.compile(r"(\d+)$")


def find_checkpoints(folder: Union[str, Path]) -> List[Tuple[int, Path]]:
    """Loadable pipeline snapshots in a training folder, sorted by step.

    Looks at ``folder`` itself, its sub-folders and ``folder/snapshots/*`` for pipeline folders
    (with ``model_index.json``), e.g. ``snapshots/step-000500`` and ``model`` written by
    :func:`galaxysd_core.training.diffusion.train_diffusion` with ``save_snapshots``. The step is
    read from ``training_captions.json`` (``"step"``) or the trailing number of the folder name.
    accelerate ``checkpoint-<step>`` state folders are not pipelines and are skipped.
    """
    root = Path(folder)
    if not root.is_dir():
        raise GalaxySDFileError(f"checkpoint folder {str(root)!r} does not exist")
    candidates = [root, *sorted(p for p in root.iterdir() if p.is_dir())]
    if (root / "snapshots").is_dir():
        candidates += sorted(p for p in (root / "snapshots").iterdir() if p.is_dir())
    found: Dict[Path, int] = {}
    for p in candidates:
        if not (p / "model_index.json").is_file():
            continue
        step = None
        info = p / TRAINING_CAPTIONS_FILE
        if info.is_file():
            try:
                step = json.loads(info.read_text()).get("step")
            except (json.JSONDecodeError, OSError):
                step = None
        if step is None:
            m = _STEP_RE.search(p.name)
            step = int(m.group(1)) if m else None
        if step is not None:
            found[p.resolve()] = int(step)
    if not found:
        raise GalaxySDFileError(
            f"no pipeline snapshots in {str(root)!r}; train with save_snapshots=True so that "
            f"snapshots/step-<N> folders (with model_index.json) are written")
    return sorted(((s, p) for p, s in found.items()), key=lambda t: (t[0], str(t[1])))


def evaluate_checkpoints(folder: Union[str, Path], prompts: Sequence[str], *,
                         config: Optional[EvaluationConfig] = None, classifier=None,
                         real: Optional[Union[RealReference, Sequence[Union[str, Path]]]] = None,
                         out_dir: Optional[Union[str, Path]] = None, progress: bool = True) -> EvaluationResult:
    """Metrics over training steps: :func:`evaluate` for every snapshot of :func:`find_checkpoints`.

    The table has a ``step`` column and a ``checkpoint`` column (folder); it is written as
    ``checkpoints.csv`` / ``checkpoints.json`` (plus the real benchmark) when ``out_dir`` is given.
    """
    import pandas as pd

    config = config or EvaluationConfig()
    clf, clf_source = load_classifier(classifier)
    test_ids = classifier_test_ids(clf_source)
    if real is not None and not isinstance(real, RealReference):
        real = RealReference.from_caches(list(real), max_real=config.max_real, priority_ids=test_ids)
    tables, bench, meta = [], None, {}
    ckpts = find_checkpoints(folder)
    for i, (step, path) in enumerate(ckpts):
        res = evaluate(path, prompts, config=config, classifier=clf, real=real, benchmark=(i == 0),
                       progress=progress, extra_columns={"step": step, "checkpoint": path.name},
                       test_ids=test_ids)
        tables.append(res.table)
        bench = bench or res.benchmark
        meta = res.meta
    meta.update(classifier=clf_source, checkpoints=[{"step": s, "path": str(p)} for s, p in ckpts],
                model=str(folder))
    result = EvaluationResult(table=pd.concat(tables, ignore_index=True), benchmark=bench, meta=meta)
    if out_dir is not None:
        write_results(result, out_dir, name="checkpoints")
    return result
