"""Versioned schema migrations, applied in order on start (one list per dialect).

A migration is never edited once released: add a new version instead.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from parley.store.base import NewerSchema

__all__ = [
    "ADMIN_VERSION",
    "FILES_VERSION",
    "INDEX_LAG_VERSION",
    "LEAN_SEARCH_VERSION",
    "POSTGRES",
    "POSTGRES_SEARCH_INDEX",
    "SEARCH_VERSION",
    "SQLITE",
    "SQLITE_SEARCH_INDEX",
    "refuse_newer",
]

SEARCH_VERSION: Final = 7  # the version that adds full-text search
FILES_VERSION: Final = 8  # the version that adds uploaded files and attachments
ADMIN_VERSION: Final = 9  # roles, bans, invites, the audit log, the registration mode
LEAN_SEARCH_VERSION: Final = 10  # SQLite: the search index without prefix lists
INDEX_LAG_VERSION: Final = 11  # SQLite: the search index filled after the send, in bulk

# The resend index leads with client_id: a client whose ids are time-ordered (UUIDv7, as
# Parley's own clients send) then appends to one edge of the index, where (username,
# client_id) put every sender on its own leaf page, so a COMMIT of N messages wrote N
# index pages. Same uniqueness, same lookups (both columns are given).
_CLIENT_ID_FIRST: Final = """
    DROP INDEX messages_by_client;
    CREATE UNIQUE INDEX messages_by_client_id ON messages(client_id, username)
        WHERE client_id IS NOT NULL;
"""

# Room names are unique per user, not per server (core/roomnames.py): a room keeps its key
# and gains the name users call it and a random tag that tells same-name rooms apart; a
# membership gains the moment it began (for a public room: the user's first use of it).
_ROOM_NAMES: Final = """
    ALTER TABLE rooms ADD COLUMN name TEXT NOT NULL DEFAULT '';
    ALTER TABLE rooms ADD COLUMN tag TEXT NOT NULL DEFAULT '';
    ALTER TABLE members ADD COLUMN since {real} NOT NULL DEFAULT 0;
    UPDATE rooms SET name = room, tag = {random_tag};
    CREATE UNIQUE INDEX rooms_by_tag ON rooms(tag);
    CREATE INDEX rooms_by_name ON rooms(name);
    CREATE INDEX members_by_user ON members(username, room);
"""

# Read markers (contract v2): how far each user has read each room, by the room's key. A
# marker only moves forward, and never past the room's last seq (the store's upsert).
_READ_MARKS: Final = """
    CREATE TABLE read_marks (
        username TEXT NOT NULL,
        room     TEXT NOT NULL REFERENCES rooms(room),
        seq      {integer} NOT NULL,
        PRIMARY KEY (username, room)
    ){without_rowid};
"""

# The room stream becomes an event log (contract v2, docs/architecture.md "The event log").
# `messages` holds every event: a message (kind NULL) keeps its current state on its row;
# other kinds record one change each (target: the message's seq; data: JSON details).
# Counts stay cheap (hello costs O(rooms), not a scan of messages):
#   unread = rooms.msgs - read_marks.n - read_marks.own - deleted by others after the marker
# where rooms.msgs counts the room's messages, messages.n is a message's ordinal among
# them (read_marks.n: the ordinal at the marker), and read_marks.own counts the user's own
# messages after the marker; deleted messages are few (a partial index). Mentions of a
# user are rows of `mentions`, so theirs after the marker is an index range.
# Before this version every event was a message: n = seq, msgs = last_seq.
_EVENT_LOG: Final = """
    ALTER TABLE messages ADD COLUMN kind TEXT;
    ALTER TABLE messages ADD COLUMN target {integer};
    ALTER TABLE messages ADD COLUMN data TEXT;
    ALTER TABLE messages ADD COLUMN reply_to {integer};
    ALTER TABLE messages ADD COLUMN edited TEXT;
    ALTER TABLE messages ADD COLUMN deleted {integer} NOT NULL DEFAULT 0;
    ALTER TABLE messages ADD COLUMN reactions TEXT;
    ALTER TABLE messages ADD COLUMN mentions TEXT;
    ALTER TABLE messages ADD COLUMN n {integer};
    UPDATE messages SET n = seq;
    CREATE INDEX messages_deleted ON messages(room, seq) WHERE deleted = 1;
    ALTER TABLE rooms ADD COLUMN kind TEXT NOT NULL DEFAULT 'room';
    ALTER TABLE rooms ADD COLUMN topic TEXT NOT NULL DEFAULT '';
    ALTER TABLE rooms ADD COLUMN msgs {integer} NOT NULL DEFAULT 0;
    UPDATE rooms SET msgs = last_seq;
    ALTER TABLE read_marks ADD COLUMN n {integer} NOT NULL DEFAULT 0;
    ALTER TABLE read_marks ADD COLUMN own {integer} NOT NULL DEFAULT 0;
    UPDATE read_marks SET n = seq, own = (SELECT count(*) FROM messages m
        WHERE m.room = read_marks.room AND m.username = read_marks.username
        AND m.seq > read_marks.seq);
    INSERT INTO read_marks (username, room, seq, n, own)
        SELECT m.username, m.room, 0, 0, count(*) FROM messages m
        WHERE NOT EXISTS (SELECT 1 FROM read_marks k
            WHERE k.username = m.username AND k.room = m.room)
        GROUP BY m.username, m.room;
    CREATE TABLE mentions (
        username TEXT NOT NULL,
        room     TEXT NOT NULL,
        seq      {integer} NOT NULL,
        PRIMARY KEY (username, room, seq)
    ){without_rowid};
"""

# Mentions after the marker as a counter too, as `own` is (migration 5 counted rows of
# `mentions` past the marker at every `hello`: a cost in proportion to the unread mentions,
# most of `hello`'s at scale, see docs/performance.md). A mention row stored or dropped adds
# or takes one when it lies past the user's marker; a marker that moves takes those it passes.
_MENTION_COUNTS: Final = """
    ALTER TABLE read_marks ADD COLUMN ment {integer} NOT NULL DEFAULT 0;
    UPDATE read_marks SET ment = (SELECT count(*) FROM mentions x
        WHERE x.username = read_marks.username AND x.room = read_marks.room
        AND x.seq > read_marks.seq);
    INSERT INTO read_marks (username, room, seq, n, own, ment)
        SELECT x.username, x.room, 0, 0, 0, count(*) FROM mentions x
        WHERE NOT EXISTS (SELECT 1 FROM read_marks k
            WHERE k.username = x.username AND k.room = x.room)
        GROUP BY x.username, x.room
"""

# Full-text search (contract v2, core/search.py says what matches).
# SQLite: an FTS5 index of the messages' current text, external-content (the text lives
# once, in `messages`; rowid = the message row's rowid). Contentless would store no copy
# either, but deleting from a contentless table needs SQLite 3.43 (contentless_delete) and
# an edit must take the old words out. The stores keep it in the send, edit and delete
# transactions (no triggers: only message rows, never other events, are indexed), giving
# the old text back to take a row out. Nothing rebuilds it from `messages` ('rebuild'
# would index every event) and nothing VACUUMs (which may renumber rowids).
# prefix='1 2 3': indexes of every word's first 1, 2 and 3 characters, so a short prefix
# (what search-as-you-type sends first) reads one list instead of merging those of every
# word it begins (measured on 1,000,000 messages: "t" 240 ms -> under 1 ms). The room's
# key is indexed too (column `room`), so a search in one small room does not read the
# whole server's matches to find that room's.
_SEARCH_SQLITE: Final = """
    CREATE VIRTUAL TABLE message_words USING fts5(
        text, room, content='messages', content_rowid='rowid',
        tokenize='unicode61 remove_diacritics 2', prefix='1 2 3'
    );
    INSERT INTO message_words (rowid, text, room)
        SELECT rowid, text, room FROM messages WHERE kind IS NULL AND deleted = 0
"""

# PostgreSQL: a message row's folded words (core/search.py `index_words`, computed in
# Python, so the same folding as SQLite's tokenizer, diacritics too, which the `simple`
# configuration alone does not remove) as a tsvector, with a GIN index; prefix queries
# use `:*`. NULL for other events and deleted messages. The store fills the column of the
# messages stored before this version right after it (postgres.py `_index_existing`).
# `parley serve --search off` drops the index (the words are kept up to date all the same,
# so turning it on again only builds the index).
POSTGRES_SEARCH_INDEX: Final = "CREATE INDEX messages_by_words ON messages USING gin (words)"
_SEARCH_POSTGRES: Final = "ALTER TABLE messages ADD COLUMN words tsvector;" + POSTGRES_SEARCH_INDEX

# Version 10 (SQLite): the same index without prefix lists. Kept in the send batch's
# transaction, the lists of every word's first 1, 2 and 3 characters cost more than the
# words themselves (ingest with them: about 70% of ingest without the index; measured in
# docs/performance.md). Short prefixes are found another way now (sqlite.py `_search`:
# the newest messages are checked directly, and the index answers for older ones).
# columnsize=0: no row of word counts per message (only ranking reads them, and search
# orders by time): a third less of what the index costs a send (counted by callgrind).
# `parley serve --search off` drops the table; on again, the store runs this to rebuild it.
SQLITE_SEARCH_INDEX: Final = """
    CREATE VIRTUAL TABLE message_words USING fts5(
        text, room, content='messages', content_rowid='rowid',
        tokenize='unicode61 remove_diacritics 2', columnsize=0
    );
    INSERT INTO message_words (rowid, text, room)
        SELECT rowid, text, room FROM messages WHERE kind IS NULL AND deleted = 0
"""

# Version 11 (SQLite): sends no longer fill the search index in their own transaction.
# FTS5 writes a segment of its index per transaction (and merges them as they pile up),
# so a send batch of a hundred messages paid for a small segment and its share of the
# merges: about 16k instructions a message, 0.68-0.8 of ingest without the index. The
# writer now indexes what was stored since `indexed_upto` (a rowid) in bulk, every few
# thousand messages or a moment after the last send (sqlite.py `_fill_search_index`),
# and search checks the rows above `indexed_upto` directly (`_RecentScan`), so a message
# is found the moment it is acked, as before.
SQLITE_INDEX_LAG: Final = """
    CREATE TABLE search_state (
        id           INTEGER PRIMARY KEY CHECK (id = 1),
        indexed_upto INTEGER NOT NULL
    );
    INSERT INTO search_state (id, indexed_upto)
        SELECT 1, coalesce(max(rowid), 0) FROM messages
"""

# Files (contract v2, docs/protocol.md "Files"). A file row is one upload: its label and
# type, who uploaded it, and the sha256 of its stored bytes (and of its thumbnail's);
# `refs` counts the messages (not deleted) carrying it, kept in the send and delete
# transactions, so that the purge of unused uploads is a condition on the row itself (on
# PostgreSQL a send that takes a file locks its row first: the two never cross).
# `message_files` links messages to their files, for the access check; a message row's
# `attachments` holds the File objects it carries as JSON, so reading history joins nothing.
# `blobs` counts the file rows (and thumbnails) using each content: the bytes go with
# the last. SQLite keeps the bytes on disk (DATA/files/ab/cd/<sha256>), PostgreSQL in
# `data`, so every node serves every file, stored uncompressed (STORAGE EXTERNAL): a
# range read then fetches only its own pieces rather than inflating the whole value.
_FILES: Final = """
    ALTER TABLE messages ADD COLUMN attachments TEXT;
    CREATE TABLE files (
        id         TEXT PRIMARY KEY,
        sha256     TEXT NOT NULL,
        name       TEXT NOT NULL,
        type       TEXT NOT NULL,
        size       {integer} NOT NULL,
        width      {integer},
        height     {integer},
        thumb      TEXT,
        uploader   TEXT NOT NULL,
        created_at {real} NOT NULL,
        refs       {integer} NOT NULL DEFAULT 0
    );
    CREATE INDEX files_by_uploader ON files(uploader);
    CREATE INDEX files_unused ON files(created_at) WHERE refs = 0;
    CREATE TABLE message_files (
        room    TEXT NOT NULL,
        seq     {integer} NOT NULL,
        file_id TEXT NOT NULL REFERENCES files(id),
        PRIMARY KEY (room, seq, file_id)
    ){without_rowid};
    CREATE INDEX message_files_by_file ON message_files(file_id);
    CREATE TABLE blobs (
        sha256 TEXT PRIMARY KEY,
        refs   {integer} NOT NULL{data}
    ){without_rowid}{after}
"""

# Running it for a team (issue 15): server admins and bans on the account; invite codes
# (single use, expiring: times in epoch seconds, compared with the `now` the caller
# passes); the audit log of admin and owner actions (newest first by id); one settings row
# holding the registration mode, read where it is needed, so every node sees a change at
# once. On a database that has accounts already, the oldest one becomes the admin, as the
# first account registered would have been.
_ADMIN: Final = """
    ALTER TABLE users ADD COLUMN admin {boolean} NOT NULL DEFAULT {false};
    ALTER TABLE users ADD COLUMN banned {boolean} NOT NULL DEFAULT {false};
    UPDATE users SET admin = {true}
        WHERE username = (SELECT username FROM users ORDER BY created_at, username LIMIT 1);
    CREATE INDEX users_admins ON users(username) WHERE admin = {true};
    CREATE TABLE invites (
        code       TEXT PRIMARY KEY,
        created_by TEXT NOT NULL,
        created_at {real} NOT NULL,
        expires_at {real} NOT NULL,
        used_by    TEXT,
        used_at    {real}
    );
    CREATE INDEX invites_by_age ON invites(created_at);
    CREATE TABLE audit (
        id     {serial} PRIMARY KEY,
        ts     TEXT NOT NULL,
        actor  TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        room   TEXT
    );
    CREATE TABLE settings (
        id           INTEGER PRIMARY KEY CHECK (id = 1),
        registration TEXT NOT NULL
    );
    INSERT INTO settings (id, registration) VALUES (1, 'open')
"""

SQLITE: Final[list[tuple[int, str]]] = [
    (
        1,
        """
        CREATE TABLE users (
            username      TEXT PRIMARY KEY,
            username_key  TEXT NOT NULL UNIQUE,
            password_hash TEXT NOT NULL,
            created_at    TEXT NOT NULL
        );
        CREATE TABLE tokens (
            token_hash TEXT PRIMARY KEY,
            username   TEXT NOT NULL REFERENCES users(username),
            expires_at REAL NOT NULL
        );
        CREATE INDEX tokens_by_user ON tokens(username);
        CREATE TABLE rooms (
            room       TEXT PRIMARY KEY,
            private    INTEGER NOT NULL DEFAULT 0,
            owner      TEXT,
            last_seq   INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL
        );
        CREATE TABLE members (
            room     TEXT NOT NULL REFERENCES rooms(room),
            username TEXT NOT NULL,
            PRIMARY KEY (room, username)
        ) WITHOUT ROWID;
        CREATE TABLE messages (
            room      TEXT NOT NULL,
            seq       INTEGER NOT NULL,
            username  TEXT NOT NULL,
            text      TEXT NOT NULL,
            ts        TEXT NOT NULL,
            client_id TEXT,
            PRIMARY KEY (room, seq)
        );
        CREATE UNIQUE INDEX messages_by_client ON messages(username, client_id)
            WHERE client_id IS NOT NULL;
        INSERT INTO rooms (room, private, owner, last_seq, created_at)
            VALUES ('general', 0, NULL, 0, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'));
        """,
    ),
    (2, _CLIENT_ID_FIRST),
    (3, _ROOM_NAMES.format(real="REAL", random_tag="lower(hex(randomblob(8)))")),
    (4, _READ_MARKS.format(integer="INTEGER", without_rowid=" WITHOUT ROWID")),
    (5, _EVENT_LOG.format(integer="INTEGER", without_rowid=" WITHOUT ROWID")),
    (6, _MENTION_COUNTS.format(integer="INTEGER")),
    (SEARCH_VERSION, _SEARCH_SQLITE),
    (
        FILES_VERSION,
        _FILES.format(
            integer="INTEGER", real="REAL", without_rowid=" WITHOUT ROWID", data="", after=""
        ),
    ),
    (
        ADMIN_VERSION,
        _ADMIN.format(boolean="INTEGER", true="1", false="0", real="REAL", serial="INTEGER"),
    ),
    (LEAN_SEARCH_VERSION, "DROP TABLE IF EXISTS message_words;" + SQLITE_SEARCH_INDEX),
    (INDEX_LAG_VERSION, SQLITE_INDEX_LAG),
]

POSTGRES: Final[list[tuple[int, str]]] = [
    (
        1,
        """
        CREATE TABLE users (
            username      TEXT PRIMARY KEY,
            username_key  TEXT NOT NULL UNIQUE,
            password_hash TEXT NOT NULL,
            created_at    TIMESTAMPTZ NOT NULL DEFAULT now()
        );
        CREATE TABLE tokens (
            token_hash TEXT PRIMARY KEY,
            username   TEXT NOT NULL REFERENCES users(username),
            expires_at DOUBLE PRECISION NOT NULL
        );
        CREATE INDEX tokens_by_user ON tokens(username);
        CREATE TABLE rooms (
            room       TEXT PRIMARY KEY,
            private    BOOLEAN NOT NULL DEFAULT false,
            owner      TEXT,
            last_seq   BIGINT NOT NULL DEFAULT 0,
            created_at TIMESTAMPTZ NOT NULL DEFAULT now()
        );
        CREATE TABLE members (
            room     TEXT NOT NULL REFERENCES rooms(room),
            username TEXT NOT NULL,
            PRIMARY KEY (room, username)
        );
        CREATE TABLE messages (
            room      TEXT NOT NULL,
            seq       BIGINT NOT NULL,
            username  TEXT NOT NULL,
            text      TEXT NOT NULL,
            ts        TEXT NOT NULL,
            client_id TEXT,
            PRIMARY KEY (room, seq)
        );
        CREATE UNIQUE INDEX messages_by_client ON messages(username, client_id)
            WHERE client_id IS NOT NULL;
        INSERT INTO rooms (room, private, owner, last_seq) VALUES ('general', false, NULL, 0);
        """,
    ),
    (2, _CLIENT_ID_FIRST),
    (
        3,
        _ROOM_NAMES.format(
            real="DOUBLE PRECISION", random_tag="substr(md5(random()::text || room), 1, 16)"
        ),
    ),
    (4, _READ_MARKS.format(integer="BIGINT", without_rowid="")),
    (5, _EVENT_LOG.format(integer="BIGINT", without_rowid="")),
    (6, _MENTION_COUNTS.format(integer="BIGINT")),
    (SEARCH_VERSION, _SEARCH_POSTGRES),
    (
        FILES_VERSION,
        _FILES.format(
            integer="BIGINT",
            real="DOUBLE PRECISION",
            without_rowid="",
            data=",\n        data   BYTEA NOT NULL",
            after=";\n    ALTER TABLE blobs ALTER COLUMN data SET STORAGE EXTERNAL",
        ),
    ),
    (
        ADMIN_VERSION,
        _ADMIN.format(
            boolean="BOOLEAN",
            true="true",
            false="false",
            real="DOUBLE PRECISION",
            serial="BIGSERIAL",
        ),
    ),
    # PostgreSQL's search index does not change: the version is taken all the same, so
    # that a schema version (an export's, say) means the same tables on both stores.
    (LEAN_SEARCH_VERSION, "SELECT 1"),
    (INDEX_LAG_VERSION, "SELECT 1"),
]


def refuse_newer(done: Iterable[int], known: Iterable[int]) -> None:
    """Raise NewerSchema when the database holds a version this Parley does not know: a
    downgrade would run old code over tables it has never seen (and could not migrate back)."""
    known = set(known)
    unknown = set(done) - known
    if unknown:
        raise NewerSchema(
            f"the database has schema version {max(unknown)}, newer than this Parley knows "
            f"({max(known)}): run the Parley that made it, or restore a backup"
        )
