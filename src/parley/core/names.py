"""Validation of user-chosen names and secrets (pure functions)."""

from __future__ import annotations

import re
from typing import Final

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
MIN_PASSWORD: Final = 8
MAX_PASSWORD: Final = 256
_USERNAME: Final = re.compile(r"[A-Za-z0-9_.-]{1,32}")
_ROOM: Final = re.compile(r"[a-z0-9_-]{1,64}")


def check_username(value: object) -> str | None:
    """None when valid, else the reason."""
    if not isinstance(value, str) or not _USERNAME.fullmatch(value):
        return "username must be 1-32 characters of A-Z a-z 0-9 _ . -"
    if value.lower().startswith("guest-"):
        return "names starting with guest- are kept for guests"
    return None


def check_password(value: object) -> str | None:
    if not isinstance(value, str) or not MIN_PASSWORD <= len(value) <= MAX_PASSWORD:
        return f"password must be {MIN_PASSWORD} to {MAX_PASSWORD} characters"
    return None


def check_room(value: object) -> str | None:
    if not isinstance(value, str) or not _ROOM.fullmatch(value):
        return "room must be 1-64 characters of a-z 0-9 _ -"
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
