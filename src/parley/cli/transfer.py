"""`parley export ROOM | --all` and `parley import FILE`: JSON lines out of and into
either store (store/transfer.py), so that a team moves from SQLite to PostgreSQL."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import IO, Any

import msgspec

from parley.cli.storeopts import add_store_options, fail, is_postgres, sqlite_path
from parley.store import StoreUnavailable, datalock, open_store
from parley.store.sqlite import SQLiteStore
from parley.store.transfer import (
    ExportFailed,
    ImportRefused,
    Record,
    dump_postgres,
    dump_sqlite,
    encode_line,
    find_room_postgres,
    find_room_sqlite,
    load_postgres,
    load_sqlite,
    room_history,
)

__all__ = ["add_parsers"]

_decode = msgspec.json.Decoder(dict[str, Any]).decode


def add_parsers(sub: Any) -> None:
    """Register `export` and `import` with the top parser's subparsers."""
    e = sub.add_parser(
        "export",
        help="a room's messages, or everything, as JSON lines on standard output",
        description="ROOM: the room's messages as history shows them (the items of GET "
        "/api/rooms/ROOM/messages), ascending seq, one JSON object a line. --all: users "
        "(with password hashes), rooms, members, read markers, every event and every "
        "uploaded file with its bytes, as records `parley import` loads (docs/admin.md).",
    )
    what = e.add_mutually_exclusive_group(required=True)
    what.add_argument("room", nargs="?", metavar="ROOM", help="the room's key or name")
    what.add_argument("--all", action="store_true", help="a full dump of the database")
    add_store_options(e)
    e.set_defaults(run=_export)
    i = sub.add_parser(
        "import",
        help="load a full export into a new, empty database",
        description="Load the records of `parley export --all` (FILE, or - for standard "
        "input) into an empty database, keeping every seq: SQLite under --data (uploads' "
        "bytes in DIR/files), or --db.",
    )
    i.add_argument("file", metavar="FILE", help="an export --all file, or -")
    add_store_options(i)
    i.set_defaults(run=_import)


async def _migrated(args: argparse.Namespace) -> Path:
    """Bring the database to this version's schema, as `serve` would (creating it); where
    SQLite keeps the uploads' bytes (unused on PostgreSQL, which keeps them inside)."""
    store = open_store(args.db, args.data)
    await store.open()
    await store.close()
    return store.files if isinstance(store, SQLiteStore) else Path(args.data) / "files"


def _export(args: argparse.Namespace) -> int:
    if not is_postgres(args.db) and not sqlite_path(args).is_file():
        return fail(f"{sqlite_path(args)}: no such database (is --data right?)")
    out = sys.stdout.buffer
    try:
        if not args.all:
            return asyncio.run(_export_room(args, out))
        files = asyncio.run(_migrated(args))
        if is_postgres(args.db):
            asyncio.run(_export_postgres(args.db, out))
        else:
            dump = dump_sqlite(sqlite_path(args), files)
            out.writelines(encode_line(record) for record in dump)
    except (StoreUnavailable, ExportFailed) as exc:
        return fail(str(exc))
    except BrokenPipeError:  # the reader left (`| head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return 0


async def _export_room(args: argparse.Namespace, out: IO[bytes]) -> int:
    if is_postgres(args.db):
        room = await find_room_postgres(args.db, args.room)
    else:
        room = find_room_sqlite(sqlite_path(args), args.room)
    if room is None:
        return fail(f"no room {args.room!r}")
    store = open_store(args.db, args.data)
    await store.open()
    try:
        async for message in room_history(store, room):
            out.write(encode_line(message))
    finally:
        await store.close()
    return 0


async def _export_postgres(dsn: str, out: IO[bytes]) -> None:
    async for record in dump_postgres(dsn):
        out.write(encode_line(record))


def _records(lines: IO[bytes]) -> Iterator[Record]:
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            yield _decode(line)
        except msgspec.DecodeError as exc:
            raise ImportRefused(f"line {number}: not a JSON object: {exc}") from None


def _import(args: argparse.Namespace) -> int:
    try:
        source = sys.stdin.buffer if args.file == "-" else Path(args.file).open("rb")  # noqa: SIM115
    except OSError as exc:
        return fail(f"{args.file}: cannot be read: {exc.strerror}")
    # SQLite: no server may use the data directory meanwhile (PostgreSQL: the database
    # must be empty, which no running server's is for long)
    lock = nullcontext() if is_postgres(args.db) else datalock.exclusive(args.data)
    try:
        with source, lock:
            files = asyncio.run(_migrated(args))
            if is_postgres(args.db):
                loaded = asyncio.run(load_postgres(args.db, _records(source)))
            else:
                loaded = load_sqlite(sqlite_path(args), files, _records(source))
    except (ImportRefused, StoreUnavailable, datalock.DataDirBusy) as exc:
        return fail(f"{args.file}: {exc}" if isinstance(exc, ImportRefused) else str(exc))
    print(f"imported {loaded} records", file=sys.stderr)
    return 0
