"""core/signouts.py: what a socket registered after a sign-out it raced must do."""

from __future__ import annotations

from parley.core import Hint, RecentSignOuts

WINDOW = 60.0


def test_nothing_recent_means_nothing_to_do() -> None:
    recent: RecentSignOuts[int] = RecentSignOuts(WINDOW)
    assert recent.check("ann", "t1", 0.0) == (Hint.NONE, None)


def test_an_ended_session_closes_its_sockets_with_its_code() -> None:
    recent: RecentSignOuts[int] = RecentSignOuts(WINDOW)
    recent.session_ended("t1", 4001, 10.0)
    assert recent.check("ann", "t1", 11.0) == (Hint.CLOSE, 4001)
    assert recent.check("ann", "t2", 11.0) == (Hint.NONE, None)  # another session of hers


def test_an_accounts_sign_out_makes_its_other_sessions_suspect() -> None:
    recent: RecentSignOuts[int] = RecentSignOuts(WINDOW)
    recent.sessions_ended("Ann", "kept", 4003, 10.0)
    assert recent.check("ann", "t1", 11.0) == (Hint.RECHECK, 4003)  # any case
    assert recent.check("ann", "kept", 11.0) == (Hint.NONE, None)
    assert recent.check("bob", "t1", 11.0) == (Hint.NONE, None)


def test_the_session_itself_outranks_its_account() -> None:
    recent: RecentSignOuts[int] = RecentSignOuts(WINDOW)
    recent.sessions_ended("ann", None, 4003, 10.0)
    recent.session_ended("t1", 4001, 10.0)
    assert recent.check("ann", "t1", 11.0) == (Hint.CLOSE, 4001)


def test_sign_outs_older_than_the_window_are_forgotten() -> None:
    recent: RecentSignOuts[int] = RecentSignOuts(WINDOW)
    recent.session_ended("old", 4001, 0.0)
    recent.sessions_ended("ann", None, 4001, 0.0)
    recent.session_ended("new", 4001, 50.0)
    recent.sessions_ended("bob", None, 4001, 50.0)
    assert recent.check("x", "old", 70.0) == (Hint.NONE, None)
    assert recent.check("ann", "t", 70.0) == (Hint.NONE, None)
    assert recent.check("x", "new", 70.0) == (Hint.CLOSE, 4001)
    assert recent.check("bob", "t", 70.0) == (Hint.RECHECK, 4001)


def test_a_repeated_sign_out_counts_from_its_latest_time() -> None:
    recent: RecentSignOuts[int] = RecentSignOuts(WINDOW)
    recent.session_ended("t1", 4001, 0.0)
    recent.session_ended("t2", 4001, 30.0)
    recent.session_ended("t1", 4001, 40.0)  # again: now the newest, kept past 60
    recent.sessions_ended("ann", None, 4001, 0.0)
    recent.sessions_ended("bob", None, 4001, 30.0)
    recent.sessions_ended("ann", "k", 4003, 40.0)
    assert recent.check("x", "t1", 95.0) == (Hint.CLOSE, 4001)
    assert recent.check("x", "t2", 95.0) == (Hint.NONE, None)
    assert recent.check("ann", "t", 95.0) == (Hint.RECHECK, 4003)
    assert recent.check("bob", "t", 95.0) == (Hint.NONE, None)
