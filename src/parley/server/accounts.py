"""Register, sign in, sign out, change the password, sign out everywhere: argon2id
password hashes and revocable opaque tokens.

A token is 32 random bytes (256 bits) given to the client once; the store keeps
only its SHA-256, so a leaked database holds no usable session. Every password check
(sign-in, password change) goes through one throttle, and every hash through one pool
shared fairly between client addresses.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from typing import Final, TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from parley.core import RateLimiter, SignInThrottle, check_password, check_username
from parley.protocol import ErrorCode, ProtocolError
from parley.server.hashing import HashPool, HashQueueFull
from parley.store import SignUp, Store, StoreUnavailable, UserRecord

__all__ = ["HASH_PROFILES", "Accounts", "hash_token"]

TOKEN_TTL: Final = 30 * 24 * 3600.0
MAX_NAME_KEY: Final = 64  # a throttle key never holds more of a (bogus) name than this
R = TypeVar("R")
_SIGN_UP_REFUSALS: Final = {
    SignUp.TAKEN: (ErrorCode.CONFLICT, "that username is taken"),
    SignUp.CLOSED: (ErrorCode.FORBIDDEN, "registration is closed"),
    SignUp.NO_INVITE: (
        ErrorCode.FORBIDDEN,
        "registration is by invitation: a valid, unused, unexpired invite code is needed",
    ),
}


# argon2id parameters of new hashes (`--hash-profile`); a hash carries its own, so every
# stored hash verifies whichever profile the server runs with.
HASH_PROFILES: Final[dict[str, Callable[[], PasswordHasher]]] = {
    "rfc9106": PasswordHasher,  # RFC 9106's low-memory profile: t=3, m=64 MiB, p=4
    "owasp": lambda: PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1),
}


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Accounts:
    def __init__(
        self,
        store: Store,
        *,
        login_limit: int = 5,
        window: float = 60.0,
        registrations_per_hour: int = 20,
        hash_workers: int = 2,
        hash_queue: int = 64,
        hash_profile: str = "rfc9106",
    ) -> None:
        self.store = store
        self.hasher = HASH_PROFILES[hash_profile]()  # argon2id
        self._dummy_hash = self.hasher.hash(secrets.token_hex(16))
        self.hashing = HashPool(hash_workers, hash_queue)  # argon2 is CPU and memory heavy
        # OWASP: per name+address tight, per name a ceiling, per address against spraying
        # (loose enough for a classroom or a test harness signing in dozens at once: an
        # attempt counts from its start, so the ones still hashing count too)
        self.throttle = SignInThrottle(login_limit, 10 * login_limit, 20 * login_limit, window)
        self.registrations = RateLimiter(registrations_per_hour, 3600.0)  # per address

    async def register(
        self, username: object, password: object, address: str, invite: str | None = None
    ) -> tuple[str, str]:
        """A new account under the registration mode (docs/protocol.md "Admin"): with
        invite-only registration, `invite` must be a valid code, used up by this account."""
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
        password_hash = await self._hash(address, password)
        outcome = await self.store.register(username, password_hash, invite, time.time())
        if outcome is not SignUp.CREATED:
            raise ProtocolError(*_SIGN_UP_REFUSALS[outcome])
        return username, await self._new_token(username)

    async def login(self, username: object, password: object, address: str) -> tuple[str, str]:
        if not isinstance(username, str) or not isinstance(password, str):
            raise ProtocolError(ErrorCode.BAD_REQUEST, "username and password are required")
        user = await self._guess(username, password, address)
        if user is None:
            raise ProtocolError(ErrorCode.UNAUTHORIZED, "wrong username or password")
        if user.banned:  # said only to whoever knows the password
            raise ProtocolError(ErrorCode.FORBIDDEN, "this account is banned")
        return user.username, await self._new_token(user.username)

    async def change_password(
        self, username: str, keep_token: str, old: object, new: object, address: str
    ) -> None:
        """Set a new password and end every session but `keep_token` (in the store: the
        caller closes their sockets). A wrong `old` is a throttled guess, like a sign-in."""
        if not isinstance(old, str) or not isinstance(new, str):
            raise ProtocolError(ErrorCode.BAD_REQUEST, "old and new passwords are required")
        reason = check_password(new)
        if reason:
            raise ProtocolError(ErrorCode.BAD_REQUEST, reason)
        if await self._guess(username, old, address) is None:
            raise ProtocolError(ErrorCode.FORBIDDEN, "the old password is wrong")
        await self.store.set_password(username, await self._hash(address, new), keep_token)

    async def sign_out_everywhere(self, username: str) -> None:
        await self.store.delete_user_tokens(username)

    def prune(self, now: float) -> None:
        self.throttle.prune(now)
        self.registrations.prune(now)

    async def purge_expired(self, now: float) -> int:
        """Delete the sessions expired at `now` (wall clock); how many there were."""
        return await self.store.purge_expired_tokens(now)

    async def logout(self, token_hash: str) -> None:
        await self.store.delete_token(token_hash)

    async def authenticate(self, token: str) -> tuple[str, str] | None:
        """(username, token_hash) for a live token."""
        if not token or len(token) > 256 or not token.isascii():  # ours are URL-safe base64
            return None
        token_hash = hash_token(token)
        username = await self.store.token_user(token_hash, time.time())
        return (username, token_hash) if username else None

    async def _new_token(self, username: str) -> str:
        token = secrets.token_urlsafe(32)
        await self.store.create_token(hash_token(token), username, time.time() + TOKEN_TTL)
        return token

    async def _guess(self, username: str, password: str, address: str) -> UserRecord | None:
        """The user whose password this is, else None; counted before argon2 runs, so
        concurrent guesses cannot all slip past the throttle while the first ones hash."""
        key = username.lower()[:MAX_NAME_KEY]
        now = time.monotonic()
        wait = self.throttle.reserve(key, address, now)
        if wait > 0:
            raise ProtocolError(
                ErrorCode.RATE_LIMITED,
                "too many failed attempts; try again later",
                retry_after=wait,
            )
        try:
            user = None if check_username(username) else await self.store.find_user(username)
            # Unknown names verify against a dummy hash: same cost, no name probing by timing.
            known = user.password_hash if user else self._dummy_hash
            ok = await self._verify(address, known, password)
        except (ProtocolError, StoreUnavailable):
            self.throttle.release(key, address, now)  # refused or unanswered: not a guess
            raise
        if user is None or not ok:
            return None
        self.throttle.succeed(key, address, now)
        return user

    async def _verify(self, address: str, password_hash: str, password: str) -> bool:
        try:
            return await self._in_thread(address, self.hasher.verify, password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    async def _hash(self, address: str, password: str) -> str:
        return await self._in_thread(address, self.hasher.hash, password)

    async def _in_thread(self, address: str, fn: Callable[..., R], *args: str) -> R:
        try:
            return await self.hashing.run(address, fn, *args)
        except HashQueueFull as exc:
            raise ProtocolError(
                ErrorCode.RATE_LIMITED,
                "too many sign-ins waiting from your address; try again shortly",
                retry_after=exc.retry_after,
            ) from None
