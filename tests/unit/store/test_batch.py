"""AppendPlan: what a batch stores and what each send gets back (no database)."""

from __future__ import annotations

import asyncio

import pytest

from parley.protocol import Message, MessageEvent, as_event
from parley.store import StoreUnavailable, UnknownRoom
from parley.store.batch import (
    Answer,
    AppendPlan,
    BatchAnswer,
    PendingAppend,
    settle,
    settle_outcomes,
)


def send(room: str, user: str, text: str, cid: str | None) -> PendingAppend:
    return PendingAppend(room, user, text, cid, asyncio.get_running_loop().create_future())


async def test_sends_are_numbered_per_room_in_batch_order() -> None:
    batch = [send("a", "u", "1", "c1"), send("b", "u", "2", "c2"), send("a", "v", "3", None)]
    plan = AppendPlan(batch, {})
    assert plan.by_room == {"a": [0, 2], "b": [1]}
    # seqs bumped by 2 and by 1: the sends are numbered up to them, in batch order
    stored = plan.stored("a", 12, "T") + plan.stored("b", 5, "T")
    assert [(m.room, m.seq, m.text, m.ts, type(m)) for m in stored] == [
        ("a", 11, "1", "T", MessageEvent),
        ("a", 12, "3", "T", MessageEvent),
        ("b", 5, "2", "T", MessageEvent),
    ]
    assert sorted(plan.own_counts()) == [("u", "a", 1), ("u", "b", 1), ("v", "a", 1)]
    results = plan.results()
    assert [(m.room, m.seq, created) for m, created in results] == [  # type: ignore[misc]
        ("a", 11, True),
        ("b", 5, True),
        ("a", 12, True),
    ]


async def test_known_resends_and_repeats_get_the_stored_message() -> None:
    old = Message("a", 3, "u", "before", "T0", "c1")
    batch = [send("a", "u", "again", "c1"), send("a", "u", "new", "c2"), send("a", "u", "x", "c2")]
    plan = AppendPlan(batch, {("u", "c1"): old})
    assert plan.by_room == {"a": [1]}
    plan.stored("a", 4, "T")
    first, second, third = plan.results()
    # every answer is the message as its live event, ready to publish (a resend's too)
    assert first == (as_event(old), False)
    assert second == (MessageEvent("a", 4, "u", "new", "T", "c2"), True)
    assert third == (MessageEvent("a", 4, "u", "new", "T", "c2"), False)


async def test_the_same_client_id_from_another_user_is_another_message() -> None:
    plan = AppendPlan([send("a", "u", "1", "c"), send("a", "v", "2", "c")], {})
    assert plan.by_room == {"a": [0, 1]}


async def test_an_unknown_room_fails_its_sends_and_their_repeats_only() -> None:
    batch = [send("gone", "u", "1", "c1"), send("a", "u", "2", "c2"), send("gone", "u", "1", "c1")]
    plan = AppendPlan(batch, {})
    plan.unknown("gone")
    plan.stored("a", 1, "T")
    results = plan.results()
    assert isinstance(results[0], UnknownRoom)
    assert isinstance(results[2], UnknownRoom)
    assert results[1] == (MessageEvent("a", 1, "u", "2", "T", "c2"), True)


async def test_a_room_left_unrun_fails_as_unavailable_not_silently() -> None:
    plan = AppendPlan([send("a", "u", "1", "c1")], {})
    (result,) = plan.results()
    assert isinstance(result, StoreUnavailable)


async def test_settle_resolves_futures_and_skips_cancelled_ones() -> None:
    batch = [send("a", "u", "1", "c1"), send("a", "u", "2", "c2"), send("a", "u", "3", "c3")]
    batch[1].future.cancel()
    stored = (Message("a", 1, "u", "1", "T", "c1"), True)
    settle(batch, [stored, stored, UnknownRoom("a")])
    assert batch[0].future.result() == stored
    assert batch[1].future.cancelled()
    assert isinstance(batch[2].future.exception(), UnknownRoom)


async def test_counts_and_mentions_cover_only_the_messages_stored() -> None:
    """An unknown room's sends count nowhere (its rows would break a foreign key and
    send the whole batch the slow way); the author's own name is no mention."""
    batch = [
        send("a", "u", "1 @v @u", "c1"),
        send("gone", "u", "2", "c2"),
        send("a", "u", "3", "c1"),
    ]
    batch[0].mentions = ["v", "u"]  # resolved by the store
    batch.append(send("a", "v", "4", None))
    plan = AppendPlan(batch, {})
    plan.unknown("gone")
    plan.stored("a", 9, "T")
    assert sorted(plan.own_counts()) == [("u", "a", 1), ("v", "a", 1)]
    assert plan.mention_rows() == [("v", "a", 8)]


async def test_settling_keeps_the_batch_order_a_run_of_one_sink_in_one_call() -> None:
    """A batch's answers are settled in send order: consecutive `BatchAnswer`s of one sink
    reach it in one call, and anything else between them (a plain answer, a future,
    another sink's answer) is settled in its turn, so one socket whose sends have two sinks
    hears them in the order it sent them."""
    heard: list[object] = []
    future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
    future.add_done_callback(lambda f: heard.append(("future", f.result())))
    one, two, exc = (
        (Message("r", 1, "u", "a", "T"), True),
        (Message("r", 2, "u", "b", "T"), True),
        UnknownRoom("r"),
    )

    def other(answered: object) -> None:
        heard.append(("other", answered))

    settle_outcomes(
        [
            (BatchAnswer(heard.append, "x1"), one, None),
            (BatchAnswer(heard.append, "x2"), None, exc),
            (Answer(lambda result: heard.append(("plain", result))), two, None),
            (BatchAnswer(heard.append, "x3"), two, None),
            (BatchAnswer(other, "y"), two, None),
            (BatchAnswer(heard.append, "x4"), one, None),
            (future, "job", None),
        ]
    )
    await asyncio.sleep(0)  # the future's callback runs from the loop
    assert heard == [
        [("x1", one), ("x2", exc)],
        ("plain", two),
        [("x3", two)],
        ("other", [("y", two)]),
        [("x4", one)],
        ("future", "job"),
    ]


async def test_a_send_answered_alone_is_a_batch_of_one_and_a_failing_sink_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    heard: list[object] = []
    BatchAnswer(heard.append, 7).set_exception(StoreUnavailable("closed"))
    assert len(heard) == 1
    [(token, result)] = heard[0]  # type: ignore[misc]
    assert token == 7
    assert isinstance(result, StoreUnavailable)

    def broken(answered: object) -> None:
        raise RuntimeError("bug")

    settle_outcomes([(BatchAnswer(broken, 1), None, UnknownRoom("r"))])
    assert "answering sends failed" in caplog.text
