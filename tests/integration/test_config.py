"""`parley serve` settings from PARLEY_* variables and a TOML file (--config), their order
(flag > environment > file > default), their errors (exit 2, nothing started), and the
JSON log (--log-format json) that never holds a secret."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.api import AsyncApi, unique_name
from tests.support.client import new_client_id, parley_ws
from tests.support.server import PARLEY, ServerProcess, free_port


class BareServer(ServerProcess):
    """`parley serve` with only the given arguments: the port and the data directory come
    from wherever the test puts them; `port` and `data_dir` are where it expects them."""

    def command(self) -> list[str]:
        return [PARLEY, "serve", *self.args]


@pytest.fixture
def bare() -> Iterator[list[BareServer]]:
    started: list[BareServer] = []
    yield started
    for proc in started:
        proc.stop()


def start(bare: list[BareServer], data: Path, port: int, args: list[str]) -> BareServer:
    proc = BareServer(data, args, port=port)
    bare.append(proc)
    proc.start()
    return proc


def without_settings() -> dict[str, str]:
    """This process's environment without any PARLEY_* setting (coverage's stays)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_")}


def assert_origins(srv: ServerProcess, allowed: str, refused: str) -> None:
    """--allow-origin took: a write from `allowed` passes, one from `refused` does not."""
    for origin, status in ((allowed, 201), (refused, 403)):
        resp = httpx.post(
            f"{srv.url}/api/register",
            json={"username": unique_name(), "password": "correct horse"},
            headers={"Origin": origin},
        )
        assert resp.status_code == status, resp.text


def test_port_and_data_from_the_environment(
    tmp_path: Path, bare: list[BareServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    port, data = free_port(), tmp_path / "env-data"
    monkeypatch.setenv("PARLEY_PORT", str(port))
    monkeypatch.setenv("PARLEY_DATA", str(data))
    start(bare, data, port, [])
    assert (data / "parley.db").exists()


def test_settings_from_a_toml_file(tmp_path: Path, bare: list[BareServer]) -> None:
    port, data = free_port(), tmp_path / "file-data"
    config = tmp_path / "parley.toml"
    config.write_text(
        f'port = {port}\ndata = "{data}"\nrate-limit = 0\nregister_limit = 0\n'
        'allow-origin = ["https://chat.example"]\n'
    )
    srv = start(bare, data, port, ["--config", str(config)])
    assert_origins(srv, allowed="https://chat.example", refused="https://evil.example")


def test_a_comma_list_from_the_environment(
    tmp_path: Path, bare: list[BareServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    port, data = free_port(), tmp_path / "list-data"
    monkeypatch.setenv("PARLEY_ALLOW_ORIGIN", "https://a.example,https://b.example")
    srv = start(bare, data, port, ["--port", str(port), "--data", str(data)])
    assert_origins(srv, allowed="https://b.example", refused="https://c.example")


def test_flag_over_environment_over_file(
    tmp_path: Path, bare: list[BareServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    file_port, env_port, flag_port = free_port(), free_port(), free_port()
    data = tmp_path / "order"
    config = tmp_path / "parley.toml"
    config.write_text(f'port = {file_port}\ndata = "{data}"\n')
    # the file alone: its port
    srv = start(bare, data, file_port, ["--config", str(config)])
    srv.stop()
    # the environment over the file (the file still gives the data directory)
    monkeypatch.setenv("PARLEY_PORT", str(env_port))
    srv = start(bare, data, env_port, ["--config", str(config)])
    srv.stop()
    # the flag over both
    start(bare, data, flag_port, ["--config", str(config), "--port", str(flag_port)])


ERRORS = [
    ("unknown key", "prot = 8080\n", {}, "unknown key 'prot'"),
    ("wrong type", 'port = "8080"\n', {}, "key 'port'"),
    ("bad choice", 'log-format = "xml"\n', {}, "key 'log-format'"),
    ("not toml", "port = [\n", {}, "not valid TOML"),
    ("bad environment", "", {"PARLEY_RATE_LIMIT": "lots"}, "PARLEY_RATE_LIMIT"),
    ("bad switch", "", {"PARLEY_GUESTS": "perhaps"}, "PARLEY_GUESTS"),
]


@pytest.mark.parametrize(("case", "text", "environ", "named"), ERRORS, ids=[e[0] for e in ERRORS])
def test_a_bad_setting_stops_the_server_before_it_starts(
    tmp_path: Path, case: str, text: str, environ: dict[str, str], named: str
) -> None:
    config = tmp_path / "parley.toml"
    config.write_text(text)
    data = tmp_path / "never"
    out = subprocess.run(
        [PARLEY, "serve", "--config", str(config), "--data", str(data), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={**without_settings(), **environ},
    )
    assert out.returncode == 2, (case, out.stderr)
    assert named in out.stderr
    assert not data.exists()


def test_an_unreadable_config_file_stops_the_server(tmp_path: Path) -> None:
    for path in (tmp_path / "missing.toml", tmp_path):  # absent; a directory
        out = subprocess.run(
            [PARLEY, "serve", "--config", str(path), "--data", str(tmp_path / "never")],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert out.returncode == 2
        assert f"config file {path}: cannot be read" in out.stderr
    assert not (tmp_path / "never").exists()


def test_help_says_where_settings_come_from() -> None:
    out = subprocess.run(
        [PARLEY, "serve", "--help"], capture_output=True, text=True, timeout=30, check=True
    )
    text = " ".join(out.stdout.split())
    assert "PARLEY_PORT" in text
    assert "--config FILE" in text
    assert "A flag wins over the environment, the environment over the file" in text


async def test_json_log_has_request_ids_and_no_secret(tmp_path: Path) -> None:
    srv = ServerProcess(tmp_path / "logs", ["--log-format", "json", "--log-level", "debug"])
    srv.start()
    password = "hunter2 very secret"
    try:
        async with AsyncApi(srv.url) as api:
            user = await api.register(password=password)
            again = await api.login(user)
            cookie = (await api.login_raw(user.username, password)).cookies["parley_session"]
            async with parley_ws(srv.ws_url, again.token) as ws:
                await ws.send_ok("general", "hello from the log test")
                await ws.send_json(
                    {
                        "type": "send",
                        "room": "nowhere",
                        "text": "x",
                        "client_id": new_client_id(),
                        "id": 41,
                    }
                )
                await ws.expect_error("not_found")
            for token in (user.token, again.token):
                resp = await api.post("/api/logout", headers={"Authorization": f"Bearer {token}"})
                assert resp.status_code == 204
    finally:
        srv.stop()
    lines = [line for line in srv.log().splitlines() if line.strip()]
    entries = [json.loads(line) for line in lines]  # every line is one JSON object
    for entry in entries:
        assert {"ts", "level", "logger", "message"} <= entry.keys(), entry
    said = {(e["message"], e.get("user")) for e in entries}
    assert ("registered", user.username) in said
    assert ("signed in", user.username) in said
    assert ("signed out", user.username) in said
    assert any(e.get("request_id") == 41 and e["message"] == "frame refused" for e in entries)
    text = srv.log()
    for secret in (password, user.token, again.token, cookie, "Bearer"):
        assert secret not in text
