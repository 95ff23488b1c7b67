"""Which server paths a visitor may reach: an allow-list of operator-configured roots.

A public deployment (GalaxySD's own demo is a public Streamlit app) must never let a visitor read
``/proc/self/environ`` or ``/etc/passwd`` by typing a path or by uploading a catalog whose
``image_path`` points there. Every path a visitor types or uploads goes through
:class:`PathPolicy`:

* typed paths are refused unless the operator enables them (``GALAXYSD_ALLOW_SERVER_PATHS=1``);
* a path is accepted only when its fully resolved form (symlinks followed, ``..`` collapsed) lies
  inside one of the roots (``Path.resolve().is_relative_to``), so a symlink out of a root is refused;
* image paths of a catalog must stay inside the catalog's image root (no absolute paths, no
  climbing out with ``..``);
* messages name the refused path as the visitor typed it and the kind of root, never file content.

The containment checks themselves (:func:`is_inside`, :func:`resolve_inside`) live in
:mod:`galaxysd_core.io.paths`, so that catalog readers in ``science/`` use the same ones.

The roots come from configuration only (:mod:`galaxysd_core.config`): the real-data folder
(``GALAXYSD_DATA_DIR``), the catalogs folder (``GALAXYSD_CATALOGS_DIR``), the model folder
(``GALAXYSD_MODEL_DIR``) and the shipped ``assets/``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict

from galaxysd_core import config
from galaxysd_core.errors import GalaxySDValueError
from galaxysd_core.io.paths import is_inside, resolve_inside, resolved as _resolved

__all__ = ["PathPolicy", "is_inside", "resolve_inside", "MAX_CATALOG_UPLOAD_BYTES", "MAX_PATH_CHARS"]

#: Largest catalog a visitor may upload (bytes).
MAX_CATALOG_UPLOAD_BYTES = 20 * 1024 * 1024
#: Longest path a visitor may type (characters).
MAX_PATH_CHARS = 1024


@dataclass(frozen=True)
class PathPolicy:
    """Allow-list of server folders visitors may reach.

    Parameters
    ----------
    roots : dict of str -> Path
        ``label -> folder``, e.g. ``{"real-data folder": Path("/data/gz2")}``. Labels appear in
        messages; folders never do.
    allow_typed : bool
        Whether visitors may type server paths at all (uploads are always possible).
    """

    roots: Dict[str, Path] = field(default_factory=dict)
    allow_typed: bool = False

    @classmethod
    def from_config(cls) -> "PathPolicy":
        """The operator's policy from the environment (see the module docstring)."""
        roots: Dict[str, Path] = {"shipped assets folder": config.ASSETS_DIR}
        if (data := config.data_dir()) is not None:
            roots["real-data folder"] = data
        if (cats := config.catalogs_dir()) is not None:
            roots["catalogs folder"] = cats
        if os.environ.get(config.MODEL_DIR_ENV):
            roots["model folder"] = config.model_dir()
        return cls(roots=roots, allow_typed=config.allow_server_paths())

    def describe(self) -> str:
        """Human-readable list of the root kinds (no paths)."""
        return ", ".join(self.roots) or "none"

    def check_typed(self, text: str, *, what: str = "path", kind: str = "file") -> Path:
        """Resolve a path a visitor typed, refusing anything outside the roots.

        Parameters
        ----------
        text : str
            The path as typed (``~`` is expanded; relative paths are taken relative to each root in
            turn).
        what : str
            What the path is for, used in messages ("catalog file", "image folder").
        kind : {"file", "dir"}
            What must exist there.

        Returns
        -------
        pathlib.Path
            The resolved path, inside a root.

        Raises
        ------
        GalaxySDValueError
            When typing paths is disabled, the path is outside every root (symlinks included), or
            nothing of the right kind is there. The message never contains file content.
        """
        text = str(text or "").strip()
        if not self.allow_typed:
            raise GalaxySDValueError(
                f"typing server paths is disabled on this server; upload the {what} instead (operators "
                f"enable server paths with {config.ALLOW_SERVER_PATHS_ENV}=1)")
        if not text:
            raise GalaxySDValueError(f"give a {what}")
        if len(text) > MAX_PATH_CHARS or "\x00" in text:
            raise GalaxySDValueError(f"the {what} is not a usable path")
        given = Path(text).expanduser()
        candidates = [given] if given.is_absolute() else [root / given for root in self.roots.values()]
        escapes = False
        for cand in candidates:
            resolved = _resolved(cand)
            if not any(resolved.is_relative_to(_resolved(r)) for r in self.roots.values()):
                escapes = True  # absolute elsewhere, '..' out of a root, or a link pointing out
                continue
            if (resolved.is_file() if kind == "file" else resolved.is_dir()):
                return resolved
        if not escapes:
            raise GalaxySDValueError(f"no {what} at {text!r} ({'no such file' if kind == 'file' else 'no such folder'} "
                                     f"inside the allowed folders: {self.describe()})")
        raise GalaxySDValueError(
            f"{text!r} is outside the folders this server allows ({self.describe()}); paths that leave "
            f"them (absolute, '..' or a symbolic link pointing out) are refused")

    def check_upload_size(self, n_bytes: int, *, what: str = "catalog") -> None:
        """Refuse an uploaded file over :data:`MAX_CATALOG_UPLOAD_BYTES`."""
        if n_bytes > MAX_CATALOG_UPLOAD_BYTES:
            raise GalaxySDValueError(f"the uploaded {what} has {n_bytes / 2**20:.1f} MiB; at most "
                                     f"{MAX_CATALOG_UPLOAD_BYTES / 2**20:.0f} MiB are accepted")
