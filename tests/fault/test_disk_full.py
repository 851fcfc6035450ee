"""Issue 11: a full disk under the SQLite store.

Two real ways for the server's writes to fail, both at the OS, under a running server:
- `tmpfs`: the data directory is a small tmpfs the test mounts (root; skipped where mount is not
  allowed), and a filler file takes every free block: writes fail with ENOSPC (SQLITE_FULL).
- `fsize`: the server's file size limit (RLIMIT_FSIZE, set on the running process with
  prlimit) is lowered to the WAL's size: growing it fails with EFBIG
  (SQLITE_IOERR_WRITE, "disk I/O error"). Needs no privilege, so it runs everywhere.

While the disk is full, sends answer `unavailable` (a WebSocket error event with the client_id
as ref, a REST 503), nothing acked is lost, reads keep working (history, join, the room list),
and once space returns the same server (no restart) stores the resent messages exactly once,
seq gapless, and the database passes `PRAGMA integrity_check`.
"""

from __future__ import annotations

import asyncio
import errno
import resource
import shutil
import subprocess
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path

import pytest

from parley.store.driver import sqlite3
from tests.support.api import AsyncApi, assert_error
from tests.support.client import ParleyWS, open_ws
from tests.support.server import ServerProcess

DISK = "3m"  # the tmpfs size: room for the schema, a few users and a growing WAL
TEXT = "x" * 3000  # about a page a message, so the WAL needs new blocks quickly
MAX_SENDS = 400  # per writer: the disk is full long before this many messages
WRITERS = 3


class Disk(ABC):
    """Where the server keeps its data, and a way to make it full and free again."""

    data: Path

    @abstractmethod
    def fill(self, srv: ServerProcess) -> None: ...

    @abstractmethod
    def free(self, srv: ServerProcess) -> None: ...

    @abstractmethod
    def close(self) -> None:
        """Undo what setting up took."""


class Tmpfs(Disk):
    """A tmpfs of DISK bytes, mounted for this test only; full = a filler file."""

    def __init__(self, mnt: Path) -> None:
        mnt.mkdir()
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={DISK}", "tmpfs", str(mnt)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
        self.mnt = mnt
        self.data = mnt / "data"
        self.filler = mnt / "filler"

    def fill(self, srv: ServerProcess) -> None:
        with self.filler.open("wb", buffering=0) as f:
            try:
                while True:
                    f.write(b"\0" * 4096)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
        assert shutil.disk_usage(self.mnt).free < 4096

    def free(self, srv: ServerProcess) -> None:
        self.filler.unlink()

    def close(self) -> None:
        subprocess.run(["umount", "-l", str(self.mnt)], check=False)


class FileSizeCap(Disk):
    """The server process may not grow a file past the WAL's size now: the next COMMIT needs
    more WAL and fails. (Exactly that size, no margin: a COMMIT cut short at a margin leaves
    a tail that a later, smaller COMMIT could fit in, and the disk would look less full.)"""

    def __init__(self, data: Path) -> None:
        self.data = data

    def fill(self, srv: ServerProcess) -> None:
        assert srv.proc is not None
        wal = (self.data / "parley.db-wal").stat().st_size
        _, hard = resource.prlimit(srv.proc.pid, resource.RLIMIT_FSIZE)
        resource.prlimit(srv.proc.pid, resource.RLIMIT_FSIZE, (wal, hard))

    def free(self, srv: ServerProcess) -> None:
        assert srv.proc is not None
        _, hard = resource.prlimit(srv.proc.pid, resource.RLIMIT_FSIZE)
        resource.prlimit(srv.proc.pid, resource.RLIMIT_FSIZE, (hard, hard))

    def close(self) -> None:
        """Nothing to undo: the limit ends with the server process."""


@pytest.fixture(params=["tmpfs", "fsize"])
def disk(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Disk]:
    made = Tmpfs(tmp_path / "disk") if request.param == "tmpfs" else FileSizeCap(tmp_path / "data")
    try:
        yield made
    finally:
        made.close()


@pytest.fixture
def server_on(disk: Disk, tmp_path: Path) -> Iterator[ServerProcess]:
    srv = ServerProcess(disk.data, ["--rate-limit", "0"])
    srv.log_path = tmp_path / "server.log"  # the log must not need the full disk
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


async def send_until_unavailable(ws: ParleyWS, acked: dict[str, int], prefix: str) -> str:
    """Send one message at a time until the store refuses one; returns its client_id. Each
    send has a request id: the ack, or the error that the failed COMMIT brings, echoes it."""
    for n in range(MAX_SENDS):
        cid = f"{prefix}-{n}"
        await ws.send_json(
            {"type": "send", "room": "general", "text": TEXT, "client_id": cid, "id": n}
        )
        event = await ws.recv_until(lambda e: e.get("type") in ("ack", "error"))
        assert event["id"] == n, event
        if event["type"] == "error":
            assert event["code"] == "unavailable", event
            assert event["ref"] == cid, event
            return cid
        assert event["client_id"] == cid
        acked[cid] = event["seq"]
    raise AssertionError(f"{MAX_SENDS} sends on a full disk were all acked")


async def test_full_disk_refuses_writes_keeps_reads_and_recovers(
    disk: Disk, server_on: ServerProcess
) -> None:
    srv = server_on
    acked: dict[str, int] = {}  # client_id -> the seq its ack named
    async with AsyncApi(srv.url) as api:
        users = [await api.register() for _ in range(WRITERS)]
        writers = [await open_ws(srv.ws_url, u.token) for u in users]
        for n, ws in enumerate(writers):
            acked[f"w{n}-warm"] = (await ws.send_ok("general", TEXT, f"w{n}-warm"))["seq"]
        watcher = await open_ws(srv.ws_url, users[0].token)
        await watcher.join_ok("general", since=0)  # replay, then live: every message

        disk.fill(srv)
        # several writers at once, so refused batches hold several messages
        refused = list(
            await asyncio.gather(
                *(send_until_unavailable(ws, acked, f"w{n}") for n, ws in enumerate(writers))
            )
        )
        assert refused, "no send was refused"
        # still full: every write answers unavailable, on both protocols, nothing is a 500
        await writers[0].send_text("general", TEXT, "again")
        assert (await writers[0].expect_error("unavailable"))["ref"] == "again"
        refused.append("again")
        assert_error(
            await api.send_raw(users[1].token, "general", TEXT, "rest"), 503, "unavailable"
        )
        assert_error(await api.login_raw(users[1].username, users[1].password), 503, "unavailable")
        resp = await api.post("/api/rooms", token=users[1].token, json={"room": "newroom"})
        assert_error(resp, 503, "unavailable")

        # reads keep working: history (both ways), join, the room list, health
        in_order = sorted(acked, key=acked.__getitem__)
        stored = await api.all_messages(users[1].token, "general")
        assert [(m["client_id"], m["seq"]) for m in stored] == [(c, acked[c]) for c in in_order]
        history = await writers[1].history("general", limit=100)
        assert [m["seq"] for m in history] == sorted(acked.values())
        late = await open_ws(srv.ws_url, users[1].token)
        joined = await late.join_ok("general")
        assert joined["last_seq"] == len(acked)
        assert "general" in await api.room_names(users[1].token)
        assert (await api.get("/healthz")).status_code == 200

        # space returns: the same server takes the resends, each stored once
        disk.free(srv)
        for cid in refused:
            writer = writers[0] if cid == "again" else writers[int(cid[1 : cid.index("-")])]
            acked[cid] = (await writer.send_ok("general", TEXT, cid))["seq"]
        rest = await api.send_raw(users[1].token, "general", TEXT, "rest")
        assert rest.status_code == 201, rest.text
        acked["rest"] = rest.json()["seq"]
        assert (
            await api.post("/api/rooms", token=users[1].token, json={"room": "newroom"})
        ).status_code == 201
        # a resend of a message acked before the disk filled: its first seq, nothing new
        assert (await writers[0].send_ok("general", TEXT, "w0-warm"))["seq"] == acked["w0-warm"]
        # live delivery: the watcher got every stored message once, in seq order
        for seq in range(1, len(acked) + 1):
            await watcher.recv_type("message", seq=seq)
        assert sorted(m["seq"] for m in watcher.seen_of("message")) == list(
            range(1, len(acked) + 1)
        )

        stored = await api.all_messages(users[1].token, "general")
        assert [m["seq"] for m in stored] == list(range(1, len(acked) + 1))
        assert {m["client_id"]: m["seq"] for m in stored} == acked
        for ws in (*writers, watcher, late):
            await ws.close()
    assert srv.proc is not None
    assert srv.proc.poll() is None, "the server died"
    srv.stop()
    check = sqlite3.connect(srv.data_dir / "parley.db")
    try:
        assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert check.execute("SELECT count(*) FROM messages").fetchone() == (len(acked),)
    finally:
        check.close()
