"""A real ``streamlit run app.py`` server and concurrent browser sessions against it.

Shared by ``bench/bench_load.py`` (the load table of ``bench/README.md``) and the test suite
(``tests/test_load_short.py``; ``tests/test_browser_e2e.py`` uses the server helpers), so the bench
and its short version in the suite drive the app the same way.

* :func:`streamlit_server` starts the app on a free port of 127.0.0.1 in its own process group
  (its PID held, the group stopped on exit) with the model / catalog / store chosen by
  :func:`studio_env`; :class:`RssSampler` samples the server's resident memory.
* :func:`run_sessions` drives N browser sessions at once (one headless Debian chromium, one
  browser context per session, asyncio playwright; never a downloaded browser). Each session
  opens Generate, types a user name, switches to random seeds, then in a loop presses *Generate*
  (waiting for the new images or the busy message, and after a busy message for the retry time
  it gives) and votes on candidates of the Candidates page, recording every vote the page
  acknowledges ("<id>: <verdict> saved").

What a session saw is read from Streamlit's websocket frames (``ForwardMsg`` protobufs), not from
the page's pixels: the start and end of every script run, error alerts, exceptions (tracebacks),
image elements (a media URL not seen before in the session is a new image) and toasts. So a
transient toast or a stale alert of an earlier run is never missed or mistaken. Waits are for
those frames, bounded by a per-step timeout (a step past it is a *hang*).
"""
from __future__ import annotations

import asyncio
import contextlib
import math
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
STREAMLIT = Path(sys.executable).with_name("streamlit")
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
               "--no-first-run", "--disable-sync", "--disable-dev-shm-usage"]
VIEWPORT = {"width": 1400, "height": 900}
#: "... try again in about 12 s ..." in the busy message.
RETRY_RE = re.compile(r"try again in about (\d+(?:\.\d+)?) s")
#: The Candidates page's acknowledgement of a stored vote (a toast: "<id>: <verdict> saved ...").
SAVED_RE = re.compile(r"^(?P<id>.+?): (?P<verdict>yes|no|unsure) saved\b")
VERDICT_CYCLE = ("yes", "no", "unsure")


def browser_missing() -> Optional[str]:
    """Why the browser sessions cannot run here (no Debian chromium or no playwright), or None."""
    if not CHROMIUM.is_file():
        return f"{CHROMIUM} not found: install Debian's chromium package (apt-get install -y chromium)"
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -r requirements-dev.txt)"
    return None


# ----------------------------------------------------------------------------- the server
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def studio_env(model: Path, state: Path, *, candidates: Optional[Path] = None, data_dir: Optional[Path] = None,
               threads: Optional[int] = 1) -> Dict[str, str]:
    """Environment of a server: the model, a fresh store and home under ``state``, the candidate
    catalog (default: the shipped one), the real-data folder (default: none) and torch threads."""
    env = {**os.environ, "GALAXYSD_MODEL_DIR": str(model), "GALAXYSD_STORE_URL": f"sqlite:///{state / 'store.sqlite'}",
           "GALAXYSD_HOME": str(state / "home"), "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"}
    for name in ("GALAXYSD_DATA_DIR", "GALAXYSD_CANDIDATES"):
        env.pop(name, None)
    if candidates is not None:
        env["GALAXYSD_CANDIDATES"] = str(candidates)
    if data_dir is not None:
        env["GALAXYSD_DATA_DIR"] = str(data_dir)
    if threads:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    return env


@contextlib.contextmanager
def streamlit_server(env: Dict[str, str], state: Path, *, unset: Sequence[str] = (), server_args: Sequence[str] = (),
                     start_timeout: float = 180, port: Optional[int] = None) -> Iterator[dict]:
    """A fresh ``streamlit run app.py`` on 127.0.0.1 (``port``, default a free one) in its own process
    group, logging to ``state/server.log``.

    Yields ``{"url", "state", "pid", "proc", "log"}`` (``proc``: the Popen) once ``/_stcore/health`` answers; on exit stops the
    process group it started (SIGTERM, then SIGKILL after 20 s) and nothing else.
    """
    port = port or free_port()
    env = dict(env)
    for name in unset:
        env.pop(name, None)
    state.mkdir(parents=True, exist_ok=True)
    log_path = state / "server.log"
    log = open(log_path, "ab")
    cmd = [str(STREAMLIT) if STREAMLIT.exists() else sys.executable, *([] if STREAMLIT.exists() else ["-m", "streamlit"]),
           "run", str(REPO / "app.py"), "--server.headless", "true", "--server.port", str(port),
           "--server.address", "127.0.0.1", "--server.fileWatcherType", "none", *server_args]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + start_timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"streamlit exited with {proc.returncode}: "
                                   f"{log_path.read_text(errors='replace')[-3000:]}")
            try:
                with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"streamlit did not answer within {start_timeout:.0f} s")
            time.sleep(0.5)
        yield {"url": base, "state": state, "pid": proc.pid, "proc": proc, "log": log_path}
    finally:
        _stop_group(proc)
        log.close()


def _stop_group(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 20)):
        try:
            os.killpg(proc.pid, sig)  # the group this module started (start_new_session=True)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def rss_mb(pid: int) -> float:
    """Resident memory of a process in MiB (``/proc/<pid>/status`` VmRSS), NaN when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used (``/proc/<pid>/stat``), NaN when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return float("nan")


def client_cpu_seconds(exclude: int) -> float:
    """CPU seconds (own and reaped children's) of this process's descendants except the process
    ``exclude`` and its own descendants: the browsers and playwright's driver, which share the machine's
    cores with the server when the load test runs on the same machine."""
    parent, cpu = {}, {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            pid_s, rest = stat.read_text().split(" (", 1)
            fields = rest.rsplit(")", 1)[1].split()
        except (OSError, ValueError, IndexError):
            continue
        parent[int(pid_s)] = int(fields[1])
        cpu[int(pid_s)] = sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    me, total = os.getpid(), 0.0
    for pid in cpu:
        p = pid
        while p not in (0, 1, me, exclude) and p in parent:
            p = parent[p]
        if p == me and pid != me:
            total += cpu[pid]
    return total


class RssSampler:
    """Samples a process's RSS every ``interval`` seconds in a thread; ``peak`` in MiB, ``cpu_s`` the CPU
    seconds it used inside the ``with`` block."""

    def __init__(self, pid: int, interval: float = 0.25) -> None:
        self.pid, self.interval = pid, interval
        self.peak = rss_mb(pid)
        self.cpu_s = float("nan")
        self._cpu0 = cpu_seconds(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            value = rss_mb(self.pid)
            if value == value:
                self.peak = max(self.peak, value)

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)
        self.cpu_s = cpu_seconds(self.pid) - self._cpu0
        value = rss_mb(self.pid)
        if value == value:
            self.peak = max(self.peak, value)


_METRIC_RE = re.compile(r'^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>[^}]*)\})? (?P<value>\S+)$')


def server_metrics(url: str, timeout: float = 30) -> List[Tuple[str, Dict[str, str], float]]:
    """Streamlit's ``/_stcore/metrics`` (OpenMetrics text) as ``(name, labels, value)`` rows.

    Among them: ``cache_compute_duration_seconds_count`` per cached function (how often it ran:
    for ``pages._ui._cached_pipeline`` the loads of the model), ``cache_lookups_total`` per result
    (a caller that waited for another's load counts as a miss too), ``cache_memory_bytes`` (for
    ``st.cache_resource`` and session state an entry / key count unless the server runs with
    ``server.enableExpensiveMemoryStats``; bytes of the media files) and the session gauges.
    """
    req = urllib.request.Request(f"{url}/_stcore/metrics", headers={"Accept": "text/plain"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        text = r.read().decode("utf-8", "replace")
    rows = []
    for line in text.splitlines():
        m = _METRIC_RE.match(line.strip())
        if not m or line.startswith("#"):
            continue
        labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m["labels"] or ""))
        try:
            rows.append((m["name"], labels, float(m["value"])))
        except ValueError:
            continue
    return rows


def metric(rows, name: str, **labels) -> float:
    """Sum of the ``name`` rows whose labels include ``labels`` (0 when none)."""
    return sum(v for n, lab, v in rows if n == name and all(lab.get(k) == x for k, x in labels.items()))


def log_tracebacks(log_path: Path, start: int = 0) -> Tuple[int, int]:
    """``(tracebacks, end offset)`` in the server log from byte ``start`` on."""
    data = log_path.read_bytes()[start:] if log_path.is_file() else b""
    return data.count(b"Traceback (most recent call last)"), start + len(data)


# ----------------------------------------------------------------------------- what a session saw
@dataclass
class Event:
    t: float
    kind: str  # run_start | run_end | alert | exception | img | toast
    text: str = ""
    status: int = 0
    urls: Tuple[str, ...] = ()


class FrameLog:
    """The Streamlit messages one page received, as :class:`Event` objects in arrival order."""

    def __init__(self) -> None:
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        self._msg = ForwardMsg
        self.events: List[Event] = []
        self.changed = asyncio.Event()

    def attach(self, page) -> None:
        page.on("websocket", lambda ws: ws.on("framereceived", self.on_frame))

    def on_frame(self, payload) -> None:
        if not isinstance(payload, (bytes, bytearray)):
            return
        msg = self._msg()
        try:
            msg.ParseFromString(bytes(payload))
        except Exception:  # not a ForwardMsg frame
            return
        now, kind = time.monotonic(), msg.WhichOneof("type")
        if kind == "new_session":
            self.events.append(Event(now, "run_start"))
        elif kind == "script_finished":
            self.events.append(Event(now, "run_end", status=int(msg.script_finished)))
        elif kind == "delta":
            which = msg.delta.WhichOneof("type")
            elements = ([msg.delta.new_element] if which == "new_element"
                        else list(msg.delta.new_transient.elements) if which == "new_transient" else [])
            for el in elements:
                self._element(now, el)
        self.changed.set()

    def _element(self, now: float, el) -> None:
        which = el.WhichOneof("type")
        if which == "alert":
            self.events.append(Event(now, "alert", el.alert.body, status=int(el.alert.format)))
        elif which == "exception":
            self.events.append(Event(now, "exception", f"{el.exception.type}: {el.exception.message}"))
        elif which == "imgs":
            self.events.append(Event(now, "img", urls=tuple(i.url for i in el.imgs.imgs)))
        elif which == "toast":
            self.events.append(Event(now, "toast", el.toast.body))

    async def wait_run(self, since: int, timeout: float) -> List[Event]:
        """The events of the first script run that starts at or after index ``since`` and finishes
        (runs cut short for a rerun continue into the next one); raises TimeoutError."""
        deadline = time.monotonic() + timeout
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        early = ForwardMsg.ScriptFinishedStatus.Value("FINISHED_EARLY_FOR_RERUN")
        while True:
            started = next((i for i in range(since, len(self.events)) if self.events[i].kind == "run_start"), None)
            if started is not None:
                end = next((i for i in range(started, len(self.events))
                            if self.events[i].kind == "run_end" and self.events[i].status != early), None)
                if end is not None:
                    return self.events[started:end + 1]
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no finished script run within {timeout:.0f} s")
            self.changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.changed.wait(), timeout=min(left, 1.0))

    @property
    def busy_running(self) -> bool:
        """A script run started and has not finished yet."""
        for ev in reversed(self.events):
            if ev.kind in ("run_start", "run_end"):
                return ev.kind == "run_start"
        return False


# ----------------------------------------------------------------------------- one session
@dataclass
class SessionPlan:
    """What one session does: ``generations`` presses of Generate and ``votes`` votes, interleaved,
    until ``deadline`` (``time.monotonic()``); ``step_timeout`` bounds each wait (else a hang)."""

    user: str
    generations: int = 2
    votes: int = 4
    deadline: float = math.inf
    step_timeout: float = 180.0
    retry_busy: bool = True  # after a busy message wait the retry time it gives (bounded by the deadline)
    together: Optional[asyncio.Barrier] = None  # every session presses Generate at the same moment


@dataclass
class SessionResult:
    user: str
    presses: int = 0
    generated: int = 0  # presses that produced images
    images: int = 0
    first_image_s: List[float] = field(default_factory=list)  # per successful press: click -> first new image
    busy: List[str] = field(default_factory=list)  # busy messages shown
    busy_without_retry: int = 0  # busy messages that did not say when to try again
    tracebacks: List[str] = field(default_factory=list)  # exceptions drawn on the page
    errors: List[str] = field(default_factory=list)  # other error messages, failed steps
    hangs: List[str] = field(default_factory=list)  # steps with no answer within step_timeout
    votes_acked: List[Tuple[str, str]] = field(default_factory=list)  # (candidate id, verdict) the page confirmed
    result_times: List[float] = field(default_factory=list)  # monotonic times of presses answered (images)
    press_times: List[float] = field(default_factory=list)
    media_urls: List[str] = field(default_factory=list)  # every image URL the session was sent

    @property
    def ok(self) -> bool:
        return not (self.tracebacks or self.errors or self.hangs)


class _Hang(Exception):
    pass


class Session:
    """One browser tab of a visitor (see the module docstring)."""

    def __init__(self, page, url: str, plan: SessionPlan, progress: Optional[Callable[[str], None]] = None) -> None:
        self.page, self.url, self.plan = page, url, plan
        page.set_default_timeout(plan.step_timeout * 1000)  # every playwright action and wait, not 30 s
        self.log = FrameLog()
        self.log.attach(page)
        self.res = SessionResult(plan.user)
        self.progress = progress or (lambda what: None)
        self.seen_urls: set = set()

    # -- helpers
    def _timeout(self) -> float:
        return max(5.0, min(self.plan.step_timeout, self.plan.deadline - time.monotonic() + self.plan.step_timeout))

    async def _act(self, what: str, action) -> List[Event]:
        """Do ``action`` (a coroutine factory) and return the events of the script run it caused."""
        since = len(self.log.events)
        await action()
        try:
            run = await self.log.wait_run(since, self._timeout())
        except TimeoutError as exc:
            tail = ", ".join(e.kind for e in self.log.events[since:][-6:]) or "nothing"
            raise _Hang(f"{what}: {exc} (received since the action: {tail})") from exc
        self._note(run, what)
        return run

    def _note(self, run: List[Event], what: str) -> None:
        for ev in run:
            if ev.kind == "exception":
                self.res.tracebacks.append(f"{what}: {ev.text}")
            elif ev.kind == "img":
                self.seen_urls.update(ev.urls)

    async def _idle(self) -> None:
        if self.log.busy_running:
            since = max(i for i, e in enumerate(self.log.events) if e.kind == "run_start")
            try:
                await self.log.wait_run(since, self._timeout())
            except TimeoutError as exc:
                raise _Hang(f"waiting for a run to end: {exc}") from exc

    def _key(self, key: str):
        return self.page.locator(f".st-key-{re.sub(r'[^a-zA-Z0-9_-]', '-', key)} button").first

    # -- steps
    async def open(self) -> None:
        await self._act("open Generate", lambda: self.page.goto(self.url, timeout=self._timeout() * 1000))
        await self._key("btn.gen.generate").wait_for(timeout=self._timeout() * 1000)
        box = self.page.get_by_test_id("stSidebar").get_by_role("textbox", name="Your name (optional)")
        await self._act("type the user name", lambda: _fill_enter(box, self.plan.user))
        await self._idle()
        await self.page.get_by_text("Sampling settings").first.click()  # opens in the browser, no script run
        choice = self.page.get_by_text("random", exact=True).first
        await choice.wait_for(timeout=self._timeout() * 1000)
        await self._act("random seeds", lambda: choice.click(timeout=self._timeout() * 1000))
        await self.page.get_by_text("random seed").first.wait_for(timeout=self._timeout() * 1000)

    async def generate(self) -> Optional[float]:
        """Press Generate once; returns the retry wait a busy message asked for (None otherwise)."""
        await self._idle()
        if self.plan.together is not None:
            with contextlib.suppress(asyncio.TimeoutError, asyncio.BrokenBarrierError):
                await asyncio.wait_for(self.plan.together.wait(), self._timeout())
        old = set(self.seen_urls)
        t_click = time.monotonic()
        self.res.presses += 1
        self.res.press_times.append(t_click)
        run = await self._act("Generate", lambda: self._key("btn.gen.generate").click(timeout=self._timeout() * 1000))
        new = [ev for ev in run if ev.kind == "img" and any(u not in old for u in ev.urls)]
        busy = [ev.text for ev in run if ev.kind == "alert" and "server is busy" in ev.text]
        other = [ev.text for ev in run if ev.kind == "alert" and ev.status == 1 and "server is busy" not in ev.text]
        if new:
            self.res.generated += 1
            self.res.first_image_s.append(new[0].t - t_click)
            self.res.result_times.append(new[0].t)
            shown = await self.page.wait_for_function(  # the new images beside the controls, loaded
                """() => { const imgs = Array.from(document.querySelectorAll('.st-key-crisp-results img'));
                           return imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0)
                                  && imgs.length; }""",
                timeout=self._timeout() * 1000)
            self.res.images += int(await shown.json_value())
            self.progress("image")
            return None
        if busy:
            self.res.busy.append(busy[0])
            self.progress("busy")
            m = RETRY_RE.search(busy[0])
            if m is None:
                self.res.busy_without_retry += 1
                return 0.0
            return float(m.group(1))
        if not any(ev.kind == "exception" for ev in run):
            self.res.errors.append("Generate: neither images nor the busy message" + (f" ({other[0]})" if other else ""))
        return None

    async def goto(self, title: str, key: str) -> None:
        await self._idle()
        link = self.page.get_by_test_id("stSidebar").get_by_role("link", name=title, exact=True)
        await self._act(f"open {title}", lambda: link.click(timeout=self._timeout() * 1000))
        await self._key(key).wait_for(timeout=self._timeout() * 1000)

    async def vote(self, verdict: str) -> None:
        await self._idle()
        run = await self._act(f"vote {verdict}", lambda: self._key(f"btn.cand.{verdict}").click(
            timeout=self._timeout() * 1000))
        acked = [SAVED_RE.match(ev.text) for ev in run if ev.kind == "toast"]
        acked = [m for m in acked if m]
        if acked:
            self.res.votes_acked.append((acked[0]["id"], acked[0]["verdict"]))
            self.progress("vote")
        else:
            errors = [ev.text for ev in run if ev.kind == "alert" and ev.status == 1]
            self.res.errors.append(f"vote {verdict}: not acknowledged" + (f" ({errors[0]})" if errors else ""))

    async def run(self) -> SessionResult:
        plan = self.plan
        try:
            await self.open()
            votes_per_round = math.ceil(plan.votes / max(1, plan.generations)) if plan.votes else 0
            voted, pressed = 0, 0
            while (pressed < plan.generations or voted < plan.votes) and time.monotonic() < plan.deadline:
                retry = None
                if pressed < plan.generations:
                    retry = await self.generate()
                    pressed += 1
                if voted < plan.votes:
                    await self.goto("Candidates", "btn.cand.yes")
                    for _ in range(min(votes_per_round, plan.votes - voted)):
                        await self.vote(VERDICT_CYCLE[voted % 3])
                        voted += 1
                    if pressed < plan.generations:
                        await self.goto("Generate", "btn.gen.generate")
                if retry and plan.retry_busy and pressed < plan.generations:
                    await asyncio.sleep(max(0.0, min(retry, plan.deadline - time.monotonic())))
        except _Hang as exc:
            self.res.hangs.append(str(exc))
        except Exception as exc:  # noqa: BLE001 - a failed step is a result of the load test
            self.res.errors.append(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
        finally:
            self.res.media_urls = sorted(self.seen_urls)
            if plan.together is not None:  # the others no longer wait for this session
                await plan.together.abort()
        return self.res


async def _fill_enter(box, text: str) -> None:
    await box.fill(text)
    await box.press("Enter")


# ----------------------------------------------------------------------------- N sessions at once
async def run_sessions(browser, url: str, plans: Sequence[SessionPlan],
                       progress: Optional[Callable[[str], None]] = None) -> List[SessionResult]:
    """Run one session per plan at the same time, each in its own browser context (closed after)."""

    async def one(plan: SessionPlan) -> SessionResult:
        ctx = await browser.new_context(viewport=VIEWPORT)
        try:
            page = await ctx.new_page()
            return await Session(page, url, plan, progress).run()
        finally:
            with contextlib.suppress(Exception):
                await ctx.close()

    return list(await asyncio.gather(*(one(p) for p in plans)))


@contextlib.asynccontextmanager
async def chromium():
    """Headless Debian chromium through asyncio playwright."""
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


async def touch_session(browser, url: str, timeout: float = 120) -> None:
    """Open and close one page: its disconnect makes Streamlit drop the stored sessions whose
    reconnection time (``server.disconnectedSessionTTL``) has passed."""
    ctx = await browser.new_context(viewport=VIEWPORT)
    try:
        page = await ctx.new_page()
        log = FrameLog()
        log.attach(page)
        await page.goto(url, timeout=timeout * 1000)
        await log.wait_run(0, timeout)
    finally:
        await ctx.close()


def media_still_served(url: str, results: Sequence[SessionResult], limit: int = 400) -> Tuple[int, int]:
    """``(still served, probed)`` of the image URLs the (closed) sessions were sent: a file still
    served after its sessions are gone is memory the server still holds for them."""
    urls = sorted({u for r in results for u in r.media_urls})[:limit]
    served = 0
    for u in urls:
        try:
            with urllib.request.urlopen(u if u.startswith("http") else f"{url}{u}", timeout=10) as r:
                served += r.status == 200
        except OSError:  # 404: released
            pass
    return served, len(urls)


def stored_votes(store_url: str, catalog: str, users: Sequence[str]) -> Dict[str, List[Tuple[str, str]]]:
    """``{user: [(candidate id, verdict), ...]}`` of the votes in the store, oldest first."""
    from galaxysd_core.studio.store import Store

    store = Store(store_url)
    try:
        out: Dict[str, List[Tuple[str, str]]] = {u: [] for u in users}
        for v in store.verdict_history(catalog):
            if v.user in out:
                out[v.user].append((v.candidate_id, v.verdict))
        return out
    finally:
        store.dispose()


def lost_votes(results: Sequence[SessionResult], stored: Dict[str, List[Tuple[str, str]]]) -> int:
    """Acknowledged votes missing from the store (as a multiset per user)."""
    from collections import Counter

    lost = 0
    for r in results:
        missing = Counter(r.votes_acked) - Counter(stored.get(r.user, []))
        lost += sum(missing.values())
    return lost


def percentile(values: Sequence[float], q: float) -> float:
    """``q``-th percentile (0-100, linear interpolation), NaN for no values."""
    if not values:
        return float("nan")
    xs = sorted(values)
    k = (len(xs) - 1) * q / 100.0
    lo, hi = math.floor(k), math.ceil(k)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)
