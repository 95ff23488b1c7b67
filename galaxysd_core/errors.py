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


class ImageRejected(GalaxySDFileError):
    """An image file cannot be used for training (unreadable, too large, wrong mode); the message is
    the skip reason written to the preparation report."""


class ServerBusyError(GalaxySDError):
    """No generation slot is free: the queue is full, the expected wait is too long, or no slot became
    free within the queue timeout (the app's request limits). ``retry_after_s``: when to try again
    (seconds, estimated by the gate; None when unknown)."""

    retry_after_s = None


class StoreError(GalaxySDError):
    """The verdict/quiz database could not be reached or refused an operation (the message names the URL)."""


class StoreFullError(StoreError):
    """The store's disk (or its configured size limit) is full: the write was not saved, earlier rows are kept."""
