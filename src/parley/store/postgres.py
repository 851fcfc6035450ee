"""PostgreSQL store (asyncpg): several nodes share one database.

Every call borrows a connection from a small pool. A message is appended by one
statement, so in one transaction: the room's row is locked and its `last_seq`
bumped (`UPDATE rooms ... RETURNING last_seq`), and the message inserted with
that seq. Concurrent writers on any number of nodes queue on the room's row
lock, so seqs stay unique and gapless; a failed insert rolls the bump back.
`(username, client_id)` is a unique index: when two nodes race with the same
client_id, the loser's statement fails as a whole and it answers with the
winner's message.

Connection failures (PostgreSQL down or restarting) raise `StoreUnavailable`;
the pool reconnects on the next call, so a node recovers without a restart.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any, Final

import asyncpg  # type: ignore[import-untyped]

from parley.protocol import Message
from parley.store.base import (
    MessageQuery,
    RoomRecord,
    Store,
    StoreUnavailable,
    UnknownRoom,
    UserRecord,
    utc_timestamp,
)
from parley.store.migrations import POSTGRES as MIGRATIONS

__all__ = ["PostgresStore"]

POOL_MIN: Final = 1
POOL_MAX: Final = 10
CONNECT_TIMEOUT: Final = 5.0  # seconds to open one connection
ACQUIRE_TIMEOUT: Final = 10.0  # seconds to wait for a free pooled connection
COMMAND_TIMEOUT: Final = 15.0  # seconds for one statement
MIGRATION_LOCK: Final = 0x7061726C6579  # pg_advisory_xact_lock key ("parley")

_MESSAGE_COLUMNS: Final = "room, seq, username, text, ts, client_id"
_BY_CLIENT: Final = (
    f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE username = $1 AND client_id = $2"
)
_APPEND: Final = (
    "WITH next AS ("
    " UPDATE rooms SET last_seq = last_seq + 1 WHERE room = $1 RETURNING last_seq)"
    f" INSERT INTO messages ({_MESSAGE_COLUMNS})"
    " SELECT $1, next.last_seq, $2, $3, $4, $5 FROM next"
    " RETURNING seq"
)
_VISIBLE: Final = (
    "(NOT r.private OR EXISTS (SELECT 1 FROM members m WHERE m.room = r.room AND m.username = $%d))"
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
    return RoomRecord(row["room"], bool(row["private"]), row["owner"], int(row["last_seq"]))


class PostgresStore(Store):
    def __init__(self, dsn: str, *, min_size: int = POOL_MIN, max_size: int = POOL_MAX) -> None:
        self.dsn = dsn
        self.min_size = min_size
        self.max_size = max_size
        self._pool: Any = None

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

    # --- rooms --------------------------------------------------------------------

    async def create_room(self, room: str, private: bool, owner: str) -> bool:
        async with self._conn() as conn, conn.transaction():
            row = await conn.fetchrow(
                "INSERT INTO rooms (room, private, owner, last_seq) VALUES ($1, $2, $3, 0)"
                " ON CONFLICT DO NOTHING RETURNING room",
                room,
                private,
                owner,
            )
            if row is None:
                return False
            await conn.execute("INSERT INTO members (room, username) VALUES ($1, $2)", room, owner)
            return True

    async def visible_room(self, room: str, username: str) -> RoomRecord | None:
        row = await self._fetchrow(
            "SELECT room, private, owner, last_seq FROM rooms r WHERE room = $1 AND "
            + _VISIBLE % 2,
            room,
            username,
        )
        return _room(row) if row else None

    async def list_rooms(self, username: str) -> list[RoomRecord]:
        rows = await self._fetch(
            "SELECT room, private, owner, last_seq FROM rooms r WHERE "
            + _VISIBLE % 1
            + " ORDER BY room",
            username,
        )
        return [_room(row) for row in rows]

    async def add_member(self, room: str, username: str) -> None:
        await self._execute(
            "INSERT INTO members (room, username) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            room,
            username,
        )

    async def members(self, room: str) -> list[str]:
        rows = await self._fetch(
            "SELECT username FROM members WHERE room = $1 ORDER BY username", room
        )
        return [str(row["username"]) for row in rows]

    # --- messages -----------------------------------------------------------------

    async def append(
        self, room: str, username: str, text: str, client_id: str | None
    ) -> tuple[Message, bool]:
        async with self._conn() as conn:
            if client_id is not None:
                first = await conn.fetchrow(_BY_CLIENT, username, client_id)
                if first is not None:
                    return _message(first), False
            ts = utc_timestamp()
            try:
                row = await conn.fetchrow(_APPEND, room, username, text, ts, client_id)
            except asyncpg.UniqueViolationError:
                # another node stored this (username, client_id) since our check
                first = await conn.fetchrow(_BY_CLIENT, username, client_id)
                if first is None:
                    raise
                return _message(first), False
            if row is None:
                raise UnknownRoom(room)
            return Message(room, int(row["seq"]), username, text, ts, client_id), True

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
