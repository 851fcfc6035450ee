"""Server admins (docs/protocol.md "Admin"): roles, bans, invite codes, the registration
mode and the audit log, over the store, which audits each change in its transaction.

The API handlers (api.py) call this after `require_admin`; the chat service asks
`is_admin` for the rights an admin has in rooms (delete, remove, topic).
"""

from __future__ import annotations

import secrets
import time
from typing import Final

from parley.broker import Broker, RoleChanged, UserBanned
from parley.protocol import ErrorCode, ProtocolError
from parley.store import (
    AuditEntry,
    Invite,
    Refused,
    Registration,
    Store,
    UnknownUser,
    UserSummary,
)

__all__ = ["AdminService", "new_invite_code"]

INVITE_BYTES: Final = 12  # 96 random bits: 16 characters, not guessable


def new_invite_code() -> str:
    return secrets.token_urlsafe(INVITE_BYTES)


class AdminService:
    def __init__(self, store: Store, broker: Broker) -> None:
        self.store = store
        self.broker = broker

    async def is_admin(self, username: str) -> bool:
        user = await self.store.find_user(username)
        return user is not None and user.admin

    async def require_admin(self, username: str) -> None:
        """Forbidden unless `username` is an admin now (read from the store on every
        request: a revoked role takes effect at once, on every node)."""
        if not await self.is_admin(username):
            raise ProtocolError(ErrorCode.FORBIDDEN, "only admins may do this")

    async def users(self, query: str, after: str | None, limit: int) -> list[UserSummary]:
        return await self.store.list_users(query, after, limit)

    async def set_admin(self, actor: str, username: str, admin: bool) -> None:
        """Grant or revoke the role; the account's open pages on every node hear it."""
        try:
            changed = await self.store.set_admin(actor, username, admin)
        except (UnknownUser, Refused) as exc:
            raise _refusal(exc, username) from None
        if changed:
            self.broker.publish_event(RoleChanged(username, admin))

    async def set_banned(self, actor: str, username: str, banned: bool) -> None:
        """A ban ends the account's sessions (in the store) and closes its sockets with
        4003 on every node."""
        try:
            changed = await self.store.set_banned(actor, username, banned)
        except (UnknownUser, Refused) as exc:
            raise _refusal(exc, username) from None
        if banned and changed:
            self.broker.publish_event(UserBanned(username))

    async def registration(self) -> Registration:
        return await self.store.registration()

    async def set_registration(self, actor: str, mode: Registration) -> None:
        await self.store.set_registration(actor, mode)

    async def create_invite(self, actor: str, expires_in: int) -> Invite:
        now = time.time()
        return await self.store.create_invite(actor, new_invite_code(), now, now + expires_in)

    async def invites(self) -> list[Invite]:
        return await self.store.invites()

    async def delete_invite(self, actor: str, code: str) -> None:
        if not await self.store.delete_invite(actor, code):
            raise ProtocolError(ErrorCode.NOT_FOUND, "no such invite code")

    async def audit(self, before: int | None, limit: int) -> list[AuditEntry]:
        return await self.store.audit_log(before, limit)


def _refusal(exc: UnknownUser | Refused, username: str) -> ProtocolError:
    if isinstance(exc, UnknownUser):
        return ProtocolError(ErrorCode.NOT_FOUND, f"no user {username!r}")
    return ProtocolError(ErrorCode.CONFLICT, str(exc))
