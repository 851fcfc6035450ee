"""Files in the browser client (uploads.mjs, attachments.mjs, viewer.mjs) against the real
`POST /api/files`: an image by the paperclip, seen inline by another user and opened in the
viewer; a dropped file as a card whose download has the same bytes; a pasted image; a file
over `--max-upload` that shows its error and sends nothing; the progress bar and a cancel;
and all of it by keyboard.

Each test is skipped, with that reason, only while the server under test has no
`POST /api/files` (it answers 404 or 405)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from playwright.sync_api import Locator, Page, expect

from tests.e2e.helpers import PHONE, Web, call, compose, post, slow_uploads, upload
from tests.e2e.images import sunset
from tests.support.api import ServerFactory
from tests.support.server import ServerProcess

PICTURE = sunset()  # 640 × 420: shown inline at 320 × 210
TALL = sunset(300, 480, sky=((20, 90, 110), (160, 220, 200)), hills=((30, 110, 90), (15, 60, 50)))
NOTES = ("Meeting notes\n" + "- ship the files feature\n" * 100).encode()


def require_uploads(web: Web, token: str) -> None:
    """Skip unless the server takes uploads."""
    upload(web, token, "probe.png", PICTURE, "image/png")


def amy_and_bob(web: Web) -> tuple[str, Page, Page]:
    """Amy's token and two signed-in pages, Amy's and Bob's, on a server that takes uploads."""
    _, amy_token = web.register_api("amy")
    web.register_api("bob")
    require_uploads(web, amy_token)
    return amy_token, web.signed_in("amy", register=False), web.signed_in("bob", register=False)


def payload(name: str, mime: str, data: bytes) -> dict[str, Any]:
    return {"name": name, "mimeType": mime, "buffer": data}


def attach_by_button(page: Page, *files: dict[str, Any]) -> None:
    with page.expect_file_chooser() as chooser:
        page.get_by_role("button", name="Attach files").click()
    chooser.value.set_files(list(files))


def chips(page: Page) -> Locator:
    return page.locator("#uploads li")


def last_message(page: Page) -> Locator:
    return page.locator("#messages li.msg").last


def history(web: Web, token: str, room: str = "general") -> list[dict[str, Any]]:
    messages = call(web, token, "GET", f"/api/rooms/{room}/messages").json()["messages"]
    assert isinstance(messages, list)
    return messages


def put_in_page(page: Page, name: str, mime: str, data: bytes, event: str) -> None:
    """Dispatch a `drop` on the log, or a `paste` on the message box, carrying one file
    made in the page (a DataTransfer, as a real drag or clipboard hands it over)."""
    page.evaluate(
        """([name, mime, bytes, event]) => {
            const data = new DataTransfer();
            data.items.add(new File([new Uint8Array(bytes)], name, { type: mime }));
            const init = { bubbles: true, cancelable: true };
            if (event === "drop") {
                const log = document.getElementById("log");
                for (const type of ["dragenter", "dragover", "drop"]) {
                    log.dispatchEvent(new DragEvent(type, { ...init, dataTransfer: data }));
                }
            } else {
                const box = document.getElementById("composer-input");
                box.focus();
                box.dispatchEvent(new ClipboardEvent("paste", { ...init, clipboardData: data }));
            }
        }""",
        [name, mime, list(data), event],
    )


def expect_loaded(image: Locator) -> None:
    expect(image).to_have_js_property("complete", True)
    assert image.evaluate("img => img.naturalWidth") > 0


def test_an_image_by_the_paperclip_shows_inline_for_another_user_and_opens_in_the_viewer(
    web: Web,
) -> None:
    amy_token, amy, bob = amy_and_bob(web)

    attach_by_button(amy, payload("sunset.png", "image/png", PICTURE))
    chip = chips(amy)
    expect(chip).to_have_count(1)
    expect(chip).to_have_class(re.compile(r"\bis-done\b"))
    expect(chip.locator(".upload-name")).to_have_text("sunset.png")
    expect(chip.locator(".upload-meta")).to_have_text(re.compile(r"^\d+(\.\d)? KB$"))
    expect_loaded(chip.locator(".upload-thumb img"))  # the server's thumbnail
    compose(amy).fill("Tonight's sky")
    compose(amy).press("Enter")
    expect(chips(amy)).to_have_count(0)
    expect(amy.locator("#pending li")).to_have_count(0)

    # Bob sees it inline, at its thumbnail's size from the start (no jump when it loads).
    shown = last_message(bob)
    expect(shown.locator(".msg-text")).to_have_text("Tonight's sky")
    image = shown.get_by_role("button", name=re.compile(r"^Open the image sunset\.png"))
    thumb = image.locator("img")
    expect(thumb).to_have_attribute("width", "320")
    expect(thumb).to_have_attribute("height", "210")
    expect_loaded(thumb)
    box = thumb.bounding_box()
    assert box
    assert (round(box["width"]), round(box["height"])) == (320, 210), box
    [stored] = history(web, amy_token)[-1]["attachments"]
    assert stored["name"] == "sunset.png"
    assert (stored["width"], stored["height"]) == (640, 420)
    assert thumb.get_attribute("src") == f"/api/files/{stored['id']}/thumb"

    image.click()
    viewer = bob.locator("#viewer")
    expect(viewer).to_be_visible()
    expect(viewer.locator("#viewer-name")).to_have_text("sunset.png")
    expect(viewer.locator("#viewer-meta")).to_contain_text("amy · 640 × 420")
    full = viewer.locator("#viewer-img")
    expect(full).to_have_attribute("src", f"/api/files/{stored['id']}")
    expect_loaded(full)
    assert full.evaluate("img => img.naturalWidth") == 640
    download = viewer.get_by_role("link", name="Download sunset.png")
    expect(download).to_have_attribute("href", f"/api/files/{stored['id']}")
    bob.keyboard.press("Escape")
    expect(viewer).to_be_hidden()
    expect(image).to_be_focused()

    # A click on the dark around the image closes it too.
    image.click()
    expect(viewer).to_be_visible()
    viewer.locator("#viewer-stage").click(position={"x": 5, "y": 5})
    expect(viewer).to_be_hidden()


def test_a_dropped_file_becomes_a_card_whose_download_has_the_same_bytes(
    web: Web, tmp_path: Path
) -> None:
    amy_token, amy, bob = amy_and_bob(web)

    put_in_page(amy, "notes.txt", "text/plain", NOTES, "drop")
    expect(amy.locator("#drop-zone")).to_be_hidden()  # lit while dragging, gone after the drop
    expect(chips(amy)).to_have_class(re.compile(r"\bis-done\b"))
    expect(compose(amy)).to_be_focused()
    compose(amy).press("Enter")  # files only: no text needed
    expect(chips(amy)).to_have_count(0)

    card = last_message(bob).locator("a.att-card")
    expect(card).to_have_count(1)
    expect(card.locator(".att-card-name")).to_have_text("notes.txt")
    expect(card.locator(".att-card-meta")).to_have_text(re.compile(r"^2\.5 KB · "))
    expect(last_message(bob).locator(".msg-text")).to_have_count(0)
    [stored] = history(web, amy_token)[-1]["attachments"]
    assert history(web, amy_token)[-1]["text"] == ""
    assert stored["size"] == len(NOTES)

    with bob.expect_download() as download:
        card.click()
    assert download.value.suggested_filename == "notes.txt"
    saved = tmp_path / "notes.txt"
    download.value.save_as(saved)
    assert saved.read_bytes() == NOTES

    # Deleted, the message is a tombstone: its file goes with its text.
    seq = history(web, amy_token)[-1]["seq"]
    call(web, amy_token, "DELETE", f"/api/rooms/general/messages/{seq}")
    expect(last_message(bob).locator(".msg-tombstone")).to_have_text("Message deleted")
    expect(last_message(bob).locator(".attachments")).to_have_count(0)


def test_a_pasted_image_is_uploaded_and_sent_on_a_phone(web: Web) -> None:
    _, amy_token = web.register_api("amy")
    require_uploads(web, amy_token)
    amy = web.signed_in("amy", register=False, viewport=PHONE, is_mobile=True, has_touch=True)
    big = upload(web, amy_token, "wide.png", PICTURE, "image/png")
    post(web, amy_token, "general", "wide", attachments=[big["id"]])
    wide = last_message(amy).locator(".att-image img")
    expect_loaded(wide)
    column = last_message(amy).locator(".attachments").bounding_box()
    shown = wide.bounding_box()
    assert column
    assert shown
    assert shown["width"] <= column["width"] < 320  # shrunk to the column…
    assert abs(shown["height"] / shown["width"] - 210 / 320) < 0.01  # …keeping its shape

    put_in_page(amy, "image.png", "image/png", TALL, "paste")
    expect(chips(amy)).to_have_class(re.compile(r"\bis-done\b"))
    expect(compose(amy)).to_have_value("")  # the picture is not pasted as text
    compose(amy).press("Enter")
    thumb = last_message(amy).locator(".att-image img")
    expect(thumb).to_have_attribute("height", "240")  # 300 × 480 fits 320 × 240 as 150 × 240
    expect(thumb).to_have_attribute("width", "150")
    expect_loaded(thumb)
    [stored] = history(web, amy_token)[-1]["attachments"]
    assert (stored["width"], stored["height"]) == (300, 480)
    assert amy.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]

    # A tap opens the viewer; its close button closes it.
    thumb.tap()
    expect(amy.locator("#viewer")).to_be_visible()
    expect(amy.locator("#viewer-count")).to_have_text("2 of 2")
    amy.get_by_role("button", name="Close the viewer").tap()
    expect(amy.locator("#viewer")).to_be_hidden()


def test_refused_files_show_why_and_nothing_is_sent_with_them(
    web_on: Callable[[ServerProcess], Web], server_factory: ServerFactory
) -> None:
    web = web_on(server_factory(["--max-upload", "65536"]))
    _, amy_token = web.register_api("amy")
    require_uploads(web, amy_token)
    amy = web.signed_in("amy", register=False)

    attach_by_button(
        amy,
        payload("huge.bin", "application/octet-stream", b"\x01" * 200_000),
        payload("empty.txt", "text/plain", b""),
        payload("photo.png", "image/png", b"not a picture at all"),
    )
    expect(chips(amy).locator(".upload-meta")).to_have_text(
        [
            "Too large: over the server's upload limit.",
            "Can't upload this file: the file is empty",
            re.compile(r"^Can't upload this file: the file's name says "),
        ]
    )
    for i in range(3):
        expect(chips(amy).nth(i)).to_have_class(re.compile(r"\bis-failed\b"))
    compose(amy).press("Enter")  # only a failed file: nothing to send
    expect(amy.locator("#pending li")).to_have_count(0)
    compose(amy).fill("after the refusal")
    compose(amy).press("Enter")
    expect(last_message(amy).locator(".msg-text")).to_have_text("after the refusal")
    expect(chips(amy)).to_have_count(3)  # an error stays until it is read and removed
    messages = history(web, amy_token)
    assert [(m["text"], m["attachments"]) for m in messages] == [("after the refusal", [])]

    for name in ("huge.bin", "empty.txt", "photo.png"):
        chips(amy).get_by_role("button", name=f"Remove {name}").click()
    expect(chips(amy)).to_have_count(0)
    expect(compose(amy)).to_be_focused()


def test_the_progress_bar_moves_and_an_upload_can_be_cancelled(web: Web) -> None:
    _, amy_token = web.register_api("amy")
    require_uploads(web, amy_token)
    amy = web.signed_in("amy", register=False)
    slow_uploads(amy, bytes_per_second=200_000)

    attach_by_button(amy, payload("backup.bin", "application/octet-stream", bytes(2_000_000)))
    chip = chips(amy)
    bar = chip.get_by_role("progressbar", name="Uploading backup.bin")
    expect(bar).to_have_attribute("value", re.compile(r"^[1-9]\d?$"))  # under way, not done
    expect(chip.locator(".upload-meta")).to_have_text(re.compile(r" of 1\.9 MB$"))
    chip.get_by_role("button", name="Cancel the upload of backup.bin").click()
    expect(chips(amy)).to_have_count(0)
    compose(amy).press("Enter")
    compose(amy).fill("nothing attached")
    compose(amy).press("Enter")
    expect(last_message(amy).locator(".msg-text")).to_have_text("nothing attached")
    assert [m["attachments"] for m in history(web, amy_token)] == [[]]


def test_everything_by_keyboard(web: Web) -> None:
    _, amy_token = web.register_api("amy")
    require_uploads(web, amy_token)
    amy = web.signed_in("amy", register=False)
    # Playwright takes over file choosers once a listener exists, and turning that on takes a
    # round trip: a key press is quicker than that, a click (which waits for the button) is not.
    amy.on("filechooser", lambda _: None)

    # Shift+Tab from the message box reaches the paperclip; Enter opens the file chooser.
    compose(amy).focus()
    amy.keyboard.press("Shift+Tab")
    expect(amy.get_by_role("button", name="Attach files")).to_be_focused()
    with amy.expect_file_chooser() as chooser:
        amy.keyboard.press("Enter")
    chooser.value.set_files(
        [
            payload("one.png", "image/png", PICTURE),
            payload("two.png", "image/png", TALL),
            payload("stray.txt", "text/plain", b"not this one"),
        ]
    )
    expect(chips(amy)).to_have_count(3)
    expect(chips(amy).locator(".upload-name")).to_have_text(["one.png", "two.png", "stray.txt"])
    for i in range(3):
        expect(chips(amy).nth(i)).to_have_class(re.compile(r"\bis-done\b"))

    # Tab moves through the chips' buttons; Enter removes one and the focus stays in the row.
    amy.keyboard.press("Shift+Tab")  # from the message box back to the paperclip…
    amy.keyboard.press("Shift+Tab")  # …and to the last chip's button
    expect(amy.get_by_role("button", name="Remove stray.txt")).to_be_focused()
    amy.keyboard.press("Enter")
    expect(chips(amy)).to_have_count(2)
    expect(amy.get_by_role("button", name="Remove two.png")).to_be_focused()
    compose(amy).focus()
    amy.keyboard.press("Enter")
    expect(last_message(amy).locator(".att-image")).to_have_count(2)
    assert [f["name"] for f in history(web, amy_token)[-1]["attachments"]] == [
        "one.png",
        "two.png",
    ]

    # From the log, Tab reaches the first image; Enter opens it; the arrows move; Esc closes.
    amy.locator("#log").focus()
    amy.keyboard.press("Tab")
    first = last_message(amy).get_by_role("button", name=re.compile(r"^Open the image one\.png"))
    expect(first).to_be_focused()
    amy.keyboard.press("Enter")
    viewer = amy.locator("#viewer")
    expect(viewer).to_be_visible()
    expect(viewer.locator("#viewer-count")).to_have_text("1 of 2")
    expect(viewer.get_by_role("button", name="Previous image")).to_be_disabled()
    amy.keyboard.press("ArrowRight")
    expect(viewer.locator("#viewer-name")).to_have_text("two.png")
    expect(viewer.locator("#viewer-count")).to_have_text("2 of 2")
    amy.keyboard.press("ArrowRight")  # the last one: stays
    expect(viewer.locator("#viewer-name")).to_have_text("two.png")
    amy.keyboard.press("ArrowLeft")
    expect(viewer.locator("#viewer-name")).to_have_text("one.png")
    amy.keyboard.press("Tab")  # within the dialog: from the close button on to the arrows
    assert amy.evaluate("document.getElementById('viewer').contains(document.activeElement)")
    amy.keyboard.press("Escape")
    expect(viewer).to_be_hidden()
    expect(first).to_be_focused()
