"""Browser-session helpers: a random session id (stored with verdicts and quiz answers) and a stopwatch."""
from __future__ import annotations

import secrets
import time


def new_session_id() -> str:
    """Random id of a browser session (16 hex digits)."""
    return secrets.token_hex(8)


class Stopwatch:
    """Wall time of a ``with`` block, in seconds: ``with Stopwatch() as t: ...; t.seconds``."""

    def __enter__(self) -> "Stopwatch":
        self.t0 = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self.t0
