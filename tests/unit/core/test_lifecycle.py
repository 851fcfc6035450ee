"""A socket's lifecycle, every transition: OPEN -> CLOSING -> CLOSED, the close reason that
wins, and what the keepalive sees (a fake clock throughout)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from parley.core import (
    Close,
    Ending,
    InvalidTransition,
    KeepalivePolicy,
    SocketLifecycle,
    SocketState,
    Verdict,
)

POLICY = KeepalivePolicy(interval=20.0, timeout=10.0)
SIGNED_OUT = Close(4001, "signed out", Ending.HANDSHAKE)
SHUTDOWN = Close(1001, "server shutting down", Ending.HALF_CLOSE)
TIMEOUT = Close(1006, "keepalive timeout", Ending.ABORT)


def closing(first: Close = SIGNED_OUT) -> SocketLifecycle:
    life = SocketLifecycle(now=100.0)
    assert life.begin_close(first)
    return life


def closed(state: SocketState) -> SocketLifecycle:
    """A socket whose reader loop ended in `state`."""
    life = SocketLifecycle(now=100.0) if state is SocketState.OPEN else closing()
    life.end()
    return life


def test_a_socket_starts_open_heard_unpinged_and_idle() -> None:
    life = SocketLifecycle(now=100.0)
    assert life.state is SocketState.OPEN
    assert (life.heard_at, life.pinged_at, life.busy, life.close_cause) == (
        100.0,
        None,
        False,
        None,
    )


@pytest.mark.parametrize("ending", list(Ending))
def test_open_to_closing_by_any_ending_records_the_reason(ending: Ending) -> None:
    life = SocketLifecycle(now=100.0)
    close = Close(1013, "storage unavailable", ending)
    assert life.begin_close(close) is True
    assert life.state is SocketState.CLOSING
    assert life.close_cause == close


@pytest.mark.parametrize("ending", [e for e in Ending if e is not Ending.ABORT])
def test_the_first_close_wins_over_a_later_one(ending: Ending) -> None:
    life = closing(SIGNED_OUT)
    assert life.begin_close(Close(1008, "too slow", ending)) is False
    assert life.state is SocketState.CLOSING
    assert life.close_cause == SIGNED_OUT


def test_an_abort_ends_a_close_the_peer_does_not_answer_once() -> None:
    life = closing(SIGNED_OUT)
    assert life.begin_close(TIMEOUT) is True  # the adapter resets the connection
    assert (life.state, life.close_cause) == (SocketState.CLOSING, TIMEOUT)
    assert life.begin_close(Close(1006, "stalled reader", Ending.ABORT)) is False
    assert life.close_cause == TIMEOUT


def test_nothing_follows_an_abort() -> None:
    life = closing(TIMEOUT)
    assert life.begin_close(SIGNED_OUT) is False
    assert life.begin_close(SHUTDOWN) is False
    assert life.close_cause == TIMEOUT


@pytest.mark.parametrize("state", [SocketState.OPEN, SocketState.CLOSING])
def test_the_reader_loop_ends_open_or_closing(state: SocketState) -> None:
    life = closed(state)
    assert life.state is SocketState.CLOSED


@pytest.mark.parametrize("state", [SocketState.OPEN, SocketState.CLOSING])
def test_a_closed_socket_takes_no_transition(state: SocketState) -> None:
    life = closed(state)
    for close in (SIGNED_OUT, SHUTDOWN, TIMEOUT):
        with pytest.raises(InvalidTransition, match="closed"):
            life.begin_close(close)
    with pytest.raises(InvalidTransition):
        life.end()
    with pytest.raises(InvalidTransition):
        life.handling()
    with pytest.raises(InvalidTransition):
        life.heard(200.0)
    with pytest.raises(InvalidTransition):
        life.keepalive(POLICY, 200.0)
    assert life.state is SocketState.CLOSED


def opened() -> SocketLifecycle:
    return SocketLifecycle(now=100.0)


@pytest.mark.parametrize("make", [opened, closing])
def test_a_frame_is_handled_then_heard_open_or_closing(make: Callable[[], SocketLifecycle]) -> None:
    life = make()
    state = life.state
    life.handling()
    assert life.busy
    life.heard(150.0)
    assert (life.busy, life.heard_at, life.state) == (False, 150.0, state)


def test_frames_are_handled_one_at_a_time() -> None:
    life = SocketLifecycle(now=100.0)
    life.handling()
    with pytest.raises(InvalidTransition, match="another"):
        life.handling()
    assert life.busy


def test_a_frame_taken_at_once_is_heard_without_handling() -> None:
    life = SocketLifecycle(now=100.0)
    life.heard(101.0)  # a ping, or a send the inbox's shortcut took
    assert (life.busy, life.heard_at) == (False, 101.0)


def test_keepalive_pings_a_silent_socket_and_counts_the_ping() -> None:
    life = SocketLifecycle(now=100.0)
    assert life.keepalive(POLICY, 119.9) is Verdict.KEEP
    assert life.pinged_at is None
    assert life.keepalive(POLICY, 120.0) is Verdict.PING
    assert life.pinged_at == 120.0
    assert life.keepalive(POLICY, 129.9) is Verdict.KEEP
    assert life.keepalive(POLICY, 130.0) is Verdict.DROP


def test_an_answered_ping_keeps_the_socket() -> None:
    life = SocketLifecycle(now=100.0)
    assert life.keepalive(POLICY, 120.0) is Verdict.PING
    life.heard(121.0)  # its pong
    assert life.keepalive(POLICY, 140.9) is Verdict.KEEP
    assert life.keepalive(POLICY, 141.0) is Verdict.PING


def test_a_socket_busy_with_a_frame_is_neither_pinged_nor_dropped() -> None:
    """While a frame is handled the client's pongs wait unread behind it."""
    life = SocketLifecycle(now=100.0)
    assert life.keepalive(POLICY, 120.0) is Verdict.PING
    life.handling()
    assert life.keepalive(POLICY, 1e9) is Verdict.KEEP
    assert life.pinged_at == 120.0
    life.heard(1e9)
    assert life.keepalive(POLICY, 1e9 + 19.9) is Verdict.KEEP


def test_a_closing_socket_that_stays_silent_is_dropped_in_the_end() -> None:
    """The backstop for a close handshake the client never answers."""
    life = closing()
    assert life.keepalive(POLICY, 120.0) is Verdict.PING
    assert life.keepalive(POLICY, 130.0) is Verdict.DROP
    assert life.begin_close(TIMEOUT) is True
