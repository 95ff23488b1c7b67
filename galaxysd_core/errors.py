"""Error hierarchy of GalaxySD Studio (after astropy / GalSim).

Every error a user can cause derives from :class:`GalaxySDError`, so callers (the app, the CLI)
can catch one type and show the message, which always says how to fix the problem.
"""
from __future__ import annotations


class GalaxySDError(Exception):
    """Base class of every error raised on purpose by :mod:`galaxysd_core`."""


class GalaxySDValueError(GalaxySDError, ValueError):
    """A value given by the user (prompt, weight, size, column, setting) is not acceptable."""


class GalaxySDFileError(GalaxySDError, OSError):
    """A file or folder is missing, unreadable, corrupt or not of the expected kind."""


class GalaxySDDataError(GalaxySDValueError):
    """A table or image set does not have the content the operation needs (missing column, NaN votes)."""


class GalaxySDChecksumError(GalaxySDFileError):
    """A downloaded file does not match its published checksum."""
