from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from parley.core import Feed, Gap
from parley.protocol import MessageEvent, RoomEvent


def msg(seq: int, room: str = "r") -> MessageEvent:
    return MessageEvent(room, seq, "u", f"t{seq}", "ts")


def seqs(messages: list[RoomEvent]) -> list[int]:
    return [m.seq for m in messages]


def test_in_order_messages_pass_through() -> None:
    feed = Feed()
    feed.floor("r", 0)
    assert seqs(feed.accept(msg(1))[0]) == [1]
    assert seqs(feed.accept(msg(2))[0]) == [2]


def test_duplicates_are_dropped() -> None:
    feed = Feed()
    feed.floor("r", 5)
    assert feed.accept(msg(5)) == ([], None)
    assert feed.accept(msg(3)) == ([], None)


def test_gap_is_held_and_reported_then_released_in_order() -> None:
    feed = Feed()
    feed.floor("r", 1)
    assert feed.accept(msg(4)) == ([], Gap("r", 2, 3))
    assert feed.accept(msg(3)) == ([], Gap("r", 2, 2))
    assert feed.pending_gap("r") == Gap("r", 2, 2)
    delivered, gap = feed.accept(msg(2))
    assert seqs(delivered) == [2, 3, 4]
    assert gap is None
    assert feed.pending_gap("r") is None


def test_floor_never_goes_back() -> None:
    feed = Feed()
    assert feed.floor("r", 10) == 10
    assert feed.floor("r", 3) == 10


@pytest.mark.parametrize("advancing", [False, True], ids=["accept", "advance-then-accept"])
@given(st.permutations(list(range(1, 30))), st.lists(st.integers(1, 29), max_size=20))
def test_any_order_with_duplicates_delivers_each_once_in_order(
    advancing: bool, order: list[int], dupes: list[int]
) -> None:
    """`accept` alone, and as Delivery uses the two: `advance` first, `accept` when it
    declines."""
    feed = Feed()
    feed.floor("r", 0)
    out: list[int] = []
    for seq in [*order[:10], *dupes, *order[10:]]:
        event = msg(seq)
        out += [seq] if advancing and feed.advance(event) else seqs(feed.accept(event)[0])
    assert out == list(range(1, 30))


def test_advance_takes_only_the_next_with_nothing_held() -> None:
    feed = Feed()
    assert feed.advance(msg(7))  # a room first heard of: taken as it comes, like accept
    assert feed.advance(msg(8))
    assert not feed.advance(msg(8))  # a duplicate: left to accept, which drops it
    assert feed.accept(msg(8)) == ([], None)
    assert not feed.advance(msg(10))  # a gap: nothing changed
    assert feed.last_seq["r"] == 8
    assert feed.accept(msg(10)) == ([], Gap("r", 9, 9))
    assert not feed.advance(msg(9))  # the next, but 10 is held: accept releases both
    assert seqs(feed.accept(msg(9))[0]) == [9, 10]
    assert feed.advance(msg(11))


def test_advance_run_takes_a_whole_run_of_next_events_or_nothing() -> None:
    feed = Feed()
    assert feed.advance_run("r", 1, 4)  # a room first heard of
    assert feed.advance_run("r", 5, 5)
    assert not feed.advance_run("r", 7, 9)  # a gap: nothing changed
    assert feed.last_seq["r"] == 5
    assert feed.accept(msg(7)) == ([], Gap("r", 6, 6))
    assert not feed.advance_run("r", 6, 6)  # held back behind it: `accept` releases them
    assert feed.last_seq["r"] == 5
