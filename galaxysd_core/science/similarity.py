""""More like this": the nearest neighbours of a galaxy in classifier v2's embedding, across a catalog.

zoobot's similarity search (Walmsley et al. 2022) finds more galaxies like one labelled example by
distance in a morphology network's representation. Here the representation is the 256-d embedding
of the shipped classifier v2 (:meth:`~galaxysd_core.models.classifier.MorphologyClassifier.embed_images`),
L2-normalised so that Euclidean distance ranks like cosine similarity, and the search is
scikit-learn's :class:`~sklearn.neighbors.NearestNeighbors` (exact, ball tree / brute force as it
chooses; no hand-written search).

An index is built once per catalog (:func:`build_index`: decode every image at the crop its source
was scanned at, embed, fit) and cached as ``.npz`` next to the catalog or under the operator's cache
folder (:func:`cached_index`), keyed by the catalog file's size and modification time and by the
classifier's fingerprint, so a changed catalog or classifier rebuilds it.

Owns :class:`SimilarityIndex`, :func:`build_index`, :func:`cached_index`.
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Union

import numpy as np
import pandas as pd

from galaxysd_core.errors import GalaxySDFileError, GalaxySDValueError

__all__ = ["SimilarityIndex", "build_index", "cached_index", "catalog_index", "normalize"]

logger = logging.getLogger(__name__)


def normalize(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (a zero row stays zero)."""
    x = np.asarray(x, dtype=np.float32)
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(n > 0, n, 1.0)


@dataclass
class SimilarityIndex:
    """Unit embeddings of a catalog's galaxies and their nearest-neighbour search.

    Attributes
    ----------
    ids : list of str
        Catalog ids, in the order of ``embeddings``.
    embeddings : numpy.ndarray
        ``float32 (N, D)``, unit rows.
    """

    ids: List[str]
    embeddings: np.ndarray
    meta: Dict[str, str] = field(default_factory=dict)
    _nn: object = field(default=None, repr=False)
    _pos: Dict[str, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        from sklearn.neighbors import NearestNeighbors

        self.embeddings = normalize(self.embeddings)
        if len(self.ids) != len(self.embeddings) or len(self.ids) == 0:
            raise GalaxySDValueError("a similarity index needs one embedding per id and at least one galaxy")
        self.ids = [str(i) for i in self.ids]
        self._pos = {i: k for k, i in enumerate(self.ids)}
        if len(self._pos) != len(self.ids):
            raise GalaxySDValueError("catalog ids must be unique to build a similarity index")
        self._nn = NearestNeighbors().fit(self.embeddings)

    def __len__(self) -> int:
        return len(self.ids)

    def _table(self, dist: np.ndarray, idx: np.ndarray, skip: Optional[int]) -> pd.DataFrame:
        rows = [(self.ids[j], float(1.0 - 0.5 * d * d)) for d, j in zip(dist, idx) if j != skip]
        return pd.DataFrame(rows, columns=["id", "similarity"])

    def similar(self, galaxy_id: str, k: int = 20) -> pd.DataFrame:
        """The ``k`` galaxies most like ``galaxy_id`` (itself excluded): ``id, similarity`` (cosine, 1 = same).

        Raises
        ------
        GalaxySDValueError
            Unknown id or ``k`` not in [1, N - 1].
        """
        pos = self._pos.get(str(galaxy_id))
        if pos is None:
            raise GalaxySDValueError(f"id {str(galaxy_id)[:60]!r} is not in this catalog")
        k = self._check_k(k, len(self) - 1)
        dist, idx = self._nn.kneighbors(self.embeddings[pos:pos + 1], n_neighbors=k + 1)
        return self._table(dist[0], idx[0], pos).head(k).reset_index(drop=True)

    def similar_to_embedding(self, embedding: np.ndarray, k: int = 20) -> pd.DataFrame:
        """The ``k`` catalog galaxies nearest to an outside embedding (e.g. an uploaded image's)."""
        e = normalize(np.asarray(embedding, dtype=np.float32).reshape(1, -1))
        if e.shape[1] != self.embeddings.shape[1]:
            raise GalaxySDValueError(f"embedding has {e.shape[1]} values, the index {self.embeddings.shape[1]}")
        k = self._check_k(k, len(self))
        dist, idx = self._nn.kneighbors(e, n_neighbors=k)
        return self._table(dist[0], idx[0], None)

    @staticmethod
    def _check_k(k, most: int) -> int:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= int(k) <= max(1, most):
            raise GalaxySDValueError(f"k must be a whole number in [1, {max(1, most)}], got {k!r}")
        return int(k)

    def save(self, path: Union[str, Path]) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, ids=np.asarray(self.ids), embeddings=self.embeddings,
                 meta=np.asarray([f"{k}={v}" for k, v in self.meta.items()]))
        tmp.replace(path)  # atomic: a reader never sees half a file
        return path

    @classmethod
    def load(cls, path: Union[str, Path]) -> "SimilarityIndex":
        """An index saved by :meth:`save` (no pickles: ``allow_pickle=False``)."""
        try:
            with np.load(Path(path), allow_pickle=False) as z:
                meta = dict(s.split("=", 1) for s in z["meta"].tolist())
                return cls(ids=z["ids"].tolist(), embeddings=z["embeddings"], meta=meta)
        except (OSError, ValueError, KeyError) as exc:
            raise GalaxySDFileError(f"similarity index {Path(path).name!r} is unreadable; delete it to rebuild") \
                from exc


def build_index(ids: Sequence[str], files: Sequence[str], crop_fractions: Sequence[float], classifier, *,
                resolution: int = 128, batch_size: int = 256,
                progress: Optional[Callable[[int, int], None]] = None) -> SimilarityIndex:
    """Decode, embed and index the images of a catalog (unreadable images are left out and logged)."""
    from galaxysd_core.science.scan_worker import decode_images

    ids, files, crops = list(map(str, ids)), list(map(str, files)), list(map(float, crop_fractions))
    keep_ids: List[str] = []
    parts: List[np.ndarray] = []
    for a in range(0, len(files), batch_size):
        imgs, reasons = decode_images(files[a:a + batch_size], crops[a:a + batch_size], resolution)
        ok = np.array([not r for r in reasons])
        if ok.any():
            parts.append(classifier.embed_images(imgs[ok]).numpy())
            keep_ids += [i for i, g in zip(ids[a:a + batch_size], ok) if g]
        if (~ok).any():
            logger.info("similarity index: %d unreadable images left out", int((~ok).sum()))
        if progress is not None:
            progress(min(a + batch_size, len(files)), len(files))
    if not parts:
        raise GalaxySDFileError("no image of the catalog could be read; check the image folder")
    return SimilarityIndex(ids=keep_ids, embeddings=np.concatenate(parts))


def _key(catalog_path: Path, classifier_id: str) -> str:
    st = catalog_path.stat()
    raw = f"{catalog_path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{classifier_id}"
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def cached_index(catalog_path: Union[str, Path], cache_dir: Union[str, Path], classifier_id: str,
                 build: Callable[[], SimilarityIndex]) -> SimilarityIndex:
    """The catalog's index from ``cache_dir`` (built with ``build()`` and saved when absent or stale)."""
    catalog_path = Path(catalog_path)
    path = Path(cache_dir) / f"similarity-{catalog_path.stem}-{_key(catalog_path, classifier_id)}.npz"
    if path.is_file():
        return SimilarityIndex.load(path)
    index = build()
    index.meta.update(catalog=catalog_path.name, classifier=classifier_id)
    index.save(path)
    return index


def catalog_index(catalog, classifier, cache_dir: Optional[Union[str, Path]] = None, classifier_id: str = "",
                  progress: Optional[Callable[[int, int], None]] = None) -> SimilarityIndex:
    """The index of a :class:`~galaxysd_core.science.candidates.CandidateCatalog` (its readable images,
    each at the crop its source was scanned at: the ECSV metadata's ``crop_fractions``, else the full
    frame), cached under ``cache_dir`` when the catalog is a file."""
    t = catalog.table[catalog.table["image_exists"]]
    if t.empty:
        raise GalaxySDFileError("no image of this catalog can be opened; set the image folder (or $GALAXYSD_DATA_DIR)")
    crops = dict(catalog.meta.get("crop_fractions") or {})
    src = t["source"] if "source" in t.columns else pd.Series([""] * len(t), index=t.index)
    crop = [float(crops.get(str(s), 1.0)) for s in src]

    def build() -> SimilarityIndex:
        return build_index(t["id"].tolist(), t["image_file"].tolist(), crop, classifier, progress=progress)

    path = Path(str(catalog.source))
    if cache_dir is None or not path.is_file():
        return build()
    return cached_index(path, cache_dir, classifier_id, build)
