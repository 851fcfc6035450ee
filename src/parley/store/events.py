"""The event log's rows, shared by both stores (no I/O).

A room's events live in one table (`messages`): a message row (kind NULL) also holds the
message's current state (text after edits, the tombstone, reactions, mentions); an edit,
delete, reaction, topic or member row (kind set) records one change with its own seq.
Both stores select EVENT_COLUMNS in this order and turn rows into frames here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import msgspec

from parley.protocol import (
    DeleteEvent,
    EditEvent,
    File,
    MemberEvent,
    Message,
    ReactionEvent,
    RoomEvent,
    TopicEvent,
    as_event,
)
from parley.store.base import (
    ChangeRequest,
    DeleteRequest,
    EditRequest,
    NotAllowed,
    TopicRequest,
)

__all__ = [
    "EVENT_COLUMNS",
    "MESSAGE_COLUMNS",
    "Reactions",
    "check_allowed",
    "dump",
    "dump_some",
    "event_of",
    "load_files",
    "load_names",
    "load_reactions",
    "logged_event",
    "member_needed",
    "message_of",
    "toggled",
]

# The columns a message needs (the prefix of EVENT_COLUMNS a history page selects).
MESSAGE_COLUMNS: Final = (
    "room, seq, username, text, ts, client_id, reply_to, edited, deleted, reactions, mentions,"
    " attachments"
)
EVENT_COLUMNS: Final = MESSAGE_COLUMNS + ", kind, target, data"

Reactions = dict[str, list[str]]
_json_encode: Final = msgspec.json.Encoder().encode
_reactions: Final = msgspec.json.Decoder(Reactions)
_names: Final = msgspec.json.Decoder(list[str])
_data: Final = msgspec.json.Decoder(dict[str, Any])
_files: Final = msgspec.json.Decoder(list[File])


def dump(value: object) -> str:
    """JSON text of a column (reactions, mentions, an event's data)."""
    return _json_encode(value).decode()


def dump_some(value: Reactions | list[str]) -> str | None:
    """JSON text of a reactions or mentions column; NULL when there are none."""
    return dump(value) if value else None


def load_reactions(text: str | None) -> Reactions:
    return _reactions.decode(text) if text else {}


def load_names(text: str | None) -> list[str]:
    return _names.decode(text) if text else []


def load_files(text: str | None) -> list[File]:
    """A message's attachments column: the File objects it carries (NULL: none)."""
    return _files.decode(text) if text else []


def message_of(row: Sequence[Any]) -> Message:
    """A message row (MESSAGE_COLUMNS) as the message is now."""
    return Message(
        row[0],
        row[1],
        row[2],
        row[3],
        row[4],
        row[5],
        row[6],
        row[7],
        bool(row[8]),
        load_reactions(row[9]),
        load_names(row[10]),
        load_files(row[11]),
    )


def event_of(row: Sequence[Any]) -> RoomEvent:
    """Any row of the log (EVENT_COLUMNS) as the frame a replay sends."""
    kind = row[12]
    if kind is None:
        return as_event(message_of(row))
    common = {"room": row[0], "seq": row[1], "username": row[2], "ts": row[4], "client_id": row[5]}
    target = row[13]
    if kind == "edit":
        return EditEvent(**common, target=target, text=row[3])
    if kind == "delete":
        return DeleteEvent(**common, target=target)
    if kind == "topic":
        return TopicEvent(**common, topic=row[3])
    data = _data.decode(row[14])
    if kind == "reaction":
        return ReactionEvent(**common, target=target, emoji=data["emoji"], on=data["on"])
    return MemberEvent(**common, change=data["change"], by=data["by"])


def logged_event(
    row: tuple[str, int, str, str, str, str | None], kind: str, target: int | None, data: str | None
) -> RoomEvent:
    """The frame of a change just stored: `row` is its (room, seq, username, text, ts,
    client_id), `data` its JSON text."""
    return event_of((*row, None, None, False, None, None, None, kind, target, data))


def check_allowed(request: ChangeRequest, owner: str | None, author: str | None) -> None:
    """Raise NotAllowed unless `request.username` may make the change: a topic is the
    owner's, an edit its author's, a delete its author's or the owner's (a moderator may
    do either); anyone who may read the room reacts. `author`: the target's (None: topic)."""
    if isinstance(request, TopicRequest) and not (request.moderator or request.username == owner):
        raise NotAllowed("only the room's owner sets its topic")
    if isinstance(request, EditRequest) and request.username != author:
        raise NotAllowed("only its author edits a message")
    if isinstance(request, DeleteRequest) and not (
        request.moderator or request.username in (author, owner)
    ):
        raise NotAllowed("only its author or the room's owner deletes a message")


def member_needed(request: ChangeRequest, private: bool) -> bool:
    """Whether the store must find `request.username` among the room's members: in a
    private room or a DM, a change by someone removed since their socket learnt that it may
    use the room is refused as their send would be (UnknownRoom); a moderator needs not."""
    moderator = isinstance(request, DeleteRequest | TopicRequest) and request.moderator
    return private and not moderator


def toggled(reactions: Reactions, emoji: str, username: str, on: bool) -> Reactions | None:
    """`reactions` with `username`'s `emoji` added (on) or taken back; None when that
    changes nothing (they already have it, or never had it)."""
    users = reactions.get(emoji, [])
    if (username in users) == on:
        return None
    changed = dict(reactions)
    if on:
        changed[emoji] = [*users, username]
    elif len(users) > 1:
        changed[emoji] = [u for u in users if u != username]
    else:
        del changed[emoji]
    return changed
