"""Chat rules without I/O: names, limits, subscriptions and presence, ordering."""

from parley.core.addresses import Network, client_key, parse_networks
from parley.core.fairness import FairQueue
from parley.core.feed import Feed, Gap
from parley.core.hub import Hub, RoomSubscribers
from parley.core.keepalive import KeepalivePolicy, Verdict
from parley.core.limits import FailureThrottle, RateLimiter, SignInThrottle, TokenBucket
from parley.core.names import (
    GENERAL,
    check_password,
    check_room,
    check_text,
    check_username,
)

__all__ = [
    "GENERAL",
    "FailureThrottle",
    "FairQueue",
    "Feed",
    "Gap",
    "Hub",
    "KeepalivePolicy",
    "Network",
    "RateLimiter",
    "RoomSubscribers",
    "SignInThrottle",
    "TokenBucket",
    "Verdict",
    "check_password",
    "check_room",
    "check_text",
    "check_username",
    "client_key",
    "parse_networks",
]
