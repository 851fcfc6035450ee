"""Hostile requests get a clear 4xx (issue 11, findings 1 and 3): cross-site writes, bodies
that are not JSON, integers past what the store holds, JSON nested 100,000 deep."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.support.api import (
    DEFAULT_PASSWORD,
    AsyncApi,
    Fresh,
    ServerFactory,
    assert_error,
    unique_name,
)

FOREIGN = "https://evil.example"
MAX_SEQ = 2**63 - 1


def writes(fresh: Fresh) -> list[tuple[str, dict[str, Any]]]:
    """Every state-changing endpoint, each with a body that would succeed."""
    other = unique_name()
    return [
        ("/api/register", {"username": other, "password": DEFAULT_PASSWORD}),
        ("/api/login", {"username": fresh.user.username, "password": DEFAULT_PASSWORD}),
        ("/api/rooms", {"room": f"{fresh.room}x", "private": False}),
        (f"/api/rooms/{fresh.room}/members", {"username": fresh.user.username}),
        (f"/api/rooms/{fresh.room}/messages", {"text": "forged", "client_id": "c1"}),
        ("/api/logout", {}),
    ]


def session_cookie(resp: httpx.Response) -> str | None:
    return resp.headers.get("set-cookie")


async def assert_nothing_changed(fresh: Fresh) -> None:
    """The signed-in user still works, and the room holds no message."""
    assert await fresh.api.messages(fresh.user.token, fresh.room) == []
    names = await fresh.api.room_names(fresh.user.token)
    assert f"{fresh.room}x" not in names


# -- finding 1: cross-site sign-in, sign-up and writes -----------------------------------------


@pytest.mark.parametrize("path", ["/api/login", "/api/register"])
async def test_cross_site_text_plain_sign_in_and_up_are_refused(fresh: Fresh, path: str) -> None:
    """The form a cross-site page can send without asking: text/plain, a JSON-looking body."""
    body = {"username": fresh.user.username if "login" in path else unique_name()}
    body["password"] = DEFAULT_PASSWORD
    resp = await fresh.api.post(
        path,
        content=json.dumps(body).encode(),
        headers={"Content-Type": "text/plain", "Origin": FOREIGN},
    )
    assert_error(resp, 403, "forbidden")
    assert session_cookie(resp) is None
    if "register" in path:  # no account was made
        assert_error(await fresh.api.login_raw(body["username"], DEFAULT_PASSWORD), 401)


@pytest.mark.parametrize("origin", [FOREIGN, "null", "http://127.0.0.1:1"])
async def test_every_write_from_a_foreign_origin_is_refused_bearer_or_not(
    fresh: Fresh, origin: str
) -> None:
    for path, body in writes(fresh):
        for token in (fresh.user.token, None):
            resp = await fresh.api.post(path, json=body, token=token, headers={"Origin": origin})
            assert_error(resp, 403, "forbidden")
            assert session_cookie(resp) is None, path
    await assert_nothing_changed(fresh)


async def test_a_write_with_the_cookie_from_a_foreign_origin_is_refused(fresh: Fresh) -> None:
    cookie = {"Cookie": f"parley_session={fresh.user.token}", "Origin": FOREIGN}
    for path, body in writes(fresh):
        assert_error(await fresh.api.post(path, json=body, headers=cookie), 403, "forbidden")
    await assert_nothing_changed(fresh)


async def test_same_origin_and_no_origin_writes_pass(fresh: Fresh) -> None:
    for origin in (fresh.server.url, None):
        headers = {"Origin": origin} if origin else {}
        room = f"{fresh.room}-{'same' if origin else 'none'}"
        resp = await fresh.api.post(
            "/api/rooms", json={"room": room}, token=fresh.user.token, headers=headers
        )
        assert resp.status_code == 201, resp.text
        resp = await fresh.api.post(
            "/api/login",
            json={"username": fresh.user.username, "password": DEFAULT_PASSWORD},
            headers=headers,
        )
        assert resp.status_code == 200, resp.text


async def test_an_allowed_origin_may_write_and_others_still_may_not(
    server_factory: ServerFactory,
) -> None:
    srv = server_factory(["--allow-origin", "https://chat.example.org"])
    async with AsyncApi(srv.url) as api:
        user = await api.register()
        ok = await api.post(
            "/api/rooms/general/messages",
            json={"text": "from the allowed origin"},
            token=user.token,
            headers={"Origin": "https://chat.example.org"},
        )
        assert ok.status_code == 201, ok.text
        refused = await api.post(
            "/api/rooms/general/messages",
            json={"text": "from elsewhere"},
            token=user.token,
            headers={"Origin": "https://chat.example.org.evil.example"},
        )
        assert_error(refused, 403, "forbidden")
        texts = [m["text"] for m in await api.messages(user.token, "general")]
        assert texts == ["from the allowed origin"]


async def test_behind_a_tls_proxy_the_https_page_is_our_own_origin(
    server_factory: ServerFactory,
) -> None:
    """A TLS-terminating --trusted-proxy forwards the page's writes as http with
    X-Forwarded-Proto: https; the page's origin is https://HOST, and is ours."""
    behind = server_factory(["--trusted-proxy", "127.0.0.1"])
    alone = server_factory()
    for srv, status in ((behind, 201), (alone, 403)):  # without the proxy flag: not believed
        host = f"127.0.0.1:{srv.port}"
        async with AsyncApi(srv.url) as api:
            resp = await api.post(
                "/api/register",
                json={"username": unique_name(), "password": "correct horse"},
                headers={"Origin": f"https://{host}", "X-Forwarded-Proto": "https"},
            )
            assert resp.status_code == status, resp.text
            plain = await api.post(
                "/api/register",
                json={"username": unique_name(), "password": "correct horse"},
                headers={"Origin": f"http://{host}"},
            )
            assert plain.status_code == 201, plain.text


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/jsonx",
    ],
)
async def test_every_json_endpoint_requires_application_json(
    fresh: Fresh, content_type: str
) -> None:
    for path, body in writes(fresh):
        if path == "/api/logout":
            continue  # takes no body
        resp = await fresh.api.post(
            path,
            content=json.dumps(body).encode(),
            token=fresh.user.token,
            headers={"Content-Type": content_type},
        )
        assert_error(resp, 415, "unsupported_media_type")
        assert session_cookie(resp) is None, path
    await assert_nothing_changed(fresh)


async def test_a_body_without_a_content_type_is_json(fresh: Fresh) -> None:
    """`requests.post(data=json.dumps(...))` and the like send no type: that is JSON too."""
    room = unique_name("untyped").lower()
    resp = await fresh.api.post(
        "/api/rooms", content=json.dumps({"room": room}).encode(), token=fresh.user.token
    )
    assert "content-type" not in resp.request.headers
    assert resp.status_code == 201, resp.text


async def test_signing_in_with_a_name_no_one_can_have_is_a_401(fresh: Fresh) -> None:
    """Login answers 200, 401 or 429 (contract v1): a name that breaks the username rule
    is a name nobody has."""
    for name in ("x" * 40, "no spaces allowed", "guest-1234"):
        resp = await fresh.api.post("/api/login", json={"username": name, "password": "whatever1"})
        assert_error(resp, 401, "unauthorized")


async def test_application_json_with_a_charset_is_json(fresh: Fresh) -> None:
    resp = await fresh.api.post(
        f"/api/rooms/{fresh.room}/messages",
        content=json.dumps({"text": "hi"}).encode(),
        token=fresh.user.token,
        headers={"Content-Type": "Application/JSON; charset=utf-8"},
    )
    assert resp.status_code == 201, resp.text


# -- finding 3: integers and depth ---------------------------------------------------------------


@pytest.mark.parametrize("param", ["after", "before"])
@pytest.mark.parametrize(
    "value", ["99999999999999999999", str(MAX_SEQ + 1), "-1", "+5", " 5", "1_0", "٣", "1e3", ""]
)
async def test_history_seq_past_the_store_is_a_400(fresh: Fresh, param: str, value: str) -> None:
    resp = await fresh.api.messages_raw(fresh.user.token, fresh.room, **{param: value})
    err = assert_error(resp, 400, "bad_request")
    assert err["message"].startswith(f"{param} must be an integer from 0 to {MAX_SEQ}"), err


@pytest.mark.parametrize("param", ["after", "before"])
async def test_history_takes_the_largest_seq_the_store_holds(fresh: Fresh, param: str) -> None:
    await fresh.api.send(fresh.user.token, fresh.room, "one")
    page = await fresh.api.messages(fresh.user.token, fresh.room, **{param: MAX_SEQ})
    assert [m["text"] for m in page] == ([] if param == "after" else ["one"])


@pytest.mark.parametrize("value", ["0", "101", "abc", str(2**64)])
async def test_history_limit_out_of_range_is_a_400(fresh: Fresh, value: str) -> None:
    err = assert_error(await fresh.api.messages_raw(fresh.user.token, fresh.room, limit=value), 400)
    assert err["message"] == "limit must be an integer from 1 to 100", err


def nested(depth: int) -> bytes:
    return b'{"username": "x", "deep": ' + b"[" * depth + b"]" * depth + b"}"


@pytest.mark.parametrize("shape", ["array", "object"])
async def test_a_body_nested_100000_deep_is_a_400(fresh: Fresh, shape: str) -> None:
    depth = 100_000
    body = nested(depth) if shape == "array" else b'{"a":' * depth + b"1" + b"}" * depth
    for path, _ in writes(fresh):
        if path == "/api/logout":
            continue
        for token in (None, fresh.user.token):
            resp = await fresh.api.post(
                path, content=body, token=token, headers={"Content-Type": "application/json"}
            )
            if token is None and path not in ("/api/login", "/api/register"):
                assert_error(resp, 401)  # who you are comes first
                continue
            err = assert_error(resp, 400, "bad_request")
            assert "nested too deeply" in err["message"], err
    await assert_nothing_changed(fresh)


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/register", {"username": "bad name", "password": DEFAULT_PASSWORD}, "username"),
        ("/api/register", {"username": "okname\n", "password": DEFAULT_PASSWORD}, "username"),
        ("/api/register", {"username": "okname", "password": "short"}, "password"),
        ("/api/register", {"username": "okname", "password": 12345678}, "password"),
        ("/api/login", {"username": "okname", "password": "x" * 257}, "password"),
        ("/api/rooms", {"room": "Capital"}, "room"),
        ("/api/rooms", {"room": "newline\n"}, "room"),
        ("/api/rooms", {"room": "okroom", "private": "yes"}, "private"),
        ("/api/rooms/general/members", {"username": ["x"]}, "username"),
        ("/api/rooms/general/messages", {"text": 5}, "text"),
        ("/api/rooms/general/messages", {"text": "hi", "client_id": ""}, "client_id"),
        ("/api/rooms/general/messages", {"text": "hi", "client_id": "a\x00b"}, "client_id"),
        ("/api/rooms/general/messages", {}, "text"),
    ],
)
async def test_a_refused_body_names_the_field(
    fresh: Fresh, path: str, body: dict[str, Any], field: str
) -> None:
    err = assert_error(await fresh.api.post(path, json=body, token=fresh.user.token), 400)
    assert err["code"] == "bad_request"
    assert err["message"].startswith(f"{field} "), err


async def test_openapi_document_is_served_without_signing_in(api: AsyncApi) -> None:
    resp = await api.get("/api/openapi.json")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("application/json")
    doc = resp.json()
    assert doc["openapi"].startswith("3.1")
    create = doc["paths"]["/api/rooms"]["post"]
    schema = create["requestBody"]["content"]["application/json"]["schema"]
    room = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]["properties"]["room"]
    assert room["pattern"].startswith("^[a-z0-9_-]{1,64}")
    history = doc["paths"]["/api/rooms/{room}/messages"]["get"]
    after = next(p for p in history["parameters"] if p["name"] == "after")
    assert after["schema"]["maximum"] == MAX_SEQ
