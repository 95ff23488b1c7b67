"""Converting a format-1 cache (one ``images.safetensors``) to image shards, in place (``galaxysd data convert``)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import numpy as np

from galaxysd_core.data.cache import PreparedDataset
from galaxysd_core.data.cache_layout import CACHE_FORMAT_VERSION, CONFIG_FILE, write_cache_files
from galaxysd_core.data.prepare_shards import SHARDS_DIR, default_shard_size, shard_name
from galaxysd_core.data.shards import NpyWriter, ShardedArray

__all__ = ["convert_to_shards"]


def convert_to_shards(folder: os.PathLike | str, shard_size: Optional[int] = None) -> Path:
    """Rewrite a format-1 cache (one ``images.safetensors``) as image shards, in place.

    The images are copied, not decoded again, so the source images are not needed; ``index.csv``,
    ``skipped.csv`` and the settings are kept (``prepare_config.json`` gains the shards and
    ``converted_from_format: 1``). A cache that is already sharded is left as it is.

    Raises
    ------
    GalaxySDFileError, GalaxySDDataError
        As :meth:`PreparedDataset.load`.
    """
    ds = PreparedDataset.load(folder)
    folder = Path(folder).expanduser()
    if isinstance(ds.images, ShardedArray):
        return folder
    shard_size = int(shard_size or default_shard_size(ds.resolution))
    config = dict(ds.config)
    config["shards"] = []
    for k, lo in enumerate(range(0, len(ds), shard_size)):
        part = ds.images[lo:lo + shard_size]
        name = shard_name(k)
        with NpyWriter(folder / SHARDS_DIR / name, len(part), part.shape[1:], np.uint8) as w:
            w.write(part)
        config["shards"].append({"file": name, "n": len(part)})
    config.update(format_version=CACHE_FORMAT_VERSION, shard_size=shard_size, converted_from_format=1)
    (folder / CONFIG_FILE).unlink()
    write_cache_files(folder, None, config, None, len(config["shards"]))
    return folder
