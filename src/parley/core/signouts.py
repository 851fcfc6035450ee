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
    at: float
    keep: str | None  # the session that stayed ("sign out everywhere else")
    code: C


class RecentSignOuts(Generic[C]):
    """Sign-outs of the last `window` seconds, by session and by account."""

    def __init__(self, window: float = RACE_WINDOW) -> None:
        self.window = window
        self._sessions: dict[str, tuple[float, C]] = {}  # token hash -> (when, code)
        self._users: dict[str, _UserSignOut[C]] = {}  # username, lowercased

    def session_ended(self, token_hash: str, code: C, now: float) -> None:
        self._forget_old(now)
        self._sessions.pop(token_hash, None)  # re-inserted: the dicts stay in time order
        self._sessions[token_hash] = (now, code)

    def sessions_ended(self, username: str, keep: str | None, code: C, now: float) -> None:
        """Every session of `username` but `keep` ended (a later one may have begun since:
        a socket of the account is only suspect, hence RECHECK)."""
        self._forget_old(now)
        self._users.pop(username.lower(), None)
        self._users[username.lower()] = _UserSignOut(now, keep, code)

    def check(self, username: str, token_hash: str, now: float) -> tuple[Hint, C | None]:
        """What to do with a socket of `username` on session `token_hash`, and the close
        code to use if it must close."""
        self._forget_old(now)
        if (ended := self._sessions.get(token_hash)) is not None:
            return Hint.CLOSE, ended[1]
        user = self._users.get(username.lower())
        if user is not None and user.keep != token_hash:
            return Hint.RECHECK, user.code
        return Hint.NONE, None

    def _forget_old(self, now: float) -> None:
        """Drop what is older than the window; cheap when nothing is (the usual case)."""
        horizon = now - self.window
        if self._sessions and next(iter(self._sessions.values()))[0] < horizon:
            self._sessions = {k: v for k, v in self._sessions.items() if v[0] >= horizon}
        if self._users and next(iter(self._users.values())).at < horizon:
            self._users = {k: v for k, v in self._users.items() if v.at >= horizon}
