"""Durable storage behind one interface: SQLite (default) and PostgreSQL."""

from parley.store.base import (
    Changed,
    ChangeRequest,
    DeleteRequest,
    EditRequest,
    FileRecord,
    MemberChange,
    MessageQuery,
    NotAllowed,
    QuotaExceeded,
    ReactRequest,
    RoomRecord,
    Store,
    StoreStats,
    StoreUnavailable,
    TopicRequest,
    UnknownFile,
    UnknownRoom,
    UnknownTarget,
    UserRecord,
    utc_timestamp,
)

__all__ = [
    "ChangeRequest",
    "Changed",
    "DeleteRequest",
    "EditRequest",
    "FileRecord",
    "MemberChange",
    "MessageQuery",
    "NotAllowed",
    "QuotaExceeded",
    "ReactRequest",
    "RoomRecord",
    "Store",
    "StoreStats",
    "StoreUnavailable",
    "TopicRequest",
    "UnknownFile",
    "UnknownRoom",
    "UnknownTarget",
    "UserRecord",
    "open_store",
    "utc_timestamp",
]


def open_store(db_url: str | None, data_dir: str, *, group_commit: bool = True) -> Store:
    """The store a `--db` URL names; SQLite under `data_dir` when there is none (its
    uploads' bytes in `data_dir`/files either way)."""
    from pathlib import Path

    if db_url and db_url.startswith(("postgres://", "postgresql://")):
        from parley.store.postgres import PostgresStore

        return PostgresStore(db_url)
    if db_url and db_url.startswith("sqlite:///"):
        path = Path(db_url.removeprefix("sqlite:///"))
    else:
        path = Path(data_dir) / "parley.db"
    from parley.store.sqlite import SQLiteStore

    return SQLiteStore(path, group_commit=group_commit, files=Path(data_dir) / "files")
