"""In-process presence: one node, whose users are everyone."""

from __future__ import annotations

from collections.abc import Iterable

from parley.presence.base import PresenceSink, PresenceTracker

__all__ = ["MemoryPresence"]


class MemoryPresence(PresenceTracker):
    """One node: a user is online exactly while this node says so."""

    def __init__(self) -> None:
        self._sink: PresenceSink | None = None

    async def start(self, sink: PresenceSink) -> None:
        self._sink = sink

    async def close(self) -> None:
        self._sink = None

    def came(self, room: str, username: str) -> None:
        if self._sink is not None:
            self._sink.on_presence(room, username, True)

    def went(self, room: str, username: str) -> None:
        if self._sink is not None:
            self._sink.on_presence(room, username, False)

    async def online(self, room: str, here: Iterable[str]) -> list[str]:
        return sorted(here)

    async def flush(self) -> None:
        """Nothing to write: there are no other nodes."""
