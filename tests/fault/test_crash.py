"""Issue 3 (9), issue 11: `kill -9` at any moment, twenty times in a row, loses no acked message.

Clients send continuously with client_ids; the server is SIGKILLed mid-stream and restarted on the
same port and data dir; the clients resend everything not acked with the same client_id. In the end
every acked message is in history exactly once, at the seq it was acked with, and seq is gapless.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import defaultdict
from dataclasses import dataclass, field

from websockets.exceptions import ConnectionClosed

from tests.support.api import AsyncApi, ServerFactory, User
from tests.support.client import ParleyWS, open_ws
from tests.support.server import ServerProcess

CLIENTS = 4
PER_CLIENT = 150
KILLS = 20  # in a row (issue 11): every restart must recover what the last crash left
# each server lifetime is killed after this many acks (all clients), so that each kill lands
# at a different point of a batch and of the clients' windows
KILL_AFTER_ACKS = 27
MORE = 30  # messages each writer adds when all are acked before the twentieth kill
WINDOW = 12  # un-acked sends in flight per client


@dataclass
class Writer:
    user: User
    name: str
    cids: list[str]
    acks: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    sent_before_crash: set[str] = field(default_factory=set)

    def unacked(self) -> list[str]:
        return [c for c in self.cids if c not in self.acks]

    def text(self, cid: str) -> str:
        return f"text of {cid}"


class Round:
    """One server lifetime: every writer pumps its un-acked messages until done or killed."""

    def __init__(self, srv: ServerProcess, kill_at: int | None, acked_before: int) -> None:
        self.srv = srv
        self.kill_at = kill_at
        self.total = acked_before
        self.killed = asyncio.Event()
        self.kill_task: asyncio.Task[None] | None = None

    def on_ack(self) -> None:
        self.total += 1
        if self.kill_at is not None and self.total >= self.kill_at and self.kill_task is None:
            # SIGKILL while every writer still has sends in flight
            self.kill_task = asyncio.create_task(asyncio.to_thread(self.srv.kill))
            self.kill_task.add_done_callback(lambda _: self.killed.set())

    async def pump(self, writer: Writer, client: ParleyWS) -> None:
        """Send every un-acked message (bounded window); return when all are acked or the
        connection died because of the kill."""
        window = asyncio.Semaphore(WINDOW)
        todo = writer.unacked()
        outstanding: set[str] = set()

        async def send_all() -> None:
            for cid in todo:
                await window.acquire()
                outstanding.add(cid)
                await client.send_text("general", writer.text(cid), cid)

        sender = asyncio.create_task(send_all())
        got = 0
        try:
            while got < len(todo):
                event = json.loads(await asyncio.wait_for(client.ws.recv(), 60))
                if event["type"] == "error":
                    raise AssertionError(f"unexpected error event: {event}")
                if event["type"] != "ack":
                    continue
                cid = event["client_id"]
                assert cid in outstanding, f"ack for a message not in flight: {event}"
                assert event["room"] == "general", event
                outstanding.discard(cid)
                writer.acks[cid].append(event["seq"])
                got += 1
                window.release()
                self.on_ack()
        except ConnectionClosed:
            assert self.kill_task is not None, "connection lost without a kill"
        finally:
            writer.sent_before_crash |= outstanding
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await sender


async def test_kill9_mid_stream_then_resend_loses_and_doubles_nothing(
    server_factory: ServerFactory,
) -> None:
    srv = server_factory(["--rate-limit", "0"])
    async with AsyncApi(srv.url) as api:
        users = [await api.register() for _ in range(CLIENTS)]
    writers = [
        Writer(u, f"w{i}", [f"w{i}-{n}" for n in range(PER_CLIENT)]) for i, u in enumerate(users)
    ]

    kills = 0
    rounds = 0
    while kills < KILLS or any(w.unacked() for w in writers):
        rounds += 1
        assert rounds <= 2 * KILLS + 3, "did not converge"
        if not any(w.unacked() for w in writers):  # acks outran the kills (a loaded machine)
            for w in writers:
                w.cids += [f"{w.name}-{len(w.cids) + n}" for n in range(MORE)]
        acked = sum(len(w.acks) for w in writers)
        kill_at = acked + KILL_AFTER_ACKS if kills < KILLS else None
        rnd = Round(srv, kill_at, acked)
        clients = [await open_ws(srv.ws_url, w.user.token) for w in writers]
        await asyncio.wait_for(
            asyncio.gather(*(rnd.pump(w, c) for w, c in zip(writers, clients, strict=True))), 120
        )
        if rnd.kill_task is not None:
            await rnd.kill_task
            kills += 1
            assert srv.proc is not None
            assert srv.proc.returncode == -9
            await asyncio.to_thread(srv.start)  # same port, same data dir
        else:
            for c in clients:
                await c.close()

    assert kills == KILLS

    async with AsyncApi(srv.url) as api:
        stored = await api.all_messages(users[0].token, "general")

    # gapless seq, every message exactly once
    assert [m["seq"] for m in stored] == list(range(1, len(stored) + 1))
    by_cid: dict[tuple[str, str], dict[str, object]] = {}
    for m in stored:
        key = (str(m["username"]), str(m["client_id"]))
        assert key not in by_cid, f"stored twice: {key}"
        by_cid[key] = m
    assert len(stored) == sum(len(w.cids) for w in writers)
    for w in writers:
        for cid in w.cids:
            msg = by_cid.get((w.user.username, cid))
            assert msg is not None, f"acked {cid} lost"
            # every ack of this client_id (before and after crashes) names the stored seq
            assert set(w.acks[cid]) == {msg["seq"]}, (cid, w.acks[cid], msg["seq"])
            assert msg["text"] == w.text(cid)
    # the kills really hit mid-stream: messages were in flight, unacked, and were resent
    assert any(w.sent_before_crash for w in writers)


async def test_kill9_during_rest_sends(server_factory: ServerFactory) -> None:
    """The same guarantee for POST /api/rooms/{room}/messages with client_id."""
    srv = server_factory(["--rate-limit", "0"])
    async with AsyncApi(srv.url) as api:
        user = await api.register()
    total = 120
    acked: dict[str, dict[str, object]] = {}
    kills = 0
    next_kill = 30
    rounds = 0
    while len(acked) < total:
        rounds += 1
        assert rounds <= 10
        async with AsyncApi(srv.url) as api:
            pending = [f"r{i}" for i in range(total) if f"r{i}" not in acked]
            in_flight: set[asyncio.Task[None]] = set()
            kill_task: asyncio.Task[None] | None = None

            async def post(cid: str, api: AsyncApi = api) -> None:
                try:
                    resp = await api.send_raw(user.token, "general", f"rest {cid}", cid)
                except Exception:
                    return  # connection refused / reset by the kill: resent next round
                if resp.status_code in (200, 201):
                    body = resp.json()
                    if cid in acked:
                        assert acked[cid] == body
                    acked[cid] = body

            for cid in pending:
                if len(acked) >= next_kill and kills < 3 and kill_task is None:
                    kill_task = asyncio.create_task(asyncio.to_thread(srv.kill))
                task = asyncio.create_task(post(cid))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
                if len(in_flight) >= 8:
                    await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                if kill_task is not None and kill_task.done():
                    break
            if in_flight:
                await asyncio.wait(in_flight)
            if kill_task is not None:
                await kill_task
                kills += 1
                next_kill += 30
                await asyncio.to_thread(srv.start)
    assert kills == 3
    async with AsyncApi(srv.url) as api:
        stored = await api.all_messages(user.token, "general")
        # a retry of an acked client_id is answered 200 with the first message
        again = await api.send_raw(user.token, "general", "rest r0", "r0")
        assert again.status_code == 200
        assert again.json() == acked["r0"]
    assert [m["seq"] for m in stored] == list(range(1, total + 1))
    assert sorted(str(m["client_id"]) for m in stored) == sorted(acked)
    for m in stored:
        assert acked[str(m["client_id"])] == m
