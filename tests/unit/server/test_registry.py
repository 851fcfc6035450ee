from __future__ import annotations

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
