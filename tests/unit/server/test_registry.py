from __future__ import annotations

from typing import cast

from parley.protocol import CloseCode
from parley.server.connection import Connection
from parley.server.registry import Registry


def test_guest_sockets_are_counted_per_address_until_released() -> None:
    registry = Registry()
    registry.add_guest("10.0.0.1")
    registry.add_guest("10.0.0.1")
    registry.add_guest("10.0.0.2")
    assert registry.guests_open("10.0.0.1") == 2
    assert registry.guests_open("10.0.0.2") == 1
    registry.release_guest("10.0.0.1")
    assert registry.guests_open("10.0.0.1") == 1
    registry.release_guest("10.0.0.1")
    assert registry.guests_open("10.0.0.1") == 0


def test_releasing_an_address_with_none_open_counts_nothing() -> None:
    registry = Registry()
    registry.release_guest("10.0.0.1")
    assert registry.guests_open("10.0.0.1") == 0
    registry.add_guest("10.0.0.1")
    assert registry.guests_open("10.0.0.1") == 1


class _Socket:
    """What the registry reads of a socket, and the close it asks for."""

    def __init__(self, username: str, token_hash: str) -> None:
        self.username = username
        self.token_hash = token_hash
        self.guest = False
        self.closed: list[tuple[int, str]] = []

    def close(self, code: int, reason: str = "") -> bool:
        self.closed.append((code, reason))
        return True


def _attach(registry: Registry, username: str, token_hash: str) -> _Socket:
    sock = _Socket(username, token_hash)
    registry.attach(cast(Connection, sock))
    return sock


def test_a_socket_registered_after_its_session_ended_is_closed_at_once() -> None:
    registry = Registry()
    registry.sign_out("t1")  # its handshake checked t1 before this
    assert _attach(registry, "ann", "t1").closed == [(CloseCode.SIGNED_OUT, "signed out")]
    assert _attach(registry, "ann", "t2").closed == []  # another session


def test_after_an_accounts_sign_out_its_sockets_are_checked_again() -> None:
    registry = Registry()
    rechecked: list[tuple[str, CloseCode]] = []
    registry.recheck = lambda conn, code: rechecked.append((conn.token_hash or "", code))
    registry.sign_out_user("Ann", keep="kept", code=CloseCode.BANNED)
    late = _attach(registry, "ann", "t1")
    _attach(registry, "ann", "kept")
    _attach(registry, "bob", "t2")
    assert late.closed == []  # a session begun since would be alive: the store decides
    assert rechecked == [("t1", CloseCode.BANNED)]
