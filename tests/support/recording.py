"""Waiting for what callbacks recorded, without sleeping: the sinks the broker and presence
suites hand to the code under test."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Final

__all__ = ["WAIT", "Recording"]

WAIT: Final = 15.0  # an upper bound for things that normally take milliseconds


class Recording:
    """Base of a recording sink: each callback records, then calls `changed()`."""

    def __init__(self) -> None:
        self._changed = asyncio.Event()

    def changed(self) -> None:
        self._changed.set()

    async def until(self, done: Callable[[], bool], within: float = WAIT) -> None:
        """Return once `done()` holds, checked after each change; TimeoutError after `within`."""

        async def wait() -> None:
            while not done():
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(wait(), within)
