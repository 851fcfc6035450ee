"""Contract: /healthz, GET /, rooms, invites, private rooms, history paging, REST send."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.support.api import DEFAULT_PASSWORD, AsyncApi, Fresh, User, assert_error, unique_name
from tests.support.client import new_client_id
from tests.support.server import ServerProcess

MESSAGE_KEYS = {"room", "seq", "username", "text", "ts", "client_id"}


def assert_message(msg: dict[str, Any], room: str, username: str, text: str) -> None:
    assert set(msg) >= MESSAGE_KEYS, msg
    assert msg["room"] == room
    assert msg["username"] == username
    assert msg["text"] == text
    assert isinstance(msg["seq"], int)
    assert isinstance(msg["ts"], str)
    ts = datetime.fromisoformat(msg["ts"])
    assert ts.utcoffset() == timedelta(0), msg["ts"]
    age = datetime.now(ts.tzinfo) - ts
    assert timedelta(minutes=-5) < age < timedelta(hours=1), msg["ts"]


async def test_healthz_200(shared_api: AsyncApi) -> None:
    assert (await shared_api.get("/healthz")).status_code == 200


async def test_root_serves_browser_client(shared_api: AsyncApi) -> None:
    resp = await shared_api.get("/")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/html"), resp.headers
    assert "<html" in resp.text.lower()


async def test_rooms_require_auth_401(shared_api: AsyncApi) -> None:
    api = shared_api
    assert_error(await api.get("/api/rooms"), 401)
    assert_error(await api.post("/api/rooms", json={"room": "x", "private": False}), 401)
    assert_error(await api.get("/api/rooms/general/messages"), 401)
    assert_error(await api.post("/api/rooms/general/messages", json={"text": "x"}), 401)
    assert_error(await api.post("/api/rooms/general/members", json={"username": "x"}), 401)


async def test_general_always_exists(api: AsyncApi, alice: User) -> None:
    rooms = await api.rooms(alice.token)
    general = [r for r in rooms if r["room"] == "general"]
    assert len(general) == 1, rooms
    assert general[0]["private"] is False
    assert general[0]["last_seq"] == 0
    assert {"room", "private", "last_seq"} <= set(general[0])


async def test_create_public_room_201_visible_to_everyone(
    api: AsyncApi, alice: User, bob: User
) -> None:
    resp = await api.post("/api/rooms", token=alice.token, json={"room": "lobby", "private": False})
    assert resp.status_code == 201, resp.text
    for user in (alice, bob):
        rooms = {r["room"]: r for r in await api.rooms(user.token)}
        assert rooms["lobby"]["private"] is False
        assert rooms["lobby"]["last_seq"] == 0
    # docs/protocol.md (ext): rooms carry their owner
    lobby = next(r for r in await api.rooms(bob.token) if r["room"] == "lobby")
    assert lobby.get("owner") == alice.username
    # bob may post in a public room he did not create
    msg = await api.send(bob.token, "lobby", "hi")
    assert msg["seq"] == 1
    lobby = next(r for r in await api.rooms(alice.token) if r["room"] == "lobby")
    assert lobby["last_seq"] == 1


async def test_create_room_409_when_exists(api: AsyncApi, alice: User, bob: User) -> None:
    await api.create_room(alice.token, "dup")
    for user in (alice, bob):
        for private in (False, True):
            body = {"room": "dup", "private": private}
            r = await api.post("/api/rooms", token=user.token, json=body)
            assert_error(r, 409, "conflict")
    r = await api.post("/api/rooms", token=bob.token, json={"room": "general", "private": False})
    assert_error(r, 409, "conflict")
    # still exactly one room named dup, still public
    rooms = [r for r in await api.rooms(bob.token) if r["room"] == "dup"]
    assert len(rooms) == 1
    assert rooms[0]["private"] is False


@pytest.mark.parametrize("room", ["a", "x" * 64, "a-b_c", "0-9", "___", "r2d2"])
async def test_create_room_accepts_valid_names(fresh: Fresh, room: str) -> None:
    await fresh.api.create_room(fresh.user.token, room)
    assert room in await fresh.api.room_names(fresh.user.token)


@pytest.mark.parametrize(
    "room", ["", "x" * 65, "Upper", "has space", "dot.ted", "slash/room", "ümlaut", "a\nb", "é"]
)
async def test_create_room_rejects_invalid_names_400(fresh: Fresh, room: str) -> None:
    body = {"room": room, "private": False}
    r = await fresh.api.post("/api/rooms", token=fresh.user.token, json=body)
    assert_error(r, 400, "bad_request")
    assert room not in await fresh.api.room_names(fresh.user.token)


@pytest.mark.parametrize(
    "body",
    [
        {"private": False},
        {"room": 5, "private": False},
        {"room": None, "private": False},
        {"room": "okroom", "private": "yes"},
        {"room": "okroom", "private": 1},
        ["okroom"],
    ],
)
async def test_create_room_rejects_malformed_bodies_400(fresh: Fresh, body: object) -> None:
    r = await fresh.api.post("/api/rooms", token=fresh.user.token, json=body)
    assert_error(r, 400, "bad_request")
    assert "okroom" not in await fresh.api.room_names(fresh.user.token)


# -- private rooms ----------------------------------------------------------------------------


async def _not_found_like_missing(api: AsyncApi, user: User, room: str) -> None:
    """Every room endpoint answers for `room` exactly as for a room that does not exist."""
    missing = "nosuchroom"
    calls = [
        ("GET", "/api/rooms/{}/messages", None),
        ("GET", "/api/rooms/{}/messages?limit=5", None),
        ("POST", "/api/rooms/{}/messages", {"text": "peek", "client_id": "c1"}),
        ("POST", "/api/rooms/{}/members", {"username": user.username}),
    ]
    for method, path, body in calls:
        hidden = await api.request(method, path.format(room), token=user.token, json=body)
        absent = await api.request(method, path.format(missing), token=user.token, json=body)
        err_hidden = assert_error(hidden, 404, "not_found")
        err_absent = assert_error(absent, 404, "not_found")
        assert err_hidden["message"].replace(room, "ROOM") == err_absent["message"].replace(
            missing, "ROOM"
        ), (err_hidden, err_absent)
        assert hidden.headers.get("content-type") == absent.headers.get("content-type")


async def test_private_room_invisible_to_non_members(api: AsyncApi, alice: User, bob: User) -> None:
    await api.create_room(alice.token, "secret", private=True)
    await api.send(alice.token, "secret", "for members only")

    owner_view = {r["room"]: r for r in await api.rooms(alice.token)}
    assert owner_view["secret"]["private"] is True
    assert owner_view["secret"]["last_seq"] == 1
    assert "secret" not in await api.room_names(bob.token)

    await _not_found_like_missing(api, bob, "secret")
    # bob's attempts stored nothing and added no member
    assert [m["text"] for m in await api.messages(alice.token, "secret")] == ["for members only"]
    assert "secret" not in await api.room_names(bob.token)


async def test_invite_makes_private_room_visible_and_members_can_invite(
    api: AsyncApi, alice: User, bob: User
) -> None:
    carol = await api.register()
    dave = await api.register()
    await api.create_room(alice.token, "club", private=True)
    await api.send(alice.token, "club", "welcome")

    resp = await api.invite(alice.token, "club", bob.username)
    assert resp.status_code == 201, resp.text
    assert "club" in await api.room_names(bob.token)
    assert [m["text"] for m in await api.messages(bob.token, "club")] == ["welcome"]
    msg = await api.send(bob.token, "club", "thanks")
    assert msg["seq"] == 3  # after "welcome" and the invitation's member event

    # a member (not the owner) invites another user
    resp = await api.invite(bob.token, "club", carol.username)
    assert resp.status_code == 201, resp.text
    assert "club" in await api.room_names(carol.token)
    assert [m["seq"] for m in await api.messages(carol.token, "club")] == [1, 3]  # messages only

    # a non-member can neither invite nor see it
    assert_error(await api.invite(dave.token, "club", dave.username), 404, "not_found")
    assert "club" not in await api.room_names(dave.token)


async def test_invite_malformed_400(api: AsyncApi, alice: User) -> None:
    await api.create_room(alice.token, "club", private=True)
    for body in ({}, {"username": 5}, {"user": "x"}):
        r = await api.post("/api/rooms/club/members", token=alice.token, json=body)
        assert_error(r, 400, "bad_request")


# -- REST send --------------------------------------------------------------------------------


async def test_rest_send_201_message(api: AsyncApi, alice: User) -> None:
    cid = new_client_id()
    resp = await api.send_raw(alice.token, "general", "hello rest", cid)
    assert resp.status_code == 201, resp.text
    msg = resp.json()
    assert_message(msg, "general", alice.username, "hello rest")
    assert msg["seq"] == 1
    assert msg["client_id"] == cid
    assert await api.messages(alice.token, "general") == [msg]


async def test_rest_send_same_client_id_200_same_message_nothing_new(
    api: AsyncApi, alice: User, bob: User
) -> None:
    cid = new_client_id()
    first = await api.send_raw(alice.token, "general", "once", cid)
    assert first.status_code == 201
    again = await api.send_raw(alice.token, "general", "once", cid)
    assert again.status_code == 200, again.text
    assert again.json() == first.json()
    # even a retry with different text returns the first message
    changed = await api.send_raw(alice.token, "general", "changed", cid)
    assert changed.status_code == 200, changed.text
    assert changed.json() == first.json()
    stored = await api.messages(alice.token, "general")
    assert stored == [first.json()]
    # the same client_id from another user is another message
    other = await api.send_raw(bob.token, "general", "mine", cid)
    assert other.status_code == 201, other.text
    assert other.json()["seq"] == 2
    assert other.json()["username"] == bob.username
    rooms = {r["room"]: r for r in await api.rooms(alice.token)}
    assert rooms["general"]["last_seq"] == 2


async def test_rest_send_without_client_id_stores_each(api: AsyncApi, alice: User) -> None:
    a = await api.send(alice.token, "general", "same text")
    b = await api.send(alice.token, "general", "same text")
    assert (a["seq"], b["seq"]) == (1, 2)
    assert "client_id" in a


async def test_rest_send_text_verbatim(api: AsyncApi, alice: User) -> None:
    text = "<script>alert('x')</script> &amp; \"q\" ünïcödé 🎉\n\ttabbed  \\ end "
    msg = await api.send(alice.token, "general", text)
    assert msg["text"] == text
    assert (await api.messages(alice.token, "general"))[0]["text"] == text


async def test_rest_send_4000_chars_ok_4001_too_large_not_stored(
    api: AsyncApi, alice: User
) -> None:
    ok = await api.send(alice.token, "general", "x" * 4000)
    assert ok["seq"] == 1
    emoji = await api.send(alice.token, "general", "🎉" * 4000)  # characters, not bytes
    assert emoji["seq"] == 2
    # docs/protocol.md (ext): too_large is 413 over HTTP
    assert_error(await api.send_raw(alice.token, "general", "y" * 4001, "big"), 413, "too_large")
    assert [m["seq"] for m in await api.messages(alice.token, "general")] == [1, 2]
    # the refused client_id is not burnt: a valid retry with it is stored
    retry = await api.send_raw(alice.token, "general", "short now", "big")
    assert retry.status_code == 201, retry.text
    assert retry.json()["seq"] == 3


async def test_rest_send_with_a_nul_is_a_bad_request_not_stored(api: AsyncApi, alice: User) -> None:
    """No database stores NUL in text; refused up front, the same on SQLite and PostgreSQL."""
    assert_error(await api.send_raw(alice.token, "general", "a\x00b", "n1"), 400, "bad_request")
    assert_error(await api.send_raw(alice.token, "general", "ab", "n\x002"), 400, "bad_request")
    assert await api.messages(alice.token, "general") == []


@pytest.mark.parametrize(
    "body",
    [{}, {"text": 5}, {"text": None}, {"text": "x", "client_id": 7}, ["x"], "x"],
)
async def test_rest_send_malformed_400(fresh: Fresh, body: object) -> None:
    path = f"/api/rooms/{fresh.room}/messages"
    r = await fresh.api.post(path, token=fresh.user.token, json=body)
    assert_error(r, 400, "bad_request")
    assert await fresh.api.messages(fresh.user.token, fresh.room) == []


async def test_rest_send_unknown_room_404(fresh: Fresh) -> None:
    token = fresh.user.token
    assert_error(await fresh.api.send_raw(token, "nosuchroom", "x"), 404, "not_found")
    assert_error(await fresh.api.messages_raw(token, "nosuchroom"), 404, "not_found")


# -- history paging ---------------------------------------------------------------------------

TOTAL = 120


@pytest.fixture(scope="module")
def paged_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, User]]:
    """One server whose general holds m1..m120 (seq 1..120); the paging tests only read."""
    srv = ServerProcess(tmp_path_factory.mktemp("paged"), ["--rate-limit", "0"])
    try:
        srv.start()
        name = unique_name()
        with httpx.Client(base_url=srv.url, trust_env=False, timeout=30) as http:
            resp = http.post("/api/register", json={"username": name, "password": DEFAULT_PASSWORD})
            assert resp.status_code == 201, resp.text
            user = User(name, DEFAULT_PASSWORD, resp.json()["token"])
            for i in range(1, TOTAL + 1):
                resp = http.post(
                    "/api/rooms/general/messages", json={"text": f"m{i}"}, headers=user.headers
                )
                assert resp.status_code == 201, resp.text
                assert resp.json()["seq"] == i
        yield srv, user
    finally:
        srv.stop()


@pytest.fixture
async def paged(paged_server: tuple[ServerProcess, User]) -> AsyncIterator[tuple[AsyncApi, User]]:
    srv, user = paged_server
    async with AsyncApi(srv.url) as api:
        yield api, user


def seqs(msgs: list[dict[str, Any]]) -> list[int]:
    return [int(m["seq"]) for m in msgs]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, list(range(71, 121))),  # neither: the latest 50
        ({"limit": 1}, [120]),
        ({"limit": 100}, list(range(21, 121))),
        ({"after": 0}, list(range(1, 51))),  # after: the first N with seq > S
        ({"after": 5, "limit": 3}, [6, 7, 8]),
        ({"after": 117, "limit": 10}, [118, 119, 120]),
        ({"after": 120}, []),
        ({"after": 500}, []),
        ({"before": 5, "limit": 3}, [2, 3, 4]),  # before: the last N with seq < S
        ({"before": 3, "limit": 10}, [1, 2]),
        ({"before": 1}, []),
        ({"before": 121}, list(range(71, 121))),
        ({"before": 101, "limit": 100}, list(range(1, 101))),
        ({"before": 1000, "limit": 2}, [119, 120]),
    ],
)
async def test_history_paging(
    paged: tuple[AsyncApi, User], params: dict[str, int], expected: list[int]
) -> None:
    api, user = paged
    msgs = await api.messages(user.token, "general", **params)
    assert seqs(msgs) == expected
    assert [m["text"] for m in msgs] == [f"m{s}" for s in expected]
    for m in msgs:
        assert_message(m, "general", user.username, str(m["text"]))


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 101},
        {"limit": -1},
        {"limit": "abc"},
        {"before": "abc"},
        {"after": "x"},
        {"after": -1},
        {"before": -5},
    ],
)
async def test_history_paging_bad_params_400(
    paged: tuple[AsyncApi, User], params: dict[str, str | int]
) -> None:
    api, user = paged
    assert_error(await api.messages_raw(user.token, "general", **params), 400, "bad_request")


async def test_history_pages_cover_everything_exactly_once(paged: tuple[AsyncApi, User]) -> None:
    api, user = paged
    forward = await api.all_messages(user.token, "general")
    assert seqs(forward) == list(range(1, TOTAL + 1))
    backward: list[dict[str, Any]] = []
    before = TOTAL + 1
    while True:
        page = await api.messages(user.token, "general", before=before, limit=7)
        if not page:
            break
        assert seqs(page) == sorted(seqs(page))
        backward = page + backward
        before = seqs(page)[0]
    assert backward == forward
