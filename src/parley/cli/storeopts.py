"""The --data DIR | --db URL pair the maintenance commands share with `serve`."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

__all__ = ["add_store_options", "fail", "is_postgres", "sqlite_path"]


def add_store_options(parser: argparse.ArgumentParser, *, db: bool = True) -> None:
    """--data (default: PARLEY_DATA, else ./data) and, when `db`, --db (default: PARLEY_DB)."""
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--data",
        default=os.environ.get("PARLEY_DATA") or "./data",
        metavar="DIR",
        help="the server's data directory (default: PARLEY_DATA, else ./data)",
    )
    if db:
        where.add_argument(
            "--db",
            default=os.environ.get("PARLEY_DB") or None,
            metavar="URL",
            help="the server's database URL, as serve's --db (default: PARLEY_DB)",
        )


def is_postgres(url: str | None) -> bool:
    return bool(url) and str(url).startswith(("postgres://", "postgresql://"))


def sqlite_path(args: argparse.Namespace) -> Path:
    """The SQLite database the command works on, as `open_store` finds it."""
    db: str | None = getattr(args, "db", None)
    if db and db.startswith("sqlite:///"):
        return Path(db.removeprefix("sqlite:///"))
    return Path(args.data) / "parley.db"


def fail(message: str) -> int:
    """Say what went wrong on standard error; the exit status of a failed command."""
    print(f"parley: {message}", file=sys.stderr)
    return 1
