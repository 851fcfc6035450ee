"""The admin rules both stores apply, inside the transaction of the change (no I/O)."""

from __future__ import annotations

from typing import Final

from parley.store.base import (
    ChangeRequest,
    DeleteRequest,
    Refused,
    TopicRequest,
)

__all__ = ["CLI_ACTOR", "ban_refusal", "change_audit", "role_refusal"]

CLI_ACTOR: Final = "@cli"  # the audit log's actor for the command line (never a username)


def _same(a: str, b: str) -> bool:
    return a.lower() == b.lower()


def ban_refusal(actor: str, username: str, *, admin: bool, ban: bool) -> Refused | None:
    """Why `actor` may not ban `username` (an admin when `admin`); unbanning is always
    allowed."""
    if not ban:
        return None
    if _same(actor, username):
        return Refused("you cannot ban yourself")
    if admin:
        return Refused(f"{username} is an admin: revoke the role first, then ban")
    return None


def role_refusal(
    actor: str, username: str, *, grant: bool, banned: bool, last_admin: bool
) -> Refused | None:
    """Why `actor` may not grant (or revoke) the admin role of `username`; `last_admin`:
    they are the only admin left."""
    if grant:
        return Refused(f"{username} is banned: unban them first") if banned else None
    if _same(actor, username):
        return Refused("you cannot revoke your own admin role")
    if last_admin:
        return Refused(f"{username} is the last admin: grant the role to someone else first")
    return None


def change_audit(
    request: ChangeRequest, owner: str | None, author: str | None
) -> tuple[str, str] | None:
    """(action, target) of the audit entry a change makes, if any: a message deleted by
    someone else than its author (the room's owner or an admin: the target is the author),
    a topic set by someone else than the room's owner (an admin: the target is the topic)."""
    if isinstance(request, DeleteRequest) and author is not None and request.username != author:
        return "delete_message", author
    if isinstance(request, TopicRequest) and request.username != owner:
        return "topic", request.topic
    return None
