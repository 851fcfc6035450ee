"""A realistic scene, photographed in the main states: sign-in, desktop light and dark, phone,
reconnecting; with the team features: DMs in the sidebar, replies, reactions, an edited message,
a deleted one, mention and unread badges from the server's counts, the "new messages" divider;
markdown in messages (a list, a link, a code block) and the search box over its results; files
(an inline image, a file card, an upload under way) and the image viewer.
`PARLEY_SCREENSHOTS=1 pytest tests/e2e/test_web_screenshots.py` writes them to
docs/screenshots/ (committed); otherwise they go to a temp dir and the test only checks the states.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import quote

import httpx
from playwright.sync_api import Page, expect

from tests.e2e.helpers import (
    PASSWORD,
    PHONE,
    RECONNECT_TIMEOUT_MS,
    Web,
    call,
    compose,
    expect_online,
    message,
    open_room,
    post,
    slow_uploads,
    upload,
)
from tests.e2e.images import sunset
from tests.support.server import ServerProcess

GENERAL = [
    ("jonas", "Morning all! Staging deploy went through overnight, zero errors"),
    ("jonas", "Release notes draft: [parley 0.1](https://example.com/parley/releases/0.1)"),
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
        "Looks good:\n- backoff is capped at **30 s** with full jitter\n"
        "- every room resumes from the [last seq seen](https://example.com/parley/protocol):\n"
        '```\n{"type": "join", "room": "general", "since": 41}\n```',
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


def api(web: Web, token: str, path: str, body: dict[str, object]) -> None:
    call(web, token, "POST", path, body)


def react(web: Web, token: str, room: str, seq: int, emoji: str) -> None:
    call(web, token, "PUT", f"/api/rooms/{room}/messages/{seq}/reactions/{quote(emoji)}")


def dm(web: Web, token: str, other: str) -> str:
    return str(call(web, token, "POST", "/api/dms", {"users": [other]}).json()["room"])


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
    post(web, tokens["priya"], "design", "Sketches for the launch page are in the drive")
    post(web, tokens["priya"], "design", "@maya the new palette is ready for your review")

    # General: replies, reactions, an edit, a deletion; Maya has read up to her own messages.
    seqs = [post(web, tokens[name], "general", text) for name, text in GENERAL[:7]]
    oops = post(web, tokens["sam"], "general", "oops, wrong room")
    call(web, tokens["sam"], "DELETE", f"/api/rooms/general/messages/{oops}")
    call(web, tokens["maya"], "POST", "/api/rooms/general/read", {"seq": oops})
    seqs.append(post(web, tokens["sam"], "general", GENERAL[7][1], reply_to=seqs[6]))
    seqs.append(post(web, tokens["priya"], "general", GENERAL[8][1], reply_to=seqs[3]))
    seqs.append(post(web, tokens["jonas"], "general", GENERAL[9][1]))
    call(
        web,
        tokens["sam"],
        "PATCH",
        f"/api/rooms/general/messages/{seqs[7]}",
        {"text": "Thanks Maya! Merged, and the branch is deleted."},
    )
    for name, emoji in (("jonas", "😄"), ("sam", "😄"), ("maya", "❤️")):
        react(web, tokens[name], "general", seqs[8], emoji)
    react(web, tokens["maya"], "general", seqs[0], "😄")

    # Direct messages: a conversation with Jonas (his last line unread), one unread, one read.
    with_jonas = dm(web, tokens["jonas"], "maya")
    asked = post(web, tokens["jonas"], with_jonas, "Got a minute to go over the launch checklist?")
    answer = post(web, tokens["maya"], with_jonas, "Sure, right after standup?", reply_to=asked)
    react(web, tokens["jonas"], with_jonas, answer, "😄")
    call(web, tokens["maya"], "POST", f"/api/rooms/{with_jonas}/read", {"seq": answer + 1})
    post(web, tokens["jonas"], with_jonas, "Perfect. I'll bring the rollback plan too.")
    post(web, tokens["sam"], dm(web, tokens["sam"], "maya"), "Lunch at 12:30?")
    thanks = dm(web, tokens["priya"], "maya")
    seq = post(web, tokens["priya"], thanks, "Thanks for the review!")
    call(web, tokens["maya"], "POST", f"/api/rooms/{thanks}/read", {"seq": seq})

    # Jonas and Priya are online; Maya watches on desktop (light).
    jonas = web.signed_in("jonas", register=False)
    web.signed_in("priya", register=False)
    maya = web.signed_in("maya", register=False)
    expect(message(maya, GENERAL[-1][1])).to_have_count(1)
    expect(maya.locator("#online-list li")).to_have_count(3)
    expect(maya.locator("#messages .new-divider")).to_have_count(1)
    expect(maya.locator("#messages .msg-tombstone")).to_have_text("Message deleted")
    expect(maya.locator("#messages .msg-edited")).to_have_text("(edited)")
    expect(message(maya, "Thanks Maya! Merged, and the branch is deleted. (edited)")).to_have_count(
        1
    )
    expect(maya.locator("#messages .msg-reply")).to_have_count(2)
    expect(maya.locator('#messages .chip[data-emoji="😄"]').last).to_have_text("😄2")
    dms = maya.locator("#dm-list button")
    expect(dms).to_have_count(3)
    expect(dms.filter(has_text="jonas").locator(".badge")).to_contain_text("1")
    expect(dms.filter(has_text="priya").locator(".badge")).to_have_count(0)

    # News in other rooms arrives while she reads #general: unread badges.
    for room, lines in LATER.items():
        for name, text in lines:
            post(web, tokens[name], room, text)
    design = maya.locator('#room-list button[data-room="design"]')
    expect(design.locator(".badge")).to_contain_text("5")
    expect(design.locator(".mention-badge")).to_contain_text("@1")
    expect(maya.locator('#room-list button[data-room="random"] .badge')).to_contain_text("1")

    compose(jonas).press_sequentially("Let's cut")
    expect(maya.locator("#typing")).to_have_text("jonas is typing…")
    compose(maya).fill("Agreed, tagging v0.1 now")
    settle(maya)
    maya.screenshot(path=str(shots / "chat-light.png"))

    # The actions on a message, and the emoji picker.
    target = maya.locator(f'#messages li[data-seq="{seqs[9]}"]')
    target.hover()
    expect(target.get_by_role("button", name="Reply")).to_be_visible()
    maya.screenshot(path=str(shots / "message-actions.png"))
    target.get_by_role("button", name="React").click()
    expect(maya.locator("#picker")).to_be_visible()
    maya.screenshot(path=str(shots / "emoji-picker.png"))
    maya.keyboard.press("Escape")
    expect(maya.locator("#messages pre code")).to_contain_text('"since": 41')
    expect(maya.locator("#messages ol li")).to_have_count(3)
    expect(maya.locator("#messages ul li")).to_have_count(2)
    expect(maya.get_by_role("link", name="last seq seen")).to_be_visible()
    # A reply quotes the words, without the markup.
    expect(maya.locator("#messages .msg-reply-text").first).to_contain_text(
        "Looks good: backoff is capped at 30 s with full jitter every room resumes"
    )

    # The search box over its results (once the server has GET /api/search).
    probe = call(web, tokens["maya"], "GET", "/api/search?q=launch", ok=(200, 404))
    if probe.status_code == 200:
        maya.keyboard.press("Control+k")
        maya.keyboard.type("launch")
        expect(maya.locator("#search-results [role=group]")).to_have_count(3)
        maya.keyboard.press("ArrowDown")
        settle(maya)
        maya.screenshot(path=str(shots / "search.png"))
        maya.keyboard.press("Escape")
        expect(maya.locator("#search-dialog")).to_be_hidden()
    # Maya moves on (her draft in #general is kept); general gets news meanwhile.
    open_room(maya, "launch-plan")
    post(web, tokens["priya"], "general", "@maya can you post the release notes in #launch-plan?")
    post(web, tokens["sam"], "general", "Deploy window is 14:00 to 15:00.")

    # Dark: the divider sits above what came since Maya last read #general.
    dark = web.signed_in("maya", register=False, color_scheme="dark")
    expect(message(dark, GENERAL[-1][1])).to_have_count(1)
    assert dark.evaluate("matchMedia('(prefers-color-scheme: dark)').matches")
    bg = dark.evaluate("getComputedStyle(document.querySelector('.chat')).backgroundColor")
    assert bg == "rgb(18, 18, 23)", bg
    expect(dark.locator("#messages .new-divider + li.msg")).to_contain_text(
        "can you post the release notes"
    )
    expect(dark.locator("#messages li.mentions-me .mention-me")).to_have_text("@maya")
    post(web, tokens["priya"], "design", "Dark mode screenshots attached, have a look")
    post(web, tokens["sam"], "random", "12:30 at the usual place?")
    expect(dark.locator('#room-list button[data-room="design"] .badge')).to_contain_text("6")
    expect(dark.locator('#room-list button[data-room="random"] .badge')).to_contain_text("2")
    settle(dark)
    dark.screenshot(path=str(shots / "chat-dark.png"))
    open_room(dark, "launch-plan")
    post(web, tokens["jonas"], "general", "Release is out. Thanks everyone!")

    # Phone.
    phone = web.signed_in(
        "maya",
        register=False,
        viewport=PHONE,
        is_mobile=True,
        has_touch=True,
        device_scale_factor=2,
    )
    expect(message(phone, "Release is out. Thanks everyone!")).to_be_in_viewport()
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    settle(phone)
    phone.screenshot(path=str(shots / "phone.png"))
    phone.get_by_role("button", name="Open room list").tap()
    expect(phone.locator("#room-list")).to_be_in_viewport()
    expect(phone.locator("#sidebar")).to_have_css("transform", "none")
    expect(phone.locator("#dm-list")).to_be_in_viewport()
    phone.screenshot(path=str(shots / "phone-rooms.png"))

    # Phone, dark: the DM with Jonas, opened from the drawer.
    phone_dark = web.signed_in(
        "maya",
        register=False,
        viewport=PHONE,
        is_mobile=True,
        has_touch=True,
        device_scale_factor=2,
        color_scheme="dark",
    )
    assert phone_dark.evaluate("matchMedia('(prefers-color-scheme: dark)').matches")
    phone_dark.get_by_role("button", name="Open room list").tap()
    phone_dark.locator("#dm-list button").filter(has_text="jonas").tap()
    expect(phone_dark.locator("#room-name")).to_have_text("jonas")
    expect(message(phone_dark, "Perfect. I'll bring the rollback plan too.")).to_be_in_viewport()
    expect(phone_dark.locator("#messages .new-divider")).to_have_count(1)
    settle(phone_dark)
    phone_dark.screenshot(path=str(shots / "phone-dark.png"))

    # Reconnecting: the server goes away; Maya's message waits in her page.
    open_room(maya, "general")
    expect(compose(maya)).to_have_value("Agreed, tagging v0.1 now")
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


FILES_CHAT = [
    ("priya", "Rooftop photos from the launch party are up 🎉"),
    ("sam", "And the load test report, for whoever missed the demo:"),
]
SLOW_UPLOAD = 120_000  # bytes per second: Maya's upload is still going when the shot is taken


def report_pdf() -> bytes:
    """A small, valid one-page PDF: a file that is shown as a card."""
    lines = [b"(Load test: 10,000 clients, p99 ack 38 ms) Tj"]
    lines += [b"0 -16 Td (run %d: no gaps, no duplicates) Tj" % run for run in range(1, 400)]
    text = b"BT /F1 12 Tf 72 720 Td " + b" ".join(lines) + b" ET"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
        b" /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(text), text),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = b"%PDF-1.4\n"
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    trailer = b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n"
    return out + trailer % (len(objects) + 1, xref)


def test_screenshots_of_files(web: Web, shots: Path) -> None:
    tokens = {name: web.register_api(name)[1] for name in ("maya", "priya", "sam")}
    photo = upload(web, tokens["priya"], "rooftop-sunset.png", sunset(960, 640), "image/png")
    dusk = sunset(
        600, 960, sky=((20, 90, 110), (160, 220, 200)), hills=((30, 110, 90), (15, 60, 50))
    )
    later = upload(web, tokens["priya"], "after-dark.png", dusk, "image/png")
    report = upload(web, tokens["sam"], "load-test-report.pdf", report_pdf(), "application/pdf")
    post(web, tokens["maya"], "general", "How did the launch go last night?")
    post(web, tokens["priya"], "general", FILES_CHAT[0][1], attachments=[photo["id"], later["id"]])
    last = post(web, tokens["sam"], "general", FILES_CHAT[1][1], attachments=[report["id"]])
    call(web, tokens["maya"], "POST", "/api/rooms/general/read", {"seq": last})  # opens at the end

    web.signed_in("priya", register=False)
    maya = web.signed_in("maya", register=False)
    slow_uploads(maya, SLOW_UPLOAD)
    image = maya.get_by_role("button", name=re.compile(r"^Open the image rooftop-sunset\.png"))
    for shown in maya.locator("#messages .att-image img").all():
        expect(shown).to_have_js_property("complete", True)
    expect(maya.locator("#messages a.att-card")).to_contain_text("load-test-report.pdf")
    with maya.expect_file_chooser() as chooser:
        maya.get_by_role("button", name="Attach files").click()
    chooser.value.set_files(
        [{"name": "metrics.csv", "mimeType": "text/csv", "buffer": b"t,p99_ms\n" * 200_000}]
    )
    bar = maya.locator("#uploads progress")
    expect(bar).to_have_attribute("value", re.compile(r"^([2-8]\d)$"))  # well under way
    compose(maya).fill("Nice! Here are the raw numbers")
    maya.evaluate("document.fonts.ready.then(() => true)")
    maya.screenshot(path=str(shots / "files.png"))

    image.click()
    viewer = maya.locator("#viewer")
    expect(viewer).to_be_visible()
    expect(viewer.locator("#viewer-count")).to_have_text("1 of 2")
    expect(viewer.locator("#viewer-img")).to_have_js_property("complete", True)
    maya.screenshot(path=str(shots / "image-viewer.png"))
    maya.keyboard.press("Escape")
    expect(viewer).to_be_hidden()


def test_screenshot_of_the_admin_page(web: Web, shots: Path) -> None:
    """The admin page: users with their badges (admin.png) and the audit log (admin-audit.png)."""
    tokens = {name: web.register_api(name)[1] for name in ("maya", "jonas", "priya", "sam")}
    maya = tokens["maya"]  # the first account: an admin
    call(web, maya, "PUT", "/api/admin/users/priya/admin")
    oops = post(web, tokens["sam"], "general", "buy cheap followers here")
    call(web, tokens["priya"], "DELETE", f"/api/rooms/general/messages/{oops}")
    call(web, maya, "POST", "/api/admin/users/sam/ban")
    call(web, maya, "PATCH", "/api/admin/settings", {"registration": "invite"})
    code = call(web, maya, "POST", "/api/invites", {}).json()["code"]
    call(web, maya, "POST", "/api/invites", {"expires_in": 86400})
    joined = httpx.post(
        f"{web.url}/api/register",
        json={"username": "lee", "password": PASSWORD, "invite": code},
    )
    assert joined.status_code == 201, joined.text

    page = web.signed_in("maya", register=False)
    page.get_by_role("button", name="Administration").click()
    expect(page.locator("#admin-user-list li")).to_have_count(5)
    expect(page.locator('#admin-user-list li[data-username="sam"] .tag-banned')).to_be_visible()
    settle(page)
    page.screenshot(path=str(shots / "admin.png"))
    page.get_by_role("tab", name="Audit log").click()
    expect(page.locator("#admin-audit-list li")).to_have_count(6)
    page.get_by_role("tab", name="Audit log").blur()
    page.screenshot(path=str(shots / "admin-audit.png"))
