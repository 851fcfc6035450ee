"""`parley admin ...` with the server stopped and running (SQLite, and PostgreSQL with
--db), and `parley serve --registration`."""

from __future__ import annotations

import contextlib
import subprocess
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import httpx
import pytest

from parley.store.driver import sqlite3
from tests.support.api import DEFAULT_PASSWORD, assert_error, bearer, unique_name
from tests.support.client import open_ws
from tests.support.pg import PgServer
from tests.support.server import PARLEY, ServerProcess

pytestmark = pytest.mark.timeout(120)

NEW_PASSWORD = "a new password, long enough"


def admin(*args: str, password: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run `parley admin ARGS`, the password (if any) on standard input."""
    return subprocess.run(
        [PARLEY, "admin", *args],
        input=None if password is None else password + "\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def ok(*args: str, password: str | None = None) -> str:
    out = admin(*args, password=password)
    assert out.returncode == 0, out.stderr
    return out.stdout


def refused(*args: str, password: str | None = None) -> str:
    """A command that must fail with exit code 1 and say why on standard error."""
    out = admin(*args, password=password)
    assert out.returncode == 1, (out.stdout, out.stderr)
    assert out.stderr.startswith("parley admin: "), out.stderr
    return out.stderr


def sign_in(server: ServerProcess, name: str, password: str = DEFAULT_PASSWORD) -> httpx.Response:
    return httpx.post(f"{server.url}/api/login", json={"username": name, "password": password})


def me(server: ServerProcess, token: str) -> httpx.Response:
    return httpx.get(f"{server.url}/api/me", headers=bearer(token))


def test_accounts_made_while_the_server_is_stopped(tmp_path: Path) -> None:
    data = ["--data", str(tmp_path)]
    assert ok("create-user", "Ann", *data, password=DEFAULT_PASSWORD) == "created Ann (admin)\n"
    assert ok("create-user", "bob", *data, password=DEFAULT_PASSWORD) == "created bob\n"
    assert ok("create-user", "cat", "--admin", *data, password=DEFAULT_PASSWORD) == (
        "created cat (admin)\n"
    )
    assert "taken" in refused("create-user", "ANN", *data, password=DEFAULT_PASSWORD)
    assert "password" in refused("create-user", "dan", *data, password="short")
    assert "username" in refused("create-user", "no spaces", *data, password=DEFAULT_PASSWORD)
    server = ServerProcess(tmp_path, ["--register-limit", "0"]).start()
    try:
        token = sign_in(server, "ann").json()["token"]
        assert me(server, token).json() == {"username": "Ann", "admin": True}
        assert sign_in(server, "dan").status_code == 401  # nothing half-made
    finally:
        server.stop()


def test_roles_and_bans_with_their_refusals(tmp_path: Path) -> None:
    data = ["--data", str(tmp_path)]
    for name in ("ann", "bob"):
        ok("create-user", name, *data, password=DEFAULT_PASSWORD)
    assert "no user 'zed'" in refused("grant", "zed", *data)
    assert "last admin" in refused("revoke", "ann", *data)
    assert "revoke the role first" in refused("ban", "ann", *data)
    assert ok("grant", "bob", *data) == "bob is an admin\n"
    assert ok("grant", "bob", *data) == "bob is an admin already\n"
    assert ok("revoke", "ann", *data) == "ann is not an admin\n"
    assert ok("ban", "ann", *data) == "ann is banned\n"
    assert "unban them first" in refused("grant", "ann", *data)
    server = ServerProcess(tmp_path, ["--register-limit", "0"]).start()
    try:
        assert_error(sign_in(server, "ann"), 403, "forbidden")
        bob = sign_in(server, "bob").json()["token"]
        resp = httpx.get(f"{server.url}/api/admin/audit", headers=bearer(bob))
        entries = [(e["actor"], e["action"], e["target"]) for e in resp.json()["entries"]]
        assert entries == [
            ("@cli", "ban", "ann"),
            ("@cli", "revoke", "ann"),
            ("@cli", "grant", "bob"),
        ]
    finally:
        server.stop()


async def test_a_ban_from_the_command_line_closes_the_running_servers_sockets(
    tmp_path: Path,
) -> None:
    server = ServerProcess(tmp_path, ["--register-limit", "0"]).start()
    try:
        ok("create-user", "ann", "--data", str(tmp_path), password=DEFAULT_PASSWORD)
        ok("create-user", "bob", "--data", str(tmp_path), password=DEFAULT_PASSWORD)
        token = sign_in(server, "bob").json()["token"]
        ws = await open_ws(server.ws_url, token)
        ok("ban", "bob", "--data", str(tmp_path))
        assert await ws.wait_closed(within=15) == 4003  # the server follows the audit log
        assert_error(me(server, token), 401, "unauthorized")
        assert_error(sign_in(server, "bob"), 403, "forbidden")
        ok("unban", "bob", "--data", str(tmp_path))
        assert sign_in(server, "bob").status_code == 200
    finally:
        server.stop()


async def test_a_grant_from_the_command_line_reaches_the_open_sockets(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path, ["--register-limit", "0"]).start()
    try:
        ok("create-user", "ann", "--data", str(tmp_path), password=DEFAULT_PASSWORD)
        ok("create-user", "bob", "--data", str(tmp_path), password=DEFAULT_PASSWORD)
        ws = await open_ws(server.ws_url, sign_in(server, "bob").json()["token"])
        ok("grant", "BOB", "--data", str(tmp_path))
        assert await ws.recv_type("account", within=15) == {"type": "account", "admin": True}
        ok("revoke", "bob", "--data", str(tmp_path))
        assert await ws.recv_type("account", within=15) == {"type": "account", "admin": False}
        await ws.close()
    finally:
        server.stop()


async def test_a_reset_password_ends_every_session_of_the_running_server(
    tmp_path: Path,
) -> None:
    server = ServerProcess(tmp_path, ["--register-limit", "0"]).start()
    try:
        ok("create-user", "ann", "--data", str(tmp_path), password=DEFAULT_PASSWORD)
        token = sign_in(server, "ann").json()["token"]
        ws = await open_ws(server.ws_url, token)
        ok("reset-password", "ANN", "--data", str(tmp_path), password=NEW_PASSWORD)
        assert await ws.wait_closed(within=15) == 4001
        assert_error(me(server, token), 401, "unauthorized")
        assert_error(sign_in(server, "ann"), 401, "unauthorized")
        assert sign_in(server, "ann", NEW_PASSWORD).status_code == 200
        assert "no user" in refused(
            "reset-password", "zed", "--data", str(tmp_path), password=NEW_PASSWORD
        )
    finally:
        server.stop()


def test_commands_take_a_postgresql_url(tmp_path: Path, pg_server: PgServer) -> None:
    db = ["--db", pg_server.create_database()]
    ok("create-user", "ann", *db, password=DEFAULT_PASSWORD)
    ok("create-user", "bob", *db, password=DEFAULT_PASSWORD)
    server = ServerProcess(tmp_path, ["--register-limit", "0", *db]).start()
    try:
        token = sign_in(server, "bob").json()["token"]
        assert ok("ban", "bob", *db) == "bob is banned\n"
        assert_error(me(server, token), 401, "unauthorized")
        assert_error(sign_in(server, "bob"), 403, "forbidden")
    finally:
        server.stop()
    assert not list(tmp_path.glob("*.db"))  # nothing went to SQLite


def test_serve_registration_is_stored_and_holds_on_the_next_start(tmp_path: Path) -> None:
    ok("create-user", "ann", "--data", str(tmp_path), password=DEFAULT_PASSWORD)
    server = ServerProcess(tmp_path, ["--registration", "closed"]).start()
    try:
        refusal = httpx.post(
            f"{server.url}/api/register",
            json={"username": unique_name(), "password": DEFAULT_PASSWORD},
        )
        assert_error(refusal, 403, "forbidden")
    finally:
        server.stop()
    server = ServerProcess(tmp_path).start()  # no flag: the stored mode holds
    try:
        token = sign_in(server, "ann").json()["token"]
        settings = httpx.get(f"{server.url}/api/admin/settings", headers=bearer(token))
        assert settings.json() == {"registration": "closed"}
        audit = httpx.get(f"{server.url}/api/admin/audit", headers=bearer(token))
        entry = audit.json()["entries"][0]
        assert (entry["actor"], entry["action"], entry["target"]) == (
            "@cli",
            "registration",
            "closed",
        )
    finally:
        server.stop()


def test_admin_help_lists_every_command() -> None:
    out = admin("--help")
    assert out.returncode == 0, out.stderr
    for command in ("create-user", "reset-password", "grant", "revoke", "ban", "unban"):
        assert command in out.stdout


def test_a_command_leaves_the_search_index_as_the_server_keeps_it(tmp_path: Path) -> None:
    """`--search off` dropped the index: a maintenance command must not build it again
    (a rebuild holds the writer's lock over every message while the server runs)."""
    server = ServerProcess(tmp_path, ["--search", "off"]).start()
    server.stop()
    ok("create-user", "ann", "--data", str(tmp_path), password=DEFAULT_PASSWORD)
    with contextlib.closing(sqlite3.connect(tmp_path / "parley.db")) as conn:
        index = conn.execute(
            "SELECT name FROM sqlite_schema WHERE name = 'message_words'"
        ).fetchall()
    assert index == []


async def test_a_ban_committed_after_a_later_entry_still_closes_the_sockets(
    tmp_path: Path, pg_server: PgServer
) -> None:
    """PostgreSQL numbers audit entries when they are written, not when they commit: a
    command's entry can commit after one with a higher id that a node already read."""
    url = pg_server.create_database()
    db = ["--db", url]
    for name in ("ann", "bob", "cat"):
        ok("create-user", name, *db, password=DEFAULT_PASSWORD)
    server = ServerProcess(tmp_path, ["--register-limit", "0", *db]).start()
    conn = await asyncpg.connect(url)
    try:
        bob = await open_ws(server.ws_url, sign_in(server, "bob").json()["token"])
        cat = await open_ws(server.ws_url, sign_in(server, "cat").json()["token"])
        slow = conn.transaction()  # a `parley admin ban bob` still writing
        await slow.start()
        await conn.execute("UPDATE users SET banned = true WHERE username = 'bob'")
        await conn.execute("DELETE FROM tokens WHERE username = 'bob'")
        await conn.execute(
            "INSERT INTO audit (ts, actor, action, target) VALUES ($1, '@cli', 'ban', 'bob')",
            "2026-01-01T00:00:00.000Z",
        )
        ok("ban", "cat", *db)  # a later id, committed first
        assert await cat.wait_closed(within=15) == 4003  # the node read past bob's id
        await slow.commit()
        assert await bob.wait_closed(within=15) == 4003
    finally:
        await conn.close()
        server.stop()
