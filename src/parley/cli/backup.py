"""`parley backup FILE` and `parley restore FILE`: SQLite's database, copied while the
server runs, and put back while it does not (store/backup.py)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from parley.cli.storeopts import add_store_options, fail, is_postgres, sqlite_path
from parley.store.backup import BackupError, backup, restore
from parley.store.datalock import DataDirBusy

__all__ = ["add_parsers"]


def add_parsers(sub: Any) -> None:
    """Register `backup` and `restore` with the top parser's subparsers."""
    b = sub.add_parser(
        "backup",
        help="copy the SQLite database, consistent, while the server runs",
        description="Write a consistent copy of the SQLite database to FILE (a database a "
        "server can start from), while the server runs. PostgreSQL: use pg_dump "
        "(docs/admin.md).",
    )
    b.add_argument("file", metavar="FILE", help="where the copy goes (a new file)")
    b.add_argument("--force", action="store_true", help="replace FILE if it exists")
    add_store_options(b)
    b.set_defaults(run=_backup)
    r = sub.add_parser(
        "restore",
        help="put a backup in place of the SQLite database (the server stopped)",
        description="Check that FILE is a Parley SQLite database this version knows, then "
        "replace DIR/parley.db with it, atomically. Refused while a server uses DIR.",
    )
    r.add_argument("file", metavar="FILE", help="a database `parley backup` wrote")
    add_store_options(r, db=False)
    r.set_defaults(run=_restore)


def _backup(args: argparse.Namespace) -> int:
    if is_postgres(args.db):
        return fail("backup copies SQLite databases; for PostgreSQL use pg_dump (docs/admin.md)")
    try:
        done = backup(sqlite_path(args), Path(args.file), force=args.force)
    except BackupError as exc:
        return fail(str(exc))
    print(f"backed up to {done.path} ({done.size} bytes, schema version {done.version})")
    return 0


def _restore(args: argparse.Namespace) -> int:
    try:
        done = restore(Path(args.file), Path(args.data))
    except (BackupError, DataDirBusy) as exc:
        return fail(str(exc))
    print(f"restored {args.file} to {done.path} (schema version {done.version})")
    return 0
