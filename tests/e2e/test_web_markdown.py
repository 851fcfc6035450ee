"""Markdown in messages (markdown.mjs): the safe subset renders as elements in every page that
shows the message, links only for http, https and mailto, and nothing in a message ever runs.
The text stored and sent stays the raw text."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.e2e.helpers import Web, call, compose

RAW = (
    "**Ship it** and ~~wait~~ *now*: see [the notes](https://example.com/notes?a=1&b=2)\n"
    "```\nif (a < b) { alert('no') } **not bold** <img src=x onerror=alert(1)>\n```\n"
    "- [bad](javascript:alert(1))\n"
    "- mail [us](mailto:team@example.com) or https://example.org/x.\n"
    "> **<script>alert(2)</script>**"
)


def send_raw(page: Page, text: str) -> None:
    """Type a message (Shift+Enter between lines) and send it; wait until it is stored."""
    box = compose(page)
    box.fill(text)
    box.press("Enter")
    expect(page.locator("#pending li")).to_have_count(0)
    expect(page.locator("#messages li.msg")).to_have_count(1)


def test_markdown_renders_as_elements_and_nothing_runs(web: Web) -> None:
    alice = web.signed_in("alice")
    bob = web.signed_in("bob")
    send_raw(alice, RAW)

    for page in (alice, bob):
        body = page.locator("#messages li.msg .msg-text")
        expect(body).to_have_count(1)
        expect(body.locator("> p strong")).to_have_text("Ship it")
        expect(body.locator("> p del")).to_have_text("wait")
        expect(body.locator("> p em")).to_have_text("now")

        notes = body.locator('a[href="https://example.com/notes?a=1&b=2"]')
        expect(notes).to_have_text("the notes")
        expect(notes).to_have_attribute("target", "_blank")
        expect(notes).to_have_attribute("rel", "noopener noreferrer nofollow")
        expect(body.locator('a[href="mailto:team@example.com"]')).to_have_text("us")
        expect(body.locator('a[href="https://example.org/x"]')).to_have_text(
            "https://example.org/x"
        )
        expect(body.locator("a")).to_have_count(3)

        # The code block is text, parsed no further.
        expect(body.locator("pre code")).to_have_text(
            "if (a < b) { alert('no') } **not bold** <img src=x onerror=alert(1)>"
        )
        expect(body.locator("pre strong")).to_have_count(0)

        # The javascript: link is refused: its source shows as text, in a list item.
        expect(body.locator("ul li").first).to_have_text("[bad](javascript:alert(1))")
        expect(body.locator("blockquote strong")).to_have_text("<script>alert(2)</script>")
        assert page.locator("#messages img, #messages script, #messages [onerror]").count() == 0
        assert page.locator('#messages a[href^="javascript"]').count() == 0

    # The stored text is the raw text; editing starts from it too.
    # (An alert() anywhere would have been a dialog: the fixture fails the test on one.)
    stored = alice.context.request.get("/api/rooms/general/messages?limit=1").json()["messages"]
    assert stored[-1]["text"] == RAW
    mine = alice.locator("#messages li.msg")
    mine.hover()
    mine.get_by_role("button", name="Edit").click()
    expect(alice.get_by_role("textbox", name="Edit your message")).to_have_value(RAW)


def test_mentions_inside_markdown_are_highlighted(web: Web) -> None:
    _, bob_token = web.register_api("bob")
    alice = web.signed_in("alice")
    call(web, bob_token, "POST", "/api/rooms/general/messages", {"text": "**@alice** see `@alice`"})
    body = alice.locator("#messages li.msg .msg-text")
    expect(body.locator("strong .mention-me")).to_have_text("@alice")
    expect(body.locator("code")).to_have_text("@alice")
    expect(body.locator("code .mention")).to_have_count(0)
    expect(alice.locator("#messages li.msg")).to_have_class("msg group-start mentions-me")
