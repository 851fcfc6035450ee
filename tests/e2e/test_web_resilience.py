"""The browser client under failure: server crash and restart, lost acks, long history, presence."""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, WebSocketRoute, expect

from tests.e2e.helpers import (
    PASSWORD,
    PHONE,
    RECONNECT_TIMEOUT_MS,
    Web,
    compose,
    expect_online,
    message,
    send,
)
from tests.support.server import ServerProcess

Headers = dict[str, str]


def bearer(web: Web, name: str) -> Headers:
    resp = httpx.post(f"{web.url}/api/login", json={"username": name, "password": PASSWORD})
    assert resp.status_code == 200, resp.text
    return {"Authorization": f"Bearer {resp.json()['token']}"}


def post(web: Web, headers: Headers, text: str, room: str = "general") -> dict[str, Any]:
    resp = httpx.post(
        f"{web.url}/api/rooms/{room}/messages",
        json={"text": text, "client_id": uuid.uuid4().hex},
        headers=headers,
    )
    assert resp.status_code == 201, resp.text
    message: dict[str, Any] = resp.json()
    return message


def stored_texts(web: Web, headers: Headers, room: str = "general") -> list[str]:
    resp = httpx.get(f"{web.url}/api/rooms/{room}/messages?limit=100", headers=headers)
    assert resp.status_code == 200, resp.text
    return [m["text"] for m in resp.json()["messages"]]


def rendered_seqs(page: Page) -> list[int]:
    seqs: list[str] = page.eval_on_selector_all(
        "#messages li.msg[data-seq]", "els => els.map(e => e.dataset.seq)"
    )
    return [int(s) for s in seqs]


def assert_contiguous(seqs: list[int]) -> None:
    """Rendered in order, no duplicate, no gap."""
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs


@pytest.fixture
def fast_server(server_factory: Any) -> ServerProcess:
    """No per-user rate limit, so a test can seed a long history quickly."""
    server: ServerProcess = server_factory(["--rate-limit", "0"])
    return server


def test_server_restart_page_reconnects_and_gets_outage_messages_once(
    web: Web, server: ServerProcess
) -> None:
    alice = web.signed_in("alice")
    bob = web.signed_in("bob")
    send(alice, "before the crash")
    expect(message(bob, "before the crash")).to_have_count(1)

    server.kill()
    for page in (alice, bob):
        expect(page.locator("#conn")).not_to_have_attribute("data-state", "online")
        expect(page.locator("#banner")).to_contain_text("Connection lost")
    expect(bob.locator("#conn-text")).to_have_text(re.compile(r"^Reconnecting"))

    # Alice writes while the server is down: the page keeps it as pending.
    compose(alice).fill("written during the outage")
    compose(alice).press("Enter")
    pending = alice.locator("#pending li")
    expect(pending).to_have_count(1)
    expect(pending).to_contain_text("Waiting for connection")
    expect(bob.locator("#conn-text")).to_have_text(re.compile(r"^Reconnecting in \d+ s$"))

    server.start()  # same port, same data dir
    # Posted as soon as the server is back, most likely before bob's page reconnects:
    # it must come through bob's resume (`join` with `since`), not be lost or doubled.
    headers = bearer(web, "alice")
    post(web, headers, "posted right after the restart")

    for page in (alice, bob):
        expect_online(page, timeout=RECONNECT_TIMEOUT_MS)
        expect(page.locator("#banner")).to_be_hidden()
    for text in ("written during the outage", "posted right after the restart"):
        expect(message(bob, text)).to_have_count(1)
        expect(message(alice, text)).to_have_count(1)
    expect(pending).to_have_count(0)

    # Exactly once on the server too, and the pages' logs are gap- and duplicate-free.
    texts = stored_texts(web, headers)
    assert texts.count("written during the outage") == 1
    assert texts.count("posted right after the restart") == 1
    send(bob, "and we are back")
    expect(message(alice, "and we are back")).to_have_count(1)
    for page in (alice, bob):
        seqs = rendered_seqs(page)
        assert_contiguous(seqs)
        assert seqs[-1] == len(texts) + 1


def test_lost_ack_is_retried_with_the_same_client_id_and_shown_once(web: Web) -> None:
    bob = web.signed_in("bob")
    web.register_api("alice")
    ctx = web.context()
    sends: list[str] = []
    drop = {"armed": False}

    def route(ws: WebSocketRoute) -> None:
        server = ws.connect_to_server()

        def from_page(msg: str | bytes) -> None:
            frame = json.loads(msg)
            if frame.get("type") == "send":
                sends.append(frame["client_id"])
            server.send(msg)

        def from_server(msg: str | bytes) -> None:
            frame = json.loads(msg)
            if drop["armed"] and frame.get("type") in ("ack", "message"):
                # The server stored the message, but the page never hears about it: the
                # connection dies right after the ack.
                if frame["type"] == "ack":
                    drop["armed"] = False
                    ws.close(code=4000, reason="test: connection lost before the ack")
                    server.close()
                return
            ws.send(msg)

        ws.on_message(from_page)
        server.on_message(from_server)

    ctx.route_web_socket(re.compile(r"/chat$"), route)
    assert ctx.request.post("/api/login", data={"username": "alice", "password": PASSWORD}).ok
    alice = ctx.new_page()
    alice.goto("/")
    expect_online(alice)
    expect(alice.locator('#online-list li[data-user="bob"]')).to_have_count(1)

    drop["armed"] = True
    compose(alice).fill("stored but never acked")
    compose(alice).press("Enter")
    expect(message(bob, "stored but never acked")).to_have_count(1)  # it was stored

    # Alice's page reconnects by itself, resends with the same client_id, shows it once.
    expect(message(alice, "stored but never acked")).to_have_count(1)
    expect(alice.locator("#pending li")).to_have_count(0)
    expect_online(alice)
    assert len(sends) >= 2, sends
    assert len(set(sends)) == 1, sends
    texts = stored_texts(web, bearer(web, "bob"))
    assert texts.count("stored but never acked") == 1
    send(alice, "next one")
    expect(message(bob, "next one")).to_have_count(1)
    expect(message(bob, "stored but never acked")).to_have_count(1)
    assert_contiguous(rendered_seqs(alice))


def test_scrolling_up_loads_older_history_without_jumping(
    fast_server: ServerProcess, web_on: Any
) -> None:
    web = web_on(fast_server)
    _, tok_a = web.register_api("alice")
    _, tok_b = web.register_api("bob")
    heads = [{"Authorization": f"Bearer {t}"} for t in (tok_a, tok_b)]
    for i in range(1, 121):
        post(web, heads[(i // 4) % 2], f"message number {i}")

    page = web.signed_in("carol")
    log = page.locator("#log")
    items = page.locator("#messages li.msg")
    expect(items).to_have_count(50)
    assert rendered_seqs(page) == list(range(71, 121))
    expect(page.locator("#messages li.msg").last).to_be_in_viewport()

    # Scroll to the top: 50 more arrive above; the message that was on top stays put.
    before = log.evaluate(
        """log => { log.scrollTop = 0;
             const li = document.querySelector('#messages li[data-seq="71"]');
             return li.getBoundingClientRect().top; }"""
    )
    expect(items).to_have_count(100)
    after = page.locator('#messages li[data-seq="71"]').evaluate(
        "li => li.getBoundingClientRect().top"
    )
    assert abs(after - before) <= 2, (before, after)
    assert log.evaluate("log => log.scrollTop") > 0
    assert rendered_seqs(page) == list(range(21, 121))

    log.evaluate("log => { log.scrollTop = 0; }")
    expect(items).to_have_count(120)
    expect(page.locator("#log-top")).to_contain_text("beginning of this room")
    assert rendered_seqs(page) == list(range(1, 121))
    # Groups: 4 in a row by the same sender share one header.
    expect(page.locator('#messages li.msg.group-start[data-seq="4"]')).to_have_count(1)
    expect(page.locator('#messages li.msg.group-start[data-seq="5"]')).to_have_count(0)

    # Live messages still arrive at the bottom after all that.
    post(web, heads[0], "fresh one")
    expect(message(page, "fresh one")).to_have_count(1)
    assert rendered_seqs(page)[-1] == 121


def test_typing_and_presence(web: Web) -> None:
    alice = web.signed_in("alice")
    bob = web.signed_in("bob")
    expect(alice.locator('#online-list li[data-user="bob"]')).to_have_count(1)
    expect(alice.locator("#room-sub")).to_contain_text("2 online")

    typing_sent: list[float] = []

    def on_ws(ws: Any) -> None:
        ws.on(
            "framesent",
            lambda payload: (
                typing_sent.append(time.monotonic()) if '"typing"' in str(payload) else None
            ),
        )

    # Watch the frames of a fresh page of bob's: many keystrokes, few typing events.
    bob.on("websocket", on_ws)
    bob.reload()
    expect_online(bob)
    started = time.monotonic()
    compose(bob).press_sequentially("hello there, how are you doing today?")
    expect(alice.locator("#typing")).to_have_text("bob is typing…")
    elapsed = time.monotonic() - started
    assert 1 <= len(typing_sent) <= 1 + int(elapsed // 3), (len(typing_sent), elapsed)
    # Without a new typing event it goes away by itself (after about 5 s).
    expect(alice.locator("#typing")).to_have_text("", timeout=15_000)
    compose(bob).press_sequentially(" really")
    expect(alice.locator("#typing")).to_have_text("bob is typing…")
    compose(bob).press("Enter")
    expect(message(alice, "hello there, how are you doing today? really")).to_have_count(1)
    expect(alice.locator("#typing")).to_have_text("")

    # Presence: carol arrives, then leaves.
    carol = web.signed_in("carol")
    expect(alice.locator('#online-list li[data-user="carol"]')).to_have_count(1)
    expect(alice.locator("#room-sub")).to_contain_text("3 online")
    carol.context.close()
    expect(alice.locator('#online-list li[data-user="carol"]')).to_have_count(0)
    expect(alice.locator("#room-sub")).to_contain_text("2 online")


def test_phone_sized_viewport(web: Web) -> None:
    alice = web.signed_in("alice")
    bob = web.signed_in("bob", viewport=PHONE, is_mobile=True, has_touch=True)
    assert bob.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]

    # The room list is a drawer behind the menu button.
    rooms = bob.locator("#room-list")
    expect(rooms).to_be_hidden()
    menu = bob.get_by_role("button", name="Open room list")
    expect(menu).to_be_visible()
    menu.tap()
    expect(rooms).to_be_visible()
    expect(menu).to_have_attribute("aria-expanded", "true")
    bob.locator('#room-list button[data-room="general"]').tap()
    expect(rooms).to_be_hidden()

    # Chat works with the Send button, and the composer stays on screen.
    send(alice, "can you read this on your phone?")
    expect(message(bob, "can you read this on your phone?")).to_be_in_viewport()
    compose(bob).fill("yes, loud and clear")
    bob.get_by_role("button", name="Send").tap()
    expect(message(alice, "yes, loud and clear")).to_have_count(1)
    expect(compose(bob)).to_be_in_viewport()
    expect(bob.get_by_role("button", name="Send")).to_be_in_viewport()

    # People panel as an overlay.
    bob.locator("#members-btn").tap()
    expect(bob.locator('#online-list li[data-user="alice"]')).to_be_in_viewport()
    bob.get_by_role("button", name="Close people list").tap()
    expect(bob.locator("#members-panel")).to_be_hidden()
    assert bob.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]


def test_offline_state_and_messages_queued_while_offline(web: Web) -> None:
    alice = web.signed_in("alice")
    bob = web.signed_in("bob")
    alice.context.set_offline(True)
    expect(alice.locator("#conn")).to_have_attribute("data-state", "offline")
    expect(alice.locator("#conn-text")).to_have_text("Offline")
    expect(alice.locator("#banner")).to_contain_text("You are offline")
    compose(alice).fill("queued while offline")
    compose(alice).press("Enter")
    expect(alice.locator("#pending li")).to_contain_text("Waiting for connection")
    alice.context.set_offline(False)
    expect_online(alice)
    expect(message(bob, "queued while offline")).to_have_count(1)
    expect(message(alice, "queued while offline")).to_have_count(1)
    expect(alice.locator("#pending li")).to_have_count(0)


def slowed_down_burst(web: Web, label: str) -> tuple[Page, Page, list[str]]:
    """alice sends five messages at once to a rate-limited server; bob watches."""
    alice = web.signed_in("alice")
    bob = web.signed_in("bob")
    box = compose(alice)
    texts = [f"{label} {i}" for i in range(1, 6)]
    for text in texts:
        box.fill(text)
        box.press("Enter")
    expect(alice.locator("#pending li.is-slow").first).to_contain_text("slowed down")
    return alice, bob, texts


def test_rate_limited_messages_wait_and_go_out_once_in_order(
    server_factory: Any, web_on: Any
) -> None:
    alice, bob, texts = slowed_down_burst(web_on(server_factory(["--rate-limit", "3"])), "burst")
    box = compose(alice)
    for text in texts:
        expect(message(bob, text)).to_have_count(1, timeout=30_000)
    expect(alice.locator("#pending li")).to_have_count(0)
    shown = bob.locator("#messages li.msg .msg-text").all_text_contents()
    assert [t for t in shown if t.startswith("burst")] == texts

    # Too long: refused in the page before it is sent, with a counter.
    box.fill("x" * 4001)
    expect(alice.locator("#composer-count")).to_have_text("1 characters too long")
    box.press("Enter")
    expect(alice.locator("#pending li")).to_have_count(0)
    expect(box).to_have_value("x" * 4001)


def test_unsent_messages_survive_a_reload_and_go_out_once(server_factory: Any, web_on: Any) -> None:
    """A burst the server slowed down is still in the outbox when the page reloads: the
    reloaded page sends what was left, with the same client_ids, and nothing twice."""
    web = web_on(server_factory(["--rate-limit", "2"]))
    alice, bob, texts = slowed_down_burst(web, "before reload")
    waiting = alice.locator("#pending li").count()
    assert waiting >= 2, waiting  # at most 2 of the 5 went out at once
    alice.reload()
    expect_online(alice)
    for text in texts:
        expect(message(bob, text)).to_have_count(1, timeout=40_000)
        expect(message(alice, text)).to_have_count(1, timeout=40_000)
    expect(alice.locator("#pending li")).to_have_count(0)
    shown = bob.locator("#messages li.msg .msg-text").all_text_contents()
    assert [t for t in shown if t.startswith("before reload")] == texts
    # What went out is no longer saved: another reload brings nothing back to send.
    alice.reload()
    expect_online(alice)
    expect(alice.locator("#pending li")).to_have_count(0)
    expect(message(alice, texts[0])).to_have_count(1)
