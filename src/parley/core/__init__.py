"""Chat rules without I/O: names, limits, subscriptions and presence, ordering."""

from parley.core.addresses import Network, client_key, parse_networks
from parley.core.fairness import FairQueue
from parley.core.feed import Feed, Gap
from parley.core.hub import Hub, RoomSubscribers
from parley.core.keepalive import KeepalivePolicy, Verdict
from parley.core.lifecycle import (
    Close,
    Ending,
    InvalidTransition,
    SocketLifecycle,
    SocketState,
)
from parley.core.limits import (
    ALLOWANCES,
    Action,
    ActionLimits,
    Allowance,
    FailureThrottle,
    RateLimiter,
    SignInThrottle,
    TokenBucket,
    guest_key,
)
from parley.core.mentions import mention_keys
from parley.core.names import (
    GENERAL,
    check_password,
    check_room,
    check_room_ref,
    check_text,
    check_username,
    one_line,
    text_refusal,
)
from parley.core.presence import PresenceGrace
from parley.core.recent import RecentEvents
from parley.core.roomnames import (
    DM,
    NamedRoom,
    first_use_counts,
    name_of,
    ref_of,
    references,
    resolve,
    room_key,
)
from parley.core.signouts import Hint, RecentSignOuts
from parley.core.throttle import TYPING_EVERY, TypingThrottle

__all__ = [
    "ALLOWANCES",
    "DM",
    "GENERAL",
    "TYPING_EVERY",
    "Action",
    "ActionLimits",
    "Allowance",
    "Close",
    "Ending",
    "FailureThrottle",
    "FairQueue",
    "Feed",
    "Gap",
    "Hint",
    "Hub",
    "InvalidTransition",
    "KeepalivePolicy",
    "NamedRoom",
    "Network",
    "PresenceGrace",
    "RateLimiter",
    "RecentEvents",
    "RecentSignOuts",
    "RoomSubscribers",
    "SignInThrottle",
    "SocketLifecycle",
    "SocketState",
    "TokenBucket",
    "TypingThrottle",
    "Verdict",
    "check_password",
    "check_room",
    "check_room_ref",
    "check_text",
    "check_username",
    "client_key",
    "first_use_counts",
    "guest_key",
    "mention_keys",
    "name_of",
    "one_line",
    "parse_networks",
    "ref_of",
    "references",
    "resolve",
    "room_key",
    "text_refusal",
]
