"""One benchmark WebSocket client (picows listener) and the code that connects many.

A client speaks either parley.v1 JSON (to Parley) or plain text frames (to the
peers and the sink). Every workload drives the same class; `mode` picks the
per-frame work so that the common case, counting a delivery, costs one
attribute increment in Python.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import msgspec
from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

from parley_bench.stats import make_text, message_seq, parse_marker

__all__ = [
    "COUNT",
    "INGEST",
    "OBSERVE",
    "TRACK",
    "BenchClient",
    "ConnectResult",
    "Hub",
    "Target",
    "connect_many",
]

#: count every text frame (fan-out receivers, idle connections)
COUNT: Final = 0
#: parse the benchmark marker of every frame: latency samples (fan-out observers, senders)
OBSERVE: Final = 1
#: record the seq of every message (reconnect storm: loss / duplicate check)
TRACK: Final = 2
#: closed-loop sender: the next send goes out when the ack of the last one arrives
INGEST: Final = 3

ROOM: Final = "general"
# picows uses aiofastnet's transports when that package is installed; PARLEY_BENCH_AIOFASTNET=0
# forces uvloop's own (for comparing the two).
_USE_AIOFASTNET: Final = {"0": False, "1": True}.get(os.environ.get("PARLEY_BENCH_AIOFASTNET", ""))
_json_decode = msgspec.json.decode


@dataclass(frozen=True)
class Target:
    """Where and how to connect: Parley (parley.v1 + bearer tokens) or plain text (the
    peers; Parley's tutorial mode, with tokens)."""

    name: str
    url: str
    parley: bool
    tokens: Sequence[str] = ()
    pid: int = 0


class Hub:
    """Counters shared by every client of one process; read by the workload driver."""

    def __init__(self) -> None:
        # client_ids are "MS-TAG-SENDER-SEQ": time-ordered like a UUIDv7 (the Unix time in
        # ms, 12 hex digits, first), as Parley's web client makes them, and a fresh tag per
        # hub, so that no two workloads (which share users) ever reuse a client_id, which
        # Parley would rightly treat as a resend
        self.tag = secrets.token_hex(4)
        self.seq = 0  # next benchmark message number of this hub's senders (fan-out)
        self.count = 0  # deliveries counted by COUNT clients
        self.observed = 0  # benchmark messages seen by OBSERVE clients
        self.lat: list[int] = []  # send-to-receive latencies (ns) seen by OBSERVE clients
        self.acks = 0
        self.ack_lat: list[int] = []  # send-to-ack latencies (ns)
        self.errors = 0  # error events from the server
        self.error_samples: list[str] = []
        self.disconnects = 0
        self.stop_sending = False  # INGEST clients stop their loop when set

    def deliveries(self) -> int:
        return self.count + self.observed


class BenchClient(WSListener):
    """One connection. Attributes are public: the drivers read them directly."""

    def __init__(self, hub: Hub, parley: bool, mode: int = COUNT, ident: int = 0) -> None:
        super().__init__()
        self.hub = hub
        self.parley = parley
        self.mode = mode
        self.ident = ident
        self.transport: WSTransport | None = None
        self.connected = False
        self.control = parley  # until joined: parley frames go to the inbox
        self.inbox: list[dict[str, Any]] = []
        self.waiter: asyncio.Future[None] | None = None
        self.closed: asyncio.Future[None] | None = None
        # TRACK state
        self.seqs: list[int] = []
        self.last_seq = -1  # highest seq seen (Parley) / sender seq (peers)
        self.resume_target = -1  # joined.last_seq after a (re)join
        self.resumed_ns = 0
        self.ack_seq = -1  # highest seq acked to this client
        # INGEST state
        self.sent = 0  # acked (or refused) so far
        self.next_seq = 0  # the number of the next message to send
        self.window = 1  # sends kept in flight
        self.pending_ns: deque[int] = deque()  # send times of those in flight, oldest first
        self.due: list[bytes] = []  # window > 1: frames to write when this read is handled
        self.text_size = 64

    # --- picows callbacks -----------------------------------------------------

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        self.connected = True

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.connected = False
        self.hub.disconnects += 1
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("disconnected"))
        if self.closed is not None and not self.closed.done():
            self.closed.set_result(None)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if self.mode == COUNT and not self.control:
            self.hub.count += 1
            return
        msg_type = frame.msg_type
        if msg_type is not WSMsgType.TEXT:
            if self.due and frame.last_in_buffer:
                self._write_due()
            if msg_type is WSMsgType.CLOSE:
                transport.send_close(WSCloseCode.OK)
                transport.disconnect()
            return
        data = frame.get_payload_as_bytes()
        if self.control:
            self._control(data)
            return
        mode = self.mode
        if mode == OBSERVE:
            marker = parse_marker(data)
            if marker is not None:
                hub = self.hub
                hub.observed += 1
                hub.lat.append(time.monotonic_ns() - marker[2])
            elif self.parley:
                self._event(_json_decode(data))
        elif mode == TRACK:
            if self.parley:
                seq = message_seq(data)  # most frames: no JSON decoding
                if seq is None:
                    self._event(_json_decode(data))
                else:
                    self._tracked(seq)
            else:
                marker = parse_marker(data)
                if marker is not None:
                    self.hub.observed += 1
                    self.seqs.append(marker[1])
                    self.last_seq = marker[1]
        elif mode == INGEST:
            if self.parley:
                self._event(_json_decode(data))
            elif data.startswith(b"~b~"):  # the sink echoes the text back: that is the ack
                self._acked()
            if self.due and frame.last_in_buffer:
                self._write_due()
        else:
            self.hub.count += 1

    # --- parley.v1 events -------------------------------------------------------

    def _control(self, data: bytes) -> None:
        seq = message_seq(data)  # a replay behind `joined`: only its seq counts
        obj = _json_decode(data) if seq is None else {"type": "message", "seq": seq}
        if isinstance(obj, dict):
            self.inbox.append(obj)
            if self.waiter is not None and not self.waiter.done():
                self.waiter.set_result(None)

    def _event(self, obj: Any) -> None:
        if not isinstance(obj, dict):
            return
        kind = obj.get("type")
        if kind == "message":
            seq = obj.get("seq")
            if self.mode == TRACK and isinstance(seq, int):
                self._tracked(seq)
        elif kind == "ack":
            seq = obj.get("seq")
            if isinstance(seq, int) and seq > self.ack_seq:
                self.ack_seq = seq
            if self.mode == INGEST:
                self._acked()
            else:
                self.hub.acks += 1
        elif kind == "joined":
            last = obj.get("last_seq")
            if isinstance(last, int):
                self.resume_target = last
                if self.last_seq >= last and not self.resumed_ns:
                    self.resumed_ns = time.monotonic_ns()
        elif kind == "error":
            self.hub.errors += 1
            if len(self.hub.error_samples) < 5:
                self.hub.error_samples.append(str(obj))
            if self.mode == INGEST:
                self._acked()

    def _tracked(self, seq: int) -> None:
        """A message's seq, recorded (TRACK): resumed once it reaches `joined.last_seq`."""
        self.hub.observed += 1
        self.seqs.append(seq)
        self.last_seq = max(self.last_seq, seq)
        if not self.resumed_ns and seq >= self.resume_target:
            self.resumed_ns = time.monotonic_ns()

    # --- sending ----------------------------------------------------------------

    def send_json(self, obj: dict[str, Any]) -> None:
        if self.transport is not None and self.connected:
            self.transport.send(WSMsgType.TEXT, msgspec.json.encode(obj))

    def send_bench(self, seq: int, size: int) -> int:
        """Send one benchmark message; returns its send time (monotonic ns)."""
        now = time.monotonic_ns()
        transport = self.transport
        if transport is None or not self.connected:
            return now
        transport.send(WSMsgType.TEXT, self._bench_payload(seq, now, size))
        return now

    def _bench_payload(self, seq: int, now: int, size: int) -> bytes:
        text = make_text(self.ident, seq, now, size)
        if not self.parley:
            return text.encode()
        return (
            f'{{"type":"send","room":"general","text":"{text}",'
            f'"client_id":"{time.time_ns() // 1_000_000:012x}-{self.hub.tag}-'
            f'{self.ident}-{seq}"}}'
        ).encode()

    def start_ingest(self) -> None:
        for _ in range(self.window):
            self._send_next()
        if self.due:
            self._write_due()

    def _send_next(self) -> None:
        """The next ingest message: at once with one in flight; with a window, queued
        until the frames of this read are handled, then written together (`_write_due`)."""
        seq, self.next_seq = self.next_seq, self.next_seq + 1
        if self.window == 1:
            self.pending_ns.append(self.send_bench(seq, self.text_size))
            return
        now = time.monotonic_ns()
        self.pending_ns.append(now)
        self.due.append(masked_text_frame(self._bench_payload(seq, now, self.text_size)))

    def _write_due(self) -> None:
        """Write the queued frames in one write, as a client with its own output buffer
        would: picows writes each `send` at once, one system call per frame."""
        due, self.due = self.due, []
        if self.transport is not None and self.connected:
            self.transport.underlying_transport.write(b"".join(due))

    def _acked(self) -> None:
        hub = self.hub
        now = time.monotonic_ns()
        hub.acks += 1
        if self.pending_ns:
            hub.ack_lat.append(now - self.pending_ns.popleft())
        self.sent += 1
        if not hub.stop_sending:
            self._send_next()

    # --- setup helpers ------------------------------------------------------------

    async def expect(self, kind: str, wait_s: float) -> dict[str, Any]:
        """Wait for the next control frame of `kind` (parley.v1), dropping others."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while True:
            for i, obj in enumerate(self.inbox):
                if obj.get("type") == kind:
                    del self.inbox[: i + 1]
                    return obj
                if obj.get("type") == "error":
                    raise RuntimeError(f"server error while waiting for {kind}: {obj}")
            self.inbox.clear()
            if not self.connected:
                raise ConnectionError(f"disconnected while waiting for {kind}")
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"no {kind} frame within {wait_s} s")
            self.waiter = loop.create_future()
            try:  # asyncio.timeout, not wait_for: no extra future and callbacks per frame
                async with asyncio.timeout(remaining):
                    await self.waiter
            finally:
                self.waiter = None

    def close(self, abort: bool = False) -> None:
        if self.transport is not None and self.connected:
            if abort:
                self.transport.disconnect(graceful=False)
            else:
                self.transport.send_close(WSCloseCode.GOING_AWAY)
                self.transport.disconnect()


def masked_text_frame(payload: bytes) -> bytes:
    """A client's text frame (RFC 6455 5.2) with the all-zero mask key, which leaves the
    payload as it is: the generator's frames need no secrecy, and no XOR pass."""
    size = len(payload)
    if size < 126:
        head = bytes((0x81, 0x80 | size))
    elif size < 1 << 16:
        head = bytes((0x81, 0x80 | 126)) + size.to_bytes(2, "big")
    else:
        head = bytes((0x81, 0x80 | 127)) + size.to_bytes(8, "big")
    return head + b"\0\0\0\0" + payload


@dataclass
class ConnectResult:
    connected: int
    failed: int
    elapsed_s: float
    errors: dict[str, int]


async def open_client(
    client: BenchClient,
    target: Target,
    token: str | None,
    *,
    join: bool,
    since: int | None = None,
    local_addr: str | None = None,
    wait_s: float = 30.0,
) -> None:
    """Connect one client; for Parley wait for hello and, when `join`, join "general"."""
    headers: dict[str, str] = {}
    if target.parley:
        headers["Sec-WebSocket-Protocol"] = "parley.v1"
    if token:  # Parley's plain-text mode signs in too
        headers["Authorization"] = f"Bearer {token}"
    client.control = target.parley
    client.inbox.clear()

    def factory() -> BenchClient:
        return client

    kwargs: dict[str, Any] = {}
    if _USE_AIOFASTNET is not None:
        kwargs["use_aiofastnet"] = _USE_AIOFASTNET
    if local_addr:
        kwargs["local_addr"] = (local_addr, 0)
    async with asyncio.timeout(wait_s):  # not wait_for: no task per connect
        await ws_connect(
            factory,
            target.url,
            extra_headers=headers,
            websocket_handshake_timeout=wait_s,
            enable_auto_pong=True,
            read_buffer_init_size=4096,
            **kwargs,
        )
    if not target.parley:
        return
    await client.expect("hello", wait_s)
    if join:
        frame: dict[str, Any] = {"type": "join", "room": ROOM}
        if since is not None:
            frame["since"] = since
        client.send_json(frame)
        joined = await client.expect("joined", wait_s)
        last = joined.get("last_seq")
        if isinstance(last, int):
            client.resume_target = last
            if client.mode == TRACK and client.last_seq >= last and not client.resumed_ns:
                client.resumed_ns = time.monotonic_ns()
    client.control = False
    # frames that arrived behind the control frame are replayed through the normal path
    leftovers, client.inbox = client.inbox, []
    for obj in leftovers:
        client._event(obj)


async def connect_many(
    clients: Sequence[BenchClient],
    target: Target,
    *,
    join: bool,
    concurrency: int = 200,
    local_addrs: Sequence[str] = (),
    wait_s: float = 30.0,
    since: Callable[[BenchClient], int | None] | None = None,
    deadline_s: float = 120.0,
) -> ConnectResult:
    """Connect every client, at most `concurrency` handshakes in flight."""
    sem = asyncio.Semaphore(concurrency)
    errors: dict[str, int] = {}
    tokens = list(target.tokens)
    t0 = time.monotonic()

    async def one(i: int, client: BenchClient) -> bool:
        token = tokens[i % len(tokens)] if tokens else None
        addr = local_addrs[i % len(local_addrs)] if local_addrs else None
        async with sem:
            if time.monotonic() - t0 > deadline_s:
                errors["deadline"] = errors.get("deadline", 0) + 1
                return False
            try:
                await open_client(
                    client,
                    target,
                    token,
                    join=join,
                    since=since(client) if since else None,
                    local_addr=addr,
                    wait_s=wait_s,
                )
            except Exception as exc:
                key = type(exc).__name__ + ": " + str(exc)[:80]
                errors[key] = errors.get(key, 0) + 1
                client.close(abort=True)
                return False
            return True

    results = await asyncio.gather(*(one(i, c) for i, c in enumerate(clients)))
    ok = sum(results)
    return ConnectResult(ok, len(results) - ok, time.monotonic() - t0, errors)
