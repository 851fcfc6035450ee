"""Admins over the API (docs/protocol.md "Admin"), on SQLite and on PostgreSQL: roles,
bans (sign-in refused, sockets closed with 4003), invite codes and registration modes, the
audit log, and an admin's rights in rooms."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.support.api import (
    DEFAULT_PASSWORD,
    AsyncApi,
    ServerFactory,
    User,
    assert_error,
    unique_name,
)
from tests.support.client import open_plain, open_ws
from tests.support.pg import PgServer
from tests.support.server import ServerProcess

pytestmark = pytest.mark.timeout(120)


@dataclass(frozen=True)
class Site:
    server: ServerProcess
    admin: User  # the first account registered


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    """A server per store whose first account (the admin) is registered before any test."""
    args = ["--register-limit", "0", "--rate-limit", "0"]
    if request.param == "postgres":
        pg: PgServer = request.getfixturevalue("pg_server")
        args += ["--db", pg.create_database()]
    proc = ServerProcess(tmp_path_factory.mktemp(f"admin-{request.param}"), args).start()
    try:
        name = unique_name("admin")
        resp = httpx.post(
            f"{proc.url}/api/register", json={"username": name, "password": DEFAULT_PASSWORD}
        )
        assert resp.status_code == 201, resp.text
        yield Site(proc, User(name, DEFAULT_PASSWORD, resp.json()["token"]))
    finally:
        proc.stop()


@pytest.fixture
async def api(site: Site) -> AsyncIterator[AsyncApi]:
    async with AsyncApi(site.server.url) as client:
        yield client


@pytest.fixture
def admin(site: Site) -> User:
    return site.admin


@contextlib.asynccontextmanager
async def registration(api: AsyncApi, admin: User, mode: str) -> AsyncIterator[None]:
    """The server's registration mode is `mode` within (open again after)."""
    resp = await api.request(
        "PATCH", "/api/admin/settings", token=admin.token, json={"registration": mode}
    )
    assert resp.json() == {"registration": mode}, resp.text
    try:
        yield
    finally:
        await api.request(
            "PATCH", "/api/admin/settings", token=admin.token, json={"registration": "open"}
        )


async def audit(api: AsyncApi, admin: User, **params: int) -> list[dict[str, object]]:
    resp = await api.get("/api/admin/audit", token=admin.token, params=params)
    assert resp.status_code == 200, resp.text
    entries: list[dict[str, object]] = resp.json()["entries"]
    return entries


async def new_invite(api: AsyncApi, admin: User, **body: int) -> dict[str, str]:
    resp = await api.post("/api/invites", token=admin.token, json=body)
    assert resp.status_code == 201, resp.text
    found: dict[str, str] = resp.json()
    return found


def parse_ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# --- who is an admin ------------------------------------------------------------------


async def test_the_first_account_is_the_admin_in_me_and_hello(
    site: Site, api: AsyncApi, admin: User
) -> None:
    other = await api.register()
    for user, expected in ((admin, True), (other, False)):
        me = await api.get("/api/me", token=user.token)
        assert me.json() == {"username": user.username, "admin": expected}
        ws = await open_ws(site.server.ws_url, user.token)
        try:
            assert ws.hello["admin"] is expected
        finally:
            await ws.close()


ADMIN_ENDPOINTS = [
    ("GET", "/api/admin/users", None),
    ("PUT", "/api/admin/users/{name}/admin", None),
    ("DELETE", "/api/admin/users/{name}/admin", None),
    ("POST", "/api/admin/users/{name}/ban", None),
    ("DELETE", "/api/admin/users/{name}/ban", None),
    ("GET", "/api/admin/settings", None),
    ("PATCH", "/api/admin/settings", {"registration": "closed"}),
    ("POST", "/api/invites", {}),
    ("GET", "/api/invites", None),
    ("DELETE", "/api/invites/nosuch", None),
    ("GET", "/api/admin/audit", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_ENDPOINTS)
async def test_admin_endpoints_need_an_admin(
    api: AsyncApi, admin: User, method: str, path: str, body: object
) -> None:
    user = await api.register()
    path = path.format(name=user.username)
    assert_error(await api.request(method, path, json=body), 401, "unauthorized")
    assert_error(await api.request(method, path, token=user.token, json=body), 403, "forbidden")
    me = await api.get("/api/me", token=user.token)
    assert me.json()["admin"] is False
    settings = await api.get("/api/admin/settings", token=admin.token)
    assert settings.json() == {"registration": "open"}  # the refused PATCH changed nothing


# --- the list of accounts -------------------------------------------------------------


async def test_accounts_are_listed_by_name_with_their_roles(api: AsyncApi, admin: User) -> None:
    tag = unique_name("")
    names = [f"B{tag}", f"a{tag}", f"c{tag}"]
    for name in names:
        await api.register(name)
    resp = await api.get("/api/admin/users", token=admin.token, params={"q": tag.upper()})
    users = resp.json()["users"]
    assert [u["username"] for u in users] == [f"a{tag}", f"B{tag}", f"c{tag}"]
    assert {(u["admin"], u["banned"]) for u in users} == {(False, False)}
    assert all(parse_ts(u["created_at"]).tzinfo is not None for u in users)
    page = await api.get(
        "/api/admin/users", token=admin.token, params={"q": tag, "after": f"b{tag}", "limit": 1}
    )
    assert [u["username"] for u in page.json()["users"]] == [f"c{tag}"]
    mine = await api.get("/api/admin/users", token=admin.token, params={"q": admin.username})
    assert mine.json()["users"][0]["admin"] is True


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 101}, {"limit": "x"}])
async def test_a_bad_page_of_accounts_is_a_bad_request(
    api: AsyncApi, admin: User, params: dict[str, object]
) -> None:
    resp = await api.get("/api/admin/users", token=admin.token, params=params)
    assert_error(resp, 400, "bad_request")


# --- roles ------------------------------------------------------------------------------


async def test_a_granted_admin_acts_and_a_revoked_one_no_longer(api: AsyncApi, admin: User) -> None:
    helper = await api.register()
    path = f"/api/admin/users/{helper.username.upper()}/admin"  # any spelling
    assert (await api.request("PUT", path, token=admin.token)).status_code == 204
    assert (await api.get("/api/admin/audit", token=helper.token)).status_code == 200
    assert (await api.get("/api/me", token=helper.token)).json()["admin"] is True
    assert (await api.request("DELETE", path, token=admin.token)).status_code == 204
    assert_error(await api.get("/api/admin/audit", token=helper.token), 403, "forbidden")
    entries = await audit(api, admin, limit=2)
    assert [(e["actor"], e["action"], e["target"]) for e in entries] == [
        (admin.username, "revoke", helper.username),
        (admin.username, "grant", helper.username),
    ]


async def test_an_open_socket_hears_its_role_change(site: Site, api: AsyncApi, admin: User) -> None:
    """Granted or revoked, the account's open parley.v1 sockets hear it at once; a
    plain-text socket hears nothing of it (its next line is the next message)."""
    helper = await api.register()
    ws = await open_ws(site.server.ws_url, helper.token)
    assert ws.hello["admin"] is False
    plain = await open_plain(site.server.ws_url, helper.token)
    path = f"/api/admin/users/{helper.username.upper()}/admin"
    try:
        assert (await api.request("PUT", path, token=admin.token)).status_code == 204
        assert await ws.recv_type("account") == {"type": "account", "admin": True}
        assert (await api.request("PUT", path, token=admin.token)).status_code == 204  # no change
        assert (await api.request("DELETE", path, token=admin.token)).status_code == 204
        assert await ws.recv_type("account") == {"type": "account", "admin": False}
        await ws.send_ok("general", "after the role changes")
        line = await asyncio.wait_for(plain.recv(), 10)
        assert line == f"{helper.username}: after the role changes"
    finally:
        await ws.close()
        await plain.close()


async def test_revoking_yourself_is_a_conflict_and_changes_nothing(
    api: AsyncApi, admin: User
) -> None:
    before = await audit(api, admin, limit=1)
    path = f"/api/admin/users/{admin.username}/admin"
    error = assert_error(await api.request("DELETE", path, token=admin.token), 409, "conflict")
    assert "your own" in error["message"]
    assert (await api.get("/api/me", token=admin.token)).json()["admin"] is True
    assert await audit(api, admin, limit=1) == before


@pytest.mark.parametrize(
    ("method", "suffix"),
    [("PUT", "admin"), ("DELETE", "admin"), ("POST", "ban"), ("DELETE", "ban")],
)
async def test_an_unknown_user_is_not_found(
    api: AsyncApi, admin: User, method: str, suffix: str
) -> None:
    path = f"/api/admin/users/{unique_name('nobody')}/{suffix}"
    assert_error(await api.request(method, path, token=admin.token), 404, "not_found")


# --- bans -------------------------------------------------------------------------------


async def test_a_ban_closes_sockets_with_4003_and_refuses_sign_in(
    site: Site, api: AsyncApi, admin: User
) -> None:
    user = await api.register()
    ws = await open_ws(site.server.ws_url, user.token)
    ban = f"/api/admin/users/{user.username}/ban"
    assert (await api.post(ban, token=admin.token)).status_code == 204
    assert await ws.wait_closed() == 4003
    assert_error(await api.get("/api/me", token=user.token), 401, "unauthorized")
    refused = assert_error(await api.login_raw(user.username, user.password), 403, "forbidden")
    assert refused["message"] == "this account is banned"
    wrong = await api.login_raw(user.username, "not the password at all")
    assert_error(wrong, 401, "unauthorized")  # a ban is said only to who knows the password
    listed = await api.get("/api/admin/users", token=admin.token, params={"q": user.username})
    assert listed.json()["users"][0]["banned"] is True
    assert (await api.request("DELETE", ban, token=admin.token)).status_code == 204
    await api.login(user)


async def test_banning_yourself_or_an_admin_is_a_conflict(api: AsyncApi, admin: User) -> None:
    other = await api.register()
    grant = f"/api/admin/users/{other.username}/admin"
    assert (await api.request("PUT", grant, token=admin.token)).status_code == 204
    try:
        for target in (admin, other):
            resp = await api.post(f"/api/admin/users/{target.username}/ban", token=admin.token)
            assert_error(resp, 409, "conflict")
        assert (await api.get("/api/me", token=other.token)).json()["admin"] is True
    finally:
        await api.request("DELETE", grant, token=admin.token)


# --- registration modes and invites -----------------------------------------------------


async def public_mode(api: AsyncApi) -> object:
    """The registration mode as anyone sees it, signed in or not (GET /api/registration)."""
    resp = await api.get("/api/registration")
    assert resp.status_code == 200, resp.text
    return resp.json()["registration"]


async def test_settings_change_the_registration_mode(api: AsyncApi, admin: User) -> None:
    resp = await api.get("/api/admin/settings", token=admin.token)
    assert resp.json() == {"registration": "open"}
    assert await public_mode(api) == "open"
    async with registration(api, admin, "closed"):
        refused = await api.register_raw(unique_name(), DEFAULT_PASSWORD)
        assert_error(refused, 403, "forbidden")
        assert (await api.get("/api/admin/settings", token=admin.token)).json() == {
            "registration": "closed"
        }
        assert await public_mode(api) == "closed"
    async with registration(api, admin, "invite"):
        assert await public_mode(api) == "invite"
    assert await public_mode(api) == "open"
    await api.register()
    entries = await audit(api, admin, limit=4)
    assert [(e["action"], e["target"]) for e in entries] == [
        ("registration", "open"),
        ("registration", "invite"),
        ("registration", "open"),
        ("registration", "closed"),
    ]


@pytest.mark.parametrize("body", [{"registration": "maybe"}, {}, {"registration": None}])
async def test_a_bad_registration_mode_is_a_bad_request(
    api: AsyncApi, admin: User, body: dict[str, object]
) -> None:
    resp = await api.request("PATCH", "/api/admin/settings", token=admin.token, json=body)
    assert_error(resp, 400, "bad_request")


async def test_an_invite_lets_one_person_in(api: AsyncApi, admin: User) -> None:
    async with registration(api, admin, "invite"):
        made = await new_invite(api, admin)
        expires = parse_ts(made["expires_at"]) - datetime.now(UTC)
        assert timedelta(days=7) - timedelta(minutes=5) < expires <= timedelta(days=7)
        first, second = unique_name(), unique_name()
        without = await api.register_raw(first, DEFAULT_PASSWORD)
        assert_error(without, 403, "forbidden")
        body = {"username": first, "password": DEFAULT_PASSWORD, "invite": made["code"]}
        assert (await api.post("/api/register", json=body)).status_code == 201
        again = {**body, "username": second}
        assert_error(await api.post("/api/register", json=again), 403, "forbidden")
        unknown = {**again, "invite": "not-a-code"}
        assert_error(await api.post("/api/register", json=unknown), 403, "forbidden")
    listed = (await api.get("/api/invites", token=admin.token)).json()["invites"]
    entry = next(i for i in listed if i["code"] == made["code"])
    assert (entry["created_by"], entry["used_by"]) == (admin.username, first)
    assert parse_ts(entry["created_at"]) <= parse_ts(entry["used_at"])
    assert entry["expires_at"] == made["expires_at"]


async def test_invites_are_listed_newest_first_and_revoked(api: AsyncApi, admin: User) -> None:
    older = await new_invite(api, admin, expires_in=60)
    newer = await new_invite(api, admin, expires_in=2592000)
    listed = (await api.get("/api/invites", token=admin.token)).json()["invites"]
    codes = [i["code"] for i in listed]
    assert codes.index(newer["code"]) < codes.index(older["code"])
    assert listed[codes.index(older["code"])]["used_by"] is None
    assert listed[codes.index(older["code"])]["used_at"] is None
    revoke = f"/api/invites/{older['code']}"
    assert (await api.request("DELETE", revoke, token=admin.token)).status_code == 204
    assert_error(await api.request("DELETE", revoke, token=admin.token), 404, "not_found")
    listed = (await api.get("/api/invites", token=admin.token)).json()["invites"]
    assert older["code"] not in [i["code"] for i in listed]
    async with registration(api, admin, "invite"):
        body = {"username": unique_name(), "password": DEFAULT_PASSWORD, "invite": older["code"]}
        assert_error(await api.post("/api/register", json=body), 403, "forbidden")
    entries = await audit(api, admin, limit=4)
    assert (entries[2]["action"], entries[2]["target"]) == ("invite_revoke", older["code"])


@pytest.mark.parametrize("body", [{"expires_in": 59}, {"expires_in": 2592001}, {"expires_in": "1"}])
async def test_a_bad_invite_lifetime_is_a_bad_request(
    api: AsyncApi, admin: User, body: dict[str, object]
) -> None:
    assert_error(await api.post("/api/invites", token=admin.token, json=body), 400, "bad_request")


async def test_in_open_mode_an_invite_is_not_needed_nor_used(api: AsyncApi, admin: User) -> None:
    made = await new_invite(api, admin)
    body = {"username": unique_name(), "password": DEFAULT_PASSWORD, "invite": made["code"]}
    assert (await api.post("/api/register", json=body)).status_code == 201
    listed = (await api.get("/api/invites", token=admin.token)).json()["invites"]
    assert next(i for i in listed if i["code"] == made["code"])["used_by"] is None


# --- the audit log and an admin's rights in rooms -----------------------------------------


async def test_an_admin_moderates_any_room_and_it_is_audited(api: AsyncApi, admin: User) -> None:
    owner, member = await api.register(), await api.register()
    room = f"r{unique_name()}".lower()
    await api.create_room(owner.token, room)
    msg = await api.send(member.token, room, "spam")
    general = await api.send(member.token, "general", "spam too")
    delete = f"/api/rooms/{room}/messages/{msg['seq']}"
    assert (await api.request("DELETE", delete, token=admin.token)).status_code == 204
    delete = f"/api/rooms/general/messages/{general['seq']}"
    assert (await api.request("DELETE", delete, token=admin.token)).status_code == 204
    topic = await api.request(
        "PATCH", "/api/rooms/general", token=admin.token, json={"topic": "be kind"}
    )
    assert topic.json()["topic"] == "be kind"
    remove = f"/api/rooms/{room}/members/{member.username}"
    assert (await api.request("DELETE", remove, token=admin.token)).status_code == 204
    entries = await audit(api, admin, limit=4)
    assert [(e["actor"], e["action"], e["target"], e["room"]) for e in entries] == [
        (admin.username, "remove_member", member.username, room),
        (admin.username, "topic", "be kind", "general"),
        (admin.username, "delete_message", member.username, "general"),
        (admin.username, "delete_message", member.username, room),
    ]
    assert all(isinstance(e["id"], int) and parse_ts(str(e["ts"])) for e in entries)


async def test_an_owner_moderates_their_room_only(api: AsyncApi, admin: User) -> None:
    owner, member = await api.register(), await api.register()
    room = f"r{unique_name()}".lower()
    await api.create_room(owner.token, room)
    msg = await api.send(member.token, room, "off topic")
    general = await api.send(member.token, "general", "hello")
    delete = f"/api/rooms/general/messages/{general['seq']}"
    assert_error(await api.request("DELETE", delete, token=owner.token), 403, "forbidden")
    topic = await api.request("PATCH", "/api/rooms/general", token=owner.token, json={"topic": "x"})
    assert_error(topic, 403, "forbidden")
    delete = f"/api/rooms/{room}/messages/{msg['seq']}"
    assert (await api.request("DELETE", delete, token=owner.token)).status_code == 204
    own_topic = await api.request(
        "PATCH", f"/api/rooms/{room}", token=owner.token, json={"topic": "mine"}
    )
    assert own_topic.status_code == 200
    ban = await api.post(f"/api/admin/users/{member.username}/ban", token=owner.token)
    assert_error(ban, 403, "forbidden")
    entries = await audit(api, admin, limit=1)
    assert [(e["actor"], e["action"], e["target"], e["room"]) for e in entries] == [
        (owner.username, "delete_message", member.username, room),
    ]


async def test_the_audit_log_pages_back(api: AsyncApi, admin: User) -> None:
    for _ in range(3):
        await new_invite(api, admin)
    newest = await audit(api, admin, limit=2)
    before = newest[-1]["id"]
    assert isinstance(before, int)
    older = await audit(api, admin, before=before, limit=1)
    assert [e["id"] for e in older] == [before - 1]
    assert_error(
        await api.get("/api/admin/audit", token=admin.token, params={"limit": 101}),
        400,
        "bad_request",
    )


async def test_first_registrations_at_once_make_one_admin(server_factory: ServerFactory) -> None:
    server = server_factory(["--register-limit", "0"])
    async with AsyncApi(server.url) as fresh:
        people = await asyncio.gather(*(fresh.register() for _ in range(8)))
        admins = [
            p.username
            for p in people
            if (await fresh.get("/api/me", token=p.token)).json()["admin"]
        ]
        assert len(admins) == 1
