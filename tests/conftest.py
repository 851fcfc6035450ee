"""Fixtures shared by every test layer: a real server process and HTTP helpers."""

from __future__ import annotations

import compileall
import itertools
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import httpx
import pytest

from tests.support.server import ServerProcess

_names = itertools.count(1)

ROOT = Path(__file__).resolve().parents[1]


def pytest_configure(config: pytest.Config) -> None:
    """Compile the package's bytecode once, in the controlling process, before any test.

    The suite starts hundreds of Python processes (servers, CLI commands), and each imports
    `parley` from source. Where PYTHONDONTWRITEBYTECODE is set (it is on our CI machine) none
    of them writes a .pyc, and each compiled every module again: 0.2 s of CPU per process.
    """
    if not hasattr(config, "workerinput"):  # pytest-xdist's workers skip it
        for package in (ROOT / "src" / "parley", ROOT / "bench" / "parley_bench"):
            compileall.compile_dir(package, quiet=1)


# The longest test files (`--durations`, docs/testing.md), which run first. Under
# `--dist loadfile` a worker takes a whole file, in the order of the collection (with
# `--no-loadscope-reorder`, as `make test` runs: by default xdist puts the files with the
# most tests first, and these few-but-slow ones at the end, where they were the tail).
SLOWEST_FIRST = (
    "tests/integration/test_cli_transfer.py",
    "tests/integration/test_openapi_schemathesis.py",
    "tests/fault/test_crash.py",
    "tests/e2e/test_web_screenshots.py",
    "tests/integration/scaleout/test_scaleout.py",
    "tests/e2e/test_web_search.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Put the files of SLOWEST_FIRST first; the rest keep the collection's order."""
    rank = {path: index for index, path in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))


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


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One default server for a whole module; tests on it must use fresh users and rooms.

    Its users stand for many people, but all of them sign up from 127.0.0.1: the
    per-address sign-up limit is off here (it has tests of its own)."""
    proc = ServerProcess(tmp_path_factory.mktemp("shared"), ["--register-limit", "0"])
    try:
        yield proc.start()
    finally:
        proc.stop()


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
