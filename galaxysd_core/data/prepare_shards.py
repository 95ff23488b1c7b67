"""The image shards of a prepared cache: their plan, fingerprints, the decode worker, resume markers.

:func:`galaxysd_core.data.cache.prepare_dataset` cuts the records into shards of ``shard_size``
consecutive records. Each shard is decoded by :func:`decode_shard` (in a worker process of a
``concurrent.futures.ProcessPoolExecutor`` with ``workers > 1``) into ``shards/images-NNNNN.npy``
(``uint8 (n, H, W, 3)``, the images that decoded, in record order) and then its marker
``shards/images-NNNNN.json``: the shard's fingerprint, the positions of the records kept and the
skipped records with their reasons. The marker is written last, atomically, so a shard whose marker
exists with the same fingerprint is finished and a re-run skips it (resume after a crash or Ctrl-C).

The fingerprint covers the decode settings and the ``(id, image path)`` of every record of the
shard, not the captions: re-preparing with other caption settings (``--raw-fractions``,
``--clean``) reuses the decoded images and rewrites only ``index.csv``.
"""
from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from galaxysd_core.data.decode import load_image
from galaxysd_core.data.shards import NpyRows, NpyWriter, ShardedArray, atomic_write, read_npy_header
from galaxysd_core.errors import GalaxySDDataError, GalaxySDFileError, ImageRejected

logger = logging.getLogger(__name__)

__all__ = ["SHARDS_DIR", "default_shard_size", "shard_name", "shard_fingerprint", "finished_marker",
           "decode_shard", "run_shards", "remove_stale_shards", "load_image_shards",
           "load_format1_images"]

#: The single image file of format-1 caches and the name of its tensor.
IMAGES_FILE, IMAGES_KEY = "images.safetensors", "images"
#: Folder of the shards inside a cache.
SHARDS_DIR = "shards"
#: Default shard size in bytes (images per shard = this / bytes per image, within the bounds below).
DEFAULT_SHARD_BYTES = 256 * 2**20
MIN_SHARD_SIZE, MAX_SHARD_SIZE = 64, 1024


def default_shard_size(resolution: int) -> int:
    """Images per shard: at most about 256 MiB of images (a worker holds one shard in memory while
    it decodes it) and at most 1024 images (shards are the unit of parallel work and of resume),
    at least 64: 1024 up to 256 px, 341 at 512 px (235 and 703 shards for the full GZ2)."""
    per_image = int(resolution) ** 2 * 3
    return int(max(MIN_SHARD_SIZE, min(MAX_SHARD_SIZE, DEFAULT_SHARD_BYTES // per_image)))


def shard_name(k: int) -> str:
    """File name of image shard ``k`` (``images-00042.npy``)."""
    return f"images-{int(k):05d}.npy"


def _marker(folder: Path, k: int) -> Path:
    return folder / SHARDS_DIR / shard_name(k).replace(".npy", ".json")


def shard_fingerprint(settings: Dict[str, Any], items: Sequence[Tuple[str, Optional[str]]]) -> str:
    """Hash of the decode settings and the ``(id, path)`` of the shard's records (16 hex digits)."""
    h = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for rid, path in items:
        h.update(f"{rid}\0{path}\n".encode())
    return h.hexdigest()[:16]


def finished_marker(folder: Path, k: int, fingerprint: str) -> Optional[Dict[str, Any]]:
    """The marker of shard ``k`` when it is finished with this fingerprint (its ``.npy`` present
    with the rows the marker counts), else None."""
    path = _marker(folder, k)
    try:
        marker = json.loads(path.read_text(encoding="utf-8"))
        shape, _, _ = read_npy_header(folder / SHARDS_DIR / marker["file"])
    except (OSError, ValueError, KeyError, GalaxySDFileError, GalaxySDDataError):
        return None
    if marker.get("fingerprint") != fingerprint or shape[0] != marker.get("n"):
        return None
    return marker


def decode_shard(task: Dict[str, Any], progress: Optional[Callable[[int], None]] = None) -> Dict[str, Any]:
    """Decode the records of one shard and write its ``.npy`` and marker; returns the marker.

    Parameters
    ----------
    task : dict
        ``folder, shard, fingerprint, items`` (``(id, path or None)`` pairs) and the decode
        settings ``resolution, crop_fraction, max_pixels``. Plain data, so it pickles to a worker.
    progress : callable, optional
        Called with 1 after every record (in-process runs).
    """
    folder, k, res = Path(task["folder"]), int(task["shard"]), int(task["resolution"])
    buffer = np.empty((len(task["items"]), res, res, 3), dtype=np.uint8)
    kept: List[int] = []
    skipped: List[List[Any]] = []
    for j, (rid, path) in enumerate(task["items"]):
        if path is None:
            skipped.append([j, "", "no image for this galaxy"])
        else:
            try:
                buffer[len(kept)] = load_image(path, res, task["crop_fraction"], max_pixels=task["max_pixels"])
                kept.append(j)
            except ImageRejected as exc:
                skipped.append([j, path, str(exc)])
        if progress is not None:
            progress(1)
    name = shard_name(k)
    with NpyWriter(folder / SHARDS_DIR / name, len(kept), (res, res, 3), np.uint8) as writer:
        writer.write(buffer[: len(kept)])
    marker = {"file": name, "shard": k, "fingerprint": task["fingerprint"], "n_records": len(task["items"]),
              "n": len(kept), "kept": kept, "skipped": skipped}
    atomic_write(_marker(folder, k), lambda p: p.write_text(json.dumps(marker) + "\n", encoding="utf-8"))
    return marker


def run_shards(tasks: List[Dict[str, Any]], workers: int, bar) -> List[Dict[str, Any]]:
    """Decode ``tasks`` (in order of completion) in ``workers`` processes (in this process for one
    worker or one task), updating the tqdm ``bar`` by records; returns the markers in task order.

    Worker processes are started with ``spawn``: forking a parent that already runs threads (torch,
    tqdm's monitor) can deadlock, and the start-up cost (about a second each) is paid once per run.
    """
    if workers <= 1 or len(tasks) <= 1:
        return [decode_shard(t, progress=bar.update) for t in tasks]
    from concurrent.futures import ProcessPoolExecutor, as_completed

    markers: Dict[int, Dict[str, Any]] = {}
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(int(workers), len(tasks)), mp_context=ctx) as pool:
        futures = {pool.submit(decode_shard, t): t for t in tasks}
        for fut in as_completed(futures):
            marker = fut.result()
            markers[marker["shard"]] = marker
            bar.update(marker["n_records"])
    return [markers[int(t["shard"])] for t in tasks]


def remove_stale_shards(folder: Path, n_shards: int) -> None:
    """Delete shard files and markers numbered ``n_shards`` or more (left by a larger earlier run)
    and stray temporary files."""
    root = folder / SHARDS_DIR
    if not root.is_dir():
        return
    for p in root.iterdir():
        stem = p.name.split(".")[0]
        if p.name.endswith(".tmp"):
            p.unlink(missing_ok=True)
        elif stem.startswith("images-") and stem[7:].isdigit() and int(stem[7:]) >= n_shards:
            p.unlink(missing_ok=True)
    if not any(root.iterdir()):
        root.rmdir()


def load_image_shards(folder: Path, config: Dict[str, Any]) -> ShardedArray:
    """The lazy images of a format-2 cache: the shards ``config["shards"]`` lists, checked against
    their announced counts and the cache resolution (nothing is read but the headers).

    Raises
    ------
    GalaxySDFileError
        A shard is missing.
    GalaxySDDataError
        A shard disagrees with the config (count, shape, dtype).
    """
    parts = []
    res = config.get("resolution")
    for entry in config.get("shards", []):
        path = folder / SHARDS_DIR / entry["file"]
        if not path.is_file():
            raise GalaxySDFileError(f"shard {str(path)!r} is missing; run 'galaxysd data prepare --out {folder} ...' "
                                    f"again (finished shards are kept)")
        part = NpyRows(path)
        if len(part) != entry["n"] or part.dtype != np.uint8 or (res and part.row_shape != (res, res, 3)):
            raise GalaxySDDataError(f"shard {str(path)!r} holds {part.dtype} {(len(part),) + part.row_shape}, "
                                    f"the cache config says {entry['n']} images of {res} px; prepare it again")
        parts.append(part)
    if not parts:
        raise GalaxySDDataError(f"{str(folder)!r} lists no image shards; prepare it again")
    return ShardedArray(parts)


def load_format1_images(folder: Path) -> np.ndarray:
    """All images of a format-1 cache (``images.safetensors``), in memory."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    path = folder / IMAGES_FILE
    if not path.is_file():
        raise GalaxySDFileError(f"{str(folder)!r} is not a prepared cache ({IMAGES_FILE} missing); create it "
                                f"with 'galaxysd data prepare --out {folder} ...'")
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise GalaxySDFileError(f"cannot read {str(path)!r}: {exc}; prepare it again") from exc
    if IMAGES_KEY not in tensors:
        raise GalaxySDDataError(f"{IMAGES_FILE} has no tensor {IMAGES_KEY!r}; prepare it again")
    logger.info("%s is a cache of the earlier single-file format, held in memory; 'galaxysd data convert %s' "
                "rewrites it as shards that are read lazily", folder, folder)
    return tensors[IMAGES_KEY]
