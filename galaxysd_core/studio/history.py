"""Generation history: every press of Generate in the app, kept in the store with its settings.

One row of the ``generations`` table per request (all its images): the prompt, the negative
prompt, the feature-guidance scales, the first seed, the number of images, the other settings, the
model's weight fingerprint, who made it (session, optional name), when, and a thumbnail (a PNG strip
of the first :data:`THUMB_IMAGES` images at :data:`THUMB_PX` px). The images themselves are not kept
(a request is remade bit for bit from its settings on the same model: the fingerprint says which).

Searching: by prompt text (case-insensitive substring) and by feature (a phrase of the prompt or a
guided feature), newest first, optionally only this session's. "Reuse settings" gives the control
values (:func:`galaxysd_core.studio.controls.settings_from_png` of the stored record);
"Compare with the current one" lists what differs from the controls now
(:func:`galaxysd_core.studio.generation.settings_changes`).

Size limit and pruning
----------------------
At most :data:`DEFAULT_MAX_ENTRIES` rows (``$GALAXYSD_HISTORY_MAX``, 0 = keep nothing) are kept in
the whole store; each insert deletes the oldest rows beyond the limit **in the same transaction**,
so the table never exceeds it, even with concurrent writers, and a crash leaves either the insert
and its pruning or neither. A thumbnail is at most :data:`MAX_THUMB_BYTES`; a row is about 10-25 kB,
so the default limit bounds the table near 50 MB. Verdicts are never pruned (another table).
"""
from __future__ import annotations

import datetime as _dt
import io
import json
import os
import threading
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import sqlalchemy as sa

from galaxysd_core.errors import GalaxySDValueError
from galaxysd_core.studio.store import MAX_KEY_CHARS, Store, _check_key, _db_errors

__all__ = ["HISTORY_MAX_ENV", "DEFAULT_MAX_ENTRIES", "HistoryEntry", "GenerationHistory", "thumbnail_png",
           "history_limit", "record_generation"]

#: Environment variable of the number of history rows kept.
HISTORY_MAX_ENV = "GALAXYSD_HISTORY_MAX"
#: Rows kept when the variable is unset.
DEFAULT_MAX_ENTRIES = 2000
#: Images in a thumbnail strip, and their side in pixels.
THUMB_IMAGES, THUMB_PX = 4, 64
#: Largest thumbnail stored (bytes); a bigger one is stored at half the size.
MAX_THUMB_BYTES = 64 * 1024
#: Longest prompt kept (the app's text areas allow 1000 characters).
MAX_PROMPT_CHARS = 2000

_metadata = sa.MetaData()
generations_table = sa.Table(
    "generations", _metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("session_id", sa.String(MAX_KEY_CHARS), nullable=False, default=""),
    sa.Column("user", sa.String(MAX_KEY_CHARS), nullable=False, default=""),
    sa.Column("prompt", sa.Text, nullable=False),
    sa.Column("negative_prompt", sa.Text, nullable=False, default=""),
    sa.Column("features", sa.Text, nullable=False, default="|"),  # "|smooth|dust lane|": searchable
    sa.Column("feature_guidance", sa.Text, nullable=False, default="{}"),  # JSON {phrase: scale}
    sa.Column("seed", sa.BigInteger, nullable=True),
    sa.Column("n_images", sa.Integer, nullable=False),
    sa.Column("model_fingerprint", sa.String(64), nullable=False, default=""),
    sa.Column("settings", sa.Text, nullable=False),  # JSON: request settings (compare)
    sa.Column("record", sa.Text, nullable=False),  # JSON: provenance of the first image (reuse)
    sa.Column("thumbnail", sa.LargeBinary, nullable=True),
    sa.Index("ix_generations_session", "session_id", "id"),
)


def history_limit() -> int:
    """Rows kept: ``$GALAXYSD_HISTORY_MAX`` or :data:`DEFAULT_MAX_ENTRIES`.

    Raises
    ------
    GalaxySDValueError
        When the variable is not a non-negative integer.
    """
    raw = os.environ.get(HISTORY_MAX_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_ENTRIES
    try:
        n = int(raw)
    except ValueError:
        n = -1
    if n < 0:
        raise GalaxySDValueError(f"${HISTORY_MAX_ENV} must be a whole number >= 0 (rows kept), got {raw!r}")
    return n


def thumbnail_png(images: Sequence[np.ndarray], px: int = THUMB_PX, n: int = THUMB_IMAGES) -> bytes:
    """A PNG strip of the first ``n`` images (``(H, W, 3)`` uint8), each box-averaged to ``px`` pixels.

    Box averaging (PIL ``Image.reduce``-like ``BOX`` filter) keeps the flux of small features
    better than nearest neighbour at thumbnail size. Stored at half size when over :data:`MAX_THUMB_BYTES`.
    """
    from PIL import Image

    if not len(images):
        raise GalaxySDValueError("a thumbnail needs at least one image")
    for side in (px, max(8, px // 2)):
        tiles = [Image.fromarray(np.asarray(im, dtype=np.uint8)).convert("RGB").resize((side, side), Image.BOX)
                 for im in list(images)[:n]]
        strip = Image.new("RGB", (side * len(tiles), side))
        for i, t in enumerate(tiles):
            strip.paste(t, (i * side, 0))
        buf = io.BytesIO()
        strip.save(buf, format="PNG", optimize=True)
        if buf.tell() <= MAX_THUMB_BYTES:
            break
    return buf.getvalue()


@dataclass(frozen=True)
class HistoryEntry:
    """One stored generation (a row of ``generations``)."""

    id: int
    created_at: _dt.datetime
    session_id: str
    user: str
    prompt: str
    negative_prompt: str
    features: Tuple[str, ...]
    feature_guidance: Dict[str, float]
    seed: Optional[int]
    n_images: int
    model_fingerprint: str
    settings: Dict[str, Any]
    record: Dict[str, Any]
    thumbnail: Optional[bytes]

    def reuse_settings(self, contrast: Optional[Mapping[str, float]] = None) -> Tuple[Dict[str, Any], List[str]]:
        """Control values that remake this generation (all its images), and notes of what was clamped
        (``contrast``: the loaded model's contrast weights, :func:`~galaxysd_core.studio.controls.fold_contrast`)."""
        from galaxysd_core.studio.controls import settings_from_png

        return settings_from_png({**self.record, "num_images_per_prompt": self.n_images}, contrast)

    def changes_to(self, current: Mapping[str, Any]) -> List[str]:
        """What differs from this generation's settings to ``current`` (request settings of the controls now)."""
        from galaxysd_core.studio.generation import settings_changes

        return settings_changes(self.settings, dict(current))

    @property
    def summary(self) -> str:
        """``"4 images · seed 7 · dust lane guidance 6"``: one line under the thumbnail."""
        seed = "random seed" if self.seed is None else f"seed {self.seed}"
        guided = "".join(f" · {p} guidance {v:g}" for p, v in self.feature_guidance.items())
        return f"{self.n_images} image{'s' if self.n_images != 1 else ''} · {seed}{guided}"


def _features(prompt: str, feature_guidance: Mapping[str, float]) -> List[str]:
    from galaxysd_core.prompts.grammar import features_from_prompt

    try:
        names = list(features_from_prompt(prompt))
    except GalaxySDValueError:
        names = []
    return list(dict.fromkeys([*names, *feature_guidance]))


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class GenerationHistory:
    """The ``generations`` table of a :class:`~galaxysd_core.studio.store.Store`.

    Parameters
    ----------
    store : Store
        Where the rows live (same database and transactions as the verdicts).
    max_entries : int, optional
        Rows kept (default :func:`history_limit`).

    Examples
    --------
    >>> import numpy as np
    >>> h = GenerationHistory(Store("sqlite:///:memory:"))
    >>> eid = h.add(prompt="sdss, smooth", seed=3, n_images=1, settings={"prompt": "sdss, smooth"},
    ...             record={"prompt": "sdss, smooth", "seed": 3}, images=[np.zeros((8, 8, 3), np.uint8)])
    >>> h.search("smooth")[0].seed
    3
    """

    def __init__(self, store: Store, max_entries: Optional[int] = None) -> None:
        self.store = store
        self.max_entries = history_limit() if max_entries is None else int(max_entries)
        if self.max_entries < 0:
            raise GalaxySDValueError(f"max_entries must be >= 0, got {max_entries}")
        self._ready = False
        self._lock = threading.Lock()

    @_db_errors
    def _ensure(self) -> None:
        if self._ready:
            return
        with self._lock:
            if not self._ready:
                try:
                    _metadata.create_all(self.store.engine, checkfirst=True)
                except sa.exc.OperationalError as exc:  # created by another process meanwhile
                    if "already exists" not in str(exc):
                        raise
                self._ready = True

    @property
    def url(self) -> str:  # for _db_errors' message
        return self.store.url

    # ----------------------------------------------------------------------------- write
    @_db_errors
    def add(self, *, prompt: str, seed: Optional[int], n_images: int, settings: Mapping[str, Any],
            record: Mapping[str, Any], negative_prompt: str = "", feature_guidance: Optional[Mapping[str, float]] = None,
            model_fingerprint: str = "", images: Sequence[np.ndarray] = (), session_id: str = "",
            user: str = "") -> Optional[int]:
        """Store one generation and prune beyond the limit, in one transaction; returns its id
        (None when the limit is 0: nothing is kept).

        Raises
        ------
        GalaxySDValueError
            For an empty or over-long prompt, a non-positive image count, settings that are not
            JSON, or over-long keys.
        """
        prompt = str(prompt or "").strip()
        if not prompt:
            raise GalaxySDValueError("a history entry needs a prompt")
        if len(prompt) > MAX_PROMPT_CHARS or len(str(negative_prompt or "")) > MAX_PROMPT_CHARS:
            raise GalaxySDValueError(f"prompts longer than {MAX_PROMPT_CHARS} characters are not kept in the history")
        if int(n_images) < 1:
            raise GalaxySDValueError(f"n_images must be >= 1, got {n_images}")
        session_id = _check_key(session_id, "session id", allow_empty=True)
        user = _check_key(user, "user name", allow_empty=True)
        fg = {str(p): float(v) for p, v in dict(feature_guidance or {}).items()}
        try:
            settings_json, record_json = json.dumps(dict(settings)), json.dumps(dict(record))
        except (TypeError, ValueError) as exc:
            raise GalaxySDValueError(f"history settings must be JSON values: {exc}") from exc
        if self.max_entries == 0:
            return None
        self._ensure()
        row = dict(created_at=_dt.datetime.now(_dt.timezone.utc), session_id=session_id, user=user, prompt=prompt,
                   negative_prompt=str(negative_prompt or ""), features="|" + "".join(f"{f}|" for f in _features(prompt, fg)),
                   feature_guidance=json.dumps(fg), seed=None if seed is None else int(seed), n_images=int(n_images),
                   model_fingerprint=str(model_fingerprint or "")[:64], settings=settings_json, record=record_json,
                   thumbnail=thumbnail_png(images) if len(images) else None)
        t = generations_table
        with self.store.write_transaction() as conn:
            new_id = int(conn.execute(t.insert().values(**row)).inserted_primary_key[0])
            keep = sa.select(t.c.id).order_by(t.c.id.desc()).limit(self.max_entries).scalar_subquery()
            conn.execute(t.delete().where(t.c.id.not_in(keep)))
        return new_id

    @_db_errors
    def prune(self, max_entries: Optional[int] = None) -> int:
        """Delete the oldest rows beyond ``max_entries`` (default the limit); returns how many went."""
        n = self.max_entries if max_entries is None else int(max_entries)
        if n < 0:
            raise GalaxySDValueError(f"max_entries must be >= 0, got {max_entries}")
        self._ensure()
        t = generations_table
        with self.store.write_transaction() as conn:
            keep = sa.select(t.c.id).order_by(t.c.id.desc()).limit(n).scalar_subquery()
            return int(conn.execute(t.delete().where(t.c.id.not_in(keep))).rowcount or 0)

    def add_generation(self, items: Sequence[Any], settings: Mapping[str, Any], **kwargs) -> Optional[int]:
        """:func:`record_generation` into this history."""
        return record_generation(self, items, settings, **kwargs)

    # ----------------------------------------------------------------------------- read
    @staticmethod
    def _entry(r) -> HistoryEntry:
        created = r.created_at
        if created is not None and created.tzinfo is None:
            created = created.replace(tzinfo=_dt.timezone.utc)
        return HistoryEntry(id=int(r.id), created_at=created, session_id=r.session_id or "", user=r.user or "",
                            prompt=r.prompt, negative_prompt=r.negative_prompt or "",
                            features=tuple(f for f in (r.features or "").split("|") if f),
                            feature_guidance=json.loads(r.feature_guidance or "{}"),
                            seed=None if r.seed is None else int(r.seed), n_images=int(r.n_images),
                            model_fingerprint=r.model_fingerprint or "", settings=json.loads(r.settings),
                            record=json.loads(r.record), thumbnail=r.thumbnail)

    @_db_errors
    def search(self, text: str = "", feature: Optional[str] = None, *, session_id: Optional[str] = None,
               limit: int = 50, offset: int = 0) -> List[HistoryEntry]:
        """Entries newest first whose prompt contains ``text`` (case-insensitive) and that have
        ``feature`` (in the prompt or guided), optionally of one session.

        Raises
        ------
        GalaxySDValueError
            For a search text over 200 characters or a limit outside 1..500.
        """
        text = str(text or "").strip()
        if len(text) > 200:
            raise GalaxySDValueError("search text is limited to 200 characters")
        if not 1 <= int(limit) <= 500 or int(offset) < 0:
            raise GalaxySDValueError("limit must be in 1..500 and offset >= 0")
        self._ensure()
        t = generations_table
        q = sa.select(t).order_by(t.c.id.desc()).limit(int(limit)).offset(int(offset))
        if text:
            q = q.where(sa.func.lower(t.c.prompt).like(f"%{_like_escape(text.lower())}%", escape="\\"))
        if feature:
            q = q.where(t.c.features.like(f"%|{_like_escape(str(feature).strip())}|%", escape="\\"))
        if session_id is not None:
            q = q.where(t.c.session_id == str(session_id))
        with self.store.read_transaction() as conn:
            return [self._entry(r) for r in conn.execute(q)]

    @_db_errors
    def get(self, entry_id: int) -> Optional[HistoryEntry]:
        """The entry of ``entry_id``, or None (pruned or never stored)."""
        self._ensure()
        t = generations_table
        with self.store.read_transaction() as conn:
            r = conn.execute(sa.select(t).where(t.c.id == int(entry_id))).first()
        return None if r is None else self._entry(r)

    @_db_errors
    def count(self, session_id: Optional[str] = None) -> int:
        """Rows stored (of one session when given)."""
        self._ensure()
        t = generations_table
        q = sa.select(sa.func.count()).select_from(t)
        if session_id is not None:
            q = q.where(t.c.session_id == str(session_id))
        with self.store.read_transaction() as conn:
            return int(conn.execute(q).scalar() or 0)

    @_db_errors
    def features_in_use(self) -> List[str]:
        """Every feature of the stored entries (for the search's feature filter), sorted."""
        self._ensure()
        t = generations_table
        with self.store.read_transaction() as conn:
            rows = conn.execute(sa.select(t.c.features).distinct()).scalars().all()
        return sorted({f for r in rows for f in (r or "").split("|") if f})


def record_generation(history: GenerationHistory, items: Sequence[Any], settings: Mapping[str, Any], *,
                      model_fingerprint: str = "", session_id: str = "", user: str = "") -> Optional[int]:
    """Store one press of Generate: its gallery items (:class:`~galaxysd_core.studio.generation.GalleryItem`)
    and request settings (:func:`~galaxysd_core.studio.generation.request_settings`)."""
    from galaxysd_core.io.provenance import provenance

    if not items:
        raise GalaxySDValueError("nothing to record: no images")
    first = items[0]
    params = dict(first.parameters)
    return history.add(prompt=first.prompt, seed=int(first.seed),
                       n_images=len(items), settings=settings, record=provenance(first.prompt, first.seed, params),
                       negative_prompt=str(params.get("negative_prompt") or ""),
                       feature_guidance=dict(settings.get("feature_guidance") or {}),
                       model_fingerprint=model_fingerprint, images=[it.image for it in items],
                       session_id=session_id, user=user)
