"""A role change reaches the user's parley.v1 sockets, including one whose `hello` is being
built (its read of the role may have come before the change)."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import msgspec

from parley.broker import RoleChanged
from parley.presence import MemoryPresence
from parley.server.connection import Connection, Mode
from parley.server.delivery import Delivery
from parley.server.registry import Registry
from parley.store.sqlite import SQLiteStore


class _Socket:
    """What the registry and the delivery read of a parley.v1 socket, and what it is sent."""

    def __init__(self, token_hash: str, *, building_hello: bool) -> None:
        self.username = "Ann"
        self.token_hash = token_hash
        self.guest = False
        self.mode = Mode.JSON
        self.reads_before_hello: dict[str, int] | None = {} if building_hello else None
        self.admin_before_hello: bool | None = None
        self.sent: list[object] = []

    def send(self, frame: bytes) -> None:
        self.sent.append(msgspec.json.decode(frame))


async def test_a_role_change_is_sent_or_kept_for_the_hello_being_built(tmp_path: Path) -> None:
    registry = Registry()
    delivery = Delivery(SQLiteStore(tmp_path / "unused.db"), registry, MemoryPresence())
    ready = _Socket("t1", building_hello=False)
    greeting = _Socket("t2", building_hello=True)
    for sock in (ready, greeting):
        registry.attach(cast(Connection, sock))
    delivery.on_event(RoleChanged("ann", True))
    delivery.on_event(RoleChanged("ann", False))
    assert ready.sent == [
        {"type": "account", "admin": True},
        {"type": "account", "admin": False},
    ]
    assert (greeting.sent, greeting.admin_before_hello) == ([], False)  # the last one heard
