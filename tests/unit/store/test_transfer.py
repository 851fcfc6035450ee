"""The order and contents of a full dump (store/transfer.py `plan`): the core tables
first, every other table after those it refers to, nothing derived or secret."""

from __future__ import annotations

from parley.store.transfer import plan

CORE = {
    "users": ["username", "username_key", "password_hash", "created_at"],
    "tokens": ["token_hash", "username", "expires_at"],
    "rooms": ["room", "private"],
    "members": ["room", "username", "since"],
    "read_marks": ["username", "room", "seq"],
    "messages": ["room", "seq", "text", "words"],
    "mentions": ["username", "room", "seq"],
    "schema_migrations": ["version", "applied_at"],
    "message_words": ["text", "room"],
    "message_words_data": ["id", "block"],
    "sqlite_sequence": ["name", "seq"],
}


def test_core_tables_in_load_order_without_sessions_or_derived_data() -> None:
    tables = plan(CORE, [("members", "rooms"), ("tokens", "users")])
    assert [(t.name, t.record) for t in tables] == [
        ("users", "user"),
        ("rooms", "room"),
        ("members", "member"),
        ("read_marks", "read_mark"),
        ("messages", "event"),
        ("mentions", "mention"),
    ]
    assert tables[4].columns == ("room", "seq", "text")  # PostgreSQL's search words: derived


def test_later_tables_follow_what_they_refer_to() -> None:
    columns = {**CORE, "attachments": ["file_id"], "files": ["id"], "audit": ["actor"]}
    tables = plan(columns, [("attachments", "files"), ("files", "users")])
    names = [t.name for t in tables]
    assert names[:6] == ["users", "rooms", "members", "read_marks", "messages", "mentions"]
    assert names[6:] == ["audit", "files", "attachments"]
    assert tables[-1].record == "attachments"


def test_a_cycle_of_references_still_lists_every_table() -> None:
    columns = {**CORE, "a": ["x"], "b": ["y"]}
    names = [t.name for t in plan(columns, [("a", "b"), ("b", "a")])]
    assert names[6:] == ["a", "b"]
