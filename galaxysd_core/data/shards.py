"""Row arrays stored as shards of ``.npy`` files and read lazily, a few rows at a time.

A prepared cache (:mod:`galaxysd_core.data.cache`) keeps its images, and the diffusion training
(:mod:`galaxysd_core.training.latent_cache`) its latents, as numbered ``.npy`` shards: plain NumPy
files (no pickle: ``allow_pickle`` is never needed and never set), one array ``(n, ...)`` each,
readable by ``np.load(path, mmap_mode="r")`` with any NumPy. :class:`ShardedArray` puts the shards
of one or more caches end to end and behaves like a read-only ``uint8`` / ``float32`` NumPy array
for what the project does with images: ``len``, ``shape``, ``dtype``, integer / slice / index-array /
boolean-mask indexing (which return ordinary arrays), ``np.asarray`` (which reads everything).

Rows are read with ``os.preadv`` into the output array (one system call per run of consecutive
rows), not through ``np.memmap``: the pages of a memory map that has been read stay resident and
count in the process's resident set size (a training run that touches every latent once per
epoch would show the whole cache in its RSS), while ``pread`` goes through the page cache, which
the kernel shares and reclaims and which is not part of any process's RSS. The file descriptor is
opened lazily in each process, so a :class:`ShardedArray` can be handed to DataLoader workers.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Callable, List, Optional, Sequence, Tuple, Union

import numpy as np

from galaxysd_core.errors import GalaxySDDataError, GalaxySDFileError

__all__ = ["NpyRows", "MemoryRows", "ShardedArray", "NpyWriter", "atomic_write", "read_npy_header", "take_rows"]

#: Largest number of buffers of one ``preadv`` call (Linux ``IOV_MAX``).
_IOV_MAX = 1024


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def atomic_write(target: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp_path)`` then move the temporary file onto ``target`` atomically
    (:func:`os.replace`), so a reader never sees a half-written file."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the usual permissions
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def read_npy_header(path: Union[str, Path]) -> Tuple[Tuple[int, ...], np.dtype, int]:
    """``(shape, dtype, data_offset)`` of a C-ordered ``.npy`` file without object fields.

    Raises
    ------
    GalaxySDFileError
        If the file is missing or not a ``.npy`` file.
    GalaxySDDataError
        For a Fortran-ordered array, an object dtype or a file shorter than its header says.
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
            offset = fh.tell()
    except (OSError, ValueError) as exc:
        raise GalaxySDFileError(f"cannot read {str(path)!r} as a .npy shard ({exc}); prepare it again") from exc
    if fortran or dtype.hasobject:
        raise GalaxySDDataError(f"{str(path)!r} is not a C-ordered numeric array; prepare it again")
    expected = offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if path.stat().st_size < expected:
        raise GalaxySDDataError(f"{str(path)!r} is truncated ({path.stat().st_size} of {expected} bytes); "
                                f"prepare it again")
    return tuple(int(s) for s in shape), dtype, offset


class NpyRows:
    """Rows of one ``.npy`` shard on disk, read on demand (see the module docstring)."""

    def __init__(self, path: Union[str, Path]) -> None:
        self.path = Path(path)
        shape, self.dtype, self.offset = read_npy_header(self.path)
        if not shape:
            raise GalaxySDDataError(f"{str(self.path)!r} holds a scalar, not rows; prepare it again")
        self.n, self.row_shape = shape[0], shape[1:]
        self.row_bytes = int(np.prod(self.row_shape, dtype=np.int64)) * self.dtype.itemsize
        self._fd: Optional[int] = None
        self._pid: Optional[int] = None

    def __len__(self) -> int:
        return self.n

    def _descriptor(self) -> int:
        if self._fd is None or self._pid != os.getpid():  # a forked DataLoader worker opens its own
            self._fd, self._pid = os.open(self.path, os.O_RDONLY), os.getpid()
        return self._fd

    def read_into(self, rows: np.ndarray, out: np.ndarray, positions: np.ndarray) -> None:
        """Copy rows ``rows`` of the file into ``out[positions]`` (``out`` C-contiguous)."""
        fd = self._descriptor()
        order = np.argsort(rows, kind="stable")
        rows, positions = rows[order], positions[order]
        # runs of consecutive file rows: one preadv each, straight into the output rows
        breaks = np.flatnonzero(np.diff(rows) != 1) + 1
        for run_rows, run_pos in zip(np.split(rows, breaks), np.split(positions, breaks)):
            for s in range(0, len(run_rows), _IOV_MAX):
                bufs = [memoryview(out[int(p)]).cast("B") for p in run_pos[s:s + _IOV_MAX]]
                offset = self.offset + int(run_rows[s]) * self.row_bytes
                if hasattr(os, "preadv"):
                    got = os.preadv(fd, bufs, offset)
                else:  # pragma: no cover - platforms without preadv (Windows)
                    with open(self.path, "rb") as fh:
                        fh.seek(offset)
                        got = sum(fh.readinto(b) for b in bufs)
                if got != len(bufs) * self.row_bytes:
                    raise GalaxySDDataError(f"short read from {str(self.path)!r}; prepare it again")

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_fd"] = state["_pid"] = None
        return state

    def __del__(self) -> None:
        if getattr(self, "_fd", None) is not None and self._pid == os.getpid():
            try:
                os.close(self._fd)
            except OSError:
                pass


class MemoryRows:
    """Rows of an array already in memory (the legacy single-file cache), same interface as :class:`NpyRows`."""

    def __init__(self, array: np.ndarray) -> None:
        self.array = np.asarray(array)
        self.n, self.row_shape, self.dtype = len(self.array), self.array.shape[1:], self.array.dtype
        self.path = None

    def __len__(self) -> int:
        return self.n

    def read_into(self, rows: np.ndarray, out: np.ndarray, positions: np.ndarray) -> None:
        out[positions] = self.array[rows]


Part = Union[NpyRows, MemoryRows]


class ShardedArray:
    """Read-only array-like over row shards (``.npy`` files or in-memory arrays) put end to end.

    Parameters
    ----------
    parts : sequence of NpyRows, MemoryRows, path or numpy.ndarray
        The shards, in order; all with the same row shape and dtype.
    rows : numpy.ndarray, optional
        Physical rows of the logical rows (a lazy subset, see :meth:`subset`).

    Examples
    --------
    >>> arr = ShardedArray(["shards/images-00000.npy", "shards/images-00001.npy"])  # doctest: +SKIP
    >>> arr.shape, arr[3].shape, arr[[5, 1]].shape, arr[arr_mask].shape  # doctest: +SKIP
    """

    def __init__(self, parts: Sequence[Any], rows: Optional[np.ndarray] = None) -> None:
        self.parts: List[Part] = [p if isinstance(p, (NpyRows, MemoryRows)) else
                                  MemoryRows(p) if isinstance(p, np.ndarray) else NpyRows(p) for p in parts]
        if not self.parts:
            raise GalaxySDDataError("a sharded array needs at least one shard")
        first = self.parts[0]
        for p in self.parts[1:]:
            if p.row_shape != first.row_shape or p.dtype != first.dtype:
                raise GalaxySDDataError(f"shard {p.path or 'in memory'} holds {p.dtype} rows {p.row_shape}, "
                                        f"the first one {first.dtype} {first.row_shape}; prepare the cache again")
        self.row_shape, self.dtype = tuple(first.row_shape), first.dtype
        self._starts = np.cumsum([0] + [len(p) for p in self.parts]).astype(np.int64)
        self._rows = None if rows is None else np.asarray(rows, dtype=np.int64)
        if self._rows is not None and len(self._rows) and (self._rows.min() < 0 or
                                                           self._rows.max() >= self._starts[-1]):
            raise IndexError("subset rows out of range")

    # -- numpy-like surface ------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self._starts[-1]) if self._rows is None else len(self._rows)

    @property
    def shape(self) -> Tuple[int, ...]:
        return (len(self),) + self.row_shape

    @property
    def ndim(self) -> int:
        return 1 + len(self.row_shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    @property
    def files(self) -> List[Optional[Path]]:
        """Paths of the shards (None for in-memory parts)."""
        return [p.path for p in self.parts]

    def __repr__(self) -> str:
        return f"ShardedArray(shape={self.shape}, dtype={self.dtype}, shards={len(self.parts)})"

    def __getitem__(self, key):
        rest: tuple = ()
        if isinstance(key, tuple):
            key, rest = (key[0], key[1:]) if key else (slice(None), ())
            if key is Ellipsis:
                return np.asarray(self)[(Ellipsis,) + rest]
        scalar = isinstance(key, (int, np.integer))
        rows = self._logical(key)
        out = self._gather(rows)
        if scalar:
            out = out[0]
            return out[rest] if rest else out
        return out[(slice(None),) + rest] if rest else out

    def __array__(self, dtype=None, copy=None):
        out = self._gather(np.arange(len(self), dtype=np.int64))
        return out if dtype is None else out.astype(dtype, copy=False)

    def __iter__(self):
        for start in range(0, len(self), 256):
            yield from self[start:start + 256]

    # -- lazy views --------------------------------------------------------------------------
    def subset(self, rows) -> "ShardedArray":
        """A lazy view of the logical ``rows`` (integer indices or a boolean mask); nothing is read."""
        return ShardedArray(self.parts, rows=self._physical(self._logical(rows)))

    @classmethod
    def concat(cls, arrays: Sequence[Union["ShardedArray", np.ndarray]]) -> "ShardedArray":
        """The arrays end to end as one lazy array (in-memory arrays become in-memory shards)."""
        parts: List[Part] = []
        rows: List[np.ndarray] = []
        mapped = False
        for a in arrays:
            start = sum(len(p) for p in parts)
            if isinstance(a, ShardedArray):
                parts.extend(a.parts)
                mapped = mapped or a._rows is not None
                rows.append(a._physical(np.arange(len(a), dtype=np.int64)) + start)
            else:
                parts.append(MemoryRows(a))
                rows.append(np.arange(len(a), dtype=np.int64) + start)
        return cls(parts, rows=np.concatenate(rows) if mapped else None)

    # -- internals ---------------------------------------------------------------------------
    def _logical(self, key) -> np.ndarray:
        n = len(self)
        if isinstance(key, slice):
            return np.arange(*key.indices(n), dtype=np.int64)
        if isinstance(key, (int, np.integer)):
            i = int(key)
            if not -n <= i < n:
                raise IndexError(f"index {i} is out of bounds for {n} rows")
            return np.array([i % n], dtype=np.int64)
        idx = np.asarray(key)
        if idx.dtype == bool:
            if idx.shape != (n,):
                raise IndexError(f"boolean index of shape {idx.shape} for {n} rows")
            return np.flatnonzero(idx).astype(np.int64)
        if idx.dtype.kind not in "iu":
            raise IndexError(f"only integers, slices and integer or boolean arrays index rows, got {idx.dtype}")
        idx = idx.astype(np.int64).reshape(-1)
        if len(idx) and (idx.min() < -n or idx.max() >= n):
            raise IndexError(f"index out of bounds for {n} rows")
        return np.where(idx < 0, idx + n, idx)

    def _physical(self, logical: np.ndarray) -> np.ndarray:
        return logical if self._rows is None else self._rows[logical]

    def _gather(self, logical: np.ndarray) -> np.ndarray:
        phys = self._physical(logical)
        out = np.empty((len(phys),) + self.row_shape, dtype=self.dtype)
        if not len(phys):
            return out
        part_of = np.searchsorted(self._starts, phys, side="right") - 1
        positions = np.arange(len(phys))
        for p in np.unique(part_of):
            m = part_of == p
            self.parts[int(p)].read_into(phys[m] - self._starts[p], out, positions[m])
        return out


def take_rows(array, rows) -> Any:
    """``array[rows]`` that stays lazy for a :class:`ShardedArray` (:meth:`ShardedArray.subset`)."""
    return array.subset(rows) if isinstance(array, ShardedArray) else array[rows]


class NpyWriter:
    """Write an ``.npy`` file of ``n_rows`` rows batch by batch, atomically (temporary file, then
    :func:`os.replace` onto ``path`` when all rows are written), never holding more than a batch.

    Examples
    --------
    >>> with NpyWriter("latents-00000.npy", 1000, (4, 16, 16), np.float32) as w:  # doctest: +SKIP
    ...     for batch in batches:
    ...         w.write(batch)
    """

    def __init__(self, path: Union[str, Path], n_rows: int, row_shape: Sequence[int], dtype) -> None:
        self.path = Path(path)
        self.n_rows, self.row_shape, self.dtype = int(n_rows), tuple(int(s) for s in row_shape), np.dtype(dtype)
        self.written = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        self._tmp = Path(tmp)
        self._fh = os.fdopen(fd, "wb")
        header = {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False,
                  "shape": (self.n_rows,) + self.row_shape}
        np.lib.format.write_array_header_1_0(self._fh, header)

    def write(self, batch: np.ndarray) -> None:
        batch = np.ascontiguousarray(batch, dtype=self.dtype)
        if batch.shape[1:] != self.row_shape or self.written + len(batch) > self.n_rows:
            raise GalaxySDDataError(f"batch {batch.shape} does not fit {self.path.name} "
                                    f"({self.written}/{self.n_rows} rows of {self.row_shape})")
        if batch.size:
            self._fh.write(memoryview(batch).cast("B"))
        self.written += len(batch)

    def close(self) -> Path:
        """Finish the file; raises if fewer rows than announced were written."""
        self._fh.close()
        if self.written != self.n_rows:
            self.abort()
            raise GalaxySDDataError(f"{self.path.name}: {self.written} of {self.n_rows} rows written")
        os.chmod(self._tmp, 0o666 & ~_UMASK)
        os.replace(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        self._fh.close()
        try:
            os.unlink(self._tmp)
        except FileNotFoundError:
            pass

    def __enter__(self) -> "NpyWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
