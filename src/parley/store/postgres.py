"""PostgreSQL store (asyncpg): several nodes share one database.

Every call borrows a connection from a small pool. Sends are group-committed:
those queued during one loop iteration form a batch, one batch in flight per
node (the next gathers while it commits). A room's share of a batch is one
statement, so one transaction: the room's row is locked and its `last_seq`
bumped by the count, and the messages inserted numbered after it. Concurrent
writers on any number of nodes queue on the room's row lock, so seqs stay
unique and gapless; a failed insert rolls the bump back. `(client_id,
username)` is a unique index: a batch holding a message already stored (a
resend, or the same client_id raced in by another node) fails as a whole and
is redone with a lookup, and the resend gets the stored message back.

The other events (edit, delete, reaction, topic, member) take the room's row
lock first too, in a transaction of their own: a change reads its target under
it, so changes of one message apply one at a time on any number of nodes.

Connection failures (PostgreSQL down or restarting) raise `StoreUnavailable`;
the pool reconnects on the next call, so a node recovers without a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any, Final

import asyncpg  # type: ignore[import-untyped]

from parley.core import mention_keys
from parley.core.roomnames import room_key
from parley.core.search import index_words
from parley.protocol import Message, RoomEvent
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
    PendingAppend,
    QueuedAppends,
    settle,
)
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
from parley.store.files import FILE_COLUMNS, READABLE_FILE, blobs_of, file_of, file_row
from parley.store.migrations import POSTGRES as MIGRATIONS
from parley.store.migrations import POSTGRES_SEARCH_INDEX, SEARCH_VERSION, refuse_newer
from parley.store.roles import ban_refusal, change_audit, role_refusal

__all__ = ["PostgresStore", "store_blob"]

log = logging.getLogger("parley.store")

Row = Any  # an asyncpg.Record: its columns by name and by index

POOL_MIN: Final = 1
POOL_MAX: Final = 10
CONNECT_TIMEOUT: Final = 5.0  # seconds to open one connection
ACQUIRE_TIMEOUT: Final = 10.0  # seconds to wait for a free pooled connection
COMMAND_TIMEOUT: Final = 15.0  # seconds for one statement
MIGRATION_LOCK: Final = 0x7061726C6579  # pg_advisory_xact_lock key ("parley")
MAX_BATCH: Final = 1024  # sends per batch (group commit)
RESEND_RACES: Final = 3  # tries when another node keeps storing a batch's resends first
_NO_ID: Final = 2**63 - 1  # above every audit id

# A message's search words (migrations.py, version 7): core/search.py's `index_words`,
# passed joined by spaces (each a run of word characters), made lexemes as they are.
_WORDS_OF: Final = "array_to_tsvector(string_to_array({}, ' '))"

# One room's share of a batch in one statement, so in one transaction: bump the room's seq
# and its count of messages by the batch's, insert the messages numbered after them, add
# each sender's messages to their own ones after their read marker, store the mentions
# (the mentions column's names but the author), and return the bumped seq and count
# (none: no such room). A resend makes the whole statement fail on the unique
# (client_id, username) index, bump included.
_APPEND_MANY: Final = (
    "WITH bumped AS ("
    " UPDATE rooms SET last_seq = last_seq + cardinality($2::text[]),"
    " msgs = msgs + cardinality($2::text[]) WHERE room = $1 RETURNING last_seq, msgs),"
    " sent AS (SELECT m.*, b.last_seq - cardinality($2::text[]) + m.ord AS seq,"
    " b.msgs - cardinality($2::text[]) + m.ord AS n FROM bumped b,"
    " unnest($2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[], $8::text[],"
    " $9::text[]) WITH ORDINALITY"
    " AS m(username, text, client_id, reply_to, mentions, words, attachments, ord)),"
    f" stored AS (INSERT INTO messages ({ROW_COLUMNS}, words)"
    " SELECT $1, seq, username, text, $7, client_id, reply_to, mentions, n, attachments,"
    f" {_WORDS_OF.format('words')} FROM sent),"
    " mentioned AS (SELECT u, sent.seq FROM sent,"
    " json_array_elements_text(sent.mentions::json) AS u WHERE u <> sent.username),"
    " noted AS (INSERT INTO mentions (username, room, seq) SELECT u, $1, seq FROM mentioned),"
    # one upsert per user (a row may not be changed twice in one statement): the senders'
    # own messages and the mentioned users' mentions, all past their markers
    " counts AS (SELECT username AS u, count(*) AS own, 0 AS ment FROM sent GROUP BY username"
    " UNION ALL SELECT u, 0, count(*) FROM mentioned GROUP BY u),"
    " marks AS (INSERT INTO read_marks (username, room, seq, n, own, ment)"
    " SELECT u, $1, 0, 0, sum(own), sum(ment) FROM counts GROUP BY u"
    " ON CONFLICT (username, room) DO UPDATE"
    " SET own = read_marks.own + EXCLUDED.own, ment = read_marks.ment + EXCLUDED.ment)"
    " SELECT last_seq, msgs FROM bumped"
)
_BY_CLIENTS: Final = (
    f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE (client_id, username) IN"
    " (SELECT c, u FROM unnest($1::text[], $2::text[]) AS k(u, c))"
)
# The users named by (room, lowercased name) pairs who may read that room.
_READERS: Final = (
    "SELECT k.room, u.username_key, u.username"
    " FROM (SELECT DISTINCT * FROM unnest($1::text[], $2::text[]) AS p(room, key)) k"
    " JOIN users u ON u.username_key = k.key JOIN rooms r ON r.room = k.room"
    " WHERE NOT r.private OR EXISTS"
    " (SELECT 1 FROM members m WHERE m.room = r.room AND m.username = u.username)"
)
# The database's clock, so that the nodes' clocks cannot disagree on what came first.
_DB_NOW_SQL: Final = "extract(epoch from clock_timestamp())::float8"
_DB_NOW: Final = f"SELECT {_DB_NOW_SQL}"
# The rooms user $1 may see, with when their membership began (none: a public room they
# never used) and their counts (migrations.py says how they stay cheap); a DM's members
# sorted by code point, as SQLite sorts them.
_VISIBLE: Final = (
    "SELECT r.room, r.private, r.owner, r.last_seq, r.name, r.tag,"
    " m.since, coalesce(k.seq, 0) AS last_read, r.kind, r.topic,"
    " r.msgs - coalesce(k.n, 0) - coalesce(k.own, 0) - (SELECT count(*) FROM messages d"
    "   WHERE d.room = r.room AND d.deleted = 1 AND d.seq > coalesce(k.seq, 0)"
    "   AND d.username <> $1) AS unread,"
    " coalesce(k.ment, 0) AS mentions,"
    " CASE WHEN r.kind = 'dm' THEN (SELECT array_agg(p.username ORDER BY p.username COLLATE \"C\")"
    "   FROM members p WHERE p.room = r.room) END AS people"
    " FROM rooms r LEFT JOIN members m ON m.room = r.room AND m.username = $1"
    " LEFT JOIN read_marks k ON k.username = $1 AND k.room = r.room"
    " WHERE (NOT r.private OR m.username IS NOT NULL)"
)
# Where the user's marker is and where it would go (none: no such room).
_MARK_TARGET: Final = (
    "SELECT coalesce(k.seq, 0) AS old, least($3::bigint, r.last_seq) AS new FROM rooms r"
    " LEFT JOIN read_marks k ON k.username = $1 AND k.room = r.room WHERE r.room = $2"
)
# The user's marker row, locked (created when missing: zeros count as no row), with the
# room's last seq as of this statement's start: a send of theirs committed after it has a
# later seq, and its count of own messages lands on the row once this one commits.
_LOCK_MARK: Final = (
    "INSERT INTO read_marks (username, room, seq, n, own) SELECT $1, room, 0, 0, 0"
    " FROM rooms WHERE room = $2 ON CONFLICT (username, room) DO UPDATE SET seq = read_marks.seq"
    " RETURNING seq, own, (SELECT last_seq FROM rooms WHERE room = $2) AS last_seq"
)
# Move the locked marker from $3 to $4: the ordinal of the last message up to it, and the
# user's own messages read on the way no longer count.
_MOVE_MARK: Final = (
    "UPDATE read_marks SET seq = $4,"
    " n = coalesce((SELECT n FROM messages WHERE room = $2 AND seq <= $4 AND kind IS NULL"
    "   ORDER BY seq DESC LIMIT 1), 0),"
    # a scan of the range read only when the user has messages of their own past the marker
    " own = CASE WHEN own = 0 THEN 0 ELSE own - (SELECT count(*) FROM messages"
    "   WHERE room = $2 AND seq > $3 AND seq <= $4 AND username = $1 AND kind IS NULL) END,"
    " ment = CASE WHEN ment = 0 THEN 0 ELSE ment - (SELECT count(*) FROM mentions"
    "   WHERE username = $1 AND room = $2 AND seq > $3 AND seq <= $4) END"
    " WHERE username = $1 AND room = $2"
)
# One change of the log, with the room's next seq (its row is locked already).
_ADD_EVENT: Final = (
    "WITH bumped AS (UPDATE rooms SET last_seq = last_seq + 1 WHERE room = $1 RETURNING last_seq)"
    " INSERT INTO messages (room, seq, username, text, ts, client_id, kind, target, data)"
    " SELECT $1, last_seq, $2, $3, $4, $5, $6, $7, $8 FROM bumped RETURNING seq"
)
_TARGET: Final = (
    "SELECT username, deleted, reactions, mentions FROM messages"
    " WHERE room = $1 AND seq = $2 AND kind IS NULL"
)
# A message's mention rows go (by the names of its mentions column: primary-key lookups);
# each past its user's marker no longer counts.
_DROP_MENTIONS: Final = (
    "WITH gone AS (DELETE FROM mentions WHERE username = ANY($3::text[]) AND room = $1"
    " AND seq = $2 RETURNING username)"
    " UPDATE read_marks SET ment = ment - 1"
    " WHERE room = $1 AND username IN (SELECT username FROM gone) AND seq < $2"
)
# Mention rows of message $3 for users $1, each counted when past its user's marker.
_ADD_MENTIONS: Final = (
    "WITH noted AS (INSERT INTO mentions (username, room, seq)"
    " SELECT u, $2, $3 FROM unnest($1::text[]) AS u)"
    " INSERT INTO read_marks (username, room, seq, n, own, ment)"
    " SELECT u, $2, 0, 0, 0, 1 FROM unnest($1::text[]) AS u"
    " ON CONFLICT (username, room) DO UPDATE SET ment = read_marks.ment + 1"
    " WHERE read_marks.seq < $3"
)
_INSERT_FILE: Final = (
    f"INSERT INTO files ({FILE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
)
# Every token of a user (by name key) but the one to keep ($2 NULL: keep none).
_DELETE_USER_TOKENS: Final = (
    "DELETE FROM tokens WHERE username = (SELECT username FROM users WHERE username_key = $1)"
    " AND token_hash IS DISTINCT FROM $2::text"
)
# A live token of an account that is not banned (a ban deletes its tokens; this also holds
# for a sign-in that raced the ban).
_TOKEN_USER: Final = (
    "SELECT t.username FROM tokens t JOIN users u ON u.username = t.username"
    " WHERE t.token_hash = $1 AND t.expires_at > $2 AND NOT u.banned"
)
_AUDIT: Final = "INSERT INTO audit (ts, actor, action, target, room) VALUES ($1, $2, $3, $4, $5)"
_INVITE_COLUMNS: Final = "code, created_by, created_at, expires_at, used_by, used_at"
# Every creation of an account takes the settings row's lock first: the registration mode
# it reads holds until it commits, and the first account is decided one at a time (two
# first registrations at once make one admin: the second sees the first's row).
_LOCK_SETTINGS: Final = "SELECT registration FROM settings WHERE id = 1 FOR UPDATE"

# What "the database cannot be reached" looks like from asyncpg.
_UNREACHABLE: Final = (
    OSError,  # refused, reset, timeouts (TimeoutError is an OSError)
    asyncpg.PostgresConnectionError,  # 08xxx and lost connections
    asyncpg.InterfaceError,  # "connection is closed", pool closing
    asyncpg.exceptions.OperatorInterventionError,  # 57xxx: shutdown, starting up, cancelled
    asyncpg.exceptions.InsufficientResourcesError,  # 53xxx: too many connections, disk full
)


def _room(row: Mapping[str, Any]) -> RoomRecord:
    return RoomRecord(
        row["room"],
        bool(row["private"]),
        row["owner"],
        int(row["last_seq"]),
        row["name"],
        row["tag"],
        math.inf if row["since"] is None else float(row["since"]),
        int(row["last_read"]),
        row["kind"],
        row["topic"],
        max(int(row["unread"]), 0),
        int(row["mentions"]),
        tuple(row["people"] or ()),
    )


def _rowcount(status: str) -> int:
    """The row count of a command status such as "DELETE 3"."""
    return int(status.rpartition(" ")[2])


async def _insert_batch(
    conn: Any,
    batch: list[PendingAppend],
    known: Mapping[tuple[str, str], Message],
    private: dict[str, bool],
) -> list[AppendResult]:
    """One statement per room; several rooms share one transaction, so one COMMIT."""
    await _resolve_files(conn, [a for a in batch if a.attachments])
    plan = AppendPlan(batch, known)
    guarded = await _private_rooms(conn, plan, private)
    await _resolve_mentions(conn, [a for a in batch if "@" in a.text])
    ts = utc_timestamp()

    async def store_room(room: str) -> None:
        sends = plan.to_store(room)
        bumped = await conn.fetchrow(
            _APPEND_MANY,
            room,
            [a.username for a in sends],
            [a.text for a in sends],
            [a.client_id for a in sends],
            [a.reply_to for a in sends],
            [dump_some(a.mentions) for a in sends],
            ts,
            [" ".join(index_words(a.text)) for a in sends],
            [dump(a.files) if a.files else None for a in sends],
        )
        if bumped is None:
            plan.unknown(room)
        else:
            plan.stored(room, int(bumped["last_seq"]), ts)

    attached = any(a.files for a in batch)
    if len(plan.by_room) == 1 and not guarded and not attached:
        await store_room(next(iter(plan.by_room)))
    elif plan.by_room:
        async with conn.transaction():
            await _members_only(conn, plan, guarded)
            # Row locks always taken in the same order: two nodes' batches over the same
            # rooms queue on each other instead of deadlocking (then the files' rows, as
            # a delete takes them: after its room's).
            for room in sorted(plan.by_room):
                await store_room(room)
            await _link_files(conn, plan.attachment_rows())
    return plan.results()


async def _resolve_files(conn: Any, appends: list[PendingAppend]) -> None:
    """Set each send's `files` (its attachments, which its sender must have uploaded), or
    `refused` when one is not found. (A file purged before the batch commits makes
    `_link_files` fail the batch; one by one, that send is then refused here.)"""
    if not appends:
        return
    rows = await conn.fetch(
        f"SELECT {FILE_COLUMNS} FROM files WHERE id = ANY($1)",
        sorted({i for a in appends for i in a.attachments}),
    )
    found = {row["id"]: file_of(row) for row in rows}
    for a in appends:
        mine = {
            i: f.as_file()
            for i in a.attachments
            if (f := found.get(i)) and f.uploader == a.username
        }
        missing = [i for i in a.attachments if i not in mine]
        a.refused = UnknownFile(missing[0]) if missing else None
        a.files = [] if missing else [mine[i] for i in a.attachments]


async def _link_files(conn: Any, links: list[tuple[str, str, int]]) -> None:
    """(file id, room, seq): the message carries the file, counted on the file's row (its
    row lock: a purge waits for this transaction, then finds the file used)."""
    if not links:
        return
    ids = [f for f, _, _ in links]
    counted = await conn.fetch(
        "UPDATE files SET refs = refs + c.n FROM (SELECT id, count(*) AS n"
        " FROM unnest($1::text[]) AS id GROUP BY id ORDER BY id) c"
        " WHERE files.id = c.id RETURNING files.id",
        ids,
    )
    if len(counted) < len(set(ids)):
        raise UnknownFile(sorted(set(ids) - {row["id"] for row in counted})[0])
    await conn.execute(
        "INSERT INTO message_files (file_id, room, seq)"
        " SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[])",
        ids,
        [room for _, room, _ in links],
        [seq for _, _, seq in links],
    )


async def _private_rooms(conn: Any, plan: AppendPlan, private: dict[str, bool]) -> list[str]:
    """The batch's private rooms. `private` caches which rooms are private (that never
    changes), so public rooms cost no query."""
    unseen = [room for room in plan.by_room if room not in private]
    if unseen:
        rows = await conn.fetch("SELECT room, private FROM rooms WHERE room = ANY($1)", unseen)
        private.update({row["room"]: row["private"] for row in rows})
    return [room for room in plan.by_room if private.get(room)]


async def _members_only(conn: Any, plan: AppendPlan, rooms: list[str]) -> None:
    """Private `rooms`' sends by users who are no longer members fail (not_found): a
    removal must hold even for a send already past its socket's check. Checked under the
    rooms' row locks (in the caller's transaction; `change_member` takes them too), so a
    removal commits wholly before the check or after the sends."""
    if not rooms:
        return
    await conn.execute(
        "SELECT 1 FROM rooms WHERE room = ANY($1) ORDER BY room FOR UPDATE", sorted(plan.by_room)
    )
    for room in rooms:
        rows = await conn.fetch(
            "SELECT username FROM members WHERE room = $1 AND username = ANY($2)",
            room,
            plan.senders(room),
        )
        plan.members_only(room, {row["username"] for row in rows})


def _unavailable(count: int, why: str) -> list[AppendResult]:
    """One exception per send: a shared one would gather every awaiter's traceback."""
    return [StoreUnavailable(why) for _ in range(count)]


async def _stored_by_client(
    conn: Any, batch: list[PendingAppend]
) -> dict[tuple[str, str], Message]:
    """Messages already stored under the batch's (username, client_id) pairs."""
    keys = {(a.username, a.client_id) for a in batch if a.client_id is not None}
    rows = await conn.fetch(_BY_CLIENTS, [u for u, _ in keys], [c for _, c in keys])
    return {(row["username"], row["client_id"]): message_of(row) for row in rows}


async def _resolve_mentions(conn: Any, appends: list[PendingAppend]) -> None:
    """Set each send's `mentions`: the users its `@name`s name who may read its room.
    (Looked up before the batch's statements: a membership that changes meanwhile counts
    as changed just after.)"""
    keys = [mention_keys(a.text) for a in appends]
    found = await _readers(
        conn, [(a.room, k) for a, ks in zip(appends, keys, strict=True) for k in ks]
    )
    for a, ks in zip(appends, keys, strict=True):
        a.mentions = [found[(a.room, k)] for k in ks if (a.room, k) in found]


async def _readers(conn: Any, pairs: list[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """(room, lowercased name) -> the user so named, for those who may read that room."""
    if not pairs:
        return {}
    rows = await conn.fetch(_READERS, [room for room, _ in pairs], [key for _, key in pairs])
    return {(row["room"], row["username_key"]): row["username"] for row in rows}


class PostgresStore(QueuedAppends, Store):
    def __init__(
        self,
        dsn: str,
        *,
        min_size: int = POOL_MIN,
        max_size: int = POOL_MAX,
        search: bool | None = True,
    ) -> None:
        self.dsn = dsn
        self.search_index = search
        self.min_size = min_size
        self.max_size = max_size
        self._pool: Any = None
        self._pending: list[PendingAppend] = []  # sends for the next batch
        self._committer: asyncio.Task[None] | None = None
        self._commits = 0  # batches stored (see `stats`)
        self._committed_sends = 0
        self._private: dict[str, bool] = {}  # room -> private (it never changes)

    # --- plumbing -------------------------------------------------------------

    async def open(self) -> None:
        """Connect, then apply pending migrations (one node at a time, under an advisory lock)."""
        try:
            pool = await asyncpg.create_pool(
                self.dsn,
                min_size=self.min_size,
                max_size=self.max_size,
                timeout=CONNECT_TIMEOUT,
                command_timeout=COMMAND_TIMEOUT,
            )
        except _UNREACHABLE as exc:
            raise StoreUnavailable(f"postgres: {exc}") from exc
        self._pool = pool
        try:
            async with self._conn() as conn:
                await _migrate(conn)
                await _keep_search_index(conn, self.search_index)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        if self._committer is not None:  # let the batch in flight (and those queued) finish
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(self._committer)
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                await pool.close()
            except _UNREACHABLE:
                pool.terminate()

    @contextlib.asynccontextmanager
    async def _conn(self) -> AsyncIterator[Any]:
        """A pooled connection; connection trouble becomes StoreUnavailable."""
        pool = self._pool
        if pool is None:
            raise StoreUnavailable("store is closed")
        try:
            async with pool.acquire(timeout=ACQUIRE_TIMEOUT) as conn:
                yield conn
        except _UNREACHABLE as exc:
            raise StoreUnavailable(f"postgres: {exc}") from exc

    async def _fetch(self, sql: str, *args: Any) -> list[Row]:
        async with self._conn() as conn:
            rows: list[Row] = await conn.fetch(sql, *args)
            return rows

    async def _fetchrow(self, sql: str, *args: Any) -> Row | None:
        async with self._conn() as conn:
            row: Row | None = await conn.fetchrow(sql, *args)
            return row

    async def _fetchval(self, sql: str, *args: Any) -> Any:
        async with self._conn() as conn:
            return await conn.fetchval(sql, *args)

    async def _execute(self, sql: str, *args: Any) -> str:
        async with self._conn() as conn:
            status: str = await conn.execute(sql, *args)
            return status

    # --- users and sessions -----------------------------------------------------

    async def create_user(self, username: str, password_hash: str, *, admin: bool = False) -> bool:
        async with self._conn() as conn, conn.transaction():
            await conn.execute(_LOCK_SETTINGS)
            return await _insert_user(conn, username, password_hash, admin)

    async def register(
        self, username: str, password_hash: str, invite: str | None, now: float
    ) -> SignUp:
        async with self._conn() as conn, conn.transaction():
            mode = Registration(await conn.fetchval(_LOCK_SETTINGS))
            if mode is Registration.CLOSED:
                return SignUp.CLOSED
            if await conn.fetchval("SELECT 1 FROM users WHERE username_key = $1", username.lower()):
                return SignUp.TAKEN
            if mode is Registration.INVITE and not (
                invite is not None and await _use_invite(conn, invite, username, now)
            ):
                return SignUp.NO_INVITE
            await _insert_user(conn, username, password_hash, False)
            return SignUp.CREATED

    async def find_user(self, username: str) -> UserRecord | None:
        row = await self._fetchrow(
            "SELECT username, password_hash, admin, banned FROM users WHERE username_key = $1",
            username.lower(),
        )
        return UserRecord(*row) if row else None

    async def create_token(self, token_hash: str, username: str, expires_at: float) -> None:
        await self._execute(
            "INSERT INTO tokens (token_hash, username, expires_at) VALUES ($1, $2, $3)",
            token_hash,
            username,
            expires_at,
        )

    async def token_user(self, token_hash: str, now: float) -> str | None:
        row = await self._fetchrow(_TOKEN_USER, token_hash, now)
        return str(row["username"]) if row else None

    async def delete_token(self, token_hash: str) -> None:
        await self._execute("DELETE FROM tokens WHERE token_hash = $1", token_hash)

    async def set_password(
        self,
        username: str,
        password_hash: str,
        keep_token: str | None,
        actor: str | None = None,
    ) -> None:
        async with self._conn() as conn, conn.transaction():
            await conn.execute(
                "UPDATE users SET password_hash = $1 WHERE username_key = $2",
                password_hash,
                username.lower(),
            )
            await conn.execute(_DELETE_USER_TOKENS, username.lower(), keep_token)
            if actor is not None:
                await _audit(conn, actor, "reset_password", username)

    async def delete_user_tokens(self, username: str) -> int:
        return _rowcount(await self._execute(_DELETE_USER_TOKENS, username.lower(), None))

    async def purge_expired_tokens(self, now: float) -> int:
        return _rowcount(await self._execute("DELETE FROM tokens WHERE expires_at <= $1", now))

    # --- admin ----------------------------------------------------------------------

    async def list_users(self, query: str, after: str | None, limit: int) -> list[UserSummary]:
        rows = await self._fetch(
            "SELECT username, admin, banned, created_at FROM users"
            ' WHERE strpos(username_key, $1) > 0 AND username_key COLLATE "C" > $2'
            ' ORDER BY username_key COLLATE "C" LIMIT $3',
            query.lower(),
            (after or "").lower(),
            limit,
        )
        return [
            UserSummary(r["username"], r["admin"], r["banned"], utc_timestamp(r["created_at"]))
            for r in rows
        ]

    async def set_admin(self, actor: str, username: str, admin: bool) -> bool:
        async with self._conn() as conn, conn.transaction():
            # Every admin's row locked, in one order: two admins revoking each other at
            # once take turns, and the second finds the last admin.
            admins = await conn.fetch(
                "SELECT username FROM users WHERE admin ORDER BY username FOR UPDATE"
            )
            name, is_admin, banned = await _account(conn, username)
            if is_admin == admin:
                return False
            last = len(admins) <= 1
            refusal = role_refusal(actor, name, grant=admin, banned=banned, last_admin=last)
            if refusal is not None:
                raise refusal
            await conn.execute("UPDATE users SET admin = $1 WHERE username = $2", admin, name)
            await _audit(conn, actor, "grant" if admin else "revoke", name)
            return True

    async def set_banned(self, actor: str, username: str, banned: bool) -> bool:
        async with self._conn() as conn, conn.transaction():
            name, is_admin, is_banned = await _account(conn, username)
            refusal = ban_refusal(actor, name, admin=is_admin, ban=banned)
            if refusal is not None:
                raise refusal
            if is_banned == banned:
                return False
            await conn.execute("UPDATE users SET banned = $1 WHERE username = $2", banned, name)
            if banned:
                await conn.execute(_DELETE_USER_TOKENS, name.lower(), None)
            await _audit(conn, actor, "ban" if banned else "unban", name)
            return True

    async def registration(self) -> Registration:
        return Registration(await self._fetchval("SELECT registration FROM settings"))

    async def set_registration(self, actor: str, mode: Registration) -> bool:
        async with self._conn() as conn, conn.transaction():
            status = await conn.execute(
                "UPDATE settings SET registration = $1 WHERE id = 1 AND registration <> $1",
                mode.value,
            )
            if not _rowcount(status):
                return False
            await _audit(conn, actor, "registration", mode.value)
            return True

    async def create_invite(self, actor: str, code: str, now: float, expires_at: float) -> Invite:
        async with self._conn() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO invites (code, created_by, created_at, expires_at)"
                " VALUES ($1, $2, $3, $4)",
                code,
                actor,
                now,
                expires_at,
            )
            await _audit(conn, actor, "invite", code)
        return Invite(code, actor, now, expires_at)

    async def invites(self) -> list[Invite]:
        rows = await self._fetch(
            f"SELECT {_INVITE_COLUMNS} FROM invites ORDER BY created_at DESC, code"
        )
        return [Invite(*row) for row in rows]

    async def delete_invite(self, actor: str, code: str) -> bool:
        async with self._conn() as conn, conn.transaction():
            if not _rowcount(await conn.execute("DELETE FROM invites WHERE code = $1", code)):
                return False
            await _audit(conn, actor, "invite_revoke", code)
            return True

    async def audit_log(
        self, before: int | None = None, limit: int = 50, after: int | None = None
    ) -> list[AuditEntry]:
        if after is not None:
            where, bound = "id > $1 ORDER BY id ASC", after
        else:
            where, bound = "id < $1 ORDER BY id DESC", _NO_ID if before is None else before
        rows = await self._fetch(
            f"SELECT id, ts, actor, action, target, room FROM audit WHERE {where} LIMIT $2",
            bound,
            limit,
        )
        return [AuditEntry(*row) for row in rows]

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
        async with self._conn() as conn, conn.transaction():
            # Creations of one name queue here, so two nodes cannot both find it free.
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", name)
            since = now if now is not None else await conn.fetchval(_DB_NOW)
            # a DM is never called by its name: it takes no room's name
            if await conn.fetch(_VISIBLE + " AND r.name = $2 AND r.kind <> 'dm'", owner, name):
                return None
            taken = await conn.fetchval("SELECT 1 FROM rooms WHERE room = $1", name)
            key = room_key(name, tag, taken is not None)
            await conn.execute(
                "INSERT INTO rooms (room, private, owner, last_seq, name, tag)"
                " VALUES ($1, $2, $3, 0, $4, $5)",
                key,
                private,
                owner,
                name,
                tag,
            )
            await conn.execute(
                "INSERT INTO members (room, username, since) VALUES ($1, $2, $3)",
                key,
                owner,
                since,
            )
            return RoomRecord(key, private, owner, 0, name, tag, since)

    async def rooms_named(self, name: str, username: str) -> list[RoomRecord]:
        return [
            _room(row) for row in await self._fetch(_VISIBLE + " AND r.name = $2", username, name)
        ]

    async def list_rooms(self, username: str) -> list[RoomRecord]:
        return [_room(row) for row in await self._fetch(_VISIBLE + " ORDER BY r.room", username)]

    async def add_member(self, room: str, username: str, now: float | None = None) -> None:
        await self._execute(
            "INSERT INTO members (room, username, since)"
            f" VALUES ($1, $2, COALESCE($3::float8, {_DB_NOW_SQL})) ON CONFLICT DO NOTHING",
            room,
            username,
            now,
        )

    async def members(self, room: str) -> list[str]:
        rows = await self._fetch(
            'SELECT username FROM members WHERE room = $1 ORDER BY username COLLATE "C"', room
        )
        return [str(row["username"]) for row in rows]

    async def mark_read(self, room: str, username: str, seq: int) -> int | None:
        async with self._conn() as conn:
            # Markers only move forward: one already there needs no lock and no write.
            target = await conn.fetchrow(_MARK_TARGET, username, room, seq)
            if target is None or target["new"] <= target["old"]:
                return None
            async with conn.transaction():
                mark = await conn.fetchrow(_LOCK_MARK, username, room)
                if mark is None:
                    return None
                old, new = int(mark["seq"]), min(seq, int(mark["last_seq"]))
                if new <= old:
                    return None
                await conn.execute(_MOVE_MARK, username, room, old, new)
                return new

    async def change_member(self, change: MemberChange) -> RoomEvent | None:
        async with self._conn() as conn, conn.transaction():
            # The room's row lock keeps its member changes and their events in one order.
            private = await conn.fetchrow(
                "SELECT private FROM rooms WHERE room = $1 FOR UPDATE", change.room
            )
            if private is None:
                raise UnknownRoom(change.room)
            if change.change == "invited":
                status = await conn.execute(
                    "INSERT INTO members (room, username, since)"
                    f" VALUES ($1, $2, {_DB_NOW_SQL}) ON CONFLICT DO NOTHING",
                    change.room,
                    change.username,
                )
            else:
                status = await conn.execute(
                    "DELETE FROM members WHERE room = $1 AND username = $2",
                    change.room,
                    change.username,
                )
            changed = _rowcount(status) == 1
            if change.change == "removed" and (changed or not private["private"]):
                # in a public room, the removed user's sockets are cut in any case
                await _audit(conn, change.by, "remove_member", change.username, change.room)
            if not changed or not private["private"]:  # a public room has no member events
                return None
            data = {"change": change.change, "by": change.by}
            return await _add_event(conn, change.room, change.username, None, "member", data=data)

    async def open_dm(
        self, members: list[str], now: float | None = None
    ) -> tuple[RoomRecord, bool]:
        tag = dm_tag(members)
        key = room_key("dm", tag, name_taken=True)
        async with self._conn() as conn, conn.transaction():
            # The same DM opened at once on two nodes: the second insert waits for the
            # first to commit, then does nothing, and finds its members.
            created = await conn.fetchval(
                "INSERT INTO rooms (room, private, owner, last_seq, name, tag, kind)"
                " VALUES ($1, true, NULL, 0, 'dm', $2, 'dm') ON CONFLICT DO NOTHING"
                " RETURNING true",
                key,
                tag,
            )
            if created:
                await conn.execute(
                    "INSERT INTO members (room, username, since) SELECT $1, u,"
                    f" coalesce($3::float8, {_DB_NOW_SQL}) FROM unnest($2::text[]) AS u",
                    key,
                    members,
                    now,
                )
            rows = await conn.fetch(_VISIBLE + " AND r.room = $2", members[0], key)
        return _room(rows[0]), bool(created)

    # --- messages -----------------------------------------------------------------

    def _queue(self, pending: PendingAppend) -> None:
        self._queue_all([pending])

    def _queue_all(self, pendings: list[PendingAppend]) -> None:
        self._pending += pendings
        if self._committer is None:  # start at the end of this loop iteration
            self._committer = asyncio.get_running_loop().create_task(self._commit_batches())

    async def _commit_batches(self) -> None:
        """One batch in flight per node: the next gathers while this one commits, and each
        socket's sends are stored in the order they came."""
        try:
            await asyncio.sleep(0)  # let this loop iteration's sends join the first batch
            while self._pending:
                batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
                try:
                    results = await self._append_batch(batch)
                except Exception as exc:  # a bug: fail the batch, never leave its sends hanging
                    log.exception("append batch failed")
                    results = _unavailable(len(batch), f"postgres: {exc}")
                except BaseException:  # cancelled (the loop is closing): answer, then go
                    waiting, self._pending = batch + self._pending, []
                    settle(waiting, _unavailable(len(waiting), "store is closing"))
                    raise
                self._commits += 1
                self._committed_sends += sum(not isinstance(r, BaseException) for r in results)
                settle(batch, results)
        finally:
            self._committer = None

    def stats(self) -> StoreStats:
        return StoreStats(self._commits, self._committed_sends)

    async def _append_batch(self, batch: list[PendingAppend]) -> list[AppendResult]:
        """Store a batch, optimistic about resends (see `_insert_batch`); a batch that fails
        for a reason of its own is stored one by one, so that the culprit fails alone."""
        try:
            async with self._conn() as conn:
                known: dict[tuple[str, str], Message] = {}
                for _ in range(RESEND_RACES):
                    try:
                        return await _insert_batch(conn, batch, known, self._private)
                    except asyncpg.UniqueViolationError:
                        known = await _stored_by_client(conn, batch)
                raise StoreUnavailable("postgres: resends kept racing")
        except StoreUnavailable as exc:
            return _unavailable(len(batch), str(exc))
        except (asyncpg.PostgresError, UnknownFile) as exc:
            if len(batch) == 1:
                return [exc]
            return [(await self._append_batch([a]))[0] for a in batch]

    async def messages(self, query: MessageQuery) -> list[Message]:
        sql, params = _page_sql(query)
        return [message_of(row) for row in await self._fetch(sql, *params)]

    async def message(self, room: str, seq: int) -> Message | None:
        row = await self._fetchrow(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE room = $1 AND seq = $2 AND kind IS NULL",
            room,
            seq,
        )
        return None if row is None else message_of(row)

    async def events(self, room: str, after: int, limit: int) -> list[RoomEvent]:
        rows = await self._fetch(
            f"SELECT {EVENT_COLUMNS} FROM messages WHERE room = $1 AND seq > $2"
            " ORDER BY seq LIMIT $3",
            room,
            after,
            limit,
        )
        return [event_of(row) for row in rows]

    async def search(
        self, username: str, words: list[str], room: str | None, limit: int
    ) -> list[Message]:
        if not words:
            return []
        sql = (
            f"SELECT {MESSAGE_COLUMNS} FROM messages m"
            " WHERE m.words @@ $1::tsquery AND m.kind IS NULL AND m.deleted = 0"
            " AND m.room IN (SELECT r.room FROM rooms r WHERE NOT r.private OR EXISTS"
            " (SELECT 1 FROM members x WHERE x.room = r.room AND x.username = $2))"
        )
        params: list[Any] = [_tsquery(words), username, limit]
        if room is not None:
            sql += " AND m.room = $4"
            params.append(room)
        # newest first: by time stored, then seq (one room's messages may share a ts)
        sql += " ORDER BY m.ts DESC, m.seq DESC LIMIT $3"
        return [message_of(row) for row in await self._fetch(sql, *params)]

    async def change(self, request: ChangeRequest) -> Changed:
        """In one transaction under the room's row lock; the same (username, client_id)
        raced in by another node fails on the unique index, and the retry finds it."""
        for _ in range(RESEND_RACES):
            try:
                async with self._conn() as conn, conn.transaction():
                    return await _change(conn, request)
            except asyncpg.UniqueViolationError:
                continue
        raise StoreUnavailable("postgres: changes kept racing")

    async def last_seqs(self) -> dict[str, int]:
        rows = await self._fetch("SELECT room, last_seq FROM rooms")
        return {str(row["room"]): int(row["last_seq"]) for row in rows}

    # --- files --------------------------------------------------------------------

    async def add_file(
        self, record: FileRecord, content: Path, thumb: Path | None, quota: int
    ) -> None:
        blobs = [
            (sha, await asyncio.to_thread(path.read_bytes))
            for sha, path in blobs_of(record, content, thumb)
        ]
        async with self._conn() as conn, conn.transaction():
            if quota:
                # the uploader's row lock: their uploads on every node count one at a time
                await conn.execute(
                    "SELECT 1 FROM users WHERE username = $1 FOR UPDATE", record.uploader
                )
                used = await conn.fetchval(
                    "SELECT coalesce(sum(size), 0) FROM files WHERE uploader = $1",
                    record.uploader,
                )
                if used + record.size > quota:
                    raise QuotaExceeded(record.uploader)
            for sha, data in blobs:
                await store_blob(conn, sha, data)
            await conn.execute(_INSERT_FILE, *file_row(record))

    async def readable_file(self, file_id: str, username: str) -> FileRecord | None:
        row = await self._fetchrow(READABLE_FILE.format(id="$1", user="$2"), file_id, username)
        return None if row is None else file_of(row)

    async def read_blob(self, sha256: str, offset: int, length: int) -> bytes:
        data = await self._fetchval(
            "SELECT substring(data FROM $2 FOR $3) FROM blobs WHERE sha256 = $1",
            sha256,
            offset + 1,
            length,
        )
        return bytes(data or b"")

    async def purge_files(self, before: float) -> int:
        async with self._conn() as conn, conn.transaction():
            # Row conditions only: a send or an upload racing this holds the row's lock,
            # and once it commits the row no longer qualifies (refs above 0).
            rows = await conn.fetch(
                "DELETE FROM files WHERE refs = 0 AND created_at < $1 RETURNING sha256, thumb",
                before,
            )
            used = [sha for row in rows for sha in (row["sha256"], row["thumb"]) if sha]
            # The contents' rows locked in sha256 order, as an upload locks them (files.py
            # `blobs_of`): an upload of the same bytes at once waits its turn, no deadlock.
            await conn.execute(
                "SELECT 1 FROM blobs WHERE sha256 = ANY($1) ORDER BY sha256 FOR UPDATE",
                sorted(set(used)),
            )
            await conn.execute(
                "UPDATE blobs SET refs = refs - c.n FROM (SELECT sha, count(*) AS n"
                " FROM unnest($1::text[]) AS sha GROUP BY sha ORDER BY sha) c"
                " WHERE blobs.sha256 = c.sha",
                used,
            )
            await conn.execute(
                "DELETE FROM blobs WHERE sha256 = ANY($1) AND refs <= 0", sorted(set(used))
            )
            return len(rows)


async def store_blob(conn: Any, sha256: str, data: bytes, refs: int = 1) -> None:
    """Count `refs` more users of content `sha256`, storing its bytes `data` when new (a
    content in use gains its users under its row lock: a purge waiting on it then finds it
    used)."""
    bumped = await conn.fetchval(
        "UPDATE blobs SET refs = refs + $2 WHERE sha256 = $1 RETURNING 1", sha256, refs
    )
    if bumped is None:
        await conn.execute(
            "INSERT INTO blobs (sha256, refs, data) VALUES ($1, $2, $3)"
            " ON CONFLICT (sha256) DO UPDATE SET refs = blobs.refs + excluded.refs",
            sha256,
            refs,
            data,
        )


async def _audit(conn: Any, actor: str, action: str, target: str, room: str | None = None) -> None:
    await conn.execute(_AUDIT, utc_timestamp(), actor, action, target, room)


async def _insert_user(conn: Any, username: str, password_hash: str, admin: bool) -> bool:
    """Under the settings row's lock (`_LOCK_SETTINGS`): the first account is an admin."""
    first = not await conn.fetchval("SELECT 1 FROM users LIMIT 1")
    created = await conn.fetchval(
        "INSERT INTO users (username, username_key, password_hash, admin)"
        " VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING true",
        username,
        username.lower(),
        password_hash,
        admin or first,
    )
    return bool(created)


async def _use_invite(conn: Any, code: str, username: str, now: float) -> bool:
    """Use up an unused, unexpired invite code (its row lock: one use under a race)."""
    status = await conn.execute(
        "UPDATE invites SET used_by = $1, used_at = $2"
        " WHERE code = $3 AND used_by IS NULL AND expires_at > $2",
        username,
        now,
        code,
    )
    return _rowcount(status) == 1


async def _account(conn: Any, username: str) -> tuple[str, bool, bool]:
    """(registered spelling, admin, banned) of an account, its row locked; or UnknownUser."""
    row = await conn.fetchrow(
        "SELECT username, admin, banned FROM users WHERE username_key = $1 FOR UPDATE",
        username.lower(),
    )
    if row is None:
        raise UnknownUser(username)
    return row["username"], row["admin"], row["banned"]


async def _audit_change(
    conn: Any, request: ChangeRequest, owner: str | None, author: str | None
) -> None:
    entry = change_audit(request, owner, author)
    if entry is not None:
        await _audit(conn, request.username, *entry, room=request.room)


async def _add_event(
    conn: Any,
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
    ts = utc_timestamp()
    encoded = None if data is None else dump(data)
    seq = await conn.fetchval(
        _ADD_EVENT, room, username, text, ts, client_id, kind, target, encoded
    )
    if seq is None:
        raise UnknownRoom(room)
    return logged_event((room, int(seq), username, text, ts, client_id), kind, target, encoded)


async def _change(conn: Any, request: ChangeRequest) -> Changed:
    """An edit, delete, reaction or topic: checked, applied and logged (in a transaction)."""
    # Locked: the room's changes apply one at a time, each to the state the last one left;
    # and a resend raced in by another node is then found (before the lock, a reaction's
    # resend could find the reaction made and answer as a no-op).
    room = await conn.fetchrow(
        "SELECT owner, last_seq, private FROM rooms WHERE room = $1 FOR UPDATE", request.room
    )
    if request.client_id is not None:
        seen = await conn.fetchrow(
            f"SELECT {EVENT_COLUMNS} FROM messages WHERE client_id = $1 AND username = $2",
            request.client_id,
            request.username,
        )
        if seen is not None:
            return Changed(event_of(seen), int(seen["seq"]), created=False)
    if room is None:
        raise UnknownRoom(request.room)
    if member_needed(request, room["private"]) and not await conn.fetchval(
        "SELECT 1 FROM members WHERE room = $1 AND username = $2", request.room, request.username
    ):
        raise UnknownRoom(request.room)  # removed meanwhile (change_member takes the lock too)
    owner = room["owner"]
    if isinstance(request, TopicRequest):
        check_allowed(request, owner, None)
        await _audit_change(conn, request, owner, None)
        await conn.execute(
            "UPDATE rooms SET topic = $1 WHERE room = $2", request.topic, request.room
        )
        event = await _add_event(
            conn, request.room, request.username, request.client_id, "topic", text=request.topic
        )
        return Changed(event, event.seq, created=True)
    target = await conn.fetchrow(_TARGET, request.room, request.target)
    if target is None or target["deleted"]:
        raise UnknownTarget(request.target)
    check_allowed(request, owner, target["username"])
    await _audit_change(conn, request, owner, target["username"])
    if isinstance(request, EditRequest):
        return await _edit(conn, request, load_names(target["mentions"]))
    if isinstance(request, DeleteRequest):
        return await _delete(conn, request, load_names(target["mentions"]))
    reactions = load_reactions(target["reactions"])
    return await _react(conn, request, reactions, int(room["last_seq"]))


async def _edit(conn: Any, request: EditRequest, mentioned: list[str]) -> Changed:
    """`mentioned`: whom the message mentioned before the edit."""
    room, seq, author = request.room, request.target, request.username
    keys = mention_keys(request.text)
    found = await _readers(conn, [(room, key) for key in keys])
    mentions = [found[(room, key)] for key in keys if (room, key) in found]
    event = await _add_event(
        conn, room, author, request.client_id, "edit", text=request.text, target=seq
    )
    await conn.execute(
        "UPDATE messages SET text = $1, edited = $2, mentions = $3,"
        f" words = {_WORDS_OF.format('$6')} WHERE room = $4 AND seq = $5",
        request.text,
        event.ts,
        dump_some(mentions),
        room,
        seq,
        " ".join(index_words(request.text)),
    )
    await conn.execute(_DROP_MENTIONS, room, seq, mentioned)
    await conn.execute(_ADD_MENTIONS, [u for u in mentions if u != author], room, seq)
    return Changed(event, event.seq, created=True)


async def _delete(conn: Any, request: DeleteRequest, mentioned: list[str]) -> Changed:
    room, seq = request.room, request.target
    event = await _add_event(conn, room, request.username, request.client_id, "delete", target=seq)
    # A tombstone keeps who and when; its words go, the edits' too (a replay must not
    # bring them back).
    await conn.execute(
        "UPDATE messages SET text = '', deleted = 1, reactions = NULL, mentions = NULL,"
        " words = NULL, attachments = NULL WHERE room = $1 AND seq = $2",
        room,
        seq,
    )
    # It carries its files no more (their rows locked after the room's, as a send does).
    await conn.execute(
        "UPDATE files SET refs = refs - 1 WHERE id IN"
        " (SELECT file_id FROM message_files WHERE room = $1 AND seq = $2)",
        room,
        seq,
    )
    await conn.execute("DELETE FROM message_files WHERE room = $1 AND seq = $2", room, seq)
    await conn.execute(
        "UPDATE messages SET text = '' WHERE room = $1 AND seq > $2 AND target = $2"
        " AND kind = 'edit'",
        room,
        seq,
    )
    await conn.execute(_DROP_MENTIONS, room, seq, mentioned)
    return Changed(event, event.seq, created=True)


async def _react(
    conn: Any, request: ReactRequest, reactions: dict[str, list[str]], last: int
) -> Changed:
    changed = toggled(reactions, request.emoji, request.username, request.on)
    if changed is None:  # nothing to change, nothing to log
        return Changed(None, last, created=False)
    room, seq = request.room, request.target
    event = await _add_event(
        conn,
        room,
        request.username,
        request.client_id,
        "reaction",
        target=seq,
        data={"emoji": request.emoji, "on": request.on},
    )
    await conn.execute(
        "UPDATE messages SET reactions = $1 WHERE room = $2 AND seq = $3",
        dump_some(changed),
        room,
        seq,
    )
    return Changed(event, event.seq, created=True)


def _page_sql(query: MessageQuery) -> tuple[str, list[Any]]:
    """The three paging modes of MessageQuery; descending pages are flipped to ascending."""
    params: list[Any] = [query.room]
    where = "room = $1"
    if query.after is not None:
        params.append(query.after)
        where += f" AND seq > ${len(params)}"
    if query.before is not None:
        params.append(query.before)
        where += f" AND seq < ${len(params)}"
    params.append(query.limit)
    limit = f"${len(params)}"
    base = f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE {where} AND kind IS NULL"
    if query.after is not None and query.before is None:
        return f"{base} ORDER BY seq ASC LIMIT {limit}", params
    return f"SELECT * FROM ({base} ORDER BY seq DESC LIMIT {limit}) page ORDER BY seq ASC", params


async def _migrate(conn: Any) -> None:
    """Apply every migration not yet recorded, all in one transaction.

    The transaction-scoped advisory lock makes nodes that start together take
    turns: the first applies, the others then find nothing left to do.
    """
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations"
            " (version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        done = {row["version"] for row in await conn.fetch("SELECT version FROM schema_migrations")}
        refuse_newer(done, (version for version, _ in MIGRATIONS))
        for version, sql in MIGRATIONS:
            if version in done:
                continue
            await conn.execute(sql)
            if version == SEARCH_VERSION:
                await _index_existing(conn)
            await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", version)


async def _keep_search_index(conn: Any, wanted: bool | None) -> None:
    """Drop the search index (`--search off`: its GIN updates are most of what search
    costs a send), or build it again; the words themselves are always kept. None: leave
    it as it is (a maintenance command beside a running server)."""
    if wanted is None:
        return
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
        exists = await conn.fetchval("SELECT to_regclass('messages_by_words') IS NOT NULL")
        searchable = await conn.fetchval(
            "SELECT true FROM schema_migrations WHERE version = $1", SEARCH_VERSION
        )
        if not searchable:
            return
        if exists and not wanted:
            await conn.execute("DROP INDEX messages_by_words")
        elif wanted and not exists:
            await conn.execute(POSTGRES_SEARCH_INDEX)


async def _index_existing(conn: Any) -> None:
    """Fill the search words of the messages stored before search existed (in Python: the
    same folding as new messages get), a page at a time."""
    rows = conn.cursor(
        "SELECT room, seq, text FROM messages WHERE kind IS NULL AND deleted = 0", prefetch=2000
    )
    page: list[Any] = []
    async for row in rows:
        page.append(row)
        if len(page) == 2000:
            await _set_words(conn, page)
            page = []
    await _set_words(conn, page)


async def _set_words(conn: Any, rows: list[Any]) -> None:
    await conn.execute(
        f"UPDATE messages m SET words = {_WORDS_OF.format('u.words')}"
        " FROM unnest($1::text[], $2::bigint[], $3::text[]) AS u(room, seq, words)"
        " WHERE m.room = u.room AND m.seq = u.seq",
        [row["room"] for row in rows],
        [row["seq"] for row in rows],
        [" ".join(index_words(row["text"])) for row in rows],
    )


def _tsquery(words: list[str]) -> str:
    """Every word a quoted lexeme with `:*` (a prefix), all of them required: plain words
    whatever tsquery syntax the user typed (core/search.py kept only word characters)."""
    return " & ".join("'" + w.replace("\\", "\\\\").replace("'", "''") + "':*" for w in words)
