"""The HTTP bodies and query strings: one typed decoder, field rules shared with the frames."""

from __future__ import annotations

import json
import re
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from parley.core import check_room, check_username
from parley.protocol import ErrorCode, ProtocolError, decode_client_frame
from parley.protocol.fields import MAX_SEQ, RoomName, Username
from parley.protocol.http import (
    CreateRoomBody,
    HistoryQuery,
    LoginBody,
    MessageList,
    PostMessageBody,
    RegisterBody,
    RoomEntry,
    decode_body,
    decode_query,
)
from parley.protocol.openapi import Operation, Route, openapi_document


def refusal(fn: Any, *args: Any) -> str:
    with pytest.raises(ProtocolError) as caught:
        fn(*args)
    assert caught.value.code is ErrorCode.BAD_REQUEST
    return caught.value.message


def test_bodies_decode_to_their_structs() -> None:
    assert decode_body(b'{"room": "a-b_1"}', CreateRoomBody) == CreateRoomBody("a-b_1", False)
    body = decode_body(b'{"text": "hi", "client_id": "c", "extra": 1}', PostMessageBody)
    assert body == PostMessageBody("hi", "c")
    assert decode_body(b'{"username": "Al", "password": "x"}', LoginBody).username == "Al"


@pytest.mark.parametrize(
    ("data", "cls", "message"),
    [
        (b"{", CreateRoomBody, "body is not valid JSON"),
        (b"[]", CreateRoomBody, "body must be a JSON object"),
        (b"{}", CreateRoomBody, "room is required"),
        (b'{"room": "general\\n"}', CreateRoomBody, "room must be 1-64 characters"),
        (b'{"room": "ok", "private": 1}', CreateRoomBody, "private must be true or false"),
        (b'{"username": "guest-1", "password": "12345678"}', RegisterBody, "names starting"),
        (b'{"username": "bob", "password": "1234567"}', RegisterBody, "password must be 8 to"),
        (b'{"text": "t", "client_id": ""}', PostMessageBody, "client_id must be 1-128"),
        (b'{"a":' * 50_000 + b"1" + b"}" * 50_000, LoginBody, "body is nested too deeply"),
    ],
)
def test_a_refused_body_says_which_field(data: bytes, cls: type[Any], message: str) -> None:
    assert refusal(decode_body, data, cls).startswith(message)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, HistoryQuery()),
        ({"after": "7", "limit": "100"}, HistoryQuery(after=7, limit=100)),
        ({"before": str(MAX_SEQ), "token": "ignored"}, HistoryQuery(before=MAX_SEQ)),
    ],
)
def test_query_strings_decode(params: dict[str, str], expected: HistoryQuery) -> None:
    assert decode_query(params, HistoryQuery) == expected


@pytest.mark.parametrize(
    "value", [str(MAX_SEQ + 1), "9" * 5000, "-1", "+1", " 1", "1_0", "١", "1e3", "1.0", "", "null"]
)
def test_query_integers_are_plain_digits_within_the_store(value: str) -> None:
    message = refusal(decode_query, {"before": value}, HistoryQuery)
    assert message == f"before must be an integer from 0 to {MAX_SEQ}"


@pytest.mark.parametrize("field", ["before", "after", "since"])
def test_frames_bound_seqs_as_the_bodies_do(field: str) -> None:
    kind = "join" if field == "since" else "history"
    frame = {"type": kind, "room": "general", field: MAX_SEQ + 1}
    message = refusal(decode_client_frame, json.dumps(frame))
    assert message == f"{field} must be an integer from 0 to {MAX_SEQ}"


@given(st.text(max_size=70) | st.from_regex(r"[a-z0-9_\n-]{1,66}", fullmatch=True))
def test_room_rule_is_the_same_everywhere(name: str) -> None:
    try:
        msgspec.convert(name, RoomName)
        struct_ok = True
    except msgspec.ValidationError:
        struct_ok = False
    assert struct_ok == (check_room(name) is None) == bool(re.fullmatch("[a-z0-9_-]{1,64}", name))


@given(st.text(max_size=40) | st.from_regex(r"[A-Za-z0-9_.\n-]{1,34}", fullmatch=True))
def test_username_rule_is_the_same_everywhere(name: str) -> None:
    try:
        msgspec.convert(name, Username)
        struct_ok = not name.lower().startswith("guest-")
    except msgspec.ValidationError:
        struct_ok = False
    assert struct_ok == (check_username(name) is None)


def test_openapi_describes_bodies_queries_and_statuses() -> None:
    doc = openapi_document(
        [
            Route("POST", "/api/rooms", "create", Operation("c", RoomEntry, 201, CreateRoomBody)),
            Route(
                "GET",
                "/api/rooms/{room}/messages",
                "history",
                Operation("h", MessageList, query=HistoryQuery),
            ),
            Route("POST", "/api/login", "login", Operation("l", None, body=LoginBody, auth=False)),
        ],
        title="t",
        version="1",
        cookie="c",
    )
    create = doc["paths"]["/api/rooms"]["post"]
    assert set(create["responses"]) == {"201", "400", "401", "403", "413", "415", "429", "503"}
    history = doc["paths"]["/api/rooms/{room}/messages"]["get"]
    assert set(history["responses"]) == {"200", "400", "401", "404", "503"}
    params = {p["name"]: p for p in history["parameters"]}
    assert params["room"]["in"] == "path"
    assert params["after"]["schema"] == {
        "type": "integer",
        "minimum": 0,
        "maximum": MAX_SEQ,
        "description": f"an integer from 0 to {MAX_SEQ}",
    }
    assert params["limit"]["schema"]["default"] == 50
    assert doc["paths"]["/api/login"]["post"]["security"] == []
    # every reference resolves
    refs = re.findall(r'"\$ref":\s*"#/components/schemas/([^"]+)"', json.dumps(doc))
    assert refs
    assert set(refs) <= set(doc["components"]["schemas"])
