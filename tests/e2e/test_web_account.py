"""The browser client takes access back: "Change password" and "Sign out everywhere"."""

from __future__ import annotations

from pathlib import Path

import httpx
from playwright.sync_api import Page, expect

from tests.e2e.helpers import PASSWORD, Web, expect_online, send, unique_name

NEW_PASSWORD = "a brand new passphrase"


def open_account(page: Page) -> None:
    page.get_by_role("button", name="Password and sessions").click()
    expect(page.get_by_role("dialog", name="Password and sessions")).to_be_visible()
    expect(page.get_by_label("Current password")).to_be_focused()


def expect_signed_out(page: Page, notice: str) -> None:
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.locator("#auth-notice")).to_have_text(notice)
    assert page.context.request.get("/api/me").status == 401


def login_status(web: Web, name: str, password: str) -> int:
    resp = httpx.post(f"{web.url}/api/login", json={"username": name, "password": password})
    return resp.status_code


def test_change_password_keeps_this_session_and_ends_the_others(web: Web, shots: Path) -> None:
    name = unique_name("erin")
    here = web.signed_in(name)
    there = web.signed_in(name, register=False)

    open_account(here)
    here.screenshot(path=str(shots / "account.png"))
    dialog = here.get_by_role("dialog", name="Password and sessions")
    error = dialog.locator("#password-error")
    change = dialog.get_by_role("button", name="Change password")

    dialog.get_by_label("Current password").fill("not my password")
    dialog.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    dialog.get_by_label("Repeat the new password").fill(NEW_PASSWORD + "!")
    change.click()
    expect(error).to_have_text("The two new passwords differ.")
    expect(dialog.get_by_label("Repeat the new password")).to_be_focused()

    dialog.get_by_label("Repeat the new password").fill(NEW_PASSWORD)
    change.click()
    expect(error).to_have_text("That is not your current password.")
    expect(dialog.get_by_label("Current password")).to_have_attribute("aria-invalid", "true")

    dialog.get_by_label("Current password").fill(PASSWORD)
    change.click()
    expect(dialog.locator("#password-ok")).to_have_text(
        "Password changed. Every other session was signed out."
    )
    expect(error).to_have_text("")
    expect(dialog.get_by_label("Current password")).to_have_value("")

    # the other browser is signed out at once (its socket closed with 4001)
    expect_signed_out(there, "Your session ended. Sign in again.")
    # this one goes on
    dialog.get_by_role("button", name="Done").click()
    expect(here.get_by_role("dialog")).to_have_count(0)
    expect_online(here)
    send(here, "still here after the change")
    assert login_status(web, name, PASSWORD) == 401
    assert login_status(web, name, NEW_PASSWORD) == 200


def test_sign_out_everywhere_ends_every_session_this_one_included(web: Web) -> None:
    name = unique_name("finn")
    here = web.signed_in(name)
    there = web.signed_in(name, register=False)

    open_account(here)
    here.get_by_role("button", name="Sign out everywhere").click()

    expect_signed_out(here, "You signed out everywhere.")
    expect(here.get_by_role("dialog")).to_have_count(0)
    expect_signed_out(there, "Your session ended. Sign in again.")
    here.reload()
    expect(here.get_by_role("heading", name="Sign in")).to_be_visible()
    # the password still signs in afresh
    assert login_status(web, name, PASSWORD) == 200
