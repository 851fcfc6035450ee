"""The `hello` workload (issue 13): what a client waits for between its upgrade and `hello`,
with many rooms and a million stored messages.

The database is seeded through Parley's own store (`SQLiteStore`: `create_room`,
`add_member`, `append_soon`, `mark_read`), so that whatever the store keeps per user and room
as messages are stored is kept, and cached between runs under a key that names the seed and
the number of SQLite migrations (a new migration seeds again). Each run serves a copy of it.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import random
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

import msgspec
from argon2 import PasswordHasher
from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

from parley.core import GENERAL
from parley.store.driver import sqlite3
from parley.store.migrations import SQLITE as SQLITE_MIGRATIONS
from parley.store.sqlite import SQLiteStore
from parley_bench.servers import ServerProc, cpu_seconds, http_json, machine_busy_seconds
from parley_bench.stats import summarize_ns

__all__ = [
    "CACHE_DIR",
    "DB_NAME",
    "READER",
    "SEED_PASSWORD",
    "SEED_VERSION",
    "WORDS",
    "SeedSpec",
    "copy_database",
    "count_totals",
    "counted_at_read_time",
    "measure_hello",
    "members",
    "mentions_reader",
    "message_text",
    "read_marker",
    "reader_opened",
    "reader_token",
    "room_plan",
    "room_weights",
    "seeded_database",
]

#: bump when the seed's content changes (its cache key carries it)
SEED_VERSION: Final = 2
_RNG_SEED: Final = 13  # the same messages every time
#: the seeded database is cached here between runs (bench/results/.cache, not committed)
CACHE_DIR: Final = Path(__file__).resolve().parents[1] / "results" / ".cache"
DB_NAME: Final = "parley.db"  # what `parley serve --data DIR` opens
#: the measured user, and the password every seeded user has
READER: Final = "reader"
SEED_PASSWORD: Final = "bench-password-123"
WORDS: Final = (
    *("deploy", "ship", "review", "merge", "the", "build", "is", "green", "again", "lunch"),
    *("at", "noon", "who", "owns", "this", "ticket", "please", "look", "at", "the", "logs"),
    *("tomorrow", "sounds", "good", "thanks"),
)


@dataclass(frozen=True)
class SeedSpec:
    """What the seeded database holds; every field is part of the cache key."""

    rooms: int  # "general" included: every one of them visible to READER
    private_rooms: int  # of those, private ones READER belongs to
    messages: int
    authors: int = 8
    mention_every: int = 20  # every n-th message mentions READER
    batch: int = 1000  # append_soon futures awaited together (group commit)

    def key(self) -> str:
        return (
            f"{cache_prefix()}r{self.rooms}-p{self.private_rooms}-m{self.messages}"
            f"-a{self.authors}-e{self.mention_every}"
        )

    def author(self, i: int) -> str:
        return f"author{i % self.authors}"


def cache_prefix() -> str:
    """The part of a cache key that a new seed version or a new migration changes."""
    return f"hello-v{SEED_VERSION}-mig{len(SQLITE_MIGRATIONS)}-"


def room_plan(spec: SeedSpec) -> list[tuple[str, bool, str]]:
    """(name, private, owner) of every room, "general" first (the migrations create it).

    Half of the private rooms belong to READER, the other half to an author who adds
    READER; public rooms belong to the authors in turn."""
    if not 0 <= spec.private_rooms < spec.rooms:
        raise ValueError("need 0 <= private_rooms < rooms")
    public = spec.rooms - 1 - spec.private_rooms
    plan = [(GENERAL, False, "")]
    plan += [(f"room{i:03d}", False, spec.author(i)) for i in range(public)]
    plan += [
        (f"team{i:02d}", True, READER if i % 2 == 0 else spec.author(i))
        for i in range(spec.private_rooms)
    ]
    return plan


def room_weights(count: int) -> list[float]:
    """How busy each room is: a few busy rooms and a long tail (Zipf, exponent 1)."""
    return [1.0 / (i + 1) for i in range(count)]


def mentions_reader(spec: SeedSpec, n: int) -> bool:
    return spec.mention_every > 0 and n % spec.mention_every == 0


def message_text(spec: SeedSpec, n: int, rng: random.Random) -> str:
    words = " ".join(rng.choices(WORDS, k=rng.randint(3, 14)))
    return f"@{READER} {words}" if mentions_reader(spec, n) else words


def reader_opened(index: int) -> bool:
    """Whether READER has opened the room at `index` of the plan: two rooms in three."""
    return index % 3 != 2


def members(spec: SeedSpec, index: int, private: bool) -> list[str]:
    """Who belongs to the room at `index` of the plan besides its owner, as of before its
    first message: every author (who posts there), and READER in the private rooms and in
    the public rooms they opened (the server makes a user a member of a public room at its
    first use); the public rooms READER never opened they only see."""
    users = [spec.author(i) for i in range(spec.authors)]
    return [READER, *users] if private or reader_opened(index) else users


def read_marker(index: int, last_seq: int) -> int | None:
    """READER's marker in the room at `index` of the plan: caught up in half of the rooms
    they opened, 90% through in the other half."""
    if last_seq == 0 or not reader_opened(index):
        return None
    return last_seq if index % 3 == 0 else last_seq * 9 // 10


async def seed(db: Path, spec: SeedSpec) -> dict[str, Any]:
    """Fill a fresh database at `db` through Parley's store; returns what it holds."""
    t0 = time.monotonic()
    store = SQLiteStore(db)
    await store.open()
    try:
        hashed = PasswordHasher().hash(SEED_PASSWORD)  # as the server hashes (argon2id)
        for user in (READER, *(spec.author(i) for i in range(spec.authors))):
            await store.create_user(user, hashed)
        keys = await _create_rooms(store, spec)
        mentions = await _append_messages(store, spec, keys)
        markers = await _mark_read(store, keys)
    finally:
        await store.close()
    db_mib = _checkpoint(db)
    return {
        "rooms": spec.rooms,
        "private_rooms": spec.private_rooms,
        "messages": spec.messages,
        "authors": spec.authors,
        "mentions": mentions,
        "read_markers": markers,
        "seed_s": round(time.monotonic() - t0, 1),
        "db_mib": db_mib,
        "key": spec.key(),
    }


def _checkpoint(db: Path) -> float:
    """Fold the WAL into the database file, which is then all there is; its size in MiB."""
    conn = sqlite3.connect(db)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return round(db.stat().st_size / 2**20, 1)


async def _create_rooms(store: SQLiteStore, spec: SeedSpec) -> list[str]:
    plan = room_plan(spec)
    keys = [GENERAL]
    for name, private, owner in plan[1:]:
        record = await store.create_room(name, private, owner)
        if record is None:
            raise RuntimeError(f"seed: room {name} exists")
        keys.append(record.room)
    await asyncio.gather(  # together: the store commits them in a few transactions
        *(
            store.add_member(key, user)
            for index, (key, (_, private, _)) in enumerate(zip(keys, plan, strict=True))
            for user in members(spec, index, private)
        )
    )
    return keys


async def _append_messages(store: SQLiteStore, spec: SeedSpec, keys: Sequence[str]) -> int:
    rng = random.Random(_RNG_SEED)
    weights = room_weights(len(keys))
    mentions = 0
    for start in range(0, spec.messages, spec.batch):
        count = min(spec.batch, spec.messages - start)
        rooms = rng.choices(keys, weights, k=count)
        futures = []
        for n, room in enumerate(rooms, start):
            mentions += mentions_reader(spec, n)
            text = message_text(spec, n, rng)
            futures.append(
                store.append_soon(room, spec.author(rng.randrange(spec.authors)), text, None)
            )
        await asyncio.gather(*futures)
    return mentions


async def _mark_read(store: SQLiteStore, keys: Sequence[str]) -> int:
    last = await store.last_seqs()
    markers = 0
    for index, key in enumerate(keys):
        seq = read_marker(index, last.get(key, 0))
        if seq is not None:
            await store.mark_read(key, READER, seq)
            markers += 1
    return markers


async def seeded_database(spec: SeedSpec, cache: Path = CACHE_DIR) -> tuple[Path, dict[str, Any]]:
    """The cached database for `spec` (seeded first when there is none) and its seed info.

    A seed is written to a scratch directory and renamed into place when complete, so an
    interrupted run leaves no half-seeded cache; caches of older seeds or schemas go."""
    final = cache / spec.key()
    info = _cached_seed(final)
    if info is not None:
        return final / DB_NAME, info | {"cached": True}
    scratch = _scratch_dir(spec, cache)
    info = await seed(scratch / DB_NAME, spec) | {"spec": asdict(spec)}
    (scratch / "seed.json").write_text(json.dumps(info, indent=1) + "\n")
    scratch.rename(final)
    return final / DB_NAME, info | {"cached": False}


def _cached_seed(entry: Path) -> dict[str, Any] | None:
    try:
        info: dict[str, Any] = json.loads((entry / "seed.json").read_text())
    except FileNotFoundError:
        return None
    return info


def _scratch_dir(spec: SeedSpec, cache: Path) -> Path:
    """An empty directory to seed in, after removing the caches of other seed versions or
    schemas and the leftovers of interrupted seeds."""
    cache.mkdir(parents=True, exist_ok=True)
    for old in cache.glob("hello-*"):
        if not old.name.startswith(cache_prefix()) or old.name.endswith(".tmp"):
            shutil.rmtree(old, ignore_errors=True)
    scratch = cache / f"{spec.key()}-{os.getpid()}.tmp"
    scratch.mkdir()
    return scratch


def copy_database(db: Path, data_dir: Path) -> None:
    """A fresh data dir holding a copy of `db` and of its WAL, if one was left (never of
    the -shm index, which SQLite rebuilds from the WAL)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal"):
        part = db.with_name(db.name + suffix)
        if part.exists():
            shutil.copyfile(part, data_dir / (DB_NAME + suffix))


# --- measuring ------------------------------------------------------------------------


class HelloProbe(WSListener):
    """One parley.v1 socket: when its first frame came."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self.first_ns = 0
        self.first: asyncio.Future[bytes] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self.transport: WSTransport | None = None

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type is WSMsgType.CLOSE:
            transport.send_close(WSCloseCode.OK)
            transport.disconnect()
        elif frame.msg_type is WSMsgType.TEXT and not self.first.done():
            self.first_ns = time.monotonic_ns()
            self.first.set_result(frame.get_payload_as_bytes())

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        if not self.first.done():
            self.first.set_exception(ConnectionError("closed before the first frame"))
        if not self.closed.done():
            self.closed.set_result(None)

    async def close(self, wait_s: float) -> None:
        if self.transport is not None and not self.closed.done():
            self.transport.send_close(WSCloseCode.GOING_AWAY)
            self.transport.disconnect()
        await asyncio.wait_for(self.closed, wait_s)


async def _open_probe(
    probe: HelloProbe, url: str, headers: dict[str, str], wait_s: float
) -> HelloProbe:
    await ws_connect(lambda: probe, url, extra_headers=headers, websocket_handshake_timeout=wait_s)
    return probe


def _room_count(body: bytes, kind: str) -> int:
    """How many rooms a `hello` frame or a GET /api/rooms body lists."""
    obj = msgspec.json.decode(body)
    if not isinstance(obj, dict) or not isinstance(obj.get("rooms"), list):
        raise RuntimeError(f"not a room list: {body[:200]!r}")
    if kind == "hello" and obj.get("type") != "hello":
        raise RuntimeError(f"first frame is not hello: {body[:200]!r}")
    return len(obj["rooms"])


def count_totals(body: bytes) -> dict[str, int]:
    """The `unread` and `mentions` of every room of a `hello` frame (or a GET /api/rooms
    body), summed; 0 for a field it lacks."""
    rooms = msgspec.json.decode(body)["rooms"]
    return {key: sum(int(r.get(key, 0)) for r in rooms) for key in ("unread", "mentions")}


_COUNTED_SQL: Final = """
    SELECT count(*), coalesce(sum(m.text LIKE '%@' || ?1 || '%'), 0)
    FROM messages m LEFT JOIN read_marks k ON k.username = ?1 AND k.room = m.room
    WHERE m.username != ?1 AND m.seq > coalesce(k.seq, 0)
"""


def counted_at_read_time(db: Path) -> dict[str, int]:
    """READER's unread messages and mentions counted from the seeded messages themselves
    (none is deleted or edited, none is READER's), to hold the store's counts against."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        unread, mentions = conn.execute(_COUNTED_SQL, (READER,)).fetchone()
    finally:
        conn.close()
    return {"unread": int(unread), "mentions": int(mentions)}


async def hello_samples(
    url: str, token: str, count: int, wait_s: float = 10.0
) -> tuple[list[int], list[int], bytes]:
    """Open `count` sockets one after another: (ns from the connect to hello, rooms in
    each hello, the last hello). Each socket is closed before the next opens. From the
    connect, not the 101: the 101 and `hello` leave the server in one write."""
    loop = asyncio.get_running_loop()
    headers = {"Sec-WebSocket-Protocol": "parley.v1", "Authorization": f"Bearer {token}"}
    latencies: list[int] = []
    rooms: list[int] = []
    body = b""
    for _ in range(count):
        start = time.monotonic_ns()
        probe = await _open_probe(HelloProbe(loop), url, headers, wait_s)
        body = await asyncio.wait_for(probe.first, wait_s)
        latencies.append(probe.first_ns - start)
        rooms.append(_room_count(body, "hello"))
        await probe.close(wait_s)
    return latencies, rooms, body


def rooms_api_samples(port: int, token: str, count: int) -> tuple[list[int], list[int]]:
    """GET /api/rooms `count` times on one kept-alive connection (blocking: run it in a
    thread): (ns from request to the whole body, rooms in each answer)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Authorization": f"Bearer {token}"}
    latencies: list[int] = []
    rooms: list[int] = []
    try:
        for _ in range(count):
            t0 = time.monotonic_ns()
            conn.request("GET", "/api/rooms", headers=headers)
            resp = conn.getresponse()
            body = resp.read()
            latencies.append(time.monotonic_ns() - t0)
            if resp.status != 200:
                raise RuntimeError(f"GET /api/rooms: HTTP {resp.status} {body[:200]!r}")
            rooms.append(_room_count(body, "rooms"))
    finally:
        conn.close()
    return latencies, rooms


async def reader_token(server: ServerProc) -> str:
    """Sign in to the seeded server as READER: the session's token."""
    status, body = await asyncio.to_thread(
        http_json,
        "POST",
        f"{server.http_url}/api/login",
        {"username": READER, "password": SEED_PASSWORD},
    )
    if status != 200 or not isinstance(body, dict) or "token" not in body:
        raise RuntimeError(f"login as {READER}: HTTP {status} {body}")
    token: str = body["token"]
    return token


async def measure_hello(server: ServerProc, spec: SeedSpec, samples: int) -> dict[str, Any]:
    """Sign in as READER, then time `hello` and GET /api/rooms against the seeded server."""
    token = await reader_token(server)
    t0, cpu0, gen0, busy0 = (
        time.monotonic(),
        cpu_seconds(server.pid),
        time.process_time(),
        machine_busy_seconds(),
    )
    hello_ns, hello_rooms, hello = await hello_samples(server.ws_url, token, samples)
    api_ns, api_rooms = await asyncio.to_thread(rooms_api_samples, server.port, token, samples)
    dt = time.monotonic() - t0
    server_cpu, gen_cpu = cpu_seconds(server.pid) - cpu0, time.process_time() - gen0
    result: dict[str, Any] = {
        "samples": samples,
        "hello_ms": summarize_ns(hello_ns),
        "hello_first_ms": hello_ns[0] / 1e6,
        "hello_rooms": hello_rooms[0],
        "hello_bytes": len(hello),
        "hello_counts": count_totals(hello),
        "rooms_api_ms": summarize_ns(api_ns),
        "rooms_api_rooms": api_rooms[0],
        "measure_s": round(dt, 2),
        "server_cpu_s": round(server_cpu, 2),
        # cores used by everything else meanwhile (other test runs share this machine)
        "other_cpu": round(max(0.0, machine_busy_seconds() - busy0 - server_cpu - gen_cpu) / dt, 2),
        "rss_kib": server.rss_kib(),
    }
    wrong = {n for n in (*hello_rooms, *api_rooms) if n != spec.rooms}
    if wrong:
        result["error"] = f"rooms listed: {sorted(wrong)}, expected {spec.rooms}"
    h, a = result["hello_ms"], result["rooms_api_ms"]
    print(
        f"    hello p50 {h['p50']:.2f} p90 {h['p90']:.2f} p99 {h['p99']:.2f} "
        f"max {h['max']:.2f} ms; GET /api/rooms p50 {a['p50']:.2f} p90 {a['p90']:.2f} "
        f"p99 {a['p99']:.2f} max {a['max']:.2f} ms ({result['hello_rooms']} rooms; "
        f"other processes: {result['other_cpu']:.2f} cores)",
        flush=True,
    )
    return result
