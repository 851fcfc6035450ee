"""Who a request comes from, for per-address limits: the peer, or behind trusted proxies
the nearest X-Forwarded-For entry they vouch for. Pure functions over strings.

One allowance per IPv4 address and per IPv6 /64: a subscriber usually holds a whole /64,
so keying on single IPv6 addresses would hand out a fresh allowance per request.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network

__all__ = [
    "Network",
    "client_key",
    "forwarded_https",
    "parse_address",
    "parse_networks",
    "peer_trusted",
]

Network = IPv4Network | IPv6Network
Address = IPv4Address | IPv6Address


def parse_networks(specs: Iterable[str]) -> tuple[Network, ...]:
    """`--trusted-proxy` values: an address or a CIDR range. ValueError for anything else."""
    return tuple(ip_network(spec.strip(), strict=False) for spec in specs)


def parse_address(text: str) -> Address | None:
    """An address as peers and proxies write it: bare, with a port (`1.2.3.4:80`,
    `[2001:db8::1]:80`) or in brackets. None if it is not an address."""
    text = text.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:  # IPv4 with a port; bare IPv6 has two colons or more
        text = text.partition(":")[0]
    try:
        addr = ip_address(text)
    except ValueError:
        return None
    if isinstance(addr, IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def _key(addr: Address) -> str:
    if isinstance(addr, IPv6Address):
        return str(ip_network(f"{addr}/64", strict=False))
    return str(addr)


def _trusted(addr: Address, trusted: Sequence[Network]) -> bool:
    return any(addr in network for network in trusted)


def client_key(peer: str | None, forwarded_for: Iterable[str], trusted: Sequence[Network]) -> str:
    """The key to count a request against. X-Forwarded-For is read only when the peer is a
    trusted proxy, and only from the right: entries further left than the first one no
    trusted proxy wrote are the client's own words. An entry that is not an address counts
    as the proxy that passed it on."""
    peer_addr = parse_address(peer or "")
    if peer_addr is None:
        return peer or "unknown"  # a Unix socket, say: one key for all of it
    if not _trusted(peer_addr, trusted):
        return _key(peer_addr)
    nearest = peer_addr
    hops = [hop for value in forwarded_for for hop in value.split(",") if hop.strip()]
    for hop in reversed(hops):
        addr = parse_address(hop)
        if addr is None:
            break
        nearest = addr
        if not _trusted(addr, trusted):
            break
    return _key(nearest)


def peer_trusted(peer: str | None, trusted: Sequence[Network]) -> bool:
    """The peer is one of the `--trusted-proxy` addresses."""
    addr = parse_address(peer or "")
    return addr is not None and _trusted(addr, trusted)


def forwarded_https(peer: str | None, proto: Sequence[str], trusted: Sequence[Network]) -> bool:
    """A trusted proxy says its client came over https: the last X-Forwarded-Proto entry,
    the one our peer wrote, is `https`. Anyone else's word for it is ignored."""
    if not proto or not peer_trusted(peer, trusted):
        return False
    return proto[-1].rsplit(",", 1)[-1].strip().lower() == "https"
