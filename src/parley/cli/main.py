"""`parley serve`: run the chat server."""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
from collections.abc import Sequence

from parley.cli import admin, backup, settings, transfer
from parley.core import parse_networks
from parley.server import logs
from parley.server.app import serve
from parley.server.config import Config
from parley.store import NewerSchema, datalock

__all__ = ["main", "parser"]


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="parley", description="Parley: a WebSocket chat server.")
    sub = top.add_subparsers(dest="command", required=True)
    s = sub.add_parser(
        "serve",
        help="run the chat server",
        description="Serve HTTP, the WebSocket /chat and the browser client on one port. "
        "Ready when GET /healthz answers 200. SIGTERM drains and exits 0.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    s.add_argument("--host", default="127.0.0.1", help="address to listen on")
    s.add_argument("--port", type=int, default=8080, help="TCP port to listen on")
    s.add_argument("--data", default="./data", help="directory for the SQLite database")
    s.add_argument(
        "--guests",
        action="store_true",
        help="accept WebSockets without credentials as guest-XXXX (the tutorial page)",
    )
    s.add_argument(
        "--rate-limit",
        type=int,
        default=30,
        metavar="N",
        help="messages per user per 10 s (token bucket); 0 turns limiting off",
    )
    s.add_argument(
        "--action-limits",
        type=float,
        default=1.0,
        metavar="SCALE",
        help="scale of the per-user limits on joins, leaves, history, typing, room creation "
        "and invites (docs/protocol.md lists them; 2 = twice as generous); 0 turns them off",
    )
    s.add_argument(
        "--max-guests-per-address",
        type=int,
        default=2000,
        metavar="N",
        help="guest sockets (--guests) one client address may hold open; past it the "
        "handshake is answered 429; 0 turns it off",
    )
    s.add_argument(
        "--presence-grace",
        type=float,
        default=5.0,
        metavar="S",
        help="damp presence flapping: after a user is announced offline in a room, another "
        "departure within S seconds is held until then and dropped if the user comes back; "
        "0 turns it off",
    )
    s.add_argument(
        "--register-limit",
        type=int,
        default=20,
        metavar="N",
        help="new accounts per client address per hour (token bucket); 0 turns it off",
    )
    s.add_argument(
        "--login-limit",
        type=int,
        default=5,
        metavar="N",
        help="failed password checks (sign-in, password change) per name and client address "
        "per minute; per name 10*N, per address 4*N; 0 turns it off",
    )
    s.add_argument(
        "--hash-profile",
        choices=("rfc9106", "owasp"),
        default="rfc9106",
        help="argon2id parameters of new password hashes: rfc9106 (RFC 9106's low-memory "
        "profile: 3 passes over 64 MiB, 4 lanes) or owasp (OWASP's minimum: 2 passes over "
        "19 MiB, 1 lane; about a tenth of the CPU, for small machines); existing hashes "
        "verify either way",
    )
    s.add_argument(
        "--hash-workers",
        type=int,
        default=2,
        metavar="N",
        help="password hashes (argon2) computed at once",
    )
    s.add_argument(
        "--hash-queue",
        type=int,
        default=64,
        metavar="N",
        help="password hashes one client address may have waiting (the rest: 429); "
        "0 turns the bound off",
    )
    s.add_argument(
        "--trusted-proxy",
        action="append",
        default=[],
        metavar="ADDR",
        help="a reverse proxy's address or CIDR range (repeatable): requests from it are "
        "counted against the client address in its X-Forwarded-For, for the sign-in and "
        "sign-up limits",
    )
    s.add_argument("--tls-cert", metavar="FILE", help="PEM certificate chain: serve https/wss")
    s.add_argument("--tls-key", metavar="FILE", help="PEM private key for --tls-cert")
    s.add_argument(
        "--db",
        metavar="URL",
        help="database URL: postgresql://user@host:port/db (default: SQLite under --data)",
    )
    s.add_argument(
        "--redis", metavar="URL", help="redis://host:port/0 to fan out across several nodes"
    )
    s.add_argument(
        "--allow-origin",
        action="append",
        default=[],
        metavar="URL",
        help="another browser origin trusted to use accounts (repeatable)",
    )
    s.add_argument(
        "--ping-interval",
        type=float,
        default=20.0,
        metavar="S",
        help="ping a socket idle this long",
    )
    s.add_argument(
        "--ping-timeout",
        type=float,
        default=20.0,
        metavar="S",
        help="drop a socket whose pong has not come after this long",
    )
    s.add_argument(
        "--commit-mode",
        choices=("group", "single"),
        default="group",
        help="group: concurrent sends share one COMMIT; single: one transaction per message "
        "(for benchmarks)",
    )
    s.add_argument(
        "--search",
        choices=("on", "off"),
        default="on",
        help="off: messages are not indexed for full-text search (sends cost less; GET "
        "/api/search answers 503); on again, the index is rebuilt at start",
    )
    s.add_argument(
        "--stock-websocket",
        action="store_true",
        help="serve /chat on aiohttp's stock socket path, without Parley's override of its "
        "private frame queue (used anyway when the installed aiohttp is not the pinned one)",
    )
    s.add_argument(
        "--header-timeout",
        type=float,
        default=10.0,
        metavar="S",
        help="close a connection whose request head (and TLS handshake) has not arrived "
        "within S seconds of its first byte, or of the connect; 0 turns it off",
    )
    s.add_argument(
        "--keepalive-timeout",
        type=float,
        default=75.0,
        metavar="S",
        help="close an HTTP connection idle between requests for S seconds (WebSockets "
        "are kept by their pings instead); 0 turns it off",
    )
    s.add_argument(
        "--max-unauthenticated-per-address",
        type=int,
        default=128,
        metavar="N",
        help="HTTP connections (and guest sockets) per client address that have not signed "
        "in; past it an idle one is closed, or the new one answered 429; 0 turns it off",
    )
    s.add_argument(
        "--registration",
        choices=("open", "invite", "closed"),
        help="who may sign up: anyone, holders of an invite code, or nobody (accounts then "
        "come from `parley admin create-user`); stored, so it holds for every node and "
        "later starts; when not given, the stored mode holds (open at first)",
    )
    s.add_argument(
        "--max-upload",
        type=int,
        default=10 * 1024 * 1024,
        metavar="BYTES",
        help="the largest file POST /api/files takes (refused with 413 as soon as the "
        "upload passes it)",
    )
    s.add_argument(
        "--upload-quota",
        type=int,
        default=1024**3,
        metavar="BYTES",
        help="the bytes a user's stored uploads may add up to; 0 turns it off",
    )
    s.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    s.add_argument(
        "--log-format",
        default="text",
        choices=logs.LOG_FORMATS,
        help="json: one JSON object a line (ts, level, logger, message, request_id, fields)",
    )
    s.add_argument(
        "--config",
        metavar="FILE",
        default=argparse.SUPPRESS,
        help="a TOML file of settings, see below (env PARLEY_CONFIG)",
    )
    settings.settle(s)
    backup.add_parsers(sub)
    transfer.add_parsers(sub)
    admin.add_parsers(sub)
    return top


def _raise_open_file_limit() -> None:
    """Each socket is a file: take the hard limit so one process can hold ~19,000 clients."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _run(config: Config) -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency; stay runnable without it
        asyncio.run(serve(config))
    else:
        uvloop.run(serve(config))


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command != "serve":
        return int(args.run(args))
    try:
        args = args.settings.resolve(args)
    except settings.SettingsError as exc:
        print(f"parley: {exc}", file=sys.stderr)
        return 2
    logs.configure(args.log_level, args.log_format)
    if bool(args.tls_cert) != bool(args.tls_key):
        print("parley: --tls-cert and --tls-key go together", file=sys.stderr)
        return 2
    try:
        trusted_proxies = parse_networks(args.trusted_proxy)
    except ValueError as exc:
        print(f"parley: --trusted-proxy takes an address or a CIDR range: {exc}", file=sys.stderr)
        return 2
    if args.max_upload < 1 or args.upload_quota < 0:
        print("parley: --max-upload must be at least 1, --upload-quota at least 0", file=sys.stderr)
        return 2
    if args.hash_workers < 1:
        print("parley: --hash-workers must be at least 1", file=sys.stderr)
        return 2
    _raise_open_file_limit()
    config = Config(
        host=args.host,
        port=args.port,
        data=args.data,
        guests=args.guests,
        rate_limit=args.rate_limit,
        register_limit=args.register_limit,
        login_limit=args.login_limit,
        hash_workers=args.hash_workers,
        hash_profile=args.hash_profile,
        hash_queue=args.hash_queue,
        action_limits=args.action_limits,
        presence_grace=args.presence_grace,
        max_guests_per_address=args.max_guests_per_address,
        trusted_proxies=trusted_proxies,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        db=args.db,
        redis=args.redis,
        allow_origins=frozenset(o.rstrip("/").lower() for o in args.allow_origin),
        ping_interval=args.ping_interval,
        ping_timeout=args.ping_timeout,
        group_commit=args.commit_mode == "group",
        search=args.search == "on",
        stock_websocket=args.stock_websocket,
        header_timeout=args.header_timeout,
        keepalive_timeout=args.keepalive_timeout,
        max_unauthenticated_per_address=args.max_unauthenticated_per_address,
        registration=args.registration,
        max_upload=args.max_upload,
        upload_quota=args.upload_quota,
    )
    try:
        with datalock.shared(config.data):  # a restore waits for no server: it refuses
            _run(config)
    except (datalock.DataDirBusy, NewerSchema) as exc:
        print(f"parley: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
