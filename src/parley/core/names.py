"""Validation of user-chosen names and secrets (pure functions)."""

from __future__ import annotations

import re
from typing import Final

from parley.protocol.fields import (
    MAX_PASSWORD,
    MIN_PASSWORD,
    PASSWORD_RULE,
    ROOM_PATTERN,
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
    "check_text",
    "check_username",
]

GENERAL: Final = "general"
# The same rules as the frames' and bodies' (parley.protocol.fields), so never two answers.
_USERNAME: Final = re.compile(USERNAME_PATTERN)
_ROOM: Final = re.compile(ROOM_PATTERN)


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
    if not isinstance(value, str) or not _ROOM.search(value):
        return f"room must be {ROOM_RULE}"
    return None


def check_text(value: str, max_chars: int) -> str | None:
    """None when the text may be posted; the reason otherwise (see also too_large)."""
    if not value.strip():
        return "text is empty"
    if len(value) > max_chars:
        return f"text is over {max_chars} characters"
    if "\x00" in value:  # PostgreSQL cannot store it in text; no chat needs it
        return "text contains a NUL character"
    return None
