"""The generation gate's short queue (galaxysd_core.studio.limits): a bounded wait, a capped queue,
and a busy message that says how many generations are ahead and when to try again (issue 23)."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time

import pytest

from galaxysd_core.errors import ServerBusyError
from galaxysd_core.studio import limits

RETRY = re.compile(r"try again in about (\d+) s")


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _measure(gate: limits.GenerationGate, clock: FakeClock, seconds: float, work: float = 100) -> None:
    """One finished generation of ``work`` image-steps that took ``seconds`` on the fake clock."""
    with gate.slot(timeout=1, work=work):
        clock.t += seconds


def _wait_in_thread(gate, timeout: float, work=None):
    """A request waiting for a slot in a thread (returned once it waits or was refused): (thread, outcome)."""
    outcome, poll = [], threading.Event()

    def run():
        try:
            with gate.slot(timeout=timeout, work=work):
                outcome.append("ran")
        except ServerBusyError as exc:
            outcome.append(exc)

    t = threading.Thread(target=run)
    t.start()
    deadline = time.monotonic() + 10
    while gate.waiting == 0 and not outcome and time.monotonic() < deadline:
        poll.wait(0.005)
    return t, outcome


def test_a_free_gate_admits_at_once_and_expects_no_wait():
    gate = limits.GenerationGate(1, max_waiting=0)
    assert gate.estimate_wait() == 0.0
    with gate.slot(timeout=0):
        assert gate.running == 1
        with pytest.raises(ServerBusyError, match=r"does not queue requests; try again in about \d+ s"):
            with gate.slot(timeout=30):  # no queue: refused at once, whatever the timeout
                pass
    assert gate.running == 0 and gate.waiting == 0


def test_a_full_queue_is_refused_at_once_with_the_retry_time_from_measured_generations():
    clock = FakeClock()
    gate = limits.GenerationGate(1, max_waiting=1, clock=clock)
    _measure(gate, clock, 10.0, work=100)  # 0.1 s per image-step
    with gate.slot(timeout=5, work=100):  # expected 10 s, 2 s of it done
        clock.t += 2
        waiter, outcome = _wait_in_thread(gate, timeout=30, work=50)  # expected 5 s
        assert gate.waiting == 1
        t0 = time.monotonic()
        with pytest.raises(ServerBusyError) as info:
            with gate.slot(timeout=5, work=100):
                pass
        assert time.monotonic() - t0 < 1.0  # refused at once, not after the 5 s timeout
    waiter.join(10)
    msg = str(info.value)
    assert "busy with 2 other generations (1 running, 1 waiting)" in msg and "queue is full" in msg, msg
    assert int(RETRY.search(msg).group(1)) == 13 == info.value.retry_after_s  # 8 s left + 5 s queued
    assert outcome == ["ran"]  # the one that waited got its slot
    assert gate.running == 0 and gate.waiting == 0


def test_the_wait_is_bounded_by_the_timeout_and_the_refusal_says_when_to_retry():
    gate = limits.GenerationGate(1)  # no queue cap: only the timeout refuses
    with gate.slot(timeout=1):
        t0 = time.monotonic()
        with pytest.raises(ServerBusyError) as info:
            with gate.slot(timeout=0.2):
                pass
        waited = time.monotonic() - t0
    assert 0.15 <= waited < 5.0
    msg = str(info.value)
    assert "busy with 1 other generation (1 running, 0 waiting)" in msg and RETRY.search(msg), msg
    assert info.value.retry_after_s >= 1  # no generation measured yet: the first estimate
    assert gate.waiting == 0


def test_a_wait_expected_longer_than_the_timeout_is_refused_at_once():
    clock = FakeClock()
    gate = limits.GenerationGate(1, clock=clock)
    _measure(gate, clock, 10.0, work=100)
    with gate.slot(timeout=5, work=1000):  # expected 100 s
        clock.t += 40
        assert gate.estimate_wait() == pytest.approx(60.0)
        t0 = time.monotonic()
        with pytest.raises(ServerBusyError, match="expected wait is longer than 30 s") as info:
            with gate.slot(timeout=30, work=100):
                pass
        assert time.monotonic() - t0 < 1.0
    assert info.value.retry_after_s == 60


def test_a_failed_generation_does_not_change_the_estimate():
    clock = FakeClock()
    gate = limits.GenerationGate(1, clock=clock)
    _measure(gate, clock, 4.0, work=40)
    with pytest.raises(RuntimeError):
        with gate.slot(timeout=1, work=40):
            clock.t += 0.001
            raise RuntimeError("pipeline failed")
    with gate.slot(timeout=1, work=40):
        clock.t += 1
        assert gate.estimate_wait() == pytest.approx(3.0)  # 4 s expected, 1 s done


def test_the_process_gate_waits_briefly_by_default_and_reads_its_limits_from_the_environment():
    assert limits.QUEUE_TIMEOUT_S <= 60 and limits.GATE.max_waiting == limits.MAX_QUEUE
    code = ("import json; from galaxysd_core.studio import limits as l; "
            "print(json.dumps([l.QUEUE_TIMEOUT_S, l.MAX_QUEUE, l.MAX_CONCURRENT, l.GATE.slots, l.GATE.max_waiting]))")
    env = {**os.environ, "GALAXYSD_QUEUE_TIMEOUT_S": "7.5", "GALAXYSD_MAX_QUEUE": "3", "GALAXYSD_MAX_CONCURRENT": "2"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == [7.5, 3, 2, 2, 3]
