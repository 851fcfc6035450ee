"""Contract: `parley serve` flags and defaults; SQLite database under --data (default ./data)."""

from __future__ import annotations

import contextlib
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.support.api import DEFAULT_PASSWORD, bearer, unique_name
from tests.support.server import PARLEY, ServerProcess, free_port

FLAGS = [
    "--host",
    "--port",
    "--data",
    "--guests",
    "--rate-limit",
    "--tls-cert",
    "--tls-key",
    "--db",
    "--redis",
    "--allow-origin",
    "--ping-interval",
    "--ping-timeout",
    "--register-limit",
    "--trusted-proxy",
    "--header-timeout",
    "--keepalive-timeout",
    "--max-unauthenticated-per-address",
    "--action-limits",
    "--presence-grace",
    "--max-guests-per-address",
    "--registration",
]


def test_serve_help_explains_every_flag() -> None:
    out = subprocess.run(
        [PARLEY, "serve", "--help"], capture_output=True, text=True, timeout=30, check=False
    )
    assert out.returncode == 0, out.stderr
    for flag in FLAGS:
        assert flag in out.stdout, flag
    # the documented defaults
    assert "127.0.0.1" in out.stdout
    assert "8080" in out.stdout
    assert "./data" in out.stdout


def test_unknown_flag_fails() -> None:
    out = subprocess.run(
        [PARLEY, "serve", "--no-such-flag"], capture_output=True, text=True, timeout=30, check=False
    )
    assert out.returncode != 0


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--trusted-proxy", "localhost"], "--trusted-proxy"),
        (["--tls-cert", "cert.pem"], "--tls-key"),
        (["--tls-key", "key.pem"], "--tls-cert"),
        (["--hash-workers", "0"], "--hash-workers"),
    ],
)
def test_flags_that_cannot_work_are_refused_at_start(
    tmp_path: Path, flags: list[str], named: str
) -> None:
    out = subprocess.run(
        [PARLEY, "serve", "--data", str(tmp_path), *flags],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert out.returncode == 2
    assert named in out.stderr


def _sqlite_files(directory: Path) -> list[Path]:
    found = []
    for path in directory.rglob("*"):
        if path.is_file():
            with path.open("rb") as fh:
                if fh.read(16) == b"SQLite format 3\x00":
                    found.append(path)
    return found


def _register_and_send(url: str, text: str) -> None:
    name = unique_name()
    with httpx.Client(base_url=url, trust_env=False, timeout=30) as http:
        resp = http.post("/api/register", json={"username": name, "password": DEFAULT_PASSWORD})
        assert resp.status_code == 201, resp.text
        token = resp.json()["token"]
        resp = http.post("/api/rooms/general/messages", json={"text": text}, headers=bearer(token))
        assert resp.status_code == 201, resp.text


def test_sqlite_database_lives_under_data_dir(tmp_path: Path) -> None:
    data = tmp_path / "mydata"
    srv = ServerProcess(data)
    try:
        srv.start()
        _register_and_send(srv.url, "persist me")
    finally:
        srv.stop()
    assert _sqlite_files(data), sorted(p.name for p in data.rglob("*"))


def test_default_data_dir_is_dot_data(tmp_path: Path) -> None:
    """Without --data the database goes to ./data (relative to the working directory)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with (tmp_path / "server.log").open("wb") as log:
        proc = subprocess.Popen(
            [PARLEY, "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                assert proc.poll() is None, (tmp_path / "server.log").read_text()
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{url}/healthz", timeout=1, trust_env=False).status_code == 200:
                        break
                time.sleep(0.05)
            _register_and_send(url, "into ./data")
        finally:
            proc.terminate()
            proc.wait(20)
    assert proc.returncode == 0
    assert _sqlite_files(tmp_path / "data")
