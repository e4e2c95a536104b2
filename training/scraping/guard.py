"""The private-network guard: a scrape never reaches loopback, private, link-local or metadata addresses.

Every request the scraper makes (pages, robots.txt, images, each redirect hop) first resolves its
host here and is refused when any address it resolves to is not a public one, unless the host is
listed in settings.IMAGINEER_SCRAPE_ALLOWED_HOSTS. "Any", not "the first": a name that resolves to
one public and one private address could otherwise be steered to the private one.

DNS rebinding: the caller connects to one of the addresses returned by `resolve_public` (the URL
is rewritten to the IP, the Host header and TLS SNI keep the name; see client.py), so a second DNS
answer given between the check and the connection is never used.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass

from django.conf import settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Cloud metadata services, named on their own so an operator reading a refusal knows what it was.
METADATA_ADDRESSES = frozenset({ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")})
# Carrier-grade NAT: not "private" to Python's ipaddress, still inside someone's network.
SHARED_ADDRESS_SPACE = ipaddress.ip_network("100.64.0.0/10")
UNIQUE_LOCAL_V6 = ipaddress.ip_network("fd00::/8")


class BlockedAddress(Exception):
    """The host resolves to an address the scraper must not reach."""

    def __init__(self, host: str, address: str, kind: str):
        super().__init__(
            f"{host} resolves to {address}, a {kind} address; only public addresses are scraped "
            "(list the host in IMAGINEER_SCRAPE_ALLOWED_HOSTS to allow it)."
        )
        self.host, self.address, self.kind = host, address, kind


class UnresolvableHost(Exception):
    """DNS gave no address for the host."""


def classify_address(address: IPAddress) -> str | None:
    """The kind of non-public address this is ("loopback", "private", ...), or None when it is public."""
    if isinstance(address, ipaddress.IPv6Address):
        # ::ffff:10.0.0.1 and 2002:0a00:0001:: reach the IPv4 address they embed.
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is not None:
            return classify_address(embedded)
    if address in METADATA_ADDRESSES:
        return "metadata"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_unspecified:
        return "unspecified"
    if address.is_multicast:
        return "multicast"
    if address in SHARED_ADDRESS_SPACE:
        return "shared (carrier-grade NAT)"
    if address.is_reserved:
        return "reserved"
    if isinstance(address, ipaddress.IPv6Address) and address in UNIQUE_LOCAL_V6:
        return "private"
    if address.is_private:
        return "private"
    if not address.is_global:
        return "non-public"  # documentation and benchmarking ranges, 6to4 relays, ...
    return None


def is_allowed_host(host: str) -> bool:
    """Whether the operator lets this host (a name or an IP literal) through although it is not public."""
    wanted = host.strip("[]").lower().rstrip(".")
    return any(
        wanted == entry.strip().strip("[]").lower().rstrip(".") for entry in settings.IMAGINEER_SCRAPE_ALLOWED_HOSTS
    )


@dataclass(frozen=True)
class ResolvedHost:
    host: str
    addresses: tuple[str, ...]  # each one checked; connect to these, never resolve again


def resolve_public(host: str, port: int) -> ResolvedHost:
    """Resolve `host` and check every address; BlockedAddress when one is not public and the host not allowed."""
    bare = host.strip("[]")
    try:
        infos = socket.getaddrinfo(bare, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnresolvableHost(f"{bare} could not be resolved.") from exc
    # Scope ids (fe80::1%eth0) are stripped: the address itself is what is classified.
    addresses = tuple(dict.fromkeys(info[4][0].split("%", 1)[0] for info in infos))
    if not addresses:
        raise UnresolvableHost(f"{bare} could not be resolved.")
    if not is_allowed_host(bare):
        for text in addresses:
            kind = classify_address(ipaddress.ip_address(text))
            if kind is not None:
                raise BlockedAddress(bare, text, kind)
    return ResolvedHost(host=bare, addresses=addresses)
