"""Request ids (docs/protocol.md, "Request ids"): a client frame's `id` comes back on each of
its direct answers (joined, ack, history, error); a frame without one is answered exactly as
before, with no `id` field at all; broadcast frames never carry one."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.api import AsyncApi, Fresh, ServerFactory, unique_room
from tests.support.client import Event, ParleyWS, new_client_id, open_ws, parley_ws

ANSWERS = ("joined", "ack", "history", "error")
MAX_ID = 2**53 - 1

# The keys of each answer to a frame without an id, in order: the frames of before ids.
KEYS_WITHOUT_ID = {
    "joined": ["type", "room", "last_seq", "online"],
    "ack": ["type", "client_id", "room", "seq"],
    "history": ["type", "room", "messages"],
    "error": ["type", "code", "message", "ref"],
}


def is_answer(event: Event) -> bool:
    return event.get("type") in ANSWERS


async def answer(client: ParleyWS) -> Event:
    """The next direct answer (presence, typing and message events stay in the backlog)."""
    return await client.recv_until(is_answer)


async def ask(client: ParleyWS, frame: dict[str, Any], request_id: int | None) -> Event:
    """Send `frame` with `request_id` (none: no id field) and return its answer."""
    await client.send_json(frame if request_id is None else {**frame, "id": request_id})
    return await answer(client)


def frames_of(room: str) -> dict[str, dict[str, Any]]:
    """One frame of each kind that is answered, by its answer's type; `error` asks for a
    room nobody has."""
    return {
        "joined": {"type": "join", "room": room},
        "history": {"type": "history", "room": room},
        "ack": {"type": "send", "room": room, "text": "hi", "client_id": new_client_id()},
        "error": {"type": "join", "room": unique_room()},
    }


@pytest.mark.parametrize("request_id", [0, 1, 7, MAX_ID])
async def test_each_answer_echoes_the_frames_id(fresh: Fresh, request_id: int) -> None:
    async with parley_ws(fresh.server.ws_url, fresh.user.token) as c:
        for kind, frame in frames_of(fresh.room).items():
            got = await ask(c, frame, request_id)
            assert got["type"] == kind, got
            assert got["id"] == request_id, got
            assert list(got) == [*KEYS_WITHOUT_ID[kind], "id"], got


async def test_frames_without_id_are_answered_without_id(fresh: Fresh) -> None:
    async with parley_ws(fresh.server.ws_url, fresh.user.token) as c:
        for kind, frame in frames_of(fresh.room).items():
            got = await ask(c, frame, None)
            assert list(got) == KEYS_WITHOUT_ID[kind], got
        # `"id": null` is no id, as `"since": null` is no since
        got = await ask(c, {"type": "history", "room": fresh.room, "id": None}, None)
        assert list(got) == KEYS_WITHOUT_ID["history"], got


async def test_broadcasts_never_carry_an_id(fresh: Fresh) -> None:
    other = await fresh.api.register()
    async with (
        parley_ws(fresh.server.ws_url, fresh.user.token) as a,
        parley_ws(fresh.server.ws_url, other.token) as b,
    ):
        await ask(a, {"type": "join", "room": "general"}, 1)
        await ask(b, {"type": "join", "room": "general"}, 2)
        await b.send_json({"type": "typing", "room": "general", "id": 3})
        cid = new_client_id()
        ack = await ask(b, {"type": "send", "room": "general", "text": "x", "client_id": cid}, 4)
        assert ack["id"] == 4, ack
        presence = await a.recv_type("presence", username=other.username, online=True)
        typing = await a.recv_type("typing", username=other.username)
        message = await a.recv_type("message", client_id=cid)
        own = await b.recv_type("message", client_id=cid)
        for event in (presence, typing, message, own):
            assert "id" not in event, event


async def test_leave_and_typing_are_not_answered_but_their_errors_are(fresh: Fresh) -> None:
    async with parley_ws(fresh.server.ws_url, fresh.user.token) as c:
        await ask(c, {"type": "join", "room": fresh.room}, 1)
        await c.send_json({"type": "typing", "room": fresh.room, "id": 2})
        await c.send_json({"type": "leave", "room": fresh.room, "id": 3})
        # frames are handled in order: the next answer is the history's, none came between
        got = await ask(c, {"type": "history", "room": fresh.room}, 4)
        assert (got["type"], got["id"]) == ("history", 4), got
        error = await ask(c, {"type": "typing", "room": unique_room()}, 5)
        assert (error["code"], error["id"], error["ref"]) == ("not_found", 5, None), error


@pytest.mark.parametrize(
    ("frame", "code", "ref"),
    [
        ({"type": "join", "room": "Not Valid"}, "bad_request", None),
        ({"type": "join", "room": "general", "since": -1}, "bad_request", None),
        ({"type": "history", "room": "general", "limit": 0}, "bad_request", None),
        ({"type": "send", "room": "general", "text": 5, "client_id": "c-5"}, "bad_request", "c-5"),
        ({"type": "send", "room": "general", "text": "no client id"}, "bad_request", None),
        ({"type": "shout", "room": "general"}, "unknown_type", None),
        ({"type": 5}, "bad_request", None),
        ({"room": "general"}, "bad_request", None),
    ],
)
async def test_a_refused_frame_echoes_its_readable_id(
    fresh: Fresh, frame: dict[str, Any], code: str, ref: str | None
) -> None:
    async with parley_ws(fresh.server.ws_url, fresh.user.token) as c:
        error = await ask(c, frame, 99)
        assert error["type"] == "error", error
        assert (error["code"], error["ref"], error["id"]) == (code, ref, 99), error


@pytest.mark.parametrize("bad_id", [-1, MAX_ID + 1, 1.5, "7", True, [7], {"n": 7}], ids=repr)
async def test_an_invalid_id_is_a_bad_request_without_id(fresh: Fresh, bad_id: object) -> None:
    async with parley_ws(fresh.server.ws_url, fresh.user.token) as c:
        error = await ask(c, {"type": "join", "room": fresh.room, "id": bad_id}, None)
        assert error["code"] == "bad_request", error
        assert error["message"] == f"id must be an integer from 0 to {MAX_ID}", error
        assert list(error) == KEYS_WITHOUT_ID["error"], error
        # the socket stays open and ids work on it
        assert (await ask(c, {"type": "join", "room": fresh.room}, 1))["id"] == 1


@pytest.mark.parametrize("data", ["{not json", '[{"id": 3}]', '"id"'])
async def test_a_frame_that_is_no_object_gets_an_error_without_id(fresh: Fresh, data: str) -> None:
    async with parley_ws(fresh.server.ws_url, fresh.user.token) as c:
        await c.send_raw(data)
        error = await answer(c)
        assert error["code"] == "bad_request", error
        assert list(error) == KEYS_WITHOUT_ID["error"], error


async def test_a_too_large_send_echoes_id_and_client_id(fresh: Fresh) -> None:
    async with parley_ws(fresh.server.ws_url, fresh.user.token) as c:
        await ask(c, {"type": "join", "room": fresh.room}, 1)  # later sends may take a shortcut
        cid = new_client_id()
        send = {"type": "send", "room": fresh.room, "text": "x" * 4001, "client_id": cid}
        error = await ask(c, send, 2)
        assert (error["code"], error["ref"], error["id"]) == ("too_large", cid, 2), error


async def test_ids_belong_to_frames_not_to_messages(fresh: Fresh) -> None:
    """The server neither remembers nor checks ids: a resend answers with the resend's id,
    and one id used twice is echoed twice."""
    async with parley_ws(fresh.server.ws_url, fresh.user.token) as c:
        cid = new_client_id()
        send = {"type": "send", "room": fresh.room, "text": "once", "client_id": cid}
        first = await ask(c, send, 10)
        again = await ask(c, send, 11)
        assert (first["id"], again["id"]) == (10, 11)
        assert first["seq"] == again["seq"] == 1
        same = [await ask(c, {"type": "history", "room": fresh.room}, 5) for _ in range(2)]
        assert [h["id"] for h in same] == [5, 5]
        no_id = await ask(c, send, None)
        assert list(no_id) == KEYS_WITHOUT_ID["ack"], no_id
    # another socket of the same user: the same ids, its own answers
    async with parley_ws(fresh.server.ws_url, fresh.user.token) as c2:
        assert (await ask(c2, send, 10))["id"] == 10


async def test_interleaved_requests_are_matched_by_id(fresh: Fresh) -> None:
    """Pipelined frames of every kind, some refused: each answer carries the id of the frame
    it answers, whatever order the answers come in (acks wait for the COMMIT)."""
    async with parley_ws(fresh.server.ws_url, fresh.user.token) as c:
        for n in range(3):
            await c.send_ok(fresh.room, f"before {n}")
        missing = unique_room()
        cids = [new_client_id() for _ in range(3)]
        requests: dict[int, tuple[str, str]] = {}  # id -> (answer type, room)

        async def send(request_id: int, frame: dict[str, Any], expect: str) -> None:
            requests[request_id] = (expect, frame["room"])
            await c.send_json({**frame, "id": request_id})

        await send(100, {"type": "join", "room": fresh.room, "since": 0}, "joined")
        await send(
            101, {"type": "send", "room": fresh.room, "text": "a", "client_id": cids[0]}, "ack"
        )
        await send(102, {"type": "history", "room": fresh.room, "before": 3, "limit": 1}, "history")
        await send(103, {"type": "history", "room": missing}, "error")
        await send(
            104, {"type": "send", "room": fresh.room, "text": "b", "client_id": cids[1]}, "ack"
        )
        await send(105, {"type": "join", "room": "general"}, "joined")
        await send(
            106, {"type": "send", "room": missing, "text": "c", "client_id": cids[2]}, "error"
        )
        await send(107, {"type": "history", "room": fresh.room, "after": 2}, "history")
        await send(108, {"type": "join", "room": missing}, "error")
        got: dict[int, Event] = {}
        while len(got) < len(requests):
            event = await answer(c)
            assert event["id"] not in got, f"answered twice: {event}"
            got[event["id"]] = event
        for request_id, (kind, room) in requests.items():
            event = got[request_id]
            assert event["type"] == kind, (request_id, event)
            if kind != "error":
                assert event["room"] == room, (request_id, event)
        assert [m["seq"] for m in got[102]["messages"]] == [2]
        assert got[107]["messages"][0]["seq"] == 3  # "a" and "b" may be committed by then
        assert (got[101]["client_id"], got[104]["client_id"]) == (cids[0], cids[1])
        assert [got[i]["code"] for i in (103, 106, 108)] == ["not_found"] * 3
        assert got[106]["ref"] == cids[2]


async def test_refusals_on_a_limited_server_echo_the_id(server_factory: ServerFactory) -> None:
    """rate_limited for a send (checked where the frame is parsed when the socket is idle)
    and for history; forbidden for a guest outside general."""
    srv = server_factory(["--guests", "--rate-limit", "1", "--action-limits", "0.01"])
    async with AsyncApi(srv.url) as api:
        alice = await api.register()
        async with parley_ws(srv.ws_url, alice.token) as c:
            await ask(c, {"type": "join", "room": "general"}, 1)
            sends = [
                {"type": "send", "room": "general", "text": "hi", "client_id": new_client_id()}
                for _ in range(2)
            ]
            assert (await ask(c, sends[0], 2))["type"] == "ack"
            error = await ask(c, sends[1], 3)
            assert (error["code"], error["ref"], error["id"]) == (
                "rate_limited",
                sends[1]["client_id"],
                3,
            ), error
            assert list(error) == [*KEYS_WITHOUT_ID["error"], "retry_after", "id"], error
            page = await ask(c, {"type": "history", "room": "general"}, 4)
            assert page["type"] == "history", page
            error = await ask(c, {"type": "history", "room": "general"}, 5)
            assert (error["code"], error["id"]) == ("rate_limited", 5), error
            unnumbered = await ask(c, {"type": "history", "room": "general"}, None)
            assert list(unnumbered) == [*KEYS_WITHOUT_ID["error"], "retry_after"], unnumbered
        guest = await open_ws(srv.ws_url)
        try:
            error = await ask(guest, {"type": "join", "room": "elsewhere"}, 6)
            assert (error["code"], error["id"]) == ("forbidden", 6), error
        finally:
            await guest.close()
