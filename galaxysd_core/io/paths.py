"""Containment of paths: whether a path stays inside a folder once symlinks and ``..`` are resolved.

The checks behind :mod:`galaxysd_core.studio.path_policy` (what visitors may type) and behind every
reader of image paths written in a file (candidate catalogs): ``Path.resolve()`` follows every
symbolic link and collapses ``..``, then ``Path.is_relative_to`` tells whether the result still lies
in the root. They live in ``io/`` so that every later stage (``science/`` reads catalogs) can use them.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Union

PathLike = Union[str, os.PathLike]


def resolved(path: PathLike) -> Path:
    """``path`` with ``~`` expanded, symbolic links followed and ``..`` collapsed (need not exist)."""
    return Path(path).expanduser().resolve(strict=False)


def is_inside(path: PathLike, root: PathLike) -> bool:
    """True when ``path``, fully resolved (symlinks followed), lies inside ``root`` (also resolved)."""
    return resolved(path).is_relative_to(resolved(root))


def resolve_inside(relative: str, root: PathLike) -> Optional[Path]:
    """``root / relative`` resolved, or None when it would leave ``root``.

    For image paths written in catalogs: absolute paths, ``~``, ``..`` that climbs out and symbolic
    links pointing out of ``root`` all give None (the caller reports the image as refused and never
    opens it). ``..`` that stays inside (``a/../b.png``) is fine.
    """
    rel = str(relative or "").strip()
    if not rel or "\x00" in rel or Path(rel).is_absolute() or rel.startswith("~"):
        return None
    target = resolved(Path(root) / rel)
    return target if target.is_relative_to(resolved(root)) else None
