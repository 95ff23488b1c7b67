"""What the science scripts in ``train/`` share: their common arguments, config overrides, the
judging classifier and repository-relative paths for provenance.

``train/experiment_augmentation.py`` and ``train/search_detg.py`` both generate synthetic galaxies
with a GalaxySD model from real prepared caches; :func:`science_parser` gives them the same
``--model``, ``--caches``, ``--synthetic-cache``, ``--threads`` and ``--quick`` options.
:func:`with_overrides` applies the options a user gave to a configuration dataclass, and
:func:`repo_relative` / :func:`script_command` keep machine-specific roots out of saved results.
"""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any, Optional, Sequence, TypeVar, Union

from galaxysd_core import config as _config
from galaxysd_core.errors import GalaxySDValueError

__all__ = ["DEFAULT_CACHES", "SCAN_CACHES", "DEFAULT_SYNTHETIC_CACHE", "science_parser", "with_overrides", "load_judge",
           "repo_relative", "script_command"]

#: Prepared caches of the real galaxies the experiments train and test on by default (the GZ2 votes).
DEFAULT_CACHES = (_config.PROJECT_ROOT / "cache" / "gz2_cutouts_128",)
#: Every real galaxy available, scanned for the D-ETG catalog.
SCAN_CACHES = tuple(_config.PROJECT_ROOT / "cache" / n for n in ("gz2_cutouts_128", "gz1_sdss_128", "gz2_examples_128"))
#: Folder of the synthetic-image cache (git-ignored).
DEFAULT_SYNTHETIC_CACHE = _config.PROJECT_ROOT / "cache" / "synthetic"

C = TypeVar("C")


def science_parser(doc: str, caches_help: str = "prepared caches of the real galaxies") -> argparse.ArgumentParser:
    """Argument parser of a science script with the options every one of them has.

    Parameters
    ----------
    doc : str
        The script's module docstring (its first line is the description).
    caches_help : str
        Help text of ``--caches``.

    Returns
    -------
    argparse.ArgumentParser
        With ``--model``, ``--caches``, ``--synthetic-cache``, ``--threads`` and ``--quick``.
    """
    p = argparse.ArgumentParser(description=doc.strip().split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None,
                   help="GalaxySD model folder (default: $GALAXYSD_MODEL_DIR or assets/galaxysd-mini); "
                        "'random' = untrained GalaxySD-mini (smoke test)")
    p.add_argument("--caches", nargs="+", default=[str(c) for c in DEFAULT_CACHES], help=caches_help)
    p.add_argument("--synthetic-cache", default=str(DEFAULT_SYNTHETIC_CACHE),
                   help="folder caching generated images (git-ignored)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1: the budget is one core)")
    p.add_argument("--quick", action="store_true", help="tiny run to check the set-up")
    return p


def with_overrides(config: C, nested: Optional[str] = None, **overrides: Any) -> C:
    """A copy of the dataclass ``config`` with the given fields replaced; None values are ignored.

    Parameters
    ----------
    config : dataclass instance
        E.g. an :class:`~galaxysd_core.science.augmentation.ExperimentConfig`.
    nested : str, optional
        Name of a dataclass field of ``config`` (e.g. ``"train"``) whose own fields may be
        overridden too; a name that is a field of both goes to ``config``.
    **overrides
        Field name -> value (None: keep the configured value).

    Raises
    ------
    GalaxySDValueError
        A name that is a field of neither; or an invalid value (the dataclasses validate
        themselves).
    """
    own = {f.name for f in dataclasses.fields(config)}
    inner = getattr(config, nested) if nested else None
    inner_names = {f.name for f in dataclasses.fields(inner)} if inner is not None else set()
    top, sub = {}, {}
    for name, value in overrides.items():
        if value is None:
            continue
        if name in own:
            top[name] = value
        elif name in inner_names:
            sub[name] = value
        else:
            raise GalaxySDValueError(f"{type(config).__name__} has no setting {name!r}")
    if sub:
        top[nested] = dataclasses.replace(inner, **sub)
    return dataclasses.replace(config, **top)


def load_judge(classifier_dir: Union[str, Path], required: bool = True):
    """The shipped morphology classifier that judges synthetic images (and scores early types).

    Returns None when ``required`` is False and ``classifier_dir`` is not a folder.
    """
    if not required and not Path(classifier_dir).is_dir():
        return None
    from galaxysd_core.models.classifier import MorphologyClassifier

    return MorphologyClassifier.from_pretrained(classifier_dir)


def repo_relative(path: Union[str, Path], root: Union[str, Path] = _config.PROJECT_ROOT) -> str:
    """``path`` relative to the repository when inside it (results never record machine-specific
    roots), else unchanged."""
    try:
        return str(Path(path).resolve().relative_to(Path(root).resolve()))
    except (ValueError, OSError):
        return str(path)


def script_command(argv: Sequence[str]) -> str:
    """The command line ``python <argv...>`` with paths inside the repository made relative."""
    return "python " + " ".join(repo_relative(a) for a in argv)
