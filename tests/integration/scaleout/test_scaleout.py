"""Several `parley serve` nodes on one PostgreSQL and one Redis behave as one chat (issue 6).

Every test: clients spread over the nodes, all joined to one room, send concurrently
through every node; each client must receive every stored message exactly once, in seq
order, with no gap — also across a Redis restart, a PostgreSQL restart and `kill -9` of a
node (whose clients reconnect elsewhere with `since`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Sequence
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from tests.support.api import AsyncApi, User
from tests.support.client import ParleyWS, open_plain, open_ws
from tests.support.pg import PgServer
from tests.support.redis_server import RedisServer
from tests.support.server import ServerProcess

ClusterFactory = Callable[..., list[ServerProcess]]

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

ROOM = "general"
WINDOW = 16  # unacked sends per client
WAIT = 90.0  # upper bound for a whole phase; it normally takes a few seconds


class Peer:
    """One user's connection to one node: sends with a window, records everything it receives.

    After a reconnect (`connect` again, with `since`), `seqs` keeps growing: it is the
    user's view of the room across connections.
    """

    def __init__(self, user: User, name: str) -> None:
        self.user = user
        self.name = name
        self.client: ParleyWS | None = None
        self.reader: asyncio.Task[None] | None = None
        self.seqs: list[int] = []
        self.acks: dict[str, int] = {}
        self.errors: list[dict[str, Any]] = []
        self.presence: list[tuple[str, bool]] = []
        self.typing: list[str] = []
        self.close_code: int | None = None
        self.closed = False
        self.window = asyncio.Semaphore(WINDOW)
        self.changed = asyncio.Event()
        self._joined: asyncio.Future[dict[str, Any]] | None = None

    @property
    def last_seq(self) -> int:
        return self.seqs[-1] if self.seqs else 0

    async def connect(self, node: ServerProcess, since: int | None = None) -> dict[str, Any]:
        self.client = await open_ws(node.ws_url, self.user.token)
        self.closed = False
        self.window = asyncio.Semaphore(WINDOW)
        self._joined = asyncio.get_running_loop().create_future()
        self.reader = asyncio.create_task(self._read(self.client))
        join: dict[str, Any] = {"type": "join", "room": ROOM}
        if since is not None:
            join["since"] = since
        await self.client.send_json(join)
        return await asyncio.wait_for(self._joined, WAIT)

    async def _read(self, client: ParleyWS) -> None:
        try:
            while True:
                event = json.loads(await client.ws.recv())
                kind = event["type"]
                if kind == "joined" and self._joined and not self._joined.done():
                    self._joined.set_result(event)
                elif kind == "message" and event["room"] == ROOM:
                    self.seqs.append(event["seq"])
                elif kind == "ack":
                    assert event["client_id"] not in self.acks, event
                    self.acks[event["client_id"]] = event["seq"]
                    self.window.release()
                elif kind == "error":
                    self.errors.append(event)
                    if event.get("ref"):
                        self.window.release()
                elif kind == "presence":
                    self.presence.append((event["username"], event["online"]))
                elif kind == "typing":
                    self.typing.append(event["username"])
                self.changed.set()
        except ConnectionClosed as exc:
            self.close_code = exc.rcvd.code if exc.rcvd is not None else None
        finally:
            self.closed = True
            for _ in range(WINDOW):  # unblock a sender: no ack will come on this socket
                self.window.release()
            self.changed.set()

    async def send(self, cid: str, text: str | None = None) -> None:
        assert self.client is not None
        await self.window.acquire()
        if self.closed:
            self.window.release()
            return
        frame = {
            "type": "send",
            "room": ROOM,
            "text": text or f"{self.name}: {cid}",
            "client_id": cid,
        }
        try:
            await self.client.send_json(frame)
        except ConnectionClosed:
            self.window.release()

    async def send_many(self, prefix: str, count: int) -> None:
        for i in range(count):
            await self.send(f"{self.name}-{prefix}-{i}")

    async def settle(self) -> None:
        """Wait until nothing this peer sent is still unanswered."""
        for _ in range(WINDOW):
            await asyncio.wait_for(self.window.acquire(), WAIT)
        for _ in range(WINDOW):
            self.window.release()

    async def until(self, done: Callable[[], bool], within: float = WAIT) -> None:
        async def wait() -> None:
            while not done():
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(wait(), within)

    async def close(self) -> None:
        if self.client is not None:
            with contextlib.suppress(Exception):
                await self.client.close()
        if self.reader is not None:
            self.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.reader


async def make_peers(nodes: Sequence[ServerProcess], per_node: int) -> list[Peer]:
    peers: list[Peer] = []
    async with AsyncApi(nodes[0].url) as api:
        for n, node in enumerate(nodes):
            for k in range(per_node):
                peer = Peer(await api.register(), f"n{n}p{k}")
                await peer.connect(node)
                peers.append(peer)
    return peers


async def stored(node: ServerProcess, user: User) -> list[dict[str, Any]]:
    async with AsyncApi(node.url) as api:
        return await api.all_messages(user.token, ROOM)


async def everyone_has_everything(peers: Sequence[Peer], total: int) -> None:
    """Each peer received 1..total: every message once, in seq order, nothing missing.
    Then one more, the sentinel: a late duplicate would reach a peer before it."""
    for peer in peers:
        await peer.until(lambda p=peer: p.last_seq >= total)
    sender = peers[0]
    await sender.send(f"{sender.name}-sentinel")
    await sender.settle()
    last = total + 1
    assert sender.acks[f"{sender.name}-sentinel"] == last
    for peer in peers:
        await peer.until(lambda p=peer: p.last_seq >= last)
    for peer in peers:
        assert peer.seqs == list(range(1, last + 1)), (
            peer.name,
            len(peer.seqs),
            [s for i, s in enumerate(peer.seqs) if s != i + 1][:10],
        )


def check_acks(peers: Sequence[Peer], history: list[dict[str, Any]]) -> None:
    """Every acked message is stored, once, with the acked seq; seqs are gapless."""
    assert [m["seq"] for m in history] == list(range(1, len(history) + 1))
    by_cid = {m["client_id"]: m["seq"] for m in history}
    assert len(by_cid) == len(history)
    for peer in peers:
        for cid, seq in peer.acks.items():
            assert by_cid.get(cid) == seq, (peer.name, cid, seq)


async def all_acked_stored_and_delivered(
    peers: Sequence[Peer], total: int, node: ServerProcess
) -> None:
    """No errors, `total` acks, every message stored as acked and received by everyone
    exactly once, in order."""
    assert all(not p.errors for p in peers), [p.errors[:3] for p in peers if p.errors]
    assert sum(len(p.acks) for p in peers) == total
    await everyone_has_everything(peers, total)
    check_acks(peers, await stored(node, peers[0].user))


async def close_all(peers: Sequence[Peer]) -> None:
    await asyncio.gather(*(peer.close() for peer in peers))


# --- the tests ----------------------------------------------------------------------------


async def test_three_nodes_1000_messages_everyone_gets_all_in_order(
    cluster: ClusterFactory,
) -> None:
    nodes = cluster(3)
    peers = await make_peers(nodes, per_node=3)
    try:
        total = 1000
        n = len(peers)
        counts = [total // n + (1 if i < total % n else 0) for i in range(n)]
        await asyncio.gather(*(p.send_many("m", c) for p, c in zip(peers, counts, strict=True)))
        await asyncio.gather(*(p.settle() for p in peers))
        await all_acked_stored_and_delivered(peers, total, nodes[1])
    finally:
        await close_all(peers)


async def test_presence_and_typing_cross_nodes(cluster: ClusterFactory) -> None:
    a, b = cluster(2)
    async with AsyncApi(a.url) as api:
        ann, bob = Peer(await api.register(), "ann"), Peer(await api.register(), "bob")
    try:
        await ann.connect(a)
        joined = await bob.connect(b)
        assert bob.user.username in joined["online"]
        if ann.user.username not in joined["online"]:  # A may not have told Redis yet
            await bob.until(lambda: (ann.user.username, True) in bob.presence)
        await ann.until(lambda: (bob.user.username, True) in ann.presence)

        assert bob.client is not None
        await bob.client.send_json({"type": "typing", "room": ROOM})
        await ann.until(lambda: bob.user.username in ann.typing)

        await bob.close()
        await ann.until(lambda: (bob.user.username, False) in ann.presence)
    finally:
        await close_all([ann, bob])


async def test_logout_on_one_node_closes_sockets_on_another(cluster: ClusterFactory) -> None:
    a, b = cluster(2)
    async with AsyncApi(a.url) as api:
        cat = Peer(await api.register(), "cat")
        try:
            await cat.connect(b)
            resp = await api.post("/api/logout", token=cat.user.token)
            assert resp.status_code == 204, resp.text
            await cat.until(lambda: cat.close_code is not None)
            assert cat.close_code == 4001
        finally:
            await cat.close()


async def test_a_read_marker_reaches_the_users_sockets_on_another_node(
    cluster: ClusterFactory,
) -> None:
    a, b = cluster(2)
    async with AsyncApi(a.url) as api:
        dan = await api.register()
        for n in range(3):
            await api.send(dan.token, ROOM, f"m{n}")
        here, there = await open_ws(a.ws_url, dan.token), await open_ws(b.ws_url, dan.token)
        try:
            await here.join_ok(ROOM)
            await here.send_json({"type": "read", "room": ROOM, "seq": 2})
            assert await there.recv_type("read") == {"type": "read", "room": ROOM, "seq": 2}
            resp = await api.post(f"/api/rooms/{ROOM}/read", token=dan.token, json={"seq": 3})
            assert resp.status_code == 204, resp.text
            assert await there.recv_type("read") == {"type": "read", "room": ROOM, "seq": 3}
            assert await here.recv_type("read") == {"type": "read", "room": ROOM, "seq": 3}
            sent = await api.send(dan.token, ROOM, "sentinel")  # nothing else came before it
            assert (await here.recv_chat())["seq"] == sent["seq"]
            assert here.seen_of("read") == [{"type": "read", "room": ROOM, "seq": 3}]
        finally:
            await here.close()
            await there.close()


async def test_redis_restart_mid_run_loses_nothing(
    cluster: ClusterFactory, redis_server: RedisServer
) -> None:
    nodes = cluster(3)
    peers = await make_peers(nodes, per_node=2)
    try:
        first = [asyncio.create_task(p.send_many("before", 60)) for p in peers]
        await peers[0].until(lambda: peers[0].last_seq >= 100)
        redis_server.stop()
        await asyncio.gather(*first)
        await asyncio.gather(*(p.send_many("during", 20) for p in peers))
        await asyncio.gather(*(p.settle() for p in peers))
        redis_server.start()  # empty, as after a crash
        await asyncio.gather(*(p.send_many("after", 20) for p in peers))
        await asyncio.gather(*(p.settle() for p in peers))

        await all_acked_stored_and_delivered(peers, len(peers) * 100, nodes[2])
    finally:
        await close_all(peers)


async def test_postgres_restart_mid_run_unavailable_then_works(
    cluster: ClusterFactory, pg_server: PgServer
) -> None:
    nodes = cluster(3)
    peers = await make_peers(nodes, per_node=2)
    try:
        await asyncio.gather(*(p.send_many("before", 50) for p in peers))
        await asyncio.gather(*(p.settle() for p in peers))
        pg_server.stop("fast")
        try:
            await asyncio.gather(*(p.send_many("down", 5) for p in peers))
            await asyncio.gather(*(p.settle() for p in peers))
            for peer in peers:  # every send while down: a clear error, no ack
                codes = {(e["code"], e.get("ref")) for e in peer.errors}
                assert codes == {("unavailable", f"{peer.name}-down-{i}") for i in range(5)}
            async with httpx.AsyncClient(trust_env=False) as http:
                resp = await http.post(
                    f"{nodes[0].url}/api/rooms/{ROOM}/messages",
                    json={"text": "rest while down", "client_id": "rest-down"},
                    headers=peers[0].user.headers,
                )
            assert resp.status_code == 503, resp.text
            assert resp.json()["error"]["code"] == "unavailable"
            # a new socket cannot even be signed in: 503 before the upgrade, not a 500
            async with httpx.AsyncClient(trust_env=False) as http:
                handshake = await http.get(
                    f"{nodes[1].url}/chat",
                    headers={
                        **peers[0].user.headers,
                        "Connection": "Upgrade",
                        "Upgrade": "websocket",
                        "Sec-WebSocket-Version": "13",
                        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                        "Sec-WebSocket-Protocol": "parley.v1",
                    },
                )
            assert handshake.status_code == 503, handshake.text
            # a join needs the store too: a clear error, and the socket stays open
            peer = peers[-1]
            assert peer.client is not None
            await peer.client.send_json({"type": "join", "room": ROOM, "since": 0})
            await peer.until(
                lambda: any(e["code"] == "unavailable" and not e.get("ref") for e in peer.errors)
            )
            assert not peer.closed
        finally:
            pg_server.start()
        # the same nodes, no restart: sending works again (retrying the failed ids too)
        for peer in peers:
            peer.errors.clear()
            assert not peer.closed
        await asyncio.gather(*(p.send_many("down", 5) for p in peers))
        await asyncio.gather(*(p.send_many("after", 45) for p in peers))
        await asyncio.gather(*(p.settle() for p in peers))
        await all_acked_stored_and_delivered(peers, len(peers) * 100, nodes[1])
    finally:
        await close_all(peers)


async def test_kill_9_of_a_node_its_clients_resume_elsewhere(cluster: ClusterFactory) -> None:
    nodes = cluster(3)
    peers = await make_peers(nodes, per_node=2)
    victims = [p for p in peers if p.name.startswith("n2")]
    async with AsyncApi(nodes[0].url) as api:
        lonely = Peer(await api.register(), "lonely")  # only ever on the node that dies
    await lonely.connect(nodes[2])
    watcher = peers[0]
    await watcher.until(lambda: (lonely.user.username, True) in watcher.presence)
    try:
        sending = [asyncio.create_task(p.send_many("m", 80)) for p in peers]
        await watcher.until(lambda: watcher.last_seq >= 120)
        nodes[2].kill()
        for victim in victims:
            await victim.until(lambda v=victim: v.reader is not None and v.reader.done())
        await asyncio.gather(*sending, return_exceptions=True)
        # the victims come back on another node and resume where they were
        for i, victim in enumerate(victims):
            await victim.connect(nodes[i % 2], since=victim.last_seq)
            await victim.send_many("again", 20)
        await asyncio.gather(*(p.settle() for p in peers))

        async with AsyncApi(nodes[0].url) as api:
            history = await api.all_messages(peers[0].user.token, ROOM)
        check_acks(peers, history)
        await everyone_has_everything(peers, len(history))
        # the dead node's users drop out of presence (its heartbeat stopped)
        await watcher.until(lambda: (lonely.user.username, False) in watcher.presence, within=40)
    finally:
        await close_all([*peers, lonely])


async def test_taking_access_back_on_one_node_closes_sockets_on_another(
    cluster: ClusterFactory,
) -> None:
    """POST /api/password and DELETE /api/sessions reach every node through Redis."""
    a, b = cluster(2)
    async with AsyncApi(a.url) as api:
        dan = await api.register()
        kept = await api.login(dan)
        elsewhere = await open_ws(b.ws_url, dan.token)
        kept_ws = await open_ws(b.ws_url, kept.token)
        resp = await api.post(
            "/api/password",
            token=kept.token,
            json={"old": dan.password, "new": "another passphrase"},
        )
        assert resp.status_code == 204, resp.text
        assert await elsewhere.wait_closed() == 4001
        await kept_ws.join_ok("general")  # the session that changed it lives on, on node b
        gone = await api.request("DELETE", "/api/sessions", token=kept.token)
        assert gone.status_code == 204, gone.text
        assert await kept_ws.wait_closed() == 4001


async def test_an_edit_and_a_reaction_cross_nodes(cluster: ClusterFactory) -> None:
    a, b = cluster(2)
    async with AsyncApi(a.url) as api:
        ann, bob = await api.register(), await api.register()
        here, there = await open_ws(a.ws_url, ann.token), await open_ws(b.ws_url, bob.token)
        try:
            await here.join_ok(ROOM)
            await there.join_ok(ROOM)
            sent = await here.send_ok(ROOM, "teh")
            await there.recv_type("message", seq=sent["seq"])
            edit = await here.change_ok("edit", ROOM, target=sent["seq"], text="the")
            seen = await there.recv_type("edit")
            assert (seen["seq"], seen["target"], seen["text"]) == (edit["seq"], sent["seq"], "the")
            react = await there.change_ok("react", ROOM, target=sent["seq"], emoji="👍", on=True)
            seen = await here.recv_type("reaction")
            assert (seen["seq"], seen["username"], seen["emoji"]) == (
                react["seq"],
                bob.username,
                "👍",
            )
            async with AsyncApi(b.url) as api_b:
                (msg,) = [
                    m for m in await api_b.messages(bob.token, ROOM) if m["seq"] == sent["seq"]
                ]
            assert (msg["text"], msg["reactions"]) == ("the", {"👍": [bob.username]})
        finally:
            await here.close()
            await there.close()


async def test_an_edit_published_while_redis_was_away_comes_from_the_store(
    cluster: ClusterFactory, redis_server: RedisServer
) -> None:
    a, b = cluster(2)
    async with AsyncApi(a.url) as api:
        ann = await api.register()
        here, there = await open_ws(a.ws_url, ann.token), await open_ws(b.ws_url, ann.token)
        try:
            await here.join_ok(ROOM)
            await there.join_ok(ROOM)
            sent = await here.send_ok(ROOM, "draft")
            await there.recv_type("message", seq=sent["seq"])
            redis_server.stop()
            edit = await here.change_ok("edit", ROOM, target=sent["seq"], text="final")  # stored
            redis_server.start()
            seen = await there.recv_type("edit", within=30.0)  # the resync reads the store
            assert (seen["seq"], seen["text"]) == (edit["seq"], "final")
        finally:
            await here.close()
            await there.close()


async def test_a_removal_on_one_node_cuts_access_on_another(cluster: ClusterFactory) -> None:
    a, b = cluster(2)
    async with AsyncApi(a.url) as api:
        owner, bob = await api.register(), await api.register()
        room = "club"
        await api.create_room(owner.token, room, private=True)
        await api.invite(owner.token, room, bob.username)
        there = await open_ws(b.ws_url, bob.token)
        try:
            await there.join_ok(room)
            await there.send_ok(room, "hello from node b")  # the socket knows it may
            resp = await api.request(
                "DELETE", f"/api/rooms/{room}/members/{bob.username}", token=owner.token
            )
            assert resp.status_code == 204, resp.text
            assert await there.recv_type("removed") == {"type": "removed", "room": room}
            await there.send_text(room, "still here?")
            await there.expect_error("not_found")
            await there.ask_history(room)
            await there.expect_error("not_found")
        finally:
            await there.close()


async def test_a_file_uploaded_on_one_node_is_attached_and_served_on_another(
    cluster: ClusterFactory,
) -> None:
    """The bytes live in PostgreSQL: every node serves every file."""
    a, b = cluster(2)
    async with AsyncApi(a.url) as api_a, AsyncApi(b.url) as api_b:
        ann, bob = await api_a.register(), await api_a.register()
        upload = await api_a.upload(ann.token, b"shared across nodes", "notes.txt")
        assert upload.status_code == 201, upload.text
        file = upload.json()
        there = await open_ws(b.ws_url, bob.token)
        try:
            await there.join_ok(ROOM)
            sent = await api_a.post(
                f"/api/rooms/{ROOM}/messages",
                token=ann.token,
                json={"text": "", "attachments": [file["id"]]},
            )
            assert sent.status_code == 201, sent.text
            live = await there.recv_type("message", seq=sent.json()["seq"])
            assert live["attachments"] == [file]  # through Redis, File objects intact
        finally:
            await there.close()
        got = await api_b.get(f"/api/files/{file['id']}", token=bob.token)
        assert (got.status_code, got.content) == (200, b"shared across nodes")
        part = await api_b.get(
            f"/api/files/{file['id']}", token=bob.token, headers={"Range": "bytes=7-12"}
        )
        assert (part.status_code, part.content) == (206, b"across")


async def test_a_plain_senders_error_lines_come_in_their_turn_through_redis(
    cluster: ClusterFactory,
) -> None:
    """A node delivers its own messages at once, but in seq order: one of another node's,
    still on its way through Redis, holds back the lines after it. A refusal's line waits
    for the lines of the frames sent before it (docs/protocol.md "Plain-text mode")."""
    a, b = cluster(2)
    async with AsyncApi(a.url) as api:
        alice, bob = await api.register(), await api.register()
    refused = dict.fromkeys(range(5, 200, 10), "x" * 4001)
    frames = [refused.get(i, f"frame {i}") for i in range(200)]
    sender = await open_plain(a.ws_url, alice.token)
    other = Peer(bob, "bob")
    await other.connect(b)
    flood = asyncio.create_task(other.send_many("flood", 400))
    try:
        for frame in frames:
            await sender.send(frame)
        mine: list[str] = []
        while len(mine) < len(frames):
            line = await asyncio.wait_for(sender.recv(), WAIT)
            assert isinstance(line, str)
            if not line.startswith(f"{bob.username}: "):
                mine.append(line if line.startswith(f"{alice.username}: ") else line[:7])
        await asyncio.wait_for(flood, WAIT)
    finally:
        await sender.close()
        await close_all([other])
    expected = ["* error" if i in refused else f"{alice.username}: frame {i}" for i in range(200)]
    assert mine == expected
