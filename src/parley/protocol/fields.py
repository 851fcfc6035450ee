"""The rules for every field a client sends, written once: socket frames, HTTP bodies and
query strings, the OpenAPI document and the name checks of `parley.core` all use these.

Each rule is a msgspec-annotated type whose `description` completes the sentence
"FIELD must be ...", which is how a refused value is explained to the client.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Annotated, Final, TypeVar

import msgspec
import msgspec.inspect as mi
from msgspec import Meta

from parley.protocol.errors import ErrorCode, ProtocolError

__all__ = [
    "CLIENT_ID_PATTERN",
    "FILE_ID_PATTERN",
    "MAX_ATTACHMENTS",
    "MAX_CLIENT_ID",
    "MAX_DM_USERS",
    "MAX_EMOJI_CHARS",
    "MAX_PASSWORD",
    "MAX_REQUEST_ID",
    "MAX_SEQ",
    "MAX_TEXT_CHARS",
    "MAX_TOPIC_CHARS",
    "MIN_PASSWORD",
    "PASSWORD_RULE",
    "REQUEST_ID_RULE",
    "ROOM_PATTERN",
    "ROOM_REF_PATTERN",
    "ROOM_REF_RULE",
    "ROOM_RULE",
    "TAG_CHARS",
    "TAG_SEPARATOR",
    "USERNAME_PATTERN",
    "USERNAME_RULE",
    "Attachments",
    "ClientId",
    "Emoji",
    "Limit",
    "LoginName",
    "LoginPassword",
    "Password",
    "Private",
    "RequestId",
    "RoomName",
    "RoomRef",
    "SendText",
    "Seq",
    "Target",
    "Text",
    "Topic",
    "Username",
    "decode_json",
    "explain",
    "reserved_username",
]

T = TypeVar("T")


def _whole(body: str) -> str:
    """A pattern that must match the whole string, in msgspec (Python `re.search`) and in
    JSON Schema (ECMA 262) alike. Python's `$` also matches before a final newline:
    the lookahead refuses that ("general\\n" is not "general")."""
    return f"^{body}(?!\\n)$"


MAX_SEQ: Final = 2**63 - 1  # the largest SQLite INTEGER / PostgreSQL BIGINT
MAX_TEXT_CHARS: Final = 4000
MAX_TOPIC_CHARS: Final = 300
MAX_EMOJI_CHARS: Final = 32  # code points
MAX_DM_USERS: Final = 8  # the others in a DM (the caller is one more)
MAX_REQUEST_ID: Final = 2**53 - 1  # JavaScript's Number.MAX_SAFE_INTEGER: echoed exactly
MIN_PASSWORD: Final = 8
MAX_PASSWORD: Final = 256
_ROOM_NAME: Final = "[a-z0-9_-]{1,64}"
ROOM_PATTERN: Final = _whole(_ROOM_NAME)
TAG_SEPARATOR: Final = "~"
TAG_CHARS: Final = 16  # lowercase hex: 64 random bits
# A reference to a room: its name, or `name~tag` for a room of that name that another room
# the user sees first shadows (docs/protocol.md, "Room names").
ROOM_REF_PATTERN: Final = _whole(f"{_ROOM_NAME}(~[0-9a-f]{{{TAG_CHARS}}})?")
USERNAME_PATTERN: Final = _whole("[A-Za-z0-9_.-]{1,32}")
CLIENT_ID_PATTERN: Final = "^[^\\x00]*$"  # any characters but NUL, which no database stores
ROOM_RULE: Final = "1-64 characters of a-z 0-9 _ -"
ROOM_REF_RULE: Final = f"{ROOM_RULE}, optionally followed by ~ and the room's tag"
USERNAME_RULE: Final = "1-32 characters of A-Z a-z 0-9 _ . -"
PASSWORD_RULE: Final = f"{MIN_PASSWORD} to {MAX_PASSWORD} characters"
REQUEST_ID_RULE: Final = f"an integer from 0 to {MAX_REQUEST_ID}"

RoomName = Annotated[str, Meta(pattern=ROOM_PATTERN, description=ROOM_RULE)]
RoomRef = Annotated[str, Meta(pattern=ROOM_REF_PATTERN, description=ROOM_REF_RULE)]
Username = Annotated[str, Meta(pattern=USERNAME_PATTERN, description=USERNAME_RULE)]
Password = Annotated[
    str,
    Meta(
        min_length=MIN_PASSWORD,
        max_length=MAX_PASSWORD,
        description=PASSWORD_RULE,
    ),
]
# Signing in checks only the upper bound: a password set under an older, shorter minimum
# must still work, and a wrong one is a 401 like any other.
LoginPassword = Annotated[
    str, Meta(min_length=1, max_length=MAX_PASSWORD, description=f"1 to {MAX_PASSWORD} characters")
]
# Signing in takes any name up to the longest password: one that breaks the username rule
# is a name nobody has, a 401 like any other (the contract's answers: 200, 401, 429).
LoginName = Annotated[str, Meta(max_length=MAX_PASSWORD, description="the username")]
MAX_CLIENT_ID: Final = 128
ClientId = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=MAX_CLIENT_ID,
        pattern=CLIENT_ID_PATTERN,
        description="1-128 characters, no NUL",
    ),
]
# The upper bound is checked after decoding: a text over it is too_large, not bad_request
# (and so is "not all blank", which JSON Schema and Python regexes do not agree on).
Text = Annotated[
    str,
    Meta(min_length=1, description=f"a string of 1 to {MAX_TEXT_CHARS} characters, not all blank"),
]
# A send's text: empty only with attachments (chat.py checks that and the upper bound).
SendText = Annotated[
    str,
    Meta(
        description=f"a string of up to {MAX_TEXT_CHARS} characters, not all blank"
        " (empty only with attachments)"
    ),
]
MAX_ATTACHMENTS: Final = 10
# A file's id (server/files.py `new_file_id`): 26 characters of lowercase base32.
FILE_ID_PATTERN: Final = _whole("[a-z2-7]{26}")
Attachments = Annotated[
    list[Annotated[str, Meta(max_length=64)]],
    Meta(
        max_length=MAX_ATTACHMENTS,
        description=f"a list of at most {MAX_ATTACHMENTS} file ids, each uploaded by the sender",
    ),
]
Seq = Annotated[int, Meta(ge=0, le=MAX_SEQ, description=f"an integer from 0 to {MAX_SEQ}")]
# The seq of an event a frame points at (a message to reply to, edit, delete, react to).
Target = Annotated[int, Meta(ge=1, le=MAX_SEQ, description=f"an integer from 1 to {MAX_SEQ}")]
# The code-point bound is checked after decoding (JSON Schema counts UTF-16 units).
Emoji = Annotated[str, Meta(min_length=1, description=f"1 to {MAX_EMOJI_CHARS} characters")]
Topic = Annotated[
    str, Meta(max_length=MAX_TOPIC_CHARS, description=f"0 to {MAX_TOPIC_CHARS} characters")
]
Limit = Annotated[int, Meta(ge=1, le=100, description="an integer from 1 to 100")]
Private = Annotated[bool, Meta(description="true or false")]
# A client frame's request id, echoed on the frame's direct answers (docs/protocol.md,
# "Request ids"). An integer any JSON reader holds exactly, a JavaScript number included.
RequestId = Annotated[int, Meta(ge=0, le=MAX_REQUEST_ID, description=REQUEST_ID_RULE)]


def reserved_username(name: str) -> str | None:
    """Why `name` may not be taken by an account (guests' names), or None."""
    if name.lower().startswith("guest-"):
        return "names starting with guest- are kept for guests"
    return None


# --- decoding and explaining ------------------------------------------------------

_AT: Final = re.compile(r" - at `\$\.([A-Za-z_][A-Za-z0-9_]*)`$")
_MISSING: Final = re.compile(r"^Object missing required field `([^`]*)`")


def decode_json(decoder: msgspec.json.Decoder[T], data: bytes | str, what: str) -> T:
    """Decode with a typed decoder; any failure is a bad_request that says what is wrong.

    `what` names the thing decoded ("body", "frame") in the messages. For a Struct type
    the messages state the broken field's rule (see `explain`)."""
    try:
        return decoder.decode(data)
    except msgspec.ValidationError as exc:
        raise ProtocolError(ErrorCode.BAD_REQUEST, explain(exc, decoder.type, what)) from None
    except msgspec.DecodeError as exc:
        raise ProtocolError(ErrorCode.BAD_REQUEST, f"{what} is not valid JSON ({exc})") from None
    except RecursionError:  # msgspec's guard against hostile nesting; nothing is left half-done
        raise ProtocolError(ErrorCode.BAD_REQUEST, f"{what} is nested too deeply") from None


def explain(exc: msgspec.DecodeError, cls: object, what: str) -> str:
    """A refused value in words: "room must be 1-64 characters of a-z 0-9 _ -" rather than
    msgspec's "Expected `str` matching regex ... - at `$.room`"."""
    message = str(exc)
    if (found := _AT.search(message)) is not None:
        rule = _rules(cls).get(found[1])
        return f"{found[1]} must be {rule}" if rule else message
    if (missing := _MISSING.match(message)) is not None:
        return f"{missing[1]} is required"
    if message.startswith("Expected `object`"):
        return f"{what} must be a JSON object"
    return message


@cache
def _rules(cls: object) -> dict[str, str]:
    """field name -> its rule's description, for a Struct type."""
    info = mi.type_info(cls)
    if not isinstance(info, mi.StructType):
        return {}
    return {f.encode_name: d for f in info.fields if (d := _description(f.type))}


def _description(info: mi.Type) -> str | None:
    if isinstance(info, mi.Metadata):
        return (info.extra_json_schema or {}).get("description") or _description(info.type)
    if isinstance(info, mi.UnionType):
        return next(filter(None, map(_description, info.types)), None)
    return None
