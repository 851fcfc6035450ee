"""The presence interface: who is online in a room across the cluster.

A node tells its presence tracker when a user's first connection on this node joins a room
(`came`) and when the last one leaves or drops (`went`); the tracker answers who is online
in a room (`online`) and calls its sink's `on_presence(room, username, online)` when a user
comes online or goes offline *cluster-wide*, in the rooms this node has users in. Damping
flapping users is the node's job (`core.presence.PresenceGrace`), not the tracker's.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable
from typing import Protocol

__all__ = ["PresenceSink", "PresenceTracker"]


class PresenceSink(Protocol):
    """What a node does with what its presence tracker tells it."""

    def on_presence(self, room: str, username: str, online: bool) -> None:
        """`username` came online (`online`) or went offline in `room`, cluster-wide."""


class PresenceTracker(abc.ABC):
    """Keeps this node's users in the cluster's presence and tells the node what changes."""

    @abc.abstractmethod
    async def start(self, sink: PresenceSink) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None:
        """Leave the cluster: this node's users go offline for the other nodes now."""

    @abc.abstractmethod
    def came(self, room: str, username: str) -> None:
        """`username`'s first connection on this node joined `room`."""

    @abc.abstractmethod
    def went(self, room: str, username: str) -> None:
        """`username`'s last connection on this node left `room`."""

    @abc.abstractmethod
    async def online(self, room: str, here: Iterable[str]) -> list[str]:
        """Everyone online in `room`, sorted; `here` are the users online on this node."""

    @abc.abstractmethod
    async def flush(self) -> None:
        """Return once every `came` and `went` so far is where the other nodes read it."""
