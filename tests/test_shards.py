"""Sharded .npy storage: the lazy array behaves like the concatenated NumPy array, reads only what
it is asked for, and the writer is atomic and checks its row count."""
from __future__ import annotations

import pickle

import numpy as np
import pytest

from galaxysd_core.data.shards import NpyRows, NpyWriter, ShardedArray, read_npy_header, take_rows
from galaxysd_core.errors import GalaxySDDataError, GalaxySDFileError


@pytest.fixture
def shards(tmp_path):
    rng = np.random.default_rng(0)
    parts = [rng.integers(0, 256, (n, 4, 4, 3), dtype=np.uint8) for n in (5, 0, 7, 3)]
    paths = []
    for i, p in enumerate(parts):
        path = tmp_path / f"images-{i:05d}.npy"
        if i % 2:
            np.save(path, p)  # written by NumPy itself
        else:
            with NpyWriter(path, len(p), p.shape[1:], np.uint8) as w:
                w.write(p[:2])
                w.write(p[2:])
        paths.append(path)
    return ShardedArray(paths), np.concatenate(parts)


@pytest.mark.parametrize("key", [0, -1, 7, np.int64(12), slice(None), slice(2, 13, 3), slice(None, None, -2),
                                 [14, 0, 0, -1, 5], np.array([3, 3, -15]), (slice(None), 1, slice(1, 3)),
                                 (4, 2), (Ellipsis, 0)])
def test_indexing_equals_numpy(shards, key):
    arr, full = shards
    key = list(key) if isinstance(key, list) else key
    assert np.array_equal(arr[key], full[key])


def test_shape_mask_asarray_iteration_and_pickle(shards):
    arr, full = shards
    assert arr.shape == full.shape and len(arr) == 15 and arr.dtype == np.uint8 and arr.ndim == 4
    mask = np.arange(15) % 3 == 0
    assert np.array_equal(arr[mask], full[mask])
    assert np.array_equal(np.asarray(arr), full) and np.array_equal(np.stack(list(arr)), full)
    assert np.array_equal(pickle.loads(pickle.dumps(arr))[[14, 1]], full[[14, 1]])
    with pytest.raises(IndexError):
        arr[15]
    with pytest.raises(IndexError):
        arr[np.ones(3, bool)]


def test_subset_and_concat_stay_lazy(shards):
    arr, full = shards
    sub = take_rows(arr, [14, 2, 2, 9])
    assert isinstance(sub, ShardedArray) and np.array_equal(np.asarray(sub), full[[14, 2, 2, 9]])
    assert np.array_equal(sub.subset(np.array([False, True, False, True]))[0], full[2])
    both = ShardedArray.concat([sub, full[:2]])
    assert isinstance(both, ShardedArray) and len(both) == 6
    assert np.array_equal(np.asarray(both), np.concatenate([full[[14, 2, 2, 9]], full[:2]]))
    assert np.array_equal(take_rows(full, [1, 0]), full[[1, 0]])  # plain arrays are indexed


def test_reads_go_through_pread_not_a_memory_map(shards, monkeypatch):
    """Rows come from os.preadv, one call per run of consecutive rows of a shard."""
    import os

    arr, full = shards
    calls = []
    real = os.preadv

    def spy(fd, buffers, offset):
        calls.append(len(buffers))
        return real(fd, buffers, offset)

    monkeypatch.setattr(os, "preadv", spy)
    assert np.array_equal(arr[[0, 1, 2, 9, 6]], full[[0, 1, 2, 9, 6]])
    assert sorted(calls) == [1, 1, 3]  # rows 0-2 in one call; 6 and 9 (second data shard) apart


def test_writer_is_atomic_and_counts_rows(tmp_path):
    path = tmp_path / "x.npy"
    with pytest.raises(GalaxySDDataError, match="1 of 2 rows"):
        with NpyWriter(path, 2, (3,), np.float32) as w:
            w.write(np.zeros((1, 3)))
    assert not path.exists() and not list(tmp_path.iterdir())
    with pytest.raises(RuntimeError):
        with NpyWriter(path, 1, (3,), np.float32) as w:
            raise RuntimeError("interrupted")
    assert not list(tmp_path.iterdir())
    with NpyWriter(path, 2, (3,), np.float32) as w:
        with pytest.raises(GalaxySDDataError, match="does not fit"):
            w.write(np.zeros((3, 3)))
        w.write(np.ones((2, 3)))
    assert np.array_equal(np.load(path), np.ones((2, 3), np.float32))
    assert read_npy_header(path)[0] == (2, 3)


def test_bad_shards_raise_clear_errors(tmp_path):
    (tmp_path / "text.npy").write_text("not numpy")
    with pytest.raises(GalaxySDFileError, match="prepare it again"):
        NpyRows(tmp_path / "text.npy")
    np.save(tmp_path / "ok.npy", np.zeros((4, 2), np.uint8))
    data = (tmp_path / "ok.npy").read_bytes()
    (tmp_path / "cut.npy").write_bytes(data[:-3])
    with pytest.raises(GalaxySDDataError, match="truncated"):
        NpyRows(tmp_path / "cut.npy")
    np.save(tmp_path / "other.npy", np.zeros((4, 3), np.uint8))
    with pytest.raises(GalaxySDDataError, match="prepare the cache again"):
        ShardedArray([tmp_path / "ok.npy", tmp_path / "other.npy"])
