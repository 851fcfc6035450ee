"""Export and import: a room's messages, or the whole database, as JSON lines; the same
on SQLite and PostgreSQL, so that a team moves from one to the other.

A full dump is a header line, then one record a row of each table that is the server's
state, in an order an import can insert them in (rooms before their members and events):
users (with their password hashes), rooms (last_seq and the counters kept with it),
members, read markers, the event log (every message as it is now, and every edit,
delete, reaction, topic and member event, each with its seq) and mention rows. Each
record names its kind in `record`; the other fields are the row's columns, the same on
both stores (times as ISO 8601 text, flags as booleans). Sessions are not exported:
everyone signs in again. The search index is derived, so an import rebuilds it.

An import goes into an empty database only (a new one: its migrations applied, no user,
no event), all of it in one transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import asyncpg  # type: ignore[import-untyped]
import msgspec

from parley.protocol import Message
from parley.store.base import utc_timestamp
from parley.store.events import MESSAGE_COLUMNS, message_of
from parley.store.migrations import POSTGRES, SQLITE

__all__ = [
    "FORMAT",
    "TABLES",
    "ImportRefused",
    "Record",
    "Table",
    "dump_postgres",
    "dump_sqlite",
    "encode_line",
    "header",
    "load_postgres",
    "load_sqlite",
    "room_messages_postgres",
    "room_messages_sqlite",
]

FORMAT: Final = 1  # of the dump; a new one when a record's meaning changes
HEADER: Final = "parley-export"
Record = dict[str, Any]


class ImportRefused(Exception):
    """The dump cannot go into this database; nothing was written."""


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    record: str
    columns: tuple[str, ...]
    order: str
    times: tuple[str, ...] = ()  # TIMESTAMPTZ on PostgreSQL, ISO text on SQLite
    flags: tuple[str, ...] = ()  # BOOLEAN on PostgreSQL, 0/1 on SQLite
    reals: tuple[str, ...] = ()  # float8 on PostgreSQL (asyncpg takes no int for them)


TABLES: Final = (
    Table(
        "users",
        "user",
        ("username", "username_key", "password_hash", "created_at"),
        "username",
        times=("created_at",),
    ),
    Table(
        "rooms",
        "room",
        (
            "room",
            "name",
            "tag",
            "kind",
            "private",
            "owner",
            "topic",
            "last_seq",
            "msgs",
            "created_at",
        ),
        "room",
        times=("created_at",),
        flags=("private",),
    ),
    Table("members", "member", ("room", "username", "since"), "room, username", reals=("since",)),
    Table(
        "read_marks", "read_mark", ("username", "room", "seq", "n", "own", "ment"), "username, room"
    ),
    Table(
        "messages",
        "event",
        (
            "room",
            "seq",
            "username",
            "text",
            "ts",
            "client_id",
            "kind",
            "target",
            "data",
            "reply_to",
            "edited",
            "deleted",
            "reactions",
            "mentions",
            "n",
        ),
        "room, seq",
    ),
    Table("mentions", "mention", ("username", "room", "seq"), "username, room, seq"),
)
_BY_RECORD: Final = {table.record: table for table in TABLES}
_encode: Final = msgspec.json.Encoder().encode


def header(schema: int) -> Record:
    return {"record": HEADER, "format": FORMAT, "schema": schema, "exported": utc_timestamp()}


def _exported(table: Table, row: Iterable[Any]) -> Record:
    record: Record = {"record": table.record}
    for column, value in zip(table.columns, row, strict=True):
        if isinstance(value, datetime):
            value = utc_timestamp(value)
        elif column in table.flags:
            value = bool(value)
        record[column] = value
    return record


def _select(table: Table) -> str:
    return f"SELECT {', '.join(table.columns)} FROM {table.name} ORDER BY {table.order}"


# --- reading ---------------------------------------------------------------------


def _sqlite_schema(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT max(version) FROM schema_migrations").fetchone()[0])


def dump_sqlite(path: Path) -> Iterator[Record]:
    """The whole database at `path`, as of one moment (one read transaction)."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("BEGIN")
        yield header(_sqlite_schema(conn))
        for table in TABLES:
            for row in conn.execute(_select(table)):
                yield _exported(table, row)
        conn.execute("COMMIT")
    finally:
        conn.close()


async def dump_postgres(dsn: str) -> AsyncIterator[Record]:
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            yield header(await conn.fetchval("SELECT max(version) FROM schema_migrations"))
            for table in TABLES:
                async for row in conn.cursor(_select(table), prefetch=2000):
                    yield _exported(table, row)
    finally:
        await conn.close()


# A room for `parley export ROOM`: by its key, by the name `name~tag`, or by its name when
# one room only has it.
_ROOM_BY_REF: Final = (
    "SELECT room FROM rooms WHERE room = {0} OR name || '~' || tag = {0}"
    " OR (name = {0} AND (SELECT count(*) FROM rooms WHERE name = {0}) = 1)"
    " ORDER BY room = {0} DESC LIMIT 1"
)
_ROOM_MESSAGES: Final = (
    f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE room = {{0}} AND kind IS NULL ORDER BY seq"
)


def room_messages_sqlite(path: Path, ref: str) -> Iterator[Message] | None:
    """The room's messages as history shows them, ascending; None: no such room."""
    conn = sqlite3.connect(path, isolation_level=None)
    found = conn.execute(_ROOM_BY_REF.format("?1"), (ref,)).fetchone()
    if found is None:
        conn.close()
        return None

    def messages() -> Iterator[Message]:
        try:
            for row in conn.execute(_ROOM_MESSAGES.format("?"), (found[0],)):
                yield message_of(row)
        finally:
            conn.close()

    return messages()


async def room_messages_postgres(dsn: str, ref: str) -> AsyncIterator[Message] | None:
    conn = await asyncpg.connect(dsn)
    room = await conn.fetchval(_ROOM_BY_REF.format("$1"), ref)
    if room is None:
        await conn.close()
        return None

    async def messages() -> AsyncIterator[Message]:
        try:
            async with conn.transaction(readonly=True):
                async for row in conn.cursor(_ROOM_MESSAGES.format("$1"), room, prefetch=2000):
                    yield message_of(row)
        finally:
            await conn.close()

    return messages()


def encode_line(value: object) -> bytes:
    return _encode(value) + b"\n"


# --- writing ---------------------------------------------------------------------


def _check_header(first: Record, newest: int) -> None:
    if first.get("record") != HEADER:
        raise ImportRefused("not a Parley export: its first line is no export header")
    if first.get("format") != FORMAT:
        raise ImportRefused(f"export format {first.get('format')} is not {FORMAT}")
    schema = first.get("schema")
    if not isinstance(schema, int) or schema > newest:
        raise ImportRefused(
            f"the export's schema version {schema} is newer than this Parley knows ({newest})"
        )


def _rows_by_table(records: Iterator[Record]) -> Iterator[tuple[Table, tuple[Any, ...]]]:
    for number, record in enumerate(records, start=2):
        table = _BY_RECORD.get(record.get("record", ""))
        if table is None:
            raise ImportRefused(f"line {number}: unknown record {record.get('record')!r}")
        try:
            yield table, tuple(record[column] for column in table.columns)
        except KeyError as exc:
            raise ImportRefused(f"line {number}: a {table.record} without {exc}") from None


def _batches(
    records: Iterator[Record], size: int = 1000
) -> Iterator[tuple[Table, list[tuple[Any, ...]]]]:
    """Consecutive rows of one table, `size` at most at a time."""
    batch: list[tuple[Any, ...]] = []
    current: Table | None = None
    for table, row in _rows_by_table(records):
        if (table is not current or len(batch) == size) and batch and current is not None:
            yield current, batch
            batch = []
        current = table
        batch.append(row)
    if batch and current is not None:
        yield current, batch


_EMPTY_CHECK: Final = (
    "SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM messages),"
    " (SELECT count(*) FROM rooms WHERE room != 'general' OR last_seq != 0)"
)


def _refuse_unless_empty(counts: tuple[int, int, int]) -> None:
    users, events, rooms = counts
    if users or events or rooms:
        raise ImportRefused(
            f"the database is not empty ({users} users, {rooms} rooms, {events} events): "
            "import only into a new database"
        )


def _insert(table: Table, mark: Callable[[int], str]) -> str:
    marks = ", ".join(mark(i + 1) for i in range(len(table.columns)))
    return f"INSERT INTO {table.name} ({', '.join(table.columns)}) VALUES ({marks})"


def load_sqlite(path: Path, records: Iterator[Record]) -> int:
    """Load a dump into the new SQLite database at `path` (migrated); rows loaded."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        _check_header(next(records, {}), max(v for v, _ in SQLITE))
        conn.execute("BEGIN IMMEDIATE")
        try:
            _refuse_unless_empty(conn.execute(_EMPTY_CHECK).fetchone())
            conn.execute("DELETE FROM rooms WHERE room = 'general'")  # the dump has its own
            loaded = 0
            for table, rows in _batches(records):
                flags = [table.columns.index(c) for c in table.flags]
                conn.executemany(
                    _insert(table, lambda i: "?"), [_to_sqlite(row, flags) for row in rows]
                )
                loaded += len(rows)
            conn.execute(
                "INSERT INTO message_words (rowid, text, room)"
                " SELECT rowid, text, room FROM messages WHERE kind IS NULL AND deleted = 0"
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return loaded
    finally:
        conn.close()


def _to_sqlite(row: tuple[Any, ...], flags: list[int]) -> tuple[Any, ...]:
    if not flags:
        return row
    return tuple(int(v) if i in flags else v for i, v in enumerate(row))


def _to_postgres(table: Table, row: tuple[Any, ...]) -> tuple[Any, ...]:
    converted = list(row)
    for i, column in enumerate(table.columns):
        value = converted[i]
        if value is None:
            continue
        if column in table.times:
            converted[i] = datetime.fromisoformat(value)
        elif column in table.reals:
            converted[i] = float(value)
    return tuple(converted)


async def load_postgres(dsn: str, records: Iterator[Record]) -> int:
    """Load a dump into the new PostgreSQL database `dsn` (migrated); rows loaded."""
    from parley.store.postgres import _index_existing  # the search words, as migration 7

    _check_header(next(records, {}), max(v for v, _ in POSTGRES))
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await conn.execute("LOCK TABLE users, rooms, messages IN EXCLUSIVE MODE")
            _refuse_unless_empty(tuple(await conn.fetchrow(_EMPTY_CHECK)))
            await conn.execute("DELETE FROM rooms WHERE room = 'general'")
            loaded = 0
            for table, rows in _batches(records):
                await conn.executemany(
                    _insert(table, lambda i: f"${i}"), [_to_postgres(table, r) for r in rows]
                )
                loaded += len(rows)
            await _index_existing(conn)
        return loaded
    finally:
        await conn.close()
