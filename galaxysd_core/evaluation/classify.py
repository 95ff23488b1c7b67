"""Classify the images of any catalog with the morphology classifier (``galaxysd classify``).

:func:`classify_records` decodes the images of reader records
(:mod:`galaxysd_core.data.catalog`, :mod:`galaxysd_core.data.gz2_release`) in batches, centre-cropped
like the training caches (:func:`galaxysd_core.data.decode.load_image`), and returns one row per
galaxy: ``id`` and one probability per head, named by its Hart et al. (2016) answer column
(``t03_bar_a06_bar``, ...). A missing, corrupt or oversized image never stops the run: the record
is skipped and listed with the reason.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, List, Optional, Sequence

import numpy as np

from galaxysd_core.data.decode import load_image
from galaxysd_core.errors import GalaxySDDataError, ImageRejected

logger = logging.getLogger(__name__)


@dataclass
class ClassificationResult:
    """Output of :func:`classify_records`.

    Attributes
    ----------
    table : pandas.DataFrame
        ``id`` then one probability column per head (answer column names), in record order.
    skipped : list of dict
        ``{"id", "path", "reason"}`` of every record that gave no image.
    seconds : float
        Wall time (decoding and inference).
    device : str
        Device the classifier ran on (``"cpu"``, ``"cuda:0"``, ...).
    """

    table: Any
    skipped: List[dict] = field(default_factory=list)
    seconds: float = 0.0
    device: str = "cpu"

    @property
    def images_per_s(self) -> float:
        return len(self.table) / self.seconds if self.seconds > 0 else float("nan")


def classify_records(model, records: Sequence[Any], *, crop_fraction: float = 1.0, batch_size: int = 256,
                     progress: bool = True) -> ClassificationResult:
    """Head probabilities of every record's image.

    Parameters
    ----------
    model : MorphologyClassifier
        Runs where its weights are (``MorphologyClassifier.from_pretrained(path, map_location=device)``,
        e.g. ``galaxysd classify --device cuda``); images are decoded on the CPU and moved per batch.
    records : sequence of GalaxyRecord
        Records with ``id`` and ``image_path`` (labels are not needed).
    crop_fraction : float
        Central crop before resizing to the classifier's input size (the scale the classifier was
        trained at: galaxies whose half-light radius is ~0.2 of the frame; ``galaxysd classify
        --crop-fraction auto`` measures it).
    batch_size : int
        Images decoded and classified at a time.
    progress : bool
        tqdm progress bar (images).
    """
    import pandas as pd
    from tqdm.auto import tqdm

    start = time.perf_counter()
    size = model.config.image_size
    cols = list(model.feature_columns)
    ids: List[str] = []
    probs: List[np.ndarray] = []
    skipped: List[dict] = []
    batch: List[np.ndarray] = []
    batch_ids: List[str] = []

    def flush() -> None:
        if batch:
            probs.append(model.predict_proba(np.stack(batch), batch_size=batch_size).numpy())
            ids.extend(batch_ids)
            batch.clear()
            batch_ids.clear()

    bar = tqdm(records, desc="classify", unit="img", disable=not progress)
    for rec in bar:
        rid, path = str(rec.id), rec.image_path
        if path is None:
            skipped.append({"id": rid, "path": "", "reason": "no image for this galaxy"})
            continue
        try:
            batch.append(load_image(path, size, crop_fraction))
        except ImageRejected as exc:
            skipped.append({"id": rid, "path": str(path), "reason": str(exc)})
            continue
        batch_ids.append(rid)
        if len(batch) >= batch_size:
            flush()
    flush()
    bar.close()
    if not ids and records:
        first = "; ".join(f"{s['path'] or s['id']}: {s['reason']}" for s in skipped[:3])
        raise GalaxySDDataError(f"no readable image among {len(records)} galaxies ({first}); check the catalog "
                                f"paths and --images-dir")
    values = np.concatenate(probs) if probs else np.zeros((0, len(cols)), dtype=np.float32)
    table = pd.DataFrame(values, columns=cols)
    table.insert(0, "id", ids)
    seconds = time.perf_counter() - start
    logger.info("classified %d images in %.1f s on %s (%d skipped)", len(ids), seconds, model.device, len(skipped))
    return ClassificationResult(table=table, skipped=skipped, seconds=seconds, device=str(model.device))


def skipped_path(out) -> "Path":
    """``FILE.skipped.csv`` next to the output ``FILE.csv``."""
    from pathlib import Path

    out = Path(out)
    return out.with_name(out.stem + ".skipped.csv")


def write_classification(result: ClassificationResult, out, config: Optional[dict] = None) -> List["Path"]:
    """Write the table to ``out`` and the skipped records to ``<out stem>.skipped.csv``."""
    import pandas as pd
    from pathlib import Path

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    result.table.to_csv(out, index=False, float_format="%.5f")
    skip = skipped_path(out)
    pd.DataFrame(result.skipped, columns=["id", "path", "reason"]).to_csv(skip, index=False)
    return [out, skip]
