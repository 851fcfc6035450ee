"""The browser client's team features (issue 13) against a real server: reply, react, edit,
delete, mentions and unread badges from the server's counts, DMs, topic, removing and leaving."""

from __future__ import annotations

import re

import httpx
from playwright.sync_api import Locator, Page, expect

from tests.e2e.helpers import PASSWORD, PHONE, Web, compose, expect_online, message, open_room, send


def item(page: Page, text: str) -> Locator:
    """The delivered message (its <li>) whose text starts with `text`."""
    return page.locator("#messages li.msg").filter(
        has=page.locator(".msg-text", has_text=re.compile("^" + re.escape(text)))
    )


def api(web: Web, token: str, method: str, path: str, body: object = None) -> httpx.Response:
    return httpx.request(
        method, f"{web.url}{path}", json=body, headers={"Authorization": f"Bearer {token}"}
    )


def test_reply_react_edit_and_delete_reach_the_other_person(web: Web) -> None:
    web.register_api("root")  # the server's first account, its admin: Alice and Bob are not
    alice = web.signed_in("alice")
    bob = web.signed_in("bob")
    send(alice, "Who has the release notes?")
    expect(message(bob, "Who has the release notes?")).to_have_count(1)

    # Bob replies: the quoted snippet sits above his answer, on both sides.
    item(bob, "Who has the release notes?").get_by_role("button", name="Reply", exact=True).click()
    expect(bob.locator("#reply-bar")).to_contain_text("Replying to alice")
    send(bob, "I do, posting them now")
    quote = item(alice, "I do, posting them now").locator(".msg-reply")
    expect(quote).to_contain_text("alice")
    expect(quote).to_contain_text("Who has the release notes?")
    expect(bob.locator("#reply-bar")).to_be_hidden()
    quote.click()  # jumps to (and marks) the original
    expect(item(alice, "Who has the release notes?")).to_have_class(re.compile(r"\bflash\b"))

    # Alice reacts from the picker (searched by name); Bob sees the chip and who reacted.
    item(alice, "I do, posting them now").get_by_role("button", name="React", exact=True).click()
    alice.get_by_role("searchbox", name="Search emoji").fill("thumbs up")
    alice.get_by_role("searchbox", name="Search emoji").press("Enter")
    chip = item(bob, "I do, posting them now").locator('.chip[data-emoji="👍"]')
    expect(chip).to_have_text("👍1")
    expect(chip).to_have_attribute("title", "alice reacted with 👍")
    expect(chip).to_have_attribute("aria-pressed", "false")
    # Bob adds his with a click on the chip; Alice's click on hers takes hers back.
    chip.click()
    mine = item(alice, "I do, posting them now").locator('.chip[data-emoji="👍"]')
    expect(mine).to_have_text("👍2")
    expect(mine).to_have_attribute("aria-pressed", "true")
    mine.click()
    expect(chip).to_have_text("👍1")
    expect(chip).to_have_attribute("title", "bob reacted with 👍")
    # The picker remembers what was used.
    item(alice, "Who has the release notes?").get_by_role(
        "button", name="React", exact=True
    ).click()
    expect(alice.locator("#picker .picker-title").first).to_have_text("Recently used")
    alice.keyboard.press("Escape")
    expect(alice.locator("#picker")).to_be_hidden()

    # Bob edits with ↑ in the empty composer; Escape first cancels an edit.
    box = compose(bob)
    box.press("ArrowUp")
    editor = bob.get_by_role("textbox", name="Edit your message")
    expect(editor).to_have_value("I do, posting them now")
    editor.fill("never mind")
    editor.press("Escape")
    expect(editor).to_have_count(0)
    expect(box).to_be_focused()
    box.press("ArrowUp")
    editor.fill("I do: https://example.com/notes")
    editor.press("Enter")
    edited = item(alice, "I do: https://example.com/notes")
    expect(edited.locator(".msg-edited")).to_have_text("(edited)")
    expect(edited.locator(".reactions .chip[data-emoji='👍']")).to_have_text("👍1")

    # Alice deletes her question, after a confirmation inside the page.
    item(alice, "Who has the release notes?").get_by_role("button", name="Delete").click()
    expect(alice.get_by_role("dialog", name="Delete this message?")).to_be_visible()
    alice.get_by_role("dialog").get_by_role("button", name="Delete").click()
    for page in (alice, bob):
        tombstone = page.locator("#messages .msg.is-deleted .msg-tombstone")
        expect(tombstone).to_have_text("Message deleted")
        quoted = page.locator("#messages .msg-reply .msg-reply-text").first
        expect(quoted).to_have_text("Message deleted")
    # Nobody may edit or delete someone else's message: no such buttons on Alice's side.
    expect(edited.get_by_role("button", name="Edit", exact=True)).to_have_count(0)
    expect(edited.get_by_role("button", name="Delete", exact=True)).to_have_count(0)


def test_people_arriving_while_typing_an_at_get_listed(web: Web) -> None:
    """An "@ca" typed before Carol is in the room lists her once she is; Escape keeps it shut."""
    _, token = web.register_api("alice")
    made = api(web, token, "POST", "/api/rooms", {"room": "design", "private": False})
    assert made.status_code == 201, made.text
    alice = web.signed_in("alice", register=False)
    open_room(alice, "design")
    box = compose(alice)
    box.press_sequentially("@ca")
    listbox = alice.get_by_role("listbox", name="People to mention")
    expect(listbox).to_be_hidden()
    web.signed_in("carol")  # public rooms are joined at sign-in: her presence reaches Alice
    expect(listbox).to_be_visible()
    expect(alice.get_by_role("option", name="carol")).to_have_attribute("aria-selected", "true")
    box.press("Escape")
    expect(listbox).to_be_hidden()
    web.signed_in("cathy")
    expect(alice.locator("#members-count")).to_have_text("3")
    expect(listbox).to_be_hidden()
    box.press_sequentially("t")  # typing on reopens it, with both
    expect(alice.get_by_role("option")).to_have_count(1)
    expect(alice.get_by_role("option", name="cathy")).to_be_visible()


def test_mentions_badges_divider_and_read_markers(web: Web) -> None:
    _, token = web.register_api("alice")
    made = api(web, token, "POST", "/api/rooms", {"room": "design", "private": False})
    assert made.status_code == 201, made.text
    alice = web.signed_in("alice", register=False)
    bob = web.signed_in("bob")
    design = bob.locator('#room-list button[data-room="design"]')
    open_room(alice, "design")

    # Completion of the room's people after "@": arrows and Enter pick.
    box = compose(alice)
    box.press_sequentially("@bo")
    expect(alice.get_by_role("listbox", name="People to mention")).to_be_visible()
    expect(alice.get_by_role("option", name="bob")).to_have_attribute("aria-selected", "true")
    box.press("Enter")
    expect(box).to_have_value("@bob ")
    box.press_sequentially("the mockups are up")
    box.press("Enter")
    send(alice, "and a second look at the colours")

    # Bob reads general: unread and mention badges on design, the count in the tab title.
    expect(design.locator(".badge")).to_have_text(re.compile(r"^,?\s*2\s*unread$"))
    expect(design.locator(".mention-badge")).to_contain_text("@1")
    expect(bob).to_have_title("(2) Parley")
    open_room(bob, "design")
    expect(bob.locator("#messages .new-divider")).to_have_count(1)
    mention = item(bob, "@bob the mockups are up")
    expect(mention).to_have_class(re.compile(r"\bmentions-me\b"))
    expect(mention.locator(".mention-me")).to_have_text("@bob")
    expect(design.locator(".badge")).to_have_count(0)
    expect(design.locator(".mention-badge")).to_have_count(0)
    expect(bob).to_have_title("Parley")

    # The marker is the server's: another browser of Bob's shows nothing unread.
    other = web.signed_in("bob", register=False)
    expect(other.locator('#room-list button[data-room="design"]')).to_have_count(1)
    expect(other.locator('#room-list button[data-room="design"] .badge')).to_have_count(0)
    # …and reading there moves it here too, live (read frames to the user's other sockets).
    open_room(bob, "general")
    send(alice, "third one")
    expect(design.locator(".badge")).to_contain_text("1")
    open_room(other, "design")
    expect(design.locator(".badge")).to_have_count(0)


def test_starting_a_dm_from_the_people_panel(web: Web) -> None:
    alice = web.signed_in("alice")
    bob = web.signed_in("bob")
    expect(alice.locator('#online-list li[data-user="bob"]')).to_have_count(1)
    alice.get_by_role("button", name="Message bob").click()
    expect(alice.locator("#room-name")).to_have_text("bob")
    expect(alice.locator("#dm-list button[aria-current='page']")).to_contain_text("bob")
    send(alice, "psst, a word?")

    # Bob was not in that room yet: notify tells his page, the DM appears with its count.
    dm = bob.locator("#dm-list button").filter(has_text="alice")
    expect(dm.locator(".badge")).to_contain_text("1")
    dm.click()
    expect(message(bob, "psst, a word?")).to_have_count(1)
    expect(bob.locator("#room-name")).to_have_text("alice")
    send(bob, "sure")
    expect(message(alice, "sure")).to_have_count(1)

    # The same people always get the same room: a new DM from the dialog opens this one.
    bob.get_by_role("button", name="Message someone").click()
    dialog = bob.get_by_role("dialog", name="Message someone")
    dialog.get_by_label("Username").fill("alice")
    dialog.get_by_role("button", name="Open").click()
    expect(dialog).to_be_hidden()
    expect(bob.locator("#dm-list button")).to_have_count(1)


def test_topic_remove_and_leave(web: Web) -> None:
    owner_name, owner_token = web.register_api("olga")
    for name in ("bob", "carol"):
        web.register_api(name)
    resp = api(web, owner_token, "POST", "/api/rooms", {"room": "ops", "private": True})
    assert resp.status_code == 201, resp.text
    for name in ("bob", "carol"):
        invited = api(web, owner_token, "POST", "/api/rooms/ops/members", {"username": name})
        assert invited.status_code in (200, 201), invited.text
    olga = web.signed_in(owner_name, register=False)
    bob = web.signed_in("bob", register=False)
    carol = web.signed_in("carol", register=False)
    for page in (olga, bob, carol):
        open_room(page, "ops")

    # The owner sets the topic from the header; everyone sees it; others cannot edit it.
    olga.get_by_role("button", name="Set a topic").click()
    olga.get_by_label("Room topic").fill("On-call handover at 9")
    olga.get_by_label("Room topic").press("Enter")
    expect(bob.locator("#room-topic")).to_have_text("On-call handover at 9")
    expect(bob.locator("#topic-btn")).to_be_hidden()

    # The owner removes Bob (after a confirmation): the room leaves his sidebar at once.
    if not olga.locator("#members-panel").is_visible():
        olga.locator("#members-btn").click()
    olga.get_by_role("button", name="Remove bob from ops").click()
    olga.get_by_role("dialog").get_by_role("button", name="Remove").click()
    expect(bob.locator('#room-list button[data-room="ops"]')).to_have_count(0)
    expect(bob.locator("#room-name")).to_have_text("general")

    # Carol leaves by herself.
    if not carol.locator("#members-panel").is_visible():
        carol.locator("#members-btn").click()
    carol.get_by_role("button", name="Leave room").click()
    carol.get_by_role("dialog").get_by_role("button", name="Leave").click()
    expect(carol.locator('#room-list button[data-room="ops"]')).to_have_count(0)
    expect(olga.locator('#members-panel li[data-user="carol"]')).to_have_count(0)


def test_phone_long_press_opens_the_actions(web: Web) -> None:
    phone = web.signed_in("pat", viewport=PHONE, is_mobile=True, has_touch=True)
    send(phone, "hold me")
    li = item(phone, "hold me")
    box = li.bounding_box()
    assert box
    cdp = phone.context.new_cdp_session(phone)
    point = {"x": box["x"] + 80, "y": box["y"] + box["height"] / 2}
    cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [point]})
    expect(li).to_have_class(re.compile(r"\btools-open\b"))
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    expect(li.get_by_role("button", name="Edit")).to_be_visible()
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]


def test_message_actions_by_keyboard_alone(web: Web) -> None:
    kim = web.signed_in("kim")
    send(kim, "an earlier one")
    send(kim, "keyboard only")
    box = compose(kim)
    box.focus()
    # Shift+Tab from the composer walks back into the log: the last message's actions.
    for _ in range(6):
        kim.keyboard.press("Shift+Tab")
        if kim.evaluate("document.activeElement.getAttribute('aria-label')") == "React":
            break
    react = item(kim, "keyboard only").get_by_role("button", name="React", exact=True)
    expect(react).to_be_focused()
    expect(item(kim, "keyboard only").locator(".msg-tools")).to_have_css("opacity", "1")
    kim.keyboard.press("Enter")
    search = kim.get_by_role("searchbox", name="Search emoji")
    expect(search).to_be_focused()
    search.press_sequentially("grinning")
    kim.keyboard.press("ArrowDown")
    kim.keyboard.press("Enter")
    chip = item(kim, "keyboard only").locator(".chip[aria-pressed='true']")
    expect(chip).to_have_count(1)
    expect(react).to_be_focused()  # the focus came back where it was
    # The chip toggles with Enter too.
    chip.focus()
    kim.keyboard.press("Enter")
    expect(item(kim, "keyboard only").locator(".reactions")).to_have_count(0)
    # ↑ on an action: the same action on the message above; Enter there edits it.
    react.focus()
    kim.keyboard.press("ArrowUp")
    expect(
        item(kim, "an earlier one").get_by_role("button", name="React", exact=True)
    ).to_be_focused()
    kim.keyboard.press("Tab")
    kim.keyboard.press("Tab")
    expect(item(kim, "an earlier one").get_by_role("button", name="Edit")).to_be_focused()
    kim.keyboard.press("Enter")
    editor = kim.get_by_role("textbox", name="Edit your message")
    expect(editor).to_be_focused()
    editor.fill("an earlier one, fixed")
    editor.press("Enter")
    expect(item(kim, "an earlier one, fixed").locator(".msg-edited")).to_have_text("(edited)")


# A page that is hidden, with a Notification API that records what it is asked.
FAKE_NOTIFICATIONS = """
Object.defineProperty(document, "visibilityState", { get: () => window.__visibility || "visible" });
window.__notes = []; window.__asked = 0;
window.Notification = class {
  static permission = "default";
  static requestPermission() {
    window.__asked++;
    this.permission = "granted";
    return Promise.resolve("granted");
  }
  constructor(title, options) { window.__notes.push([title, options.body, options.tag]); }
  addEventListener() {}
  close() {}
};
"""


def test_desktop_notifications_asked_from_a_click_shown_while_hidden(web: Web) -> None:
    web.register_api("nia")
    nia_ctx = web.context()
    nia_ctx.add_init_script(FAKE_NOTIFICATIONS)
    resp = nia_ctx.request.post("/api/login", data={"username": "nia", "password": PASSWORD})
    assert resp.status == 200
    nia = nia_ctx.new_page()
    nia.goto("/")
    expect_online(nia)
    assert nia.evaluate("window.__asked") == 0, "never asked on load"
    nia.get_by_role("button", name="Turn on desktop notifications").click()
    expect(nia.get_by_role("button", name="Turn on desktop notifications")).to_be_hidden()
    assert nia.evaluate("window.__asked") == 1

    omar = web.signed_in("omar")
    send(omar, "@nia while you were visible")  # no notification: the page is in front
    expect(message(nia, "@nia while you were visible")).to_have_count(1)
    nia.evaluate("window.__visibility = 'hidden'")
    send(omar, "@nia are you there?")
    omar.get_by_role("button", name="Message nia").click()
    expect(omar.locator("#room-name")).to_have_text("nia")
    send(omar, "a direct word")
    nia.wait_for_function("window.__notes.length >= 2")
    notes = nia.evaluate("window.__notes")
    assert notes[0][:2] == ["omar in #general", "@nia are you there?"], notes
    assert notes[1][:2] == ["omar", "a direct word"], notes
