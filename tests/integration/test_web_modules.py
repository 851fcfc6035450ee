"""The browser client is ES modules loaded as they are: every module the entry point
imports, directly or not, must be served, as JavaScript (a module script with another type
is refused), under the same strict Content-Security-Policy as the page."""

from __future__ import annotations

import re

from tests.support.api import AsyncApi

IMPORT = re.compile(r'^\s*(?:import|export)\b[^;]*?\bfrom\s+"\./([A-Za-z0-9_.-]+)"', re.MULTILINE)


async def test_every_module_the_page_loads_is_served_as_javascript(api: AsyncApi) -> None:
    page = await api.get("/")
    assert '<script type="module" src="/app.js"></script>' in page.text
    seen: set[str] = set()
    todo = ["app.js"]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        resp = await api.get(f"/{name}")
        assert resp.status_code == 200, name
        assert resp.headers["content-type"] == "text/javascript; charset=utf-8", name
        assert resp.headers["content-security-policy"].startswith("default-src 'self';"), name
        todo.extend(IMPORT.findall(resp.text))
    assert {"socket.mjs", "frames.mjs", "model.mjs", "outbox.mjs", "views.mjs"} <= seen
