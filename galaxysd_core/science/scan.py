"""Fast scanning of real galaxy images with a binary detector: the scan and its engines.

A *scan* turns a list of image files into one detector score per galaxy, at survey scale (the
full GZ2 release has 239,695 galaxies; the next surveys have hundreds of millions). Each image is

1. decoded with Pillow in JPEG *draft* mode (the decoder skips DCT scales the output does not
   need: a 424 px SDSS cutout whose central crop becomes 64 px is decoded at 212 px, about 3x
   less work), centre-cropped and resized exactly as the prepared training caches were
   (:func:`galaxysd_core.data.decode.load_image`, so a detector trained on a cache sees the same
   pixels when it scans the files);
2. batched and passed through the detector (a :class:`~galaxysd_core.models.classifier.MorphologyClassifier`)
   in eval mode without gradients; the score is the sigmoid of one head;
3. optionally passed through a *judge* (the morphology classifier v2) on the same decoded pixels:
   the early-type gate and predicted dust-lane votes of
   :mod:`galaxysd_core.science.detg_components` become columns of the table.

Unreadable, truncated or missing files never stop a scan: they get a NaN score and the reason.

Engines
-------
``local``
    One process. Decoding runs on ``workers`` threads (Pillow releases the GIL while decoding and
    resampling) overlapped with inference on the calling thread (``threads`` torch threads).
``dask``
    Chunks of files are mapped over a :mod:`dask.distributed` cluster (a ``LocalCluster`` of
    ``n_workers`` single-threaded processes unless a ``Client`` or scheduler address is given).
``ray``
    Chunks are Ray tasks (one CPU each) on a local Ray instance (``ray.init(num_cpus=...)``;
    Ray's old ``local_mode`` no longer exists in Ray 2.x) or on the cluster ``address`` points to.

What each worker does (detector transport, decoding, inference) lives in
:mod:`galaxysd_core.science.scan_worker`; this module owns the scan records
(:func:`records_from_index`), the engines and :func:`scan`. All engines give the same scores (up
to float rounding of different batch compositions).
"""
from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np
import pandas as pd

from galaxysd_core.errors import GalaxySDDataError, GalaxySDValueError
from galaxysd_core.science.detg_components import COMPONENT_COLUMNS
from galaxysd_core.science.scan_worker import (decode_images, infer_components, infer_scores, model_from_bytes,
                                               model_to_bytes, score_chunk)

__all__ = ["ENGINES", "ScanResult", "records_from_index", "scan", "scan_local", "scan_dask", "scan_ray",
           "GZ2_FULL_RELEASE_SIZE"]

#: Engines accepted by :func:`scan`.
ENGINES = ("local", "dask", "ray")
#: Galaxies in the full GZ2 release (Hart et al. 2016), for throughput projections.
GZ2_FULL_RELEASE_SIZE = 239_695


# ---------------------------------------------------------------------------------- records
def records_from_index(index: pd.DataFrame, data_dir: Optional[Union[str, os.PathLike]] = None,
                       crop_fraction: Optional[float] = None) -> pd.DataFrame:
    """Scan records (``id, image_path, source, crop_fraction, file``) from a cache index or catalog.

    Parameters
    ----------
    index : pandas.DataFrame
        Needs ``id`` and ``image_path``; ``source`` (e.g. ``gz1_sdss``) chooses the crop
        (:func:`galaxysd_core.data.decode.default_crop_fraction`) when ``crop_fraction`` is None.
    data_dir : path, optional
        Folder relative ``image_path`` values are relative to (``$GALAXYSD_DATA_DIR``).
    crop_fraction : float, optional
        One crop for every record.
    """
    from galaxysd_core.data.decode import default_crop_fraction

    missing = [c for c in ("id", "image_path") if c not in index.columns]
    if missing:
        raise GalaxySDDataError(f"scan records need columns id and image_path; missing {missing}")
    out = pd.DataFrame({"id": index["id"].astype(str).to_numpy(),
                        "image_path": index["image_path"].astype(str).to_numpy()})
    out["source"] = index["source"].astype(str).to_numpy() if "source" in index.columns else ""
    if crop_fraction is not None:
        out["crop_fraction"] = float(crop_fraction)
    elif "crop_fraction" in index.columns:
        out["crop_fraction"] = index["crop_fraction"].astype(float).to_numpy()
    else:
        out["crop_fraction"] = [default_crop_fraction(source=s) for s in out["source"]]
    base = Path(data_dir).expanduser() if data_dir else None
    out["file"] = [p if (os.path.isabs(p) or base is None) else str(base / p) for p in out["image_path"]]
    return out


# ---------------------------------------------------------------------------------- engines
@dataclass
class ScanResult:
    """Outcome of :func:`scan`.

    Attributes
    ----------
    table : pandas.DataFrame
        Records in input order with ``score`` (NaN when skipped) and ``skip_reason``; with a judge
        also :data:`~galaxysd_core.science.detg_components.COMPONENT_COLUMNS`.
    engine : str
    seconds : float
        Wall time of the scan (decode + inference + transport; cluster start-up excluded and
        reported in ``info["startup_s"]``).
    info : dict
        Engine settings, stage times, start-up time.
    """

    table: pd.DataFrame
    engine: str
    seconds: float
    info: Dict[str, Any]

    @property
    def rate(self) -> float:
        """Galaxies per second."""
        return len(self.table) / self.seconds if self.seconds > 0 else float("nan")

    @property
    def n_skipped(self) -> int:
        return int((self.table["skip_reason"] != "").sum())


def _chunks(n: int, size: int) -> List[Tuple[int, int]]:
    size = max(1, int(size))
    return [(i, min(n, i + size)) for i in range(0, n, size)]


def _check(records: pd.DataFrame, batch_size: int, chunk_size: int) -> None:
    for c in ("file", "crop_fraction"):
        if c not in records.columns:
            raise GalaxySDValueError(f"scan records need a {c!r} column; build them with records_from_index")
    if batch_size < 1 or chunk_size < 1:
        raise GalaxySDValueError(f"batch_size and chunk_size must be positive, got {batch_size}, {chunk_size}")


def scan_local(records: pd.DataFrame, blob: bytes, *, resolution: int = 64, head: int = 0,
               batch_size: int = 64, workers: int = 2, threads: int = 1, progress: bool = False,
               judge_blob: Optional[bytes] = None) -> Tuple[np.ndarray, List[str], Dict[str, Any]]:
    """Scan in this process: ``workers`` decode threads feeding inference on ``threads`` torch threads.

    ``workers=0`` decodes on the calling thread (no overlap). With ``judge_blob`` the info dict
    carries ``components`` ``(N, 5)``.
    """
    _check(records, batch_size, batch_size)
    files = records["file"].tolist()
    crops = records["crop_fraction"].astype(float).tolist()
    n = len(files)
    import torch

    previous_threads = torch.get_num_threads()
    model = model_from_bytes(blob, threads=threads)
    judge = model_from_bytes(judge_blob, threads=threads) if judge_blob else None
    comps = np.full((n, len(COMPONENT_COLUMNS)), np.nan) if judge is not None else None
    scores = np.full(n, np.nan)
    reasons: List[str] = [""] * n
    spans = _chunks(n, batch_size)
    t_decode = t_infer = 0.0

    def dec(span):
        a, b = span
        t = time.perf_counter()
        imgs, rs = decode_images(files[a:b], crops[a:b], resolution)
        return span, imgs, rs, time.perf_counter() - t

    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=n, desc="scan", unit="gal")
    if workers <= 0:
        produced: Iterable = map(dec, spans)
        pool = None
    else:
        pool = ThreadPoolExecutor(max_workers=int(workers))
        # bounded look-ahead keeps memory flat on huge scans
        produced = _bounded_map(pool, dec, spans, ahead=2 * int(workers) + 1)
    try:
        for (a, b), imgs, rs, dt in produced:
            t_decode += dt
            t = time.perf_counter()
            s = infer_scores(model, imgs, head, batch_size)
            bad = np.array([bool(r) for r in rs])
            s[bad] = np.nan
            if judge is not None:
                c = infer_components(judge, imgs, batch_size)
                c[bad] = np.nan
                comps[a:b] = c
            t_infer += time.perf_counter() - t
            scores[a:b] = s
            reasons[a:b] = rs
            if bar is not None:
                bar.update(b - a)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        if bar is not None:
            bar.close()
        torch.set_num_threads(previous_threads)  # leave the caller's setting as it was
    info = {"decode_s": t_decode, "infer_s": t_infer, "workers": workers, "threads": threads, "batch_size": batch_size}
    if comps is not None:
        info["components"] = comps
    return scores, reasons, info


def _bounded_map(pool, fn, items, ahead: int):
    from collections import deque

    items = list(items)
    q: deque = deque()
    it = iter(items)
    for _ in range(ahead):
        try:
            q.append(pool.submit(fn, next(it)))
        except StopIteration:
            break
    while q:
        fut = q.popleft()
        try:
            q.append(pool.submit(fn, next(it)))
        except StopIteration:
            pass
        yield fut.result()


def scan_dask(records: pd.DataFrame, blob: bytes, *, resolution: int = 64, head: int = 0,
              batch_size: int = 64, chunk_size: int = 1024, n_workers: int = 2, client=None,
              address: Optional[str] = None, judge_blob: Optional[bytes] = None
              ) -> Tuple[np.ndarray, List[str], Dict[str, Any]]:
    """Scan with :mod:`dask.distributed` (``LocalCluster`` of single-threaded worker processes).

    Parameters
    ----------
    client : distributed.Client, optional
        Existing client (kept open); else ``address`` of a scheduler, else a new LocalCluster of
        ``n_workers`` processes, closed afterwards.
    """
    _check(records, batch_size, chunk_size)
    try:
        from distributed import Client, LocalCluster
    except ImportError as exc:  # pragma: no cover - optional dependency
        raise GalaxySDValueError("the dask engine needs dask[distributed]: pip install 'dask[distributed]'") from exc
    t0 = time.perf_counter()
    own_client = own_cluster = None
    if client is None:
        if address:
            client = own_client = Client(address)
        else:
            own_cluster = LocalCluster(n_workers=int(n_workers), threads_per_worker=1, processes=True,
                                       dashboard_address=None, silence_logs=40)
            client = own_client = Client(own_cluster)
    try:
        # warm-up (counted as start-up): import torch and load the detector once on every worker
        blob_f = client.scatter(blob, broadcast=True)
        judge_f = client.scatter(judge_blob, broadcast=True) if judge_blob else None
        client.run(_warm, blob, judge_blob)
        startup = time.perf_counter() - t0
        t1 = time.perf_counter()
        files = records["file"].tolist()
        crops = records["crop_fraction"].astype(float).tolist()
        spans = _chunks(len(files), chunk_size)
        futs = [client.submit(score_chunk, blob_f, files[a:b], crops[a:b], resolution, head, batch_size, 1,
                              judge_f, pure=False) for a, b in spans]
        results = client.gather(futs)
        seconds = time.perf_counter() - t1
    finally:
        if own_client is not None:
            own_client.close()
        if own_cluster is not None:
            own_cluster.close()
    scores, reasons = _merge(results)
    return scores, reasons, {"startup_s": startup, "scan_s": seconds, "chunks": len(spans),
                             "chunk_size": chunk_size, "n_workers": n_workers, "batch_size": batch_size,
                             **_stage_sums(results), **_merge_components(results)}


def scan_ray(records: pd.DataFrame, blob: bytes, *, resolution: int = 64, head: int = 0,
             batch_size: int = 64, chunk_size: int = 1024, num_cpus: int = 2,
             address: Optional[str] = None, judge_blob: Optional[bytes] = None
             ) -> Tuple[np.ndarray, List[str], Dict[str, Any]]:
    """Scan with Ray tasks (one CPU each) on a local Ray instance or the cluster at ``address``.

    Ray is started (and shut down afterwards) unless it is already initialised.
    """
    _check(records, batch_size, chunk_size)
    try:
        import ray
    except ImportError as exc:  # pragma: no cover - optional dependency
        raise GalaxySDValueError("the ray engine needs ray: pip install ray") from exc
    t0 = time.perf_counter()
    started = False
    if not ray.is_initialized():
        kwargs: Dict[str, Any] = dict(include_dashboard=False, log_to_driver=False, configure_logging=False)
        if address:
            ray.init(address=address, **kwargs)
        else:
            ray.init(num_cpus=int(num_cpus), **kwargs)
        started = True
    try:
        remote = ray.remote(num_cpus=1)(score_chunk)
        blob_ref = ray.put(blob)
        judge_ref = ray.put(judge_blob) if judge_blob else None
        # warm-up (counted as start-up): one empty task per CPU imports torch and loads the models
        ray.get([remote.remote(blob_ref, [], [], resolution, head, batch_size, 1, judge_ref)
                 for _ in range(int(num_cpus) if not address else 1)])
        startup = time.perf_counter() - t0
        t1 = time.perf_counter()
        files = records["file"].tolist()
        crops = records["crop_fraction"].astype(float).tolist()
        spans = _chunks(len(files), chunk_size)
        refs = [remote.remote(blob_ref, files[a:b], crops[a:b], resolution, head, batch_size, 1, judge_ref)
                for a, b in spans]
        results = ray.get(refs)
        seconds = time.perf_counter() - t1
    finally:
        if started:
            ray.shutdown()
    scores, reasons = _merge(results)
    return scores, reasons, {"startup_s": startup, "scan_s": seconds, "chunks": len(spans),
                             "chunk_size": chunk_size, "num_cpus": num_cpus, "batch_size": batch_size,
                             **_stage_sums(results), **_merge_components(results)}


def _warm(blob: bytes, judge_blob: Optional[bytes] = None) -> bool:
    model_from_bytes(blob, threads=1)
    if judge_blob:
        model_from_bytes(judge_blob, threads=1)
    return True


def _merge_components(results: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    if not results or "components" not in results[0]:
        return {}
    return {"components": np.concatenate([np.asarray(r["components"], dtype=np.float64).reshape(-1, len(COMPONENT_COLUMNS))
                                          for r in results])}


def _merge(results: Sequence[Dict[str, Any]]) -> Tuple[np.ndarray, List[str]]:
    if not results:
        return np.zeros(0), []
    return (np.concatenate([np.asarray(r["scores"], dtype=np.float64) for r in results]),
            [x for r in results for x in r["reasons"]])


def _stage_sums(results: Sequence[Dict[str, Any]]) -> Dict[str, float]:
    return {"decode_s": float(sum(r["decode_s"] for r in results)),
            "infer_s": float(sum(r["infer_s"] for r in results))}


def scan(records: pd.DataFrame, model, *, engine: str = "local", head: int = 0, resolution: Optional[int] = None,
         batch_size: int = 64, workers: int = 2, threads: int = 1, chunk_size: int = 1024, n_workers: int = 2,
         address: Optional[str] = None, client=None, progress: bool = False, judge=None) -> ScanResult:
    """Score every record with ``model`` (a MorphologyClassifier or its :func:`model_to_bytes` blob).

    Parameters
    ----------
    records : pandas.DataFrame
        From :func:`records_from_index` (``id``, ``image_path``, ``file``, ``crop_fraction``).
    engine : {"local", "dask", "ray"}
    head : int
        Logit of the detector to score (0 for a binary detector).
    resolution : int, optional
        Decoded side (default: the detector's ``image_size``).
    batch_size : int
        Images per inference batch.
    workers, threads : int
        Local engine: decode threads and torch threads.
    chunk_size, n_workers, address, client :
        Distributed engines: files per task, worker processes (CPUs) of the local cluster,
        scheduler / Ray address, or an existing dask Client.
    judge : MorphologyClassifier or bytes, optional
        The morphology classifier v2 (or its blob): adds the columns of
        :data:`~galaxysd_core.science.detg_components.COMPONENT_COLUMNS` from the same decoded
        images (the detector's resolution; the classifier resizes to its own input).

    Returns
    -------
    ScanResult
    """
    if engine not in ENGINES:
        raise GalaxySDValueError(f"unknown scan engine {engine!r}; choose one of {list(ENGINES)}")
    blob = model if isinstance(model, (bytes, bytearray)) else model_to_bytes(model)
    blob = bytes(blob)
    if resolution is None:
        resolution = int(model_from_bytes(blob).config.image_size)
    judge_blob = None
    if judge is not None:
        from galaxysd_core.science.detg_components import check_judge

        judge_blob = bytes(judge if isinstance(judge, (bytes, bytearray)) else model_to_bytes(judge))
        check_judge(model_from_bytes(judge_blob))
    t = time.perf_counter()
    if engine == "local":
        scores, reasons, info = scan_local(records, blob, resolution=resolution, head=head, batch_size=batch_size,
                                           workers=workers, threads=threads, progress=progress,
                                           judge_blob=judge_blob)
        seconds = time.perf_counter() - t
    elif engine == "dask":
        scores, reasons, info = scan_dask(records, blob, resolution=resolution, head=head, batch_size=batch_size,
                                          chunk_size=chunk_size, n_workers=n_workers, client=client,
                                          address=address, judge_blob=judge_blob)
        seconds = info["scan_s"]
    else:
        scores, reasons, info = scan_ray(records, blob, resolution=resolution, head=head, batch_size=batch_size,
                                         chunk_size=chunk_size, num_cpus=n_workers, address=address,
                                         judge_blob=judge_blob)
        seconds = info["scan_s"]
    table = records.copy()
    table["score"] = scores
    table["skip_reason"] = reasons
    comps = info.pop("components", None)
    if comps is not None:
        for k, c in enumerate(COMPONENT_COLUMNS):
            table[c] = comps[:, k] if len(comps) else np.zeros(0)
    info = {**info, "engine": engine, "resolution": resolution, "n": int(len(table)),
            "total_s": time.perf_counter() - t}
    return ScanResult(table=table, engine=engine, seconds=seconds, info=info)
