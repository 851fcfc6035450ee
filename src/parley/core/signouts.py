"""Sign-outs a socket's handshake may have raced.

A socket's token is checked against the store, then the socket is registered. A session
ended between the two (a logout, "sign out everywhere", a ban, on this node or another)
closes the sockets registered then, not this one: without a memory of recent sign-outs it
would stay open on a dead token. `RecentSignOuts` is that memory; the registry asks it
about each socket it registers. Plain data and a caller-given clock: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Final, Generic, TypeVar

from parley.core.expiring import ExpiringMap

__all__ = ["RACE_WINDOW", "Hint", "RecentSignOuts"]

# Longer than any handshake takes from its token check to its registration.
RACE_WINDOW: Final = 60.0

C = TypeVar("C")  # the close code the caller keeps with a sign-out


class Hint(Enum):
    NONE = "none"  # no sign-out of this session is recent: nothing to do
    CLOSE = "close"  # this very session ended: close the socket
    RECHECK = "recheck"  # its account's sessions ended: ask the store whether this one lives


@dataclass(frozen=True, slots=True)
class _UserSignOut(Generic[C]):
    keep: str | None  # the session that stayed ("sign out everywhere else")
    code: C


class RecentSignOuts(Generic[C]):
    """Sign-outs of the last `window` seconds, by session and by account."""

    def __init__(self, window: float = RACE_WINDOW) -> None:
        self._sessions: ExpiringMap[str, C] = ExpiringMap(window)  # by token hash
        self._users: ExpiringMap[str, _UserSignOut[C]] = ExpiringMap(window)  # lowercased

    def session_ended(self, token_hash: str, code: C, now: float) -> None:
        self._sessions.set(token_hash, code, now)

    def sessions_ended(self, username: str, keep: str | None, code: C, now: float) -> None:
        """Every session of `username` but `keep` ended (a later one may have begun since:
        a socket of the account is only suspect, hence RECHECK)."""
        self._users.set(username.lower(), _UserSignOut(keep, code), now)

    def check(self, username: str, token_hash: str, now: float) -> tuple[Hint, C | None]:
        """What to do with a socket of `username` on session `token_hash`, and the close
        code to use if it must close."""
        if (code := self._sessions.get(token_hash, now)) is not None:
            return Hint.CLOSE, code
        user = self._users.get(username.lower(), now)
        if user is not None and user.keep != token_hash:
            return Hint.RECHECK, user.code
        return Hint.NONE, None
