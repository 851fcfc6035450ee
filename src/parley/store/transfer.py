"""Export and import: a room's messages, or the whole database, as JSON lines; the same
on SQLite and PostgreSQL, so that a team moves from one to the other.

A full dump is a header line, then one record a row of every table that is the server's
state, in an order an import can insert them in (a table after those it refers to):
users (with their password hashes), rooms (last_seq and the counters kept with it),
members, read markers, the event log (every message as it is now, and every edit,
delete, reaction, topic and member event, each with its seq), mention rows, then the
tables later migrations add (files, roles, ...), found in the database's catalog. Each
record names its kind in `record` (a table's name, or a shorter one for the tables above)
and holds the row's columns: times as ISO 8601 text and bytes as base64 from either store;
flags as the store keeps them (SQLite 0/1, PostgreSQL true/false). Sessions are not
exported: everyone signs in again. The search index is derived, so an import rebuilds it.

Uploaded files' bytes (SQLite keeps them as files under the data directory, PostgreSQL in
`blobs.data`) follow each `blobs` record (its sha256 and refs) as `blob_data` records:
{sha256, offset, data: base64 of CONTENT_CHUNK bytes at most}, one at least, so that
neither the dump nor the import ever holds more than one chunk (PostgreSQL's import: one
content) in memory.

An import goes into an empty database only (a new one: its migrations applied, no user,
no event), all of it in one transaction, converting each value to its column's type there.
Each content is checked against its sha256 before it is stored, through the target store's
own code (`store_blob`); on SQLite, the contents the import placed are removed again when
it fails.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import tempfile
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Final

import msgspec

from parley.protocol import Message
from parley.store.base import MessageQuery, Store, utc_timestamp
from parley.store.driver import sqlite3
from parley.store.files import blob_path
from parley.store.migrations import POSTGRES, SQLITE
from parley.store.sqlite import store_blob

__all__ = [
    "CONTENT_CHUNK",
    "FORMAT",
    "Content",
    "ExportFailed",
    "ImportRefused",
    "Record",
    "Table",
    "dump_postgres",
    "dump_sqlite",
    "encode_line",
    "find_room_postgres",
    "find_room_sqlite",
    "header",
    "load_postgres",
    "load_sqlite",
    "plan",
    "room_history",
]

FORMAT: Final = 2  # of the dump; a new one when a record's meaning changes
# Format 1 had no `blob_data`: it loads still when it holds no uploads.
READABLE_FORMATS: Final = frozenset({1, FORMAT})
HEADER: Final = "parley-export"
BLOBS: Final = "blobs"  # the table of contents, and its records' name
CONTENT: Final = "blob_data"  # the records of a content's bytes
CONTENT_CHUNK: Final = 96 * 1024  # bytes a `blob_data` record carries at most
Record = dict[str, Any]

# The core tables, in load order, with their records' names and their rows' order.
CORE: Final = (
    ("users", "user", "username"),
    ("rooms", "room", "room"),
    ("members", "member", "room, username"),
    ("read_marks", "read_mark", "username, room"),
    ("messages", "event", "room, seq"),
    ("mentions", "mention", "username, room, seq"),
)
# Not state to move: the migrations' own record, sessions, and what is derived (SQLite's
# FTS5 index, its shadow tables and how far it reaches, PostgreSQL's search words).
SKIPPED_TABLES: Final = frozenset({"schema_migrations", "tokens", "search_state"})
SKIPPED_PREFIXES: Final = ("sqlite_", "message_words")
# (PostgreSQL's contents are `blob_data` records rather than a column of their row.)
SKIPPED_COLUMNS: Final = frozenset({("messages", "words"), (BLOBS, "data")})


class ImportRefused(Exception):
    """The dump cannot go into this database; nothing was written."""


class ExportFailed(Exception):
    """The database cannot be dumped whole (an upload's bytes are missing)."""


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    record: str
    columns: tuple[str, ...]
    order: str | None = None  # ORDER BY of its rows in a dump (None: as stored)


def _kept(table: str) -> bool:
    return table not in SKIPPED_TABLES and not table.startswith(SKIPPED_PREFIXES)


def plan(columns: Mapping[str, Iterable[str]], refers: Iterable[tuple[str, str]]) -> list[Table]:
    """The tables a dump holds, in an order an import can insert them in: the core ones
    first, then each other table after every table it refers to (`refers`: pairs of
    (table, table it refers to)), by name among equals."""
    kept = {
        t: tuple(c for c in cols if (t, c) not in SKIPPED_COLUMNS)
        for t, cols in columns.items()
        if _kept(t)
    }
    needs: dict[str, set[str]] = {t: set() for t in kept}
    for table, other in refers:
        if table in needs and other in kept and other != table:
            needs[table].add(other)
    ordered = [Table(t, record, kept[t], order) for t, record, order in CORE if t in kept]
    placed = {t.name for t in ordered}
    while len(placed) < len(kept):
        ready = sorted(t for t in kept if t not in placed and needs[t] <= placed)
        if not ready:  # a cycle of references: the rest by name (the import then fails clearly)
            ready = sorted(t for t in kept if t not in placed)
        ordered += [Table(t, t, kept[t]) for t in ready]
        placed.update(ready)
    return ordered


_encode: Final = msgspec.json.Encoder().encode


def header(schema: int) -> Record:
    return {"record": HEADER, "format": FORMAT, "schema": schema, "exported": utc_timestamp()}


def _portable(value: Any) -> Any:
    """A column's value as JSON holds it, whichever store it came from."""
    if isinstance(value, datetime):
        return utc_timestamp(value)
    if isinstance(value, bytes | memoryview):
        return base64.b64encode(bytes(value)).decode()
    return value


def _exported(table: Table, row: Iterable[Any]) -> Record:
    record: Record = {"record": table.record}
    for column, value in zip(table.columns, row, strict=True):
        record[column] = _portable(value)
    return record


def _select(table: Table) -> str:
    order = f" ORDER BY {table.order}" if table.order else ""
    return f"SELECT {', '.join(table.columns)} FROM {table.name}{order}"


# --- the catalogs ----------------------------------------------------------------------


def _sqlite_catalog(
    conn: sqlite3.Connection,
) -> tuple[dict[str, dict[str, str]], list[tuple[str, str]]]:
    """Each table's columns with their declared types, and its references."""
    names = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    types = {
        name: {
            row[1]: str(row[2]).upper()
            for row in conn.execute("SELECT * FROM pragma_table_info(?)", (name,))
        }
        for name in names
    }
    refers = [
        (name, row[2])
        for name in names
        for row in conn.execute("SELECT * FROM pragma_foreign_key_list(?)", (name,))
    ]
    return types, refers


_PG_COLUMNS: Final = (
    "SELECT table_name, column_name, data_type FROM information_schema.columns"
    " WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position"
)
_PG_REFERS: Final = (
    "SELECT conrelid::regclass::text, confrelid::regclass::text FROM pg_constraint"
    " WHERE contype = 'f' AND connamespace = current_schema()::regnamespace"
)


async def _postgres_catalog(conn: Any) -> tuple[dict[str, dict[str, str]], list[tuple[str, str]]]:
    types: dict[str, dict[str, str]] = {}
    for row in await conn.fetch(_PG_COLUMNS):
        types.setdefault(row[0], {})[row[1]] = row[2]
    refers = [(row[0], row[1]) for row in await conn.fetch(_PG_REFERS)]
    return types, refers


# --- reading ---------------------------------------------------------------------


def _sqlite_schema(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT max(version) FROM schema_migrations").fetchone()[0])


def _content(sha256: str, offset: int, data: bytes) -> Record:
    return {
        "record": CONTENT,
        "sha256": sha256,
        "offset": offset,
        "data": base64.b64encode(data).decode(),
    }


def _sqlite_content(files: Path, sha256: str) -> Iterator[Record]:
    """The `blob_data` records of a content SQLite keeps under `files`."""
    try:
        with blob_path(files, sha256).open("rb") as f:
            offset = 0
            while True:
                data = f.read(CONTENT_CHUNK)
                yield _content(sha256, offset, data)
                offset += len(data)
                if len(data) < CONTENT_CHUNK:
                    return
    except FileNotFoundError:
        raise ExportFailed(
            f"the bytes of upload content {sha256} are missing: no {blob_path(files, sha256)}"
            " (is --data right?)"
        ) from None


def dump_sqlite(path: Path, files: Path) -> Iterator[Record]:
    """The whole database at `path`, as of one moment (one read transaction), with the
    uploads' bytes kept under `files`."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("BEGIN")
        yield header(_sqlite_schema(conn))
        for table in plan(*_sqlite_catalog(conn)):
            for row in conn.execute(_select(table)):
                record = _exported(table, row)
                yield record
                if table.name == BLOBS:
                    yield from _sqlite_content(files, record["sha256"])
        conn.execute("COMMIT")
    finally:
        conn.close()


async def _postgres_content(conn: Any, sha256: str) -> AsyncIterator[Record]:
    """The `blob_data` records of a content PostgreSQL keeps, read a chunk at a time."""
    offset = 0
    while True:
        data = await conn.fetchval(
            "SELECT substring(data FROM $2 FOR $3) FROM blobs WHERE sha256 = $1",
            sha256,
            offset + 1,
            CONTENT_CHUNK,
        )
        yield _content(sha256, offset, bytes(data))
        offset += len(data)
        if len(data) < CONTENT_CHUNK:
            return


async def _connect(dsn: str) -> Any:
    """A connection to PostgreSQL. asyncpg is imported here, not at the top: every `parley`
    command imports this module, and a server on SQLite should not pay for asyncpg."""
    import asyncpg  # type: ignore[import-untyped]

    return await asyncpg.connect(dsn)


async def dump_postgres(dsn: str) -> AsyncIterator[Record]:
    conn = await _connect(dsn)
    try:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            yield header(await conn.fetchval("SELECT max(version) FROM schema_migrations"))
            for table in plan(*await _postgres_catalog(conn)):
                async for row in conn.cursor(_select(table), prefetch=2000):
                    record = _exported(table, row)
                    yield record
                    if table.name == BLOBS:
                        async for chunk in _postgres_content(conn, record["sha256"]):
                            yield chunk
    finally:
        await conn.close()


# A room for `parley export ROOM`: by its key, by the name `name~tag`, or by its name when
# one room only has it.
_ROOM_BY_REF: Final = (
    "SELECT room FROM rooms WHERE room = {0} OR name || '~' || tag = {0}"
    " OR (name = {0} AND (SELECT count(*) FROM rooms WHERE name = {0}) = 1)"
    " ORDER BY room = {0} DESC LIMIT 1"
)


def find_room_sqlite(path: Path, ref: str) -> str | None:
    """The key of the room `ref` names; None: no such room."""
    conn = sqlite3.connect(path)
    try:
        found = conn.execute(_ROOM_BY_REF.format("?1"), (ref,)).fetchone()
    finally:
        conn.close()
    return None if found is None else str(found[0])


async def find_room_postgres(dsn: str, ref: str) -> str | None:
    conn = await _connect(dsn)
    try:
        found = await conn.fetchval(_ROOM_BY_REF.format("$1"), ref)
    finally:
        await conn.close()
    return None if found is None else str(found)


async def room_history(store: Store, room: str, page: int = 500) -> AsyncIterator[Message]:
    """Every message of the room as history shows it (the store's own pages), ascending."""
    after = 0
    while True:
        messages = await store.messages(MessageQuery(room, page, after=after))
        for message in messages:
            yield message
        if len(messages) < page:
            return
        after = messages[-1].seq


def encode_line(value: object) -> bytes:
    return _encode(value) + b"\n"


# --- writing ---------------------------------------------------------------------

Types = dict[str, dict[str, str]]  # table -> column -> its type in the target database
Convert = Callable[[str, Any], Any]  # (column type, JSON value) -> what the driver takes


def _check_header(first: Record, newest: int) -> None:
    if first.get("record") != HEADER:
        raise ImportRefused("not a Parley export: its first line is no export header")
    if first.get("format") not in READABLE_FORMATS:
        raise ImportRefused(f"export format {first.get('format')} is not {FORMAT}")
    schema = first.get("schema")
    if not isinstance(schema, int) or schema > newest:
        raise ImportRefused(
            f"the export's schema version {schema} is newer than this Parley knows ({newest})"
        )


Row = tuple[str, tuple[str, ...], tuple[Any, ...]]  # table, columns, values
Batch = tuple[str, tuple[str, ...], list[tuple[Any, ...]]]
_SHA256: Final = re.compile("[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class Content:
    """An upload's content from the dump, whole and checked: its bytes are in `path`."""

    sha256: str
    refs: int
    path: Path


class _Contents:
    """Each `blobs` record's content, from the `blob_data` records right after it, written
    to a file under `staging` as it comes and checked against its sha256."""

    def __init__(self, staging: Path) -> None:
        self.staging = staging
        self._line = 0  # of the current content's `blobs` record; 0: none
        self._sha256 = ""
        self._refs = 0
        self._file: IO[bytes] | None = None
        self._digest = hashlib.sha256()
        self._size = 0
        self._chunks = 0

    def start(self, line: int, record: Record) -> None:
        sha256, refs = record.get("sha256"), record.get("refs")
        if record.keys() != {"sha256", "refs"} or not isinstance(sha256, str):
            raise ImportRefused(f"line {line}: a blobs record holds its sha256 and refs only")
        if not _SHA256.fullmatch(sha256) or type(refs) is not int:
            raise ImportRefused(f"line {line}: blob {sha256!r}: not a sha256 and a count")
        self._line, self._sha256, self._refs = line, sha256, refs
        self._file = (self.staging / sha256).open("wb")
        self._digest = hashlib.sha256()
        self._size = self._chunks = 0

    def add(self, line: int, record: Record) -> None:
        if self._file is None:
            raise ImportRefused(f"line {line}: blob_data without its blobs record before it")
        expected = {"sha256": self._sha256, "offset": self._size}
        if record.keys() != {*expected, "data"} or any(record[k] != expected[k] for k in expected):
            raise ImportRefused(
                f"line {line}: blob_data out of place: {self._sha256} from offset "
                f"{self._size} expected"
            )
        try:
            data = base64.b64decode(record["data"], validate=True)
        except (binascii.Error, TypeError, ValueError):
            raise ImportRefused(f"line {line}: blob_data whose data is no base64") from None
        self._file.write(data)
        self._digest.update(data)
        self._size += len(data)
        self._chunks += 1

    def finish(self) -> Content | None:
        """The content started last, now whole; None: none."""
        if self._file is None:
            return None
        self._file.close()
        self._file = None
        sha256, line = self._sha256, self._line
        if not self._chunks:
            raise ImportRefused(f"line {line}: blob {sha256}: the dump carries no content for it")
        if self._digest.hexdigest() != sha256:
            raise ImportRefused(
                f"line {line}: blob {sha256}: its content is damaged (its sha256 is "
                f"{self._digest.hexdigest()}, {self._size} bytes)"
            )
        return Content(sha256, self._refs, self.staging / sha256)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _rows(
    records: Iterator[Record], types: Types, convert: Convert, staging: Path
) -> Iterator[Row | Content]:
    """(table, columns, values) of each record, converted for the target, and each
    content, checked, in a file under `staging` (removed once the caller took it)."""
    tables = {table.record: table.name for table in plan(types, []) if table.name != BLOBS}
    contents = _Contents(staging)
    try:
        for number, record in enumerate(records, start=2):
            kind = record.pop("record", None)
            if kind == CONTENT:
                contents.add(number, record)
                continue
            yield from _taken(contents.finish())
            if kind == BLOBS:
                contents.start(number, record)
                continue
            table = tables.get(kind) if isinstance(kind, str) else None
            if table is None:
                raise ImportRefused(f"line {number}: unknown record {kind!r}")
            columns = types[table]
            unknown = sorted(record.keys() - columns.keys())
            if unknown:
                raise ImportRefused(f"line {number}: {table} has no column {unknown[0]!r} here")
            values = tuple(convert(columns[c], v) for c, v in record.items())
            yield table, tuple(record), values
        yield from _taken(contents.finish())
    finally:
        contents.close()


def _taken(content: Content | None) -> Iterator[Content]:
    """The content, if any, for the caller to store; its file is gone afterwards (stored
    elsewhere already, or not needed)."""
    if content is not None:
        yield content
        content.path.unlink(missing_ok=True)


def _batches(items: Iterator[Row | Content], size: int = 1000) -> Iterator[Batch | Content]:
    """Consecutive rows of one table with the same columns, `size` at most at a time; the
    contents between them as they come."""
    batch: list[tuple[Any, ...]] = []
    current: tuple[str, tuple[str, ...]] = ("", ())
    for item in items:
        key = None if isinstance(item, Content) else item[:2]
        if batch and (key != current or len(batch) == size):
            yield (*current, batch)
            batch = []
        if isinstance(item, Content):
            yield item
        else:
            current = (item[0], item[1])
            batch.append(item[2])
    if batch:
        yield (*current, batch)


def _insert(table: str, columns: tuple[str, ...], mark: Callable[[int], str]) -> str:
    marks = ", ".join(mark(i + 1) for i in range(len(columns)))
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"


# The rows a new database's migrations make, which a dump holds too: `general`, and the
# settings row (the registration mode, migration 9).
_FRESH_ROWS: Final = ("DELETE FROM rooms WHERE room = 'general'", "DELETE FROM settings")
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


def _to_sqlite(declared: str, value: Any) -> Any:
    if declared == "BLOB" and isinstance(value, str):
        return base64.b64decode(value)
    return value  # a bool is stored as 0/1, as Parley stores its flags


_FOR_POSTGRES: Final[dict[str, Callable[[Any], Any]]] = {
    "timestamp with time zone": lambda v: datetime.fromisoformat(v) if isinstance(v, str) else v,
    "double precision": float,
    "real": float,
    "boolean": bool,
    "bytea": lambda v: base64.b64decode(v) if isinstance(v, str) else v,
}


def _to_postgres(data_type: str, value: Any) -> Any:
    convert = _FOR_POSTGRES.get(data_type)
    return value if value is None or convert is None else convert(value)


def load_sqlite(path: Path, files: Path, records: Iterator[Record]) -> int:
    """Load a dump into the new SQLite database at `path` (migrated), the uploads' bytes
    under `files`; rows loaded."""
    conn = sqlite3.connect(path, isolation_level=None)
    placed: list[Path] = []  # the contents this import moved into `files`
    try:
        _check_header(next(records, {}), max(v for v, _ in SQLITE))
        files.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="import-", dir=files.parent) as staging:
            conn.execute("BEGIN IMMEDIATE")
            try:
                _refuse_unless_empty(conn.execute(_EMPTY_CHECK).fetchone())
                for statement in _FRESH_ROWS:  # the dump has its own
                    conn.execute(statement)
                types, _ = _sqlite_catalog(conn)
                loaded = 0
                for item in _batches(_rows(records, types, _to_sqlite, Path(staging))):
                    if isinstance(item, Content):
                        target = store_blob(conn, files, item.sha256, item.path, item.refs)
                        placed += [target] if target else []
                        loaded += 1
                    else:
                        table, columns, rows = item
                        conn.executemany(_insert(table, columns, lambda i: "?"), rows)
                        loaded += len(rows)
                conn.execute(
                    "INSERT INTO message_words (rowid, text, room)"
                    " SELECT rowid, text, room FROM messages WHERE kind IS NULL AND deleted = 0"
                )
                conn.execute(
                    "UPDATE search_state SET indexed_upto ="
                    " (SELECT coalesce(max(rowid), 0) FROM messages)"
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                for target in placed:
                    with suppress(OSError):
                        target.unlink()
                raise
        return loaded
    finally:
        conn.close()


async def load_postgres(dsn: str, records: Iterator[Record]) -> int:
    """Load a dump into the new PostgreSQL database `dsn` (migrated); rows loaded."""
    from parley.store.postgres import _index_existing  # the search words, as migration 7
    from parley.store.postgres import store_blob as store_postgres_blob

    _check_header(next(records, {}), max(v for v, _ in POSTGRES))
    conn = await _connect(dsn)
    try:
        with tempfile.TemporaryDirectory(prefix="parley-import-") as staging:
            async with conn.transaction():
                await conn.execute("LOCK TABLE users, rooms, messages IN EXCLUSIVE MODE")
                _refuse_unless_empty(tuple(await conn.fetchrow(_EMPTY_CHECK)))
                for statement in _FRESH_ROWS:  # the dump has its own
                    await conn.execute(statement)
                types, _ = await _postgres_catalog(conn)
                loaded = 0
                for item in _batches(_rows(records, types, _to_postgres, Path(staging))):
                    if isinstance(item, Content):
                        data = item.path.read_bytes()
                        await store_postgres_blob(conn, item.sha256, data, item.refs)
                        loaded += 1
                    else:
                        table, columns, rows = item
                        await conn.executemany(_insert(table, columns, lambda i: f"${i}"), rows)
                        loaded += len(rows)
                await _index_existing(conn)
                # ids were loaded as they were: the audit log's next id follows the last one
                await conn.execute(
                    "SELECT setval(pg_get_serial_sequence('audit', 'id'),"
                    " coalesce(max(id), 0) + 1, false) FROM audit"
                )
        return loaded
    finally:
        await conn.close()
