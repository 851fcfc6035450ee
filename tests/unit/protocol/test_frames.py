from __future__ import annotations

import json
import re
from typing import Final

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from parley.protocol import (
    Ack,
    Error,
    ErrorCode,
    HistoryReply,
    HistoryRequest,
    Join,
    Joined,
    Leave,
    Message,
    MessageEvent,
    ProtocolError,
    Read,
    Send,
    Typing,
    decode_client_frame,
    encode,
    quick_send,
)
from parley.protocol.fields import MAX_REQUEST_ID, ROOM_REF_PATTERN


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"type": "join", "room": "general"}, Join("general")),
        ({"type": "join", "room": "general", "since": 7}, Join("general", 7)),
        ({"type": "leave", "room": "a-b_1"}, Leave("a-b_1")),
        (
            {"type": "send", "room": "general", "text": "hi", "client_id": "c1"},
            Send("general", "hi", "c1"),
        ),
        ({"type": "history", "room": "general"}, HistoryRequest("general", limit=50)),
        (
            {"type": "history", "room": "r", "before": 9, "limit": 100},
            HistoryRequest("r", before=9, limit=100),
        ),
        ({"type": "typing", "room": "general", "extra": 1}, Typing("general")),
        ({"type": "read", "room": "general", "seq": 0}, Read("general", 0)),
        (
            {"type": "read", "room": "r~0123456789abcdef", "seq": 2**63 - 1},
            Read("r~0123456789abcdef", 2**63 - 1),
        ),
    ],
)
def test_decodes_every_client_frame(raw: dict[str, object], expected: object) -> None:
    assert decode_client_frame(json.dumps(raw)) == expected


@pytest.mark.parametrize(
    ("data", "code"),
    [
        ("not json", ErrorCode.BAD_REQUEST),
        ("[1, 2]", ErrorCode.BAD_REQUEST),
        ('"text"', ErrorCode.BAD_REQUEST),
        ("{}", ErrorCode.BAD_REQUEST),
        ('{"type": 5}', ErrorCode.BAD_REQUEST),
        ('{"type": null}', ErrorCode.BAD_REQUEST),
        ('{"type": "shout", "room": "general"}', ErrorCode.UNKNOWN_TYPE),
        ('{"type": "join"}', ErrorCode.BAD_REQUEST),
        ('{"type": "join", "room": "Not Valid"}', ErrorCode.BAD_REQUEST),
        ('{"type": "join", "room": "general", "since": -1}', ErrorCode.BAD_REQUEST),
        ('{"type": "send", "room": "general"}', ErrorCode.BAD_REQUEST),
        ('{"type": "send", "room": "general", "text": "no client_id"}', ErrorCode.BAD_REQUEST),
        ('{"type": "send", "room": "general", "text": 5}', ErrorCode.BAD_REQUEST),
        (
            '{"type": "send", "room": "general", "text": "x", "client_id": ""}',
            ErrorCode.BAD_REQUEST,
        ),
        ('{"type": "history", "room": "general", "limit": 0}', ErrorCode.BAD_REQUEST),
        ('{"type": "history", "room": "general", "limit": 101}', ErrorCode.BAD_REQUEST),
        ('{"type": "read", "room": "general"}', ErrorCode.BAD_REQUEST),
        ('{"type": "read", "room": "general", "seq": -1}', ErrorCode.BAD_REQUEST),
        ('{"type": "read", "room": "general", "seq": 9223372036854775808}', ErrorCode.BAD_REQUEST),
        ('{"type": "read", "room": "general", "seq": 1.5}', ErrorCode.BAD_REQUEST),
        ('{"type": "join", "room": "' + "a" * 65 + '"}', ErrorCode.BAD_REQUEST),
        ('{"a":' * 20_000 + "1" + "}" * 20_000, ErrorCode.BAD_REQUEST),
        ('{"type": "join", "room": ' + "[" * 50_000 + "]" * 50_000 + "}", ErrorCode.BAD_REQUEST),
    ],
)
def test_refusals_carry_the_fitting_code(data: str, code: ErrorCode) -> None:
    with pytest.raises(ProtocolError) as info:
        decode_client_frame(data)
    assert info.value.code is code
    assert info.value.message


def test_refusal_refers_to_the_client_id() -> None:
    with pytest.raises(ProtocolError) as info:
        decode_client_frame('{"type": "send", "room": "BAD", "text": "x", "client_id": "abc"}')
    assert info.value.ref == "abc"


@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_escape_as_other_errors(data: bytes) -> None:
    try:
        decode_client_frame(data)
    except ProtocolError as exc:
        assert exc.code in {ErrorCode.BAD_REQUEST, ErrorCode.UNKNOWN_TYPE}  # noqa: PT017


_SEND: Final = {"type": "send", "room": "general", "text": "hi", "client_id": "c1"}


@given(
    room=st.from_regex(r"[a-z0-9_-]{1,64}", fullmatch=True) | st.text(max_size=80),
    client_id=st.text(max_size=140),
    text=st.text(max_size=20),
    request_id=st.none() | st.integers(-1, MAX_REQUEST_ID + 1),
)
def test_quick_send_decodes_what_the_full_decoding_accepts(
    room: str, client_id: str, text: str, request_id: int | None
) -> None:
    """`quick_send` takes every send `decode_client_frame` takes, with the same fields; what
    it takes beyond those breaks only the room's or the client_id's pattern."""
    data = json.dumps(
        {**_SEND, "room": room, "client_id": client_id, "text": text, "id": request_id}
    )
    quick = quick_send(data)
    try:
        full = decode_client_frame(data)
    except ProtocolError as exc:
        refusal = exc.message
    else:
        assert isinstance(quick, Send)
        assert msgspec.structs.astuple(quick) == msgspec.structs.astuple(full)
        return
    if quick is not None:
        assert refusal.startswith(("room must be", "client_id must be")), refusal
        assert not re.search(ROOM_REF_PATTERN, room) or "\x00" in client_id


@pytest.mark.parametrize(
    "raw",
    [
        {"type": "join", "room": "general"},
        {**_SEND, "text": 5},
        {**_SEND, "client_id": ""},
        {**_SEND, "client_id": "x" * 129},
        {**_SEND, "reply_to": 0},
        {**_SEND, "attachments": ["f"] * 11},
        {**_SEND, "id": -1},
        [_SEND],
        {k: v for k, v in _SEND.items() if k != "type"},  # the full decoding wants a type
        {**_SEND, "type": "\x00"},
    ],
)
def test_quick_send_refuses_what_is_no_valid_send_otherwise(raw: object) -> None:
    assert quick_send(json.dumps(raw)) is None


def test_quick_send_refuses_what_is_no_json() -> None:
    assert quick_send("{not json") is None
    assert quick_send("[" * 50_000 + "]" * 50_000) is None


def test_message_event_is_a_message_plus_type() -> None:
    msg = Message("general", 3, "alice", "<b>hi</b>", "2026-01-01T00:00:00.000Z", "c")
    event = msgspec.json.decode(encode(MessageEvent(*msgspec.structs.astuple(msg))))
    assert event == {"type": "message", **msgspec.to_builtins(msg)}


def test_error_omits_retry_after_unless_rate_limited() -> None:
    plain = json.loads(encode(Error.from_exception(ProtocolError(ErrorCode.NOT_FOUND, "no"))))
    assert plain == {"type": "error", "code": "not_found", "message": "no", "ref": None}
    limited = ProtocolError(ErrorCode.RATE_LIMITED, "slow", ref="c9", retry_after=0.12345)
    assert json.loads(encode(Error.from_exception(limited)))["retry_after"] == 0.124  # up


def test_ack_shape() -> None:
    assert json.loads(encode(Ack("c1", "general", 4))) == {
        "type": "ack",
        "client_id": "c1",
        "room": "general",
        "seq": 4,
    }


# -- request ids ----------------------------------------------------------------------------

EVERY_CLIENT_FRAME = [
    {"type": "join", "room": "general"},
    {"type": "leave", "room": "general"},
    {"type": "send", "room": "general", "text": "hi", "client_id": "c1"},
    {"type": "history", "room": "general"},
    {"type": "typing", "room": "general"},
    {"type": "read", "room": "general", "seq": 1},
]


@pytest.mark.parametrize("raw", EVERY_CLIENT_FRAME, ids=lambda raw: str(raw["type"]))
@pytest.mark.parametrize("request_id", [0, 1, MAX_REQUEST_ID])
def test_every_client_frame_takes_a_request_id(raw: dict[str, object], request_id: int) -> None:
    assert decode_client_frame(json.dumps({**raw, "id": request_id})).request_id == request_id


@pytest.mark.parametrize("raw", EVERY_CLIENT_FRAME, ids=lambda raw: str(raw["type"]))
def test_no_id_and_a_null_id_are_both_no_id(raw: dict[str, object]) -> None:
    assert decode_client_frame(json.dumps(raw)).request_id is None
    assert decode_client_frame(json.dumps({**raw, "id": None})).request_id is None


@pytest.mark.parametrize(
    "bad_id", [-1, MAX_REQUEST_ID + 1, 2**64, 1.5, 1.0, "7", True, [], {}], ids=repr
)
def test_an_invalid_id_is_a_bad_request_that_echoes_no_id(bad_id: object) -> None:
    with pytest.raises(ProtocolError) as info:
        decode_client_frame(json.dumps({"type": "join", "room": "general", "id": bad_id}))
    assert info.value.code is ErrorCode.BAD_REQUEST
    assert info.value.message == f"id must be an integer from 0 to {MAX_REQUEST_ID}"
    assert info.value.request_id is None


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ({"type": "join", "room": "Not Valid"}, ErrorCode.BAD_REQUEST),
        ({"type": "send", "room": "general", "text": 5, "client_id": "c"}, ErrorCode.BAD_REQUEST),
        ({"type": "history", "room": "general", "limit": 0}, ErrorCode.BAD_REQUEST),
        ({"type": "shout"}, ErrorCode.UNKNOWN_TYPE),
        ({"type": 5}, ErrorCode.BAD_REQUEST),
        ({}, ErrorCode.BAD_REQUEST),
    ],
)
def test_a_refused_frame_with_a_valid_id_carries_it(
    raw: dict[str, object], code: ErrorCode
) -> None:
    with pytest.raises(ProtocolError) as info:
        decode_client_frame(json.dumps({**raw, "id": 42}))
    assert (info.value.code, info.value.request_id) == (code, 42)


def test_answers_without_a_request_id_have_no_id_field() -> None:
    answers = [
        Joined("general", 3, ["ann"]),
        Ack("c1", "general", 4),
        HistoryReply("general", []),
        Error.from_exception(ProtocolError(ErrorCode.NOT_FOUND, "no")),
    ]
    for answer in answers:
        assert "id" not in json.loads(encode(answer)), answer


def test_answers_echo_the_request_id() -> None:
    answers = [
        Joined("general", 3, ["ann"], 7),
        Ack("c1", "general", 4, 7),
        HistoryReply("general", [], 7),
        Error.from_exception(ProtocolError(ErrorCode.NOT_FOUND, "no", request_id=7)),
    ]
    for answer in answers:
        assert json.loads(encode(answer))["id"] == 7, answer


def test_a_refusal_never_says_retry_after_zero() -> None:
    """A wait under half a millisecond once rounded to "retry_after": 0.0 (a client that
    obeyed was refused again at once)."""
    for wait, said in ((0.0001, 0.001), (0.0015, 0.002), (1.0, 1.0), (2.5004, 2.501)):
        exc = ProtocolError(ErrorCode.RATE_LIMITED, "slow down", retry_after=wait)
        assert Error.from_exception(exc).retry_after == said
