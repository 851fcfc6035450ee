"""Register, sign in, sign out: argon2id password hashes and revocable opaque tokens.

A token is 32 random bytes (256 bits) given to the client once; the store keeps
only its SHA-256, so a leaked database holds no usable session.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from collections.abc import Callable
from typing import Final, TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from parley.core import FailureThrottle, RateLimiter, check_password, check_username
from parley.protocol import ErrorCode, ProtocolError
from parley.store import Store

__all__ = ["Accounts", "hash_token"]

TOKEN_TTL: Final = 30 * 24 * 3600.0
R = TypeVar("R")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Accounts:
    def __init__(
        self,
        store: Store,
        *,
        per_user_failures: int = 5,
        per_address_failures: int = 20,
        window: float = 60.0,
        registrations_per_hour: int = 20,
    ) -> None:
        self.store = store
        self.hasher = PasswordHasher()  # argon2id, RFC 9106 low-memory profile
        self._dummy_hash = self.hasher.hash(secrets.token_hex(16))
        self._hashing = asyncio.Semaphore(2)  # argon2 is CPU and memory heavy: bound it
        self.user_failures = FailureThrottle(per_user_failures, window)
        self.address_failures = FailureThrottle(per_address_failures, window)
        self.registrations = RateLimiter(registrations_per_hour, 3600.0)  # per address

    async def register(self, username: object, password: object, address: str) -> tuple[str, str]:
        reason = check_username(username) or check_password(password)
        if reason:
            raise ProtocolError(ErrorCode.BAD_REQUEST, reason)
        retry_after = self.registrations.check(address, time.monotonic())
        if retry_after:
            raise ProtocolError(
                ErrorCode.RATE_LIMITED, "too many new accounts from here", retry_after=retry_after
            )
        assert isinstance(username, str)
        assert isinstance(password, str)
        password_hash = await self._in_thread(self.hasher.hash, password)
        if not await self.store.create_user(username, password_hash):
            raise ProtocolError(ErrorCode.CONFLICT, "that username is taken")
        return username, await self._new_token(username)

    async def login(self, username: object, password: object, address: str) -> tuple[str, str]:
        if not isinstance(username, str) or not isinstance(password, str):
            raise ProtocolError(ErrorCode.BAD_REQUEST, "username and password are required")
        user_key = username.lower()
        now = time.monotonic()
        wait = max(
            self.user_failures.retry_after(user_key, now),
            self.address_failures.retry_after(address, now),
        )
        if wait > 0:
            raise ProtocolError(
                ErrorCode.RATE_LIMITED,
                "too many failed sign-ins; try again later",
                retry_after=wait,
            )
        user = await self.store.find_user(username)
        # Verify against a dummy hash for unknown names: same cost, no name probing by timing.
        ok = await self._verify(user.password_hash if user else self._dummy_hash, password)
        if user is None or not ok:
            now = time.monotonic()
            self.user_failures.fail(user_key, now)
            self.address_failures.fail(address, now)
            raise ProtocolError(ErrorCode.UNAUTHORIZED, "wrong username or password")
        self.user_failures.clear(user_key)
        return user.username, await self._new_token(user.username)

    def prune(self, now: float) -> None:
        self.user_failures.prune(now)
        self.address_failures.prune(now)
        self.registrations.prune(now)

    async def logout(self, token_hash: str) -> None:
        await self.store.delete_token(token_hash)

    async def authenticate(self, token: str) -> tuple[str, str] | None:
        """(username, token_hash) for a live token."""
        if not token or len(token) > 256:
            return None
        token_hash = hash_token(token)
        username = await self.store.token_user(token_hash, time.time())
        return (username, token_hash) if username else None

    async def _new_token(self, username: str) -> str:
        token = secrets.token_urlsafe(32)
        await self.store.create_token(hash_token(token), username, time.time() + TOKEN_TTL)
        return token

    async def _verify(self, password_hash: str, password: str) -> bool:
        try:
            return await self._in_thread(self.hasher.verify, password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    async def _in_thread(self, fn: Callable[..., R], *args: str) -> R:
        async with self._hashing:
            return await asyncio.to_thread(fn, *args)
