"""Fixtures for integration tests: an HTTP helper bound to the default `server` fixture."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.api import AsyncApi, User
from tests.support.server import ServerProcess


@pytest.fixture
async def api(server: ServerProcess) -> AsyncIterator[AsyncApi]:
    async with AsyncApi(server.url) as client:
        yield client


@pytest.fixture
async def alice(api: AsyncApi) -> User:
    return await api.register()


@pytest.fixture
async def bob(api: AsyncApi) -> User:
    return await api.register()
