"""A join with a recent `since` replays from the events in memory (core/recent.py), not the
store: byte for byte what the store would replay, and never a message row that an edit,
delete or reaction has changed since (those are the store's to replay)."""

from __future__ import annotations

import re
from typing import Any

from tests.support.api import AsyncApi, ServerFactory, User
from tests.support.client import new_client_id, parley_ws
from tests.support.server import ServerProcess

ROOM = "general"


async def _replays(api: AsyncApi) -> dict[str, int]:
    """parley_replays by source, from GET /metrics."""
    text = (await api.get("/metrics")).text
    found = re.findall(r'^parley_replays_total\{source="(\w+)"\} (\S+)$', text, re.M)
    return {source: int(float(value)) for source, value in found}


async def _replay(server: ServerProcess, user: User, since: int) -> list[dict[str, Any]]:
    """What a join of `ROOM` with `since` replays, up to its `joined.last_seq`."""
    async with parley_ws(server.ws_url, user.token) as ws:
        joined = await ws.join_ok(ROOM, since=since)
        return [await ws.recv_chat() for _ in range(joined["last_seq"] - since)]


async def test_a_recent_replay_comes_from_memory_as_the_store_has_it(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(["--rate-limit", "0"])
    async with AsyncApi(server.url) as api:
        ann, bob = await api.register(), await api.register()
        upload = await api.upload(ann.token, b"minutes", "notes.txt")
        assert upload.status_code == 201, upload.text
        async with parley_ws(server.ws_url, ann.token) as a:
            first = await a.send_ok(ROOM, "plain words")
            cid = new_client_id()
            await a.send_json(
                {
                    "type": "send",
                    "room": ROOM,
                    "text": f"@{bob.username} see the notes",
                    "client_id": cid,
                    "reply_to": first["seq"],
                    "attachments": [upload.json()["id"]],
                }
            )
            await a.recv_type("ack", client_id=cid)
            await a.change_ok("topic", ROOM, topic="minutes")
            await a.send_ok(ROOM, "the last one")

        from_memory = await _replay(server, bob, since=0)
        assert await _replays(api) == {"memory": 1, "store": 0}
        server.terminate()  # a new process: nothing in memory, the store replays
        server.start()
        from_store = await _replay(server, bob, since=0)
        assert await _replays(api) == {"memory": 0, "store": 1}

    assert [e["type"] for e in from_memory] == ["message", "message", "topic", "message"]
    assert from_memory == from_store


async def test_a_changed_message_is_replayed_as_it_is_now(server_factory: ServerFactory) -> None:
    server = server_factory(["--rate-limit", "0"])
    async with AsyncApi(server.url) as api:
        ann, bob = await api.register(), await api.register()
        async with parley_ws(server.ws_url, ann.token) as a:
            one = await a.send_ok(ROOM, "one")
            two = await a.send_ok(ROOM, "two")
            await a.change_ok("edit", ROOM, target=two["seq"], text="two, edited")
            three = await a.send_ok(ROOM, "three")
        # the edit emptied the window: a replay from before it is the store's
        replay = await _replay(server, bob, since=one["seq"])
        assert [(e["type"], e.get("text")) for e in replay] == [
            ("message", "two, edited"),
            ("edit", "two, edited"),
            ("message", "three"),
        ]
        assert replay[0]["edited"] is not None
        # one from the edit on is in memory again
        assert [e["seq"] for e in await _replay(server, bob, since=three["seq"] - 1)] == [
            three["seq"]
        ]
        assert await _replays(api) == {"memory": 1, "store": 1}
