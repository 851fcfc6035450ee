"""The presence contract, on the in-process implementation and on a real Redis."""

from __future__ import annotations

import asyncio
import operator
import sys
from collections.abc import AsyncIterator
from functools import partial
from typing import Final

import pytest

from parley.presence import PresenceTracker, open_presence
from tests.support.recording import WAIT, Recording
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.timeout(90)

SENTINEL: Final = "~"  # starts the names of the users `Cluster.settle` brings in and out

Change = tuple[str, str, bool]  # room, username, online


class Recorder(Recording):
    """A node as its presence tracker sees it; the sentinel's comings and goings kept apart."""

    def __init__(self) -> None:
        super().__init__()
        self.presence: list[Change] = []
        self.sentinel: list[Change] = []

    def on_presence(self, room: str, username: str, online: bool) -> None:
        record = self.sentinel if username.startswith(SENTINEL) else self.presence
        record.append((room, username, online))
        self.changed()


class Cluster:
    """Presence trackers that see each other: nodes on one Redis, or the memory tracker, which
    is a whole cluster of one node."""

    def __init__(self, redis_url: str | None) -> None:
        self.redis_url = redis_url
        self.trackers: list[PresenceTracker] = []
        self._peer: PresenceTracker | None = None
        self._sentinels = 0

    async def node(self, sink: Recorder | None = None) -> PresenceTracker:
        if self.redis_url is None:
            assert not self.trackers, "the memory tracker is one node"
        tracker = open_presence(self.redis_url)
        await tracker.start(sink or Recorder())
        self.trackers.append(tracker)
        return tracker

    async def settle(self, tracker: PresenceTracker, sink: Recorder, room: str) -> None:
        """Return once `tracker` has told `sink` all it ever will of what every node did in
        `room` so far (`tracker` must have a user in `room`: a node follows only those rooms).

        Every node's writes are flushed; then a new sentinel user comes and goes on another
        node (memory: the one node). What Redis announced first reaches `tracker` first, so
        once it told of the sentinel's coming and going, it has told of everything before.
        """
        for node in self.trackers:
            await node.flush()
        peer = tracker if self.redis_url is None else await self._sentinel_node()
        self._sentinels += 1
        sentinel = f"{SENTINEL}{self._sentinels}"
        for online in (True, False):
            (peer.came if online else peer.went)(room, sentinel)
            await sink.until(partial(operator.contains, sink.sentinel, (room, sentinel, online)))

    async def _sentinel_node(self) -> PresenceTracker:
        if self._peer is None:
            self._peer = await self.node()
        return self._peer

    async def close(self) -> None:
        for tracker in self.trackers:
            await tracker.close()


@pytest.fixture(params=["memory", "redis"])
async def cluster(request: pytest.FixtureRequest) -> AsyncIterator[Cluster]:
    url = None
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        url = server.url
    nodes = Cluster(url)
    try:
        yield nodes
    finally:
        await nodes.close()


@pytest.fixture
async def redis_cluster(redis_server: RedisServer) -> AsyncIterator[Cluster]:
    nodes = Cluster(redis_server.url)
    try:
        yield nodes
    finally:
        await nodes.close()


# --- one node: both implementations ------------------------------------------------------


async def test_a_nodes_users_come_and_go_at_once_and_once(cluster: Cluster) -> None:
    sink = Recorder()
    node = await cluster.node(sink)
    node.came("general", "ann")
    node.came("general", "bob")
    assert sink.presence == [("general", "ann", True), ("general", "bob", True)]
    assert await node.online("general", ["bob", "ann"]) == ["ann", "bob"]
    node.went("general", "bob")
    assert sink.presence[-1] == ("general", "bob", False)
    await cluster.settle(node, sink, "general")
    assert sink.presence == [
        ("general", "ann", True),
        ("general", "bob", True),
        ("general", "bob", False),
    ]
    assert await node.online("general", ["ann"]) == ["ann"]


async def test_rooms_are_apart(cluster: Cluster) -> None:
    sink = Recorder()
    node = await cluster.node(sink)
    node.came("general", "ann")
    node.came("random", "bob")
    assert await node.online("general", ["ann"]) == ["ann"]
    assert await node.online("random", ["bob"]) == ["bob"]
    node.went("random", "bob")
    await cluster.settle(node, sink, "general")
    assert sink.presence == [
        ("general", "ann", True),
        ("random", "bob", True),
        ("random", "bob", False),
    ]


# --- several nodes: Redis -------------------------------------------------------------------


async def test_presence_is_cluster_wide(redis_cluster: Cluster) -> None:
    a_sink, b_sink = Recorder(), Recorder()
    a, b = await redis_cluster.node(a_sink), await redis_cluster.node(b_sink)
    a.came("general", "ann")
    assert a_sink.presence == [("general", "ann", True)]  # at once, locally
    await a.flush()
    assert await b.online("general", []) == ["ann"]  # what a joiner on B is told
    b.came("general", "bob")
    assert b_sink.presence == [("general", "bob", True)]
    assert await b.online("general", ["bob"]) == ["ann", "bob"]
    await a_sink.until(lambda: ("general", "bob", True) in a_sink.presence)

    b.came("general", "ann")  # ann opens a second connection, on B: not news
    await redis_cluster.settle(a, a_sink, "general")  # A knows she is on B too
    a.went("general", "ann")  # ann leaves A but is still on B: still online
    assert a_sink.presence == [("general", "ann", True), ("general", "bob", True)]
    await redis_cluster.settle(b, b_sink, "general")
    assert b_sink.presence == [("general", "bob", True)]
    assert await b.online("general", ["ann", "bob"]) == ["ann", "bob"]

    b.went("general", "ann")  # now she is gone everywhere
    assert b_sink.presence[-1] == ("general", "ann", False)
    assert await b.online("general", ["bob"]) == ["bob"]


async def test_a_node_that_closes_takes_its_users_offline_at_once(redis_cluster: Cluster) -> None:
    b_sink = Recorder()
    a, b = await redis_cluster.node(), await redis_cluster.node(b_sink)
    a.came("general", "ann")
    b.came("general", "bob")
    await b_sink.until(lambda: ("general", "ann", True) in b_sink.presence)
    await a.close()
    # A's node key lived 15 s more had it not said goodbye: a joiner would still see ann
    assert await (await redis_cluster.node()).online("general", []) == ["bob"]
    await b_sink.until(lambda: ("general", "ann", False) in b_sink.presence)


DOOMED_NODE: Final = """
import asyncio, sys
from parley.presence.redis import RedisPresence

class Deaf:
    def on_presence(self, room, username, online):
        pass

async def main():
    node = RedisPresence(sys.argv[1])
    await node.start(Deaf())
    node.came("general", "dan")
    await node.flush()
    print("ready", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


async def test_users_of_a_dead_node_drop_out_within_30s(
    redis_server: RedisServer, redis_cluster: Cluster
) -> None:
    b_sink = Recorder()
    b = await redis_cluster.node(b_sink)
    doomed = await asyncio.create_subprocess_exec(
        sys.executable, "-c", DOOMED_NODE, redis_server.url, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert doomed.stdout is not None
        assert await asyncio.wait_for(doomed.stdout.readline(), WAIT) == b"ready\n"
        b.came("general", "bob")
        await b_sink.until(lambda: ("general", "dan", True) in b_sink.presence)
        doomed.kill()  # the node dies: nothing is cleaned up in Redis
        await doomed.wait()
        await b_sink.until(lambda: ("general", "dan", False) in b_sink.presence, within=30)
        assert await b.online("general", ["bob"]) == ["bob"]
    finally:
        if doomed.returncode is None:
            doomed.kill()
            await doomed.wait()


async def test_presence_comes_back_after_a_redis_restart(
    redis_server: RedisServer, redis_cluster: Cluster
) -> None:
    a_sink, c_sink = Recorder(), Recorder()
    a, b = await redis_cluster.node(a_sink), await redis_cluster.node()
    a.came("general", "ann")
    b.came("general", "bob")
    await a_sink.until(lambda: ("general", "bob", True) in a_sink.presence)
    redis_server.stop()
    redis_server.start()  # empty: every entry is gone until the nodes re-assert them
    c = await redis_cluster.node(c_sink)
    c.came("general", "cid")
    everyone = {("general", "ann", True), ("general", "bob", True)}
    await c_sink.until(lambda: everyone <= set(c_sink.presence), within=20)
    assert await c.online("general", ["cid"]) == ["ann", "bob", "cid"]
    await redis_cluster.settle(a, a_sink, "general")  # and A never took bob for gone
    assert a_sink.presence == [
        ("general", "ann", True),
        ("general", "bob", True),
        ("general", "cid", True),
    ]
