"""core/waiters.py: callbacks released once a room's feed reaches their seq."""

from __future__ import annotations

from collections.abc import Callable

from parley.core import SeqWaiters


def _note(log: list[str], what: str) -> Callable[[], None]:
    return lambda: log.append(what)


def test_callbacks_wait_for_their_seq_then_come_in_seq_then_ask_order() -> None:
    waiters = SeqWaiters()
    log: list[str] = []
    assert not waiters
    waiters.add("general", 7, _note(log, "seven"))
    waiters.add("general", 5, _note(log, "five-a"))
    waiters.add("general", 5, _note(log, "five-b"))
    waiters.add("other", 1, _note(log, "other"))
    assert waiters
    assert waiters.due("general", 4) == []
    for then in waiters.due("general", 6):
        then()
    assert log == ["five-a", "five-b"]
    for then in waiters.due("general", 9):
        then()
    assert log == ["five-a", "five-b", "seven"]
    assert waiters.due("general", 100) == []
    assert waiters  # the other room's still waits
    assert len(waiters.due("other", 1)) == 1
    assert not waiters


def test_a_room_nobody_waits_on_releases_nothing() -> None:
    assert SeqWaiters().due("general", 10) == []
