"""Contract: register, login, logout, the session cookie, and no token ever in a URL."""

from __future__ import annotations

import asyncio

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
from tests.support.client import handshake_status, open_ws
from tests.support.server import ServerProcess


@pytest.fixture
async def member(shared_api: AsyncApi) -> User:
    """A user of the module's shared server (`shared_api`): the tests that do not count
    sign-ups, failures or messages run there, not on a server of their own each."""
    return await shared_api.register()


# -- register ---------------------------------------------------------------------------------


async def test_register_201_returns_username_and_working_token(shared_api: AsyncApi) -> None:
    name = unique_name("reg")
    resp = await shared_api.register_raw(name, DEFAULT_PASSWORD)
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["username"] == name
    token = body["token"]
    assert isinstance(token, str)
    # at least 256 bits of randomness: no encoding of 32 random bytes is shorter than 43 chars
    assert len(token) >= 43, token
    me = await shared_api.get("/api/rooms", token=token)
    assert me.status_code == 200, me.text


async def test_two_registrations_get_different_tokens(shared_api: AsyncApi) -> None:
    a = await shared_api.register()
    b = await shared_api.register()
    assert a.token != b.token


@pytest.mark.parametrize(
    "username",
    ["a", "Z", "x" * 32, "A.b-c_9", "...", "---", "___", "0123456789"],
)
async def test_register_accepts_valid_usernames(shared_api: AsyncApi, username: str) -> None:
    resp = await shared_api.register_raw(username, DEFAULT_PASSWORD)
    assert resp.status_code == 201, resp.text
    assert resp.json()["username"] == username


@pytest.mark.parametrize(
    "username",
    ["", "x" * 33, "with space", "ümlaut", "a/b", "a@b", "a:b", "tab\tname", "new\nline", "é"],
)
async def test_register_rejects_invalid_usernames_400(shared_api: AsyncApi, username: str) -> None:
    resp = await shared_api.register_raw(username, DEFAULT_PASSWORD)
    assert_error(resp, 400)


@pytest.mark.parametrize("length", [8, 9, 255, 256])
async def test_register_accepts_password_lengths(shared_api: AsyncApi, length: int) -> None:
    resp = await shared_api.register_raw(unique_name(), "p" * length)
    assert resp.status_code == 201, resp.text


@pytest.mark.parametrize("length", [0, 1, 7, 257, 1000])
async def test_register_rejects_password_lengths_400(shared_api: AsyncApi, length: int) -> None:
    resp = await shared_api.register_raw(unique_name(), "p" * length)
    assert_error(resp, 400)


async def test_password_length_counts_characters_not_bytes(shared_api: AsyncApi) -> None:
    # 8 characters, 16 bytes in UTF-8: valid; 257 characters of 2 bytes: invalid
    assert (await shared_api.register_raw(unique_name(), "é" * 8)).status_code == 201
    assert_error(await shared_api.register_raw(unique_name(), "é" * 257), 400)


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"username": "nopass"},
        {"password": DEFAULT_PASSWORD},
        {"username": 123, "password": DEFAULT_PASSWORD},
        {"username": "okname", "password": 12345678},
        {"username": None, "password": DEFAULT_PASSWORD},
        ["okname", DEFAULT_PASSWORD],
        "okname",
    ],
)
async def test_register_rejects_malformed_bodies_400(shared_api: AsyncApi, body: object) -> None:
    assert_error(await shared_api.post("/api/register", json=body), 400)


async def test_register_rejects_non_json(shared_api: AsyncApi) -> None:
    resp = await shared_api.post(
        "/api/register", content=b"username=x&password=y", headers={"Content-Type": "text/plain"}
    )
    assert_error(resp, 415, "unsupported_media_type")
    resp = await shared_api.post(
        "/api/register", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert_error(resp, 400)


async def test_register_taken_409(shared_api: AsyncApi) -> None:
    user = await shared_api.register()
    err = assert_error(await shared_api.register_raw(user.username, "another password"), 409)
    assert err["code"] == "conflict"
    # the first account is untouched: its password still logs in, the new one does not
    assert (await shared_api.login_raw(user.username, user.password)).status_code == 200
    assert (await shared_api.login_raw(user.username, "another password")).status_code == 401


async def test_register_taken_case_insensitively_409(shared_api: AsyncApi) -> None:
    """docs/protocol.md (ext): usernames are unique case-insensitively; first spelling kept."""
    name = "Mixed" + unique_name()
    await shared_api.register(name)
    assert_error(await shared_api.register_raw(name.lower(), DEFAULT_PASSWORD), 409)
    assert_error(await shared_api.register_raw(name.upper(), DEFAULT_PASSWORD), 409)


# -- login ------------------------------------------------------------------------------------


async def test_login_200_returns_new_working_token(shared_api: AsyncApi, member: User) -> None:
    resp = await shared_api.login_raw(member.username, member.password)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["username"] == member.username
    assert isinstance(body["token"], str)
    assert len(body["token"]) >= 43
    assert body["token"] != member.token
    assert (await shared_api.get("/api/rooms", token=body["token"])).status_code == 200
    # the registration token stays valid too: logging in elsewhere does not log you out
    assert (await shared_api.get("/api/rooms", token=member.token)).status_code == 200


async def test_login_wrong_password_401(shared_api: AsyncApi, member: User) -> None:
    assert_error(await shared_api.login_raw(member.username, "wrong password"), 401)


async def test_login_unknown_user_401_same_as_wrong_password(
    shared_api: AsyncApi, member: User
) -> None:
    wrong = assert_error(await shared_api.login_raw(member.username, "wrong password"), 401)
    unknown = assert_error(await shared_api.login_raw(unique_name("ghost"), "wrong password"), 401)
    assert wrong["code"] == unknown["code"]


async def test_login_malformed_body_400(shared_api: AsyncApi) -> None:
    assert_error(await shared_api.post("/api/login", json={"username": "x"}), 400)
    assert_error(await shared_api.post("/api/login", json=[1, 2]), 400)


async def test_login_429_after_repeated_failures_per_username(api: AsyncApi) -> None:
    victim = await api.register()
    other = await api.register()
    statuses: list[int] = []
    for _ in range(10):
        resp = await api.login_raw(victim.username, "wrong password")
        statuses.append(resp.status_code)
        if resp.status_code == 429:
            err = assert_error(resp, 429)
            assert err["code"] == "rate_limited"
            break
    assert statuses[0] == 401, statuses
    assert statuses[-1] == 429, f"never throttled after {len(statuses)} failures: {statuses}"
    assert set(statuses[:-1]) == {401}, statuses
    # throttled means throttled: even the right password is refused for now
    assert (await api.login_raw(victim.username, victim.password)).status_code == 429
    # other usernames from the same address are not affected (fewer failures than the
    # per-address limit so far)
    assert (await api.login_raw(other.username, other.password)).status_code == 200
    # existing sessions of the throttled user keep working
    assert (await api.get("/api/rooms", token=victim.token)).status_code == 200


async def test_login_429_after_repeated_failures_per_address(
    server_factory: ServerFactory,
) -> None:
    # --login-limit 1: the per-address ceiling is 20 x 1, few enough failures to fit in the
    # 60 s window on a slow machine (120 argon2 checks at load 24 did not)
    srv = server_factory(["--login-limit", "1"])
    async with AsyncApi(srv.url) as api:
        victim = await api.register()
        statuses: list[int] = []
        for _ in range(30):
            # a different username every time: only the per-address counter can trip
            resp = await api.login_raw(unique_name("spray"), "wrong password")
            statuses.append(resp.status_code)
            if resp.status_code == 429:
                break
        assert statuses[0] == 401, statuses
        assert statuses[-1] == 429, f"never throttled after {len(statuses)} failures"
        assert set(statuses[:-1]) == {401}, statuses
        assert len(statuses) == 21, statuses  # the 21st failure from one address
        # the whole address is throttled, including a correct login for another user
        assert (await api.login_raw(victim.username, victim.password)).status_code == 429
        # tokens already issued keep working
        assert (await api.get("/api/rooms", token=victim.token)).status_code == 200


async def test_register_429_after_the_hourly_allowance_per_address(
    server_factory: ServerFactory,
) -> None:
    srv = server_factory(["--register-limit", "3"])
    async with AsyncApi(srv.url) as api:
        for _ in range(3):
            await api.register()
        refused = await api.register_raw(unique_name(), DEFAULT_PASSWORD)
        err = assert_error(refused, 429, "rate_limited")
        assert "retry_after" in refused.json()["error"], err
        assert int(refused.headers["retry-after"]) > 60  # a new one per 20 minutes
        # no account was made: the name is still free once the bucket refills
        name = unique_name()
        assert_error(await api.register_raw(name, DEFAULT_PASSWORD), 429, "rate_limited")
        assert_error(await api.login_raw(name, DEFAULT_PASSWORD), 401, "unauthorized")


async def test_default_allows_20_new_accounts_per_address_per_hour(api: AsyncApi) -> None:
    statuses = [
        (await api.register_raw(unique_name(), DEFAULT_PASSWORD)).status_code for _ in range(21)
    ]
    assert statuses == [201] * 20 + [429]


async def test_trusted_proxy_limits_each_forwarded_client_not_the_proxy(
    server_factory: ServerFactory,
) -> None:
    srv = server_factory(["--register-limit", "2", "--trusted-proxy", "127.0.0.1"])

    def via_proxy(client: str) -> dict[str, str]:
        # the client wrote a fake first entry; the proxy appended the address it saw
        return {"X-Forwarded-For": f"6.6.6.6, {client}"}

    async with AsyncApi(srv.url) as api:
        for client in ("203.0.113.7", "198.51.100.9"):
            for _ in range(2):
                resp = await api.post(
                    "/api/register",
                    json={"username": unique_name(), "password": DEFAULT_PASSWORD},
                    headers=via_proxy(client),
                )
                assert resp.status_code == 201, resp.text
        third = await api.post(
            "/api/register",
            json={"username": unique_name(), "password": DEFAULT_PASSWORD},
            headers=via_proxy("203.0.113.7"),
        )
        assert_error(third, 429, "rate_limited")


async def test_forwarded_for_from_an_untrusted_peer_is_ignored(
    server_factory: ServerFactory,
) -> None:
    srv = server_factory(["--register-limit", "2"])
    async with AsyncApi(srv.url) as api:
        statuses = [
            (
                await api.post(
                    "/api/register",
                    json={"username": unique_name(), "password": DEFAULT_PASSWORD},
                    headers={"X-Forwarded-For": f"203.0.113.{i}"},
                )
            ).status_code
            for i in range(3)
        ]
    assert statuses == [201, 201, 429]


# -- cookie -----------------------------------------------------------------------------------


def session_cookies(resp: httpx.Response) -> list[tuple[str, str, set[str]]]:
    """(name, value, lower-cased attributes) for every Set-Cookie of a response."""
    out = []
    for header in resp.headers.get_list("set-cookie"):
        first, *attrs = [p.strip() for p in header.split(";")]
        name, _, value = first.partition("=")
        out.append((name, value, {a.lower().replace(" ", "") for a in attrs}))
    return out


async def _check_cookie(api: AsyncApi, resp: httpx.Response) -> str:
    cookies = session_cookies(resp)
    assert cookies, f"no Set-Cookie on {resp.request.url}"
    working = []
    for name, value, attrs in cookies:
        probe = await api.get("/api/rooms", headers={"Cookie": f"{name}={value}"})
        if probe.status_code == 200:
            working.append((name, value, attrs))
    assert len(working) == 1, cookies
    name, value, attrs = working[0]
    assert "httponly" in attrs, attrs
    assert "samesite=lax" in attrs, attrs
    return f"{name}={value}"


async def test_register_sets_httponly_samesite_lax_session_cookie(shared_api: AsyncApi) -> None:
    resp = await shared_api.register_raw(unique_name(), DEFAULT_PASSWORD)
    assert resp.status_code == 201
    await _check_cookie(shared_api, resp)


async def test_login_sets_httponly_samesite_lax_session_cookie(
    shared_api: AsyncApi, member: User
) -> None:
    resp = await shared_api.login_raw(member.username, member.password)
    assert resp.status_code == 200
    cookie = await _check_cookie(shared_api, resp)
    # the cookie also authenticates the WebSocket handshake (no Origin: non-browser, allowed)
    ws_url = shared_api.base_url.replace("http", "ws", 1) + "/chat"
    client = await open_ws(ws_url, cookie=cookie)
    assert client.username == member.username
    await client.close()


async def test_bad_cookie_and_bad_token_401(shared_api: AsyncApi) -> None:
    assert_error(await shared_api.get("/api/rooms"), 401)
    assert_error(await shared_api.get("/api/rooms", token="not-a-token"), 401)
    assert_error(
        await shared_api.get("/api/rooms", headers={"Authorization": "Basic dXNlcjpwYXNz"}),
        401,
    )
    for cookie_name in ("session", "parley_session", "token"):
        resp = await shared_api.get("/api/rooms", headers={"Cookie": f"{cookie_name}=forged"})
        assert_error(resp, 401)


# -- tokens never in a URL --------------------------------------------------------------------


@pytest.mark.parametrize("param", ["token", "access_token", "auth", "bearer", "session"])
async def test_token_in_url_query_is_never_accepted(
    server: ServerProcess, api: AsyncApi, alice: User, param: str
) -> None:
    resp = await api.get("/api/rooms", params={param: alice.token})
    assert_error(resp, 401)
    resp = await api.get("/api/rooms/general/messages", params={param: alice.token})
    assert_error(resp, 401)
    resp = await api.post(
        "/api/rooms/general/messages", params={param: alice.token}, json={"text": "x"}
    )
    assert_error(resp, 401)
    status = await handshake_status(f"{server.ws_url}?{param}={alice.token}")
    assert status == 401
    # nothing was posted by the attempt above
    assert await api.messages(alice.token, "general") == []


# -- logout -----------------------------------------------------------------------------------


async def test_logout_204_and_token_dead_everywhere(
    server: ServerProcess, api: AsyncApi, alice: User
) -> None:
    second = await api.login(alice)
    resp = await api.post("/api/logout", token=alice.token)
    assert resp.status_code == 204, resp.text
    assert resp.content == b""
    assert_error(await api.get("/api/rooms", token=alice.token), 401)
    assert_error(await api.get("/api/rooms/general/messages", token=alice.token), 401)
    assert_error(await api.send_raw(alice.token, "general", "after logout"), 401)
    r = await api.post("/api/rooms", token=alice.token, json={"room": "zombie", "private": False})
    assert_error(r, 401)
    assert await handshake_status(server.ws_url, alice.token) == 401
    # logging out again with the dead token is unauthorized
    assert_error(await api.post("/api/logout", token=alice.token), 401)
    # nothing was stored on behalf of the dead token
    assert await api.messages(second.token, "general") == []
    # the password still works: a fresh login gets a fresh token
    fresh = await api.login(alice)
    assert (await api.get("/api/rooms", token=fresh.token)).status_code == 200


async def test_logout_with_cookie_kills_cookie(shared_api: AsyncApi) -> None:
    resp = await shared_api.register_raw(unique_name(), DEFAULT_PASSWORD)
    cookie = await _check_cookie(shared_api, resp)
    out = await shared_api.post("/api/logout", headers={"Cookie": cookie})
    assert out.status_code == 204, out.text
    assert_error(await shared_api.get("/api/rooms", headers={"Cookie": cookie}), 401)


async def test_logout_without_auth_401(shared_api: AsyncApi) -> None:
    assert_error(await shared_api.post("/api/logout"), 401)


async def test_logout_closes_open_sockets_with_4001(
    server: ServerProcess, api: AsyncApi, alice: User, bob: User
) -> None:
    ws1 = await open_ws(server.ws_url, alice.token)
    ws2 = await open_ws(server.ws_url, alice.token)
    watcher = await open_ws(server.ws_url, bob.token)
    await watcher.join_ok("general")
    await ws1.join_ok("general")
    await ws2.join_ok("general")
    online = await watcher.recv_type("presence", username=alice.username)
    assert online["online"] is True

    resp = await api.post("/api/logout", token=alice.token)
    assert resp.status_code == 204
    codes = await asyncio.gather(ws1.wait_closed(), ws2.wait_closed())
    assert codes == [4001, 4001]

    # alice's last connection dropped: bob sees her go offline, and bob's socket still works
    offline = await watcher.recv_type("presence", username=alice.username)
    assert offline == {
        "type": "presence",
        "room": "general",
        "username": alice.username,
        "online": False,
    }
    ack = await watcher.send_ok("general", "still here")
    assert ack["seq"] == 1
    await watcher.close()
