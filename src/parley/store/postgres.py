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

Connection failures (PostgreSQL down or restarting) raise `StoreUnavailable`;
the pool reconnects on the next call, so a node recovers without a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import AsyncIterator, Mapping
from typing import Any, Final

import asyncpg  # type: ignore[import-untyped]

from parley.core.roomnames import room_key
from parley.protocol import Message
from parley.store.base import (
    MessageQuery,
    RoomRecord,
    Store,
    StoreStats,
    StoreUnavailable,
    UserRecord,
    new_tag,
    utc_timestamp,
)
from parley.store.batch import AppendPlan, AppendResult, PendingAppend, settle
from parley.store.migrations import POSTGRES as MIGRATIONS

__all__ = ["PostgresStore"]

log = logging.getLogger("parley.store")

POOL_MIN: Final = 1
POOL_MAX: Final = 10
CONNECT_TIMEOUT: Final = 5.0  # seconds to open one connection
ACQUIRE_TIMEOUT: Final = 10.0  # seconds to wait for a free pooled connection
COMMAND_TIMEOUT: Final = 15.0  # seconds for one statement
MIGRATION_LOCK: Final = 0x7061726C6579  # pg_advisory_xact_lock key ("parley")
MAX_BATCH: Final = 1024  # sends per batch (group commit)
RESEND_RACES: Final = 3  # tries when another node keeps storing a batch's resends first

_MESSAGE_COLUMNS: Final = "room, seq, username, text, ts, client_id"
# One room's share of a batch in one statement, so in one transaction: bump the room's seq
# by the count (the row lock queues concurrent nodes), insert the messages numbered after
# it, and return the bumped seq (none: no such room). A resend makes the whole statement
# fail on the unique (client_id, username) index, bump included.
_APPEND_MANY: Final = (
    "WITH bumped AS ("
    " UPDATE rooms SET last_seq = last_seq + cardinality($2::text[]) WHERE room = $1"
    " RETURNING last_seq),"
    f" stored AS (INSERT INTO messages ({_MESSAGE_COLUMNS})"
    " SELECT $1, bumped.last_seq - cardinality($2::text[]) + m.ord, m.username, m.text, $5,"
    " m.client_id FROM bumped, unnest($2::text[], $3::text[], $4::text[])"
    " WITH ORDINALITY AS m(username, text, client_id, ord))"
    " SELECT last_seq FROM bumped"
)
_BY_CLIENTS: Final = (
    "SELECT m.room, m.seq, m.username, m.text, m.ts, m.client_id FROM messages m"
    " JOIN unnest($1::text[], $2::text[]) AS k(username, client_id)"
    " ON m.client_id = k.client_id AND m.username = k.username"
)
# The rooms user $1 may see, with when their membership began (none: a public room they
# never used).
# The database's clock, so that the nodes' clocks cannot disagree on what came first.
_DB_NOW_SQL: Final = "extract(epoch from clock_timestamp())::float8"
_DB_NOW: Final = f"SELECT {_DB_NOW_SQL}"
_VISIBLE: Final = (
    "SELECT r.room, r.private, r.owner, r.last_seq, r.name, r.tag,"
    " m.since, coalesce(k.seq, 0) AS last_read"
    " FROM rooms r LEFT JOIN members m ON m.room = r.room AND m.username = $1"
    " LEFT JOIN read_marks k ON k.username = $1 AND k.room = r.room"
    " WHERE (NOT r.private OR m.username IS NOT NULL)"
)
# A read marker moves forward only, and never past the room's last seq; a row comes back
# only when it was written.
_MARK_READ: Final = (
    "INSERT INTO read_marks (username, room, seq)"
    " SELECT $1, room, LEAST($2::bigint, last_seq) FROM rooms WHERE room = $3"
    " ON CONFLICT (username, room) DO UPDATE SET seq = EXCLUDED.seq"
    " WHERE EXCLUDED.seq > read_marks.seq RETURNING seq"
)
# Every token of a user (by name key) but the one to keep ($2 NULL: keep none).
_DELETE_USER_TOKENS: Final = (
    "DELETE FROM tokens WHERE username = (SELECT username FROM users WHERE username_key = $1)"
    " AND token_hash IS DISTINCT FROM $2::text"
)

# What "the database cannot be reached" looks like from asyncpg.
_UNREACHABLE: Final = (
    OSError,  # refused, reset, timeouts (TimeoutError is an OSError)
    asyncpg.PostgresConnectionError,  # 08xxx and lost connections
    asyncpg.InterfaceError,  # "connection is closed", pool closing
    asyncpg.exceptions.OperatorInterventionError,  # 57xxx: shutdown, starting up, cancelled
    asyncpg.exceptions.InsufficientResourcesError,  # 53xxx: too many connections, disk full
)


def _message(row: Mapping[str, Any]) -> Message:
    return Message(
        row["room"], row["seq"], row["username"], row["text"], row["ts"], row["client_id"]
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
    )


def _rowcount(status: str) -> int:
    """The row count of a command status such as "DELETE 3"."""
    return int(status.rpartition(" ")[2])


async def _insert_batch(
    conn: Any, batch: list[PendingAppend], known: Mapping[tuple[str, str], Message]
) -> list[AppendResult]:
    """One statement per room; several rooms share one transaction, so one COMMIT."""
    plan = AppendPlan(batch, known)
    ts = utc_timestamp()

    async def store_room(room: str) -> None:
        sends = plan.to_store(room)
        last_seq = await conn.fetchval(
            _APPEND_MANY,
            room,
            [a.username for a in sends],
            [a.text for a in sends],
            [a.client_id for a in sends],
            ts,
        )
        if last_seq is None:
            plan.unknown(room)
        else:
            plan.stored(room, int(last_seq), ts)

    if len(plan.by_room) == 1:
        await store_room(next(iter(plan.by_room)))
    elif plan.by_room:
        async with conn.transaction():
            # Row locks always taken in the same order: two nodes' batches over the same
            # rooms queue on each other instead of deadlocking.
            for room in sorted(plan.by_room):
                await store_room(room)
    return plan.results()


def _unavailable(count: int, why: str) -> list[AppendResult]:
    """One exception per send: a shared one would gather every awaiter's traceback."""
    return [StoreUnavailable(why) for _ in range(count)]


async def _stored_by_client(
    conn: Any, batch: list[PendingAppend]
) -> dict[tuple[str, str], Message]:
    """Messages already stored under the batch's (username, client_id) pairs."""
    keys = {(a.username, a.client_id) for a in batch if a.client_id is not None}
    rows = await conn.fetch(_BY_CLIENTS, [u for u, _ in keys], [c for _, c in keys])
    return {(row["username"], row["client_id"]): _message(row) for row in rows}


class PostgresStore(Store):
    def __init__(self, dsn: str, *, min_size: int = POOL_MIN, max_size: int = POOL_MAX) -> None:
        self.dsn = dsn
        self.min_size = min_size
        self.max_size = max_size
        self._pool: Any = None
        self._pending: list[PendingAppend] = []  # sends for the next batch
        self._committer: asyncio.Task[None] | None = None
        self._commits = 0  # batches stored (see `stats`)
        self._committed_sends = 0

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

    async def _fetch(self, sql: str, *args: Any) -> list[Mapping[str, Any]]:
        async with self._conn() as conn:
            rows: list[Mapping[str, Any]] = await conn.fetch(sql, *args)
            return rows

    async def _fetchrow(self, sql: str, *args: Any) -> Mapping[str, Any] | None:
        async with self._conn() as conn:
            row: Mapping[str, Any] | None = await conn.fetchrow(sql, *args)
            return row

    async def _fetchval(self, sql: str, *args: Any) -> Any:
        async with self._conn() as conn:
            return await conn.fetchval(sql, *args)

    async def _execute(self, sql: str, *args: Any) -> str:
        async with self._conn() as conn:
            status: str = await conn.execute(sql, *args)
            return status

    # --- users and sessions -----------------------------------------------------

    async def create_user(self, username: str, password_hash: str) -> bool:
        row = await self._fetchrow(
            "INSERT INTO users (username, username_key, password_hash) VALUES ($1, $2, $3)"
            " ON CONFLICT DO NOTHING RETURNING username",
            username,
            username.lower(),
            password_hash,
        )
        return row is not None

    async def find_user(self, username: str) -> UserRecord | None:
        row = await self._fetchrow(
            "SELECT username, password_hash FROM users WHERE username_key = $1", username.lower()
        )
        return UserRecord(row["username"], row["password_hash"]) if row else None

    async def create_token(self, token_hash: str, username: str, expires_at: float) -> None:
        await self._execute(
            "INSERT INTO tokens (token_hash, username, expires_at) VALUES ($1, $2, $3)",
            token_hash,
            username,
            expires_at,
        )

    async def token_user(self, token_hash: str, now: float) -> str | None:
        row = await self._fetchrow(
            "SELECT username FROM tokens WHERE token_hash = $1 AND expires_at > $2",
            token_hash,
            now,
        )
        return str(row["username"]) if row else None

    async def delete_token(self, token_hash: str) -> None:
        await self._execute("DELETE FROM tokens WHERE token_hash = $1", token_hash)

    async def set_password(self, username: str, password_hash: str, keep_token: str | None) -> None:
        async with self._conn() as conn, conn.transaction():
            await conn.execute(
                "UPDATE users SET password_hash = $1 WHERE username_key = $2",
                password_hash,
                username.lower(),
            )
            await conn.execute(_DELETE_USER_TOKENS, username.lower(), keep_token)

    async def delete_user_tokens(self, username: str) -> int:
        return _rowcount(await self._execute(_DELETE_USER_TOKENS, username.lower(), None))

    async def purge_expired_tokens(self, now: float) -> int:
        return _rowcount(await self._execute("DELETE FROM tokens WHERE expires_at <= $1", now))

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
            if await conn.fetch(_VISIBLE + " AND r.name = $2", owner, name):
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
            "SELECT username FROM members WHERE room = $1 ORDER BY username", room
        )
        return [str(row["username"]) for row in rows]

    async def mark_read(self, room: str, username: str, seq: int) -> int | None:
        marker = await self._fetchval(_MARK_READ, username, seq, room)
        return int(marker) if marker else None

    # --- messages -----------------------------------------------------------------

    def append_soon(
        self, room: str, username: str, text: str, client_id: str | None
    ) -> asyncio.Future[tuple[Message, bool]]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[tuple[Message, bool]] = loop.create_future()
        self._pending.append(PendingAppend(room, username, text, client_id, future))
        if self._committer is None:  # start at the end of this loop iteration
            self._committer = loop.create_task(self._commit_batches())
        return future

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
                        return await _insert_batch(conn, batch, known)
                    except asyncpg.UniqueViolationError:
                        known = await _stored_by_client(conn, batch)
                raise StoreUnavailable("postgres: resends kept racing")
        except StoreUnavailable as exc:
            return _unavailable(len(batch), str(exc))
        except asyncpg.PostgresError as exc:
            if len(batch) == 1:
                return [exc]
            return [(await self._append_batch([a]))[0] for a in batch]

    async def messages(self, query: MessageQuery) -> list[Message]:
        sql, params = _page_sql(query)
        return [_message(row) for row in await self._fetch(sql, *params)]

    async def last_seqs(self) -> dict[str, int]:
        rows = await self._fetch("SELECT room, last_seq FROM rooms")
        return {str(row["room"]): int(row["last_seq"]) for row in rows}


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
    base = f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE {where}"
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
        for version, sql in MIGRATIONS:
            if version in done:
                continue
            await conn.execute(sql)
            await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", version)
