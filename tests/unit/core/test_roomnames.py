"""core/roomnames.py: which room a name means to whom."""

from __future__ import annotations

import math
from dataclasses import dataclass

from parley.core import DM, Hub, first_use_counts, name_of, ref_of, references, resolve, room_key


@dataclass(frozen=True)
class Room:
    room: str
    name: str
    tag: str
    since: float
    kind: str = "room"


OLD = Room("club", "club", "aaaaaaaaaaaaaaaa", 5.0)  # first with the name, seen later
OWN = Room("club~bbbbbbbbbbbbbbbb", "club", "bbbbbbbbbbbbbbbb", 4.0)  # seen first by this user
OTHER = Room("lobby", "lobby", "cccccccccccccccc", 1.0)


def test_a_bare_name_means_the_room_seen_longest() -> None:
    assert resolve("club", [OLD, OWN, OTHER]) is OWN
    assert resolve("club", [OWN, OLD]) is OWN  # not the order given
    assert resolve("lobby", [OLD, OWN, OTHER]) is OTHER
    assert resolve("nothing", [OLD, OWN, OTHER]) is None


def test_equal_sight_falls_back_to_the_key() -> None:
    first = Room("x", "x", "1111111111111111", 0.0)
    second = Room("x~2222222222222222", "x", "2222222222222222", 0.0)
    assert resolve("x", [second, first]) is first


def test_a_tag_names_one_visible_room_of_that_name() -> None:
    assert resolve("club~aaaaaaaaaaaaaaaa", [OLD, OWN]) is OLD
    assert resolve("club~bbbbbbbbbbbbbbbb", [OLD, OWN]) is OWN
    assert resolve("club~cccccccccccccccc", [OLD, OWN, OTHER]) is None  # another name's tag
    assert resolve("club~aaaaaaaaaaaaaaaa", [OWN]) is None  # not visible: as if missing


def test_what_a_user_calls_each_room() -> None:
    assert ref_of(OWN, [OLD, OWN]) == "club"
    assert ref_of(OLD, [OLD, OWN]) == "club~aaaaaaaaaaaaaaaa"
    assert ref_of(OLD, [OLD]) == "club"
    assert references([OTHER, OLD, OWN]) == [
        ("club", OWN),
        ("club~aaaaaaaaaaaaaaaa", OLD),
        ("lobby", OTHER),
    ]


def test_a_dm_is_always_called_by_its_tag() -> None:
    dm = Room("dm~dddddddddddddddd", "dm", "dddddddddddddddd", 0.0, kind=DM)
    room = Room("dm", "dm", "eeeeeeeeeeeeeeee", 9.0)  # a room someone named "dm", seen later
    assert resolve("dm", [dm]) is None  # a bare name never means a DM
    assert resolve("dm", [dm, room]) is room
    assert resolve("dm~dddddddddddddddd", [dm, room]) is dm
    assert ref_of(dm, [dm]) == "dm~dddddddddddddddd"
    assert references([dm, room]) == [("dm", room), ("dm~dddddddddddddddd", dm)]


def test_names_and_keys() -> None:
    assert name_of("club~aaaaaaaaaaaaaaaa") == name_of("club") == "club"
    assert room_key("club", "aaaaaaaaaaaaaaaa", name_taken=False) == "club"
    assert room_key("club", "aaaaaaaaaaaaaaaa", name_taken=True) == "club~aaaaaaaaaaaaaaaa"


def test_only_an_unused_public_room_under_a_key_of_its_own_records_a_first_use() -> None:
    assert first_use_counts(Room("x~aaaaaaaaaaaaaaaa", "x", "aaaaaaaaaaaaaaaa", math.inf))
    assert not first_use_counts(Room("x", "x", "aaaaaaaaaaaaaaaa", math.inf))  # never shared
    assert not first_use_counts(Room("x~aaaaaaaaaaaaaaaa", "x", "aaaaaaaaaaaaaaaa", 7.0))


def test_hub_frames_an_aliased_replaying_subscriber_apart() -> None:
    hub: Hub[str] = Hub()
    hub.subscribe("plain-ref", "ann", "club")
    hub.subscribe("aliased", "bob", "club", alias="club~aaaaaaaaaaaaaaaa")
    subs = hub.deliver("club", b"as club", lambda ref: f"as {ref}".encode())
    assert subs is not None
    assert subs.replaying == {"plain-ref": [b"as club"], "aliased": [b"as club~aaaaaaaaaaaaaaaa"]}
    assert subs.aliases == {"aliased": "club~aaaaaaaaaaaaaaaa"}
    hub.unsubscribe("aliased", "bob", "club")
    assert subs.aliases == {}
