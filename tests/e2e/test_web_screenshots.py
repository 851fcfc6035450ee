"""A realistic scene, photographed in the main states: sign-in, desktop light and dark, phone,
reconnecting. `PARLEY_SCREENSHOTS=1 pytest tests/e2e/test_web_screenshots.py` writes them to
docs/screenshots/ (committed); otherwise they go to a temp dir and the test only checks the states.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import httpx
from playwright.sync_api import Page, expect

from tests.e2e.helpers import PHONE, RECONNECT_TIMEOUT_MS, Web, compose, expect_online, message
from tests.support.server import ServerProcess

GENERAL = [
    ("jonas", "Morning all! Staging deploy went through overnight, zero errors"),
    ("jonas", "Release notes draft: https://example.com/parley/releases/0.1"),
    ("priya", "Nice. I'll run the load test against it right after standup."),
    (
        "priya",
        "Plan:\n1. 10k sockets across 4 workers\n2. kill the server mid-run\n"
        "3. check nothing got lost or doubled",
    ),
    ("sam", "Could someone review the reconnect PR before lunch?"),
    ("maya", "On it, reading it now."),
    (
        "maya",
        "Looks good: backoff is capped at 30 s with full jitter, and every room resumes "
        "with since = last seq seen.",
    ),
    ("sam", "Thanks Maya! Merging."),
    ("priya", "Load test done: 10,000 clients, p99 ack 38 ms, no gaps, no duplicates."),
    ("jonas", "That's the number I wanted to see. Ship it!"),
]
LATER = {
    "design": [
        ("priya", "New dark palette is up for review"),
        ("jonas", "Contrast checks pass everywhere"),
        ("priya", "Merging tomorrow unless someone objects"),
    ],
    "random": [("sam", "Who's up for lunch at the ramen place?")],
}


def post(web: Web, token: str, room: str, text: str) -> None:
    resp = httpx.post(
        f"{web.url}/api/rooms/{room}/messages",
        json={"text": text, "client_id": uuid.uuid4().hex},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert resp.status_code == 201, resp.text


def api(web: Web, token: str, path: str, body: dict[str, object]) -> None:
    resp = httpx.post(f"{web.url}{path}", json=body, headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 201, resp.text


def settle(page: Page) -> None:
    """Wait until the page is online with everything rendered and nothing pending."""
    expect_online(page)
    expect(page.locator("#pending li")).to_have_count(0)
    page.evaluate("document.fonts.ready.then(() => true)")


def test_screenshots_of_the_main_states(web: Web, server: ServerProcess, shots: Path) -> None:
    # Sign-in screen.
    guest = web.context().new_page()
    guest.goto("/")
    expect(guest.get_by_role("heading", name="Sign in")).to_be_visible()
    guest.screenshot(path=str(shots / "sign-in.png"))

    tokens = {name: web.register_api(name)[1] for name in ("maya", "jonas", "priya", "sam")}
    api(web, tokens["maya"], "/api/rooms", {"room": "design", "private": False})
    api(web, tokens["maya"], "/api/rooms", {"room": "random", "private": False})
    api(web, tokens["maya"], "/api/rooms", {"room": "launch-plan", "private": True})
    for name in ("jonas", "priya"):
        api(web, tokens["maya"], "/api/rooms/launch-plan/members", {"username": name})
    post(web, tokens["maya"], "launch-plan", "Launch checklist lives here. Keep it quiet for now.")
    post(web, tokens["priya"], "design", "Sketches for the room list are in the drive")

    for name, text in GENERAL:
        post(web, tokens[name], "general", text)

    # Jonas and Priya are online; Maya watches on desktop (light).
    jonas = web.signed_in("jonas", register=False)
    web.signed_in("priya", register=False)
    maya = web.signed_in("maya", register=False)
    expect(message(maya, GENERAL[-1][1])).to_have_count(1)
    expect(maya.locator("#online-list li")).to_have_count(3)

    # News in other rooms arrives while she reads #general: unread badges.
    for room, lines in LATER.items():
        for name, text in lines:
            post(web, tokens[name], room, text)
    expect(maya.locator('#room-list button[data-room="design"] .badge')).to_contain_text("3")
    expect(maya.locator('#room-list button[data-room="random"] .badge')).to_contain_text("1")

    compose(jonas).press_sequentially("Let's cut")
    expect(maya.locator("#typing")).to_have_text("jonas is typing…")
    compose(maya).fill("Agreed, tagging v0.1 now")
    settle(maya)
    maya.screenshot(path=str(shots / "chat-light.png"))

    # Dark.
    dark = web.signed_in("maya", register=False, color_scheme="dark")
    expect(message(dark, GENERAL[-1][1])).to_have_count(1)
    assert dark.evaluate("matchMedia('(prefers-color-scheme: dark)').matches")
    bg = dark.evaluate("getComputedStyle(document.querySelector('.chat')).backgroundColor")
    assert bg == "rgb(18, 18, 23)", bg
    post(web, tokens["priya"], "design", "Dark mode screenshots attached, have a look")
    post(web, tokens["sam"], "random", "12:30 at the usual place?")
    expect(dark.locator('#room-list button[data-room="design"] .badge')).to_contain_text("1")
    expect(dark.locator('#room-list button[data-room="random"] .badge')).to_contain_text("1")
    settle(dark)
    dark.screenshot(path=str(shots / "chat-dark.png"))

    # Phone.
    phone = web.signed_in(
        "maya",
        register=False,
        viewport=PHONE,
        is_mobile=True,
        has_touch=True,
        device_scale_factor=2,
    )
    expect(message(phone, GENERAL[-1][1])).to_be_in_viewport()
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    settle(phone)
    phone.screenshot(path=str(shots / "phone.png"))
    phone.get_by_role("button", name="Open room list").tap()
    expect(phone.locator("#room-list")).to_be_in_viewport()
    expect(phone.locator("#sidebar")).to_have_css("transform", "none")
    phone.screenshot(path=str(shots / "phone-rooms.png"))

    # Phone, dark.
    phone_dark = web.signed_in(
        "maya",
        register=False,
        viewport=PHONE,
        is_mobile=True,
        has_touch=True,
        device_scale_factor=2,
        color_scheme="dark",
    )
    expect(message(phone_dark, GENERAL[-1][1])).to_be_in_viewport()
    assert phone_dark.evaluate("matchMedia('(prefers-color-scheme: dark)').matches")
    settle(phone_dark)
    phone_dark.screenshot(path=str(shots / "phone-dark.png"))

    # Reconnecting: the server goes away; Maya's message waits in her page.
    server.kill()
    expect(maya.locator("#banner")).to_be_visible()
    maya.locator("#composer").get_by_role("button", name="Send").click()
    expect(maya.locator("#pending li")).to_contain_text("Waiting for connection")
    expect(maya.locator("#conn-text")).to_have_text(re.compile(r"^Reconnecting in \d+ s$"))
    maya.screenshot(path=str(shots / "reconnecting.png"))
    server.start()
    expect_online(maya, timeout=RECONNECT_TIMEOUT_MS)
    expect(message(maya, "Agreed, tagging v0.1 now")).to_have_count(1)
    expect(maya.locator("#pending li")).to_have_count(0)
