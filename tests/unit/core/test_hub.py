from __future__ import annotations

from parley.core import Hub


def test_presence_follows_first_and_last_connection() -> None:
    hub: Hub[str] = Hub()
    assert hub.subscribe("c1", "alice", "general") is True
    assert hub.subscribe("c2", "alice", "general") is False
    assert hub.subscribe("c3", "bob", "general", plain=True) is True
    assert hub.online("general") == ["alice", "bob"]
    assert hub.unsubscribe("c1", "alice", "general") is False
    assert hub.unsubscribe("c2", "alice", "general") is True
    assert hub.online("general") == ["bob"]
    assert hub.unsubscribe("c2", "alice", "general") is False  # twice is harmless
    assert hub.unsubscribe("c3", "bob", "general") is True
    assert hub.rooms == {}


def test_replaying_connection_buffers_until_live() -> None:
    hub: Hub[str] = Hub()
    hub.subscribe("live", "a", "r")
    hub.go_live("live", "r")
    hub.subscribe("late", "b", "r")
    subs = hub.deliver("r", b"m1")
    assert subs is not None
    assert subs.live == {"live"}
    hub.deliver("r", b"m2")
    assert hub.go_live("late", "r") == [b"m1", b"m2"]
    subs = hub.deliver("r", b"m3")
    assert subs is not None
    assert subs.live == {"live", "late"}
    assert hub.go_live("late", "r") == []


def test_deliver_to_empty_room() -> None:
    hub: Hub[str] = Hub()
    assert hub.deliver("nobody", b"x") is None
    assert hub.online("nobody") == []
    assert not hub.is_subscribed("c", "nobody")


def test_plain_subscribers_are_separate() -> None:
    hub: Hub[str] = Hub()
    hub.subscribe("p", "carol", "general", plain=True)
    subs = hub.deliver("general", b"x")
    assert subs is not None
    assert subs.plain == {"p"}
    assert subs.live == set()
    assert hub.is_subscribed("p", "general")
