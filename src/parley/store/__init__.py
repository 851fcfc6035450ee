"""Durable storage behind one interface: SQLite (default) and PostgreSQL."""

from parley.store.base import (
    Appended,
    AuditEntry,
    Changed,
    ChangeRequest,
    DeleteRequest,
    EditRequest,
    FileRecord,
    Invite,
    MemberChange,
    MessageQuery,
    NewerSchema,
    NotAllowed,
    QuotaExceeded,
    ReactRequest,
    Refused,
    Registration,
    RoomRecord,
    SignUp,
    Store,
    Stored,
    StoreStats,
    StoreUnavailable,
    TopicRequest,
    UnknownFile,
    UnknownRoom,
    UnknownTarget,
    UnknownUser,
    UserRecord,
    UserSummary,
    utc_timestamp,
)

__all__ = [
    "Appended",
    "AuditEntry",
    "ChangeRequest",
    "Changed",
    "DeleteRequest",
    "EditRequest",
    "FileRecord",
    "Invite",
    "MemberChange",
    "MessageQuery",
    "NewerSchema",
    "NotAllowed",
    "QuotaExceeded",
    "ReactRequest",
    "Refused",
    "Registration",
    "RoomRecord",
    "SignUp",
    "Store",
    "StoreStats",
    "StoreUnavailable",
    "Stored",
    "TopicRequest",
    "UnknownFile",
    "UnknownRoom",
    "UnknownTarget",
    "UnknownUser",
    "UserRecord",
    "UserSummary",
    "open_store",
    "utc_timestamp",
]


def open_store(
    db_url: str | None, data_dir: str, *, group_commit: bool = True, search: bool | None = None
) -> Store:
    """The store a `--db` URL names; SQLite under `data_dir` when there is none (its
    uploads' bytes in `data_dir`/files either way). Without `search`, messages are not
    indexed for search (the index is dropped); None (a maintenance command): the index
    stays as the server keeps it."""
    from pathlib import Path

    if db_url and db_url.startswith(("postgres://", "postgresql://")):
        from parley.store.postgres import PostgresStore

        return PostgresStore(db_url, search=search)
    if db_url and db_url.startswith("sqlite:///"):
        path = Path(db_url.removeprefix("sqlite:///"))
    else:
        path = Path(data_dir) / "parley.db"
    from parley.store.sqlite import SQLiteStore

    files = Path(data_dir) / "files"
    return SQLiteStore(path, group_commit=group_commit, search=search, files=files)
