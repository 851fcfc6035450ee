"""An async parley.v1 WebSocket client for tests, wrapping the `websockets` asyncio client."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import ssl
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Origin, Subprotocol

__all__ = [
    "PROTOCOL",
    "Event",
    "ParleyWS",
    "handshake_status",
    "new_client_id",
    "open_plain",
    "open_ws",
    "parley_ws",
]

PROTOCOL = Subprotocol("parley.v1")

Event = dict[str, Any]

DEFAULT_TIMEOUT = 20.0


def new_client_id() -> str:
    return uuid.uuid4().hex


def _matches(event: Event, type_: str, fields: dict[str, Any]) -> bool:
    return event.get("type") == type_ and all(event.get(k) == v for k, v in fields.items())


def _headers(token: str | None, cookie: str | None) -> dict[str, str]:
    headers: dict[str, str] = {}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if cookie is not None:
        headers["Cookie"] = cookie
    return headers


async def _connect(
    url: str,
    *,
    token: str | None = None,
    cookie: str | None = None,
    origin: str | None = None,
    subprotocols: Sequence[Subprotocol] | None = (PROTOCOL,),
    ssl_context: ssl.SSLContext | None = None,
    compression: str | None = None,
    ping_interval: float | None = 20,
) -> ClientConnection:
    return await connect(
        url,
        additional_headers=_headers(token, cookie),
        subprotocols=list(subprotocols) if subprotocols is not None else None,
        origin=Origin(origin) if origin is not None else None,
        ssl=ssl_context,
        compression=compression,
        proxy=None,
        open_timeout=DEFAULT_TIMEOUT,
        close_timeout=5,
        ping_interval=ping_interval,
        max_size=None,
        max_queue=None,
    )


class ParleyWS:
    """One parley.v1 connection. `hello` is the first event, read on open.

    Events read while looking for another one are kept in `backlog` and returned first by later
    reads, so nothing is lost; `seen` is every event ever received (for "never arrived" checks).
    """

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.hello: Event = {}
        self.backlog: collections.deque[Event] = collections.deque()
        self.seen: list[Event] = []

    def seen_of(self, type_: str, **fields: Any) -> list[Event]:
        """Every received event of this type (and field values), consumed or not."""
        return [e for e in self.seen if _matches(e, type_, fields)]

    @property
    def username(self) -> str:
        name: str = self.hello["username"]
        return name

    # -- sending -------------------------------------------------------------------------------

    async def send_json(self, obj: Any) -> None:
        await self.ws.send(json.dumps(obj))

    async def send_raw(self, data: str | bytes) -> None:
        await self.ws.send(data)

    async def join(self, room: str, since: int | None = None) -> None:
        msg: Event = {"type": "join", "room": room}
        if since is not None:
            msg["since"] = since
        await self.send_json(msg)

    async def leave(self, room: str) -> None:
        await self.send_json({"type": "leave", "room": room})

    async def send_text(self, room: str, text: str, client_id: str | None = None) -> str:
        cid = client_id or new_client_id()
        await self.send_json({"type": "send", "room": room, "text": text, "client_id": cid})
        return cid

    async def change(
        self, type_: str, room: str, client_id: str | None = None, **fields: Any
    ) -> str:
        """An edit, delete, react or topic frame (contract v2); its client_id."""
        cid = client_id or new_client_id()
        await self.send_json({"type": type_, "room": room, "client_id": cid, **fields})
        return cid

    async def change_ok(self, type_: str, room: str, **fields: Any) -> Event:
        """A change frame and its ack (other events stay in the backlog)."""
        cid = await self.change(type_, room, **fields)
        return await self.recv_type("ack", client_id=cid)

    async def ask_history(self, room: str, **params: int) -> None:
        await self.send_json({"type": "history", "room": room, **params})

    async def typing(self, room: str) -> None:
        await self.send_json({"type": "typing", "room": room})

    # -- receiving -----------------------------------------------------------------------------

    async def _read(self, within: float) -> Event:
        raw = await asyncio.wait_for(self.ws.recv(), within)
        assert isinstance(raw, str), f"expected a text frame, got {raw!r}"
        event = json.loads(raw)
        assert isinstance(event, dict), event
        self.seen.append(event)
        return event

    async def recv(self, within: float = DEFAULT_TIMEOUT) -> Event:
        """The next event (from the backlog first)."""
        if self.backlog:
            return self.backlog.popleft()
        return await self._read(within)

    async def recv_until(
        self, pred: Callable[[Event], bool], within: float = DEFAULT_TIMEOUT
    ) -> Event:
        """The first event matching pred; the others stay in the backlog, in order."""
        for event in list(self.backlog):
            if pred(event):
                self.backlog.remove(event)
                return event
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"no matching event; backlog: {list(self.backlog)[-10:]}")
            event = await self._read(remaining)
            if pred(event):
                return event
            self.backlog.append(event)

    async def recv_type(self, type_: str, within: float = DEFAULT_TIMEOUT, **fields: Any) -> Event:
        """Next event of this type (and these field values). An unexpected error event fails."""

        def pred(event: Event) -> bool:
            if event.get("type") == "error" and type_ != "error":
                raise AssertionError(f"unexpected error event while waiting for {type_}: {event}")
            return _matches(event, type_, fields)

        return await self.recv_until(pred, within)

    async def recv_chat(self, within: float = DEFAULT_TIMEOUT) -> Event:
        """The next event that is not presence or typing (those stay in the backlog)."""
        return await self.recv_until(lambda e: e.get("type") not in ("presence", "typing"), within)

    async def join_ok(self, room: str, since: int | None = None) -> Event:
        await self.join(room, since)
        return await self.recv_type("joined", room=room)

    async def send_ok(self, room: str, text: str, client_id: str | None = None) -> Event:
        """Send and return the ack (other events stay in the backlog)."""
        cid = await self.send_text(room, text, client_id)
        return await self.recv_type("ack", client_id=cid)

    async def history(self, room: str, **params: int) -> list[Event]:
        await self.ask_history(room, **params)
        event = await self.recv_type("history", room=room)
        msgs: list[Event] = event["messages"]
        return msgs

    async def expect_error(self, code: str, within: float = DEFAULT_TIMEOUT) -> Event:
        """The next error event, which must have this code."""
        event = await self.recv_until(lambda e: e.get("type") == "error", within)
        assert event["code"] == code, event
        assert isinstance(event.get("message"), str), event
        return event

    async def wait_closed(self, within: float = DEFAULT_TIMEOUT) -> int | None:
        """Read (into the backlog) until the server closes; return the close code it sent."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        try:
            while True:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise TimeoutError("connection was not closed")
                raw = await asyncio.wait_for(self.ws.recv(), remaining)
                if isinstance(raw, str):
                    with contextlib.suppress(ValueError):
                        event = json.loads(raw)
                        self.seen.append(event)
                        self.backlog.append(event)
        except ConnectionClosed as exc:
            return exc.rcvd.code if exc.rcvd is not None else None

    async def close(self) -> None:
        await self.ws.close()


async def open_ws(
    url: str,
    token: str | None = None,
    *,
    cookie: str | None = None,
    origin: str | None = None,
    ssl_context: ssl.SSLContext | None = None,
    compression: str | None = None,
    ping_interval: float | None = 20,
) -> ParleyWS:
    """Connect with subprotocol parley.v1 and read the hello event."""
    ws = await _connect(
        url,
        token=token,
        cookie=cookie,
        origin=origin,
        ssl_context=ssl_context,
        compression=compression,
        ping_interval=ping_interval,
    )
    assert ws.subprotocol == PROTOCOL, ws.subprotocol
    client = ParleyWS(ws)
    hello = await client.recv()
    assert hello.get("type") == "hello", hello
    client.hello = hello
    return client


@contextlib.asynccontextmanager
async def parley_ws(
    url: str,
    token: str | None = None,
    *,
    cookie: str | None = None,
    origin: str | None = None,
    ssl_context: ssl.SSLContext | None = None,
    compression: str | None = None,
) -> AsyncIterator[ParleyWS]:
    client = await open_ws(
        url,
        token,
        cookie=cookie,
        origin=origin,
        ssl_context=ssl_context,
        compression=compression,
    )
    try:
        yield client
    finally:
        await client.close()


async def open_plain(
    url: str,
    token: str | None = None,
    *,
    origin: str | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> ClientConnection:
    """Plain-text mode: no subprotocol offered."""
    ws = await _connect(url, token=token, origin=origin, subprotocols=None, ssl_context=ssl_context)
    assert ws.subprotocol is None, ws.subprotocol
    return ws


async def handshake_status(
    url: str,
    token: str | None = None,
    *,
    cookie: str | None = None,
    origin: str | None = None,
    ssl_context: ssl.SSLContext | None = None,
    headers: dict[str, str] | None = None,
) -> int:
    """HTTP status of the upgrade: 101 when the socket opened (then closed again)."""
    all_headers = _headers(token, cookie)
    all_headers.update(headers or {})
    try:
        ws = await connect(
            url,
            additional_headers=all_headers,
            subprotocols=[PROTOCOL],
            origin=Origin(origin) if origin is not None else None,
            ssl=ssl_context,
            proxy=None,
            open_timeout=DEFAULT_TIMEOUT,
        )
    except InvalidStatus as exc:
        return exc.response.status_code
    await ws.close()
    return 101
