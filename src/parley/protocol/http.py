"""The HTTP API's bodies, query strings and answers as msgspec structs, and their decoders.

Every request body goes through `decode_body` and every query string through
`decode_query`: one typed decoder each, with the field rules of `parley.protocol.fields`
(shared with the socket frames). The OpenAPI document is generated from these same
structs (`parley.protocol.openapi`).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Annotated, Final, Literal, TypeVar

import msgspec
import msgspec.inspect as mi
from msgspec import UNSET, Meta, Struct, UnsetType

from parley.protocol.errors import ErrorCode, ProtocolError, wire_seconds
from parley.protocol.fields import (
    MAX_DM_USERS,
    Attachments,
    ClientId,
    Limit,
    LoginName,
    LoginPassword,
    Password,
    Private,
    RoomName,
    RoomRef,
    SendText,
    Seq,
    Target,
    Text,
    Topic,
    Username,
    decode_json,
    explain,
    reserved_username,
)
from parley.protocol.frames import Message, encode

__all__ = [
    "AdminUser",
    "AdminUserList",
    "AuditList",
    "AuditQuery",
    "AuditRecord",
    "CreateRoomBody",
    "DmBody",
    "DmEntry",
    "EditBody",
    "ErrorBody",
    "ErrorDetail",
    "HistoryQuery",
    "InviteBody",
    "InviteCode",
    "InviteCodeBody",
    "InviteCodeList",
    "Invited",
    "LoginBody",
    "Me",
    "MemberList",
    "MessageList",
    "NewInviteCode",
    "PasswordBody",
    "PostMessageBody",
    "ReadBody",
    "RegisterBody",
    "RoomEntry",
    "RoomList",
    "SearchHit",
    "SearchQuery",
    "SearchResults",
    "Session",
    "Settings",
    "TopicBody",
    "UserQuery",
    "decode_body",
    "decode_query",
    "error_body",
]

B = TypeVar("B", bound=Struct)

# Unknown fields are ignored, as on the socket: a newer client's extra field is no error.

# --- request bodies ---------------------------------------------------------------


InviteCodeText = Annotated[str, Meta(min_length=1, max_length=64, description="an invite code")]
RegistrationMode = Literal["open", "invite", "closed"]


class RegisterBody(Struct, frozen=True):
    username: Username
    password: Password
    invite: InviteCodeText | None = None  # needed when registration is invite-only

    def __post_init__(self) -> None:
        reason = reserved_username(self.username)
        if reason:
            raise ValueError(reason)


class LoginBody(Struct, frozen=True):
    username: LoginName
    password: LoginPassword


class PasswordBody(Struct, frozen=True):
    """POST /api/password (contract v2): the current password and the new one."""

    old: LoginPassword
    new: Password


class CreateRoomBody(Struct, frozen=True):
    room: RoomName
    private: Private = False


class InviteBody(Struct, frozen=True):
    username: Username


class PostMessageBody(Struct, frozen=True):
    text: SendText  # may be "" when it has attachments
    client_id: ClientId | None = None
    reply_to: Target | None = None
    attachments: Attachments = msgspec.field(default_factory=list)


class EditBody(Struct, frozen=True):
    """PATCH /api/rooms/{room}/messages/{seq}: the message's new text (its author only)."""

    text: Text


class TopicBody(Struct, frozen=True):
    """PATCH /api/rooms/{room}: the room's topic (its owner only)."""

    topic: Topic


class DmBody(Struct, frozen=True):
    """POST /api/dms: the people to talk with (the caller is one more)."""

    users: Annotated[
        list[Username],
        Meta(min_length=1, max_length=MAX_DM_USERS, description=f"1 to {MAX_DM_USERS} usernames"),
    ]


class ReadBody(Struct, frozen=True):
    """POST /api/rooms/{room}/read (contract v2): read up to `seq` (a lower one than the
    marker is ignored; a seq past the room's last seq counts as its last seq)."""

    seq: Seq


class Settings(Struct, frozen=True):
    """GET and PATCH /api/admin/settings: who may register (docs/protocol.md "Admin")."""

    registration: RegistrationMode


MIN_INVITE_SECONDS: Final = 60
MAX_INVITE_SECONDS: Final = 30 * 24 * 3600
DEFAULT_INVITE_SECONDS: Final = 7 * 24 * 3600


class InviteCodeBody(Struct, frozen=True):
    """POST /api/invites: how long the code stays valid, in seconds."""

    expires_in: Annotated[
        int,
        Meta(
            ge=MIN_INVITE_SECONDS,
            le=MAX_INVITE_SECONDS,
            description=f"seconds, {MIN_INVITE_SECONDS} to {MAX_INVITE_SECONDS}",
        ),
    ] = DEFAULT_INVITE_SECONDS


# --- query strings ----------------------------------------------------------------


class HistoryQuery(Struct, frozen=True):
    """GET /api/rooms/{room}/messages: after=S (the first N past S), before=S (the last N
    before S), neither (the latest N)."""

    before: Seq | None = None
    after: Seq | None = None
    limit: Limit = 50


SearchLimit = Annotated[int, Meta(ge=1, le=50, description="an integer from 1 to 50")]
MAX_QUERY_CHARS: Final = 6000  # room for 1,000 short words; only the first 20 count


class SearchQuery(Struct, frozen=True):
    """GET /api/search: the messages holding every word of `q` (each as a word's prefix,
    ignoring case and diacritics; the first 20 words count), newest first, from the rooms
    the user may read (only `room` when given)."""

    q: Annotated[
        str,
        Meta(
            min_length=1,
            max_length=MAX_QUERY_CHARS,
            pattern=r"\S",
            description="words (not blank)",
        ),
    ]
    room: RoomRef | None = None
    limit: SearchLimit = 20


class UserQuery(Struct, frozen=True):
    """GET /api/admin/users: accounts whose name holds `q` (ignoring case), by name,
    after the name `after`."""

    q: Annotated[str, Meta(max_length=64)] = ""
    after: Annotated[str, Meta(max_length=64)] | None = None
    limit: Limit = 50


class AuditQuery(Struct, frozen=True):
    """GET /api/admin/audit: the entries before id `before`, newest first."""

    before: Annotated[int, Meta(ge=1, le=2**63 - 1)] | None = None
    limit: Limit = 50


# --- answers ----------------------------------------------------------------------


class Session(Struct, frozen=True):
    """A new session: the bearer token (also set as the HttpOnly session cookie)."""

    username: str
    token: str


class Me(Struct, frozen=True):
    username: str
    admin: bool = False


class AdminUser(Struct, frozen=True):
    username: str
    admin: bool
    banned: bool
    created_at: str


class AdminUserList(Struct, frozen=True):
    users: list[AdminUser]


class NewInviteCode(Struct, frozen=True):
    """POST /api/invites: the code, and when it expires (ISO 8601 UTC)."""

    code: str
    expires_at: str


class InviteCode(Struct, frozen=True):
    """An invite code (ISO 8601 UTC times; `used_by` and `used_at` null until used)."""

    code: str
    created_by: str
    created_at: str
    expires_at: str
    used_by: str | None
    used_at: str | None


class InviteCodeList(Struct, frozen=True):
    invites: list[InviteCode]


class AuditRecord(Struct, frozen=True):
    id: int
    ts: str
    actor: str
    action: str
    target: str
    room: str | None


class AuditList(Struct, frozen=True):
    entries: list[AuditRecord]


class RoomEntry(Struct, frozen=True):
    room: str
    private: bool
    last_seq: int
    owner: str | None
    last_read: int = 0  # the user's read marker (contract v2): 0 when never set
    kind: str = "room"  # room | dm
    topic: str = ""
    unread: int = 0  # messages by others after last_read, not deleted
    mentions: int = 0  # those of them that mention the user
    members: list[str] | UnsetType = UNSET  # a DM's people, sorted (only for DMs)


class DmEntry(Struct, frozen=True):
    """A DM (POST /api/dms): how to call it, and who is in it."""

    room: str
    kind: str
    members: list[str]
    private: bool = True


class RoomList(Struct, frozen=True):
    rooms: list[RoomEntry]


class MemberList(Struct, frozen=True):
    members: list[str]


class Invited(Struct, frozen=True):
    room: str
    username: str


class MessageList(Struct, frozen=True):
    messages: list[Message]


class SearchHit(Message, frozen=True):
    """A message a search found, with where the query's words matched its text: [start,
    end) ranges in Unicode code points (not UTF-16 units), ascending."""

    matches: list[tuple[int, int]] = msgspec.field(default_factory=list)


class SearchResults(Struct, frozen=True):
    results: list[SearchHit]


class ErrorDetail(Struct, frozen=True):
    code: str
    message: str
    retry_after: float | UnsetType = UNSET  # with rate_limited: seconds to wait


class ErrorBody(Struct, frozen=True):
    """Every failure: {"error": {"code", "message"}} with a fitting status."""

    error: ErrorDetail


def error_body(code: ErrorCode, message: str, retry_after: float | None = None) -> bytes:
    """The JSON of an HTTP failure, wherever it is answered (API, handshake, connection)."""
    retry = UNSET if retry_after is None else wire_seconds(retry_after)
    return encode(ErrorBody(ErrorDetail(code.value, message, retry)))


# --- decoding ---------------------------------------------------------------------


@cache
def _decoder(cls: type[B]) -> msgspec.json.Decoder[B]:
    return msgspec.json.Decoder(cls)


def decode_body(data: bytes, cls: type[B]) -> B:
    """A JSON request body as `cls`, or a bad_request naming the field that is wrong."""
    decoder: msgspec.json.Decoder[B] = _decoder(cls)
    return decode_json(decoder, data, "body")


def decode_query(params: Mapping[str, str], cls: type[B]) -> B:
    """A query string as `cls`. Integer fields take plain decimal digits only (no sign,
    spaces, underscores, exponents or non-ASCII digits, all of which `int()` accepts)."""
    ints = _int_fields(cls)
    values: dict[str, object] = {}
    for name, raw in params.items():
        values.setdefault(name, _plain_int(raw) if name in ints else raw)  # first one wins
    try:
        query: B = msgspec.convert(values, cls)
    except msgspec.ValidationError as exc:
        raise ProtocolError(ErrorCode.BAD_REQUEST, explain(exc, cls, "query")) from None
    return query


_MAX_DIGITS: Final = 40  # far past any bound, far below int()'s own 4300-digit guard


def _plain_int(raw: str) -> int | str:
    """The integer `raw` spells in plain digits, else `raw` (which then fails as a string)."""
    if raw.isascii() and raw.isdigit() and len(raw) <= _MAX_DIGITS:
        return int(raw)
    return raw


@cache
def _int_fields(cls: type[Struct]) -> frozenset[str]:
    info = mi.type_info(cls)
    assert isinstance(info, mi.StructType)
    return frozenset(f.encode_name for f in info.fields if _is_int(f.type))


def _is_int(info: mi.Type) -> bool:
    if isinstance(info, mi.Metadata):
        return _is_int(info.type)
    if isinstance(info, mi.UnionType):
        return any(map(_is_int, info.types))
    return isinstance(info, mi.IntType)
