"""A throwaway redis-server for tests: no persistence, a temp dir, a free loopback port.

The implementation lives in parley.bench.stores (the multi-node benchmark uses it too).
"""

from __future__ import annotations

from parley.bench.stores import RedisServer

__all__ = ["RedisServer"]
