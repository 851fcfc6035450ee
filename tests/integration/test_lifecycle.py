"""Contract: restart keeps everything; SIGTERM drains (in-flight acks, close 1001, exit 0)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from tests.support.api import AsyncApi, ServerFactory, assert_error
from tests.support.client import ParleyWS, open_ws, parley_ws
from tests.support.server import ServerProcess


def by_name(rooms: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["room"]: r for r in rooms}


@pytest.mark.parametrize("how", ["sigterm", "kill9"])
async def test_restart_keeps_everything(server_factory: ServerFactory, how: str) -> None:
    srv = server_factory()
    async with AsyncApi(srv.url) as api:
        alice = await api.register()
        bob = await api.register()
        carol = await api.register()
        alice2 = await api.login(alice)
        dead = await api.login(bob)
        assert (await api.post("/api/logout", token=dead.token)).status_code == 204

        await api.create_room(alice.token, "pub")
        await api.create_room(alice.token, "priv", private=True)
        assert (await api.invite(alice.token, "priv", carol.username)).status_code == 201
        first = await api.send(alice.token, "general", "one", "cid-1")
        await api.send(bob.token, "general", "two")
        async with parley_ws(srv.ws_url, carol.token) as c:
            ws_ack = await c.send_ok("general", "three", "cid-ws")
            await c.send_ok("priv", "secret")
        await api.send(bob.token, "pub", "pub1")

        before = {u.username: await api.rooms(u.token) for u in (alice, bob, carol)}
        history = {
            room: await api.all_messages(alice.token, room) for room in ("general", "pub", "priv")
        }
        assert [m["seq"] for m in history["general"]] == [1, 2, 3]

    if how == "sigterm":
        assert srv.terminate() == 0
    else:
        srv.kill()
    srv.start()

    async with AsyncApi(srv.url) as api:
        # users and tokens
        for user in (alice, alice2, bob, carol):
            assert (await api.get("/api/rooms", token=user.token)).status_code == 200
        assert_error(await api.get("/api/rooms", token=dead.token), 401)
        assert (await api.login_raw(bob.username, bob.password)).status_code == 200
        assert (await api.login_raw(bob.username, "wrong password")).status_code == 401
        assert_error(await api.register_raw(alice.username, "whatever123"), 409)
        # rooms, privacy, membership
        for user in (alice, bob, carol):
            after = by_name(await api.rooms(user.token))
            assert after == by_name(before[user.username])
        assert "priv" not in await api.room_names(bob.token)
        assert_error(await api.messages_raw(bob.token, "priv"), 404, "not_found")
        assert [m["text"] for m in await api.messages(carol.token, "priv")] == ["secret"]
        # messages, unchanged
        for room, msgs in history.items():
            assert await api.all_messages(alice.token, room) == msgs
        # seq continues, never reused
        nxt = await api.send(bob.token, "general", "four")
        assert nxt["seq"] == 4
        # after "secret" and the member event of carol's invitation
        assert (await api.send(carol.token, "priv", "secret2"))["seq"] == 3
        # client_id idempotency survives the restart, over REST and WebSocket
        again = await api.send_raw(alice.token, "general", "one", "cid-1")
        assert again.status_code == 200
        assert again.json() == first
        async with parley_ws(srv.ws_url, carol.token) as c:
            rooms = {r["room"]: r["last_seq"] for r in c.hello["rooms"]}
            assert rooms == {"general": 4, "pub": 1, "priv": 3}
            assert await c.send_ok("general", "three", "cid-ws") == ws_ack
        assert [m["seq"] for m in await api.all_messages(alice.token, "general")] == [1, 2, 3, 4]


# -- SIGTERM drain ----------------------------------------------------------------------------


@dataclass
class Pump:
    """One client sending continuously, with a bounded window of un-acked sends."""

    client: ParleyWS
    prefix: str
    sent: list[str] = field(default_factory=list)
    acked: dict[str, int] = field(default_factory=dict)
    errors: list[dict[str, Any]] = field(default_factory=list)
    close_code: int | None = None
    close_detail: str = ""

    async def run(self, progress: asyncio.Event, total: list[int], max_sends: int = 3000) -> None:
        window = asyncio.Semaphore(8)

        async def sender() -> None:
            for i in range(max_sends):
                await window.acquire()
                cid = f"{self.prefix}-{i}"
                self.sent.append(cid)
                await self.client.send_text("general", f"text of {cid}", cid)

        async def receiver() -> None:
            while True:
                event = json.loads(await self.client.ws.recv())
                if event["type"] == "ack":
                    assert event["client_id"] not in self.acked, event
                    self.acked[event["client_id"]] = event["seq"]
                    window.release()
                    total[0] += 1
                    if total[0] >= 150:
                        progress.set()
                elif event["type"] == "error":
                    self.errors.append(event)
                    window.release()

        send_task = asyncio.create_task(sender())
        try:
            await receiver()
        except ConnectionClosed as exc:
            self.close_code = exc.rcvd.code if exc.rcvd else None
            self.close_detail = f"{exc!r} cause={exc.__cause__!r} acked={len(self.acked)}"
        finally:
            send_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await send_task


async def test_sigterm_drains_acks_closes_1001_exits_0(server_factory: ServerFactory) -> None:
    srv: ServerProcess = server_factory(["--rate-limit", "0"])
    async with AsyncApi(srv.url) as api:
        users = [await api.register() for _ in range(3)]
    pumps = [Pump(await open_ws(srv.ws_url, u.token), f"p{i}") for i, u in enumerate(users)]
    listener = await open_ws(srv.ws_url, users[0].token)
    await listener.join_ok("general")

    progress = asyncio.Event()
    total = [0]
    tasks = [asyncio.create_task(p.run(progress, total)) for p in pumps]
    await asyncio.wait_for(progress.wait(), 60)
    # mid-stream: every pump has sends in flight right now
    exit_code = await asyncio.to_thread(srv.terminate, 30)
    await asyncio.wait_for(asyncio.gather(*tasks), 30)
    listener_code = await listener.wait_closed(30)

    assert exit_code == 0, srv.log()[-3000:]

    srv.start()
    async with AsyncApi(srv.url) as api:
        stored = await api.all_messages(users[0].token, "general")
    seqs = [m["seq"] for m in stored]
    assert seqs == list(range(1, len(stored) + 1)), "gap or duplicate in seq"
    stored_by_cid = {m["client_id"]: m["seq"] for m in stored}
    assert len(stored_by_cid) == len(stored), "a client_id stored twice"
    acked = {cid: seq for p in pumps for cid, seq in p.acked.items()}
    assert len(acked) >= 150
    # every ack is a durable message at the acked seq ...
    for cid, seq in acked.items():
        assert stored_by_cid.get(cid) == seq, (cid, seq, stored_by_cid.get(cid))
    # ... and every stored message was acked: no in-flight ack was dropped by the shutdown
    unacked_but_stored = sorted(set(stored_by_cid) - set(acked))
    assert unacked_but_stored == [], (unacked_but_stored, [p.close_detail for p in pumps])
    # errors during the drain (if any) are for messages that were not stored
    for p in pumps:
        for err in p.errors:
            assert err.get("ref") not in stored_by_cid, err
    # every socket, also those still sending, got the close frame with 1001 (not a reset)
    assert [p.close_code for p in pumps] == [1001, 1001, 1001], [p.close_detail for p in pumps]
    assert listener_code == 1001
