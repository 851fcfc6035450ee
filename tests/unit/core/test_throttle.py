from __future__ import annotations

from parley.core import TYPING_EVERY, TypingThrottle
from parley.core.throttle import FORGET_AFTER, PRUNE_ABOVE


def test_the_first_typing_goes_out_then_one_per_interval() -> None:
    throttle = TypingThrottle()
    assert throttle.allow("r", "ann", 0.0)
    assert not throttle.allow("r", "ann", 0.5)
    assert not throttle.allow("r", "ann", TYPING_EVERY - 0.001)
    assert throttle.allow("r", "ann", TYPING_EVERY)
    assert not throttle.allow("r", "ann", TYPING_EVERY + 0.999)  # counts from the last pass


def test_a_held_back_typing_does_not_restart_the_interval() -> None:
    throttle = TypingThrottle(2.0)
    assert throttle.allow("r", "ann", 10.0)
    assert not throttle.allow("r", "ann", 11.5)
    assert throttle.allow("r", "ann", 12.0)


def test_each_user_and_room_has_its_own_interval() -> None:
    throttle = TypingThrottle()
    assert throttle.allow("r", "ann", 0.0)
    assert throttle.allow("r", "bob", 0.1)
    assert throttle.allow("s", "ann", 0.2)
    assert not throttle.allow("r", "ann", 0.3)


def test_stale_entries_are_forgotten_once_there_are_many() -> None:
    throttle = TypingThrottle()
    for i in range(PRUNE_ABOVE):
        assert throttle.allow("r", f"u{i}", 0.0)
    assert len(throttle) == PRUNE_ABOVE
    assert throttle.allow("r", "late", FORGET_AFTER)  # one more: the stale ones go
    assert len(throttle) == 1
    assert throttle.allow("r", "u0", FORGET_AFTER)  # forgotten, so not held back


def test_recent_entries_survive_the_pruning() -> None:
    throttle = TypingThrottle()
    for i in range(PRUNE_ABOVE):
        assert throttle.allow("r", f"u{i}", 0.0)
    assert throttle.allow("r", "late", FORGET_AFTER - 0.5)
    assert len(throttle) == PRUNE_ABOVE + 1
    assert not throttle.allow("r", "late", FORGET_AFTER)
