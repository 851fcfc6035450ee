"""A throwaway PostgreSQL server for tests: initdb + pg_ctl in a temp dir, on a free loopback port.

The implementation lives in parley.bench.stores (the multi-node benchmark uses it too).
"""

from __future__ import annotations

from parley.bench.stores import PgServer, pg_bin

__all__ = ["PgServer", "pg_bin"]
