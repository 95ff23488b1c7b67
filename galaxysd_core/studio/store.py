"""SQL store of candidate verdicts and quiz scores (SQLAlchemy 2; SQLite by default).

The URL comes from ``$GALAXYSD_STORE_URL`` (e.g. ``postgresql+psycopg://user@host/galaxysd``) or
defaults to ``sqlite:///<state dir>/store.sqlite`` (``~/.galaxysd`` or ``$GALAXYSD_HOME``), so moving
to PostgreSQL is a URL change. The schema is created on first use.

Tables
------
``verdicts`` (append-only history)
    One row per vote: ``catalog, candidate_id, verdict ('yes'|'no'|'unsure'), note, user,
    session_id, created_at``. Nothing is ever updated or deleted, so no vote can be lost by a
    concurrent writer; the *current* verdict of a candidate is its newest row (highest ``id``),
    see :meth:`Store.latest_verdicts`, and :meth:`Store.verdict_history` gives every vote.
``quiz_scores``
    One row per answered "spot the fake" round: ``session_id, user, prompt, chosen, fake_index,
    correct, created_at``.

SQLite specifics (applied by engine event listeners)
    * WAL journal (readers never block the writer, and a killed writer leaves the database
      readable: an unfinished transaction is simply not in the WAL's committed part);
    * ``synchronous=FULL`` (a committed vote survives a power cut; ``$GALAXYSD_SQLITE_SYNCHRONOUS``
      can lower it), ``busy_timeout`` 30 s and
      ``foreign_keys=ON``;
    * an optional size cap, ``$GALAXYSD_STORE_MAX_PAGES`` (``PRAGMA max_page_count``; pages of
      4 KiB): a write beyond it fails exactly like one on a full disk;
    * pysqlite's own transaction handling is switched off and every transaction starts with
      ``BEGIN IMMEDIATE``, taking the write lock up front, so concurrent writers queue on the busy
      timeout instead of failing with "database is locked" on lock upgrade (the recipe in the
      SQLAlchemy SQLite dialect documentation, "Serializable isolation / Savepoints / Transactional
      DDL").

Full disk
    A write that does not fit (SQLite's "database or disk is full", PostgreSQL's ``disk_full``)
    raises :class:`~galaxysd_core.errors.StoreFullError` naming what was not saved and how to
    free space; the transaction is rolled back, so the store keeps every earlier row and passes
    :meth:`Store.integrity_check` (``tests/test_faults.py``).
"""
from __future__ import annotations

import contextlib
import functools
import datetime as _dt
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine

from galaxysd_core.config import STORE_URL_ENV, state_dir
from galaxysd_core.errors import GalaxySDFileError, GalaxySDValueError, StoreError, StoreFullError

__all__ = ["Store", "StoreError", "StoreFullError", "VERDICTS", "default_url", "open_store", "Verdict"]

logger = logging.getLogger(__name__)

#: Accepted verdicts.
VERDICTS = ("yes", "no", "unsure")
#: Longest note kept (characters).
MAX_NOTE_CHARS = 2000
#: Longest catalog / candidate id / user / session string.
MAX_KEY_CHARS = 200
#: Seconds a SQLite writer waits for the lock before giving up.
BUSY_TIMEOUT_S = 30.0
#: Default SQLite ``synchronous`` level: FULL syncs the WAL at every commit (a vote survives a power
#: cut). ``$GALAXYSD_SQLITE_SYNCHRONOUS=NORMAL`` trades that for ~4x faster commits (still safe
#: against a crashed or killed process in WAL mode).
SQLITE_SYNCHRONOUS = "FULL"
_SYNCHRONOUS_LEVELS = ("OFF", "NORMAL", "FULL", "EXTRA")
#: Environment variable capping a SQLite store's size in pages (``PRAGMA max_page_count``); unset = no cap.
MAX_PAGES_ENV = "GALAXYSD_STORE_MAX_PAGES"
#: SQLite's result code of a write that does not fit (disk full or ``max_page_count`` reached).
_SQLITE_FULL = 13
#: PostgreSQL's SQLSTATE ``disk_full``.
_PG_DISK_FULL = "53100"

metadata = sa.MetaData()

verdicts_table = sa.Table(
    "verdicts", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("catalog", sa.String(MAX_KEY_CHARS), nullable=False),
    sa.Column("candidate_id", sa.String(MAX_KEY_CHARS), nullable=False),
    sa.Column("verdict", sa.String(16), nullable=False),
    sa.Column("note", sa.Text, nullable=False, default=""),
    sa.Column("user", sa.String(MAX_KEY_CHARS), nullable=False, default=""),
    sa.Column("session_id", sa.String(MAX_KEY_CHARS), nullable=False, default=""),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("verdict IN ('yes', 'no', 'unsure')", name="ck_verdicts_verdict"),
    sa.Index("ix_verdicts_catalog_candidate", "catalog", "candidate_id", "id"),
)

quiz_table = sa.Table(
    "quiz_scores", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("session_id", sa.String(MAX_KEY_CHARS), nullable=False, default=""),
    sa.Column("user", sa.String(MAX_KEY_CHARS), nullable=False, default=""),
    sa.Column("prompt", sa.Text, nullable=False, default=""),
    sa.Column("chosen", sa.Integer, nullable=False),
    sa.Column("fake_index", sa.Integer, nullable=False),
    sa.Column("correct", sa.Boolean, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_quiz_session", "session_id"),
)


def is_full_error(exc: BaseException) -> bool:
    """Whether a database error means "no space left": a full disk or the store's size limit.

    Parameters
    ----------
    exc : BaseException
        A SQLAlchemy error (its driver error in ``exc.orig``) or a driver error.

    Returns
    -------
    bool
        True for SQLite's ``SQLITE_FULL`` ("database or disk is full") and PostgreSQL's
        ``disk_full`` (SQLSTATE 53100) or "No space left on device".
    """
    orig = getattr(exc, "orig", None) or exc
    code = getattr(orig, "sqlite_errorcode", None)
    if code is not None and code & 0xFF == _SQLITE_FULL:
        return True
    if (getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)) == _PG_DISK_FULL:
        return True
    text = str(orig).lower()
    return "database or disk is full" in text or "no space left on device" in text


def full_store_error(url: str, what: str, exc: Optional[BaseException] = None, *,
                     retry: str = "try again") -> StoreFullError:
    """The :class:`StoreFullError` to raise for a write to ``url`` that did not fit (logged with its cause).

    Parameters
    ----------
    url, what, exc, retry
        The store; what was not saved (``"demo-04 (yes)"``); the driver's error; what to do once there is room.
    """
    limit = ""
    if url.startswith("sqlite") and os.environ.get(MAX_PAGES_ENV, "").strip():
        limit = f" or raise ${MAX_PAGES_ENV}"
    logger.error("store %s is full; not saved: %s (%s)", describe_url(url), what, exc)
    return StoreFullError(f"The verdict store is full (disk or size limit): free space on the disk of "
                          f"{describe_url(url)}{limit}, then {retry}; nothing was saved for {what}; "
                          "earlier verdicts are kept.")


def _db_errors(fn):
    """Turn SQLAlchemy/driver errors into :class:`StoreError` (shown as a message by the app);
    a full disk or size limit becomes :class:`StoreFullError`."""
    @functools.wraps(fn)
    def wrapper(self, *args, **kwargs):
        try:
            return fn(self, *args, **kwargs)
        except sa.exc.SQLAlchemyError as exc:
            if is_full_error(exc):
                raise full_store_error(self.url, "this change", exc) from exc
            orig = getattr(exc, "orig", None) or exc
            raise StoreError(f"store {self.url!r}: {type(orig).__name__}: {orig}") from exc
    return wrapper


@dataclass(frozen=True)
class Verdict:
    """One stored vote (a row of ``verdicts``)."""

    id: int
    catalog: str
    candidate_id: str
    verdict: str
    note: str
    user: str
    session_id: str
    created_at: _dt.datetime


def default_url() -> str:
    """``$GALAXYSD_STORE_URL`` or ``sqlite:///<state dir>/store.sqlite``."""
    url = os.environ.get(STORE_URL_ENV)
    if url:
        return url
    return f"sqlite:///{state_dir() / 'store.sqlite'}"


def describe_url(url: Optional[str] = None) -> str:
    """Where the store lives, safe to show to anyone: the SQLite file, or the URL with its password hidden.

    ``url`` defaults to :func:`default_url`; e.g. ``"SQLite file /home/me/.galaxysd/store.sqlite"`` or
    ``"postgresql+psycopg://user:***@host/galaxysd"``.
    """
    url = url or default_url()
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        return "an unreadable store URL (check $" + STORE_URL_ENV + ")"
    if parsed.get_backend_name() == "sqlite":
        return f"SQLite file {parsed.database}" if parsed.database else "SQLite in memory"
    return parsed.render_as_string(hide_password=True)


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


def _check_key(value: Any, what: str, allow_empty: bool = False) -> str:
    if value is None:
        value = ""
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        raise GalaxySDValueError(f"{what} must be a string, got {type(value).__name__}")
    text = str(value).strip()
    if not text and not allow_empty:
        raise GalaxySDValueError(f"{what} must not be empty")
    if len(text) > MAX_KEY_CHARS:
        raise GalaxySDValueError(f"{what} has {len(text)} characters; at most {MAX_KEY_CHARS}")
    if any(ord(c) < 32 for c in text):
        raise GalaxySDValueError(f"{what} contains control characters")
    return text


def _max_pages_setting() -> Optional[int]:
    """``$GALAXYSD_STORE_MAX_PAGES`` as a positive int, or None when unset."""
    raw = os.environ.get(MAX_PAGES_ENV, "").strip()
    if not raw:
        return None
    try:
        pages = int(raw)
    except ValueError:
        pages = 0
    if pages <= 0:
        raise GalaxySDValueError(f"${MAX_PAGES_ENV} must be a positive number of pages (4 KiB each), got {raw!r}; "
                                 "unset it for no limit")
    return pages


def _install_sqlite_listeners(engine: Engine, synchronous: str, max_pages: Optional[int] = None) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):  # pragma: no cover - exercised through every connection
        # Let SQLAlchemy (not pysqlite) emit BEGIN, so that it can be BEGIN IMMEDIATE.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        cur.execute("PRAGMA journal_mode = WAL")
        cur.execute(f"PRAGMA synchronous = {synchronous}")
        cur.execute("PRAGMA foreign_keys = ON")
        if max_pages is not None:  # never below the current size: SQLite then keeps the current size
            cur.execute(f"PRAGMA max_page_count = {int(max_pages)}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):  # pragma: no cover - exercised through every transaction
        # Writers take the lock up front; readers (execution option ``galaxysd_read``) start a
        # deferred transaction and never wait for the write lock (WAL readers see a snapshot).
        conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get("galaxysd_read") else "BEGIN IMMEDIATE")


class Store:
    """Verdicts and quiz scores in a SQL database.

    Parameters
    ----------
    url : str, optional
        SQLAlchemy URL; default :func:`default_url`. Use :func:`open_store` to share one engine
        (connection pool) per URL within a process.

    Examples
    --------
    >>> s = Store("sqlite:///:memory:")
    >>> s.add_verdict("demo", "c1", "yes", note="ring")
    1
    >>> s.latest_verdicts("demo")["c1"].verdict
    'yes'
    """

    def __init__(self, url: Optional[str] = None) -> None:
        self.url = url or default_url()
        try:
            parsed = sa.engine.make_url(self.url)
        except sa.exc.ArgumentError as exc:
            raise GalaxySDValueError(f"store URL {self.url!r} is not a valid SQLAlchemy URL: {exc}") from exc
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        kwargs: Dict[str, Any] = {"future": True}
        if self.is_sqlite:
            db = parsed.database
            if db and db != ":memory:" and not db.startswith("file:"):
                try:
                    Path(db).expanduser().parent.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise GalaxySDFileError(f"cannot create the folder of the store {db!r}: {exc}") from exc
            kwargs["connect_args"] = {"timeout": BUSY_TIMEOUT_S, "check_same_thread": False}
            if not db or db == ":memory:":
                # one shared connection, or every connection would see its own empty database
                kwargs["poolclass"] = sa.pool.StaticPool
        else:
            kwargs["pool_pre_ping"] = True
        try:
            self.engine = sa.create_engine(parsed, **kwargs)
        except Exception as exc:  # missing driver, bad options
            raise GalaxySDValueError(f"cannot open store {self.url!r}: {type(exc).__name__}: {exc}") from exc
        if self.is_sqlite:
            sync = os.environ.get("GALAXYSD_SQLITE_SYNCHRONOUS", SQLITE_SYNCHRONOUS).strip().upper()
            if sync not in _SYNCHRONOUS_LEVELS:
                raise GalaxySDValueError(f"$GALAXYSD_SQLITE_SYNCHRONOUS must be one of {_SYNCHRONOUS_LEVELS}, "
                                         f"got {sync!r}")
            _install_sqlite_listeners(self.engine, sync, _max_pages_setting())
        self._schema_lock = threading.Lock()
        self._schema_ready = False

    # ----------------------------------------------------------------------------- schema
    @_db_errors
    def ensure_schema(self) -> None:
        """Create the tables if they do not exist (idempotent, safe from several processes)."""
        if self._schema_ready:
            return
        with self._schema_lock:
            if self._schema_ready:
                return
            try:
                metadata.create_all(self.engine, checkfirst=True)
            except sa.exc.OperationalError as exc:
                if is_full_error(exc):
                    raise full_store_error(self.url, "this change (the store's tables could not be created)",
                                           exc) from exc
                if "already exists" not in str(exc):
                    raise GalaxySDFileError(f"cannot create the store schema at {self.url!r}: {exc.orig}") from exc
            self._schema_ready = True

    def _begin(self):
        """A write transaction (``BEGIN IMMEDIATE`` on SQLite), committed on leaving the block."""
        self.ensure_schema()
        return self.engine.begin()

    @contextlib.contextmanager
    def _read(self):
        """A read-only transaction (deferred ``BEGIN`` on SQLite)."""
        self.ensure_schema()
        with self.engine.connect() as conn:
            conn.execution_options(galaxysd_read=True)
            yield conn

    #: The transactions other tables of the same database use (``studio/history``).
    write_transaction = _begin
    read_transaction = _read

    # ----------------------------------------------------------------------------- verdicts
    @_db_errors
    def add_verdict(self, catalog: str, candidate_id: str, verdict: str, *, note: str = "", user: str = "",
                    session_id: str = "") -> int:
        """Record one vote (committed before returning); returns its row id.

        The id is returned only after the commit, so a caller that acknowledges the vote with it
        never acknowledges an unsaved one.

        Raises
        ------
        GalaxySDValueError
            For a verdict not in :data:`VERDICTS`, an empty catalog or candidate id, or a note
            longer than :data:`MAX_NOTE_CHARS`.
        StoreFullError
            When the disk or the size limit is full: nothing was saved, earlier votes are kept.
        StoreError
            When the database cannot be reached or refuses the write.
        """
        catalog = _check_key(catalog, "catalog name")
        candidate_id = _check_key(candidate_id, "candidate id")
        user = _check_key(user, "user name", allow_empty=True)
        session_id = _check_key(session_id, "session id", allow_empty=True)
        v = str(verdict).strip().lower()
        if v not in VERDICTS:
            raise GalaxySDValueError(f"verdict must be one of {VERDICTS}, got {verdict!r}")
        note = "" if note is None else str(note)
        if len(note) > MAX_NOTE_CHARS:
            raise GalaxySDValueError(f"note has {len(note)} characters; at most {MAX_NOTE_CHARS} are kept")
        try:
            with self._begin() as conn:  # committed (or rolled back) on leaving the block
                res = conn.execute(verdicts_table.insert().values(
                    catalog=catalog, candidate_id=candidate_id, verdict=v, note=note, user=user,
                    session_id=session_id, created_at=_now()))
                row_id = int(res.inserted_primary_key[0])
        except (sa.exc.SQLAlchemyError, StoreFullError) as exc:  # the latter: the schema could not be created
            if isinstance(exc, StoreFullError) or is_full_error(exc):
                raise full_store_error(self.url, f"{candidate_id} ({v})", exc, retry="vote again") from exc
            raise
        return row_id

    @staticmethod
    def _row(r) -> Verdict:
        created = r.created_at
        if created is not None and created.tzinfo is None:
            created = created.replace(tzinfo=_dt.timezone.utc)
        return Verdict(id=int(r.id), catalog=r.catalog, candidate_id=r.candidate_id, verdict=r.verdict,
                       note=r.note or "", user=r.user or "", session_id=r.session_id or "", created_at=created)

    @_db_errors
    def latest_verdicts(self, catalog: str) -> Dict[str, Verdict]:
        """Current verdict of every vetted candidate of ``catalog`` (its newest vote)."""
        catalog = _check_key(catalog, "catalog name")
        v = verdicts_table
        newest = (sa.select(sa.func.max(v.c.id).label("id")).where(v.c.catalog == catalog)
                  .group_by(v.c.candidate_id).subquery())
        q = sa.select(v).join(newest, v.c.id == newest.c.id)
        with self._read() as conn:
            return {r.candidate_id: self._row(r) for r in conn.execute(q)}

    @_db_errors
    def verdict_history(self, catalog: str, candidate_id: Optional[str] = None) -> List[Verdict]:
        """Every vote of ``catalog`` (or of one candidate), oldest first."""
        catalog = _check_key(catalog, "catalog name")
        v = verdicts_table
        q = sa.select(v).where(v.c.catalog == catalog)
        if candidate_id is not None:
            q = q.where(v.c.candidate_id == str(candidate_id))
        with self._read() as conn:
            return [self._row(r) for r in conn.execute(q.order_by(v.c.id))]

    @_db_errors
    def count_verdicts(self, catalog: Optional[str] = None) -> int:
        """Number of stored votes (history rows), of one catalog or all."""
        q = sa.select(sa.func.count()).select_from(verdicts_table)
        if catalog is not None:
            q = q.where(verdicts_table.c.catalog == catalog)
        with self._read() as conn:
            return int(conn.execute(q).scalar_one())

    # ----------------------------------------------------------------------------- quiz
    @_db_errors
    def add_quiz_answer(self, *, session_id: str, chosen: int, fake_index: int, prompt: str = "",
                        user: str = "") -> bool:
        """Record one "spot the fake" answer; returns whether it was correct."""
        session_id = _check_key(session_id, "session id", allow_empty=True)
        user = _check_key(user, "user name", allow_empty=True)
        try:
            chosen, fake_index = int(chosen), int(fake_index)
        except (TypeError, ValueError):
            raise GalaxySDValueError("chosen and fake_index must be integers (image positions)") from None
        if chosen < 0 or fake_index < 0:
            raise GalaxySDValueError("image positions must be >= 0")
        correct = chosen == fake_index
        with self._begin() as conn:
            conn.execute(quiz_table.insert().values(session_id=session_id, user=user, prompt=str(prompt)[:1000],
                                                    chosen=chosen, fake_index=fake_index, correct=correct,
                                                    created_at=_now()))
        return correct

    @_db_errors
    def quiz_summary(self, session_id: Optional[str] = None) -> Dict[str, Any]:
        """``{"answered": n, "correct": k, "accuracy": k/n or None}`` of a session or of everyone."""
        q = sa.select(sa.func.count(), sa.func.sum(sa.case((quiz_table.c.correct, 1), else_=0)))
        if session_id is not None:
            q = q.where(quiz_table.c.session_id == session_id)
        with self._read() as conn:
            n, k = conn.execute(q).one()
        n, k = int(n or 0), int(k or 0)
        return {"answered": n, "correct": k, "accuracy": (k / n) if n else None}

    # ----------------------------------------------------------------------------- health
    @_db_errors
    def integrity_check(self) -> str:
        """``PRAGMA integrity_check`` result (``"ok"`` when healthy); ``"ok"`` for non-SQLite stores."""
        if not self.is_sqlite:
            return "ok"
        with self.engine.connect() as conn:
            rows = conn.exec_driver_sql("PRAGMA integrity_check").fetchall()
        return "\n".join(str(r[0]) for r in rows)

    @_db_errors
    def journal_mode(self) -> Optional[str]:
        """SQLite journal mode (``"wal"``), None for other databases."""
        if not self.is_sqlite:
            return None
        with self.engine.connect() as conn:
            return str(conn.exec_driver_sql("PRAGMA journal_mode").scalar())

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()

    def __repr__(self) -> str:
        return f"Store({self.url!r})"


_STORES: Dict[str, Store] = {}
_STORES_LOCK = threading.Lock()


def open_store(url: Optional[str] = None) -> Store:
    """The process-wide :class:`Store` of ``url`` (default :func:`default_url`), created once."""
    key = url or default_url()
    with _STORES_LOCK:
        store = _STORES.get(key)
        if store is None:
            store = _STORES[key] = Store(key)
        return store
