"""Typed keys for what the aiohttp application carries."""

from __future__ import annotations

from aiohttp import web

from parley.server.accounts import Accounts
from parley.server.chat import ChatService
from parley.server.config import Config

__all__ = ["ACCOUNTS", "CONFIG", "NODE"]

ACCOUNTS = web.AppKey("accounts", Accounts)
CONFIG = web.AppKey("config", Config)
NODE = web.AppKey("node", ChatService)
