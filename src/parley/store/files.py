"""Uploaded files' rows, shared by both stores (no I/O): the columns, the record a row
makes, where SQLite keeps a content's bytes, and the access rule in SQL."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from parley.store.base import FileRecord

__all__ = ["FILE_COLUMNS", "READABLE_FILE", "blob_path", "blobs_of", "file_of", "file_row"]

FILE_COLUMNS: Final = "id, sha256, name, type, size, width, height, thumb, uploader, created_at"

# The file {id}, when user {user} uploaded it or may read now a room holding a message
# (not deleted: a delete takes its links away) that carries it. The placeholders are
# filled with the dialect's own (`:id` and `:user` for SQLite, `$1` and `$2` for asyncpg).
READABLE_FILE: Final = (
    f"SELECT {FILE_COLUMNS} FROM files f WHERE f.id = {{id}} AND (f.uploader = {{user}}"
    " OR EXISTS (SELECT 1 FROM message_files l JOIN rooms r ON r.room = l.room"
    " WHERE l.file_id = f.id AND (NOT r.private OR EXISTS (SELECT 1 FROM members x"
    " WHERE x.room = r.room AND x.username = {user}))))"
)


def file_of(row: Sequence[Any]) -> FileRecord:
    """A row of FILE_COLUMNS."""
    return FileRecord(
        row[0],
        row[1],
        row[2],
        row[3],
        int(row[4]),
        None if row[5] is None else int(row[5]),
        None if row[6] is None else int(row[6]),
        row[7],
        row[8],
        float(row[9]),
    )


def file_row(record: FileRecord) -> tuple[Any, ...]:
    """The values of FILE_COLUMNS for a new row."""
    r = record
    return (
        r.id,
        r.sha256,
        r.name,
        r.type,
        r.size,
        r.width,
        r.height,
        r.thumb,
        r.uploader,
        r.created_at,
    )


def blobs_of(record: FileRecord, content: Path, thumb: Path | None) -> list[tuple[str, Path]]:
    """The contents an upload stores: (sha256, the temporary file holding it), by sha256:
    whoever locks contents locks them in that one order, so two never wait on each other."""
    blobs = [(record.sha256, content)]
    if record.thumb is not None and thumb is not None:
        blobs.append((record.thumb, thumb))
    return sorted(blobs)


def blob_path(root: Path, sha256: str) -> Path:
    """Where SQLite's store keeps content `sha256`: root/ab/cd/abcd... (two levels of 256
    folders, so that no folder grows past a few thousand entries)."""
    return root / sha256[:2] / sha256[2:4] / sha256
