"""Resumable, checksum-verified download of the Galaxy Zoo 2 release.

Files (what :func:`galaxysd_core.data.gz2_release.read_gz2_release` reads):

* ``gz2_hart16.csv.gz``: Hart et al. (2016, MNRAS 461, 3663) Table 1, normal-depth sample with the
  new debiasing, as linked from https://data.galaxyzoo.org (served from ``gz2hart.s3.amazonaws.com``);
* ``gz2_filename_mapping.csv`` and ``images_gz2.zip``: "Galaxy Zoo 2: Images from Original Sample",
  Zenodo record 3565489 (https://doi.org/10.5281/zenodo.3565489), 243,434 JPEG images (about 3.4 GB).

A download goes to ``<name>.part`` first. When interrupted (network error, Ctrl-C), running it again
continues from the end of the ``.part`` file with an HTTP ``Range`` request (RFC 9110 Sec. 14); a
server that ignores ``Range`` (status 200) makes it restart from zero. A finished file is checked
against its published size and md5/sha256 before it is renamed to its final name; on mismatch it is
deleted and :class:`~galaxysd_core.errors.GalaxySDChecksumError` is raised.

All URLs can be redirected to a mirror with ``base_url`` (``--base-url`` or ``$GALAXYSD_GZ2_BASE_URL``):
every file is then fetched from ``<base_url>/<name>``.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import List, Optional, Sequence

from galaxysd_core import config
from galaxysd_core.errors import GalaxySDChecksumError, GalaxySDFileError, GalaxySDValueError

__all__ = ["RemoteFile", "GZ2_FILES", "download_file", "download_gz2", "file_by_name", "file_digest",
           "extract_zip", "BASE_URL_ENV"]

#: Environment variable naming a mirror that serves every GZ2 file under ``<url>/<name>``.
BASE_URL_ENV = "GALAXYSD_GZ2_BASE_URL"
#: Bytes read per chunk (1 MiB).
CHUNK_SIZE = 1 << 20


@dataclass(frozen=True)
class RemoteFile:
    """A published file with its checksums.

    Attributes
    ----------
    name : str
        File name on disk (and under a mirror's ``base_url``).
    default_url : str
        Published URL.
    md5, sha256 : str or None
        Published hex digests; ``None`` where none is published (then only the size, if known,
        and the server's ``Content-Length`` are checked).
    size : int or None
        Size in bytes, if known.
    description : str
        What the file is.
    """

    name: str
    default_url: str
    md5: Optional[str] = None
    sha256: Optional[str] = None
    size: Optional[int] = None
    description: str = ""

    def url(self, base_url: Optional[str] = None) -> str:
        """URL to fetch: ``<base_url>/<name>`` when a mirror is given, else the published URL."""
        base = base_url or os.environ.get(BASE_URL_ENV)
        return f"{base.rstrip('/')}/{self.name}" if base else self.default_url


ZENODO_RECORD = "https://zenodo.org/records/3565489/files"

#: The GZ2 release. The md5 values are meant to be the ones Zenodo lists for record 3565489 (each
#: file's "md5:" checksum on the record page / ``/api/records/3565489``). They were copied from
#: another project's downloader and have NOT been checked here against the live record (there was no
#: network access). If Zenodo's values differ, update them here; ``--no-verify`` skips the md5 check.
#: The Hart et al. (2016) table is published without a checksum, so the only check for it is that
#: the length the server announces matches what arrived.
GZ2_FILES: Sequence[RemoteFile] = (
    RemoteFile("gz2_filename_mapping.csv", f"{ZENODO_RECORD}/gz2_filename_mapping.csv?download=1",
               md5="7e28465e6dfbf96c0d828c595a5bbd80",
               description="dr7objid -> image asset_id (Zenodo 3565489)"),
    RemoteFile("gz2_hart16.csv.gz", "https://gz2hart.s3.amazonaws.com/gz2_hart16.csv.gz",
               md5=None,  # no checksum published on data.galaxyzoo.org
               description="Hart et al. 2016 GZ2 vote fractions, normal-depth sample (data.galaxyzoo.org)"),
    RemoteFile("images_gz2.zip", f"{ZENODO_RECORD}/images_gz2.zip?download=1",
               md5="bc647032d31e50c798770cf4430525c7",
               description="243,434 GZ2 JPEG images, original sample (Zenodo 3565489)"),
)


def file_by_name(name: str) -> RemoteFile:
    """The :data:`GZ2_FILES` entry called ``name``."""
    for f in GZ2_FILES:
        if f.name == name:
            return f
    raise GalaxySDValueError(f"unknown GZ2 file {name!r}; choose from {[f.name for f in GZ2_FILES]}")


def file_digest(path: os.PathLike | str, algorithm: str = "md5") -> str:
    """Hex digest of a file (read in 1 MiB chunks)."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK_SIZE), b""):
            h.update(block)
    return h.hexdigest()


def _verify(path: Path, url: str, md5: Optional[str], sha256: Optional[str], size: Optional[int]) -> None:
    """Raise GalaxySDChecksumError (after deleting ``path``) when size or digests differ."""
    problems = []
    actual_size = path.stat().st_size
    if size is not None and actual_size != size:
        problems.append(f"size {actual_size} bytes instead of {size}")
    else:
        for algo, expected in (("md5", md5), ("sha256", sha256)):
            if expected:
                got = file_digest(path, algo)
                if got.lower() != expected.lower():
                    problems.append(f"{algo} {got} instead of {expected}")
    if problems:
        path.unlink(missing_ok=True)
        raise GalaxySDChecksumError(
            f"download of {url} is corrupt ({'; '.join(problems)}); the file was deleted, run the "
            f"download again (use --base-url for another mirror if it keeps failing)")


def download_file(url: str, dest: os.PathLike | str, *, md5: Optional[str] = None,
                  sha256: Optional[str] = None, size: Optional[int] = None, show_progress: bool = True,
                  retries: int = 3, timeout: float = 60.0, chunk_size: int = CHUNK_SIZE,
                  session=None) -> Path:
    """Download ``url`` to ``dest``, resuming a previous ``dest.part`` and verifying the result.

    Parameters
    ----------
    url : str
        HTTP(S) URL.
    dest : path-like
        Final file. An existing file that passes verification is not downloaded again.
    md5, sha256 : str, optional
        Expected hex digests.
    size : int, optional
        Expected size in bytes.
    show_progress : bool
        tqdm progress bar (bytes).
    retries : int
        Further attempts after a network error, each resuming where the last stopped.
    timeout : float
        Connect/read timeout in seconds.
    chunk_size : int
        Bytes per read.
    session : requests.Session, optional
        Session to use (tests, proxies).

    Returns
    -------
    pathlib.Path
        ``dest``.

    Raises
    ------
    GalaxySDChecksumError
        The finished file has the wrong size or digest (it is deleted).
    GalaxySDFileError
        The server refused or the network failed ``retries + 1`` times (the ``.part`` file is
        kept, so the next call resumes).
    """
    import requests
    from tqdm.auto import tqdm

    dest = Path(dest).expanduser()
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        try:
            _verify(dest, url, md5, sha256, size)
            return dest
        except GalaxySDChecksumError:
            pass  # a bad complete file was deleted: download it again
    part = dest.with_name(dest.name + ".part")
    sess = session or requests.Session()
    last_error: Optional[Exception] = None
    for attempt in range(retries + 1):
        offset = part.stat().st_size if part.exists() else 0
        if size is not None and offset >= size:
            break  # .part already complete
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        try:
            with sess.get(url, headers=headers, stream=True, timeout=timeout) as resp:
                if resp.status_code == 416 and offset:
                    break  # nothing left to fetch: the .part file is complete
                if resp.status_code >= 400:
                    raise GalaxySDFileError(f"server answered {resp.status_code} {resp.reason} for {url}; "
                                            f"check the URL or use --base-url for a mirror")
                if offset and resp.status_code == 206:
                    crange = resp.headers.get("Content-Range", "")
                    if not crange.startswith(f"bytes {offset}-"):
                        raise GalaxySDFileError(f"server sent range {crange!r} for a request from byte "
                                                f"{offset} of {url}")
                    mode = "ab"
                else:
                    offset, mode = 0, "wb"  # range ignored (200): start over
                length = resp.headers.get("Content-Length")
                total = offset + int(length) if length and length.isdigit() else size
                received = 0
                with open(part, mode) as fh, tqdm(total=total, initial=offset, unit="B", unit_scale=True,
                                                  unit_divisor=1024, desc=dest.name,
                                                  disable=not show_progress) as bar:
                    for block in resp.iter_content(chunk_size=chunk_size):
                        if block:
                            fh.write(block)
                            received += len(block)
                            bar.update(len(block))
                if length and length.isdigit() and received < int(length):
                    raise requests.ConnectionError(f"connection closed after {received} of {length} bytes")
            last_error = None
            break
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
            last_error = exc
            if attempt < retries:
                time.sleep(min(2.0 ** attempt * 0.1, 5.0))
        except requests.RequestException as exc:
            raise GalaxySDFileError(f"cannot download {url}: {exc}") from exc
    if last_error is not None:
        have = part.stat().st_size if part.exists() else 0
        raise GalaxySDFileError(f"download of {url} failed after {retries + 1} attempts ({last_error}); "
                                f"{have} bytes kept in {part}, run the command again to resume")
    if not part.exists():
        raise GalaxySDFileError(f"download of {url} produced no data")
    _verify(part, url, md5, sha256, size)
    os.replace(part, dest)
    return dest


def extract_zip(archive: os.PathLike | str, out_dir: os.PathLike | str) -> Path:
    """Extract a zip safely: no paths outside ``out_dir``, no macOS metadata (``__MACOSX``, ``._*``).

    Returns the folder written to. A marker file ``.extracted`` makes a repeated call a no-op.
    """
    archive, out = Path(archive), Path(out_dir)
    marker = out / ".extracted"
    if marker.exists():
        return out
    out.mkdir(parents=True, exist_ok=True)
    root = out.resolve()
    try:
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                p = PurePosixPath(info.filename.replace("\\", "/"))
                if "__MACOSX" in p.parts or p.name.startswith("._") or p.name == ".DS_Store":
                    continue
                target = (root / p).resolve()
                if not target.is_relative_to(root):
                    raise GalaxySDFileError(f"{archive} contains an unsafe path {info.filename!r}; not extracted")
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst, CHUNK_SIZE)
    except zipfile.BadZipFile as exc:
        raise GalaxySDFileError(f"{archive} is not a valid zip file ({exc}); delete it and download again") from exc
    marker.write_text("ok\n")
    return out


def download_gz2(out_dir: Optional[os.PathLike | str] = None, *, files: Sequence[RemoteFile] = GZ2_FILES,
                 base_url: Optional[str] = None, show_progress: bool = True, extract: bool = False,
                 verify: bool = True, **kwargs) -> List[Path]:
    """Download the GZ2 release files into ``out_dir`` (default ``$GALAXYSD_DATA_DIR``).

    Parameters
    ----------
    out_dir : path-like, optional
        Target folder; it then has the layout :func:`galaxysd_core.data.gz2_release.read_gz2_release` reads.
    files : sequence of RemoteFile
        Which files (default all of :data:`GZ2_FILES`).
    base_url : str, optional
        Mirror serving every file under ``<base_url>/<name>``.
    show_progress : bool
        Progress bars.
    extract : bool
        Unzip ``images_gz2.zip`` into ``out_dir/images_gz2``.
    verify : bool
        Check published checksums (False: check sizes only).
    **kwargs
        Passed to :func:`download_file` (``retries``, ``timeout``, ``session``).

    Returns
    -------
    list of pathlib.Path
        The downloaded (and, with ``extract``, extracted) paths.
    """
    out = Path(out_dir).expanduser() if out_dir is not None else config.data_dir()
    if out is None:
        raise GalaxySDValueError(f"no download folder: pass --out or set ${config.DATA_DIR_ENV}")
    paths: List[Path] = []
    for f in files:
        p = download_file(f.url(base_url), out / f.name, md5=f.md5 if verify else None,
                          sha256=f.sha256 if verify else None, size=f.size, show_progress=show_progress,
                          **kwargs)
        paths.append(p)
        if extract and p.suffix == ".zip":
            paths.append(extract_zip(p, out / "images_gz2"))
    return paths
