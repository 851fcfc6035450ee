"""Fixtures shared by every test layer: a real server process and HTTP helpers."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import httpx
import pytest

from tests.support.server import ServerProcess

_names = itertools.count(1)

ServerFactory = Callable[..., ServerProcess]


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[ServerFactory]:
    """Start servers with extra CLI args; every one is stopped at teardown."""
    started: list[ServerProcess] = []

    def start(
        args: Sequence[str] = (),
        data_dir: Path | None = None,
        tls: tuple[str, str] | None = None,
        verify: str | bool = False,
    ) -> ServerProcess:
        proc = ServerProcess(data_dir or tmp_path / f"data{len(started)}", args, tls=tls)
        started.append(proc)
        return proc.start(verify=verify)

    yield start
    for proc in started:
        proc.stop()


@pytest.fixture
def server(server_factory: ServerFactory) -> ServerProcess:
    """A default server: accounts required, default rate limit."""
    return server_factory()


@pytest.fixture
def guest_server(server_factory: ServerFactory) -> ServerProcess:
    return server_factory(["--guests"])


def unique_name(prefix: str = "user") -> str:
    return f"{prefix}{next(_names)}"


def register(base_url: str, username: str | None = None, password: str = "correct horse") -> str:
    """Register a fresh user and return its bearer token."""
    name = username or unique_name()
    resp = httpx.post(f"{base_url}/api/register", json={"username": name, "password": password})
    assert resp.status_code == 201, resp.text
    token: str = resp.json()["token"]
    return token
