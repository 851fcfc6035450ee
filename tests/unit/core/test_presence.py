from __future__ import annotations

from parley.core import PresenceGrace


def test_a_first_departure_is_announced_at_once() -> None:
    grace = PresenceGrace(5.0)
    assert grace.hold("r", "ann", 0.0) is None  # announce now
    assert grace.lingering("r") == []
    assert grace.back("r", "ann") is False  # the room heard "offline": announce "online"
    assert grace.next_deadline() is None


def test_a_user_who_leaves_again_within_the_grace_is_held_and_back_means_never_gone() -> None:
    grace = PresenceGrace(5.0)
    assert grace.hold("r", "ann", 0.0) is None
    grace.back("r", "ann")
    assert grace.hold("r", "ann", 1.0) == 5.0  # held until the quiet period ends
    assert grace.lingering("r") == ["ann"]  # still online for the room meanwhile
    assert grace.back("r", "ann") is True  # came back: announce nothing either way
    assert grace.lingering("r") == []
    assert grace.due(10.0) == []
    assert grace.next_deadline() is None


def test_held_departures_fall_due_in_deadline_order() -> None:
    grace = PresenceGrace(5.0)
    grace.hold("r", "ann", 0.0)  # quiet until 5
    grace.hold("r", "bob", -3.0)  # quiet until 2
    grace.back("r", "ann")
    grace.back("r", "bob")
    assert grace.hold("r", "ann", 1.0) == 5.0
    assert grace.hold("r", "bob", 1.5) == 2.0  # held later, due earlier
    assert grace.next_deadline() == 2.0
    assert grace.due(2.0) == [("r", "bob")]
    assert grace.due(4.9) == []
    assert grace.due(5.0) == [("r", "ann")]
    assert grace.next_deadline() is None


def test_an_announcement_that_fell_due_starts_a_new_quiet_period() -> None:
    grace = PresenceGrace(5.0)
    grace.hold("r", "ann", 0.0)
    grace.back("r", "ann")
    grace.hold("r", "ann", 1.0)
    assert grace.due(5.0) == [("r", "ann")]
    assert grace.back("r", "ann") is False  # announced gone: coming back is news
    assert grace.hold("r", "ann", 6.0) == 10.0  # within the new quiet period
    assert grace.back("r", "ann") is True
    assert grace.hold("r", "ann", 10.5) is None  # quiet again: at once


def test_a_flapping_user_costs_the_room_three_frames_per_grace() -> None:
    """100 leave/join pairs within the grace, then a last leave: offline and online at
    once, then one held offline when the quiet period ends."""
    grace = PresenceGrace(5.0)
    frames = 0
    for i in range(100):
        if grace.hold("r", "eve", i * 0.01) is None:
            frames += 1
        if not grace.back("r", "eve"):
            frames += 1
    assert grace.hold("r", "eve", 1.0) == 5.0
    assert frames == 2
    assert grace.due(4.99) == []
    assert grace.due(5.0) == [("r", "eve")]


def test_quiet_periods_are_forgotten_once_over() -> None:
    grace = PresenceGrace(5.0)
    for i in range(1000):
        grace.hold("r", f"u{i}", 0.0)
    assert grace.remembered == 1000
    assert grace.due(5.0) == []
    assert grace.remembered == 0
    assert grace.hold("r", "u1", 5.0) is None


def test_zero_grace_is_off() -> None:
    assert PresenceGrace(0).enabled is False
    assert PresenceGrace(0.5).enabled is True
