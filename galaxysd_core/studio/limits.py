"""Request limits of a shared server and the gate that queues generations across browser sessions.

One server process shares one pipeline between every browser session. :func:`check_request`
refuses requests too large for it (images per request, images x denoising steps) and
:data:`GATE`, a bounded semaphore with a short queue, lets at most :data:`MAX_CONCURRENT`
generations run at the same time while a few others wait. A request is refused with
:class:`~galaxysd_core.errors.ServerBusyError` instead of waiting long: at once when
:data:`MAX_QUEUE` requests already wait or the expected wait is longer than
:data:`QUEUE_TIMEOUT_S`, else after waiting :data:`QUEUE_TIMEOUT_S` seconds. The message says how
many generations are ahead and when to try again, estimated from the measured duration of recent
generations (seconds per image-step) and the work running and queued. The limits can be changed
with the environment variables named below.
"""
from __future__ import annotations

import contextlib
import itertools
import math
import os
import threading
import time
from typing import Callable, Dict, Iterator, Optional

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
#: Longest wait for a free slot, in seconds, before the page says the server is busy (and when to
#: try again); ``$GALAXYSD_QUEUE_TIMEOUT_S``. Short on purpose: a page that waits minutes looks hung.
QUEUE_TIMEOUT_S = float(os.environ.get("GALAXYSD_QUEUE_TIMEOUT_S", 30))
#: Requests that may wait for a slot at the same time; one more is refused at once with the retry
#: time (0: never wait, refuse whenever every slot is taken); ``$GALAXYSD_MAX_QUEUE``.
MAX_QUEUE = max(0, int(os.environ.get("GALAXYSD_MAX_QUEUE", 8)))
#: Seconds one generation is assumed to take until the server has timed one (retry estimates only).
FIRST_ESTIMATE_S = 10.0
#: Weight of the newest generation in the running mean of generation times.
EMA_WEIGHT = 0.3
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
    """Bounded semaphore serialising generations across browser sessions of one server, with a
    short queue and an estimate of when a refused request should try again.

    Parameters
    ----------
    slots : int
        Generations allowed at the same time.
    max_waiting : int, optional
        Requests allowed to wait for a slot at once; more are refused without waiting
        (None: no cap; :data:`GATE` uses :data:`MAX_QUEUE`).
    clock : callable, optional
        Seconds for the estimates (default ``time.monotonic``; tests pass a fake clock).
    """

    def __init__(self, slots: int = 1, max_waiting: Optional[int] = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.slots = int(slots)
        self._clock = clock
        self.max_waiting = None if max_waiting is None else max(0, int(max_waiting))
        self._sem = threading.BoundedSemaphore(self.slots)
        self._lock = threading.Lock()
        self._tokens = itertools.count()
        self._queued: Dict[int, Optional[float]] = {}  # waiting request -> its work (image-steps) or None
        self._active: Dict[int, tuple] = {}  # running request -> (start time, expected seconds)
        self._sec_per_work: Optional[float] = None  # running mean, seconds per image-step
        self._sec_per_run: Optional[float] = None  # running mean, seconds per generation

    @property
    def waiting(self) -> int:
        """Requests waiting for a slot right now."""
        return len(self._queued)

    @property
    def running(self) -> int:
        """Generations running right now."""
        return len(self._active)

    def _expected(self, work: Optional[float]) -> float:
        """Expected seconds of one generation of ``work`` image-steps (caller holds the lock)."""
        if work and self._sec_per_work is not None:
            return work * self._sec_per_work
        return self._sec_per_run if self._sec_per_run is not None else FIRST_ESTIMATE_S

    def _wait_estimate(self, exclude: Optional[int] = None) -> float:
        """Seconds until a slot frees for a request behind everything running and queued (lock held)."""
        now = self._clock()
        left = sum(max(expected - (now - start), 0.1 * expected) for start, expected in self._active.values())
        queued = sum(self._expected(w) for t, w in self._queued.items() if t != exclude)
        return (left + queued) / self.slots

    def estimate_wait(self) -> float:
        """Seconds a new request would wait for a slot now (0 when one is free), from recent generation times."""
        with self._lock:
            if len(self._active) < self.slots and not self._queued:
                return 0.0
            return self._wait_estimate()

    def _busy(self, token: int, waited: float, reason: str) -> ServerBusyError:
        """The refusal, with when to try again (caller holds the lock; ``token`` is not counted)."""
        running = len(self._active)
        queued = sum(t != token for t in self._queued)
        retry = max(1, int(math.ceil(self._wait_estimate(exclude=token))))
        ahead = f"{running + queued} other generation{'s' if running + queued != 1 else ''}"
        exc = ServerBusyError(
            f"the server is busy with {ahead} ({running} running, {queued} waiting); {reason}try again in about "
            f"{retry} s, or ask for fewer images/steps" + (f" (waited {waited:.0f} s)" if waited >= 1 else ""))
        exc.retry_after_s = float(retry)
        return exc

    @contextlib.contextmanager
    def slot(self, timeout: Optional[float] = None, work: Optional[float] = None) -> Iterator[None]:
        """Hold a generation slot for the ``with`` block.

        Parameters
        ----------
        timeout : float, optional
            Longest wait for a slot (default :data:`QUEUE_TIMEOUT_S`).
        work : float, optional
            Size of the generation in image-steps (images x steps): sharpens the retry estimates.

        Raises
        ------
        ServerBusyError
            At once when :attr:`max_waiting` requests already wait or the expected wait is longer
            than ``timeout``, else when no slot is free within ``timeout`` seconds. Its message
            and ``retry_after_s`` say when to try again.
        """
        timeout = max(0.0, float(QUEUE_TIMEOUT_S if timeout is None else timeout))
        token = next(self._tokens)
        t0 = self._clock()
        with self._lock:
            ok = self._sem.acquire(blocking=False)
            if not ok:
                if self.max_waiting is not None and len(self._queued) >= self.max_waiting:
                    raise self._busy(token, 0.0, "this server does not queue requests; " if not self.max_waiting
                                     else f"{len(self._queued)} requests already wait (the queue is full); ")
                measured = self._sec_per_work is not None or self._sec_per_run is not None
                if measured and timeout > 0 and self._wait_estimate() > timeout:
                    raise self._busy(token, 0.0, f"the expected wait is longer than {timeout:.0f} s; ")
                self._queued[token] = work
        if not ok:
            try:
                ok = self._sem.acquire(timeout=timeout) if timeout > 0 else False
            finally:
                with self._lock:
                    if not ok:
                        exc = self._busy(token, self._clock() - t0, "")
                    self._queued.pop(token, None)
            if not ok:
                raise exc
        start = self._clock()
        with self._lock:
            self._active[token] = (start, self._expected(work))
        finished = False
        try:
            yield
            finished = True
        finally:
            seconds = self._clock() - start
            with self._lock:
                self._active.pop(token, None)
                if finished:  # a failed generation says nothing about how long one takes
                    self._sec_per_run = _ema(self._sec_per_run, seconds)
                    if work:
                        self._sec_per_work = _ema(self._sec_per_work, seconds / float(work))
            self._sem.release()


def _ema(old: Optional[float], new: float) -> float:
    return new if old is None else (1 - EMA_WEIGHT) * old + EMA_WEIGHT * new


#: The process-wide gate used by the pages.
GATE = GenerationGate(MAX_CONCURRENT, max_waiting=MAX_QUEUE)
