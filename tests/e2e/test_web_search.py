"""The search box (searchbox.mjs): Ctrl+K or the header's button, results of GET /api/search
grouped by room (a DM named by its people) with the matched words marked, walked by keyboard;
a result far back in its room opens there, older pages loaded up to it, and flashes.

The test against the real endpoint is skipped, with that reason, only while the server under
test has no GET /api/search (it answers 404); the others fake the answer in the browser."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import pytest
from playwright.sync_api import Locator, Page, Route, expect

from tests.e2e.helpers import PHONE, Web, call, post
from tests.support.api import ServerFactory
from tests.support.server import ServerProcess

FILLER = 120  # more than two history pages after the message searched for


def search_box(page: Page) -> Locator:
    return page.get_by_role("combobox", name="Search messages")


def answer(results: list[dict[str, object]]) -> object:
    """A route handler that answers every search with `results`."""

    def handle(route: Route) -> None:
        route.fulfill(
            status=200, content_type="application/json", body=json.dumps({"results": results})
        )

    return handle


def test_a_result_far_back_opens_at_its_message(
    web_on: Callable[[ServerProcess], Web], server_factory: ServerFactory
) -> None:
    web = web_on(server_factory(["--rate-limit", "0"]))  # the filler goes in at once
    _, amy = web.register_api("amy")
    _, bob = web.register_api("bob")
    probe = call(web, amy, "GET", "/api/search?q=x", ok=(200, 404))
    if probe.status_code == 404:
        pytest.skip("GET /api/search answers 404 on the test server: the endpoint has not landed")
    target = post(web, amy, "general", "Where is the **rocket** manual? I need the fuel table")
    for i in range(FILLER):
        post(web, bob, "general", f"filler {i}")
    room = call(web, bob, "POST", "/api/dms", {"users": ["amy"]}).json()["room"]
    post(web, bob, room, "The rocket fuel is in the shed")

    page = web.signed_in("amy", register=False)
    expect(page.locator("#messages li.msg").last).to_contain_text(f"filler {FILLER - 1}")
    expect(page.locator(f'#messages li[data-seq="{target}"]')).to_have_count(0)

    page.keyboard.press("Control+k")
    expect(search_box(page)).to_be_focused()
    page.keyboard.type("ROCKET fu")
    groups = page.locator("#search-results [role=group]")
    expect(groups).to_have_count(2)
    expect(groups.nth(0).locator(".search-group-title")).to_have_text("bob")  # the DM, newest
    expect(groups.nth(1).locator(".search-group-title")).to_have_text("general")
    found = groups.nth(1).get_by_role("option")
    expect(found).to_have_count(1)
    expect(found.locator("mark")).to_have_text(["rocket", "fu"])
    expect(found).to_contain_text("Where is the **rocket** manual?")  # shown raw, not rendered

    # ↓ ↓ reaches the general result; Enter opens it.
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    expect(found).to_have_attribute("aria-selected", "true")
    page.keyboard.press("Enter")
    expect(page.locator("#search-dialog")).to_be_hidden()
    expect(page.locator("#room-name")).to_have_text("general")
    shown = page.locator(f'#messages li[data-seq="{target}"]')
    expect(shown).to_be_in_viewport()
    expect(shown).to_have_class(re.compile(r"\bflash\b"))
    expect(shown.locator(".msg-text strong")).to_have_text("rocket")
    # Everything from there to the latest message is loaded: the log has no gap.
    expect(page.locator("#messages li.msg")).to_have_count(FILLER + 1)

    # The header's button opens it again, with the last words; a click opens the DM.
    page.get_by_role("button", name="Search messages").click()
    expect(search_box(page)).to_have_value("ROCKET fu")
    groups.nth(0).get_by_role("option").click()
    expect(page.locator("#room-name")).to_have_text("bob")
    expect(page.locator("#messages li.msg.flash")).to_contain_text("The rocket fuel is in the shed")


def test_without_ranges_the_query_words_are_marked_and_html_stays_text(web: Web) -> None:
    page = web.signed_in("amy")
    text = "<b>Deploy</b> window: redeploy at 14:00, deployment notes later"
    hit = {
        "room": "general",
        "seq": 1,
        "username": "bob",
        "text": text,
        "ts": "2026-01-01T12:00:00Z",
    }
    page.route("**/api/search?*", answer([hit]))
    page.get_by_role("button", name="Search messages").click()
    search_box(page).fill("depl")
    option = page.locator("#search-results [role=option]")
    expect(option).to_have_count(1)
    expect(option).to_contain_text(text)
    expect(option.locator("mark")).to_have_text(["Depl", "depl"])
    expect(page.locator("#search-results b")).to_have_count(0)
    expect(page.locator("#search-status")).to_have_text("1 match")


def test_the_box_says_when_the_server_has_no_search(web: Web) -> None:
    page = web.signed_in("amy")

    def not_found(route: Route) -> None:
        body = {"error": {"code": "not_found", "message": "Not found"}}
        route.fulfill(status=404, content_type="application/json", body=json.dumps(body))

    page.route("**/api/search?*", not_found)
    page.keyboard.press("Control+k")
    expect(page.locator("#search-status")).to_contain_text("Search every room you can read")
    search_box(page).fill("anything")
    expect(page.locator("#search-status")).to_have_text("Search is not available on this server.")
    expect(page.locator("#search-results [role=option]")).to_have_count(0)
    page.keyboard.press("Escape")
    expect(page.locator("#search-dialog")).to_be_hidden()


def test_on_a_phone_the_box_fits_and_closes_with_its_button(web: Web) -> None:
    page = web.signed_in("amy", viewport=PHONE, is_mobile=True, has_touch=True)
    hit = {
        "room": "general",
        "seq": 1,
        "username": "bob",
        "text": "deploy",
        "ts": "2026-01-01T12:00:00Z",
    }
    page.route("**/api/search?*", answer([hit]))
    page.get_by_role("button", name="Search messages").tap()
    search_box(page).fill("depl")
    expect(page.locator("#search-results [role=option]")).to_have_count(1)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    page.get_by_role("button", name="Close search").tap()
    expect(page.locator("#search-dialog")).to_be_hidden()
