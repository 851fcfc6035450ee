"""`parley admin ...`: accounts and roles from the command line, whether the server runs or
not (SQLite's WAL lets a second process write; PostgreSQL is shared anyway).

Each command opens the store as `serve` would (--data DIR or --db URL), does one thing in
one transaction, and exits 0; bad input (an unknown user, a taken name, banning or revoking
the last admin) is a message on standard error, exit code 1, and nothing changed. The
audit log names the command line as the actor "@cli". A running server closes the
sockets of an account banned or reset here within a second or so: every node follows the
audit log (server/chat.py `follow_audit`).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Any, Final

from argon2 import PasswordHasher

from parley.cli.storeopts import add_store_options
from parley.core import check_password, check_username
from parley.store import Refused, Store, StoreUnavailable, UnknownUser, open_store
from parley.store.roles import CLI_ACTOR

__all__ = ["add_parsers", "run_admin"]

OK: Final = 0
FAILED: Final = 1
Command = Callable[[Store, argparse.Namespace], Awaitable[str]]  # its line for standard output


class CommandFailed(Exception):
    """Bad input: the message for standard error; nothing was changed."""


def add_parsers(sub: Any) -> None:
    """Register `parley admin COMMAND NAME` with the top parser's subparsers."""
    admin = sub.add_parser(
        "admin",
        help="manage accounts and roles (the server may be running)",
        description="Manage accounts and roles, whether the server runs or not. "
        'The audit log names the command line as "@cli".',
    )
    commands = admin.add_subparsers(dest="admin_command", required=True)
    for name, text in _COMMANDS.items():
        command = commands.add_parser(name, help=text, description=text)
        command.add_argument("username", metavar="NAME")
        if name == "create-user":
            command.add_argument("--admin", action="store_true", help="make the account an admin")
        add_store_options(command)
    admin.set_defaults(run=run_admin)


def run_admin(args: argparse.Namespace) -> int:
    """Run one `parley admin` command; its exit code."""
    try:
        print(asyncio.run(_run(args)))
    except CommandFailed as exc:
        print(f"parley admin: {exc}", file=sys.stderr)
        return FAILED
    except StoreUnavailable as exc:
        print(f"parley admin: the database is unavailable: {exc}", file=sys.stderr)
        return FAILED
    return OK


async def _run(args: argparse.Namespace) -> str:
    store = open_store(args.db, args.data)
    await store.open()
    try:
        return await _ACTIONS[args.admin_command](store, args)
    except UnknownUser:
        raise CommandFailed(f"no user {args.username!r}") from None
    except Refused as exc:
        raise CommandFailed(str(exc)) from None
    finally:
        await store.close()


def _password() -> str:
    """The password: one line of standard input."""
    password = sys.stdin.readline().removesuffix("\n").removesuffix("\r")
    reason = check_password(password)
    if reason:
        raise CommandFailed(reason)
    return password


async def _create_user(store: Store, args: argparse.Namespace) -> str:
    name = args.username
    reason = check_username(name)
    if reason:
        raise CommandFailed(reason)
    password_hash = PasswordHasher().hash(_password())
    if not await store.create_user(name, password_hash, admin=args.admin):
        raise CommandFailed(f"the name {name!r} is taken")
    user = await store.find_user(name)
    role = " (admin)" if user is not None and user.admin else ""
    return f"created {name}{role}"


async def _reset_password(store: Store, args: argparse.Namespace) -> str:
    user = await store.find_user(args.username)
    if user is None:
        raise UnknownUser(args.username)
    password_hash = PasswordHasher().hash(_password())
    await store.set_password(user.username, password_hash, None, actor=CLI_ACTOR)
    return f"new password for {user.username}; every session of the account ended"


def _switch(flag: str, on: bool) -> Command:
    """grant / revoke (`flag` "admin"), ban / unban ("banned")."""
    state = {"admin": "an admin", "banned": "banned"}[flag]

    async def command(store: Store, args: argparse.Namespace) -> str:
        change = store.set_admin if flag == "admin" else store.set_banned
        changed = await change(CLI_ACTOR, args.username, on)
        said = state if on else f"not {state}"
        return f"{args.username} is {said}" + ("" if changed else " already")

    return command


_COMMANDS: Final = {
    "create-user": "create an account; the password is read from standard input (one line)",
    "reset-password": "set a new password (standard input, one line); every session ends",
    "grant": "make an account an admin",
    "revoke": "take an account's admin role back (never the last admin's)",
    "ban": "ban an account: its sessions end, it cannot sign in (an admin: revoke first)",
    "unban": "let a banned account sign in again",
}
_ACTIONS: Final[dict[str, Command]] = {
    "create-user": _create_user,
    "reset-password": _reset_password,
    "grant": _switch("admin", True),
    "revoke": _switch("admin", False),
    "ban": _switch("banned", True),
    "unban": _switch("banned", False),
}
