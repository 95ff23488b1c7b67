"""``galaxysd`` command line: ``galaxysd data ...``, ``galaxysd generate``, ``galaxysd evaluate``,
``galaxysd classify``, ``galaxysd detg scan``.

Each sub-command lives in its own module of this package (``cli/data.py``, ``cli/generate.py``,
``cli/evaluate.py``, ``cli/classify.py``) exposing ``add_parser(subparsers)``;
this module only dispatches. Errors of :class:`GalaxySDError` print their message and exit 2.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import List, Optional

from galaxysd_core.errors import GalaxySDError

#: sub-command name -> module implementing it
SUBCOMMANDS = {"data": "data", "generate": "generate", "evaluate": "evaluate", "classify": "classify",
               "detg": "detg"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="galaxysd", description="GalaxySD Studio command line")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, module in SUBCOMMANDS.items():
        importlib.import_module(f"galaxysd_core.cli.{module}").add_parser(sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except GalaxySDError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
