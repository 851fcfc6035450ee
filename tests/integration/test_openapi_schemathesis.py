"""Schemathesis against a real `parley serve`, driven by the server's own /api/openapi.json:
valid and invalid requests for every operation, signed in with a bearer token. No answer
may be a 5xx, and every answer must match the document (status, content type, body)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support.api import DEFAULT_PASSWORD, bearer, unique_name
from tests.support.server import ServerProcess

SCHEMATHESIS = str(Path(sys.executable).with_name("schemathesis"))
# Operations that end the session the run signs in with: the rest would all be 401.
ROOM = "fuzzed"  # a private room of the signed-in user's
EXAMPLES = 15  # per operation and mode: the file takes some 20 s on an idle 2-core machine
SIGN_OUT: tuple[str, ...] = ("/api/logout", "/api/sessions", "/api/password")
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


@pytest.fixture(scope="module")
def parley(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, str]]:
    """A server with its limits off (the run is many requests from one address and one
    user in a few seconds), and a signed-in user's token."""
    args = ["--register-limit", "0", "--rate-limit", "0"]
    proc = ServerProcess(tmp_path_factory.mktemp("schemathesis"), args).start()
    try:
        name = unique_name()
        resp = httpx.post(
            f"{proc.url}/api/register", json={"username": name, "password": DEFAULT_PASSWORD}
        )
        assert resp.status_code == 201, resp.text
        token = resp.json()["token"]
        resp = httpx.post(
            f"{proc.url}/api/rooms", json={"room": ROOM, "private": True}, headers=bearer(token)
        )
        assert resp.status_code == 201, resp.text
        yield proc, token
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def parley_schema(parley: tuple[ServerProcess, str]) -> Any:
    proc, _ = parley
    return schemathesis.openapi.from_url(f"{proc.url}/api/openapi.json").exclude(
        path=list(SIGN_OUT)
    )


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_fuzzed_requests_conform_and_never_fail_with_5xx(
    parley: tuple[ServerProcess, str], parley_schema: Any, mode: GenerationMode
) -> None:
    """Every operation, in turn, with valid (POSITIVE) or invalid (NEGATIVE) requests."""
    _, token = parley
    parley_schema.validate()  # against the OpenAPI 3.1 meta-schema
    operations = [result.ok() for result in parley_schema.get_all_operations()]
    assert len(operations) >= 8, [op.label for op in operations]

    def cases(op: Any) -> st.SearchStrategy[Any]:
        """Random rooms are mostly 404s: half the time, the user's own room."""
        anywhere = op.as_strategy(mode)
        if "{room}" not in op.path:
            return anywhere
        return anywhere | op.as_strategy(mode, path_parameters={"room": ROOM})

    @given(st.sampled_from(operations).flatmap(cases))
    @settings(
        max_examples=EXAMPLES * len(operations),
        deadline=None,  # argon2 and the COMMIT take what they take on a busy machine
        derandomize=True,  # the same examples on every run: a failure here is reproducible
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        case.call_and_validate(headers=bearer(token), checks=CHECKS)

    run()


def test_boundary_requests_conform_and_never_fail_with_5xx(
    parley: tuple[ServerProcess, str], tmp_path: Path
) -> None:
    """Schemathesis' coverage phase: for every operation, deterministically, the values at
    and just past each bound of the document (the largest seq and one more, empty and
    over-long names, missing and wrongly typed fields). It found `before=2^63` -> 500."""
    proc, token = parley
    cmd = [SCHEMATHESIS, "run", f"{proc.url}/api/openapi.json", "--phases", "coverage"]
    cmd += ["--generation-deterministic", "-H", f"Authorization: Bearer {token}"]
    cmd += ["--checks", ",".join(check.__name__ for check in CHECKS)]
    for path in SIGN_OUT:
        cmd += ["--exclude-path", path]
    run = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
