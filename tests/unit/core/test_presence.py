from __future__ import annotations

from parley.core import PresenceGrace


def test_a_user_back_within_the_grace_was_never_gone() -> None:
    grace = PresenceGrace(5.0)
    assert grace.hold("r", "ann", 0.0) == 5.0
    assert grace.lingering("r") == ["ann"]  # still online for the room meanwhile
    assert grace.back("r", "ann") is True  # came back: announce nothing either way
    assert grace.lingering("r") == []
    assert grace.due(10.0) == []
    assert grace.next_deadline() is None
    assert grace.back("r", "ann") is False  # not held: a real arrival, announce it


def test_offline_falls_due_after_the_grace_in_order() -> None:
    grace = PresenceGrace(5.0)
    grace.hold("r", "ann", 0.0)
    grace.hold("r", "bob", 1.0)
    grace.hold("s", "ann", 2.0)
    assert grace.next_deadline() == 5.0
    assert grace.due(4.9) == []
    assert grace.due(6.0) == [("r", "ann"), ("r", "bob")]
    assert grace.lingering("r") == []
    assert grace.next_deadline() == 7.0
    assert grace.due(7.0) == [("s", "ann")]
    assert grace.next_deadline() is None


def test_a_flapping_user_is_announced_once_after_the_last_leave() -> None:
    """100 leave/join pairs within the grace: one held offline, due 5 s after the last."""
    grace = PresenceGrace(5.0)
    announced_online = 0
    for i in range(100):
        grace.hold("r", "eve", i * 0.01)
        if not grace.back("r", "eve"):
            announced_online += 1
    grace.hold("r", "eve", 1.0)
    assert announced_online == 0
    assert grace.due(5.99) == []  # the earlier holds were cancelled, not merely postponed
    assert grace.next_deadline() == 6.0
    assert grace.due(6.0) == [("r", "eve")]


def test_zero_grace_is_off() -> None:
    assert PresenceGrace(0).enabled is False
    assert PresenceGrace(0.5).enabled is True
