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
    action_limits: float = 1.0  # scale of core.limits.ALLOWANCES (joins, history, ...); 0: off
    presence_grace: float = 5.0  # seconds "offline" waits for the user to come back; 0: none
    trusted_proxies: tuple[Network, ...] = ()
    tls_cert: str | None = None
    tls_key: str | None = None
    db: str | None = None
    redis: str | None = None
    allow_origins: frozenset[str] = field(default_factory=frozenset)
    ping_interval: float = 20.0
    ping_timeout: float = 20.0
    group_commit: bool = True

    @property
    def tls(self) -> bool:
        return bool(self.tls_cert and self.tls_key)
