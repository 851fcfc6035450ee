"""Who a message mentions (pure functions).

A mention is "@" + the longest run of [A-Za-z0-9_.-], its trailing "." and "-" dropped,
equal to a username ignoring case ("@bobx" is not bob; "@bob." is bob). The "@" must
start a word: "mail@bob.example" mentions nobody. Which of the names are users who may
read the room is the store's to say.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["mention_keys"]

_MENTION: Final = re.compile(r"(?<![A-Za-z0-9_.@-])@([A-Za-z0-9_.-]+)")
MAX_MENTIONS: Final = 50  # a message naming more is a broadcast, not a mention


def mention_keys(text: str) -> list[str]:
    """The names `text` mentions, lowercased, once each, in order of appearance."""
    if "@" not in text:  # the common case, without a regex
        return []
    keys: dict[str, None] = {}
    for found in _MENTION.finditer(text):
        name = found[1].rstrip(".-")
        if name:
            keys.setdefault(name.lower(), None)
            if len(keys) >= MAX_MENTIONS:
                break
    return list(keys)
