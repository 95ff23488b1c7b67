"""Request limits of a shared server and the gate that queues generations across browser sessions.

One server process shares one pipeline between every browser session. :func:`check_request`
refuses requests too large for it (images per request, images x denoising steps) and
:data:`GATE`, a bounded semaphore with a queue timeout, lets at most :data:`MAX_CONCURRENT`
generations run at the same time while the others wait. The limits can be changed with the
environment variables named below.
"""
from __future__ import annotations

import contextlib
import os
import threading
from typing import Iterator, Optional

import numpy as np

from galaxysd_core.errors import GalaxySDValueError, ServerBusyError

#: Most images per request (one press of Generate or one sweep); ``$GALAXYSD_MAX_REQUEST_IMAGES``.
MAX_REQUEST_IMAGES = int(os.environ.get("GALAXYSD_MAX_REQUEST_IMAGES", 16))
#: Most images x denoising steps per request (16 images x 50 steps); ``$GALAXYSD_MAX_IMAGE_STEPS``.
MAX_IMAGE_STEPS = int(os.environ.get("GALAXYSD_MAX_IMAGE_STEPS", 16 * 50))
#: Most steps offered by the steps slider.
MAX_UI_STEPS = 100
#: Largest seed the seed box accepts (A1111 seeds are 32-bit).
MAX_UI_SEED = 2**32 - 1
#: Generations running at the same time in one server process (others wait for a slot);
#: ``$GALAXYSD_MAX_CONCURRENT``.
MAX_CONCURRENT = max(1, int(os.environ.get("GALAXYSD_MAX_CONCURRENT", 1)))
#: Seconds a request waits for a free slot before the page says the server is busy;
#: ``$GALAXYSD_QUEUE_TIMEOUT_S``.
QUEUE_TIMEOUT_S = float(os.environ.get("GALAXYSD_QUEUE_TIMEOUT_S", 300))
#: Images kept in a browser session's gallery (oldest dropped first).
GALLERY_LIMIT = 48


def check_request(n_images: int, steps: int, *, max_images: Optional[int] = None,
                  max_image_steps: Optional[int] = None) -> None:
    """Refuse requests too large for a shared CPU server.

    Parameters
    ----------
    n_images : int
        Images of the request.
    steps : int
        Denoising steps per image.
    max_images, max_image_steps : int, optional
        Limits (default :data:`MAX_REQUEST_IMAGES`, :data:`MAX_IMAGE_STEPS`).

    Raises
    ------
    GalaxySDValueError
        When ``n_images`` exceeds :data:`MAX_REQUEST_IMAGES` or ``n_images * steps`` exceeds
        :data:`MAX_IMAGE_STEPS`; the message says what to lower.
    """
    max_images = MAX_REQUEST_IMAGES if max_images is None else max_images
    max_image_steps = MAX_IMAGE_STEPS if max_image_steps is None else max_image_steps
    if not isinstance(n_images, (int, np.integer)) or n_images < 1:
        raise GalaxySDValueError(f"number of images must be a positive integer, got {n_images!r}")
    if not isinstance(steps, (int, np.integer)) or steps < 1:
        raise GalaxySDValueError(f"steps must be a positive integer, got {steps!r}")
    if n_images > max_images:
        raise GalaxySDValueError(f"{n_images} images requested; at most {max_images} per request on this server. "
                                 f"Lower the number of images (or of sweep values x seeds).")
    if n_images * steps > max_image_steps:
        raise GalaxySDValueError(
            f"{n_images} images x {steps} steps = {n_images * steps} image-steps; at most {max_image_steps} "
            f"per request on this server (e.g. {max_images} x {max_image_steps // max_images}). "
            f"Lower the number of images or the steps.")


class GenerationGate:
    """Bounded semaphore serialising generations across browser sessions of one server.

    Parameters
    ----------
    slots : int
        Generations allowed at the same time.
    """

    def __init__(self, slots: int = 1) -> None:
        self.slots = int(slots)
        self._sem = threading.BoundedSemaphore(self.slots)
        self._lock = threading.Lock()
        self._waiting = 0
        self._running = 0

    @property
    def waiting(self) -> int:
        """Requests waiting for a slot right now."""
        return self._waiting

    @property
    def running(self) -> int:
        """Generations running right now."""
        return self._running

    @contextlib.contextmanager
    def slot(self, timeout: Optional[float] = None) -> Iterator[None]:
        """Hold a generation slot for the ``with`` block.

        Raises
        ------
        ServerBusyError
            When no slot is free within ``timeout`` seconds (default :data:`QUEUE_TIMEOUT_S`).
        """
        timeout = QUEUE_TIMEOUT_S if timeout is None else timeout
        with self._lock:
            self._waiting += 1
        try:
            ok = self._sem.acquire(timeout=max(0.0, float(timeout)))
        finally:
            with self._lock:
                self._waiting -= 1
        if not ok:
            raise ServerBusyError(f"the server is busy with other generations (waited {timeout:.0f} s); "
                                  f"try again in a moment or ask for fewer images/steps")
        with self._lock:
            self._running += 1
        try:
            yield
        finally:
            with self._lock:
                self._running -= 1
            self._sem.release()


#: The process-wide gate used by the pages.
GATE = GenerationGate(MAX_CONCURRENT)
