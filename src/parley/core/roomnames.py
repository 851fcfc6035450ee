"""Which room a name means to whom (pure functions).

A private room must not betray that it exists to someone outside it (issue 11, item 7):
if creating `secret-merger` answered "exists", anyone could probe names. So a name is
unique only among the rooms one user can see. Creating a name that only rooms hidden
from the creator hold makes a new room, stored under a key of its own (`name~tag`).

Several rooms a user sees may then share a name (an invitation into a private room
whose name the user already sees, or a public room created while a private room of
that name existed). Each user calls by its bare name the room of that name *they have
been a member of the longest*, and every other one `name~tag`. For a public room,
membership begins with the user's first use of it (a join, a send, a read): a public
room made to catch a private room's name ("squatting") never outranks the private room
for its members, and an invitation never changes what a name already means to the
invitee (docs/protocol.md, "Room names").
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Protocol, TypeVar

from parley.protocol.fields import TAG_SEPARATOR

DM = "dm"  # the kind of a direct-message room

__all__ = [
    "DM",
    "NamedRoom",
    "first_use_counts",
    "name_of",
    "ref_of",
    "references",
    "resolve",
    "room_key",
]


class NamedRoom(Protocol):
    """A room as one user sees it (the store's RoomRecord)."""

    @property
    def room(self) -> str:
        """The key the room's messages are stored under."""

    @property
    def name(self) -> str: ...

    @property
    def tag(self) -> str: ...

    @property
    def kind(self) -> str:
        """room, or dm: a DM is always called `dm~tag` (its name says nothing)."""

    @property
    def since(self) -> float:
        """When this user's membership began (a public room: their first use of it;
        math.inf if they never used it)."""


R = TypeVar("R", bound=NamedRoom)


def name_of(ref: str) -> str:
    """The name part of a reference (`name` or `name~tag`)."""
    return ref.partition(TAG_SEPARATOR)[0]


def room_key(name: str, tag: str, name_taken: bool) -> str:
    """The key of a new room: its name, unless a room (one hidden from its creator) holds
    that key already."""
    return f"{name}{TAG_SEPARATOR}{tag}" if name_taken else name


def first_use_counts(room: NamedRoom) -> bool:
    """Whether a user's first use of `room` must be recorded: a public room they never
    used, stored under a key of its own. Only such a public room can share its name with
    a private room (a public room that took its bare name first never does: nobody can
    create that name again), so others need no record."""
    return room.since == math.inf and room.room != room.name


def _first_seen(rooms: Iterable[R]) -> R | None:
    """The room of a name its bare name means: the one seen longest, never a DM."""
    return min((r for r in rooms if r.kind != DM), key=lambda r: (r.since, r.room), default=None)


def resolve(ref: str, visible: Sequence[R]) -> R | None:
    """The room `ref` means among the rooms of its name the user sees; None if none.

    `name` is the one seen longest; `name~tag` is the room with that tag."""
    name, _, tag = ref.partition(TAG_SEPARATOR)
    candidates = [r for r in visible if r.name == name]
    if not tag:
        return _first_seen(candidates)
    return next((r for r in candidates if r.tag == tag), None)


def ref_of(room: R, visible: Sequence[R]) -> str:
    """What the user calls `room` (one of `visible`, the rooms of its name they see)."""
    if _first_seen(r for r in visible if r.name == room.name) is room:
        return room.name
    return f"{room.name}{TAG_SEPARATOR}{room.tag}"


def references(visible: Sequence[R]) -> list[tuple[str, R]]:
    """Every room the user sees with what they call it, by that reference."""
    by_name: dict[str, list[R]] = {}
    for room in visible:
        by_name.setdefault(room.name, []).append(room)
    refs = [(ref_of(room, by_name[room.name]), room) for room in visible]
    return sorted(refs, key=lambda pair: pair[0])
