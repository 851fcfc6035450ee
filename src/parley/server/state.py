"""Typed keys for what the aiohttp application carries."""

from __future__ import annotations

from aiohttp import web

from parley.server.accounts import Accounts
from parley.server.chat import ChatService
from parley.server.config import Config
from parley.server.files import Downloads, Uploads

__all__ = ["ACCOUNTS", "CONFIG", "DOWNLOADS", "NODE", "UPLOADS"]

ACCOUNTS = web.AppKey("accounts", Accounts)
CONFIG = web.AppKey("config", Config)
NODE = web.AppKey("node", ChatService)
UPLOADS = web.AppKey("uploads", Uploads)
DOWNLOADS = web.AppKey("downloads", Downloads)
