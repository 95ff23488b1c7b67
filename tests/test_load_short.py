"""The short version of the load test (bench/bench_load.py, issue 23): three browser sessions at once
against a real ``streamlit run app.py`` server with the tiny test model, each pressing Generate and
voting on the shipped candidate catalog.

The server has one generation slot and no queue (``GALAXYSD_MAX_QUEUE=0``, a 1 s queue timeout) and
the sessions press Generate at the same moment, so some of them meet a busy server: every press must
end in images or in the busy message with a retry time (never a hang), no page and no server log may
show a traceback, and every vote the page acknowledged must be in the store. Marked ``browser``;
skipped without ``/usr/bin/chromium`` or playwright. Waits are for Streamlit's messages, never sleeps.
"""
from __future__ import annotations

import asyncio
import os
import time

import pytest

from bench.load_sessions import (RETRY_RE, RssSampler, SessionPlan, browser_missing, chromium, log_tracebacks,
                                 lost_votes, metric, run_sessions, server_metrics, stored_votes, streamlit_server,
                                 studio_env)

pytestmark = pytest.mark.browser

if browser_missing():
    pytest.skip(f"{browser_missing()}: needed by the load test", allow_module_level=True)

SESSIONS, GENERATIONS, VOTES = 3, 2, 2
STEP_TIMEOUT_S = float(os.environ.get("GALAXYSD_E2E_TIMEOUT_S", 180))


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    import torch

    from tiny_models import save_tiny_app_model

    torch.set_num_threads(1)
    return save_tiny_app_model(tmp_path_factory.mktemp("load") / "tiny-model")


def test_concurrent_sessions_get_images_or_a_retry_time_and_lose_no_vote(model, tmp_path):
    env = {**studio_env(model, tmp_path), "GALAXYSD_MAX_CONCURRENT": "1", "GALAXYSD_MAX_QUEUE": "0",
           "GALAXYSD_QUEUE_TIMEOUT_S": "1"}

    async def drive(url: str, pid: int):
        async with chromium() as browser:
            together = asyncio.Barrier(SESSIONS)
            plans = [SessionPlan(user=f"load-test-s{i}", generations=GENERATIONS, votes=VOTES, retry_busy=False,
                                 step_timeout=STEP_TIMEOUT_S, deadline=time.monotonic() + 3 * STEP_TIMEOUT_S,
                                 together=together) for i in range(SESSIONS)]
            with RssSampler(pid) as rss:
                results = await run_sessions(browser, url, plans)
            return plans, results, rss.peak

    with streamlit_server(env, tmp_path, start_timeout=STEP_TIMEOUT_S) as srv:
        plans, results, peak = asyncio.run(drive(srv["url"], srv["pid"]))
        server_tracebacks, _ = log_tracebacks(srv["log"])
        loads = metric(server_metrics(srv["url"]), "cache_compute_duration_seconds_count",
                       cache="pages._ui._cached_pipeline")
        log_tail = srv["log"].read_text(errors="replace")[-3000:]
    problems = [p for r in results for p in r.tracebacks + r.errors + r.hangs]
    assert not problems, problems
    assert server_tracebacks == 0, log_tail
    for r in results:  # every press answered: images or the busy message, none of them a hang
        assert r.presses == GENERATIONS and r.generated + len(r.busy) == r.presses, r
        assert len(r.votes_acked) == VOTES, r
    busy = [b for r in results for b in r.busy]
    assert busy, "no session met the busy server although all pressed Generate at once with one slot and no queue"
    assert all(RETRY_RE.search(b) for b in busy) and not any(r.busy_without_retry for r in results), busy
    assert "the server is busy with 1 other generation (1 running, 0 waiting)" in busy[0], busy[0]
    assert sum(r.images for r in results) >= 4  # at least one press got its 4 images
    stored = stored_votes(env["GALAXYSD_STORE_URL"], "detg_candidates", [p.user for p in plans])
    assert lost_votes(results, stored) == 0 and sum(map(len, stored.values())) == SESSIONS * VOTES, stored
    assert loads == 1  # one pipeline for every session (st.cache_resource), not one per session
    assert peak == peak and peak > 0
