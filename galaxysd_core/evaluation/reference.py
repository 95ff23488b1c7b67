"""Real reference images of an evaluation: loaded once, embedded once, selected per prompt.

The real reference of a prompt is the set of real images with the same caption (same tags,
weights and order ignored, :func:`galaxysd_core.prompts.grammar.prompt_tags`) when the real cache
holds at least ``min_reference`` of them, else all real images (:meth:`RealReference.select`).
Above ``max_real`` images a deterministic id-hash subsample is kept, the classifier's held-out
ids (:func:`classifier_test_ids`) first, so real-image benchmarks use images the classifier never
saw.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from galaxysd_core.errors import GalaxySDValueError
from galaxysd_core.prompts.grammar import prompt_tags
from galaxysd_core.training.classifier_data import SPLIT_NAME, id_hash, load_test_ids


def _hash_rank(ids: Sequence[str]) -> np.ndarray:
    """Order of ``ids`` by SHA-256 rank (the deterministic subsample order of :meth:`RealReference.from_caches`)."""
    return np.argsort([id_hash(i, "galaxysd-eval-reference-v1") for i in ids], kind="stable")


@dataclass
class RealReference:
    """Real images used as reference, with their embeddings and light-profile statistics.

    Build with :meth:`from_caches` (or directly from arrays in tests). Embeddings and statistics
    are computed once, on first use.
    """

    images: np.ndarray
    captions: List[str]
    ids: List[str]
    folders: List[str] = field(default_factory=list)
    _features: Optional[np.ndarray] = field(default=None, repr=False)
    _stats: Any = field(default=None, repr=False)
    _keys: Optional[List[Tuple[str, ...]]] = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if len(self.images) != len(self.captions) or len(self.images) != len(self.ids):
            raise GalaxySDValueError("real images, captions and ids must have the same length")
        if len(self.images) < 2:
            raise GalaxySDValueError("a real reference needs at least 2 images")

    @classmethod
    def from_caches(cls, folders: Sequence[Union[str, Path]], max_real: Optional[int] = None,
                    priority_ids: Optional[Iterable[str]] = None) -> "RealReference":
        """Load prepared caches; keep a deterministic subsample of at most ``max_real`` images.

        Images whose id is in ``priority_ids`` (the classifier's held-out split) are kept first,
        the rest are filled in id-hash order, so the subsample is reproducible and contains the
        images the classifier never saw.
        """
        from galaxysd_core.data.cache import PreparedDataset

        datasets = [PreparedDataset.load(f) for f in folders]
        ds = PreparedDataset.concat(datasets) if len(datasets) > 1 else datasets[0]
        ids = ds.index["id"].astype(str).tolist()
        idx = np.arange(len(ids))
        if max_real is not None and len(ids) > max_real:
            ranked = _hash_rank(ids)
            if priority_ids is not None:
                wanted = set(map(str, priority_ids))
                first = np.array([ids[i] in wanted for i in ranked])
                ranked = np.concatenate([ranked[first], ranked[~first]])
            idx = np.sort(ranked[:max_real])
        return cls(images=ds.images[idx], captions=[ds.captions[i] for i in idx], ids=[ids[i] for i in idx],
                   folders=[str(f) for f in folders])

    def subset(self, mask: np.ndarray) -> "RealReference":
        """The images where the boolean ``mask`` is True (embeddings and statistics recomputed)."""
        idx = np.flatnonzero(mask)
        return RealReference(self.images[idx], [self.captions[i] for i in idx], [self.ids[i] for i in idx],
                             self.folders)

    @property
    def keys(self) -> List[Tuple[str, ...]]:
        """Caption tags of every image (:func:`~galaxysd_core.prompts.grammar.prompt_tags`)."""
        if self._keys is None:
            cache = {c: prompt_tags(c) for c in dict.fromkeys(self.captions)}
            self._keys = [cache[c] for c in self.captions]
        return self._keys

    def features(self, classifier) -> np.ndarray:
        """Classifier embeddings ``(N, d)`` as float64, computed on first use."""
        if self._features is None:
            self._features = classifier.embed_images(self.images).numpy().astype(np.float64)
        return self._features

    def stats(self):
        """Light-profile statistics (:func:`~galaxysd_core.evaluation.metrics.physical.physical_stats`),
        computed on first use."""
        from galaxysd_core.evaluation.metrics.physical import physical_stats

        if self._stats is None:
            self._stats = physical_stats(self.images)
        return self._stats

    def select(self, prompt: str, min_reference: int) -> Tuple[np.ndarray, str]:
        """Indices of the reference images for ``prompt`` and the reference label."""
        key = prompt_tags(prompt)
        idx = np.flatnonzero([k == key for k in self.keys])
        if len(idx) >= min_reference:
            return idx, "same caption"
        return np.arange(len(self.images)), "all real"


def classifier_test_ids(classifier_source: str) -> Optional[List[str]]:
    """Held-out real ids of a classifier folder (``split_test_ids.csv``), None when it has none."""
    path = Path(classifier_source)
    if path.is_dir() and (path / SPLIT_NAME).is_file():
        return load_test_ids(path)
    return None
