#!/usr/bin/env python
"""Load test of the app: N concurrent browser sessions against one real ``streamlit run app.py`` server.

For each N (default 1, 4, 8, 16) the bench opens N headless chromium sessions at once (playwright,
one browser context each; ``bench/load_sessions.py``). Each session opens Generate, types its own
user name, switches to random seeds, then in a loop presses *Generate* (the page's default request:
4 images at the model's recommended steps), waits for the new images or the busy message (and after
a busy message for the retry time it gives), and votes on the shipped candidate catalog on the
Candidates page, recording every vote the page acknowledges. Bounded in count
(``--generations-per-session``, ``--votes-per-session``) and time (``--max-seconds`` per N).

Reported per N: median / p95 time from pressing Generate to the first new image (queueing
included), images/s over all sessions (first press to last image), presses refused with the busy
message (and how many of those did not say when to retry), errors (tracebacks on the pages and in
the server log, other error messages, hangs: a step without an answer within ``--step-timeout``),
peak and final server RSS, votes acknowledged vs found in the store. Then the goals of issue 23:
no traceback, no lost vote, no hang and a retry time in every busy message at any N; throughput at
N = 8 within 20 % of N = 1 (one shared pipeline); RSS after the N = 16 sessions have come and gone
within 10 % of the RSS after the first session (no per-session leak).

"Come and gone": after each N the sessions close, the bench waits ``--session-ttl`` seconds (the
server runs with ``server.disconnectedSessionTTL`` = that; Streamlit keeps a closed tab's session
that long for a reconnect, 120 s by default), opens and closes one more page (which makes Streamlit
drop the expired sessions) and reads the RSS.

Examples
--------
::

    .venv/bin/python bench/bench_load.py                      # N = 1 4 8 16, shipped model, table to stdout
    .venv/bin/python bench/bench_load.py --out runs/load      # also runs/load.json and runs/load.md
    .venv/bin/python bench/bench_load.py --sessions 1 2 --generations-per-session 1 --votes-per-session 2 \\
        --max-seconds 120                                      # a quick look

Needs ``/usr/bin/chromium`` (Debian package) and the ``playwright`` package (``requirements-dev.txt``);
no browser is downloaded. The browsers run on the same machine as the server, so by default they get
the upper half of the cores and the server the rest (``--client-cpus``; on 2 cores: one each): a load
generator sharing the server's cores measures its own CPU use, not the app (measured on 2 cores: images/s
at N = 8 fell to x0.65 of N = 1 unpinned, x0.95 pinned). The server runs with ``MALLOC_ARENA_MAX=2``
(``--malloc-arenas``; the deployment README recommends it): with glibc's default of 8 arenas per core,
the arenas of Streamlit's per-session threads keep the peak memory of N concurrent sessions after they
are gone (RSS after N = 8 x1.14-1.19 of N = 1 by default, x1.02 with 2 arenas). The load average before the
run is printed with the numbers: on a busy machine they are upper bounds of the latencies and lower
bounds of the throughput.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from load_sessions import (REPO, RssSampler, SessionPlan, browser_missing, chromium, client_cpu_seconds, log_tracebacks,
                           lost_votes,
                           media_still_served, metric, percentile, rss_mb, run_sessions, server_metrics, stored_votes, streamlit_server, studio_env,
                           touch_session)

PIPELINE_CACHE = "pages._ui._cached_pipeline"

GOAL_THROUGHPUT = 0.8  # images/s at N = 8 at least 80 % of N = 1
GOAL_RSS = 1.10  # RSS after N = 16 at most 10 % above RSS after N = 1


def _default_data_dir() -> Path | None:
    env = os.environ.get("GALAXYSD_DATA_DIR")
    if env:
        return Path(env)
    shared = REPO.parent / "shared" / "data"
    return shared if shared.is_dir() else None


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sessions", type=int, nargs="+", default=[1, 4, 8, 16], help="N values, run in this order")
    p.add_argument("--generations-per-session", type=int, default=3, help="presses of Generate per session (3)")
    p.add_argument("--votes-per-session", type=int, default=6, help="votes per session (6)")
    p.add_argument("--max-seconds", type=float, default=300, help="time limit of one N (300 s)")
    p.add_argument("--step-timeout", type=float, default=180, help="longest wait for one step; longer is a hang (180 s)")
    p.add_argument("--model", default=None, help="model folder (default $GALAXYSD_MODEL_DIR, else assets/galaxysd-mini)")
    p.add_argument("--candidates", default=None, help="candidate catalog (default: the shipped assets/detg_candidates)")
    p.add_argument("--data-dir", default=None,
                   help="real-data folder for the candidates' images (default $GALAXYSD_DATA_DIR or ../shared/data "
                        "when present; 'none': no images)")
    p.add_argument("--port", type=int, default=None, help="server port (default: a free one)")
    p.add_argument("--threads", type=int, default=None, help="torch threads of the server (default: torch's choice)")
    p.add_argument("--max-concurrent", type=int, default=None, help="$GALAXYSD_MAX_CONCURRENT of the server")
    p.add_argument("--queue-timeout", type=float, default=None, help="$GALAXYSD_QUEUE_TIMEOUT_S of the server")
    p.add_argument("--max-queue", type=int, default=None, help="$GALAXYSD_MAX_QUEUE of the server")
    p.add_argument("--malloc-arenas", type=int, default=2,
                   help="MALLOC_ARENA_MAX of the server (default 2, as README 'Deploying publicly' recommends; "
                        "0: glibc's default, 8 per core, whose per-thread arenas keep the peak of concurrent sessions)")
    p.add_argument("--client-cpus", nargs="+", default=["half"],
                   help="CPU cores for the browsers; the server gets the others (default 'half': the upper half of "
                        "this process's cores, so the load generator does not take the server's CPU; 'all': "
                        "everything shares every core; or core numbers, e.g. 2 3)")
    p.add_argument("--session-ttl", type=int, default=5,
                   help="server.disconnectedSessionTTL in s, waited after each N before the final RSS (5)")
    p.add_argument("--no-retry", action="store_true", help="after a busy message press again at once")
    p.add_argument("--out", default=None, help="write <out>.json and <out>.md")
    a = p.parse_args(argv)
    cores = sorted(os.sched_getaffinity(0))
    if a.client_cpus == ["half"]:
        a.client_cpus = cores[len(cores) // 2:] if len(cores) >= 2 else None
    elif a.client_cpus == ["all"]:
        a.client_cpus = None
    else:
        a.client_cpus = [int(c) for c in a.client_cpus]
        if not set(a.client_cpus) < set(cores):
            p.error(f"--client-cpus must be some, not all, of the cores {cores}")
    return a


def _server_env(a, state: Path) -> dict:
    model = Path(a.model or os.environ.get("GALAXYSD_MODEL_DIR") or REPO / "assets" / "galaxysd-mini").resolve()
    data = None if a.data_dir == "none" else (Path(a.data_dir) if a.data_dir else _default_data_dir())
    env = studio_env(model, state, candidates=Path(a.candidates).resolve() if a.candidates else None,
                     data_dir=data, threads=a.threads)
    if a.malloc_arenas:
        env["MALLOC_ARENA_MAX"] = str(a.malloc_arenas)
    else:
        env.pop("MALLOC_ARENA_MAX", None)
    for flag, name in ((a.max_concurrent, "GALAXYSD_MAX_CONCURRENT"), (a.queue_timeout, "GALAXYSD_QUEUE_TIMEOUT_S"),
                       (a.max_queue, "GALAXYSD_MAX_QUEUE")):
        if flag is not None:
            env[name] = str(flag)
    return env


def _limits(env: dict) -> dict:
    """The gate's limits the server reads from ``env`` (the library defaults where unset)."""
    from galaxysd_core.studio import limits

    return {"max_concurrent": int(env.get("GALAXYSD_MAX_CONCURRENT", limits.MAX_CONCURRENT)),
            "queue_timeout_s": float(env.get("GALAXYSD_QUEUE_TIMEOUT_S", limits.QUEUE_TIMEOUT_S)),
            "max_queue": int(env.get("GALAXYSD_MAX_QUEUE", limits.MAX_QUEUE))}


def _catalog_name(env: dict) -> str:
    from galaxysd_core.science import candidates as cands

    old = os.environ.get("GALAXYSD_CANDIDATES")
    try:
        if env.get("GALAXYSD_CANDIDATES"):
            os.environ["GALAXYSD_CANDIDATES"] = env["GALAXYSD_CANDIDATES"]
        else:
            os.environ.pop("GALAXYSD_CANDIDATES", None)
        return cands.read_candidates(cands.default_catalog_path()).name
    finally:
        if old is None:
            os.environ.pop("GALAXYSD_CANDIDATES", None)
        else:
            os.environ["GALAXYSD_CANDIDATES"] = old


async def _levels(a, srv: dict, env: dict, catalog: str) -> list:
    from tqdm import tqdm

    rows = []
    log_offset = log_tracebacks(srv["log"])[1]
    async with chromium() as browser:
        for n in a.sessions:
            tag = f"n{n}-{int(time.time()) % 100000}"
            t0 = time.monotonic()
            plans = [SessionPlan(user=f"load-{tag}-s{i}", generations=a.generations_per_session,
                                 votes=a.votes_per_session, deadline=t0 + a.max_seconds, step_timeout=a.step_timeout,
                                 retry_busy=not a.no_retry) for i in range(n)]
            bar = tqdm(total=n * (a.generations_per_session + a.votes_per_session), desc=f"N={n:>2}", unit="step",
                       file=sys.stderr, leave=False)
            client0 = client_cpu_seconds(exclude=srv["pid"])
            with RssSampler(srv["pid"]) as rss:
                results = await run_sessions(browser, srv["url"], plans, lambda what: bar.update(1))
            client = client_cpu_seconds(exclude=srv["pid"]) - client0
            bar.close()
            wall = time.monotonic() - t0
            await asyncio.sleep(a.session_ttl + 1)  # let Streamlit's reconnection window of the closed tabs pass
            await touch_session(browser, srv["url"])
            await asyncio.sleep(1)
            final = rss_mb(srv["pid"])
            media = media_still_served(srv["url"], results)
            server_tb, log_offset = log_tracebacks(srv["log"], log_offset)
            stored = stored_votes(env["GALAXYSD_STORE_URL"], catalog, [p.user for p in plans])
            rows.append({**_row(n, results, stored, wall, rss.peak, final, server_tb), **_server_state(srv["url"]),
                         "server_cpu_s": rss.cpu_s, "client_cpu_s": client, "media_still_served": media[0], "media_probed": media[1]})
    return rows


def _server_state(url: str) -> dict:
    """What the server holds after a level (Streamlit's /_stcore/metrics): loads of the model so far,
    session-state keys of every session still kept, bytes of media files (images shown)."""
    m = server_metrics(url)
    memory = {}
    for name, labels, value in m:
        if name == "cache_memory_bytes":
            kind = labels.get("cache_type", "")
            memory[kind] = memory.get(kind, 0.0) + value
    return {"pipeline_loads": int(metric(m, "cache_compute_duration_seconds_count", cache=PIPELINE_CACHE)),
            "pipeline_lookups": int(metric(m, "cache_lookups_total", cache=PIPELINE_CACHE)),
            "cache_memory": memory}


def _row(n: int, results: list, stored: dict, wall: float, peak: float, final: float, server_tb: int) -> dict:
    ttfi = [t for r in results for t in r.first_image_s]
    presses = [t for r in results for t in r.press_times]
    answers = [t for r in results for t in r.result_times]
    images = sum(r.images for r in results)
    span = (max(answers) - min(presses)) if answers and presses else float("nan")
    acked = sum(len(r.votes_acked) for r in results)
    return {"sessions": n, "presses": sum(r.presses for r in results), "generations": sum(r.generated for r in results),
            "images": images, "ttfi_median_s": statistics.median(ttfi) if ttfi else float("nan"),
            "ttfi_p95_s": percentile(ttfi, 95), "images_per_s": images / span if span and span == span else 0.0,
            "busy": sum(len(r.busy) for r in results), "busy_without_retry": sum(r.busy_without_retry for r in results),
            "page_tracebacks": sum(len(r.tracebacks) for r in results), "server_tracebacks": server_tb,
            "errors": sum(len(r.errors) for r in results), "hangs": sum(len(r.hangs) for r in results),
            "rss_peak_mb": peak, "rss_final_mb": final, "votes_acked": acked,
            "votes_stored": sum(len(v) for v in stored.values()), "votes_lost": lost_votes(results, stored),
            "wall_s": wall, "busy_examples": [b for r in results for b in r.busy][:3],
            "problems": [p for r in results for p in (r.tracebacks + r.errors + r.hangs)][:10]}


def table(rows: list) -> str:
    head = ("| N | presses | images | first image median / p95 (s) | images/s | busy (no retry time) | errors "
            "(tracebacks page/server, hangs) | RSS peak / final (MB) | votes acked / in store (lost) |")
    lines = [head, "|" + "---|" * 9]
    for r in rows:
        errors = r["errors"] + r["page_tracebacks"] + r["server_tracebacks"] + r["hangs"]
        lines.append(f"| {r['sessions']} | {r['presses']} | {r['images']} | {r['ttfi_median_s']:.1f} / "
                     f"{r['ttfi_p95_s']:.1f} | {r['images_per_s']:.2f} | {r['busy']} ({r['busy_without_retry']}) | "
                     f"{errors} ({r['page_tracebacks']}/{r['server_tracebacks']}, {r['hangs']}) | "
                     f"{r['rss_peak_mb']:.0f} / {r['rss_final_mb']:.0f} | {r['votes_acked']} / {r['votes_stored']} "
                     f"({r['votes_lost']}) |")
    return "\n".join(lines)


def goals(rows: list, baseline_rss: float, model_mb: float) -> list:
    by = {r["sessions"]: r for r in rows}
    out = []
    bad = [r["sessions"] for r in rows if r["page_tracebacks"] or r["server_tracebacks"]]
    out.append(("no traceback at any N", not bad, f"tracebacks at N = {bad}" if bad else "none"))
    bad = [r["sessions"] for r in rows if r["votes_lost"] or r["votes_stored"] < r["votes_acked"]]
    out.append(("no lost verdict", not bad, f"lost at N = {bad}" if bad else
                f"{sum(r['votes_acked'] for r in rows)} acknowledged, all in the store"))
    bad = [r["sessions"] for r in rows if r["hangs"] or r["busy_without_retry"]]
    out.append(("busy message with a retry time, no hang", not bad,
                f"hangs or busy messages without a retry time at N = {bad}" if bad else
                f"{sum(r['busy'] for r in rows)} busy messages, each with a retry time; no hang"))
    if 1 in by and 8 in by and by[1]["images_per_s"] > 0:
        ratio = by[8]["images_per_s"] / by[1]["images_per_s"]
        out.append(("throughput N = 8 within 20 % of N = 1", ratio >= GOAL_THROUGHPUT,
                    f"{by[8]['images_per_s']:.2f} vs {by[1]['images_per_s']:.2f} images/s (x{ratio:.2f})"))
    if 1 in by and rows[-1]["sessions"] > 1:
        last = rows[-1]
        ratio = last["rss_final_mb"] / by[1]["rss_final_mb"]
        out.append((f"RSS after N = {last['sessions']} within 10 % of RSS after N = 1", ratio <= GOAL_RSS,
                    f"{last['rss_final_mb']:.0f} vs {by[1]['rss_final_mb']:.0f} MB (x{ratio:.3f})"))
    if rows:
        last = rows[-1]
        out.append(("one shared model (loaded once, not per session)", last["pipeline_loads"] == 1,
                    f"the pipeline cache (st.cache_resource) loaded the model {last['pipeline_loads']} time(s) for "
                    f"{last['pipeline_lookups']} page runs of {sum(r['sessions'] for r in rows)} sessions; "
                    f"{model_mb:.0f} MB of weights; idle server before the first page {baseline_rss:.0f} MB"))
    return out


def main(argv=None) -> int:
    a = parse(argv)
    load = os.getloadavg()[0]  # before the bench adds its own load
    missing = browser_missing()
    if missing:
        print(f"cannot run the load test: {missing}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="galaxysd-load-") as tmp:
        state = Path(tmp)
        env = _server_env(a, state)
        model = Path(env["GALAXYSD_MODEL_DIR"])
        model_mb = sum(f.stat().st_size for f in model.rglob("*.safetensors")) / 2**20
        catalog = _catalog_name(env)
        lim = _limits(env)
        args = ["--server.disconnectedSessionTTL", str(a.session_ttl)]
        with streamlit_server(env, state, server_args=args, port=a.port) as srv:
            baseline = rss_mb(srv["pid"])
            if a.client_cpus:  # the browsers (started from this process) on their cores, the server on the rest
                os.sched_setaffinity(srv["pid"], set(os.sched_getaffinity(0)) - set(a.client_cpus))
                os.sched_setaffinity(0, set(a.client_cpus))
            try:
                rows = asyncio.run(_levels(a, srv, env, catalog))
            finally:
                if a.out:  # the server log, for the tracebacks counted in the table
                    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
                    Path(a.out).with_suffix(".server.log").write_bytes(srv["log"].read_bytes())
        header = (f"model {model.name} ({model_mb:.0f} MB of weights); catalog {catalog}; "
                  f"{a.generations_per_session} presses of Generate (page defaults) and {a.votes_per_session} votes "
                  f"per session, at most {a.max_seconds:.0f} s per N; gate: {lim['max_concurrent']} slot(s), queue of "
                  f"{lim['max_queue']}, wait at most {lim['queue_timeout_s']:.0f} s; MALLOC_ARENA_MAX "
                  f"{a.malloc_arenas or 'default'}; browsers on "
                  f"{'cores ' + ' '.join(map(str, a.client_cpus)) if a.client_cpus else 'every core'}; load average before the run "
                  f"{load:.1f} on {os.cpu_count()} CPUs" + (" (busy machine: upper bounds)"
                                                            if load > 0.5 * (os.cpu_count() or 1) else ""))
        print(header)
        print(table(rows))
        verdicts = goals(rows, baseline, model_mb)
        for name, ok, detail in verdicts:
            print(f"- {name}: {'met' if ok else 'NOT met'} ({detail})")
        for r in rows:
            for p in r["problems"]:
                print(f"  N={r['sessions']}: {p}", file=sys.stderr)
            if r["busy_examples"]:
                print(f"  N={r['sessions']} busy message: {r['busy_examples'][0]}")
            print(f"  N={r['sessions']}: server CPU {r['server_cpu_s']:.0f} s, browsers {r['client_cpu_s']:.0f} s, "
                  f"in {r['wall_s']:.0f} s on {os.cpu_count()} cores "
                  f"({r['server_cpu_s'] / max(1, r['images']):.2f} s per image), {r['generations']} of "
                  f"{r['presses']} presses with images; {r['media_still_served']} of {r['media_probed']} image files of "
                  f"the closed sessions still served")
        if a.out:
            out = Path(a.out)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.with_suffix(".json").write_text(json.dumps({"header": header, "rows": rows, "limits": lim,
                                                            "goals": verdicts, "args": vars(a)}, indent=1))
            out.with_suffix(".md").write_text(header + "\n\n" + table(rows) + "\n\n" + "\n".join(
                f"- {n}: {'met' if ok else 'NOT met'} ({d})" for n, ok, d in verdicts) + "\n")
        return 0 if all(ok for _, ok, _ in verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
