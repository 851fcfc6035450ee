"""Contract: join with since replays every missed message, then live ones: no gap, no duplicate —
also while other users keep sending during the replay (the race, provoked on purpose)."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from tests.support.api import AsyncApi, ServerFactory, User
from tests.support.client import ParleyWS, open_ws

SENDERS = 3
PER_SENDER = 250
TOTAL = SENDERS * PER_SENDER
ROOM = "race"


class Acks:
    """Acks of every sender; waiters can block until the room has grown past a seq."""

    def __init__(self) -> None:
        self.by_cid: dict[str, int] = {}
        self.max_seq = 0
        self.changed = asyncio.Condition()

    async def add(self, cid: str, seq: int) -> None:
        async with self.changed:
            assert cid not in self.by_cid, f"second ack for {cid}"
            self.by_cid[cid] = seq
            self.max_seq = max(self.max_seq, seq)
            self.changed.notify_all()

    async def wait_past(self, seq: int) -> None:
        async with self.changed:
            await self.changed.wait_for(lambda: self.max_seq > seq or len(self.by_cid) >= TOTAL)


async def sender(client: ParleyWS, name: str, acks: Acks) -> None:
    window = asyncio.Semaphore(4)
    pending: set[str] = set()

    async def receive(count: int) -> None:
        for _ in range(count):
            event = await client.recv_type("ack", within=60)
            assert event["client_id"] in pending, event
            pending.discard(event["client_id"])
            await acks.add(event["client_id"], event["seq"])
            window.release()

    reader = asyncio.create_task(receive(PER_SENDER))
    for i in range(PER_SENDER):
        await window.acquire()
        cid = f"{name}-{i}"
        pending.add(cid)
        await client.send_text(ROOM, f"{name} says {i}", cid)
    await reader
    assert not pending


async def next_message(client: ParleyWS) -> dict[str, Any]:
    """The next event of the room, skipping presence/typing; anything else is a failure."""
    while True:
        event = await client.recv(within=60)
        if event["type"] in ("presence", "typing"):
            continue
        assert event["type"] == "message", event
        assert event["room"] == ROOM, event
        return event


async def test_resume_with_since_while_others_keep_sending(server_factory: ServerFactory) -> None:
    srv = server_factory(["--rate-limit", "0"])
    rng = random.Random(1234)
    async with AsyncApi(srv.url) as api:
        reader_user: User = await api.register()
        senders = [await api.register() for _ in range(SENDERS)]
        await api.create_room(senders[0].token, ROOM)

        # A's first session starts before anything is sent: join without since = live only
        a = await open_ws(srv.ws_url, reader_user.token)
        await a.join(ROOM)
        joined = await a.recv_chat()
        assert joined["type"] == "joined", joined
        assert joined["last_seq"] == 0

        acks = Acks()
        sender_clients = [await open_ws(srv.ws_url, u.token) for u in senders]
        sender_tasks = [
            asyncio.create_task(sender(c, f"s{i}", acks)) for i, c in enumerate(sender_clients)
        ]

        received: dict[int, dict[str, Any]] = {}
        replayed_while_sending = 0
        sessions = 0
        expected = 1
        while True:
            sessions += 1
            assert sessions < 500, "too many sessions"
            quota = rng.randint(3, 40)
            while quota and expected <= TOTAL:
                msg = await next_message(a)
                assert msg["seq"] == expected, (
                    f"session {sessions}: expected seq {expected}, got {msg['seq']} "
                    f"(gap or duplicate after resume)"
                )
                assert msg["seq"] not in received
                received[msg["seq"]] = msg
                expected += 1
                quota -= 1
            if expected > TOTAL:
                break
            last_seen = expected - 1
            # drop the connection: gracefully or abruptly, alternately
            if sessions % 2:
                await a.close()
            else:
                a.ws.transport.abort()
            if sessions % 3:
                # make sure messages arrive while A is away, so the resume has to replay
                await acks.wait_past(last_seen + 2)
            a = await open_ws(srv.ws_url, reader_user.token)
            await a.join(ROOM, since=last_seen)
            joined = await a.recv(within=30)
            assert joined["type"] == "joined", joined
            assert joined["room"] == ROOM
            assert joined["last_seq"] >= last_seen
            if joined["last_seq"] > last_seen and joined["last_seq"] < TOTAL:
                replayed_while_sending += 1

        await asyncio.wait_for(asyncio.gather(*sender_tasks), 120)
        assert sorted(acks.by_cid.values()) == list(range(1, TOTAL + 1))
        assert sessions >= 10, sessions
        assert replayed_while_sending >= 3, "the race was not exercised"

        # after the replay: live messages, still in order and exactly once
        live = await sender_clients[0].send_ok(ROOM, "live after resume", "live-1")
        assert live["seq"] == TOTAL + 1
        msg = await next_message(a)
        assert (msg["seq"], msg["text"]) == (TOTAL + 1, "live after resume")

        # what A saw is exactly what is stored
        stored = await api.all_messages(reader_user.token, ROOM)
        assert [m["seq"] for m in stored] == list(range(1, TOTAL + 2))
        for m in stored[:TOTAL]:
            seen = dict(received[m["seq"]])
            seen.pop("type")
            assert seen == m
            assert acks.by_cid[m["client_id"]] == m["seq"]
        for c in [a, *sender_clients]:
            await c.close()


async def test_join_since_replay_is_exactly_the_gap(server_factory: ServerFactory) -> None:
    """A simple disconnect / reconnect, no concurrency: exactly the missed messages."""
    srv = server_factory(["--rate-limit", "0"])
    async with AsyncApi(srv.url) as api:
        reader_user = await api.register()
        writer = await api.register()
        a = await open_ws(srv.ws_url, reader_user.token)
        await a.join_ok("general")
        for i in range(1, 6):
            await api.send(writer.token, "general", f"m{i}")
        seen = [await next_message_in(a, "general") for _ in range(5)]
        assert [m["seq"] for m in seen] == [1, 2, 3, 4, 5]
        await a.close()
        for i in range(6, 16):
            await api.send(writer.token, "general", f"m{i}")
        a = await open_ws(srv.ws_url, reader_user.token)
        await a.join("general", since=5)
        events = [await a.recv_chat() for _ in range(11)]
        assert events[0]["type"] == "joined"
        assert events[0]["last_seq"] == 15
        assert [(e["type"], e["seq"], e["text"]) for e in events[1:]] == [
            ("message", i, f"m{i}") for i in range(6, 16)
        ]
        await api.send(writer.token, "general", "m16")
        live = await a.recv_chat()
        assert (live["type"], live["seq"]) == ("message", 16)
        await a.close()


async def next_message_in(client: ParleyWS, room: str) -> dict[str, Any]:
    return await client.recv_type("message", room=room)
