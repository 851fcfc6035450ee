"""Per-address limit keys: the peer, or behind trusted proxies the client they vouch for."""

from __future__ import annotations

import pytest

from parley.core import client_key, parse_networks
from parley.core.addresses import forwarded_https, parse_address, peer_trusted

PROXIES = parse_networks(["127.0.0.1", "::1", "10.0.0.0/8"])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("203.0.113.7", "203.0.113.7"),
        (" 203.0.113.7 ", "203.0.113.7"),
        ("203.0.113.7:5555", "203.0.113.7"),
        ("2001:db8::1", "2001:db8::1"),
        ("[2001:db8::1]:4711", "2001:db8::1"),
        ("[2001:db8::1]", "2001:db8::1"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
    ],
)
def test_addresses_are_read_as_proxies_write_them(text: str, expected: str) -> None:
    assert str(parse_address(text)) == expected


@pytest.mark.parametrize("text", ["", "unknown", "example.com", "1.2.3", "_hidden"])
def test_what_is_not_an_address_is_none(text: str) -> None:
    assert parse_address(text) is None


def test_a_peer_that_is_no_proxy_is_the_client_whatever_it_claims() -> None:
    assert client_key("198.51.100.9", ["203.0.113.7"], PROXIES) == "198.51.100.9"


def test_behind_a_proxy_the_nearest_untrusted_entry_counts() -> None:
    # the client wrote 6.6.6.6 itself; our proxy appended the address it saw
    assert client_key("127.0.0.1", ["6.6.6.6, 203.0.113.7"], PROXIES) == "203.0.113.7"


def test_chains_of_trusted_proxies_and_several_headers() -> None:
    headers = ["6.6.6.6, 203.0.113.7", "10.1.2.3:8080"]  # an inner proxy added a second line
    assert client_key("::1", headers, PROXIES) == "203.0.113.7"


def test_ipv6_clients_share_one_allowance_per_slash_64() -> None:
    one = client_key("2001:db8:1:2::1", [], PROXIES)
    other = client_key("2001:db8:1:2:ffff::9", [], PROXIES)
    assert one == other == "2001:db8:1:2::/64"
    assert client_key("2001:db8:1:3::1", [], PROXIES) != one


def test_a_port_does_not_make_a_new_client() -> None:
    keys = {client_key("127.0.0.1", [f"203.0.113.7:{port}"], PROXIES) for port in (1, 2, 3)}
    assert keys == {"203.0.113.7"}


def test_garbage_in_the_header_counts_as_the_proxy() -> None:
    assert client_key("127.0.0.1", ["203.0.113.7, not-an-ip"], PROXIES) == "127.0.0.1"
    assert client_key("127.0.0.1", ["", " , "], PROXIES) == "127.0.0.1"


def test_only_trusted_hops_means_the_innermost_of_them() -> None:
    assert client_key("127.0.0.1", ["10.9.9.9"], PROXIES) == "10.9.9.9"


def test_a_peer_without_an_ip_address_is_one_key() -> None:
    assert client_key(None, ["203.0.113.7"], PROXIES) == "unknown"


@pytest.mark.parametrize("spec", ["localhost", "10.0.0.0/33", "1.2.3"])
def test_trusted_proxy_must_be_an_address_or_a_range(spec: str) -> None:
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6 network"):
        parse_networks([spec])


def test_only_a_trusted_proxy_can_say_the_client_used_https() -> None:
    proxy = parse_networks(["10.0.0.0/8"])
    assert forwarded_https("10.1.2.3", ["https"], proxy)
    assert forwarded_https("10.1.2.3:5555", ["HTTPS"], proxy)
    assert not forwarded_https("10.1.2.3", ["http"], proxy)
    assert not forwarded_https("10.1.2.3", [], proxy)
    assert not forwarded_https("192.0.2.1", ["https"], proxy)  # anyone can send the header
    assert not forwarded_https("10.1.2.3", ["https"], ())
    # the last entry is what our peer wrote; earlier ones are further from us
    assert forwarded_https("10.1.2.3", ["http, https"], proxy)
    assert not forwarded_https("10.1.2.3", ["https", "http"], proxy)


def test_peer_trusted() -> None:
    proxy = parse_networks(["127.0.0.1", "2001:db8::/32"])
    assert peer_trusted("127.0.0.1", proxy)
    assert peer_trusted("2001:db8::7", proxy)
    assert not peer_trusted("127.0.0.2", proxy)
    assert not peer_trusted(None, proxy)
    assert not peer_trusted("not an address", proxy)
