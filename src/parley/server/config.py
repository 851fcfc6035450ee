"""Settings of one `parley serve` process."""

from __future__ import annotations

from dataclasses import dataclass, field

from parley.core import Network

__all__ = ["Config"]


@dataclass(frozen=True, slots=True)
class Config:
    host: str = "127.0.0.1"
    port: int = 8080
    data: str = "./data"
    guests: bool = False
    rate_limit: int = 30
    register_limit: int = 20  # new accounts per client address per hour; 0: no limit
    login_limit: int = 5  # failed password checks per name+address per minute; 0: no limit
    hash_workers: int = 2  # argon2 hashes at once
    hash_profile: str = "rfc9106"  # argon2id parameters of new hashes (server/accounts.py)
    hash_queue: int = 64  # hashes one address may have waiting; 0: no bound
    action_limits: float = 1.0  # scale of core.limits.ALLOWANCES (joins, history, ...); 0: off
    max_guests_per_address: int = 2000  # open guest sockets per client address; 0: no cap
    presence_grace: float = 5.0  # quiet period after an announced "offline" (core.presence)
    trusted_proxies: tuple[Network, ...] = ()
    tls_cert: str | None = None
    tls_key: str | None = None
    db: str | None = None
    redis: str | None = None
    allow_origins: frozenset[str] = field(default_factory=frozenset)
    ping_interval: float = 20.0
    ping_timeout: float = 20.0
    group_commit: bool = True
    search: bool = True  # keep the full-text search index (off: GET /api/search is 503)
    stock_websocket: bool = False  # /chat on aiohttp's own socket path (server/upstream.py)
    # HTTP connections (parley.core.connections); 0 turns each off
    header_timeout: float = 10.0  # the request head must be in by then
    keepalive_timeout: float = 75.0  # an idle kept-alive connection is closed after this
    max_unauthenticated_per_address: int = 128
    registration: str | None = None  # open | invite | closed, stored at start; None: as stored
    max_upload: int = 10 * 1024 * 1024  # bytes of one uploaded file
    upload_quota: int = 1024**3  # bytes of a user's stored uploads; 0: no quota

    @property
    def tls(self) -> bool:
        return bool(self.tls_cert and self.tls_key)
