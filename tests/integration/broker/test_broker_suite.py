"""The Broker contract, on the in-process implementation and on a real Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from functools import partial
from typing import Final

import pytest

from parley.broker import (
    Broker,
    ClusterEvent,
    MemoryBroker,
    TokenRevoked,
    TypingSignal,
    UserTokensRevoked,
)
from parley.broker.redis import RedisBroker
from parley.protocol import EditEvent, MessageEvent, ReactionEvent, RoomEvent
from tests.support.recording import WAIT, Recording
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.timeout(90)

MARKS: Final = "~marks"  # the room of the events `settle` publishes (no real room has a ~)


class Recorder(Recording):
    """A node as the broker sees it; `settle`'s marks are kept apart from the events."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[RoomEvent] = []
        self.events: list[ClusterEvent] = []
        self.marks: set[ClusterEvent] = set()
        self.resyncs = 0

    def on_stored(self, msg: RoomEvent) -> None:
        self.messages.append(msg)
        self.changed()

    def on_stored_all(self, msgs: Sequence[RoomEvent]) -> None:
        self.messages += msgs
        self.changed()

    def on_event(self, event: ClusterEvent) -> None:
        if isinstance(event, TypingSignal) and event.room == MARKS:
            self.marks.add(event)
        else:
            self.events.append(event)
        self.changed()

    def resync_from_store(self) -> None:
        self.resyncs += 1
        self.changed()


Node = tuple[Broker, Recorder]


TS = "2026-11-25T13:31:20.123Z"
EDIT = EditEvent(room="general", seq=201, username="ann", ts=TS, target=5, text="fixed")
REACTION = ReactionEvent(
    room="general", seq=202, username="bea", ts=TS, target=5, emoji="👍", on=True, client_id="r"
)


def msg(seq: int, room: str = "general", text: str | None = None) -> MessageEvent:
    return MessageEvent(room, seq, "ann", text or f"m{seq}", TS, f"c{seq}")


@asynccontextmanager
async def running(nodes: Sequence[Node]) -> AsyncIterator[None]:
    for broker, sink in nodes:
        await broker.start(sink)
    try:
        yield
    finally:
        for broker, _ in nodes:
            await broker.close()


async def settle(nodes: Sequence[Node]) -> None:
    """Return once nothing published so far is still on its way to any of `nodes` (one cluster).

    A publisher's events reach every node in the order it published them. Round one: each node
    publishes a mark, and each waits for all of them; then it has everything the others
    published before. Round two: marks published only now reach each node after the echoes of
    its own earlier publishes (which it skips, so only another node's mark can close those).
    """
    for round_ in (1, 2):
        marks = {TypingSignal(MARKS, f"{round_}/{i}") for i in range(len(nodes))}
        for (broker, _), mark in zip(nodes, sorted(marks, key=repr), strict=True):
            broker.publish_event(mark)
        for _, sink in nodes:
            await sink.until(partial(marks.issubset, sink.marks))


# --- one node: both implementations ------------------------------------------------------


@pytest.fixture(params=["memory", "redis"])
def make_broker(request: pytest.FixtureRequest) -> Callable[[], Broker]:
    if request.param == "memory":
        return MemoryBroker
    server: RedisServer = request.getfixturevalue("redis_server")
    return lambda: RedisBroker(server.url)


def cluster(make_broker: Callable[[], Broker], count: int) -> list[Node]:
    """`count` nodes that see each other: on Redis; the memory broker is one node alone."""
    first = make_broker()
    more = count - 1 if isinstance(first, RedisBroker) else 0
    return [(first, Recorder()), *((make_broker(), Recorder()) for _ in range(more))]


async def test_a_node_gets_its_own_messages_once_in_order(
    make_broker: Callable[[], Broker],
) -> None:
    """At once, and never again (on Redis: not as an echo; a peer closes the echoes)."""
    nodes = cluster(make_broker, 2)
    broker, sink = nodes[0]
    async with running(nodes):
        for seq in range(1, 51):
            broker.publish_stored(msg(seq))
        broker.publish_event(TypingSignal("general", "ann"))
        assert [m.seq for m in sink.messages] == list(range(1, 51))
        await settle(nodes)
    assert [m.seq for m in sink.messages] == list(range(1, 51))
    assert sink.messages[0] == msg(1)
    assert sink.events == [TypingSignal("general", "ann")]


async def test_a_batch_reaches_its_own_node_at_once_and_every_node_in_order(
    make_broker: Callable[[], Broker],
) -> None:
    """`publish_stored_all` (a batch of sends): the publisher's node gets it in that call,
    in order, after what it published one by one; the others get it all, in order."""
    nodes = cluster(make_broker, 2)
    (broker, sink), *others = nodes
    async with running(nodes):
        broker.publish_stored(msg(1))
        broker.publish_stored_all([msg(seq) for seq in range(2, 41)] + [EDIT])
        assert [m.seq for m in sink.messages] == [*range(1, 41), EDIT.seq]
        await settle(nodes)
    for _, node in [(broker, sink), *others]:
        assert node.messages == [*(msg(seq) for seq in range(1, 41)), EDIT]


async def test_revoking_a_users_sessions_reaches_every_node(
    make_broker: Callable[[], Broker],
) -> None:
    """Password change (keep this session) and sign-out-everywhere (keep none)."""
    events = [UserTokensRevoked("Ann", "kept-token-hash"), UserTokensRevoked("bea")]
    nodes = cluster(make_broker, 2)
    async with running(nodes):
        for event in events:
            nodes[0][0].publish_event(event)
        await settle(nodes)
    for _, sink in nodes:
        assert sink.events == events


# --- several nodes: Redis -------------------------------------------------------------------


async def test_messages_and_events_reach_every_node(redis_server: RedisServer) -> None:
    nodes = [(RedisBroker(redis_server.url), Recorder()) for _ in range(3)]
    brokers = [broker for broker, _ in nodes]
    async with running(nodes):
        for seq in range(1, 201):
            brokers[seq % 3].publish_stored(msg(seq, text="ünïcødé ✓" * (seq % 3)))
        brokers[0].publish_stored(EDIT)
        brokers[1].publish_stored(REACTION)
        brokers[1].publish_event(TypingSignal("general", "bea"))
        brokers[2].publish_event(TokenRevoked("abc123"))
        await settle(nodes)
    for _, sink in nodes:
        assert sorted(m.seq for m in sink.messages) == list(range(1, 203))  # each exactly once
        assert sorted(sink.events, key=repr) == [
            TokenRevoked("abc123"),
            TypingSignal("general", "bea"),
        ]
        assert next(m for m in sink.messages if m.seq == 5) == msg(5, text="ünïcødé ✓" * 2)
        late = sorted((m for m in sink.messages if m.seq > 200), key=lambda m: m.seq)
        assert late == [EDIT, REACTION]  # every kind
    # one publisher's messages arrive in its order
    from_one = [m.seq for m in nodes[0][1].messages if m.seq % 3 == 1]
    assert from_one == sorted(from_one)


class Failing(Recorder):
    """A node whose own delivery of a batch fails (a bug, say)."""

    def on_stored_all(self, msgs: Sequence[RoomEvent]) -> None:
        raise RuntimeError("delivery failed")


async def test_a_batch_reaches_the_other_nodes_when_its_own_delivery_fails(
    redis_server: RedisServer,
) -> None:
    nodes: list[Node] = [
        (RedisBroker(redis_server.url), Failing()),
        (RedisBroker(redis_server.url), Recorder()),
    ]
    (broker, _), (_, other) = nodes
    async with running(nodes):
        with pytest.raises(RuntimeError):
            broker.publish_stored_all([msg(seq) for seq in range(1, 4)])
        await settle(nodes)
    assert other.messages == [msg(1), msg(2), msg(3)]


async def disconnected(broker: RedisBroker) -> None:
    """Return once `broker` has noticed that its subscription is gone (the loop runs while
    Redis is away: `RedisServer.start` blocks it)."""

    async def poll() -> None:
        while broker.connected:  # noqa: ASYNC110 - no event tells of the loss: poll the property
            await asyncio.sleep(0.02)

    await asyncio.wait_for(poll(), WAIT)


async def test_after_a_redis_restart_nodes_resync_and_publish_again(
    redis_server: RedisServer,
) -> None:
    a_sink, b_sink = Recorder(), Recorder()
    a, b = RedisBroker(redis_server.url), RedisBroker(redis_server.url)
    async with running([(a, a_sink), (b, b_sink)]):
        assert a_sink.resyncs >= 1  # right after the first subscribe
        a.publish_stored(msg(1))
        await b_sink.until(lambda: len(b_sink.messages) == 1)
        resyncs_before = b_sink.resyncs

        redis_server.stop()
        a.publish_stored(msg(2))  # queued while Redis is away
        await disconnected(b)
        redis_server.start()

        # B re-subscribes and asks its node to catch up from the store
        await b_sink.until(lambda: b_sink.resyncs > resyncs_before)
        a.publish_stored(msg(3))
        await b_sink.until(lambda: 3 in {m.seq for m in b_sink.messages})
        # 2 may have reached Redis before B was back (B's node reads it from the store), never twice
        assert [m.seq for m in b_sink.messages] in ([1, 3], [1, 2, 3])
        assert [m.seq for m in a_sink.messages] == [1, 2, 3]  # locally, at once


async def test_a_node_starts_while_redis_is_down(redis_server: RedisServer) -> None:
    redis_server.stop()
    sink = Recorder()
    broker = RedisBroker(redis_server.url)
    async with running([(broker, sink)]):  # start gives up waiting after a few seconds
        assert not broker.connected
        broker.publish_stored(msg(1))
        assert [m.seq for m in sink.messages] == [1]
        redis_server.start()
        await sink.until(lambda: sink.resyncs >= 1)
        assert broker.connected
