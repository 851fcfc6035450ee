"""Backups of the SQLite store: a consistent copy while a server writes, and a restore
that swaps a checked copy in while no server runs (datalock.py).

The copy is one step of SQLite's online backup API: it reads every page inside one read
transaction, so it is the database as of one commit, and in WAL mode the server's writer
is never blocked meanwhile (a copy in several steps would restart whenever a write lands
between two of them, and a busy server writes all the time). The copy is written beside
the target under another name and renamed into place only when complete, in rollback
journal mode, so it is one self-contained file.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from parley.store import datalock
from parley.store.driver import sqlite3
from parley.store.migrations import SQLITE as MIGRATIONS

__all__ = ["BackupError", "BackupResult", "backup", "check_database", "restore", "wal_files"]

KNOWN_VERSIONS: Final = frozenset(version for version, _ in MIGRATIONS)
_PARTIAL: Final = ".partial"


class BackupError(Exception):
    """A backup or restore that cannot be made; nothing was changed."""


@dataclass(frozen=True, slots=True)
class BackupResult:
    path: Path
    size: int  # bytes
    version: int  # the schema version (the last migration applied)


def wal_files(database: Path) -> list[Path]:
    """The files SQLite keeps beside a database in WAL mode."""
    return [database.with_name(database.name + suffix) for suffix in ("-wal", "-shm")]


@contextlib.contextmanager
def _connection(path: Path, *, read_only: bool = False) -> Iterator[sqlite3.Connection]:
    uri = f"{path.absolute().as_uri()}?mode={'ro' if read_only else 'rw'}"
    try:
        conn = sqlite3.connect(uri, uri=True, isolation_level=None)
    except sqlite3.Error as exc:
        raise BackupError(f"{path}: cannot be opened: {exc}") from None
    try:
        yield conn
    finally:
        conn.close()


def check_database(path: Path) -> int:
    """The schema version of the Parley SQLite database at `path`; BackupError when it is
    not one, is damaged, or was made by a newer Parley than this one."""
    if not path.is_file():
        raise BackupError(f"{path}: no such file")
    with _connection(path, read_only=True) as conn:
        try:
            versions = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
            damage = conn.execute("PRAGMA quick_check").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise BackupError(f"{path}: not a Parley database ({exc})") from None
    if not versions:
        raise BackupError(f"{path}: not a Parley database (no schema version)")
    if not versions <= KNOWN_VERSIONS:
        newest = max(versions)
        raise BackupError(
            f"{path}: schema version {newest} is newer than this Parley knows "
            f"({max(KNOWN_VERSIONS)}): restore it with the Parley that made it"
        )
    if damage != "ok":
        raise BackupError(f"{path}: the database is damaged: {damage}")
    return int(max(versions))


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _copy(source: sqlite3.Connection, target: Path) -> None:
    """The whole of `source` as of one moment into a new file `target`, made durable."""
    target.unlink(missing_ok=True)
    copy = sqlite3.connect(target, isolation_level=None)
    try:
        source.backup(copy)  # pages=-1: one step, one read transaction
        copy.execute("PRAGMA journal_mode=DELETE")  # one file, whatever the source's mode
    finally:
        copy.close()
    _fsync(target)


def _refuse_same(path: Path, database: Path) -> None:
    """`path` must be none of the database's own files."""
    own = [database, *wal_files(database)]
    if any(path.resolve() == file.resolve() for file in own):
        raise BackupError(f"{path}: is the server's database itself")


def _writable_beside(target: Path) -> Path:
    """The name the copy is made under, checking that the target's directory takes files."""
    partial = target.with_name(target.name + _PARTIAL)
    try:
        partial.touch()
    except OSError as exc:
        raise BackupError(f"{target}: cannot be written: {exc.strerror}") from None
    return partial


def backup(database: Path, target: Path, *, force: bool = False) -> BackupResult:
    """Copy the live database at `database` to `target` (a new file unless `force`)."""
    if not database.is_file():
        raise BackupError(f"{database}: no such database (is --data right?)")
    _refuse_same(target, database)
    if target.is_dir():
        raise BackupError(f"{target}: is a directory")
    if target.exists() and not force:
        raise BackupError(f"{target}: already exists (--force replaces it)")
    partial = _writable_beside(target)
    try:
        with _connection(database) as source:
            _copy(source, partial)
        version = check_database(partial)
        os.replace(partial, target)
    except (sqlite3.Error, OSError) as exc:
        raise BackupError(f"{target}: the copy failed: {exc}") from None
    finally:
        partial.unlink(missing_ok=True)
    _fsync(target.parent)
    return BackupResult(target, target.stat().st_size, version)


def _retire(database: Path) -> None:
    """Fold the old database's write-ahead log into it and drop the log, so that no log
    of the old database is ever read against the new one, and a crash mid-restore leaves
    the old database whole."""
    if database.is_file():
        with contextlib.suppress(sqlite3.Error), _connection(database) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    for path in wal_files(database):
        path.unlink(missing_ok=True)


def restore(source: Path, data_dir: Path) -> BackupResult:
    """Replace DATA/parley.db by the checked database `source`, while no server runs."""
    database = data_dir / "parley.db"
    _refuse_same(source, database)
    version = check_database(source)
    with datalock.exclusive(data_dir):
        partial = _writable_beside(database)
        try:
            with _connection(source, read_only=True) as conn:
                _copy(conn, partial)
            _retire(database)
            os.replace(partial, database)
        except (sqlite3.Error, OSError) as exc:
            raise BackupError(f"{database}: the restore failed: {exc}") from None
        finally:
            partial.unlink(missing_ok=True)
        _fsync(data_dir)
    return BackupResult(database, database.stat().st_size, version)
