"""Prepared training cache: images at model resolution, captions, targets, config and skip report.

A prepared cache is a folder holding

``shards/images-NNNNN.npy``
    the images, ``uint8`` arrays ``(n, H, W, 3)`` (RGB, ``H = W = resolution``), one per shard of
    ``shard_size`` consecutive records (fewer images where records were skipped), in ``index.csv``
    order, each with a marker ``images-NNNNN.json`` that makes preparation resumable
    (:mod:`~galaxysd_core.data.prepare_shards`); plain ``.npy`` (no pickle), read lazily here
    (:class:`~galaxysd_core.data.shards.ShardedArray`): loading costs memory for the table only;
``index.csv``
    one row per image, same order: ``id, caption, source, image_path`` and then one column per GZ2
    answer (the 37 :data:`galaxysd_core.schema.gz2.ANSWERS` column stems) with 1.0 / 0.0 / NaN
    targets (:func:`galaxysd_core.schema.captioning.answer_targets`, the majority-gated labels);
    when the source has votes (a vote table such as ``gz2_cutouts`` or the GZ2 release), also
    :data:`VOTE_COLUMNS`: ``<answer>_count`` (volunteers who gave the answer) and
    ``<answer>_fraction`` (the fraction the caption was made from, see
    :attr:`galaxysd_core.data.records.GalaxyRecord.votes`), NaN for questions the table lacks and for
    rows of sources without votes;
``prepare_config.json``
    the settings, the source, the shards and their image counts, the counts (seen, written,
    skipped), library versions and a UTC timestamp; written last, so its presence marks a complete
    cache;
``skipped.csv``
    ``path, reason, id`` of every record that gave no image.

Caches of the earlier format (one ``images.safetensors``, ``format_version`` 1) still load, into
memory; :func:`~galaxysd_core.data.cache_convert.convert_to_shards` (``galaxysd data convert``) rewrites one as
shards.

Images are decoded, centre-cropped and resized by :func:`galaxysd_core.data.decode.load_image`, in
``workers`` processes; a record whose image is refused (missing, corrupt, oversized) never stops a
run: it is skipped and listed with the reason. Files are written atomically (temporary file and
:func:`os.replace`). No pickle is used anywhere: images are ``.npy``, tables CSV, settings JSON.

This module is the reader (:class:`PreparedDataset`); the writer is :mod:`~galaxysd_core.data.cache_writer`
(:func:`prepare_dataset`, re-exported here), the converter :mod:`~galaxysd_core.data.cache_convert`, the
file layout they share :mod:`~galaxysd_core.data.cache_layout`.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from galaxysd_core.data.cache_layout import (ANSWER_COLUMNS, CACHE_FORMAT_VERSION, CONFIG_FILE, COUNT_COLUMNS,
                                             FRACTION_COLUMNS, INDEX_COLUMNS, INDEX_FILE, SKIPPED_FILE, VOTE_COLUMNS)
from galaxysd_core.data.cache_writer import PrepareReport, SkippedFile, prepare_dataset
from galaxysd_core.data.prepare_shards import load_format1_images, load_image_shards
from galaxysd_core.data.shards import ShardedArray
from galaxysd_core.errors import GalaxySDDataError, GalaxySDFileError, GalaxySDValueError

__all__ = ["PreparedDataset", "PrepareReport", "SkippedFile", "prepare_dataset", "concat", "INDEX_COLUMNS",
           "ANSWER_COLUMNS", "VOTE_COLUMNS", "COUNT_COLUMNS", "FRACTION_COLUMNS", "CACHE_FORMAT_VERSION",
           "INDEX_FILE", "CONFIG_FILE", "SKIPPED_FILE"]


@dataclass
class PreparedDataset:
    """A prepared cache: its table in memory, its images read lazily.

    Attributes
    ----------
    images : ShardedArray or numpy.ndarray
        ``uint8`` ``(N, H, W, 3)``, RGB: a :class:`~galaxysd_core.data.shards.ShardedArray` over
        the image shards (indexing reads only the rows asked for and returns a NumPy array;
        ``np.asarray(ds.images)`` reads them all), a NumPy array for a format-1 cache.
    index : pandas.DataFrame
        :data:`INDEX_COLUMNS`, one row per image (``id`` is a string).
    config : dict
        Content of ``prepare_config.json`` (for a concatenation: ``{"concatenated_from": [...]}``).
    folder : pathlib.Path or None
        Folder it was loaded from.

    Examples
    --------
    >>> ds = PreparedDataset.load("cache/gz1_64")          # doctest: +SKIP
    >>> both = PreparedDataset.concat([ds, PreparedDataset.load("cache/gz2ex_64")])  # doctest: +SKIP
    >>> both.images.shape, both.captions[:2], both.targets().shape  # doctest: +SKIP
    """

    images: Any
    index: pd.DataFrame
    config: Dict[str, Any]
    folder: Optional[Path] = None

    def __post_init__(self) -> None:
        if self.images.ndim != 4 or self.images.shape[-1] != 3 or self.images.dtype != np.uint8:
            raise GalaxySDDataError(f"images must be uint8 (N, H, W, 3), got {self.images.dtype} {self.images.shape}")
        if len(self.images) != len(self.index):
            raise GalaxySDDataError(f"cache has {len(self.images)} images but {len(self.index)} index rows; "
                                    f"prepare it again")

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> Tuple[np.ndarray, pd.Series]:
        return self.images[i], self.index.iloc[i]

    @property
    def resolution(self) -> int:
        return int(self.images.shape[1])

    @property
    def captions(self) -> List[str]:
        return self.index["caption"].tolist()

    def targets(self) -> np.ndarray:
        """``float32`` array ``(N, 37)`` of 1/0/NaN answer targets in :data:`ANSWER_COLUMNS` order."""
        return self.index[list(ANSWER_COLUMNS)].to_numpy(dtype=np.float32)

    @property
    def has_votes(self) -> bool:
        """Whether ``index`` holds vote columns (:data:`VOTE_COLUMNS`) for at least one row."""
        return all(c in self.index.columns for c in VOTE_COLUMNS) and bool(
            self.index[list(COUNT_COLUMNS + FRACTION_COLUMNS)].notna().any().any())

    def votes(self) -> Tuple[np.ndarray, np.ndarray]:
        """``(counts, fractions)``: ``float32 (N, 37)`` arrays in :data:`ANSWER_COLUMNS` order, NaN
        where a row has no votes for that answer (a source without votes, a question not asked)."""
        def block(cols: Tuple[str, ...]) -> np.ndarray:
            if not all(c in self.index.columns for c in cols):
                return np.full((len(self.index), len(cols)), np.nan, dtype=np.float32)
            return self.index[list(cols)].to_numpy(dtype=np.float32)

        return block(COUNT_COLUMNS), block(FRACTION_COLUMNS)

    @property
    def is_sharded(self) -> bool:
        """Whether the images are read lazily from shards (False: a format-1 cache, in memory)."""
        return isinstance(self.images, ShardedArray)

    @classmethod
    def load(cls, folder: os.PathLike | str) -> "PreparedDataset":
        """Load a cache folder written by :func:`prepare_dataset` (format 2, or format 1 into memory).

        Raises
        ------
        GalaxySDFileError
            If the folder or one of its files is missing.
        GalaxySDDataError
            If the files disagree (counts, columns, shapes).
        """
        folder = Path(folder).expanduser()
        for name in (INDEX_FILE, CONFIG_FILE):
            if not (folder / name).is_file():
                raise GalaxySDFileError(
                    f"{str(folder)!r} is not a prepared cache ({name} missing); create it with "
                    f"'galaxysd data prepare --out {folder} ...' (a re-run keeps the finished shards)")
        config = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
        version = int(config.get("format_version", 1))
        if version > CACHE_FORMAT_VERSION:
            raise GalaxySDDataError(f"{str(folder)!r} has cache format {version}, newer than this galaxysd "
                                    f"({CACHE_FORMAT_VERSION}); upgrade galaxysd-studio or prepare it again")
        images = load_image_shards(folder, config) if version >= 2 else load_format1_images(folder)
        index = pd.read_csv(folder / INDEX_FILE, dtype={"id": str, "caption": str, "source": str,
                                                         "image_path": str}, keep_default_na=False,
                            na_values={c: ["", "nan", "NaN"] for c in (*ANSWER_COLUMNS, *VOTE_COLUMNS)})
        missing = [c for c in INDEX_COLUMNS if c not in index.columns]
        if missing:
            raise GalaxySDDataError(f"{INDEX_FILE} lacks columns {missing}; prepare the cache again")
        numeric = list(ANSWER_COLUMNS) + [c for c in VOTE_COLUMNS if c in index.columns]
        index[numeric] = index[numeric].astype(np.float64)
        return cls(images=images, index=index, config=config, folder=folder)

    @classmethod
    def concat(cls, datasets: Sequence["PreparedDataset"]) -> "PreparedDataset":
        """Concatenate caches of the same resolution (e.g. several sources) into one.

        Raises
        ------
        GalaxySDValueError
            For an empty list or different resolutions.
        """
        datasets = list(datasets)
        if not datasets:
            raise GalaxySDValueError("concat needs at least one prepared dataset")
        shapes = {d.images.shape[1:] for d in datasets}
        if len(shapes) != 1:
            raise GalaxySDValueError(f"cannot concatenate caches of different image shapes {sorted(shapes)}; "
                                     f"prepare them with the same --resolution")
        if all(isinstance(d.images, np.ndarray) for d in datasets):
            images = np.concatenate([d.images for d in datasets], axis=0)
        else:  # stays lazy: nothing is read
            images = ShardedArray.concat([d.images for d in datasets])
        index = pd.concat([d.index for d in datasets], ignore_index=True)
        config = {"concatenated_from": [{"folder": str(d.folder) if d.folder else None, **d.config}
                                        for d in datasets],
                  "resolution": int(images.shape[1])}
        return cls(images=images, index=index, config=config, folder=None)


def concat(datasets: Sequence[PreparedDataset]) -> PreparedDataset:
    """Function form of :meth:`PreparedDataset.concat`."""
    return PreparedDataset.concat(datasets)
