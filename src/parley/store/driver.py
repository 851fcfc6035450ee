"""The SQLite driver: pysqlite3-binary's `dbapi2` where its wheel is installed (Linux on
x86-64), else the standard library's `sqlite3`. The API is the same (pysqlite3 is a copy
of CPython's module), but the SQLite under it is newer (3.51 against Debian 12's 3.40) and
built with lookaside memory: the store's INSERTs cost a quarter less, and with the search
index's fill a fifth (docs/performance.md, "Durable ingest, round 8"). Its build leaves
secure-delete off; the store's connections turn it on (sqlite.py `_connect`).

Every connection of one process must come from the same library: two copies of SQLite in
one process do not see each other's POSIX locks on a file, and closing one's descriptor
drops the other's locks (sqlite.org, "How To Corrupt An SQLite Database File", 2.2.1). So
the store, backups and transfers import it from here, and so do tests that open a database
beside an in-process store.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__all__ = ["sqlite3"]

if TYPE_CHECKING:  # the standard library's stubs describe both
    import sqlite3
else:
    try:
        from pysqlite3 import dbapi2 as sqlite3
    except ImportError:  # no wheel for this platform: the same API, the system's SQLite
        import sqlite3
