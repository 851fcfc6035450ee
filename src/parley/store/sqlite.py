"""SQLite store: WAL, synchronous=FULL, one writing connection with group commit.

Writes queue on the event loop. At the end of a loop iteration everything queued
becomes one batch: one transaction, its SQL run right there (each generic job inside
a SAVEPOINT, so one failing job undoes only itself; messages in a bulk INSERT). Its
COMMIT, the fsync, runs on a thread, and while the disk works the next batch gathers.
When the COMMIT returns, every job's future is settled on the loop: concurrent sends
thus share one fsync, and no future resolves before its data is on disk. Reads run on
a small thread pool with their own connections, which WAL lets proceed while the
writer writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import queue
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cache, partial
from itertools import chain, count
from operator import attrgetter
from pathlib import Path
from typing import Any, Final, Generic, NamedTuple, TypeVar

from parley.core import mention_keys
from parley.core.roomnames import room_key
from parley.core.search import held_words, holds_all
from parley.protocol import Message, MessageEvent, RoomEvent
from parley.store.base import (
    AuditEntry,
    Changed,
    ChangeRequest,
    DeleteRequest,
    EditRequest,
    FileRecord,
    Invite,
    MemberChange,
    MessageQuery,
    QuotaExceeded,
    ReactRequest,
    Registration,
    RoomRecord,
    SignUp,
    Store,
    Stored,
    StoreStats,
    StoreUnavailable,
    TopicRequest,
    UnknownFile,
    UnknownRoom,
    UnknownTarget,
    UnknownUser,
    UserRecord,
    UserSummary,
    dm_tag,
    new_tag,
    utc_timestamp,
)
from parley.store.batch import (
    ROW_COLUMNS,
    AppendPlan,
    AppendResult,
    Outcome,
    PendingAppend,
    QueuedAppends,
    Settles,
    settle,
    settle_outcomes,
)
from parley.store.driver import sqlite3
from parley.store.events import (
    EVENT_COLUMNS,
    MESSAGE_COLUMNS,
    check_allowed,
    dump,
    dump_some,
    event_of,
    load_names,
    load_reactions,
    logged_event,
    member_needed,
    message_of,
    toggled,
)
from parley.store.files import FILE_COLUMNS, READABLE_FILE, blob_path, blobs_of, file_of, file_row
from parley.store.migrations import SEARCH_VERSION, SQLITE_SEARCH_INDEX, refuse_newer
from parley.store.migrations import SQLITE as MIGRATIONS
from parley.store.roles import ban_refusal, change_audit, role_refusal

__all__ = ["SQLiteStore", "store_blob"]

T = TypeVar("T")
Job = Callable[[sqlite3.Connection], Any]

log = logging.getLogger("parley.store")

MAX_BATCH: Final = 1024
READS_PER_SHARE: Final = 8  # reads a reader thread takes before a second one is woken
# The search index is filled in bulk, not by each send (migrations.py, version 11): after
# this many sends, or this long after the first send it has not indexed yet.
# FTS5 merges the segments of its index `automerge` at a time (4 by default): a row is
# written again at each level it is merged into, and the levels grow with the index. At
# 16, a bulk fill of 4,096 rows into an index of 1,200,000 costs a third less (insert and
# fill: 5.66 -> 3.75 us a row; the bench's texts, which bring new words with every
# message), and into a fresh one a tenth less; term and prefix queries read no more
# (docs/performance.md, "Round 6").
SEARCH_AUTOMERGE: Final = 16
INDEX_FILL_ROWS: Final = 4096
INDEX_FILL_DELAY: Final = 0.5
BUSY_RETRY: Final = 0.005  # seconds between tries of a BEGIN that found the lock taken
BUSY_PATIENCE: Final = 5.0  # then the batch fails as unavailable (the client retries)
# The writer checkpoints (copies the WAL's pages into the database file) on its commit
# thread, between two batches, once a batch's answers are on their way: after this many
# writes and this long since the last checkpoint, or this long after it whatever was
# written (`_Writer._checkpoint_due`). SQLite's own, every 1,000 WAL pages, ran inside the
# COMMIT that crossed the line, so that batch's acks waited for the checkpoint's reads,
# writes and fsync while the loop, with every client waiting for them, had nothing to do.
CHECKPOINT_WRITES: Final = 1000
CHECKPOINT_EVERY: Final = 0.25
CHECKPOINT_IDLE: Final = 5.0
WAL_KEEP_BYTES: Final = 64 * 2**20
_ROW_MARKS: Final = "(" + ",".join("?" * len(ROW_COLUMNS.split(","))) + ")"
_ROW_INSERT: Final = (f"INSERT INTO messages ({ROW_COLUMNS}) VALUES ", _ROW_MARKS, "")
# Plain messages (no reply, mentions or attachments: most) go in without those three NULL
# columns: Python's sqlite3 binds None only after asking for an adapter (an AttributeError
# raised and cleared inside), which made three NULLs cost more than the seven other values
# of a row together. ?1: the batch's timestamp, the same for every row, bound once
# (`_sized_sql`).
_PLAIN_COLUMNS: Final = "room, seq, username, text, ts, client_id, n"
_PLAIN_INSERT: Final = (
    f"INSERT INTO messages ({_PLAIN_COLUMNS}) VALUES ",
    "(?,?,?,?,?1,?,?)",
    "",
)
# Plain messages of one room (a batch under load, most often): four values a row. The
# room (?1), the timestamp (?2) and the room's offset from seq to n (?3: both grow by one
# a message) are bound once: two binds a message fewer, measured 0.19 us a row less.
_ONE_ROOM_INSERT: Final = (
    f"INSERT INTO messages ({_PLAIN_COLUMNS})"
    " SELECT ?1, column1, column2, column3, ?2, column4, column1 + ?3 FROM (VALUES ",
    "(?,?,?,?)",
    ")",
)
_one_room_values: Final = attrgetter("seq", "username", "text", "client_id")
_REPLY_TO: Final = attrgetter("reply_to")
_EVENT_INSERT: Final = (
    "INSERT INTO messages (room, seq, username, text, ts, client_id, kind, target, data)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
# A mention row (username, room, seq) counts for its user when it lies past their marker.
_ADD_MENTION: Final = (
    "INSERT INTO read_marks (username, room, seq, n, own, ment) VALUES (?1, ?2, 0, 0, 0, 1)"
    " ON CONFLICT (username, room) DO UPDATE SET ment = ment + 1 WHERE read_marks.seq < ?3"
)
_DROP_MENTION: Final = (
    "UPDATE read_marks SET ment = ment - 1 WHERE username = ?1 AND room = ?2 AND seq < ?3"
)
# The search index (migrations.py, version 7): external content, so taking a message's
# words out needs its text as indexed, which is its text until the edit or delete
# statement that changes it (run after these).
_INDEX_WORDS: Final = "INSERT INTO message_words (rowid, text, room) VALUES (?, ?, ?)"
# The rows above `indexed_upto` are not in the index yet: `_fill_search_index` adds them.
_INDEXED_UPTO: Final = "SELECT indexed_upto FROM search_state"
_INDEX_TAIL: Final = (
    "INSERT INTO message_words (rowid, text, room) SELECT rowid, text, room FROM messages"
    " WHERE rowid > (" + _INDEXED_UPTO + ") AND kind IS NULL AND deleted = 0"
)
_INDEXED_ALL: Final = (
    "UPDATE search_state SET indexed_upto = (SELECT coalesce(max(rowid), 0) FROM messages)"
)
_UNINDEX_WORDS: Final = (
    "INSERT INTO message_words (message_words, rowid, text, room) VALUES ('delete', ?, ?, ?)"
)
# A live token of an account that is not banned (a ban deletes its tokens; this also holds
# for a sign-in that raced the ban).
_TOKEN_USER: Final = (
    "SELECT t.username FROM tokens t JOIN users u ON u.username = t.username"
    " WHERE t.token_hash = ? AND t.expires_at > ? AND u.banned = 0"
)
# Use up an invite code: unused and unexpired (?2 and ?4: now), for user ?1.
_USE_INVITE: Final = (
    "UPDATE invites SET used_by = ?, used_at = ?"
    " WHERE code = ? AND used_by IS NULL AND expires_at > ?"
)
_INVITE_COLUMNS: Final = "code, created_by, created_at, expires_at, used_by, used_at"
_NO_ID: Final = 2**63 - 1  # above every audit id
_BUMP: Final = "UPDATE rooms SET last_seq = last_seq + ?1, msgs = msgs + ?1 WHERE room = ?2"
# The user's own messages after their marker: a send adds to them (docs: migrations.py).
_ADD_OWN: Final = (
    "INSERT INTO read_marks (username, room, seq, n, own) VALUES ",
    "(?,?,0,0,?)",
    " ON CONFLICT (username, room) DO UPDATE SET own = own + excluded.own",
)
# A batch's rows go in multi-row statements of these sizes only (`_insert_sized`).
_LARGEST_STATEMENT: Final = 256


# Search (`_search`): the newest rows in reach are checked here first, a page at a time;
# the FTS5 index (without prefix lists since migration 10) answers for older ones.
_RECENT_ROWS: Final = 500  # checked for every search
_RECENT_MORE: Final = 2000  # at most, while every word is held and matches come often enough
_RECENT_PAGE: Final = 250
_SHORT_WORD: Final = 3
_COARSE_PAGE: Final = 100
_COARSE_PAGES: Final = 3
# A room `:user` may read now: public, or they are a member.
_READABLE: Final = (
    "(r.private = 0 OR EXISTS (SELECT 1 FROM members x WHERE x.room = r.room"
    " AND x.username = :user))"
)
_SEARCH_COLUMNS: Final = ", ".join("m." + c.strip() for c in MESSAGE_COLUMNS.split(","))


# Page caches, in KiB. A reader's holds what history and search read again and again. The
# writer's is smaller: at the end of a write transaction SQLite's page cache walks every
# page it holds (perf shows pcache1's truncate loop), which with 64 MiB of pages took 4% of
# the server's CPU at ingest, more as the cache filled. 8 MiB still holds the
# pages a batch writes to (the tails of the message table and its indexes, the search
# index's newest segments): measured per message with 1.2M messages stored, 13.0 µs
# at 64 MiB, 11.9 at 8 MiB, 11.95 at the default 2 MiB (docs/performance.md).
READER_CACHE_KIB: Final = 65536
WRITER_CACHE_KIB: Final = 8192


def _connect(path: Path, cache_kib: int = READER_CACHE_KIB) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute(f"PRAGMA cache_size=-{cache_kib}")
    # A deleted or edited message's old text is overwritten with zeros, on its page and on
    # the overflow pages a long one had, not left in the file's free space (Debian's SQLite
    # is built to do so; pysqlite3's is not). (It only matters where writes happen.)
    conn.execute("PRAGMA secure_delete=ON")
    return conn


def _visible(conn: sqlite3.Connection, where: str, params: tuple[Any, ...]) -> list[RoomRecord]:
    """The rooms the user (first parameter) may see, `where` narrowing them, with the
    user's counts (migrations.py says how they stay cheap)."""
    rows = conn.execute(
        "SELECT r.room, r.private, r.owner, r.last_seq, r.name, r.tag,"
        " m.since, coalesce(k.seq, 0), r.kind, r.topic,"
        " r.msgs - coalesce(k.n, 0) - coalesce(k.own, 0) - (SELECT count(*) FROM messages d"
        "   WHERE d.room = r.room AND d.deleted = 1 AND d.seq > coalesce(k.seq, 0)"
        "   AND d.username != ?1),"
        " coalesce(k.ment, 0)"
        " FROM rooms r LEFT JOIN members m ON m.room = r.room AND m.username = ?1"
        " LEFT JOIN read_marks k ON k.username = ?1 AND k.room = r.room"
        f" WHERE (r.private = 0 OR m.username IS NOT NULL) {where}",
        params,
    ).fetchall()
    dms = [r[0] for r in rows if r[8] == "dm"]
    people = _members_of(conn, dms) if dms else {}
    return [
        RoomRecord(
            r[0],
            bool(r[1]),
            r[2],
            r[3],
            r[4],
            r[5],
            math.inf if r[6] is None else r[6],
            r[7],
            r[8],
            r[9],
            max(r[10], 0),
            r[11],
            tuple(people.get(r[0], ())),
        )
        for r in rows
    ]


def _members_of(conn: sqlite3.Connection, rooms: list[str]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for chunk in _chunks(rooms, 500):
        rows = conn.execute(
            "SELECT room, username FROM members WHERE room IN ("
            + ",".join("?" * len(chunk))
            + ") ORDER BY room, username",
            chunk,
        ).fetchall()
        for room, username in rows:
            found.setdefault(room, []).append(username)
    return found


_Outcome = Outcome


class _Done(NamedTuple):
    """A batch whose COMMIT is due: the jobs' outcomes, then the sends and their results
    (kept apart: per send, no triple is built to carry its answer)."""

    outcomes: list[_Outcome]
    appends: list[PendingAppend]
    results: list[AppendResult]

    def futures(self) -> list[Settles]:
        """Every future of the batch, in order."""
        return [future for future, _, _ in self.outcomes] + [a.future for a in self.appends]


def _not_run(jobs: list[tuple[Job, Settles]], appends: list[PendingAppend]) -> list[Settles]:
    """The futures of a batch that failed before it ran, in order."""
    return [future for _, future in jobs] + [a.future for a in appends]


class _Writer:
    """The one writing connection: a batch's SQL runs on the event loop, its COMMIT on a
    thread, and the next batch gathers while that COMMIT waits for the disk.

    Why split it so: Python threads share one GIL, and every SQLite call lets it go and
    takes it back. A writer thread that ran the whole batch waited for the busy event loop
    at each of its calls; measured, those waits were most of a batch's time and bounded
    the throughput. The statements themselves are CPU work on cached pages (about 1.5 µs
    a message, no I/O), so the loop runs them without waiting for anyone, and the thread
    takes the GIL only twice a batch: to start the COMMIT and to hand back its result.
    Only one batch is open at a time, so the two never use the connection at once.
    """

    def __init__(
        self,
        path: Path,
        loop: asyncio.AbstractEventLoop,
        max_batch: int,
        index_fill: tuple[int, float],
    ) -> None:
        self.loop = loop
        self.max_batch = max_batch
        self.fill_rows, self.fill_delay = index_fill
        self.conn = _connect(path, WRITER_CACHE_KIB)
        # The loop must never sit in SQLite's busy handler: when another connection holds
        # the write lock, BEGIN fails at once and the batch is tried again a little later.
        self.conn.execute("PRAGMA busy_timeout=0")
        self.conn.execute("PRAGMA wal_autocheckpoint=0")  # the commit thread's (`_checkpoint`)
        # A spike's WAL is cut back to this when it starts over (it does not shrink by itself).
        self.conn.execute(f"PRAGMA journal_size_limit={WAL_KEEP_BYTES}")
        self.unchecked = 0  # writes committed since the last checkpoint
        self.checked_at = time.monotonic()
        # Whether there is a search index to fill: fixed for the store's life (`open` made
        # it so before this connection), so asked once, not per batch.
        self.indexes_words = _indexes_words(self.conn)
        self.unindexed = 0  # sends since the last fill (some may have been refused)
        self.fill_due = False
        self.fill_timer: asyncio.TimerHandle | None = None
        self.jobs: list[tuple[Job, Settles]] = []
        self.appends: list[PendingAppend] = []
        self.closing = False
        self.busy_since: float | None = None  # when BEGIN first found the lock taken
        self.commits: queue.SimpleQueue[_Done | None] = queue.SimpleQueue()
        # Clear while a batch is scheduled, or between its BEGIN and its settling; `busy`
        # is the same, as a plain bool for `add` to test per send (no method call).
        self.idle = asyncio.Event()
        self.idle.set()
        self.busy = False
        self.batches = 0
        self.committed_jobs = 0
        self.thread = threading.Thread(
            target=self._commit_loop, name="parley-sqlite-commit", daemon=True
        )
        self.thread.start()
        if self.indexes_words and _index_lags(self.conn):  # stopped before its last fill
            self._fill_later()

    def submit(self, job: Job) -> asyncio.Future[Any]:
        """Queue a job for the next batch (a batch runs its jobs before its sends)."""
        future: asyncio.Future[Any] = self.loop.create_future()
        if self.closing:
            future.set_exception(StoreUnavailable("store is closed"))
            return future
        self.jobs.append((job, future))
        self._wake()
        return future

    def add(self, pending: PendingAppend) -> None:
        """Queue a send for the next batch."""
        if self.closing:
            pending.future.set_exception(StoreUnavailable("store is closed"))
            return
        self.appends.append(pending)
        if not self.busy:  # (tested here too: no call per send while a batch is due)
            self._wake()

    def add_all(self, appends: list[PendingAppend]) -> None:
        """`add` for several sends, in order, in one step."""
        if self.closing:
            for pending in appends:
                pending.future.set_exception(StoreUnavailable("store is closed"))
            return
        self.appends += appends
        if not self.busy:
            self._wake()

    def _wake(self) -> None:
        if not self.busy:  # start at the end of this loop iteration, with all it queued
            self.busy = True
            self.idle.clear()
            self.loop.call_soon(self._start)

    def _fill_later(self) -> None:
        if self.fill_timer is None:
            self.fill_timer = self.loop.call_later(self.fill_delay, self._fill_soon)

    def _fill_soon(self) -> None:
        self.fill_timer = None
        if not self.closing:
            self.fill_due = True
            self._wake()

    async def stop(self) -> None:
        """Take no more writes, finish the ones taken, then close the connection (the
        search index's fill may wait for the next start: search reads what it lacks)."""
        self.closing = True
        if self.fill_timer is not None:
            self.fill_timer.cancel()
            self.fill_timer = None
        await self.idle.wait()
        self.commits.put(None)
        await asyncio.to_thread(self.thread.join)
        self.conn.close()

    def _start(self) -> None:
        """BEGIN and run the next batch's statements, then hand its COMMIT to the thread.
        A batch takes up to `max_batch` of what is queued: jobs first (as they run first
        in it), but at most half of it while sends wait, so that neither starves. (So a job
        queued behind more than half a batch of sends may run before some of them.)"""
        most_jobs = max(1, self.max_batch // 2) if self.appends else self.max_batch
        jobs, self.jobs = _split(self.jobs, most_jobs)
        appends, self.appends = _split(self.appends, self.max_batch - len(jobs))
        if not jobs and not appends and not (self.fill_due and not self.closing):
            self.busy = False
            self.idle.set()
            return
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if self._retry_later(exc, jobs, appends):
                return
            if self.fill_due:  # not at once again (that would spin): after the delay
                self.fill_due = False
                self._fill_later()
            self._fail(exc, _not_run(jobs, appends))
            return
        self.busy_since = None
        try:
            outcomes = [_run_job(self.conn, job, future) for job, future in jobs]
            results = _append_all(self.conn, appends) if appends else []
            if self.indexes_words:
                self._index_in_bulk(len(appends))
        except Exception as exc:  # not only sqlite3.Error: a batch must never stay open
            self._fail(exc, _not_run(jobs, appends))
            return
        self.commits.put(_Done(outcomes, appends, results))

    def _fail(self, exc: Exception, futures: list[Settles]) -> None:
        """The open batch failed: undo it, and every one of `futures` fails as unavailable."""
        self._committed(_Done(_failed(self.conn, exc, futures), [], []))

    def _index_in_bulk(self, sends: int) -> None:
        """Fill the search index in this batch's transaction when enough sends are
        waiting for it, or when the delay since the first of them has passed."""
        self.unindexed += sends
        if self.fill_due or self.unindexed >= self.fill_rows:
            _fill_search_index(self.conn)
            self.fill_due = False
            self.unindexed = 0
            if self.fill_timer is not None:
                self.fill_timer.cancel()
                self.fill_timer = None
        elif self.unindexed:
            self._fill_later()

    def _retry_later(
        self,
        exc: sqlite3.OperationalError,
        jobs: list[tuple[Job, Settles]],
        appends: list[PendingAppend],
    ) -> bool:
        """Another connection holds the write lock: put the batch back and try again soon,
        for up to BUSY_PATIENCE seconds. False: give up (or not a lock at all)."""
        if exc.sqlite_errorcode not in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
            return False
        now = self.loop.time()
        if self.busy_since is None:
            self.busy_since = now
        elif now - self.busy_since > BUSY_PATIENCE:
            self.busy_since = None
            return False
        self.jobs[:0] = jobs
        self.appends[:0] = appends
        self.loop.call_later(BUSY_RETRY, self._start)
        return True

    def _commit_loop(self) -> None:
        """The thread: COMMIT each batch (the fsync), then settle it on the loop; then, when
        one is due, checkpoint before the loop starts the next batch."""
        while (done := self.commits.get()) is not None:
            try:
                self.conn.execute("COMMIT")
            except Exception as exc:
                done = _Done(_failed(self.conn, exc, done.futures()), [], [])
            else:
                written = len(done.outcomes) + len(done.appends)
                self.batches += 1
                self.committed_jobs += written
                self.unchecked += written
            checkpoint = self._checkpoint_due(time.monotonic())
            self.loop.call_soon_threadsafe(self._committed, done, checkpoint)
            if checkpoint:
                self._checkpoint()
                self.loop.call_soon_threadsafe(self._resume)

    def _checkpoint_due(self, now: float) -> bool:
        if not self.unchecked:
            return False
        since = now - self.checked_at
        return since >= CHECKPOINT_IDLE or (
            since >= CHECKPOINT_EVERY and self.unchecked >= CHECKPOINT_WRITES
        )

    def _checkpoint(self) -> None:
        """A PASSIVE checkpoint: it waits for no reader, and copies what none still reads.
        The loop starts no batch meanwhile (`_committed` leaves that to this thread), so
        once it has copied all of the WAL and no reader still began before it, the next
        batch writes the WAL again from its start."""
        try:
            self.conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except Exception:  # the batches are committed all the same; the WAL waits longer
            log.exception("checkpoint failed; tried again after the next batches")
        self.unchecked = 0
        self.checked_at = time.monotonic()

    def _resume(self) -> None:
        """The next batch, once this loop iteration's sends have queued."""
        self.loop.call_soon(self._start)

    def _committed(self, done: _Done, checkpoint: bool = False) -> None:
        """Settle a batch; start the next, unless the commit thread checkpoints first (it
        starts it after)."""
        settle_outcomes(done.outcomes)
        settle(done.appends, done.results)
        if not checkpoint:
            self._resume()


def _split(items: list[T], count: int) -> tuple[list[T], list[T]]:
    """The first `count` of `items` and the rest (all of them at once, most often)."""
    if len(items) <= count:
        return items, []
    return items[:count], items[count:]


def _failed(conn: sqlite3.Connection, exc: Exception, futures: list[Settles]) -> list[_Outcome]:
    """Undo the open transaction; every job of the batch fails as unavailable."""
    with contextlib.suppress(sqlite3.Error):
        if conn.in_transaction:
            conn.execute("ROLLBACK")
    failure = StoreUnavailable(f"sqlite: {exc}")
    return [(future, None, failure) for future in futures]


def _run_job(conn: sqlite3.Connection, job: Job, future: Settles) -> _Outcome:
    """One generic job in a SAVEPOINT: its own failure undoes only itself. The database
    refusing to work (SQLITE_FULL when only the statement was undone, not the whole
    transaction, which depends on where the pages ran out) is StoreUnavailable, as it is
    when the batch fails whole."""
    conn.execute("SAVEPOINT job")
    try:
        result = job(conn)
    except sqlite3.OperationalError as exc:
        conn.execute("ROLLBACK TO job")
        return future, None, StoreUnavailable(f"sqlite: {exc}")
    except Exception as exc:
        conn.execute("ROLLBACK TO job")
        return future, None, exc
    finally:
        conn.execute("RELEASE job")
    return future, result, None


def _append_all(conn: sqlite3.Connection, appends: list[PendingAppend]) -> list[AppendResult]:
    """Store a batch of messages with few SQLite calls; one at a time if that fails.

    Optimistic about resends: the batch is inserted without looking for them first, and
    the unique (client_id, username) index rejects the whole statement if it holds one.
    Only then is the batch redone with a lookup. A resend follows a lost ack, which is
    rare, while the lookup costs a query per sender.
    """
    conn.execute("SAVEPOINT appends")
    try:
        try:
            results = _bulk_append(conn, appends, {})
        except sqlite3.IntegrityError:
            conn.execute("ROLLBACK TO appends")
            results = _bulk_append(conn, appends, _stored_by_client(conn, appends))
    except sqlite3.Error:  # unexpected: isolate the culprit by going one by one
        conn.execute("ROLLBACK TO appends")
        conn.execute("RELEASE appends")
        return [_one_by_one(conn, a) for a in appends]
    conn.execute("RELEASE appends")
    return results


def _one_by_one(conn: sqlite3.Connection, a: PendingAppend) -> AppendResult:
    """A send stored alone, in its own SAVEPOINT: its result, or why it failed."""
    _, result, error = _run_job(conn, partial(_append_one, a), a.future)
    return result if error is None else error


def _bulk_append(
    conn: sqlite3.Connection,
    appends: list[PendingAppend],
    known: dict[tuple[str, str], Message],
) -> list[AppendResult]:
    """`known`: messages already stored under some of the batch's (username, client_id)."""
    with_files = [a for a in appends if a.attachments]
    _resolve_files(conn, with_files)
    plan = AppendPlan(appends, known)
    named = [a for a in appends if "@" in a.text]
    _resolve_mentions(conn, named)
    # (a reply's seq is at least 1: `any` over them in C)
    plain = not with_files and not any(a.mentions for a in named)
    plain = plain and not any(map(_REPLY_TO, appends))
    ts = utc_timestamp()
    stored: list[tuple[str, int, list[MessageEvent]]] = []
    for room, indexes in list(plan.by_room.items()):
        # a public room at once; a private one (no row back) once its senders are members
        bumped = conn.execute(
            _BUMP + " AND private = 0 RETURNING last_seq, msgs", (len(indexes), room)
        ).fetchone()
        if bumped is None and (count := _members_only(conn, plan, room)):
            bumped = conn.execute(_BUMP + " RETURNING last_seq, msgs", (count, room)).fetchone()
        if bumped is None:
            if room in plan.by_room:
                plan.unknown(room)
        else:  # (n, the ordinal among the room's messages, grows with seq)
            stored.append((room, bumped[1] - bumped[0], plan.stored(room, bumped[0], ts)))
    if stored:
        _insert_messages(conn, stored, ts, plain)
        _insert_sized(conn, _ADD_OWN, plan.own_counts())
        _add_mentions(conn, plan.mention_rows())
        _link_files(conn, plan.attachment_rows())
    return plan.results()


def _insert_messages(
    conn: sqlite3.Connection,
    stored: list[tuple[str, int, list[MessageEvent]]],
    ts: str,
    plain: bool,
) -> None:
    """INSERT a batch's new messages, each room's (room, offset of n from seq, messages),
    in a few multi-row statements; `plain`: none has a reply, mentions or attachments."""
    if plain and len(stored) == 1:
        room, offset, msgs = stored[0]
        _insert_sized(conn, _ONE_ROOM_INSERT, list(map(_one_room_values, msgs)), (room, ts, offset))
    elif plain:
        rows: list[tuple[Any, ...]] = [
            (m.room, m.seq, m.username, m.text, m.client_id, m.seq + offset)
            for _, offset, msgs in stored
            for m in msgs
        ]
        _insert_sized(conn, _PLAIN_INSERT, rows, (ts,))
    else:
        rows = [  # ROW_COLUMNS
            (
                m.room,
                m.seq,
                m.username,
                m.text,
                ts,
                m.client_id,
                m.reply_to,
                dump(m.mentions) if m.mentions else None,
                m.seq + offset,
                dump(m.attachments) if m.attachments else None,
            )
            for _, offset, msgs in stored
            for m in msgs
        ]
        _insert_sized(conn, _ROW_INSERT, rows)


def _insert_sized(
    conn: sqlite3.Connection,
    sql: tuple[str, str, str],
    rows: Sequence[Sequence[Any]],
    shared: tuple[Any, ...] = (),
) -> None:
    """Run `sql` (head, one row's marks, tail) for `rows`, in statements of 256, 128, …,
    1 rows: at most 9 statements, each of them prepared once for the connection's life.
    `shared`: the values of ?1, ?2, … that the row marks name (the same for every row).

    Why not one statement of exactly len(rows): each row count is a different SQL text,
    and the connection keeps only its last 128 statements prepared; a batch whose size
    has fallen out of them prepares its INSERT anew, which costs more than running it
    (measured: 630 µs to prepare a 400-row INSERT, 560 µs to run it)."""
    start = 0
    for size in _statement_sizes(len(rows)):
        values = list(chain(shared, chain.from_iterable(rows[start : start + size])))
        conn.execute(_sized_sql(sql, size), values)  # (flattened in C, no loop per value)
        start += size


def _statement_sizes(total: int) -> list[int]:
    """`total` as a sum of powers of two, none above _LARGEST_STATEMENT, largest first."""
    sizes = [_LARGEST_STATEMENT] * (total // _LARGEST_STATEMENT)
    rest = total % _LARGEST_STATEMENT
    size = _LARGEST_STATEMENT
    while rest:
        size //= 2
        if rest >= size:
            sizes.append(size)
            rest -= size
    return sizes


@cache
def _sized_sql(sql: tuple[str, str, str], size: int) -> str:
    """`size` rows of marks; when they name shared parameters (?1 …), every other mark
    is numbered after them. Cached: the same string object every time, so its hash, which
    the statement cache looks up, is computed once."""
    head, marks, tail = sql
    shared = [int(number) for number in re.findall(r"\?(\d+)", marks)]
    if not shared:
        return head + ",".join([marks] * size) + tail
    numbers = count(max(shared) + 1)
    rows = [re.sub(r"\?(?!\d)", lambda _: f"?{next(numbers)}", marks) for _ in range(size)]
    return head + ",".join(rows) + tail


def _resolve_files(conn: sqlite3.Connection, appends: list[PendingAppend]) -> None:
    """Set each send's `files` (its attachments, which its sender must have uploaded), or
    `refused` when one is not found."""
    for a in appends:
        rows = conn.execute(
            f"SELECT {FILE_COLUMNS} FROM files WHERE uploader = ? AND id IN ("
            + ",".join("?" * len(a.attachments))
            + ")",
            (a.username, *a.attachments),
        ).fetchall()
        found = {row[0]: file_of(row).as_file() for row in rows}
        missing = [i for i in a.attachments if i not in found]
        a.refused = UnknownFile(missing[0]) if missing else None
        a.files = [] if missing else [found[i] for i in a.attachments]


def _link_files(conn: sqlite3.Connection, links: list[tuple[str, str, int]]) -> None:
    """(file id, room, seq): the message carries the file (counted on the file's row)."""
    conn.executemany("INSERT INTO message_files (file_id, room, seq) VALUES (?, ?, ?)", links)
    conn.executemany("UPDATE files SET refs = refs + 1 WHERE id = ?", [(f,) for f, _, _ in links])


def _unlink_files(conn: sqlite3.Connection, room: str, seq: int) -> None:
    """A deleted message carries its files no more."""
    conn.execute(
        "UPDATE files SET refs = refs - 1 WHERE id IN"
        " (SELECT file_id FROM message_files WHERE room = ? AND seq = ?)",
        (room, seq),
    )
    conn.execute("DELETE FROM message_files WHERE room = ? AND seq = ?", (room, seq))


def _add_file(
    root: Path,
    record: FileRecord,
    blobs: list[tuple[str, Path]],
    quota: int,
    conn: sqlite3.Connection,
) -> None:
    """Store an upload's record, and its bytes under `root` unless stored already. The
    bytes are moved in place inside the writer's transaction: a purge (also the writer's)
    then never removes content that a file row it cannot see yet is about to use."""
    if quota:
        used = conn.execute(
            "SELECT coalesce(sum(size), 0) FROM files WHERE uploader = ?", (record.uploader,)
        ).fetchone()[0]
        if used + record.size > quota:
            raise QuotaExceeded(record.uploader)
    for sha, temporary in blobs:
        store_blob(conn, root, sha, temporary)
    conn.execute(
        f"INSERT INTO files ({FILE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        file_row(record),
    )


def store_blob(
    conn: sqlite3.Connection, root: Path, sha256: str, temporary: Path, refs: int = 1
) -> Path | None:
    """Count `refs` more users of content `sha256`, and move its bytes from `temporary` to
    their place under `root` unless they are there already; that place when they moved
    (the caller's to remove should its transaction fail)."""
    conn.execute(
        "INSERT INTO blobs (sha256, refs) VALUES (?, ?)"
        " ON CONFLICT (sha256) DO UPDATE SET refs = refs + excluded.refs",
        (sha256, refs),
    )
    target = blob_path(root, sha256)
    if target.exists():
        return None
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(temporary, target)
    return target


def _purge_files(before: float, conn: sqlite3.Connection) -> tuple[int, list[str]]:
    """Delete the unused files uploaded before `before`; (how many, the contents no file
    uses any more)."""
    rows = conn.execute(
        "DELETE FROM files WHERE refs = 0 AND created_at < ? RETURNING sha256, thumb", (before,)
    ).fetchall()
    used = [sha for row in rows for sha in row if sha is not None]
    conn.executemany("UPDATE blobs SET refs = refs - 1 WHERE sha256 = ?", [(s,) for s in used])
    gone = []
    for chunk in _chunks(sorted(set(used)), 500):
        gone += conn.execute(
            "DELETE FROM blobs WHERE refs <= 0 AND sha256 IN ("
            + ",".join("?" * len(chunk))
            + ") RETURNING sha256",
            chunk,
        ).fetchall()
    return len(rows), [row[0] for row in gone]


def _remove_blobs(root: Path, shas: list[str], conn: sqlite3.Connection) -> None:
    """Remove the bytes of contents that no file uses (the writer's: see `_add_file`)."""
    for sha in shas:
        if conn.execute("SELECT 1 FROM blobs WHERE sha256 = ?", (sha,)).fetchone() is None:
            blob_path(root, sha).unlink(missing_ok=True)


def _read_blob(path: Path, offset: int, length: int) -> bytes:
    try:
        with path.open("rb") as f:
            f.seek(offset)
            return f.read(length)
    except FileNotFoundError:
        return b""


def _members_only(conn: sqlite3.Connection, plan: AppendPlan, room: str) -> int:
    """For a private room: keep its senders who are members; how many sends are left."""
    senders = plan.senders(room)
    found = conn.execute(
        "SELECT username FROM members WHERE room = ? AND username IN ("
        + ",".join("?" * len(senders))
        + ")",
        (room, *senders),
    ).fetchall()
    return plan.members_only(room, {row[0] for row in found})


def _resolve_mentions(conn: sqlite3.Connection, appends: list[PendingAppend]) -> None:
    """Set each send's `mentions`: the users its `@name`s name who may read its room."""
    for a in appends:
        a.mentions = _readers(conn, a.room, mention_keys(a.text))


def _readers(conn: sqlite3.Connection, room: str, keys: list[str]) -> list[str]:
    """The users named by `keys` (lowercased names) who may read the room, in that order."""
    if not keys:
        return []
    marks = ",".join("?" * len(keys))
    found = dict(
        conn.execute(
            "SELECT u.username_key, u.username FROM users u JOIN rooms r ON r.room = ?"
            f" WHERE u.username_key IN ({marks}) AND (r.private = 0 OR EXISTS"
            " (SELECT 1 FROM members m WHERE m.room = r.room AND m.username = u.username))",
            (room, *keys),
        ).fetchall()
    )
    return [found[k] for k in keys if k in found]


def _stored_by_client(
    conn: sqlite3.Connection, appends: list[PendingAppend]
) -> dict[tuple[str, str], Message]:
    """Messages already stored under the batch's (username, client_id) pairs.

    One query per sender, `username = ? AND client_id IN (...)`, so that SQLite looks up
    each pair in the (client_id, username) index; a row-value IN over both columns would
    scan the table.
    """
    wanted: dict[str, set[str]] = {}
    for a in appends:
        if a.client_id is not None:
            wanted.setdefault(a.username, set()).add(a.client_id)
    found: dict[tuple[str, str], Message] = {}
    for username, client_ids in wanted.items():
        for chunk in _chunks(sorted(client_ids), 500):
            rows = conn.execute(
                f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE username = ? AND client_id IN ("
                + ",".join("?" * len(chunk))
                + ")",
                (username, *chunk),
            ).fetchall()
            for row in rows:
                found[(row[2], row[5])] = message_of(row)
    return found


def _append_one(a: PendingAppend, conn: sqlite3.Connection) -> Stored:
    """The same as a bulk append of one message (the fallback path)."""
    result = _bulk_append(conn, [a], _stored_by_client(conn, [a]))[0]
    if isinstance(result, BaseException):
        raise result
    return result


def _chunks(items: Sequence[T], size: int) -> list[Sequence[T]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


class _ReaderThreads:
    """`count` threads that run what `submit` hands them, in turn, from one queue: all a
    read's hand-off needs. A ThreadPoolExecutor made a concurrent future (with its
    condition) and a work item per hand-off and woke its threads through a semaphore, for a
    result nobody read: the reads' answers go to the loop with `call_soon_threadsafe`."""

    def __init__(self, count: int, name: str) -> None:
        self._jobs: queue.SimpleQueue[tuple[Callable[..., object], tuple[Any, ...]] | None] = (
            queue.SimpleQueue()
        )
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}_{i}", daemon=True)
            for i in range(count)
        ]
        self._started = False
        self._closed = False

    def submit(self, fn: Callable[..., object], *args: Any) -> None:
        """Run `fn(*args)` on a reader thread; RuntimeError once shut down."""
        if self._closed:
            raise RuntimeError("the reader threads are shut down")
        if not self._started:  # at the first read: a maintenance command may never read
            for thread in self._threads:
                thread.start()
            self._started = True
        self._jobs.put((fn, args))

    def shutdown(self) -> None:
        """Let the threads finish what was handed to them, then end them."""
        self._closed = True
        if self._started:
            for _ in self._threads:
                self._jobs.put(None)
            for thread in self._threads:
                thread.join()

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            fn, args = job
            try:
                fn(*args)
            except BaseException:  # a job settles its own reads: a bug, and the thread goes on
                log.exception("reader thread job failed")


@dataclass(slots=True)
class _QueuedRead(Generic[T]):
    """A read asked for, and the future its answer goes to."""

    job: Callable[[sqlite3.Connection], T]
    future: asyncio.Future[T]


def _settle_reads(done: list[tuple[_QueuedRead[Any], Any, Exception | None]]) -> None:
    for read, result, error in done:
        if read.future.done():  # cancelled: its caller went away
            continue
        if error is None:
            read.future.set_result(result)
        else:
            read.future.set_exception(error)


class SQLiteStore(QueuedAppends, Store):
    """`files`: where uploads' bytes are kept (default: `files` beside the database);
    without `search`, messages are not indexed for search (the index is dropped); None:
    the index is left as it is (a maintenance command beside a running server).
    `index_fill`: after how many sends, or how many seconds after the first, the search
    index takes what was stored since its last fill (INDEX_FILL_ROWS, INDEX_FILL_DELAY)."""

    def __init__(
        self,
        path: Path,
        *,
        group_commit: bool = True,
        readers: int = 2,
        search: bool | None = True,
        files: Path | None = None,
        index_fill: tuple[int, float] = (INDEX_FILL_ROWS, INDEX_FILL_DELAY),
    ) -> None:
        self.path = path
        self.search_index = search
        self.index_fill = index_fill
        self.files = files or path.parent / "files"
        self.max_batch = MAX_BATCH if group_commit else 1
        self._readers = _ReaderThreads(readers, "parley-sqlite-read")
        self._reader_count = readers
        self._local = threading.local()
        self._writer: _Writer | None = None
        self._queued: list[_QueuedRead[Any]] = []  # reads asked for in this loop iteration

    # --- plumbing -------------------------------------------------------------

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = _connect(self.path)
        try:
            _migrate(conn)
            _keep_search_index(conn, self.search_index)
            _tune_search_index(conn)
        finally:
            conn.close()
        loop = asyncio.get_running_loop()
        self._writer = _Writer(self.path, loop, self.max_batch, self.index_fill)

    async def close(self) -> None:
        if self._writer is not None:
            await self._writer.stop()
            self._writer = None
        self._readers.shutdown()

    def stats(self) -> StoreStats:
        w = self._writer
        return StoreStats(w.batches, w.committed_jobs) if w else StoreStats(0, 0)

    async def _write(self, job: Callable[[sqlite3.Connection], T]) -> T:
        if self._writer is None:
            raise StoreUnavailable("store is closed")
        result: T = await self._writer.submit(job)
        return result

    async def _read(self, job: Callable[[sqlite3.Connection], T], *, slow: bool = False) -> T:
        """Run `job` on a reader thread's connection. The reads asked for in one loop
        iteration go to the readers together, a share to each (a second reader only for
        more than READS_PER_SHARE of them): under load (a reconnect storm: a token and the
        rooms for every socket) one thread hand-off and one wake-up of the loop serve many
        reads, where each used to pay its own. A `slow`
        read (a search) goes alone, so that the quick ones never wait behind it."""
        loop = asyncio.get_running_loop()
        read: _QueuedRead[T] = _QueuedRead(job, loop.create_future())
        if slow:
            self._submit_reads(loop, [read])
        else:
            self._queued.append(read)
            if len(self._queued) == 1:
                loop.call_soon(self._dispatch_reads, loop)
        try:
            return await read.future
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"sqlite: {exc}") from exc

    def _dispatch_reads(self, loop: asyncio.AbstractEventLoop) -> None:
        queued, self._queued = self._queued, []
        # A reader per READS_PER_SHARE reads, at most all: waking a second thread for a
        # read or two costs more (its wake-up, its turns at the GIL) than running them after
        # the first one's
        shares = min(self._reader_count, -(-len(queued) // READS_PER_SHARE))
        for i in range(shares):
            self._submit_reads(loop, queued[i::shares])

    def _submit_reads(self, loop: asyncio.AbstractEventLoop, share: list[_QueuedRead[Any]]) -> None:
        try:
            self._readers.submit(self._run_reads, loop, share)
        except RuntimeError:  # shut down: the store is closed
            for read in share:
                if not read.future.done():
                    read.future.set_exception(StoreUnavailable("store is closed"))

    def _run_reads(self, loop: asyncio.AbstractEventLoop, reads: list[_QueuedRead[Any]]) -> None:
        """In a reader thread: each read in turn, then one call to settle them all."""
        done: list[tuple[_QueuedRead[Any], Any, Exception | None]] = []
        for read in reads:
            try:
                done.append((read, self._run_read(read.job), None))
            except Exception as exc:  # the reader's own to raise
                done.append((read, None, exc))
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            loop.call_soon_threadsafe(_settle_reads, done)

    def _run_read(self, job: Callable[[sqlite3.Connection], T]) -> T:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = _connect(self.path)
            conn.execute("PRAGMA query_only=ON")
        return job(conn)

    # --- users and sessions -----------------------------------------------------

    async def create_user(self, username: str, password_hash: str, *, admin: bool = False) -> bool:
        return await self._write(partial(_insert_user, username, password_hash, admin))

    async def register(
        self, username: str, password_hash: str, invite: str | None, now: float
    ) -> SignUp:
        return await self._write(partial(_register, username, password_hash, invite, now))

    async def find_user(self, username: str) -> UserRecord | None:
        def job(conn: sqlite3.Connection) -> UserRecord | None:
            row = conn.execute(
                "SELECT username, password_hash, admin, banned FROM users WHERE username_key = ?",
                (username.lower(),),
            ).fetchone()
            return UserRecord(row[0], row[1], bool(row[2]), bool(row[3])) if row else None

        return await self._read(job)

    async def create_token(self, token_hash: str, username: str, expires_at: float) -> None:
        await self._write(
            lambda conn: conn.execute(
                "INSERT INTO tokens (token_hash, username, expires_at) VALUES (?, ?, ?)",
                (token_hash, username, expires_at),
            )
        )

    async def token_user(self, token_hash: str, now: float) -> str | None:
        def job(conn: sqlite3.Connection) -> str | None:
            row = conn.execute(_TOKEN_USER, (token_hash, now)).fetchone()
            return str(row[0]) if row else None

        return await self._read(job)

    async def delete_token(self, token_hash: str) -> None:
        await self._write(
            lambda conn: conn.execute("DELETE FROM tokens WHERE token_hash = ?", (token_hash,))
        )

    async def set_password(
        self,
        username: str,
        password_hash: str,
        keep_token: str | None,
        actor: str | None = None,
    ) -> None:
        def job(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE users SET password_hash = ? WHERE username_key = ?",
                (password_hash, username.lower()),
            )
            _delete_user_tokens(conn, username, keep_token)
            if actor is not None:
                _audit(conn, actor, "reset_password", username)

        await self._write(job)

    async def delete_user_tokens(self, username: str) -> int:
        return await self._write(lambda conn: _delete_user_tokens(conn, username, None))

    async def purge_expired_tokens(self, now: float) -> int:
        def job(conn: sqlite3.Connection) -> int:
            return conn.execute("DELETE FROM tokens WHERE expires_at <= ?", (now,)).rowcount

        return await self._write(job)

    # --- admin ----------------------------------------------------------------------

    async def list_users(self, query: str, after: str | None, limit: int) -> list[UserSummary]:
        def job(conn: sqlite3.Connection) -> list[UserSummary]:
            rows = conn.execute(
                "SELECT username, admin, banned, created_at FROM users"
                " WHERE instr(username_key, ?) > 0 AND username_key > ?"
                " ORDER BY username_key LIMIT ?",
                (query.lower(), (after or "").lower(), limit),
            ).fetchall()
            return [UserSummary(r[0], bool(r[1]), bool(r[2]), r[3]) for r in rows]

        return await self._read(job)

    async def set_admin(self, actor: str, username: str, admin: bool) -> bool:
        return await self._write(partial(_set_admin, actor, username, admin))

    async def set_banned(self, actor: str, username: str, banned: bool) -> bool:
        return await self._write(partial(_set_banned, actor, username, banned))

    async def registration(self) -> Registration:
        def job(conn: sqlite3.Connection) -> Registration:
            return _registration(conn)

        return await self._read(job)

    async def set_registration(self, actor: str, mode: Registration) -> bool:
        def job(conn: sqlite3.Connection) -> bool:
            changed = conn.execute(
                "UPDATE settings SET registration = ? WHERE id = 1 AND registration != ?",
                (mode.value, mode.value),
            ).rowcount
            if changed:
                _audit(conn, actor, "registration", mode.value)
            return changed == 1

        return await self._write(job)

    async def create_invite(self, actor: str, code: str, now: float, expires_at: float) -> Invite:
        def job(conn: sqlite3.Connection) -> Invite:
            conn.execute(
                "INSERT INTO invites (code, created_by, created_at, expires_at)"
                " VALUES (?, ?, ?, ?)",
                (code, actor, now, expires_at),
            )
            _audit(conn, actor, "invite", code)
            return Invite(code, actor, now, expires_at)

        return await self._write(job)

    async def invites(self) -> list[Invite]:
        def job(conn: sqlite3.Connection) -> list[Invite]:
            rows = conn.execute(
                f"SELECT {_INVITE_COLUMNS} FROM invites ORDER BY created_at DESC, code"
            )
            return [Invite(*row) for row in rows.fetchall()]

        return await self._read(job)

    async def delete_invite(self, actor: str, code: str) -> bool:
        def job(conn: sqlite3.Connection) -> bool:
            if not conn.execute("DELETE FROM invites WHERE code = ?", (code,)).rowcount:
                return False
            _audit(conn, actor, "invite_revoke", code)
            return True

        return await self._write(job)

    async def audit_log(
        self, before: int | None = None, limit: int = 50, after: int | None = None
    ) -> list[AuditEntry]:
        def job(conn: sqlite3.Connection) -> list[AuditEntry]:
            if after is not None:
                sql, bound = "id > ? ORDER BY id ASC", after
            else:
                sql, bound = "id < ? ORDER BY id DESC", _NO_ID if before is None else before
            rows = conn.execute(
                f"SELECT id, ts, actor, action, target, room FROM audit WHERE {sql} LIMIT ?",
                (bound, limit),
            )
            return [AuditEntry(*row) for row in rows.fetchall()]

        return await self._read(job)

    # --- rooms --------------------------------------------------------------------

    async def create_room(
        self,
        name: str,
        private: bool,
        owner: str,
        *,
        tag: str | None = None,
        now: float | None = None,
    ) -> RoomRecord | None:
        tag = tag or new_tag()
        since = time.time() if now is None else now

        def job(conn: sqlite3.Connection) -> RoomRecord | None:
            # a DM is never called by its name: it takes no room's name
            if _visible(conn, "AND r.name = ? AND r.kind != 'dm'", (owner, name)):
                return None
            taken = conn.execute("SELECT 1 FROM rooms WHERE room = ?", (name,)).fetchone()
            key = room_key(name, tag, taken is not None)
            conn.execute(
                "INSERT INTO rooms (room, private, owner, last_seq, created_at, name, tag)"
                " VALUES (?, ?, ?, 0, ?, ?, ?)",
                (key, int(private), owner, utc_timestamp(), name, tag),
            )
            conn.execute(
                "INSERT INTO members (room, username, since) VALUES (?, ?, ?)", (key, owner, since)
            )
            return RoomRecord(key, private, owner, 0, name, tag, since)

        return await self._write(job)

    async def rooms_named(self, name: str, username: str) -> list[RoomRecord]:
        return await self._read(lambda conn: _visible(conn, "AND r.name = ?", (username, name)))

    async def list_rooms(self, username: str) -> list[RoomRecord]:
        return await self._read(lambda conn: _visible(conn, "ORDER BY r.room", (username,)))

    async def rooms_and_role(self, username: str) -> tuple[list[RoomRecord], bool]:
        def job(conn: sqlite3.Connection) -> tuple[list[RoomRecord], bool]:
            rooms = _visible(conn, "ORDER BY r.room", (username,))
            row = conn.execute(
                "SELECT admin FROM users WHERE username_key = ?", (username.lower(),)
            ).fetchone()
            return rooms, bool(row and row[0])

        return await self._read(job)  # one read: one hand-off and one wake-up, not two

    async def add_member(self, room: str, username: str, now: float | None = None) -> None:
        since = time.time() if now is None else now
        await self._write(
            lambda conn: conn.execute(
                "INSERT INTO members (room, username, since) VALUES (?, ?, ?)"
                " ON CONFLICT DO NOTHING",
                (room, username, since),
            )
        )

    async def members(self, room: str) -> list[str]:
        def job(conn: sqlite3.Connection) -> list[str]:
            rows = conn.execute(
                "SELECT username FROM members WHERE room = ? ORDER BY username", (room,)
            ).fetchall()
            return [str(row[0]) for row in rows]

        return await self._read(job)

    async def mark_read(self, room: str, username: str, seq: int) -> int | None:
        return await self._write(partial(_mark_read, room, username, seq))

    async def change_member(self, change: MemberChange) -> RoomEvent | None:
        return await self._write(partial(_change_member, change))

    async def open_dm(
        self, members: list[str], now: float | None = None
    ) -> tuple[RoomRecord, bool]:
        since = time.time() if now is None else now
        return await self._write(partial(_open_dm, members, since))

    # --- messages -----------------------------------------------------------------

    def _queue(self, pending: PendingAppend) -> None:
        if self._writer is None:
            pending.future.set_exception(StoreUnavailable("store is closed"))
        else:
            self._writer.add(pending)

    def _queue_all(self, pendings: list[PendingAppend]) -> None:
        if self._writer is None:
            super()._queue_all(pendings)  # each refused
        else:
            self._writer.add_all(pendings)

    async def messages(self, query: MessageQuery) -> list[Message]:
        def job(conn: sqlite3.Connection) -> list[Message]:
            sql, params = _page_sql(query)
            return [message_of(row) for row in conn.execute(sql, params).fetchall()]

        return await self._read(job)

    async def message(self, room: str, seq: int) -> Message | None:
        def job(conn: sqlite3.Connection) -> Message | None:
            row = _message_row(conn, MESSAGE_COLUMNS, room, seq)
            return None if row is None else message_of(row)

        return await self._read(job)

    async def events(self, room: str, after: int, limit: int) -> list[RoomEvent]:
        def job(conn: sqlite3.Connection) -> list[RoomEvent]:
            rows = conn.execute(
                f"SELECT {EVENT_COLUMNS} FROM messages WHERE room = ? AND seq > ?"
                " ORDER BY seq LIMIT ?",
                (room, after, limit),
            ).fetchall()
            return [event_of(row) for row in rows]

        return await self._read(job)

    async def change(self, request: ChangeRequest) -> Changed:
        return await self._write(partial(_change, request))

    async def search(
        self, username: str, words: list[str], room: str | None, limit: int
    ) -> list[Message]:
        if not words:
            return []
        return await self._read(partial(_search, username, words, room, limit), slow=True)

    async def last_seqs(self) -> dict[str, int]:
        def job(conn: sqlite3.Connection) -> dict[str, int]:
            return dict(conn.execute("SELECT room, last_seq FROM rooms").fetchall())

        return await self._read(job)

    # --- files --------------------------------------------------------------------

    async def add_file(
        self, record: FileRecord, content: Path, thumb: Path | None, quota: int
    ) -> None:
        blobs = blobs_of(record, content, thumb)
        await self._write(partial(_add_file, self.files, record, blobs, quota))

    async def readable_file(self, file_id: str, username: str) -> FileRecord | None:
        sql = READABLE_FILE.format(id=":id", user=":user")

        def job(conn: sqlite3.Connection) -> FileRecord | None:
            row = conn.execute(sql, {"id": file_id, "user": username}).fetchone()
            return None if row is None else file_of(row)

        return await self._read(job)

    async def read_blob(self, sha256: str, offset: int, length: int) -> bytes:
        path = blob_path(self.files, sha256)
        return await self._read(lambda _: _read_blob(path, offset, length))

    async def purge_files(self, before: float) -> int:
        count, gone = await self._write(partial(_purge_files, before))
        if gone:
            await self._write(partial(_remove_blobs, self.files, gone))
        return count


def _message_row(conn: sqlite3.Connection, columns: str, room: str, seq: int) -> Any:
    return conn.execute(
        f"SELECT {columns} FROM messages WHERE room = ? AND seq = ? AND kind IS NULL", (room, seq)
    ).fetchone()


def _mark_read(room: str, username: str, seq: int, conn: sqlite3.Connection) -> int | None:
    """Move the marker forward (to the room's last seq at most) with its counts: the
    messages up to it (the ordinal of the last one) and the user's own after it."""
    found = conn.execute("SELECT last_seq FROM rooms WHERE room = ?", (room,)).fetchone()
    mark = conn.execute(
        "SELECT seq, own, ment FROM read_marks WHERE username = ? AND room = ?", (username, room)
    ).fetchone()
    old, own, ment = mark if mark else (0, 0, 0)
    last = found[0] if found else 0
    seq = min(seq, last)
    if seq <= old:
        return None
    n = conn.execute(
        "SELECT n FROM messages WHERE room = ? AND seq <= ? AND kind IS NULL"
        " ORDER BY seq DESC LIMIT 1",
        (room, seq),
    ).fetchone()
    # What was just read no longer counts: the user's own messages (none left past the
    # room's end; else those in the range, each read once as the marker only moves
    # forward) and the mentions (an index range of the user's own rows).
    if own and seq == last:
        own = 0
    elif own:
        own -= conn.execute(
            "SELECT count(*) FROM messages WHERE room = ? AND seq > ? AND seq <= ?"
            " AND username = ? AND kind IS NULL",
            (room, old, seq, username),
        ).fetchone()[0]
    if ment:
        ment -= conn.execute(
            "SELECT count(*) FROM mentions"
            " WHERE username = ? AND room = ? AND seq > ? AND seq <= ?",
            (username, room, old, seq),
        ).fetchone()[0]
    conn.execute(
        "INSERT INTO read_marks (username, room, seq, n, own, ment) VALUES (?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (username, room) DO UPDATE"
        " SET seq = excluded.seq, n = excluded.n, own = excluded.own, ment = excluded.ment",
        (username, room, seq, n[0] if n else 0, own, ment),
    )
    return seq


def _add_event(
    conn: sqlite3.Connection,
    room: str,
    username: str,
    client_id: str | None,
    kind: str,
    *,
    text: str = "",
    target: int | None = None,
    data: dict[str, Any] | None = None,
) -> RoomEvent:
    """Store one event with the room's next seq; the frame it makes."""
    bumped = conn.execute(
        "UPDATE rooms SET last_seq = last_seq + 1 WHERE room = ? RETURNING last_seq", (room,)
    ).fetchone()
    if bumped is None:
        raise UnknownRoom(room)
    row = (room, bumped[0], username, text, utc_timestamp(), client_id)
    encoded = None if data is None else dump(data)
    conn.execute(_EVENT_INSERT, (*row, kind, target, encoded))
    return logged_event(row, kind, target, encoded)


def _change(request: ChangeRequest, conn: sqlite3.Connection) -> Changed:
    """An edit, delete, reaction or topic: checked, applied and logged in one transaction."""
    if request.client_id is not None:
        seen = conn.execute(
            f"SELECT {EVENT_COLUMNS} FROM messages WHERE client_id = ? AND username = ?",
            (request.client_id, request.username),
        ).fetchone()
        if seen is not None:
            return Changed(event_of(seen), seen[1], created=False)
    room = conn.execute(
        "SELECT owner, last_seq, private FROM rooms WHERE room = ?", (request.room,)
    ).fetchone()
    if room is None:
        raise UnknownRoom(request.room)
    owner, last_seq, private = room
    if member_needed(request, bool(private)) and not _is_member(conn, request):
        raise UnknownRoom(request.room)
    if isinstance(request, TopicRequest):
        check_allowed(request, owner, None)
        _audit_change(conn, request, owner, None)
        conn.execute("UPDATE rooms SET topic = ? WHERE room = ?", (request.topic, request.room))
        event = _add_event(
            conn, request.room, request.username, request.client_id, "topic", text=request.topic
        )
        return Changed(event, event.seq, created=True)
    target = _message_row(
        conn, "username, deleted, reactions, mentions", request.room, request.target
    )
    if target is None or target[1]:
        raise UnknownTarget(request.target)
    author, _, reactions, mentioned = target
    check_allowed(request, owner, author)
    _audit_change(conn, request, owner, author)
    if isinstance(request, EditRequest):
        return _edit(conn, request, mentioned)
    if isinstance(request, DeleteRequest):
        return _delete(conn, request, mentioned)
    return _react(conn, request, load_reactions(reactions), last_seq)


def _audit_change(
    conn: sqlite3.Connection, request: ChangeRequest, owner: str | None, author: str | None
) -> None:
    entry = change_audit(request, owner, author)
    if entry is not None:
        _audit(conn, request.username, *entry, room=request.room)


def _is_member(conn: sqlite3.Connection, request: ChangeRequest) -> bool:
    found = conn.execute(
        "SELECT 1 FROM members WHERE room = ? AND username = ?", (request.room, request.username)
    ).fetchone()
    return found is not None


def _edit(conn: sqlite3.Connection, request: EditRequest, mentioned: str | None) -> Changed:
    """`mentioned`: the message's mentions column before the edit."""
    room, seq, author = request.room, request.target, request.username
    mentions = _readers(conn, room, mention_keys(request.text))
    event = _add_event(conn, room, author, request.client_id, "edit", text=request.text, target=seq)
    _reindex(conn, room, seq, request.text)
    conn.execute(
        "UPDATE messages SET text = ?, edited = ?, mentions = ? WHERE room = ? AND seq = ?",
        (request.text, event.ts, dump_some(mentions), room, seq),
    )
    _drop_mentions(conn, room, seq, mentioned)
    _add_mentions(conn, [(u, room, seq) for u in mentions if u != author])
    return Changed(event, event.seq, created=True)


def _delete(conn: sqlite3.Connection, request: DeleteRequest, mentioned: str | None) -> Changed:
    room, seq = request.room, request.target
    event = _add_event(conn, room, request.username, request.client_id, "delete", target=seq)
    # A tombstone keeps who and when; its words go, the edits' too (a replay must not
    # bring them back), and so does its place in the search index.
    _reindex(conn, room, seq, None)
    _unlink_files(conn, room, seq)
    conn.execute(
        "UPDATE messages SET text = '', deleted = 1, reactions = NULL, mentions = NULL,"
        " attachments = NULL WHERE room = ? AND seq = ?",
        (room, seq),
    )
    conn.execute(
        "UPDATE messages SET text = '' WHERE room = ? AND seq > ? AND target = ? AND kind = 'edit'",
        (room, seq, seq),
    )
    _drop_mentions(conn, room, seq, mentioned)
    return Changed(event, event.seq, created=True)


def _reindex(conn: sqlite3.Connection, room: str, seq: int, text: str | None) -> None:
    """Take message `seq`'s words out of the search index and put `text`'s in (None: it
    is being deleted). Before its row changes: the index needs the text it holds."""
    if not _indexes_words(conn):
        return
    row = conn.execute(
        "SELECT rowid, text, room FROM messages WHERE room = ? AND seq = ?", (room, seq)
    ).fetchone()
    if row[0] > conn.execute(_INDEXED_UPTO).fetchone()[0]:
        return  # not indexed yet: the next fill takes its text as it is then
    conn.execute(_UNINDEX_WORDS, row)
    if text is not None:
        conn.execute(_INDEX_WORDS, (row[0], text, room))


def _search(
    username: str, words: list[str], room: str | None, limit: int, conn: sqlite3.Connection
) -> list[Message]:
    """The newest messages (by rowid: the order they were stored in) of the rooms
    `username` may read now (or of `room` alone) that hold every word as a prefix.

    Without prefix lists, a prefix query makes FTS5 merge the lists of every word the
    prefix begins before its first row comes out: 150 ms for "t" in a million messages,
    10-20 ms for a word in a third of them. So the newest rows are checked here first
    (search-as-you-type's short, common words match among them at once), and the index
    answers only for what is older, led by the words those rows did not hold: words that
    rare have short lists (`_older_matches`). The rows the index does not hold yet (those
    stored since its last fill, migrations.py version 11) are always checked here.
    """
    rooms = _readable_rooms(conn, username, room)
    if not rooms:
        return []
    recent = _RecentScan(words, rooms, limit)
    floor = recent.run(conn, room)
    if len(recent.found) >= limit or floor is None:
        return _messages_by_rowid(conn, recent.found[:limit])
    rare = [w for w in words if w not in recent.seen]
    wanted = _Wanted(username, rooms, room, limit - len(recent.found))
    return _messages_by_rowid(conn, recent.found) + _older_matches(conn, words, rare, wanted, floor)


@dataclass(frozen=True, slots=True)
class _Wanted:
    """Whose search, in which rooms (`rooms`: the keys of those they may read; `room`:
    the one asked for, if any), for how many more messages."""

    username: str
    rooms: set[str]
    room: str | None
    limit: int


class _RecentScan:
    """The newest _RECENT_ROWS rows (or more: `_worth`) of a search's rooms, checked
    here: the rowids of the matches (newest first) and which query words the rows held."""

    def __init__(self, words: list[str], rooms: set[str], limit: int) -> None:
        self.words = words
        self.rooms = rooms
        self.limit = limit
        self.found: list[int] = []
        self.seen: set[str] = set()
        self.lowest = _NO_ID  # the lowest rowid checked so far

    def run(self, conn: sqlite3.Connection, room: str | None) -> int | None:
        """Scan (of `room`, or of all rooms); the rowid at or below which the rest lies
        (None: there is no rest)."""
        if room is None:
            top = conn.execute("SELECT max(rowid) FROM messages").fetchone()[0] or 0
            sql = (
                "SELECT rowid, room, text FROM messages WHERE rowid <= :top AND rowid > :bottom"
                " AND kind IS NULL AND deleted = 0 ORDER BY rowid DESC"
            )
        else:
            top = conn.execute("SELECT last_seq FROM rooms WHERE room = ?", (room,)).fetchone()[0]
            sql = (
                "SELECT rowid, room, text FROM messages WHERE room = :room AND seq <= :top"
                " AND seq > :bottom AND kind IS NULL AND deleted = 0 ORDER BY seq DESC"
            )
        indexed = conn.execute(_INDEXED_UPTO).fetchone()[0]
        start = top
        floor = max(top - _RECENT_MORE, 0)
        while top > 0 and len(self.found) < self.limit:
            # rows above `indexed` must be read here; others while they are worth it
            unindexed = (top if room is None else self.lowest) > indexed
            if not unindexed and not (top > floor and self._worth(start - top)):
                break
            bottom = max(top - _RECENT_PAGE, 0 if unindexed else floor)
            self._check(conn.execute(sql, {"room": room, "top": top, "bottom": bottom}))
            top = bottom
        floor = top
        if len(self.found) >= self.limit or floor == 0:
            return None
        if room is None:
            return floor
        row = conn.execute(  # the room's rest: its rows up to seq `floor`
            "SELECT rowid FROM messages WHERE room = ? AND seq <= ? ORDER BY seq DESC LIMIT 1",
            (room, floor),
        ).fetchone()
        return None if row is None else int(row[0])

    def _worth(self, scanned: int) -> bool:
        """Whether to read on past the first _RECENT_ROWS: only while every word has been
        held and the matches so far say the rest are within _RECENT_MORE rows (several
        common words seldom together: the index would merge the long lists of each)."""
        if scanned < _RECENT_ROWS:
            return True
        if not self.found or len(self.seen) < len(self.words):
            return False
        return scanned * self.limit <= _RECENT_MORE * len(self.found)

    def _check(self, rows: Iterable[tuple[int, str, str]]) -> None:
        for rowid, room, text in rows:
            self.lowest = min(self.lowest, rowid)
            if room in self.rooms:
                held = held_words(text, self.words)
                self.seen.update(held)
                if len(held) == len(self.words):
                    self.found.append(rowid)


def _messages_by_rowid(conn: sqlite3.Connection, rowids: list[int]) -> list[Message]:
    """The messages of these rows, in the same order."""
    if not rowids:
        return []
    rows = conn.execute(
        f"SELECT {_SEARCH_COLUMNS}, m.rowid FROM messages m WHERE m.rowid IN ("
        + ",".join("?" * len(rowids))
        + ")",
        rowids,
    ).fetchall()
    by_rowid = {row[-1]: message_of(row) for row in rows}
    return [by_rowid[rowid] for rowid in rowids]


def _older_matches(
    conn: sqlite3.Connection, words: list[str], rare: list[str], wanted: _Wanted, floor: int
) -> list[Message]:
    """The newest `limit` matches with rowid at most `floor`, through the index. The
    index query is of the `rare` words (none of the newest rows held them: short lists,
    whatever their length), else of the words of _SHORT_WORD characters or more (a
    short, common word's list is the longest); the other words are checked here, for a
    few pages of what the index gives. When too few of those match, the query of every
    word gives the rest."""
    lead = rare or [w for w in words if len(w) >= _SHORT_WORD] or words
    found: list[Message] = []
    below = floor + 1
    for _ in range(_COARSE_PAGES):
        page = _matching(conn, lead, _COARSE_PAGE, wanted.room, below=below)
        for _, msg in page:
            if msg.room in wanted.rooms and (lead == words or holds_all(msg.text, words)):
                found.append(msg)
                if len(found) == wanted.limit:
                    return found
        if len(page) < _COARSE_PAGE:
            return found
        below = page[-1][0]
    more = wanted.limit - len(found)
    rest = _matching(conn, words, more, wanted.room, wanted.username, below)
    return found + [msg for _, msg in rest]


def _quoted(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def _readable_rooms(conn: sqlite3.Connection, username: str, room: str | None) -> set[str]:
    """The keys of the rooms `username` may read now (only `room`, when given)."""
    rows = conn.execute(
        f"SELECT r.room FROM rooms r WHERE {_READABLE}" + (" AND r.room = :room" if room else ""),
        {"user": username, "room": room},
    ).fetchall()
    return {row[0] for row in rows}


def _matching(
    conn: sqlite3.Connection,
    words: list[str],
    limit: int,
    room: str | None,
    user: str | None = None,
    below: int | None = None,
) -> list[tuple[int, Message]]:
    """The FTS5 query: the newest `limit` messages (with rowid below `below`) holding
    every one of `words` as a prefix, with their rowids; of `room` only when given, of
    the rooms `user` may read now when given."""
    # Each word a quoted FTS5 string with `*`: a prefix query of plain words, whatever
    # FTS5 syntax the user typed (core/search.py already kept only word characters),
    # of the text column; one room: its key, of the room column.
    match = "text : (" + " AND ".join(_quoted(w) + "*" for w in words) + ")"
    if room is not None:
        match += " AND room : " + _quoted(room)
    sql = _matching_sql(room is not None, user is not None, below is not None)
    params = {"match": match, "user": user, "limit": limit, "room": room, "below": below}
    rows = conn.execute(sql, params).fetchall()
    return [(row[-1], message_of(row)) for row in rows]


@cache
def _matching_sql(in_room: bool, for_user: bool, below: bool) -> str:
    """`_matching`'s SQL. CROSS JOIN: the index's matches, newest first, drive the join.
    SQLite 3.51's planner otherwise reads a room's messages by the room's index and asks the
    search index about each one (a room of 10,000 messages and a word nothing holds: 10
    s, against 16 ms this way; 3.40's chose this order by itself)."""
    sql = (
        f"SELECT {_SEARCH_COLUMNS}, f.rowid FROM message_words f"
        " CROSS JOIN messages m ON m.rowid = f.rowid"
        " WHERE message_words MATCH :match AND m.kind IS NULL AND m.deleted = 0"
    )
    if for_user:
        sql += f" AND m.room IN (SELECT r.room FROM rooms r WHERE {_READABLE})"
    if in_room:
        sql += " AND m.room = :room"
    if below:
        sql += " AND f.rowid < :below"
    return sql + " ORDER BY f.rowid DESC LIMIT :limit"


def _drop_mentions(conn: sqlite3.Connection, room: str, seq: int, mentioned: str | None) -> None:
    """Delete a message's mention rows: by the names its mentions column holds, so that
    each is a primary-key lookup (the table has no index on (room, seq)); each one past
    its user's marker no longer counts."""
    for user in load_names(mentioned):
        key = (user, room, seq)
        if conn.execute(
            "DELETE FROM mentions WHERE username = ? AND room = ? AND seq = ?", key
        ).rowcount:
            conn.execute(_DROP_MENTION, key)


def _add_mentions(conn: sqlite3.Connection, rows: list[tuple[str, str, int]]) -> None:
    """Store mention rows (username, room, seq), each counted past its user's marker."""
    conn.executemany("INSERT INTO mentions VALUES (?, ?, ?)", rows)
    conn.executemany(_ADD_MENTION, rows)


def _react(
    conn: sqlite3.Connection, request: ReactRequest, reactions: dict[str, list[str]], last: int
) -> Changed:
    changed = toggled(reactions, request.emoji, request.username, request.on)
    if changed is None:  # nothing to change, nothing to log
        return Changed(None, last, created=False)
    room, seq = request.room, request.target
    event = _add_event(
        conn,
        room,
        request.username,
        request.client_id,
        "reaction",
        target=seq,
        data={"emoji": request.emoji, "on": request.on},
    )
    conn.execute(
        "UPDATE messages SET reactions = ? WHERE room = ? AND seq = ?",
        (dump(changed) if changed else None, room, seq),
    )
    return Changed(event, event.seq, created=True)


def _change_member(change: MemberChange, conn: sqlite3.Connection) -> RoomEvent | None:
    room = conn.execute("SELECT private FROM rooms WHERE room = ?", (change.room,)).fetchone()
    if room is None:
        raise UnknownRoom(change.room)
    if change.change == "invited":
        cur = conn.execute(
            "INSERT INTO members (room, username, since) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
            (change.room, change.username, time.time()),
        )
    else:
        cur = conn.execute(
            "DELETE FROM members WHERE room = ? AND username = ?", (change.room, change.username)
        )
    changed, private = cur.rowcount == 1, bool(room[0])
    if change.change == "removed" and (changed or not private):  # public: sockets are cut
        _audit(conn, change.by, "remove_member", change.username, room=change.room)
    if not changed or not private:  # a public room has no member events
        return None
    return _add_event(
        conn,
        change.room,
        change.username,
        None,
        "member",
        data={"change": change.change, "by": change.by},
    )


def _open_dm(members: list[str], since: float, conn: sqlite3.Connection) -> tuple[RoomRecord, bool]:
    tag = dm_tag(members)
    key = room_key("dm", tag, name_taken=True)
    cur = conn.execute(
        "INSERT INTO rooms (room, private, owner, last_seq, created_at, name, tag, kind)"
        " VALUES (?, 1, NULL, 0, ?, 'dm', ?, 'dm') ON CONFLICT DO NOTHING",
        (key, utc_timestamp(), tag),
    )
    created = cur.rowcount == 1
    if created:
        conn.executemany(
            "INSERT INTO members (room, username, since) VALUES (?, ?, ?)",
            [(key, m, since) for m in members],
        )
    record = _visible(conn, "AND r.room = ?", (members[0], key))
    return record[0], created


def _audit(
    conn: sqlite3.Connection, actor: str, action: str, target: str, room: str | None = None
) -> None:
    conn.execute(
        "INSERT INTO audit (ts, actor, action, target, room) VALUES (?, ?, ?, ?, ?)",
        (utc_timestamp(), actor, action, target, room),
    )


def _insert_user(username: str, password_hash: str, admin: bool, conn: sqlite3.Connection) -> bool:
    """The first account is an admin: decided inside the writer's transaction, which no
    other writer (another node's or the CLI's) shares."""
    first = conn.execute("SELECT 1 FROM users LIMIT 1").fetchone() is None
    cur = conn.execute(
        "INSERT INTO users (username, username_key, password_hash, created_at, admin)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        (username, username.lower(), password_hash, utc_timestamp(), int(admin or first)),
    )
    return cur.rowcount == 1


def _register(
    username: str, password_hash: str, invite: str | None, now: float, conn: sqlite3.Connection
) -> SignUp:
    mode = _registration(conn)
    if mode is Registration.CLOSED:
        return SignUp.CLOSED
    taken = conn.execute("SELECT 1 FROM users WHERE username_key = ?", (username.lower(),))
    if taken.fetchone() is not None:
        return SignUp.TAKEN
    if mode is Registration.INVITE and not (
        invite is not None and conn.execute(_USE_INVITE, (username, now, invite, now)).rowcount == 1
    ):
        return SignUp.NO_INVITE
    _insert_user(username, password_hash, False, conn)
    return SignUp.CREATED


def _registration(conn: sqlite3.Connection) -> Registration:
    return Registration(conn.execute("SELECT registration FROM settings").fetchone()[0])


def _account(conn: sqlite3.Connection, username: str) -> tuple[str, bool, bool]:
    """(registered spelling, admin, banned) of an account, or UnknownUser."""
    row = conn.execute(
        "SELECT username, admin, banned FROM users WHERE username_key = ?", (username.lower(),)
    ).fetchone()
    if row is None:
        raise UnknownUser(username)
    return row[0], bool(row[1]), bool(row[2])


def _set_admin(actor: str, username: str, admin: bool, conn: sqlite3.Connection) -> bool:
    name, is_admin, banned = _account(conn, username)
    if is_admin == admin:
        return False
    admins = conn.execute("SELECT count(*) FROM users WHERE admin = 1").fetchone()[0]
    refusal = role_refusal(actor, name, grant=admin, banned=banned, last_admin=admins <= 1)
    if refusal is not None:
        raise refusal
    conn.execute("UPDATE users SET admin = ? WHERE username = ?", (int(admin), name))
    _audit(conn, actor, "grant" if admin else "revoke", name)
    return True


def _set_banned(actor: str, username: str, banned: bool, conn: sqlite3.Connection) -> bool:
    name, is_admin, is_banned = _account(conn, username)
    refusal = ban_refusal(actor, name, admin=is_admin, ban=banned)
    if refusal is not None:
        raise refusal
    if is_banned == banned:
        return False
    conn.execute("UPDATE users SET banned = ? WHERE username = ?", (int(banned), name))
    if banned:
        _delete_user_tokens(conn, name, None)
    _audit(conn, actor, "ban" if banned else "unban", name)
    return True


def _delete_user_tokens(conn: sqlite3.Connection, username: str, keep: str | None) -> int:
    cur = conn.execute(
        "DELETE FROM tokens WHERE username = (SELECT username FROM users WHERE username_key = ?)"
        " AND token_hash IS NOT ?",
        (username.lower(), keep),
    )
    return cur.rowcount


def _page_sql(query: MessageQuery) -> tuple[str, tuple[Any, ...]]:
    """One SQL for the three paging modes; descending pages are flipped back to ascending."""
    base = f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE room = ? AND kind IS NULL"
    params: list[Any] = [query.room]
    if query.after is not None:
        base += " AND seq > ?"
        params.append(query.after)
    if query.before is not None:
        base += " AND seq < ?"
        params.append(query.before)
    if query.after is not None and query.before is None:
        return base + " ORDER BY seq ASC LIMIT ?", (*params, query.limit)
    inner = base + " ORDER BY seq DESC LIMIT ?"
    return f"SELECT * FROM ({inner}) ORDER BY seq ASC", (*params, query.limit)


def _keep_search_index(conn: sqlite3.Connection, wanted: bool | None) -> None:
    """Drop the search index (`--search off`), or build it again when it was dropped
    (once the schema has search at all); None: leave it as it is."""
    if wanted is None:
        return
    searchable = conn.execute(
        "SELECT 1 FROM schema_migrations WHERE version = ?", (SEARCH_VERSION,)
    ).fetchone()
    if searchable is None or _indexes_words(conn) == wanted:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        if wanted:
            for statement in filter(str.strip, SQLITE_SEARCH_INDEX.split(";")):
                conn.execute(statement)
            conn.execute(_INDEXED_ALL)
        else:
            conn.execute("DROP TABLE message_words")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _fill_search_index(conn: sqlite3.Connection) -> None:
    """Index the messages stored since the last fill, in the open transaction. A failure
    undoes only the fill: the sends around it stand, and search reads what it lacks."""
    conn.execute("SAVEPOINT fill")
    try:
        conn.execute(_INDEX_TAIL)
        conn.execute(_INDEXED_ALL)
    except sqlite3.Error:
        log.exception("search index: the fill failed; it is tried again after the next sends")
        conn.execute("ROLLBACK TO fill")
    finally:
        conn.execute("RELEASE fill")


def _index_lags(conn: sqlite3.Connection) -> bool:
    """Whether messages were stored that the index does not hold yet."""
    top = conn.execute("SELECT coalesce(max(rowid), 0) FROM messages").fetchone()[0]
    return bool(top > conn.execute(_INDEXED_UPTO).fetchone()[0])


def _indexes_words(conn: sqlite3.Connection) -> bool:
    """Whether the search index exists (`--search on`): asked once per writer, after the
    start applied `--search`. (A second server on the same SQLite file started with the
    other setting is not seen until restart: run one `--search` setting per database.)"""
    return (
        conn.execute(
            "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'message_words'"
        ).fetchone()
        is not None
    )


def _tune_search_index(conn: sqlite3.Connection) -> None:
    """Give the search index SEARCH_AUTOMERGE (a setting FTS5 keeps in the database)."""
    if not _indexes_words(conn):
        return
    row = conn.execute("SELECT v FROM message_words_config WHERE k = 'automerge'").fetchone()
    if row is None or row[0] != SEARCH_AUTOMERGE:
        conn.execute(
            "INSERT INTO message_words (message_words, rank) VALUES ('automerge', ?)",
            (SEARCH_AUTOMERGE,),
        )


def _migrate(conn: sqlite3.Connection) -> None:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations"
        " (version INTEGER PRIMARY KEY, applied_at TEXT)"
    )
    done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
    refuse_newer(done, (version for version, _ in MIGRATIONS))
    for version, sql in MIGRATIONS:
        if version in done:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in filter(str.strip, sql.split(";")):
                conn.execute(statement)
            conn.execute("INSERT INTO schema_migrations VALUES (?, ?)", (version, utc_timestamp()))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
