"""parley.v1 frames as msgspec structs, and the one decoder for client frames.

Every frame is a JSON object whose `type` field names it. Client frames are
decoded in one pass into a tagged union; only when that fails do we decode a
second, loose time to tell the client *which* error it made.

Any client frame may carry a request id (`id`); the frame's direct answers (joined, ack,
history, error) echo it, and a frame without one gets answers without one.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType, field

from parley.protocol.errors import ErrorCode, ProtocolError, wire_seconds
from parley.protocol.fields import (
    CLIENT_ID_PATTERN,
    MAX_CLIENT_ID,
    MAX_REQUEST_ID,
    MAX_TEXT_CHARS,
    Attachments,
    ClientId,
    Emoji,
    Limit,
    RequestId,
    RoomRef,
    SendText,
    Seq,
    Target,
    Text,
    Topic,
    explain,
)

__all__ = [
    "CLIENT_ID_PATTERN",
    "MAX_TEXT_CHARS",
    "AccountChanged",
    "Ack",
    "Change",
    "ChangeEvent",
    "ClientFrame",
    "Delete",
    "DeleteEvent",
    "Edit",
    "EditEvent",
    "Error",
    "File",
    "Hello",
    "HistoryReply",
    "HistoryRequest",
    "Join",
    "Joined",
    "Leave",
    "MemberEvent",
    "Message",
    "MessageEvent",
    "Notify",
    "Presence",
    "ProtocolError",
    "React",
    "ReactionEvent",
    "Read",
    "ReadEvent",
    "Removed",
    "RoomEvent",
    "RoomInfo",
    "Send",
    "ServerFrame",
    "SetTopic",
    "TopicEvent",
    "Typing",
    "TypingEvent",
    "as_event",
    "as_message",
    "decode_client_frame",
    "encode",
    "quick_send",
    "reply_id",
]

# --- client -> server -------------------------------------------------------
#
# Every frame and message is a frozen tree of plain values, which can never be part of a
# reference cycle: `gc=False` keeps them out of the cycle collector (one is made per send,
# ack and event; tracking them cost 1.5% of an ingested message's instructions).


class _ClientFrame(
    Struct, tag_field="type", forbid_unknown_fields=False, frozen=True, kw_only=True, gc=False
):
    # null is no id, as for the other optional fields
    request_id: RequestId | None = field(default=None, name="id")


class Join(_ClientFrame, tag="join", frozen=True):
    room: RoomRef
    since: Seq | None = None


class Leave(_ClientFrame, tag="leave", frozen=True):
    room: RoomRef


class Send(_ClientFrame, tag="send", frozen=True):
    room: RoomRef
    text: SendText  # may be "" when it has attachments (checked after decoding)
    client_id: ClientId  # required: it is what makes a resend safe
    reply_to: Target | None = None
    attachments: Attachments = field(default_factory=list)


class Edit(_ClientFrame, tag="edit", frozen=True):
    """Change the text of one's own message (contract v2)."""

    room: RoomRef
    target: Target
    text: Text
    client_id: ClientId


class Delete(_ClientFrame, tag="delete", frozen=True):
    """Take a message back: its author, or the room's owner."""

    room: RoomRef
    target: Target
    client_id: ClientId


class React(_ClientFrame, tag="react", frozen=True):
    """Add (`on`) or take back one's reaction `emoji` to a message."""

    room: RoomRef
    target: Target
    emoji: Emoji
    on: bool
    client_id: ClientId


class SetTopic(_ClientFrame, tag="topic", frozen=True):
    """The room's topic (its owner only)."""

    room: RoomRef
    topic: Topic
    client_id: ClientId


class HistoryRequest(_ClientFrame, tag="history", frozen=True):
    room: RoomRef
    before: Seq | None = None
    after: Seq | None = None
    limit: Limit = 50


class Typing(_ClientFrame, tag="typing", frozen=True):
    room: RoomRef


class Read(_ClientFrame, tag="read", frozen=True):
    """The user has read the room up to `seq` (contract v2): no answer on success."""

    room: RoomRef
    seq: Seq


ClientFrame = (
    Join | Leave | Send | HistoryRequest | Typing | Read | Edit | Delete | React | SetTopic
)
Change = Edit | Delete | React | SetTopic  # the frames that store an event other than a message

_CLIENT_TYPES: Final = {
    cls.__struct_config__.tag: cls
    for cls in (Join, Leave, Send, HistoryRequest, Typing, Read, Edit, Delete, React, SetTopic)
}
_client_decoder: Final = msgspec.json.Decoder(ClientFrame)


class _Probe(Struct, forbid_unknown_fields=False):
    """The loose shape used only to explain a frame that failed to decode."""

    type: Any = None
    client_id: Any = None
    request_id: Any = field(default=None, name="id")


_probe_decoder: Final = msgspec.json.Decoder(_Probe)


def decode_client_frame(data: str | bytes) -> ClientFrame:
    """Decode one text frame, or raise ProtocolError with the fitting code."""
    try:
        frame: ClientFrame = _client_decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise _explain(data, exc) from None
    except RecursionError:  # msgspec's guard against hostile nesting; nothing is left half-done
        raise ProtocolError(ErrorCode.BAD_REQUEST, "JSON is nested too deeply") from None
    return frame


class _UncheckedSend(Send, tag="send", frozen=True):
    """A send whose `room` and `client_id` patterns are left to the caller (`quick_send`)."""

    room: str
    client_id: Annotated[str, Meta(min_length=1, max_length=MAX_CLIENT_ID)]


class _NeverSent(Struct, tag="\x00", frozen=True):
    """No frame's type: with it, `_UncheckedSend` is decoded as one of a tagged union,
    where the tag (`type`) is required, as in `decode_client_frame` (alone, a tagged
    struct takes a frame without `type` too)."""


_quick_send_decoder: Final = msgspec.json.Decoder(_UncheckedSend | _NeverSent)


def quick_send(data: str | bytes) -> Send | None:
    """A send frame decoded without the pattern checks of `room` and `client_id`, which
    cost more than the rest of its decoding (two regular expressions run from C); None
    if `data` is no send that decodes so. Every other rule holds.

    The caller must check those two itself before it acts on the frame, and give it to
    `decode_client_frame` when either fails (which then says what is wrong, exactly as
    for any frame): a socket's sends name rooms it already uses, whose references passed
    `decode_client_frame` once, and `client_id`'s pattern only refuses NUL."""
    try:
        frame = _quick_send_decoder.decode(data)
    except (msgspec.DecodeError, RecursionError):
        return None
    return frame if isinstance(frame, Send) else None


def _explain(data: str | bytes, exc: msgspec.DecodeError) -> ProtocolError:
    try:
        probe = _probe_decoder.decode(data)
    except (msgspec.DecodeError, RecursionError):
        return ProtocolError(ErrorCode.BAD_REQUEST, "frame is not a JSON object")
    ref = probe.client_id if isinstance(probe.client_id, str) else None
    request_id = _readable_id(probe.request_id)
    if not isinstance(probe.type, str):
        code, message = ErrorCode.BAD_REQUEST, "`type` must be a string"
    elif (cls := _CLIENT_TYPES.get(probe.type)) is None:
        code, message = ErrorCode.UNKNOWN_TYPE, f"unknown type {probe.type!r}"
    else:
        code, message = ErrorCode.BAD_REQUEST, explain(exc, cls, "frame")
    return ProtocolError(code, message, ref, request_id=request_id)


def _readable_id(value: object) -> int | None:
    """A refused frame's `id`, if it is a valid one: its error echoes it, so the client can
    tell which request failed. An invalid id is not echoed (the error is then about it)."""
    if type(value) is int and 0 <= value <= MAX_REQUEST_ID:  # not a bool
        return value
    return None


# --- server -> client -------------------------------------------------------


class File(Struct, frozen=True):
    """An uploaded file (contract v2): what POST /api/files answers and a message's
    attachments list. `width` and `height` only for images."""

    id: str
    name: str
    type: str
    size: int
    width: int | UnsetType = UNSET
    height: int | UnsetType = UNSET


class Message(Struct, frozen=True, gc=False):
    """A chat message as it is now (edits applied; a tombstone once deleted): the unit of
    history, REST and live delivery."""

    room: str
    seq: int
    username: str
    text: str
    ts: str
    client_id: str | None = None
    reply_to: int | None = None
    edited: str | None = None  # when it was last edited
    deleted: bool = False
    # emoji -> who reacted, in the order they did
    reactions: dict[str, list[str]] = field(default_factory=dict)
    mentions: list[str] = field(default_factory=list)
    attachments: list[File] = field(default_factory=list)  # [] once deleted


class _ServerFrame(Struct, tag_field="type", frozen=True, gc=False):
    pass


class MessageEvent(Message, tag_field="type", tag="message", frozen=True):
    """A Message as a live event (the same fields plus `type`). The stores make a new
    message as one already: it is published as it is, not copied field by field."""


def as_event(msg: Message) -> MessageEvent:
    """`msg` as a live event."""
    return msg if type(msg) is MessageEvent else MessageEvent(*msgspec.structs.astuple(msg))


def as_message(msg: Message) -> Message:
    """`msg` as a plain Message (where the contract has no `type` field: REST)."""
    return msg if type(msg) is Message else Message(*msgspec.structs.astuple(msg))


# The other events of a room's log (contract v2): each has the room's next seq, like a
# message, and reaches the room's sockets and a replay the same way. `username` is who
# acted (for a member event: whose membership changed, `by` who changed it).


class EditEvent(_ServerFrame, tag="edit", frozen=True, kw_only=True):
    room: str
    seq: int
    username: str
    ts: str
    target: int
    text: str
    client_id: str | None = None


class DeleteEvent(_ServerFrame, tag="delete", frozen=True, kw_only=True):
    room: str
    seq: int
    username: str
    ts: str
    target: int
    client_id: str | None = None


class ReactionEvent(_ServerFrame, tag="reaction", frozen=True, kw_only=True):
    room: str
    seq: int
    username: str
    ts: str
    target: int
    emoji: str
    on: bool
    client_id: str | None = None


class TopicEvent(_ServerFrame, tag="topic", frozen=True, kw_only=True):
    room: str
    seq: int
    username: str
    ts: str
    topic: str
    client_id: str | None = None


class MemberEvent(_ServerFrame, tag="member", frozen=True, kw_only=True):
    room: str
    seq: int
    username: str
    ts: str
    change: str  # joined | invited | left | removed
    by: str
    client_id: str | None = None


RoomEvent = MessageEvent | EditEvent | DeleteEvent | ReactionEvent | TopicEvent | MemberEvent
ChangeEvent = EditEvent | DeleteEvent | ReactionEvent | TopicEvent | MemberEvent


class RoomInfo(Struct, frozen=True, omit_defaults=False):
    room: str
    last_seq: int
    last_read: int = 0  # the user's read marker (contract v2)
    kind: str = "room"  # room | dm
    topic: str = ""
    unread: int = 0  # messages by others after last_read, not deleted
    mentions: int = 0  # those of them that mention the user
    private: bool = False
    members: list[str] | UnsetType = UNSET  # a DM's people, sorted (only for DMs)


class Hello(_ServerFrame, tag="hello", frozen=True):
    username: str
    rooms: list[RoomInfo]
    admin: bool = False  # the user is a server admin (docs/protocol.md "Admin")


# The answers to one client frame: each echoes the frame's request id, and has no `id`
# field at all for a frame without one (UNSET is never encoded).


class Joined(_ServerFrame, tag="joined", frozen=True):
    room: str
    last_seq: int
    online: list[str]
    request_id: int | UnsetType = field(default=UNSET, name="id")


class Ack(_ServerFrame, tag="ack", frozen=True):
    client_id: str
    room: str
    seq: int
    request_id: int | UnsetType = field(default=UNSET, name="id")


class HistoryReply(_ServerFrame, tag="history", frozen=True):
    room: str
    messages: list[Message]
    request_id: int | UnsetType = field(default=UNSET, name="id")


class TypingEvent(_ServerFrame, tag="typing", frozen=True):
    room: str
    username: str


class ReadEvent(_ServerFrame, tag="read", frozen=True):
    """The user's read marker moved (to the user's other sockets)."""

    room: str
    seq: int


class Notify(_ServerFrame, tag="notify", frozen=True):
    """A message for the user (a mention, or in their DM) in a room this socket has not
    joined."""

    room: str
    seq: int
    username: str
    text: str


class AccountChanged(_ServerFrame, tag="account", frozen=True):
    """The user's own account changed while they are connected: an admin granted or revoked
    their server-admin role (docs/protocol.md "Admin"). `hello` carries the same at connect."""

    admin: bool


class Removed(_ServerFrame, tag="removed", frozen=True):
    """The user was removed from (or left) the room: it is not_found to them from now on."""

    room: str


class Presence(_ServerFrame, tag="presence", frozen=True):
    room: str
    username: str
    online: bool


class Error(_ServerFrame, tag="error", frozen=True):
    code: str
    message: str
    ref: str | None = None
    retry_after: float | UnsetType = UNSET
    request_id: int | UnsetType = field(default=UNSET, name="id")

    @classmethod
    def from_exception(cls, exc: ProtocolError) -> Error:
        retry = UNSET if exc.retry_after is None else wire_seconds(exc.retry_after)
        return cls(
            code=exc.code.value,
            message=exc.message,
            ref=exc.ref,
            retry_after=retry,
            request_id=reply_id(exc.request_id),
        )


def reply_id(request_id: int | None) -> int | UnsetType:
    """The `id` field of an answer to a frame whose id was `request_id`: none for none."""
    return UNSET if request_id is None else request_id


ServerFrame = (
    MessageEvent
    | EditEvent
    | DeleteEvent
    | ReactionEvent
    | TopicEvent
    | MemberEvent
    | Hello
    | Joined
    | Ack
    | HistoryReply
    | TypingEvent
    | ReadEvent
    | Notify
    | Removed
    | AccountChanged
    | Presence
    | Error
)

# JSON bytes of a frame (or of an HTTP body): the encoder's own method, called per ack and
# per event delivered, so no Python function around it.
encode: Final = msgspec.json.Encoder().encode
