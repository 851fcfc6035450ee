"""Contract: error events (each code), the connection stays open after each, 1009 over 1 MiB."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from tests.support.api import AsyncApi, Fresh, ServerFactory, User
from tests.support.client import ParleyWS, new_client_id, open_ws, parley_ws
from tests.support.server import ServerProcess

MIB = 1024 * 1024
LONG = "x" * 5000


async def assert_still_open(
    client: ParleyWS, room: str = "general", expected_seq: int | None = None
) -> None:
    """The connection answers a request and accepts a send after the error."""
    history = await client.history(room)
    ack = await client.send_ok(room, "still open")
    if expected_seq is not None:
        assert ack["seq"] == expected_seq
    assert ack["seq"] == (history[-1]["seq"] if history else 0) + 1


def assert_error_shape(event: dict[str, Any], code: str, ref: str | None) -> None:
    assert event["type"] == "error", event
    assert event["code"] == code, event
    assert isinstance(event["message"], str), event
    assert event["message"], event
    assert event.get("ref") == ref, event


def in_room(frame: dict[str, Any], room: str) -> dict[str, Any]:
    """Replace the placeholder "ROOM" in a frame's values by a real room name."""
    return {k: room if v == "ROOM" else v for k, v in frame.items()}


async def bad_frame_then_still_open(fresh: Fresh, frame: str | bytes, codes: set[str]) -> None:
    """Send one bad frame on the shared server: one error event with one of these codes, the
    connection stays open, and nothing was stored."""
    async with parley_ws(fresh.server.ws_url, fresh.user.token) as c:
        await c.send_raw(frame)
        event = await c.recv_until(lambda e: e.get("type") == "error")
        assert event["code"] in codes, event
        assert isinstance(event["message"], str), event
        await assert_still_open(c, fresh.room, expected_seq=1)
    stored = await fresh.api.messages(fresh.user.token, fresh.room)
    assert [m["text"] for m in stored] == ["still open"]


# -- bad_request ------------------------------------------------------------------------------

INVALID_JSON = ["{not json", "", "   ", "{'single': 'quotes'}", '{"type": "join", "room": ', "\x00"]


@pytest.mark.parametrize("frame", INVALID_JSON)
async def test_invalid_json_bad_request_and_stays_open(fresh: Fresh, frame: str) -> None:
    async with parley_ws(fresh.server.ws_url, fresh.user.token) as c:
        await c.send_raw(frame)
        event = await c.expect_error("bad_request")
        assert_error_shape(event, "bad_request", None)
        await assert_still_open(c, fresh.room, expected_seq=1)


@pytest.mark.parametrize(
    "frame",
    [
        '{"a":' * 20_000 + "1" + "}" * 20_000,  # deeply nested object, 120 kB
        '{"type": "join", "room": ' + "[" * 50_000 + "]" * 50_000 + "}",
        "[" * 50_000 + "]" * 50_000,
    ],
    ids=["nested-object", "nested-field", "nested-array"],
)
async def test_deeply_nested_json_bad_request_and_stays_open(fresh: Fresh, frame: str) -> None:
    await bad_frame_then_still_open(fresh, frame, {"bad_request"})


@pytest.mark.parametrize("frame", ["null", "42", '"join"', "[1, 2]", "true", '[{"type":"join"}]'])
async def test_json_that_is_not_an_object_bad_request(fresh: Fresh, frame: str) -> None:
    await bad_frame_then_still_open(fresh, frame, {"bad_request"})


@pytest.mark.parametrize(
    "frame",
    [
        {"room": "ROOM"},  # no type
        {"type": None},
        {"type": "join"},  # no room
        {"type": "join", "room": 5},
        {"type": "join", "room": None},
        {"type": "join", "room": "ROOM", "since": "yesterday"},
        {"type": "leave"},
        {"type": "leave", "room": ["ROOM"]},
        {"type": "send", "room": "ROOM"},
        {"type": "send", "text": "no room", "client_id": "x"},
        {"type": "send", "room": "ROOM", "text": "no client id"},
        {"type": "send", "room": "ROOM", "text": 5, "client_id": "x"},
        {"type": "send", "room": "ROOM", "text": None, "client_id": "x"},
        {"type": "send", "room": "ROOM", "text": "t", "client_id": 7},
        {"type": "send", "room": 1, "text": "t", "client_id": "x"},
        {"type": "send", "room": "ROOM", "text": "nul \x00 inside", "client_id": "x"},
        {"type": "send", "room": "ROOM", "text": "t", "client_id": "nul \x00 inside"},
        {"type": "history"},
        {"type": "history", "room": "ROOM", "limit": "ten"},
        {"type": "history", "room": "ROOM", "before": "x"},
        {"type": "history", "room": "ROOM", "limit": 0},
        {"type": "history", "room": "ROOM", "limit": 101},
        {"type": "typing"},
        {"type": "typing", "room": 3},
    ],
)
async def test_missing_or_wrong_fields_bad_request_and_stays_open(
    fresh: Fresh, frame: dict[str, Any]
) -> None:
    await bad_frame_then_still_open(fresh, json.dumps(in_room(frame, fresh.room)), {"bad_request"})


@pytest.mark.parametrize("client_id", ["nul \x00 inside", "x" * 129, ""])
async def test_send_to_a_room_in_use_refused_alike(fresh: Fresh, client_id: str) -> None:
    """Sends to a room the socket uses already are decoded by a shortcut (ws.py
    `on_text_now`, protocol `quick_send`): it refuses what the full decoding refuses, with
    the same error, and stores nothing."""
    frame = {"type": "send", "room": fresh.room, "text": "t", "client_id": client_id, "id": 5}
    async with parley_ws(fresh.server.ws_url, fresh.user.token) as c:
        await c.send_ok(fresh.room, "first")
        await c.send_raw(json.dumps(frame))
        event = await c.expect_error("bad_request")
        assert_error_shape(event, "bad_request", client_id)
        assert event["message"] == "client_id must be 1-128 characters, no NUL", event
        assert event["id"] == 5, event
        await assert_still_open(c, fresh.room, expected_seq=2)


async def test_a_send_without_type_to_a_room_in_use_is_refused(fresh: Fresh) -> None:
    """The shortcut decodes a send as one of a tagged union, so `type` is required there
    too (a tagged struct decoded alone takes a frame without it)."""
    frame = {"room": fresh.room, "text": "typeless", "client_id": "c-typeless", "id": 7}
    async with parley_ws(fresh.server.ws_url, fresh.user.token) as c:
        await c.send_ok(fresh.room, "first")
        await c.send_raw(json.dumps(frame))
        event = await c.expect_error("bad_request")
        assert event["id"] == 7, event
        await assert_still_open(c, fresh.room, expected_seq=2)
    stored = await fresh.api.messages(fresh.user.token, fresh.room)
    assert [m["text"] for m in stored] == ["first", "still open"]


MAX_SEQ = 2**63 - 1  # the largest integer SQLite and PostgreSQL (BIGINT) hold


@pytest.mark.parametrize(
    ("frame", "field"),
    [
        ({"type": "history", "room": "ROOM", "before": MAX_SEQ + 1}, "before"),
        ({"type": "history", "room": "ROOM", "after": MAX_SEQ + 1}, "after"),
        ({"type": "history", "room": "ROOM", "before": 10**40}, "before"),
        ({"type": "history", "room": "ROOM", "before": -1}, "before"),
        ({"type": "join", "room": "ROOM", "since": MAX_SEQ + 1}, "since"),
        ({"type": "join", "room": "general\n"}, "room"),
    ],
)
async def test_values_the_store_cannot_hold_are_bad_request_and_stay_open(
    fresh: Fresh, frame: dict[str, Any], field: str
) -> None:
    """Issue 11: a history `before` of 2^63 dropped the socket without a close frame."""
    async with parley_ws(fresh.server.ws_url, fresh.user.token) as c:
        await c.send_json(in_room(frame, fresh.room))
        event = await c.expect_error("bad_request")
        assert event["message"].startswith(f"{field} must be "), event
        await assert_still_open(c, fresh.room, expected_seq=1)


async def test_history_at_the_largest_seq_is_answered(fresh: Fresh) -> None:
    async with parley_ws(fresh.server.ws_url, fresh.user.token) as c:
        await c.send_ok(fresh.room, "one")
        assert [m["text"] for m in await c.history(fresh.room, before=MAX_SEQ)] == ["one"]
        assert await c.history(fresh.room, after=MAX_SEQ) == []


@pytest.mark.parametrize("type_", [5, 1.5, True, ["send"], {"t": "send"}])
async def test_non_string_type_is_an_error_and_stays_open(fresh: Fresh, type_: object) -> None:
    """A type that is not a string: the contract does not say bad_request or unknown_type."""
    frame = json.dumps({"type": type_, "room": fresh.room})
    await bad_frame_then_still_open(fresh, frame, {"bad_request", "unknown_type"})


async def test_bad_request_ref_is_the_client_id(fresh: Fresh) -> None:
    """ref = client_id when there is one, also on a send that is otherwise invalid."""
    async with parley_ws(fresh.server.ws_url, fresh.user.token) as c:
        await c.send_json({"type": "send", "room": fresh.room, "client_id": "cid-no-text"})
        event = await c.expect_error("bad_request")
        assert_error_shape(event, "bad_request", "cid-no-text")
        await c.send_json({"type": "send", "room": fresh.room, "text": 5, "client_id": "cid-int"})
        event = await c.expect_error("bad_request")
        assert_error_shape(event, "bad_request", "cid-int")
        await assert_still_open(c, fresh.room, expected_seq=1)


async def test_binary_frame_bad_request_and_stays_open(fresh: Fresh) -> None:
    """docs/protocol.md (ext): binary frames -> bad_request."""
    async with parley_ws(fresh.server.ws_url, fresh.user.token) as c:
        payload = json.dumps({"type": "send", "room": fresh.room, "text": "b", "client_id": "b"})
        await c.send_raw(payload.encode())
        await c.expect_error("bad_request")
        await assert_still_open(c, fresh.room, expected_seq=1)


# -- unknown_type -----------------------------------------------------------------------------


@pytest.mark.parametrize("type_", ["dance", "SEND", "Join", "", "send ", "hello", "x" * 1000])
async def test_unknown_type_and_stays_open(fresh: Fresh, type_: str) -> None:
    async with parley_ws(fresh.server.ws_url, fresh.user.token) as c:
        await c.send_json({"type": type_, "room": fresh.room})
        event = await c.expect_error("unknown_type")
        assert_error_shape(event, "unknown_type", None)
        await assert_still_open(c, fresh.room, expected_seq=1)


# -- too_large --------------------------------------------------------------------------------


async def test_text_over_4000_chars_too_large_not_stored(
    server: ServerProcess, api: AsyncApi, alice: User, bob: User
) -> None:
    async with parley_ws(server.ws_url, alice.token) as a, parley_ws(server.ws_url, bob.token) as b:
        await a.join_ok("general")
        await b.join_ok("general")
        cid = new_client_id()
        await a.send_text("general", "x" * 4001, cid)
        event = await a.expect_error("too_large")
        assert_error_shape(event, "too_large", cid)
        cid2 = new_client_id()
        await a.send_text("general", "🎉" * 4001, cid2)
        assert_error_shape(await a.expect_error("too_large"), "too_large", cid2)

        ok = await a.send_ok("general", "y" * 4000)
        assert ok["seq"] == 1
        emoji = await a.send_ok("general", "🎉" * 4000)
        assert emoji["seq"] == 2
        # the refused client_id was not used up: retrying it with a valid text stores it
        retry = await a.send_ok("general", "short", cid)
        assert retry["seq"] == 3

        seen = [await b.recv_type("message") for _ in range(3)]
        assert [len(m["text"]) for m in seen] == [4000, 4000, 5]
        assert len(b.seen_of("message")) == 3
    stored = await api.messages(alice.token, "general")
    assert [m["seq"] for m in stored] == [1, 2, 3]
    assert all(len(m["text"]) <= 4000 for m in stored)


async def test_large_frame_under_1mib_is_too_large_not_closed(fresh: Fresh) -> None:
    async with parley_ws(fresh.server.ws_url, fresh.user.token) as c:
        cid = new_client_id()
        await c.send_text(fresh.room, "z" * (MIB - 4096), cid)
        assert_error_shape(await c.expect_error("too_large"), "too_large", cid)
        await assert_still_open(c, fresh.room, expected_seq=1)


# -- rate_limited -----------------------------------------------------------------------------


async def test_rate_limited_with_retry_after(server_factory: ServerFactory) -> None:
    srv = server_factory(["--rate-limit", "3"])
    async with AsyncApi(srv.url) as api:
        alice = await api.register()
        bob = await api.register()
        async with parley_ws(srv.ws_url, alice.token) as a, parley_ws(srv.ws_url, bob.token) as b:
            acks = [await a.send_ok("general", f"m{i}") for i in range(3)]
            assert [x["seq"] for x in acks] == [1, 2, 3]
            cid = new_client_id()
            await a.send_text("general", "one too many", cid)
            event = await a.expect_error("rate_limited")
            assert_error_shape(event, "rate_limited", cid)
            retry_after = event["retry_after"]
            assert isinstance(retry_after, int | float), event
            assert not isinstance(retry_after, bool)
            assert 0 < retry_after <= 10, event
            # still open: a request that is not a send is answered
            history = await a.history("general")
            assert [m["seq"] for m in history] == [1, 2, 3]
            # the limit is per user: another connection of alice is limited too...
            async with parley_ws(srv.ws_url, alice.token) as a2:
                cid2 = new_client_id()
                await a2.send_text("general", "other tab", cid2)
                assert_error_shape(await a2.expect_error("rate_limited"), "rate_limited", cid2)
            # ...and REST as well (docs/protocol.md (ext): 429 + Retry-After)
            resp = await api.send_raw(alice.token, "general", "via rest", "r1")
            assert resp.status_code == 429, resp.text
            assert resp.json()["error"]["code"] == "rate_limited"
            assert int(resp.headers["retry-after"]) >= 1
            # ...but bob is not
            assert (await b.send_ok("general", "bob is fine"))["seq"] == 4
        stored = await api.messages(alice.token, "general")
        assert [(m["seq"], m["text"]) for m in stored] == [
            (1, "m0"),
            (2, "m1"),
            (3, "m2"),
            (4, "bob is fine"),
        ]


async def test_rate_limit_zero_is_off(server_factory: ServerFactory) -> None:
    srv = server_factory(["--rate-limit", "0"])
    async with AsyncApi(srv.url) as api:
        alice = await api.register()
        async with parley_ws(srv.ws_url, alice.token) as a:
            acks = [await a.send_ok("general", f"m{i}") for i in range(100)]
            assert [x["seq"] for x in acks] == list(range(1, 101))


async def test_default_rate_limit_allows_30(server: ServerProcess, alice: User) -> None:
    """Issue 3: default 30 messages per 10 s."""
    async with parley_ws(server.ws_url, alice.token) as a:
        for i in range(30):
            await a.send_text("general", f"m{i}")
        acks = [await a.recv_type("ack") for _ in range(30)]
        assert sorted(x["seq"] for x in acks) == list(range(1, 31))


# -- forbidden --------------------------------------------------------------------------------


async def test_forbidden_and_stays_open(guest_server: ServerProcess) -> None:
    """docs/protocol.md (ext): a guest outside `general` -> forbidden."""
    async with AsyncApi(guest_server.url) as api:
        owner = await api.register()
        await api.create_room(owner.token, "members")
        async with parley_ws(guest_server.ws_url) as guest:
            await guest.join("members")
            assert_error_shape(await guest.expect_error("forbidden"), "forbidden", None)
            cid = new_client_id()
            await guest.send_text("members", "hi", cid)
            assert_error_shape(await guest.expect_error("forbidden"), "forbidden", cid)
            await assert_still_open(guest, expected_seq=1)
        assert await api.messages(owner.token, "members") == []


# -- not_found --------------------------------------------------------------------------------


async def test_not_found_and_stays_open(fresh: Fresh) -> None:
    async with parley_ws(fresh.server.ws_url, fresh.user.token) as c:
        await c.join("nosuchroom")
        assert_error_shape(await c.expect_error("not_found"), "not_found", None)
        cid = new_client_id()
        await c.send_text("nosuchroom", "hello?", cid)
        assert_error_shape(await c.expect_error("not_found"), "not_found", cid)
        await c.ask_history("nosuchroom")
        assert_error_shape(await c.expect_error("not_found"), "not_found", None)
        await c.typing("nosuchroom")
        await c.expect_error("not_found")
        await assert_still_open(c, fresh.room, expected_seq=1)


async def test_many_errors_in_a_row_keep_the_connection(fresh: Fresh) -> None:
    async with parley_ws(fresh.server.ws_url, fresh.user.token) as c:
        frames: list[tuple[str, str]] = [
            ("{", "bad_request"),
            (json.dumps({"type": "nope"}), "unknown_type"),
            (json.dumps({"type": "join", "room": "nosuchroom"}), "not_found"),
            (
                json.dumps(
                    {"type": "send", "room": fresh.room, "text": "x" * 5000, "client_id": "b"}
                ),
                "too_large",
            ),
        ] * 5
        for raw, _ in frames:
            await c.send_raw(raw)
        codes = [(await c.recv_until(lambda e: e.get("type") == "error"))["code"] for _ in frames]
        assert codes == [code for _, code in frames]
        await assert_still_open(c, fresh.room, expected_seq=1)


# -- 1009 -------------------------------------------------------------------------------------


async def test_frame_over_1mib_closes_1009(
    server: ServerProcess, api: AsyncApi, alice: User, bob: User
) -> None:
    async with parley_ws(server.ws_url, bob.token) as b:
        await b.join_ok("general")
        big = await open_ws(server.ws_url, alice.token)
        frame = json.dumps(
            {"type": "send", "room": "general", "text": "x" * (MIB + 10), "client_id": "huge"}
        )
        assert len(frame) > MIB
        # The server closes at the frame's header: the rest may meet a broken pipe.
        with contextlib.suppress(ConnectionClosed):
            await big.send_raw(frame)
        assert await big.wait_closed() == 1009
        # the server is up and bob's socket still works; nothing was stored
        ack = await b.send_ok("general", "after the big one")
        assert ack["seq"] == 1
    assert [m["text"] for m in await api.messages(alice.token, "general")] == ["after the big one"]
