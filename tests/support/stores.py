"""Several store instances on one database: as many nodes writing at once."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable

from parley.store import Store

__all__ = ["nodes_on_one_database"]


@contextlib.asynccontextmanager
async def nodes_on_one_database(
    store_factory: Callable[[], Store], count: int
) -> AsyncIterator[list[Store]]:
    """`count` store instances on one database, opened: as many nodes writing at once."""
    nodes = [store_factory() for _ in range(count)]
    for node in nodes:
        await node.open()
    try:
        yield nodes
    finally:
        for node in nodes:
            await node.close()
