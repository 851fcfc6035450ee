"""A small async HTTP helper for the Parley REST API (httpx), used by integration and fault tests.

Cookies are never carried between requests: every call sends exactly the credentials it is given,
so a test that checks "no auth -> 401" cannot be satisfied by a cookie left over from register.
"""

from __future__ import annotations

import ssl
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import httpx

from tests.support.server import ServerProcess

__all__ = [
    "DEFAULT_PASSWORD",
    "AsyncApi",
    "Fresh",
    "ServerFactory",
    "User",
    "assert_error",
    "bearer",
    "unique_name",
    "unique_room",
]

DEFAULT_PASSWORD = "correct horse battery"

JSON = dict[str, Any]

# the conftest `server_factory` fixture: start(args=(), data_dir=None, tls=None, verify=False)
ServerFactory = Callable[..., ServerProcess]


def unique_name(prefix: str = "u") -> str:
    """A username that is valid ([A-Za-z0-9_.-], <= 32) and unique across the whole test run."""
    return f"{prefix}{uuid.uuid4().hex[:12]}"


def assert_error(resp: httpx.Response, status: int, code: str | None = None) -> dict[str, str]:
    """Errors are {"error": {"code": str, "message": str}} with a fitting status."""
    assert resp.status_code == status, (resp.status_code, resp.text)
    body = resp.json()
    assert set(body) == {"error"}, body
    err = body["error"]
    assert isinstance(err["code"], str), body
    assert err["code"], body
    assert isinstance(err["message"], str), body
    if code is not None:
        assert err["code"] == code, body
    return dict(err)


def unique_room() -> str:
    """A room name that is valid ([a-z0-9_-], <= 64) and unique across the whole test run."""
    return f"r{uuid.uuid4().hex[:12]}"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass(frozen=True)
class User:
    username: str
    password: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.token)


@dataclass(frozen=True)
class Fresh:
    """A fresh user and a fresh public room of their own on a (shared) server."""

    server: ServerProcess
    api: AsyncApi
    user: User
    room: str


class AsyncApi:
    """Thin wrapper over httpx.AsyncClient bound to one server's base URL."""

    def __init__(self, base_url: str, verify: ssl.SSLContext | bool = False) -> None:
        self.base_url = base_url
        self._client = httpx.AsyncClient(
            base_url=base_url, verify=verify, timeout=30.0, trust_env=False
        )

    async def __aenter__(self) -> AsyncApi:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    # -- raw requests -------------------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        json: Any = None,
        content: bytes | str | None = None,
        params: Mapping[str, str | int] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        hdrs: dict[str, str] = dict(headers or {})
        if token is not None:
            hdrs.update(bearer(token))
        try:
            return await self._client.request(
                method, path, json=json, content=content, params=params, headers=hdrs
            )
        finally:
            self._client.cookies.clear()

    async def get(self, path: str, **kw: Any) -> httpx.Response:
        return await self.request("GET", path, **kw)

    async def post(self, path: str, **kw: Any) -> httpx.Response:
        return await self.request("POST", path, **kw)

    async def upload(
        self, token: str, content: bytes, name: str = "file.bin", field: str = "file"
    ) -> httpx.Response:
        """POST /api/files: `content` as the multipart part `field`, named `name`."""
        try:
            return await self._client.post(
                "/api/files", files={field: (name, content)}, headers=bearer(token)
            )
        finally:
            self._client.cookies.clear()

    # -- accounts ------------------------------------------------------------------------------

    async def register_raw(self, username: str, password: str) -> httpx.Response:
        return await self.post("/api/register", json={"username": username, "password": password})

    async def register(self, username: str | None = None, password: str = DEFAULT_PASSWORD) -> User:
        name = username or unique_name()
        resp = await self.register_raw(name, password)
        assert resp.status_code == 201, resp.text
        body = resp.json()
        assert body["username"] == name, body
        assert isinstance(body["token"], str), body
        return User(name, password, body["token"])

    async def login_raw(self, username: str, password: str) -> httpx.Response:
        return await self.post("/api/login", json={"username": username, "password": password})

    async def login(self, user: User) -> User:
        resp = await self.login_raw(user.username, user.password)
        assert resp.status_code == 200, resp.text
        return User(user.username, user.password, resp.json()["token"])

    # -- rooms and messages --------------------------------------------------------------------

    async def rooms(self, token: str) -> list[JSON]:
        resp = await self.get("/api/rooms", token=token)
        assert resp.status_code == 200, resp.text
        rooms: list[JSON] = resp.json()["rooms"]
        return rooms

    async def room_names(self, token: str) -> set[str]:
        return {r["room"] for r in await self.rooms(token)}

    async def create_room(self, token: str, room: str, private: bool = False) -> httpx.Response:
        resp = await self.post("/api/rooms", token=token, json={"room": room, "private": private})
        assert resp.status_code == 201, resp.text
        return resp

    async def invite(self, token: str, room: str, username: str) -> httpx.Response:
        return await self.post(
            f"/api/rooms/{room}/members", token=token, json={"username": username}
        )

    async def send_raw(
        self, token: str, room: str, text: str, client_id: str | None = None
    ) -> httpx.Response:
        body: JSON = {"text": text}
        if client_id is not None:
            body["client_id"] = client_id
        return await self.post(f"/api/rooms/{room}/messages", token=token, json=body)

    async def send(self, token: str, room: str, text: str, client_id: str | None = None) -> JSON:
        resp = await self.send_raw(token, room, text, client_id)
        assert resp.status_code == 201, resp.text
        msg: JSON = resp.json()
        return msg

    async def messages_raw(self, token: str, room: str, **params: str | int) -> httpx.Response:
        return await self.get(f"/api/rooms/{room}/messages", token=token, params=params)

    async def messages(self, token: str, room: str, **params: str | int) -> list[JSON]:
        resp = await self.messages_raw(token, room, **params)
        assert resp.status_code == 200, resp.text
        msgs: list[JSON] = resp.json()["messages"]
        return msgs

    async def all_messages(self, token: str, room: str) -> list[JSON]:
        """Every stored message of a room, paged forward with after= (limit 100)."""
        out: list[JSON] = []
        after = 0
        for _ in range(10_000):
            page = await self.messages(token, room, after=after, limit=100)
            if not page:
                return out
            out.extend(page)
            after = page[-1]["seq"]
        raise AssertionError("history paging did not terminate")
