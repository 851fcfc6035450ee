"""The HTTP connection rules with a fake clock: the head deadline, and the cap on
connections per address that have not signed in."""

from __future__ import annotations

from parley.core.connections import HeadClock, Phase, UnauthenticatedCap


def test_a_new_connection_must_send_its_head_within_the_timeout() -> None:
    clock = HeadClock(10.0, now=100.0)
    assert clock.phase is Phase.HEAD
    assert clock.deadline == 110.0
    assert not clock.expired(109.9)
    assert clock.expired(110.0)
    assert not clock.partial  # nothing said yet: closed without an answer


def test_dribbling_bytes_does_not_move_the_deadline() -> None:
    clock = HeadClock(10.0, now=0.0)
    for t in range(1, 10):
        clock.received(float(t), heads=0)
    assert clock.deadline == 10.0
    assert clock.partial
    assert clock.expired(10.0)


def test_a_parsed_head_stops_the_clock_until_the_answer() -> None:
    clock = HeadClock(10.0, now=0.0)
    clock.received(1.0, heads=1)
    assert (clock.phase, clock.deadline) == (Phase.BUSY, None)
    clock.received(50.0, heads=1)  # body bytes, however slow, are not a head
    assert (clock.phase, clock.deadline) == (Phase.BUSY, None)
    clock.answered(clock.heads)
    assert (clock.phase, clock.deadline) == (Phase.IDLE, None)


def test_an_idle_connection_restarts_the_deadline_at_its_first_byte() -> None:
    clock = HeadClock(10.0, now=0.0)
    clock.received(1.0, heads=1)
    clock.answered(clock.heads)
    clock.received(500.0, heads=1)  # idle for long (the keep-alive timeout's business)
    assert (clock.phase, clock.deadline, clock.partial) == (Phase.HEAD, 510.0, True)
    clock.received(501.0, heads=2)
    assert (clock.phase, clock.deadline) == (Phase.BUSY, None)


def test_pipelined_requests_stay_busy_until_each_is_answered() -> None:
    clock = HeadClock(10.0, now=0.0)
    clock.received(1.0, heads=3)
    clock.answered(3)
    clock.answered(3)
    assert clock.phase is Phase.BUSY
    clock.answered(3)
    assert clock.phase is Phase.IDLE


def test_heads_parsed_without_new_bytes_count_at_the_answer() -> None:
    """A declined upgrade: aiohttp parses the request behind it when it answers."""
    clock = HeadClock(10.0, now=0.0)
    clock.received(1.0, heads=1)
    clock.answered(2)  # the 401 to the upgrade; a GET parsed from its tail waits
    assert clock.phase is Phase.BUSY
    clock.answered(2)
    assert clock.phase is Phase.IDLE


def test_an_upgraded_connection_has_no_deadline_whatever_comes() -> None:
    clock = HeadClock(10.0, now=0.0)
    clock.received(1.0, heads=1)
    clock.upgraded()
    clock.received(2.0, heads=1)
    clock.answered(clock.heads)
    assert (clock.phase, clock.deadline) == (Phase.UPGRADED, None)
    assert not clock.expired(1e9)


def test_timeout_zero_keeps_the_phases_but_never_expires() -> None:
    clock = HeadClock(0.0, now=0.0)
    assert clock.deadline is None
    clock.received(1.0, heads=1)
    clock.answered(clock.heads)
    clock.received(2.0, heads=1)
    assert (clock.phase, clock.deadline) == (Phase.HEAD, None)
    assert not clock.expired(1e9)


def _never(conn: str) -> bool:
    return False


def test_the_cap_refuses_the_newest_when_none_is_idle() -> None:
    cap: UnauthenticatedCap[str] = UnauthenticatedCap(2)
    assert cap.admit("1.2.3.4", "a", _never).admitted
    assert cap.admit("1.2.3.4", "b", _never).admitted
    refused = cap.admit("1.2.3.4", "c", _never)
    assert (refused.admitted, refused.evict) == (False, None)
    assert cap.count("1.2.3.4") == 2
    assert cap.admit("5.6.7.8", "d", _never).admitted  # another address has its own


def test_the_cap_evicts_the_oldest_idle_connection_to_make_room() -> None:
    cap: UnauthenticatedCap[str] = UnauthenticatedCap(3)
    for conn in "abc":
        cap.admit("k", conn, _never)
    admission = cap.admit("k", "d", lambda c: c in "bc")
    assert (admission.admitted, admission.evict) == (True, "b")
    assert list(cap.waiting["k"]) == ["a", "c", "d"]


def test_signing_in_or_closing_frees_a_place() -> None:
    cap: UnauthenticatedCap[str] = UnauthenticatedCap(1)
    cap.admit("k", "a", _never)
    assert not cap.admit("k", "b", _never).admitted
    cap.release("k", "a")
    assert cap.admit("k", "b", _never).admitted
    cap.release("k", "b")
    cap.release("k", "b")  # twice (signed in, then closed): harmless
    assert cap.waiting == {}  # no empty entries left behind per address


def test_cap_zero_admits_everything_and_remembers_nothing() -> None:
    cap: UnauthenticatedCap[int] = UnauthenticatedCap(0)
    assert all(cap.admit("k", i, _never).admitted for i in range(1000))
    assert cap.waiting == {}
