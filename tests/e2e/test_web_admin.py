"""The admin page (adminpage.mjs) against the real admin API: the first account is the admin.
It bans a user whose open browser is signed out at once (4003), unbans, is refused removing
the last admin, grants the role; makes sign-up invite-only and creates an invite that a new
browser registers with; reads all of it in the audit log. A non-admin has no admin page, and
the page works with the keyboard alone."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

import httpx
from playwright.sync_api import Locator, Page, Route, expect

from tests.e2e.helpers import PASSWORD, PHONE, Web, call, expect_online, post, unique_name
from tests.support.api import ServerFactory
from tests.support.server import ServerProcess

ADMIN_LINK = "Administration"
PAGE = 50  # users and audit entries the page asks for at once
BANNED_NOTICE = "This account was banned by an admin: you can't sign in with it any more."


def login_status(web: Web, name: str) -> int:
    resp = httpx.post(f"{web.url}/api/login", json={"username": name, "password": PASSWORD})
    return resp.status_code


def auth_field(page: Page, label: str) -> Locator:
    return page.locator("#auth-form").get_by_label(label, exact=True)


def open_admin(page: Page) -> None:
    page.get_by_role("button", name=ADMIN_LINK).click()
    expect(page.get_by_role("heading", name="Administration")).to_be_visible()
    expect(page.get_by_role("tab", name="Users")).to_have_attribute("aria-selected", "true")


def user_row(page: Page, name: str) -> Locator:
    return page.locator(f'#admin-user-list li[data-username="{name}"]')


def confirm(page: Page, ok: str) -> None:
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name=ok, exact=True).click()
    expect(page.get_by_role("dialog")).to_have_count(0)


def act_on(page: Page, label: str, name: str, ok: str) -> None:
    """Click a user's button (e.g. "Ban") and confirm it in the page."""
    user_row(page, name).get_by_role("button", name=f"{label}: {name}").click()
    confirm(page, ok)


def test_admin_bans_grants_invites_and_reads_the_audit_log(web: Web) -> None:
    ada = unique_name("ada")
    # The first account of the server: an admin (its browser lets the page use the clipboard).
    admin = web.signed_in(ada, permissions=["clipboard-read", "clipboard-write"])
    bob, bob_token = web.register_api(unique_name("bob"))
    web.register_api(unique_name("cy"))
    bobs = web.signed_in(bob, register=False)
    expect(bobs.get_by_role("button", name=ADMIN_LINK)).to_have_count(0)
    assert call(web, bob_token, "GET", "/api/admin/users", ok=(403,)).status_code == 403

    open_admin(admin)
    expect(admin.locator("#admin-user-list li")).to_have_count(3)
    expect(user_row(admin, ada).locator(".tag-admin")).to_have_text("Admin")
    admin.get_by_role("searchbox", name="Search users").fill(bob[1:].upper())
    expect(admin.locator("#admin-user-list li")).to_have_count(1)
    expect(user_row(admin, bob)).to_be_visible()

    # Ban: Bob's open browser is signed out at once, saying why; he can't sign in.
    act_on(admin, "Ban", bob, "Ban")
    expect(user_row(admin, bob).locator(".tag-banned")).to_have_text("Banned")
    expect(bobs.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(bobs.locator("#auth-notice")).to_have_text(BANNED_NOTICE)
    assert login_status(web, bob) == 403
    auth_field(bobs, "Username").fill(bob)
    auth_field(bobs, "Password").fill(PASSWORD)
    bobs.get_by_role("button", name="Sign in").click()
    expect(bobs.locator("#auth-error")).to_have_text("this account is banned")

    act_on(admin, "Unban", bob, "Unban")
    expect(user_row(admin, bob).locator(".tag-banned")).to_have_count(0)
    assert login_status(web, bob) == 200

    # The last admin can't step down: the server's reason is shown, nothing changes.
    admin.get_by_role("searchbox", name="Search users").fill("")
    expect(admin.locator("#admin-user-list li")).to_have_count(3)
    act_on(admin, "Remove admin", ada, "Remove admin")
    expect(admin.locator("#admin-users-error")).to_contain_text("admin")
    expect(user_row(admin, ada).locator(".tag-admin")).to_have_text("Admin")

    act_on(admin, "Make admin", bob, "Make admin")
    expect(user_row(admin, bob).locator(".tag-admin")).to_have_text("Admin")
    bob_again = web.signed_in(bob, register=False)
    expect(bob_again.get_by_role("button", name=ADMIN_LINK)).to_be_visible()

    # Invite-only sign-up, and an invite a new browser registers with.
    admin.get_by_role("tab", name="Registration").click()
    admin.get_by_role("radio", name="Invite only").check()
    expect(admin.locator("#admin-reg-status")).to_have_text("Registration is now: Invite only.")
    refused = httpx.post(
        f"{web.url}/api/register", json={"username": unique_name("x"), "password": PASSWORD}
    )
    assert refused.status_code == 403, refused.text

    admin.get_by_role("tab", name="Invites").click()
    admin.get_by_label("Expires after").select_option(label="1 day")
    admin.get_by_role("button", name="Create invite").click()
    link_box = admin.get_by_role("textbox", name=re.compile("^Sign-up link"))
    expect(link_box).to_have_value(re.compile(r"/\?invite=[A-Za-z0-9_-]+$"))
    link = link_box.input_value()
    code = link.rsplit("=", 1)[1]
    expect(admin.get_by_role("button", name="Copy link", exact=True)).to_be_focused()
    admin.keyboard.press("Enter")
    expect(admin.locator("#admin-copy-status")).to_have_text("Link copied.")
    assert admin.evaluate("navigator.clipboard.readText()") == link
    expect(admin.locator(f'#admin-invite-list li[data-code="{code}"]')).to_have_attribute(
        "data-state", "open"
    )

    dee = unique_name("dee")
    newcomer = web.context().new_page()
    newcomer.goto(link)
    expect(newcomer.get_by_role("heading", name="Create your account")).to_be_visible()
    expect(auth_field(newcomer, "Invite code")).to_have_value(code)
    auth_field(newcomer, "Username").fill(dee)
    auth_field(newcomer, "Password").fill(PASSWORD)
    newcomer.get_by_role("button", name="Create account").click()
    expect_online(newcomer)
    assert "invite" not in newcomer.url, "the used code leaves the address bar"
    expect(newcomer.get_by_role("button", name=ADMIN_LINK)).to_have_count(0)

    admin.get_by_role("tab", name="Users").click()  # and back: the list is read again
    admin.get_by_role("tab", name="Invites").click()
    used = admin.locator(f'#admin-invite-list li[data-code="{code}"]')
    expect(used).to_have_attribute("data-state", "used")
    expect(used).to_contain_text(f"Used by {dee}")

    # The audit log, newest first.
    admin.get_by_role("tab", name="Audit log").click()
    entries = admin.locator("#admin-audit-list li .audit-text")
    expect(entries).to_have_text(
        [
            f"{ada} created the invite {code}",
            f"{ada} set registration to invite",
            f"{ada} made {bob} an admin",
            f"{ada} unbanned {bob}",
            f"{ada} banned {bob}",
        ]
    )
    expect(admin.locator("#admin-audit-list time").first).to_contain_text(re.compile(r"now|ago"))

    # Back to the chat, still online.
    admin.get_by_role("button", name="Back to chat").click()
    expect(admin.locator("#admin-view")).to_be_hidden()
    expect_online(admin)


def test_sign_up_asks_for_an_invite_when_the_server_needs_one(web: Web) -> None:
    _, token = web.register_api(unique_name("ada"))
    call(web, token, "PATCH", "/api/admin/settings", {"registration": "invite"})
    code = call(web, token, "POST", "/api/invites", {}).json()["code"]

    page = web.context().new_page()
    page.goto("/")
    page.get_by_role("button", name="Create an account").click()
    expect(auth_field(page, "Invite code")).to_be_visible()  # asked first: GET /api/registration
    auth_field(page, "Username").fill(unique_name("eve"))
    auth_field(page, "Password").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    expect(page.locator("#auth-error")).to_contain_text("invit")
    expect(auth_field(page, "Invite code")).to_be_focused()
    auth_field(page, "Invite code").fill("not-a-code")
    page.get_by_role("button", name="Create account").click()
    expect(auth_field(page, "Invite code")).to_have_attribute("aria-invalid", "true")
    auth_field(page, "Invite code").fill(code)
    page.get_by_role("button", name="Create account").click()
    expect_online(page)


def test_a_role_change_reaches_an_open_page(web: Web) -> None:
    """Granted: the admin link appears without a reload; revoked while on the admin page:
    the page goes back to the chat and the link goes."""
    _, token = web.register_api(unique_name("ada"))
    sam = unique_name("sam")
    page = web.signed_in(sam)
    expect(page.get_by_role("button", name=ADMIN_LINK)).to_be_hidden()
    call(web, token, "PUT", f"/api/admin/users/{sam}/admin")
    open_admin(page)
    call(web, token, "DELETE", f"/api/admin/users/{sam}/admin")
    expect(page.get_by_role("heading", name="Administration")).to_be_hidden()
    expect(page.get_by_role("button", name=ADMIN_LINK)).to_be_hidden()
    expect_online(page)


def test_a_closed_server_offers_no_sign_up(
    web_on: Callable[[ServerProcess], Web], server_factory: ServerFactory
) -> None:
    web = web_on(server_factory(["--registration", "closed"]))
    page = web.context().new_page()
    page.goto("/")
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    expect(page.get_by_role("button", name="Create an account")).to_be_hidden()
    expect(page.locator("#auth-switch-text")).to_be_hidden()


def test_the_admin_page_by_keyboard_alone(web: Web) -> None:
    ada = unique_name("ada")
    page = web.signed_in(ada)
    sam = web.register_api(unique_name("sam"))[0]
    link = page.get_by_role("button", name=ADMIN_LINK)
    link.focus()
    page.keyboard.press("Enter")
    users_tab = page.get_by_role("tab", name="Users")
    expect(users_tab).to_be_focused()
    page.keyboard.press("ArrowRight")
    expect(page.get_by_role("tab", name="Invites")).to_be_focused()
    expect(page.get_by_role("tab", name="Invites")).to_have_attribute("aria-selected", "true")
    page.keyboard.press("End")
    expect(page.get_by_role("tab", name="Audit log")).to_have_attribute("aria-selected", "true")
    page.keyboard.press("Home")
    expect(users_tab).to_have_attribute("aria-selected", "true")

    page.keyboard.press("Tab")
    expect(page.get_by_role("searchbox", name="Search users")).to_be_focused()
    page.keyboard.type(sam)
    page.keyboard.press("Enter")
    expect(page.locator("#admin-user-list li")).to_have_count(1)
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name=f"Make admin: {sam}")).to_be_focused()
    page.keyboard.press("Tab")
    ban = page.get_by_role("button", name=f"Ban: {sam}")
    expect(ban).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_role("dialog")).to_be_visible()
    page.keyboard.press("Escape")  # cancelled: nothing changes, the focus comes back
    expect(ban).to_be_focused()
    expect(user_row(page, sam).locator(".tag-banned")).to_have_count(0)
    page.keyboard.press("Enter")
    expect(page.get_by_role("button", name="Ban", exact=True)).to_be_focused()
    page.keyboard.press("Enter")
    unban = page.get_by_role("button", name=f"Unban: {sam}")
    expect(unban).to_be_focused()
    expect(user_row(page, sam).locator(".tag-banned")).to_have_text("Banned")

    # Registration: the arrow keys move between the modes, each applied at once.
    users_tab.focus()
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    expect(page.get_by_role("tab", name="Registration")).to_be_focused()
    expect(page.get_by_role("radio", name="Open")).to_be_checked()
    page.keyboard.press("Tab")
    expect(page.get_by_role("radio", name="Open")).to_be_focused()
    page.keyboard.press("ArrowDown")
    expect(page.locator("#admin-reg-status")).to_have_text("Registration is now: Invite only.")

    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Shift+Tab")
    expect(page.get_by_role("button", name="Back to chat")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#admin-view")).to_be_hidden()
    expect(link).to_be_focused()

    # The browser's Forward and Back go to the page and back to the chat too.
    page.go_forward()
    expect(page.get_by_role("heading", name="Administration")).to_be_visible()
    page.go_back()
    expect(page.locator("#admin-view")).to_be_hidden()
    expect_online(page)


def test_the_admin_page_on_a_phone(web: Web) -> None:
    ada = unique_name("ada")
    web.register_api(ada)
    for _ in range(3):
        web.register_api(unique_name("pat"))
    page = web.signed_in(ada, register=False, viewport=PHONE, is_mobile=True, has_touch=True)
    page.get_by_role("button", name="Open room list").tap()
    page.get_by_role("button", name=ADMIN_LINK).tap()
    expect(page.locator("#admin-user-list li")).to_have_count(4)
    for tab in ("Invites", "Registration", "Audit log", "Users"):
        page.get_by_role("tab", name=tab).tap()
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], tab
    page.get_by_role("tab", name="Invites").tap()
    page.get_by_role("button", name="Create invite").tap()
    expect(page.locator("#admin-new-invite")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    page.get_by_role("button", name="Back to chat").tap()
    expect_online(page)
    expect(page.locator("#room-name")).to_have_text("general")


def test_an_admin_moderates_every_room(web: Web) -> None:
    ada = unique_name("ada")
    admin = web.signed_in(ada)
    cy, cy_token = web.register_api(unique_name("cy"))
    spam = post(web, cy_token, "general", "buy cheap followers")
    cys = web.signed_in(cy, register=False)

    # General has no owner: only an admin gets its topic button and deletes others' messages.
    expect(cys.get_by_role("button", name="Set a topic")).to_have_count(0)
    admin.get_by_role("button", name="Set a topic").click()
    admin.get_by_role("textbox", name="Room topic").fill("Team-wide news")
    admin.get_by_role("textbox", name="Room topic").press("Enter")
    expect(cys.locator("#room-topic")).to_have_text("Team-wide news")

    line = admin.locator(f'#messages li[data-seq="{spam}"]')
    line.hover()
    line.get_by_role("button", name="Delete").click()
    confirm(admin, "Delete")
    expect(cys.locator(f'#messages li[data-seq="{spam}"] .msg-tombstone')).to_have_text(
        "Message deleted"
    )
    # Cy, not an admin, deletes only his own.
    mine = post(web, cy_token, "general", "sorry about that")
    own = cys.locator(f'#messages li[data-seq="{mine}"]')
    own.hover()
    expect(own.get_by_role("button", name="Delete")).to_be_visible()
    someone = post(web, web.register_api()[1], "general", "hello all")
    other = cys.locator(f'#messages li[data-seq="{someone}"]')
    other.hover()
    expect(other.get_by_role("button", name="Reply")).to_be_visible()
    expect(other.get_by_role("button", name="Delete")).to_have_count(0)

    open_admin(admin)
    admin.get_by_role("tab", name="Audit log").click()
    expect(admin.locator("#admin-audit-list li .audit-text")).to_have_text(
        [
            f"{ada} deleted a message by {cy} in #general",
            f"{ada} set the topic of #general to “Team-wide news”",
        ]
    )


def test_the_audit_log_comes_in_pages(
    web_on: Callable[[ServerProcess], Web], server_factory: ServerFactory
) -> None:
    web = web_on(server_factory(["--rate-limit", "0"]))
    ada, token = web.register_api("ada")
    sam = web.register_api("sam")[0]
    for _ in range(PAGE // 2 + 1):  # two entries each time: a page and two more
        call(web, token, "POST", f"/api/admin/users/{sam}/ban")
        call(web, token, "DELETE", f"/api/admin/users/{sam}/ban")
    call(web, token, "PATCH", "/api/admin/settings", {"registration": "closed"})

    page = web.signed_in(ada, register=False)
    open_admin(page)
    page.get_by_role("tab", name="Audit log").click()
    entries = page.locator("#admin-audit-list li .audit-text")
    expect(entries).to_have_count(PAGE)
    expect(entries.first).to_have_text(f"{ada} set registration to closed")
    page.get_by_role("button", name="Older entries").click()
    expect(entries).to_have_count(PAGE + 3)
    expect(entries.last).to_have_text(f"{ada} banned {sam}")
    expect(page.get_by_role("button", name="Older entries")).to_be_hidden()


def test_the_user_list_comes_in_pages(web: Web) -> None:
    """Fifty and more accounts take minutes to hash: the answers are faked in the browser, in
    the API's shape, and the test checks what the page asks for and shows."""
    ada = unique_name("ada")
    page = web.signed_in(ada)
    names = [f"user{i:03d}" for i in range(PAGE + 2)]
    asked: list[str] = []

    def answer(route: Route) -> None:
        asked.append(route.request.url)
        after = parse_qs(urlsplit(route.request.url).query).get("after", [""])[0]
        rest = [n for n in names if n > after][:PAGE]
        users = [
            {"username": n, "admin": False, "banned": False, "created_at": "2026-11-27T09:00:00Z"}
            for n in rest
        ]
        route.fulfill(
            status=200, content_type="application/json", body=json.dumps({"users": users})
        )

    page.route("**/api/admin/users?*", answer)
    open_admin(page)
    rows = page.locator("#admin-user-list li")
    expect(rows).to_have_count(PAGE)
    more = page.get_by_role("button", name="More users")
    more.click()
    expect(rows).to_have_count(PAGE + 2)
    expect(rows.last).to_have_attribute("data-username", names[-1])
    expect(more).to_be_hidden()
    assert [parse_qs(urlsplit(url).query) for url in asked] == [
        {"limit": [str(PAGE)]},
        {"after": [names[PAGE - 1]], "limit": [str(PAGE)]},
    ]
