from __future__ import annotations

import pytest

from parley.core import (
    ALLOWANCES,
    Action,
    ActionLimits,
    Allowance,
    FailureThrottle,
    RateLimiter,
    SignInThrottle,
    TokenBucket,
)


def test_bucket_allows_capacity_then_asks_to_wait() -> None:
    bucket = TokenBucket(capacity=3, period=10.0, updated=0.0)
    assert [bucket.take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(0.0) == pytest.approx(10.0 / 3)


def test_bucket_refills_evenly() -> None:
    bucket = TokenBucket(capacity=10, period=10.0, updated=0.0)
    for _ in range(10):
        bucket.take(0.0)
    assert bucket.take(0.5) > 0
    assert bucket.take(1.0) == 0.0
    assert bucket.full(100.0)


def test_rate_limiter_is_per_key_and_off_at_zero() -> None:
    limiter = RateLimiter(per_period=2, period=10.0)
    assert limiter.check("a", 0) == 0.0
    assert limiter.check("a", 0) == 0.0
    assert limiter.check("a", 0) > 0
    assert limiter.check("b", 0) == 0.0
    off = RateLimiter(per_period=0)
    assert all(off.check("a", 0) == 0.0 for _ in range(1000))


def test_rate_limiter_prunes_idle_buckets() -> None:
    limiter = RateLimiter(per_period=2)
    limiter.check("a", 0)
    limiter.prune(100)
    assert limiter.buckets == {}


def test_failure_throttle_sliding_window() -> None:
    throttle = FailureThrottle(limit=3, window=60.0)
    for t in (0.0, 1.0, 2.0):
        assert throttle.retry_after("alice", t) == 0.0
        throttle.fail("alice", t)
    assert throttle.retry_after("alice", 3.0) == pytest.approx(57.0)
    assert throttle.retry_after("bob", 3.0) == 0.0
    assert throttle.retry_after("alice", 60.5) == 0.0  # the first failure slid out
    throttle.clear("alice")
    assert throttle.failures == {}


def test_failure_throttle_prune_forgets_old_keys() -> None:
    throttle = FailureThrottle(limit=3, window=60.0)
    throttle.fail("old", 0.0)
    throttle.fail("new", 50.0)
    throttle.prune(70.0)
    assert list(throttle.failures) == ["new"]


def test_failure_throttle_zero_is_off_and_forget_takes_one_back() -> None:
    off = FailureThrottle(limit=0, window=60.0)
    off.fail("a", 0.0)
    assert off.retry_after("a", 0.0) == 0.0
    assert off.failures == {}
    throttle = FailureThrottle(limit=2, window=60.0)
    throttle.fail("a", 1.0)
    throttle.fail("a", 2.0)
    throttle.forget("a", 1.0)
    assert list(throttle.failures["a"]) == [2.0]
    throttle.forget("a", 7.0)  # never recorded: harmless
    throttle.forget("a", 2.0)
    assert throttle.failures == {}


def test_sign_in_counts_attempts_before_they_are_checked() -> None:
    """Concurrent guesses: the sixth is refused while the first five are still hashing."""
    throttle = SignInThrottle(per_pair=5, per_name=50, per_address=20, window=60.0)
    verdicts = [throttle.reserve("alice", "1.2.3.4", 0.0) for _ in range(12)]
    assert verdicts[:5] == [0.0] * 5
    assert all(wait == pytest.approx(60.0) for wait in verdicts[5:])


def test_sign_in_owner_from_elsewhere_is_not_locked_out() -> None:
    throttle = SignInThrottle(per_pair=5, per_name=50, per_address=20, window=60.0)
    for _ in range(5):
        assert throttle.reserve("alice", "6.6.6.6", 0.0) == 0.0
    assert throttle.reserve("alice", "6.6.6.6", 1.0) > 0  # the guesser waits
    assert throttle.reserve("alice", "1.2.3.4", 1.0) == 0.0  # the owner does not
    throttle.succeed("alice", "1.2.3.4", 1.0)
    assert throttle.reserve("bob", "6.6.6.6", 1.0) == 0.0  # other names from there too


def test_sign_in_per_name_ceiling_holds_against_many_addresses() -> None:
    throttle = SignInThrottle(per_pair=5, per_name=12, per_address=20, window=60.0)
    for i in range(11):
        assert throttle.reserve("alice", f"10.0.0.{i}", 0.0) == 0.0
    # the owner signing in takes back only their own attempt: the ceiling keeps the rest
    assert throttle.reserve("alice", "192.0.2.1", 1.0) == 0.0
    throttle.succeed("alice", "192.0.2.1", 1.0)
    assert len(throttle.names.failures["alice"]) == 11
    assert throttle.reserve("alice", "10.0.1.1", 2.0) == 0.0
    assert throttle.reserve("alice", "10.0.1.2", 2.0) == pytest.approx(58.0)


def test_sign_in_per_address_limit_stops_name_spraying() -> None:
    throttle = SignInThrottle(per_pair=5, per_name=50, per_address=3, window=60.0)
    assert [throttle.reserve(f"n{i}", "6.6.6.6", 0.0) for i in range(3)] == [0.0] * 3
    assert throttle.reserve("n9", "6.6.6.6", 0.0) > 0


def test_sign_in_success_and_release_take_the_reservation_back() -> None:
    throttle = SignInThrottle(per_pair=2, per_name=50, per_address=20, window=60.0)
    assert throttle.reserve("alice", "a", 0.0) == 0.0
    throttle.release("alice", "a", 0.0)  # e.g. the hashing queue refused it
    assert throttle.reserve("alice", "a", 1.0) == 0.0  # a failure stays counted
    assert throttle.reserve("alice", "a", 2.0) == 0.0
    throttle.succeed("alice", "a", 2.0)  # the pair starts afresh
    assert throttle.pairs.failures == {}
    assert [throttle.reserve("alice", "a", 3.0) for _ in range(2)] == [0.0, 0.0]


def test_sign_in_throttle_off_at_zero() -> None:
    throttle = SignInThrottle(per_pair=0)
    assert all(throttle.reserve("alice", "a", 0.0) == 0.0 for _ in range(1000))
    assert throttle.pairs.failures == throttle.names.failures == throttle.addresses.failures == {}


def test_sign_in_prune_forgets_old_attempts() -> None:
    throttle = SignInThrottle()
    throttle.reserve("alice", "a", 0.0)
    throttle.prune(61.0)
    assert throttle.pairs.failures == throttle.names.failures == throttle.addresses.failures == {}


def test_action_limits_keep_each_action_and_key_apart() -> None:
    limits = ActionLimits({Action.JOIN: Allowance(2, 60.0, "joining too fast")})
    assert limits.check(Action.JOIN, "ann", 0) == 0.0
    assert limits.check(Action.JOIN, "ann", 0) == 0.0
    assert limits.check(Action.JOIN, "ann", 0) == pytest.approx(30.0)  # 2 per 60 s
    assert limits.refusal(Action.JOIN) == "joining too fast"
    assert limits.check(Action.JOIN, "bob", 0) == 0.0  # another key: its own bucket
    assert limits.check(Action.JOIN, "ann", 30.0) == 0.0  # one earned back
    assert limits.check(Action.HISTORY, "ann", 0) == 0.0  # not in the table: unlimited


def test_default_allowances_cover_every_action_and_a_real_user() -> None:
    """What people do must never be refused: a reconnect storm of five tabs joining 90
    rooms each, a fast typist's typing frame per keystroke for a minute, paging back 200
    pages of history at 3 a second, creating 20 rooms and inviting 150 people at once; a
    classroom of a thousand opening the tutorial's page from one address."""
    assert set(ALLOWANCES) == set(Action)
    limits = ActionLimits.scaled(30, 1.0)
    assert all(limits.check(Action.JOIN, "u", 0.0) == 0.0 for _ in range(450))
    assert all(limits.check(Action.LEAVE, "u", 0.0) == 0.0 for _ in range(450))
    assert all(limits.check(Action.TYPING, "u", i / 5) == 0.0 for i in range(300))
    assert all(limits.check(Action.HISTORY, "u", i / 3) == 0.0 for i in range(200))
    assert all(limits.check(Action.CREATE_ROOM, "u", 0.0) == 0.0 for _ in range(20))
    assert all(limits.check(Action.INVITE, "u", 0.0) == 0.0 for _ in range(150))
    assert all(limits.check(Action.SEND, "u", 0.0) == 0.0 for _ in range(30))
    # the tutorial's page opened by 1,000 people behind one address at once
    assert all(limits.check(Action.GUEST_SOCKET, "guest@a", 0.0) == 0.0 for _ in range(1000))
    # ...and each stops a flood
    for action in Action:
        assert any(limits.check(action, "u", 60.0) > 0 for _ in range(5000)), action


def test_scaling_the_action_limits_and_zero_turns_them_off() -> None:
    half = ActionLimits.scaled(30, 0.5)
    assert [half.check(Action.CREATE_ROOM, "u", 0) == 0.0 for _ in range(16)] == [True] * 15 + [
        False
    ]
    tiny = ActionLimits.scaled(30, 0.0001)  # never below one action
    assert tiny.check(Action.CREATE_ROOM, "u", 0) == 0.0
    assert tiny.check(Action.CREATE_ROOM, "u", 0) > 0
    off = ActionLimits.scaled(5, 0)
    for action in Action:
        if action is not Action.SEND:
            assert all(off.check(action, "u", 0) == 0.0 for _ in range(10_000)), action
    # the send allowance is --rate-limit's, not scaled: 5 here, and 0 turns it off
    assert [off.check(Action.SEND, "u", 0) == 0.0 for _ in range(6)] == [True] * 5 + [False]
    assert all(ActionLimits.scaled(0, 1).check(Action.SEND, "u", 0) == 0.0 for _ in range(99))


def test_action_limits_prune_idle_keys() -> None:
    limits = ActionLimits.scaled(30, 1.0)
    for action in Action:
        limits.check(action, "u", 0)
    assert [limits.tracked(action) for action in Action] == [1] * len(Action)
    limits.prune(60)  # the room a minute ago is earned back after 120 s (30 an hour)
    assert {action: limits.tracked(action) for action in Action} == {
        action: int(action is Action.CREATE_ROOM) for action in Action
    }
    limits.prune(120)
    assert [limits.tracked(action) for action in Action] == [0] * len(Action)


def test_an_actions_own_limiter_spends_the_same_allowance_as_check() -> None:
    limits = ActionLimits({Action.SEND: Allowance(2, 10.0, "too fast")})
    sends = limits.limiter(Action.SEND)
    assert sends.check("ann", 0.0) == 0.0
    assert limits.check(Action.SEND, "ann", 0.0) == 0.0
    assert sends.check("ann", 0.0) > 0  # two spent, by either way
    assert limits.check(Action.SEND, "bob", 0.0) == 0.0  # another key's own
    off = limits.limiter(Action.JOIN)  # no allowance: never limited
    assert all(off.check("ann", 0.0) == 0.0 for _ in range(100))
    assert limits.limiter(Action.JOIN) is off
