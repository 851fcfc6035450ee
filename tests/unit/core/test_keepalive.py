"""The keepalive policy: ping after `interval` of silence, drop after `timeout` unanswered."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from parley.core import KeepalivePolicy, Verdict

POLICY = KeepalivePolicy(interval=20.0, timeout=10.0)


def test_recently_heard_socket_is_kept() -> None:
    assert POLICY.verdict(now=119.9, heard_at=100.0, pinged_at=None) is Verdict.KEEP


def test_silent_socket_is_pinged() -> None:
    assert POLICY.verdict(now=120.0, heard_at=100.0, pinged_at=None) is Verdict.PING


def test_unanswered_ping_is_waited_for_until_timeout() -> None:
    assert POLICY.verdict(now=129.9, heard_at=100.0, pinged_at=120.0) is Verdict.KEEP


def test_unanswered_ping_past_timeout_drops() -> None:
    assert POLICY.verdict(now=130.0, heard_at=100.0, pinged_at=120.0) is Verdict.DROP


def test_answered_ping_starts_a_new_interval() -> None:
    assert POLICY.verdict(now=135.0, heard_at=121.0, pinged_at=120.0) is Verdict.KEEP
    assert POLICY.verdict(now=141.0, heard_at=121.0, pinged_at=120.0) is Verdict.PING


@pytest.mark.parametrize(
    ("interval", "timeout", "tick"), [(20.0, 20.0, 5.0), (1.0, 4.0, 0.25), (0.01, 1.0, 0.05)]
)
def test_tick_is_a_quarter_of_the_shorter_period(
    interval: float, timeout: float, tick: float
) -> None:
    assert KeepalivePolicy(interval, timeout).tick == tick


@given(
    heard=st.floats(0, 1e6),
    silence=st.floats(0, 1e3),
    interval=st.floats(0.1, 100),
    timeout=st.floats(0.1, 100),
)
def test_never_drops_a_socket_that_was_not_pinged(
    heard: float, silence: float, interval: float, timeout: float
) -> None:
    verdict = KeepalivePolicy(interval, timeout).verdict(heard + silence, heard, None)
    assert verdict is not Verdict.DROP


@given(heard=st.floats(0, 1e6), after=st.floats(0, 1e3), wait=st.floats(0, 1e3))
def test_never_drops_a_socket_heard_since_the_ping(heard: float, after: float, wait: float) -> None:
    pinged = heard - after  # the client spoke after (or when) we pinged
    verdict = POLICY.verdict(heard + wait, heard, pinged)
    assert verdict is not Verdict.DROP
