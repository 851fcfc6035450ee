"""HTTP behaviour shared by every route: security headers, JSON errors for all of /api,
and the Prometheus metrics."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping

import httpx
import pytest

from tests.support.api import AsyncApi, ServerFactory, assert_error
from tests.support.client import open_ws
from tests.support.server import ServerProcess


@pytest.fixture(scope="module")
def server(shared_server: ServerProcess) -> ServerProcess:
    """One server for the module (a fresh one costs a process start): these tests look at
    headers and errors, and sign up users of their own. The metrics test counts on a fresh
    server and starts its own."""
    return shared_server


@pytest.mark.parametrize("path", ["/", "/app.js", "/api/me", "/healthz"])
async def test_every_page_carries_the_security_headers(api: AsyncApi, path: str) -> None:
    resp = await api.get(path)
    assert "frame-ancestors 'none'" in resp.headers["content-security-policy"]
    assert resp.headers["x-content-type-options"] == "nosniff"
    assert resp.headers["referrer-policy"] == "no-referrer"
    assert resp.headers["x-frame-options"] == "DENY"


@pytest.mark.parametrize("path", ["/api/nothing-here", "/api/rooms/general/nope", "/api/"])
async def test_unknown_api_path_is_a_json_404(api: AsyncApi, path: str) -> None:
    assert_error(await api.get(path), 404, "not_found")


async def test_wrong_method_on_an_api_path_is_a_json_405(api: AsyncApi) -> None:
    resp = await api.request("DELETE", "/api/rooms")
    assert_error(resp, 405, "bad_request")
    assert set(resp.headers["allow"].split(",")) >= {"GET", "POST"}


async def test_unknown_page_outside_api_is_a_plain_404(api: AsyncApi) -> None:
    resp = await api.get("/no-such-file.txt")
    assert resp.status_code == 404
    assert "error" not in resp.text


async def test_metrics_count_connections_stored_messages_and_ack_latency(
    server_factory: ServerFactory,
) -> None:
    server = server_factory()  # its own: the counts start from zero
    async with AsyncApi(server.url) as api:
        user = await api.register()
        ws = await open_ws(server.ws_url, user.token)
        await ws.join_ok("general")
        for i in range(3):
            await ws.send_ok("general", f"counted {i}")
        await ws.send_ok("general", "a resend is not stored twice", client_id="same")
        await ws.send_ok("general", "a resend is not stored twice", client_id="same")
        samples = _samples((await api.get("/metrics")).text)
        await ws.close()
    assert samples["parley_connections"] >= 1
    assert samples["parley_messages_stored_total"] == 4
    assert samples["parley_ack_seconds_count"] == 5
    assert samples['parley_ack_seconds_bucket{le="+Inf"}'] == 5
    assert 0 < samples["parley_ack_seconds_sum"] < 5 * 2.5
    buckets = [v for k, v in samples.items() if k.startswith("parley_ack_seconds_bucket")]
    assert buckets == sorted(buckets)  # cumulative


def _samples(text: str) -> dict[str, float]:
    """`name{labels} value` lines of the Prometheus text format."""
    lines = (line.rsplit(" ", 1) for line in text.splitlines() if not line.startswith("#"))
    return {name: float(value) for name, value in lines}


async def test_head_works_wherever_get_does(api: AsyncApi) -> None:
    assert (await api.request("HEAD", "/api/me")).status_code == 401
    assert (await api.request("HEAD", "/api/rooms")).status_code == 401
    assert (await api.request("HEAD", "/")).status_code == 200


# --- headers on every response (issue 11, item 9) ------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/", 200),
        ("GET", "/app.js", 200),
        ("GET", "/healthz", 200),
        ("GET", "/metrics", 200),
        ("GET", "/no-such-file.txt", 404),  # the router's own 404
        ("POST", "/healthz", 405),  # the router's own 405
        ("GET", "/api/me", 401),
        ("DELETE", "/api/rooms", 405),
        ("GET", "/api/nothing-here", 404),
        ("GET", "/chat", 401),  # a refused upgrade
    ],
)
async def test_every_response_has_the_headers_and_no_server_version(
    api: AsyncApi, method: str, path: str, status: int
) -> None:
    resp = await api.request(method, path)
    assert resp.status_code == status
    _assert_hardened(resp.headers)


def _assert_hardened(headers: Mapping[str, str]) -> None:
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["x-frame-options"] == "DENY"
    assert headers["cross-origin-opener-policy"] == "same-origin"
    assert headers["server"] == "parley"  # not "Python/3.x aiohttp/3.x"
    assert "strict-transport-security" not in headers  # plain http: HSTS means nothing


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GARBAGE\x01 / HTTP/1.1\r\n\r\n",  # no such method
        b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",  # request line too long
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 9000 + b"\r\n\r\n",  # header too long
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    ],
)
async def test_requests_the_parser_refuses_get_the_headers_and_a_json_error(
    server: ServerProcess, request_bytes: bytes
) -> None:
    """These are answered by aiohttp's RequestHandler, which no on_response_prepare hook
    sees, and are nothing to log at error level."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(request_bytes)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), 20)
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0].split()[1] == "400", lines[0]
    headers = httpx.Headers([tuple(line.split(": ", 1)) for line in lines[1:]])
    _assert_hardened(headers)
    assert headers["cache-control"] == "no-store"
    assert json.loads(body)["error"]["code"] == "bad_request"
    assert "Traceback" not in server.log()  # one line of garbage, not a logged traceback


async def test_responses_that_carry_a_token_are_not_stored(api: AsyncApi) -> None:
    name = f"nostore{id(api)}"
    register = await api.register_raw(name, "correct horse battery")
    login = await api.login_raw(name, "correct horse battery")
    for resp in (register, login):
        assert resp.status_code in (200, 201)
        assert "token" in resp.json()
        assert resp.headers["cache-control"] == "no-store"
        assert "secure" not in resp.headers["set-cookie"].lower()  # plain http: no Secure
    # and every other API answer too: they are one user's data
    me = await api.get("/api/me", token=login.json()["token"])
    assert me.headers["cache-control"] == "no-store"


async def test_static_files_keep_their_own_caching_rule(api: AsyncApi) -> None:
    resp = await api.get("/app.js")
    assert resp.headers["cache-control"] == "no-cache"  # revalidated by ETag, not no-store
    assert resp.headers["etag"]


async def test_the_websocket_upgrade_names_no_server_version(server: ServerProcess) -> None:
    async with AsyncApi(server.url) as api:
        alice = await api.register()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(
            b"GET /chat HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            b"Sec-WebSocket-Version: 13\r\n"
            + f"Authorization: Bearer {alice.token}\r\n\r\n".encode()
        )
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 20)
    finally:
        writer.close()
    assert head.startswith(b"HTTP/1.1 101")
    assert b"\r\nServer: parley\r\n" in head
    assert b"aiohttp" not in head


@pytest.mark.parametrize(
    ("trusted", "proto", "https"),
    [
        (True, "https", True),  # a TLS-terminating proxy we trust
        (True, "http", False),
        (False, "https", False),  # anyone can send the header: not trusted, not believed
    ],
)
async def test_hsts_and_secure_cookie_behind_a_trusted_tls_proxy(
    server_factory: ServerFactory, trusted: bool, proto: str, https: bool
) -> None:
    args = ["--trusted-proxy", "127.0.0.1"] if trusted else []
    srv = server_factory(args)
    async with AsyncApi(srv.url) as api:
        headers = {"X-Forwarded-Proto": proto}
        resp = await api.post(
            "/api/register",
            json={"username": f"p{proto}{int(trusted)}", "password": "correct horse battery"},
            headers=headers,
        )
        page = await api.get("/", headers=headers)
    assert resp.status_code == 201
    for r in (resp, page):
        assert ("strict-transport-security" in r.headers) is https
    assert ("secure" in resp.headers["set-cookie"].lower().split("; ")) is https
    if https:
        assert page.headers["strict-transport-security"] == "max-age=63072000"
