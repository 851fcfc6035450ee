"""Build the aiohttp application and run it: HTTP, WebSocket and static files on one port."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import ssl
import time
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Final

from aiohttp import WSCloseCode, web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from parley.broker import open_broker
from parley.core import KeepalivePolicy
from parley.presence import open_presence
from parley.server import api, metrics
from parley.server.accounts import Accounts
from parley.server.chat import ChatService
from parley.server.config import Config
from parley.server.files import Downloads, Uploads, purge_unused
from parley.server.front import FrontDoor
from parley.server.headers import SERVER, harden
from parley.server.httpconn import ConnectionRules, ParleySite, answered
from parley.server.state import ACCOUNTS, CONFIG, DOWNLOADS, NODE, UPLOADS
from parley.server.static import StaticFiles
from parley.server.upstream import override_fits
from parley.server.ws import chat_socket
from parley.store import Registration, StoreUnavailable, open_store
from parley.store.roles import CLI_ACTOR

__all__ = ["build_app", "serve"]

log = logging.getLogger("parley")


async def _on_prepare(request: web.Request, response: web.StreamResponse) -> None:
    if response.status == 101:  # a WebSocket upgrade
        # a 101 has no document to protect, and each socket would keep more headers
        response.headers["Server"] = SERVER
        return
    harden(request, response.headers, request.app[CONFIG].trusted_proxies)
    answered(request)


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


async def metrics_page(request: web.Request) -> web.Response:
    node = request.app[NODE]
    metrics.SEND_QUEUE_BYTES.set(node.registry.queued_bytes())
    stats = node.store_stats()
    metrics.COMMITS.set(stats.commits)
    metrics.COMMITTED_WRITES.set(stats.committed_writes)
    return web.Response(
        body=generate_latest(metrics.REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST}
    )


def build_app(config: Config) -> web.Application:
    if config.stock_websocket or not override_fits():  # override_fits logs why not
        log.info("/chat runs on aiohttp's stock socket path")
        config = replace(config, stock_websocket=True)
    store = open_store(
        config.db, config.data, group_commit=config.group_commit, search=config.search
    )
    node = ChatService(
        store,
        open_broker(config.redis),
        rate_limit=config.rate_limit,
        action_limits=config.action_limits,
        presence_grace=config.presence_grace,
        max_guests_per_address=config.max_guests_per_address,
        presence=open_presence(config.redis),
    )
    # No middleware: every middleware is one more coroutine frame held by each open
    # WebSocket for its whole life. The API maps its errors to JSON per route instead.
    app = web.Application(client_max_size=1024 * 1024)
    app[CONFIG] = config
    app[NODE] = node
    app[ACCOUNTS] = Accounts(
        store,
        login_limit=config.login_limit,
        registrations_per_hour=config.register_limit,
        hash_workers=config.hash_workers,
        hash_profile=config.hash_profile,
        hash_queue=config.hash_queue,
    )
    app[UPLOADS] = Uploads(
        store, Path(config.data), config.max_upload, config.upload_quota, config.header_timeout
    )
    app[DOWNLOADS] = Downloads(store)
    static = StaticFiles()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics_page)
    app.router.add_get("/chat", chat_socket)
    api.add_routes(app)
    app.router.add_get("/", static.handle)
    app.router.add_get("/{name:[A-Za-z0-9_.-]+}", static.handle)
    app.on_response_prepare.append(_on_prepare)
    return app


def _ssl_context(config: Config) -> ssl.SSLContext | None:
    if not config.tls:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(config.tls_cert or "", config.tls_key or "")
    return ctx


async def _housekeeping(app: web.Application, every: float = 60.0) -> None:
    """Forget idle rate-limit state so memory follows active users, not all users ever seen,
    delete expired sessions so the token table follows live sessions, not every sign-in,
    and remove the uploads no message carries once they are a day old."""
    while True:
        await asyncio.sleep(every)
        now = time.monotonic()
        app[NODE].prune(now)
        app[ACCOUNTS].prune(now)
        await purge_unused(app[NODE].store, time.time())
        await app[UPLOADS].sweep(time.time())
        try:
            purged = await app[ACCOUNTS].purge_expired(time.time())
        except StoreUnavailable:
            continue  # the next round tries again
        if purged:
            log.info("purged %d expired sessions", purged)


GC_THRESHOLDS: Final = (50_000, 5, 100)


def _tune_gc() -> None:
    """Make the cyclic GC rarer and smaller; reference counting frees almost everything.

    A full collection walks every tracked object, and an idle socket holds some forty:
    with the default thresholds, fifteen collections of up to 0.8 s stopped the loop while
    19,000 sockets connected, and the ramp took 14 s; with these, none over 0.14 s and
    6.5 s (`make bench`, idle connections; (50000, 20, 100) left one young-generation
    collection of 0.45 s). A larger first threshold lets a message's short-lived objects
    die before any collection can promote them, a small second one keeps the middle
    generation small, and `freeze` moves what start-up built (the modules, the app) out of
    every future collection.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


async def serve(config: Config) -> None:
    """Run until SIGTERM/SIGINT, then drain: stop accepting, finish acks, close with 1001."""
    app = build_app(config)
    node = app[NODE]
    await node.start()
    if config.registration is not None:  # --registration: stored, so every node follows
        await node.admin.set_registration(CLI_ACTOR, Registration(config.registration))
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=5)
    await runner.setup()
    stock = app[CONFIG].stock_websocket  # also when this aiohttp does not fit our own path
    site = ParleySite(
        runner,
        config.host,
        config.port,
        ConnectionRules(config),
        None if stock else partial(FrontDoor, app),
        ssl_context=_ssl_context(config),
        backlog=4096,
    )
    await site.start()
    _tune_gc()
    scheme = "https" if config.tls else "http"
    log.info("parley serving on %s://%s:%d", scheme, config.host, config.port)

    housekeeping = asyncio.create_task(_housekeeping(app))
    audit_follower = asyncio.create_task(node.follow_audit())
    keepalive = asyncio.create_task(
        node.keep_alive(KeepalivePolicy(config.ping_interval, config.ping_timeout))
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()

    log.info("draining")
    housekeeping.cancel()
    audit_follower.cancel()
    keepalive.cancel()
    await site.stop()
    await node.drain(WSCloseCode.GOING_AWAY)
    await runner.cleanup()
    await node.close()
    log.info("stopped")
