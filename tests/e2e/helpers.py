"""Helpers for the browser tests: a context factory that watches for CSP errors and dialogs,
and small page actions (send a message, find a delivered one, switch rooms)."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Locator, Page, expect

from tests.support.server import ServerProcess

PASSWORD = "correct horse"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 360, "height": 740}


def unique_name(prefix: str = "u") -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


class Web:
    """Opens browser contexts on one server and checks that nothing went wrong in them."""

    def __init__(self, browser: Browser, server: ServerProcess) -> None:
        self.browser = browser
        self.server = server
        self.contexts: list[BrowserContext] = []
        self.problems: list[str] = []  # CSP violations, uncaught errors
        self.dialogs: list[str] = []  # alert()/confirm(): must stay empty

    @property
    def url(self) -> str:
        return self.server.url

    def context(self, **options: Any) -> BrowserContext:
        options.setdefault("viewport", DESKTOP)
        options.setdefault("color_scheme", "light")
        options.setdefault("locale", "en-US")
        options.setdefault("timezone_id", "Europe/Amsterdam")
        ctx = self.browser.new_context(base_url=self.url, **options)
        ctx.set_default_timeout(15_000)
        ctx.on("page", self._watch)
        self.contexts.append(ctx)
        return ctx

    def _watch(self, page: Page) -> None:
        def on_console(msg: Any) -> None:
            text = msg.text
            if "Content Security Policy" in text or "Refused to" in text:
                self.problems.append(f"CSP: {text}")

        def on_dialog(dialog: Any) -> None:
            self.dialogs.append(f"{dialog.type}: {dialog.message}")
            dialog.dismiss()

        page.on("console", on_console)
        page.on("pageerror", lambda exc: self.problems.append(f"page error: {exc}"))
        page.on("dialog", on_dialog)

    def register_api(self, name: str | None = None) -> tuple[str, str]:
        """Register over REST; returns (username, bearer token)."""
        name = name or unique_name()
        resp = httpx.post(f"{self.url}/api/register", json={"username": name, "password": PASSWORD})
        assert resp.status_code == 201, resp.text
        return name, resp.json()["token"]

    def signed_in(self, name: str | None = None, register: bool = True, **options: Any) -> Page:
        """A new context signed in as `name` (the cookie comes from a real login), chat open."""
        ctx = self.context(**options)
        if register:
            name, _ = self.register_api(name)
        assert name
        resp = ctx.request.post("/api/login", data={"username": name, "password": PASSWORD})
        assert resp.status == 200, resp.text()
        page = ctx.new_page()
        page.goto("/")
        expect_online(page)
        return page

    def close(self) -> None:
        for ctx in self.contexts:
            ctx.close()


# ------------------------------------------------------------------ page helpers
# After an outage the backoff may legitimately wait up to its 30 s cap before the next try.
RECONNECT_TIMEOUT_MS = 45_000


def call(
    web: Web,
    token: str,
    method: str,
    path: str,
    body: object = None,
    ok: tuple[int, ...] = (200, 201, 204),
) -> httpx.Response:
    """One REST call as the holder of `token`; it must answer one of the `ok` statuses."""
    resp = httpx.request(
        method, f"{web.url}{path}", json=body, headers={"Authorization": f"Bearer {token}"}
    )
    assert resp.status_code in ok, resp.text
    return resp


def post(
    web: Web,
    token: str,
    room: str,
    text: str,
    reply_to: int | None = None,
    attachments: list[str] | None = None,
) -> int:
    """Post over REST (`attachments`: file ids); returns the message's seq."""
    body: dict[str, object] = {"text": text, "client_id": uuid.uuid4().hex}
    if reply_to is not None:
        body["reply_to"] = reply_to
    if attachments:
        body["attachments"] = attachments
    resp = call(web, token, "POST", f"/api/rooms/{room}/messages", body)
    return int(resp.json()["seq"])


def upload(web: Web, token: str, name: str, data: bytes, mime: str) -> dict[str, Any]:
    """POST /api/files as the holder of `token`; returns the File. Skips the test while the
    server has no such endpoint (404/405: the files work has not landed on it)."""
    resp = httpx.post(
        f"{web.url}/api/files",
        files={"file": (name, data, mime)},
        headers={"Authorization": f"Bearer {token}"},
    )
    if resp.status_code in (404, 405):
        pytest.skip("POST /api/files answers 404/405 on the test server: it has not landed")
    assert resp.status_code == 201, resp.text
    file: dict[str, Any] = resp.json()
    return file


def slow_uploads(page: Page, bytes_per_second: int) -> None:
    """Chromium's own network throttling (DevTools): the page's uploads go at this pace."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    conditions = {"offline": False, "latency": 0, "downloadThroughput": -1}
    cdp.send(
        "Network.emulateNetworkConditions", {**conditions, "uploadThroughput": bytes_per_second}
    )


def expect_online(page: Page, timeout: float | None = None) -> None:
    expect(page.locator("#conn")).to_have_attribute("data-state", "online", timeout=timeout)


def compose(page: Page) -> Locator:
    return page.get_by_role("textbox", name=re.compile(r"^Message "))


def send(page: Page, text: str) -> None:
    """Type into the composer and press Enter; wait until the server stored it (no pending)."""
    box = compose(page)
    box.fill(text)
    box.press("Enter")
    expect(page.locator("#pending li")).to_have_count(0)
    expect(message(page, text)).to_have_count(1)


def message(page: Page, text: str) -> Locator:
    """Delivered messages (not pending ones) whose text is exactly `text`."""
    return page.locator("#messages li.msg .msg-text").filter(
        has_text=re.compile("^" + re.escape(text) + "$")
    )


def open_room(page: Page, room: str) -> None:
    page.locator(f'#room-list button[data-room="{room}"]').click()
    expect(page.locator("#room-name")).to_have_text(room)
