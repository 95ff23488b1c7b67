"""SQL store of verdicts and quiz scores: schema, history, concurrency, crash safety."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from galaxysd_core.errors import GalaxySDError, GalaxySDValueError, StoreError
from galaxysd_core.studio.store import Store, default_url, open_store

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'state' / 'store.sqlite'}"


def test_schema_created_on_first_use_with_wal(url, tmp_path):
    s = Store(url)
    assert s.count_verdicts() == 0
    assert (tmp_path / "state" / "store.sqlite").is_file()
    assert s.journal_mode() == "wal"
    with sqlite3.connect(tmp_path / "state" / "store.sqlite") as con:
        tables = {r[0] for r in con.execute("select name from sqlite_master where type='table'")}
    assert {"verdicts", "quiz_scores"} <= tables


def test_latest_verdict_and_history(url):
    s = Store(url)
    s.add_verdict("cat", "c1", "yes", note="ring", user="ana")
    s.add_verdict("cat", "c2", "unsure")
    s.add_verdict("cat", "c1", "no", note="artefact")
    s.add_verdict("other", "c1", "yes")
    latest = s.latest_verdicts("cat")
    assert set(latest) == {"c1", "c2"}
    assert latest["c1"].verdict == "no" and latest["c1"].note == "artefact"
    assert [v.verdict for v in s.verdict_history("cat", "c1")] == ["yes", "no"]
    assert s.verdict_history("cat", "c1")[0].user == "ana"
    assert s.count_verdicts("cat") == 3 and s.count_verdicts() == 4
    assert latest["c1"].created_at.tzinfo is not None


@pytest.mark.parametrize("kwargs,match", [
    (dict(catalog="cat", candidate_id="c", verdict="maybe"), "verdict must be one of"),
    (dict(catalog="", candidate_id="c", verdict="yes"), "catalog name"),
    (dict(catalog="cat", candidate_id="  ", verdict="yes"), "candidate id"),
    (dict(catalog="cat", candidate_id="c", verdict="yes", note="x" * 5000), "note"),
    (dict(catalog="cat", candidate_id="c\x00", verdict="yes"), "control"),
])
def test_add_verdict_validation(url, kwargs, match):
    s = Store(url)
    with pytest.raises(GalaxySDValueError, match=match):
        s.add_verdict(**kwargs)
    assert s.count_verdicts() == 0


def test_quiz_scores(url):
    s = Store(url)
    assert s.add_quiz_answer(session_id="a", chosen=2, fake_index=2, prompt="sdss, smooth") is True
    assert s.add_quiz_answer(session_id="a", chosen=0, fake_index=3) is False
    assert s.add_quiz_answer(session_id="b", chosen=1, fake_index=1) is True
    assert s.quiz_summary("a") == {"answered": 2, "correct": 1, "accuracy": 0.5}
    assert s.quiz_summary() == {"answered": 3, "correct": 2, "accuracy": pytest.approx(2 / 3)}
    assert s.quiz_summary("nobody")["accuracy"] is None


def test_concurrent_writers_lose_nothing(url, monkeypatch):
    """8 threads x 500 verdicts through one engine: exactly 4000 rows, integrity ok.

    synchronous=NORMAL only skips the per-commit fsync (power-loss durability, 4x faster here); the
    locking that this test exercises is the same as with the default FULL.
    """
    monkeypatch.setenv("GALAXYSD_SQLITE_SYNCHRONOUS", "NORMAL")
    s = Store(url)
    s.ensure_schema()
    errors = []

    def writer(k: int) -> None:
        try:
            for i in range(500):
                s.add_verdict("cat", f"t{k}-c{i}", ("yes", "no", "unsure")[i % 3], session_id=f"s{k}")
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert s.count_verdicts() == 4000
    assert len(s.latest_verdicts("cat")) == 4000
    assert s.integrity_check() == "ok"


def test_two_engines_interleave(url):
    """Two Store objects (like two server processes) writing to the same file."""
    a, b = Store(url), Store(url)
    a.ensure_schema()

    def writer(store: Store, tag: str) -> None:
        for i in range(100):
            store.add_verdict("cat", f"{tag}{i}", "yes")

    ts = [threading.Thread(target=writer, args=(a, "a")), threading.Thread(target=writer, args=(b, "b"))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert a.count_verdicts() == b.count_verdicts() == 200


WRITER = textwrap.dedent("""
    from galaxysd_core.studio.store import Store
    s = Store({url!r})
    i = 0
    while True:
        s.add_verdict("crash", f"c{{i}}", "yes", note="x" * 200)
        i += 1
""")


def test_killed_writer_leaves_a_readable_store(url, tmp_path):
    """SIGKILL in the middle of a stream of writes: the store opens, passes integrity_check and keeps
    every committed verdict."""
    script = tmp_path / "writer.py"
    script.write_text(WRITER.format(repo=str(REPO), url=url))
    proc = subprocess.Popen([sys.executable, str(script)], env={**os.environ, "OMP_NUM_THREADS": "1"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        reader = Store(url)
        deadline = time.monotonic() + 120
        n = 0
        while time.monotonic() < deadline:
            try:
                n = reader.count_verdicts("crash")
            except GalaxySDError:
                n = 0  # schema not yet created by the writer
            if n >= 150 or proc.poll() is not None:
                break
            time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert n >= 150
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    reader.dispose()
    fresh = Store(url)
    assert fresh.integrity_check() == "ok"
    after = fresh.count_verdicts("crash")
    assert after >= n  # nothing committed before the kill was lost
    history = fresh.verdict_history("crash")
    assert len(history) == after and all(v.verdict == "yes" and len(v.note) == 200 for v in history)
    assert [int(v.candidate_id[1:]) for v in history] == list(range(after))  # no gaps
    fresh.add_verdict("crash", "after", "no")  # still writable
    assert fresh.count_verdicts("crash") == after + 1


def test_default_url_and_open_store(monkeypatch, tmp_path):
    monkeypatch.delenv("GALAXYSD_STORE_URL", raising=False)
    monkeypatch.setenv("GALAXYSD_HOME", str(tmp_path / "home"))
    assert default_url() == f"sqlite:///{tmp_path / 'home' / 'store.sqlite'}"
    monkeypatch.setenv("GALAXYSD_STORE_URL", f"sqlite:///{tmp_path / 'x.sqlite'}")
    s1, s2 = open_store(), open_store()
    assert s1 is s2 and s1.url.endswith("x.sqlite")


def test_bad_urls_raise_galaxysd_errors(tmp_path, monkeypatch):
    with pytest.raises(GalaxySDValueError, match="not a valid"):
        Store("not a url")
    with pytest.raises(GalaxySDValueError, match="cannot open store"):
        Store("nosuchdialect://x/y")
    monkeypatch.setenv("GALAXYSD_SQLITE_SYNCHRONOUS", "SOMETIMES")
    with pytest.raises(GalaxySDValueError, match="SYNCHRONOUS"):
        Store(f"sqlite:///{tmp_path / 's.sqlite'}")


def test_unreachable_database_is_a_store_error(tmp_path):
    folder = tmp_path / "dir_as_db"
    folder.mkdir()
    s = Store(f"sqlite:///{folder}")  # a folder, not a database file
    with pytest.raises(GalaxySDError):
        s.add_verdict("cat", "c", "yes")
    assert issubclass(StoreError, GalaxySDError)
