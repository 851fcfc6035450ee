"""`parley backup` (a consistent copy while the server runs) and `parley restore` (a
checked copy swapped in while no server uses the data directory)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

from parley.store import datalock
from parley.store.driver import sqlite3
from tests.support.api import AsyncApi, ServerFactory
from tests.support.client import ParleyWS, new_client_id, parley_ws
from tests.support.pg import PgServer
from tests.support.server import PARLEY, ServerProcess, free_port

WINDOW = 64  # sends in flight at once: the client never waits for an ack to send
ENOUGH = 500  # acks before the backup begins


def parley(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PARLEY, *map(str, args)], capture_output=True, text=True, timeout=60, check=False
    )


def seqs_of(database: Path) -> dict[str, list[int]]:
    """Each room's stored seqs, ascending; checks the file first."""
    conn = sqlite3.connect(database)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        found: dict[str, list[int]] = {}
        for room, seq in conn.execute("SELECT room, seq FROM messages ORDER BY room, seq"):
            found.setdefault(room, []).append(seq)
        for room, last in conn.execute("SELECT room, last_seq FROM rooms"):
            assert found.get(room, [])[-1:] == ([last] if last else []), room
        return found
    finally:
        conn.close()


async def send_flat_out(
    ws: ParleyWS,
    rooms: list[str],
    acked: list[tuple[str, int]],
    enough: asyncio.Event,
    stop: asyncio.Event,
) -> None:
    """Send to `rooms` in turn with WINDOW sends in flight until `stop`; record each ack,
    and set `enough` at ENOUGH of them."""
    in_flight = sent = 0
    while not stop.is_set() or in_flight:
        while in_flight < WINDOW and not stop.is_set():
            room = rooms[sent % len(rooms)]
            await ws.send_json(
                {"type": "send", "room": room, "text": f"m{sent}", "client_id": new_client_id()}
            )
            sent += 1
            in_flight += 1
        event = await ws.recv()
        assert event["type"] != "error", event
        if event["type"] == "ack":
            acked.append((event["room"], event["seq"]))
            in_flight -= 1
            if len(acked) >= ENOUGH:
                enough.set()


async def test_backup_while_a_client_sends_flat_out(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    srv = server_factory(["--rate-limit", "0", "--action-limits", "0"])
    copy = tmp_path / "copy.db"
    async with AsyncApi(srv.url) as api:
        user = await api.register()
        await api.create_room(user.token, "busy")
        acked: list[tuple[str, int]] = []
        enough, stop = asyncio.Event(), asyncio.Event()
        async with parley_ws(srv.ws_url, user.token) as ws:
            rooms = ["general", "busy"]
            sender = asyncio.create_task(send_flat_out(ws, rooms, acked, enough, stop))
            await asyncio.wait(
                [sender, asyncio.create_task(enough.wait())], return_when=asyncio.FIRST_COMPLETED
            )
            assert not sender.done(), sender
            before = list(acked)
            proc = await asyncio.create_subprocess_exec(
                PARLEY, "backup", str(copy), "--data", str(srv.data_dir),
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            out, err = await proc.communicate()
            stop.set()
            await sender
        assert proc.returncode == 0, err
        assert len(acked) > len(before)  # the client sent on while the backup ran
        assert b"backed up to" in out
        stored = seqs_of(copy)
        for room in ("general", "busy"):
            seqs = stored[room]
            assert seqs == list(range(1, len(seqs) + 1)), room  # a gapless prefix
            assert {seq for r, seq in before if r == room} <= set(seqs)
        # A server starts from the copy and serves its history.
        restored = tmp_path / "from-copy"
        restored.mkdir()
        shutil.copy(copy, restored / "parley.db")
        again = server_factory([], data_dir=restored)
        async with AsyncApi(again.url) as api2:
            history = await api2.all_messages(user.token, "busy")
            assert [m["seq"] for m in history] == stored["busy"]


def test_backup_refusals(server: ServerProcess, tmp_path: Path) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    existing = out_dir / "existing.db"
    existing.write_text("keep me")
    live: list[str | Path] = ["--data", server.data_dir]
    cases: list[tuple[list[str | Path], Path, str]] = [
        (live, existing, "already exists"),
        (live, out_dir / "no-such-dir" / "x.db", "cannot be written"),
        (live, existing / "x.db", "cannot be written"),
        (live, out_dir, "is a directory"),
        ([*live, "--force"], server.data_dir / "parley.db", "is the server's database itself"),
        ([*live, "--force"], server.data_dir / "parley.db-wal", "is the server's database itself"),
        (["--db", "postgresql://parley@127.0.0.1/parley"], out_dir / "pg.db", "pg_dump"),
        (["--data", tmp_path / "empty"], out_dir / "none.db", "no such database"),
    ]
    for where, target, said in cases:
        out = parley("backup", target, *where)
        assert out.returncode == 1, (target, out.stdout)
        assert said in out.stderr, out.stderr
        assert out.stdout == ""
    assert existing.read_text() == "keep me"
    assert [p.name for p in out_dir.iterdir()] == ["existing.db"]
    # --force replaces the file with a copy
    out = parley("backup", existing, *live, "--force")
    assert out.returncode == 0, out.stderr
    assert seqs_of(existing) == {}  # a database (checked), of a server with no messages


async def test_restore_puts_the_backup_back(server_factory: ServerFactory, tmp_path: Path) -> None:
    data = tmp_path / "data"
    srv = server_factory([], data_dir=data)
    copy = tmp_path / "copy.db"
    async with AsyncApi(srv.url) as api:
        user = await api.register()
        await api.send(user.token, "general", "before the backup")
        assert parley("backup", copy, "--data", data).returncode == 0
        await api.send(user.token, "general", "after the backup")
        # refused while the server runs: nothing changes
        out = parley("restore", copy, "--data", data)
        assert out.returncode == 1
        assert "a server is running" in out.stderr
        texts = [m["text"] for m in await api.all_messages(user.token, "general")]
        assert texts == ["before the backup", "after the backup"]
    assert srv.terminate() == 0
    out = parley("restore", copy, "--data", data)
    assert out.returncode == 0, out.stderr
    assert not (data / "parley.db-wal").exists()
    assert not (data / "parley.db-shm").exists()
    srv.start()
    async with AsyncApi(srv.url) as api:
        texts = [m["text"] for m in await api.all_messages(user.token, "general")]
        assert texts == ["before the backup"]


def make_database(path: Path, sql: str) -> Path:
    conn = sqlite3.connect(path)
    conn.executescript(sql)
    conn.close()
    return path


def test_restore_refuses_what_is_not_a_known_parley_database(
    server: ServerProcess, tmp_path: Path
) -> None:
    copy = tmp_path / "good.db"
    assert parley("backup", copy, "--data", server.data_dir).returncode == 0
    newer = tmp_path / "newer.db"
    shutil.copy(copy, newer)
    make_database(newer, "INSERT INTO schema_migrations VALUES (999, 'later')")
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all" * 100)
    cases = [
        (server.data_dir / "parley.db", "is the server's database itself"),
        (tmp_path / "missing.db", "no such file"),
        (junk, "not a Parley database"),
        (make_database(tmp_path / "other.db", "CREATE TABLE t (x)"), "not a Parley database"),
        (newer, "schema version 999 is newer"),
    ]
    data = tmp_path / "target"
    data.mkdir()
    for source, said in cases:
        into = server.data_dir if source.parent == server.data_dir else data
        out = parley("restore", source, "--data", into)
        assert out.returncode == 1, source
        assert said in out.stderr, out.stderr
    assert not (data / "parley.db").exists()


def test_restore_is_refused_beside_a_postgres_server(
    server_factory: ServerFactory, pg_server: PgServer, tmp_path: Path
) -> None:
    data = tmp_path / "pg-node"
    server_factory(["--db", pg_server.create_database()], data_dir=data)
    good = tmp_path / "good.db"
    sqlite_srv = server_factory([])
    assert parley("backup", good, "--data", sqlite_srv.data_dir).returncode == 0
    out = parley("restore", good, "--data", data)
    assert out.returncode == 1
    assert "a server is running" in out.stderr


def test_a_server_does_not_start_during_a_restore(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with datalock.exclusive(data):
        out = parley("serve", "--data", data, "--port", str(free_port()))
    assert out.returncode == 1
    assert "a restore into" in out.stderr


def test_a_server_refuses_a_database_of_a_newer_parley(
    server_factory: ServerFactory, pg_server: PgServer, tmp_path: Path
) -> None:
    """A downgrade would run old code over tables it does not know: serve says so, exit 1."""
    sqlite_srv = server_factory([])
    sqlite_srv.stop()
    conn = sqlite3.connect(sqlite_srv.data_dir / "parley.db")
    with conn:
        conn.execute("INSERT INTO schema_migrations VALUES (999, 'later')")
    conn.close()
    url = pg_server.create_database()
    pg_node = server_factory(["--db", url], data_dir=tmp_path / "pg-node")
    pg_node.stop()
    pg_server.sql("INSERT INTO schema_migrations (version) VALUES (999)", url.rsplit("/", 1)[1])
    for flags in (["--data", sqlite_srv.data_dir], ["--data", tmp_path / "pg-node", "--db", url]):
        out = parley("serve", *flags, "--port", str(free_port()))
        assert out.returncode == 1, out.stderr
        assert "schema version 999, newer than this Parley knows" in out.stderr
