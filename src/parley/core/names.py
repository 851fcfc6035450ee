"""Validation of user-chosen names, secrets and texts, and how a text shows on one line
(pure functions)."""

from __future__ import annotations

import re
from typing import Final

from parley.protocol.errors import ErrorCode, ProtocolError
from parley.protocol.fields import (
    MAX_PASSWORD,
    MIN_PASSWORD,
    PASSWORD_RULE,
    ROOM_PATTERN,
    ROOM_REF_PATTERN,
    ROOM_REF_RULE,
    ROOM_RULE,
    USERNAME_PATTERN,
    USERNAME_RULE,
    reserved_username,
)

__all__ = [
    "GENERAL",
    "MAX_PASSWORD",
    "MIN_PASSWORD",
    "check_password",
    "check_room",
    "check_room_ref",
    "check_text",
    "check_username",
    "one_line",
    "text_refusal",
]

GENERAL: Final = "general"
# The same rules as the frames' and bodies' (parley.protocol.fields), so never two answers.
_USERNAME: Final = re.compile(USERNAME_PATTERN)
_ROOM: Final = re.compile(ROOM_PATTERN)
_ROOM_REF: Final = re.compile(ROOM_REF_PATTERN)

# What shows as nothing: white space, control characters, Unicode's default-ignorable code
# points (zero-width spaces and joiners, the BOM, bidi marks and controls, variation
# selectors, Hangul fillers, tags, ...), the braille blank, the Khitan filler and the
# interlinear annotation controls. A text of only these would be a message nobody can see.
_INVISIBLE: Final = (
    "\\s\x00-\x1f\x7f-\x9f\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f"
    "\u200b-\u200f\u202a-\u202e\u2060-\u206f\u2800\u3164\ufe00-\ufe0f\ufeff\uffa0"
    "\ufff0-\ufffb\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U00016fe4\U000e0000-\U000e0fff"
)
_VISIBLE: Final = re.compile(f"[^{_INVISIBLE}]")

# What may break or reorder a line: control characters (newlines, carriage returns, escape
# sequences, C1 controls with NEL), the line and paragraph separators, and the bidi
# embeddings, overrides and isolates (the "Trojan Source" characters).
_LINE_BREAKING: Final = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_SHORT_ESCAPES: Final = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def check_username(value: object) -> str | None:
    """None when valid, else the reason."""
    if not isinstance(value, str) or not _USERNAME.search(value):
        return f"username must be {USERNAME_RULE}"
    return reserved_username(value)


def check_password(value: object) -> str | None:
    if not isinstance(value, str) or not MIN_PASSWORD <= len(value) <= MAX_PASSWORD:
        return f"password must be {PASSWORD_RULE}"
    return None


def check_room(value: object) -> str | None:
    """A new room's name."""
    if not isinstance(value, str) or not _ROOM.search(value):
        return f"room must be {ROOM_RULE}"
    return None


def check_room_ref(value: object) -> str | None:
    """A reference to a room (core/roomnames.py)."""
    if not isinstance(value, str) or not _ROOM_REF.search(value):
        return f"room must be {ROOM_REF_RULE}"
    return None


def check_text(value: str, max_chars: int) -> str | None:
    """None when the text may be posted; the reason otherwise (see also too_large)."""
    # A first character from "!" to "~" is visible: most texts need no search for one.
    if not "!" <= value[:1] <= "~" and _VISIBLE.search(value) is None:
        return "text is empty or only invisible characters"
    if len(value) > max_chars:
        return f"text is over {max_chars} characters"
    if "\x00" in value:  # PostgreSQL cannot store it in text; no chat needs it
        return "text contains a NUL character"
    return None


def text_refusal(text: str, max_chars: int) -> ProtocolError | None:
    """What a send of `text` is answered with, or None when it may be posted: too_large
    when the text is longer than `max_chars` (whatever else is wrong with it), so a client
    knows that shortening it is the cure; bad_request otherwise."""
    reason = check_text(text, max_chars)
    if reason is None:
        return None
    code = ErrorCode.TOO_LARGE if len(text) > max_chars else ErrorCode.BAD_REQUEST
    return ProtocolError(code, reason)


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    return _SHORT_ESCAPES.get(char) or f"\\u{ord(char):04x}"


def one_line(text: str) -> str:
    """`text` for a line-oriented reader (plain-text mode): one message is one line, so
    newlines, other control characters, line separators and bidi controls are written as
    `\\n`, `\\r`, `\\t` or `\\uXXXX`. For display only: a backslash is left as it is."""
    return _LINE_BREAKING.sub(_escape, text)
