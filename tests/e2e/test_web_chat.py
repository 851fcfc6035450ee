"""The browser client: accounts, live chat both ways, safe rendering, rooms and unread counts."""

from __future__ import annotations

import re

import httpx
from playwright.sync_api import Page, expect

from tests.e2e.helpers import PASSWORD, Web, compose, expect_online, message, open_room, send


def register_in_page(page: Page, name: str, password: str = PASSWORD) -> None:
    page.goto("/")
    page.get_by_role("button", name="Create an account").click()
    expect(page.get_by_role("heading", name="Create your account")).to_be_visible()
    page.locator("#auth-form").get_by_label("Username").fill(name)
    page.locator("#auth-form").get_by_label("Password").fill(password)
    page.get_by_role("button", name="Create account").click()
    expect_online(page)
    expect(page.locator("#me-name")).to_have_text(name)


def test_two_people_register_and_chat_live_both_ways(web: Web) -> None:
    alice = web.context().new_page()
    bob = web.context().new_page()
    register_in_page(alice, "alice")
    register_in_page(bob, "bob")

    # The session rides on the HttpOnly cookie only: nothing in web storage, cookie not readable.
    for page in (alice, bob):
        assert page.evaluate("document.cookie") == ""
        stored = page.evaluate(
            "Object.keys(localStorage).map(k => localStorage.getItem(k)).join(' ')"
            " + Object.keys(sessionStorage).join(' ')"
        )
        assert "token" not in stored.lower()
        assert len(stored) < 200  # read marks only

    send(alice, "hi bob!")
    expect(message(bob, "hi bob!")).to_have_count(1)
    send(bob, "hello alice")
    expect(message(alice, "hello alice")).to_have_count(1)

    # Shift+Enter makes a new line; Enter sends; the Send button sends too.
    box = compose(alice)
    box.fill("line one")
    box.press("Shift+Enter")
    box.type("line two")
    expect(box).to_have_value("line one\nline two")
    box.press("Enter")
    expect(message(bob, "line one\nline two")).to_have_count(1)
    box.fill("via the button")
    alice.get_by_role("button", name="Send").click()
    expect(message(bob, "via the button")).to_have_count(1)

    # Grouping: alice's consecutive messages share one header in bob's view.
    expect(bob.locator('#messages li.msg[data-user="alice"]')).to_have_count(3)
    expect(bob.locator('#messages li.msg.group-start[data-user="alice"]')).to_have_count(2)
    # Every group shows the sender's name and a local time.
    head = bob.locator('#messages li.msg.group-start[data-user="bob"]').first
    expect(head.locator(".msg-author")).to_have_text("bob")
    expect(head.locator("time")).to_have_text(re.compile(r"^\d{1,2}:\d{2}"))

    # Each side shows the other as online in the room.
    expect(alice.locator('#online-list li[data-user="bob"]')).to_have_count(1)
    expect(bob.locator('#online-list li[data-user="alice"]')).to_have_count(1)


def test_sign_in_errors_are_shown_inline_and_sign_out_works(web: Web) -> None:
    web.register_api("carol")
    page = web.context().new_page()
    page.goto("/")
    error = page.locator("#auth-error")

    # Name taken.
    page.get_by_role("button", name="Create an account").click()
    page.locator("#auth-form").get_by_label("Username").fill("carol")
    page.locator("#auth-form").get_by_label("Password").fill("another password")
    page.get_by_role("button", name="Create account").click()
    expect(error).to_contain_text("taken")

    # Wrong password.
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.locator("#auth-form").get_by_label("Username").fill("carol")
    for _ in range(3):
        page.locator("#auth-form").get_by_label("Password").fill("wrong password")
        page.get_by_role("button", name="Sign in").click()
        expect(error).to_have_text("Wrong username or password.")
        error.evaluate("e => e.textContent = ''")

    # Too many tries: the server throttles after repeated failures.
    for _ in range(10):
        page.locator("#auth-form").get_by_label("Password").fill("wrong password")
        page.get_by_role("button", name="Sign in").click()
        expect(error).not_to_have_text("")
        if "Too many" in (error.text_content() or ""):
            break
        error.evaluate("e => e.textContent = ''")
    expect(error).to_contain_text("Too many attempts")

    # Another account signs in fine, then out; the cookie no longer works.
    web.register_api("dave")
    page.locator("#auth-form").get_by_label("Username").fill("dave")
    page.locator("#auth-form").get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect_online(page)
    expect(page.locator("#me-name")).to_have_text("dave")
    page.reload()
    expect_online(page)  # the session survives a reload (cookie)
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert page.context.request.get("/api/me").status == 401
    page.reload()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


def test_markup_is_shown_literally_and_never_runs(web: Web) -> None:
    alice = web.signed_in("alice")
    bob = web.signed_in("bob")
    xss = "<img src=x onerror=alert(1)>"
    send(alice, xss)
    for page in (alice, bob):
        expect(message(page, xss)).to_have_count(1)
        assert page.locator("#messages img").count() == 0
    more = '<script>alert("s")</script> <b>bold</b> javascript:alert(1) "><svg onload=alert(2)>'
    send(alice, more)
    expect(message(bob, more)).to_have_count(1)
    assert bob.locator("#messages script, #messages b, #messages svg[onload]").count() == 0

    # Links are clickable only for http(s), built as real <a> elements with safe attributes.
    send(
        alice, "see https://example.com/a?b=1&c=<x>, or javascript:alert(3) (also http://x.test/y)."
    )
    link = bob.locator('#messages a[href="https://example.com/a?b=1&c="]')
    expect(link).to_have_count(1)
    expect(link).to_have_attribute("rel", "noopener noreferrer nofollow")
    expect(bob.locator('#messages a[href="http://x.test/y"]')).to_have_count(1)
    assert bob.locator('#messages a[href^="javascript"]').count() == 0
    # web fixture teardown asserts that no dialog fired and no CSP violation was logged.


def test_rooms_private_invite_and_unread_counts(web: Web) -> None:
    web.register_api("bob")
    alice = web.signed_in("alice")

    # Create a private room from the dialog; invite bob.
    alice.get_by_role("button", name="Create a room").click()
    dialog = alice.get_by_role("dialog", name="Create a room")
    dialog.get_by_label("Name").fill("secret")
    dialog.get_by_text("Private").click()
    dialog.get_by_role("button", name="Create room").click()
    expect(dialog).to_be_hidden()
    expect(alice.locator("#room-name")).to_have_text("secret")
    expect(alice.locator("#room-sub")).to_contain_text("Private")

    # A name that exists is reported inline.
    alice.get_by_role("button", name="Create a room").click()
    dialog.get_by_label("Name").fill("secret")
    dialog.get_by_role("button", name="Create room").click()
    expect(dialog.locator("#room-error")).to_contain_text("already exists")
    dialog.get_by_role("button", name="Cancel").click()

    alice.get_by_role("button", name="Invite someone").click()
    invite = alice.get_by_role("dialog", name="Invite to secret")
    invite.get_by_label("Username").fill("nobody-here")
    invite.get_by_role("button", name="Invite").click()
    expect(invite.locator("#invite-error")).not_to_be_empty()
    invite.get_by_label("Username").fill("bob")
    invite.get_by_role("button", name="Invite").click()
    expect(invite.locator("#invite-ok")).to_contain_text("bob")
    invite.get_by_role("button", name="Done").click()
    send(alice, "welcome to the secret room")

    # A public room too.
    alice.get_by_role("button", name="Create a room").click()
    dialog.get_by_label("Name").fill("random")
    dialog.get_by_role("button", name="Create room").click()
    expect(alice.locator("#room-name")).to_have_text("random")
    expect(alice.locator("#room-sub")).to_contain_text("Public")

    # Bob signs in: he sees the private room, with its unread message counted.
    bob = web.signed_in("bob", register=False)
    secret_btn = bob.locator('#room-list button[data-room="secret"]')
    expect(secret_btn).to_be_visible()
    expect(secret_btn.locator(".badge")).to_have_text(re.compile(r"^,?\s*1\s*unread$"))

    # Outsiders can't see it.
    _, token = web.register_api("eve")
    rooms = httpx.get(f"{web.url}/api/rooms", headers={"Authorization": f"Bearer {token}"}).json()
    assert "secret" not in [r["room"] for r in rooms["rooms"]]

    # Live unread counts while bob reads general.
    open_room(alice, "secret")
    send(alice, "second")
    send(alice, "third")
    expect(secret_btn.locator(".badge")).to_contain_text("3")
    expect(bob).to_have_title("(3) Parley")
    open_room(bob, "secret")
    expect(message(bob, "third")).to_have_count(1)
    expect(secret_btn.locator(".badge")).to_have_count(0)
    expect(bob.locator("#messages .new-divider")).to_have_count(1)
    expect(bob).to_have_title("Parley")

    # Switching with the keyboard alone: Alt+ArrowUp goes to the previous room.
    compose(bob).press("Alt+ArrowUp")
    expect(bob.locator("#room-name")).not_to_have_text("secret")


def test_keyboard_alone_and_screen_reader_announcements(web: Web) -> None:
    web.register_api("alice")
    bob = web.signed_in("bob")
    page = web.context().new_page()
    page.goto("/")

    # Sign in without touching the mouse: the username field has focus on arrival.
    expect(page.locator("#auth-username")).to_be_focused()
    page.keyboard.type("alice")
    page.keyboard.press("Tab")
    expect(page.locator("#auth-password")).to_be_focused()
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    expect_online(page)

    # A keyboard user can reach every control, in a sensible order, with a visible focus ring.
    reached: list[str] = []
    skip = page.get_by_role("link", name="Skip to message box")
    skip.focus()
    expect(skip).to_be_in_viewport()
    for _ in range(15):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement === document.body"):
            break  # left the page: every control was visited
        info = page.evaluate(
            """() => { const e = document.activeElement;
                 const s = getComputedStyle(e);
                 return [e.id || e.dataset.room || e.getAttribute('aria-label') || e.tagName,
                         s.outlineStyle !== 'none' || e.id === 'composer-input'] }"""
        )
        reached.append(info[0])
        assert info[1], (f"{info[0]} has no visible focus indicator", reached)
    for control in (
        "general",
        "new-room",
        "sign-out",
        "members-btn",
        "log",
        "composer-input",
        "send-btn",
    ):
        assert control in reached, (control, reached)
    assert reached.index("general") < reached.index("log") < reached.index("composer-input")

    # Create a room with the keyboard: the dialog traps focus and Escape closes it.
    page.locator("#new-room").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#room-name-input")).to_be_focused()
    page.keyboard.press("Escape")
    expect(page.get_by_role("dialog")).to_have_count(0)
    page.locator("#new-room").focus()
    page.keyboard.press("Enter")
    page.keyboard.type("kbd")
    page.keyboard.press("Enter")
    expect(page.locator("#room-name")).to_have_text("kbd")
    expect(compose(page)).to_be_focused()
    page.keyboard.type("typed in kbd")
    page.keyboard.press("Enter")
    expect(message(page, "typed in kbd")).to_have_count(1)

    # Back to general with the arrow keys in the room list, then Enter.
    page.locator('#room-list button[data-room="kbd"]').focus()
    page.keyboard.press("ArrowUp")
    expect(page.locator('#room-list button[data-room="general"]')).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#room-name")).to_have_text("general")
    expect(compose(page)).to_be_focused()

    # New messages from others are announced through the live region.
    announcer = page.locator("#announcer")
    expect(announcer).to_have_attribute("aria-live", "polite")
    send(bob, "can you hear me?")
    expect(announcer).to_have_text("bob: can you hear me?")
