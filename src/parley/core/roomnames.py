"""Which room a name means to whom (pure functions).

A private room must not betray that it exists to someone outside it (issue 11, item 7):
if creating `secret-merger` answered "exists", anyone could probe names. So a name is
unique only among the rooms one user can see. Creating a name that only rooms hidden
from the creator hold makes a new room, stored under a key of its own (`name~tag`).

Several rooms a user sees may then share a name (an invitation into a private room
whose name the user already sees, or a public room created while a private room of
that name existed). Each user calls the room of that name *they have seen the longest*
by its bare name, and every other one `name~tag`. Seeing longest, not "private first":
an invitation never changes what a name already means to the invitee, so nobody can be
lured into posting to a look-alike room by an invitation (docs/protocol.md, "Room names").
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol, TypeVar

from parley.protocol.fields import TAG_SEPARATOR

__all__ = ["NamedRoom", "name_of", "ref_of", "references", "resolve", "room_key"]


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
    def since(self) -> float:
        """When this user could first see it: the room's creation if public, else when
        the user became a member."""


R = TypeVar("R", bound=NamedRoom)


def name_of(ref: str) -> str:
    """The name part of a reference (`name` or `name~tag`)."""
    return ref.partition(TAG_SEPARATOR)[0]


def room_key(name: str, tag: str, name_taken: bool) -> str:
    """The key of a new room: its name, unless a room (one hidden from its creator) holds
    that key already."""
    return f"{name}{TAG_SEPARATOR}{tag}" if name_taken else name


def _first_seen(rooms: Iterable[R]) -> R | None:
    return min(rooms, key=lambda r: (r.since, r.room), default=None)


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
