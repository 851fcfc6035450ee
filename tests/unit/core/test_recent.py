from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from parley.core import RecentEvents
from parley.protocol import (
    DeleteEvent,
    EditEvent,
    MessageEvent,
    ReactionEvent,
    RoomEvent,
    TopicEvent,
)


def msg(seq: int, room: str = "r") -> MessageEvent:
    return MessageEvent(room, seq, "u", f"t{seq}", "ts")


def recent(size: int = 8, rooms: int = 4) -> RecentEvents[int]:
    """Frames are the events' seqs: what a replay sends is easy to read."""
    return RecentEvents(lambda event: event.seq, size, rooms)


def fill(window: RecentEvents[int], events: list[RoomEvent]) -> RecentEvents[int]:
    for event in events:
        window.add(event)
    return window


def test_a_range_it_holds_whole_is_answered_in_order() -> None:
    window = fill(recent(), [msg(s) for s in range(5, 10)])
    assert window.frames("r", 4, 9) == [5, 6, 7, 8, 9]
    assert window.frames("r", 6, 8) == [7, 8]
    assert window.frames("r", 9, 9) == []


def test_a_range_reaching_past_either_end_is_the_stores() -> None:
    window = fill(recent(), [msg(s) for s in range(5, 10)])
    assert window.frames("r", 3, 9) is None  # 4 was never delivered here
    assert window.frames("r", 5, 10) is None  # 10 neither (yet)
    assert window.frames("other", 0, 1) is None


def test_only_the_last_size_events_are_kept() -> None:
    window = fill(recent(size=3), [msg(s) for s in range(1, 8)])
    assert window.frames("r", 4, 7) == [5, 6, 7]
    assert window.frames("r", 3, 7) is None


def test_a_jump_in_seqs_starts_the_window_again() -> None:
    window = fill(recent(), [msg(1), msg(2), msg(5), msg(6)])
    assert window.frames("r", 4, 6) == [5, 6]
    assert window.frames("r", 0, 6) is None


def test_an_event_that_changes_an_older_row_starts_the_window_again() -> None:
    # the store holds message 1 edited, deleted or reacted to: the window's copy is stale
    changes: list[RoomEvent] = [
        EditEvent(room="r", seq=3, username="u", ts="ts", target=1, text="new"),
        DeleteEvent(room="r", seq=3, username="u", ts="ts", target=1),
        ReactionEvent(room="r", seq=3, username="u", ts="ts", target=1, emoji="x", on=True),
    ]
    for change in changes:
        window = fill(recent(), [msg(1), msg(2), change, msg(4)])
        assert window.frames("r", 0, 4) is None
        assert window.frames("r", 2, 4) == [3, 4]


def test_a_topic_changes_no_row() -> None:
    topic = TopicEvent(room="r", seq=2, username="u", ts="ts", topic="t")
    window = fill(recent(), [msg(1), topic, msg(3)])
    assert window.frames("r", 0, 3) == [1, 2, 3]


def test_rooms_are_apart_and_the_least_recent_goes_first() -> None:
    window = fill(recent(rooms=2), [msg(1, "a"), msg(1, "b"), msg(2, "a"), msg(1, "c")])
    assert window.frames("a", 0, 2) == [1, 2]
    assert window.frames("c", 0, 1) == [1]
    assert window.frames("b", 0, 1) is None  # "b" had its last event longest ago


def test_the_room_with_the_last_event_stays_after_several_in_a_row() -> None:
    events = [msg(1, "a"), msg(1, "b"), msg(2, "b"), msg(2, "a"), msg(3, "a"), msg(1, "c")]
    window = fill(recent(rooms=2), events)
    assert window.frames("a", 0, 3) == [1, 2, 3]
    assert window.frames("b", 0, 2) is None
    fill(window, [msg(1, "d"), msg(1, "e")])
    assert window.frames("a", 0, 3) is None
    assert window.frames("d", 0, 1) == [1]


def test_a_frame_is_made_once_and_a_given_one_is_kept() -> None:
    made: list[int] = []

    def frame_of(event: RoomEvent) -> int:
        made.append(event.seq)
        return -event.seq

    window: RecentEvents[int] = RecentEvents(frame_of)
    window.add(msg(1), frame=100)
    window.add(msg(2))
    assert window.frames("r", 0, 2) == [100, -2]
    assert window.frames("r", 0, 2) == [100, -2]
    assert made == [2]


@given(st.lists(st.integers(1, 30), max_size=60), st.integers(0, 30), st.integers(0, 30))
def test_an_answer_is_always_exactly_the_range(adds: list[int], after: int, upto: int) -> None:
    window = recent(size=10)
    for seq in adds:
        window.add(msg(seq))
    got = window.frames("r", after, upto)
    if got is not None:
        assert got == list(range(after + 1, upto + 1))


@given(
    st.lists(
        st.tuples(st.sampled_from("abcdef"), st.integers(1, 3), st.booleans()),
        max_size=30,
    )
)
def test_extend_holds_what_adding_one_by_one_holds(steps: list[tuple[str, int, bool]]) -> None:
    """Runs of a room's next messages (or after a jump), as `extend` takes them and as
    `add` takes them one at a time: the same windows, rooms kept and frames."""
    one_by_one, in_runs = recent(size=5, rooms=3), recent(size=5, rooms=3)
    last: dict[str, int] = {}
    for room, count, jump in steps:
        first = last.get(room, 0) + (3 if jump else 1)
        run = [msg(seq, room) for seq in range(first, first + count)]
        last[room] = run[-1].seq
        for m in run:
            one_by_one.add(m, m.seq * 10)
        in_runs.extend(room, run, [m.seq * 10 for m in run])
    for room in "abcdef":
        for after in range(0, last.get(room, 0) + 1):
            upto = last.get(room, 0)
            assert in_runs.frames(room, after, upto) == one_by_one.frames(room, after, upto)
