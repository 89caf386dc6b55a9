"""Where the broker may send webhooks: public addresses only (no server-side request forgery).

A webhook URL is chosen by a developer, so without a check the broker would POST wherever it is
told: the cloud metadata service (``169.254.169.254``), Redis on ``127.0.0.1:6379``, an admin panel
on ``10.0.0.5``. And the delivery status shown in the developer console would tell the developer
whether an internal host and port answered. So:

* **At save time** (developer console, developer and platform APIs: ``broker.apps.registry``) a URL
  whose host is a literal address in a refused range, or a known metadata host name, is refused.
* **At every delivery attempt** the host name is resolved again and *every* address it resolves to
  must be allowed; the connection then goes to the exact address that was checked (the pool is
  opened on the IP; the ``Host`` header, TLS SNI and certificate check keep the name). A DNS answer
  that changes between the check and the connection (DNS rebinding) cannot redirect the request,
  because nothing is resolved a second time. Redirects are never followed.
* **One answer for every refusal.** A refused range, a metadata name and a name that does not
  resolve all give :data:`REFUSED` ("destination not allowed"), recorded as the attempt's error,
  so the console cannot be used to map which internal names exist.

Refused: loopback, private (RFC 1918, ``fc00::/7``), link-local (``169.254/16``, ``fe80::/10``),
multicast, reserved, unspecified, "this network" ``0/8``, CGNAT ``100.64/10``, benchmarking
``198.18/15``, documentation ranges, IETF protocol assignments, discard-only and site-local IPv6,
Teredo, and IPv6 forms that embed an IPv4 address (IPv4-mapped, IPv4-compatible, SIIT, 6to4,
NAT64) when the embedded address is refused. ``ipaddress``'s properties are used *and* the explicit
lists below, so the result does not depend on the Python version's notion of "private".

``BROKER_WEBHOOK_ALLOW_PRIVATE=true`` (development only; ``broker demo`` turns it on because its
example apps listen on loopback) lets loopback and private addresses (and ``localhost``) through.
Link-local, metadata and the other ranges stay refused even then.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter

REFUSED = "destination not allowed"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Cloud metadata services by name (their addresses are link-local and refused anyway).
METADATA_HOSTS = frozenset(
    {
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "metadata.azure.com",
        "metadata.internal",
        "instance-data",
        "instance-data.ec2.internal",
        "metadata.tencentyun.com",
        "metadata.oraclecloud.com",
        "100-100-100-200.metadata",
    }
)

_nets = ipaddress.ip_network

# Allowed only with BROKER_WEBHOOK_ALLOW_PRIVATE (development: the demo's apps are on loopback).
DEVELOPMENT_NETWORKS = tuple(
    _nets(n) for n in ("127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "::1/128", "fc00::/7")
)

# Always refused (besides whatever ipaddress calls private, reserved, multicast, ...).
REFUSED_NETWORKS = tuple(
    _nets(n)
    for n in (
        "0.0.0.0/8",  # "this network"
        "100.64.0.0/10",  # carrier-grade NAT (RFC 6598)
        "169.254.0.0/16",  # link-local, cloud metadata
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",  # documentation (TEST-NET-1)
        "192.88.99.0/24",  # 6to4 relay anycast
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",  # documentation (TEST-NET-2)
        "203.0.113.0/24",  # documentation (TEST-NET-3)
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, and the broadcast address
        "::/128",  # unspecified
        "::/96",  # IPv4-compatible (deprecated)
        "::ffff:0:0/96",  # IPv4-mapped (checked by its IPv4 address first)
        "::ffff:0:0:0/96",  # IPv4-translated (SIIT)
        "64:ff9b:1::/48",  # local-use NAT64
        "100::/64",  # discard-only
        "2001::/23",  # IETF protocol assignments (Teredo, ORCHID, ...)
        "2001:db8::/32",  # documentation
        "3fff::/20",  # documentation (RFC 9637)
        "5f00::/16",  # segment routing SIDs
        "fc00::/7",  # unique local
        "fe80::/10",  # link-local
        "fec0::/10",  # site-local (deprecated)
        "ff00::/8",  # multicast
    )
)

_NAT64 = _nets("64:ff9b::/96")
_COMPATIBLE = _nets("::/96")
_TRANSLATED = _nets("::ffff:0:0:0/96")


class DestinationRefused(requests.RequestException):
    """The webhook destination is not allowed (or does not resolve); always :data:`REFUSED`."""

    def __init__(self) -> None:
        super().__init__(REFUSED)


def _embedded_ipv4(addr: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (6to4, NAT64, IPv4-compatible, SIIT), if any."""
    if addr.sixtofour is not None:
        return addr.sixtofour
    if addr in _NAT64 or addr in _TRANSLATED or (addr in _COMPATIBLE and int(addr) > 1):
        return ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
    teredo = addr.teredo
    return teredo[1] if teredo else None


def address_refused(addr: IPAddress, *, allow_private: bool = False) -> bool:
    """True when the broker must not connect to ``addr``."""
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return address_refused(addr.ipv4_mapped, allow_private=allow_private)
        if addr.scope_id:
            return True  # a zone index only makes sense for link-local and site addresses
        if addr in _NAT64:
            # DNS64 on an IPv6-only host: the gateway reaches exactly the embedded IPv4 address.
            return address_refused(ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF))
        embedded = _embedded_ipv4(addr)
        if embedded is not None and address_refused(embedded):
            return True
    if allow_private and any(addr in net for net in DEVELOPMENT_NETWORKS):
        return False
    if any(addr in net for net in REFUSED_NETWORKS):
        return True
    return bool(
        addr.is_loopback
        or addr.is_private
        or addr.is_link_local
        or addr.is_multicast
        or addr.is_reserved
        or addr.is_unspecified
        or (isinstance(addr, ipaddress.IPv6Address) and addr.is_site_local)
        or not addr.is_global
    )


def _normal_name(host: str) -> str:
    return host.strip().rstrip(".").lower()


def name_refused(host: str, *, allow_private: bool = False) -> bool:
    """A host *name* refused whatever it resolves to: metadata services, and ``localhost`` unless
    private destinations are allowed (RFC 6761: it is always loopback)."""
    name = _normal_name(host)
    if not name or name in METADATA_HOSTS:
        return True
    is_localhost = name == "localhost" or name.endswith(".localhost")
    return is_localhost and not allow_private


def literal_address(host: str) -> IPAddress | None:
    """``host`` as an address if it is one in any form the resolver accepts without DNS
    (``127.1``, ``0x7f000001``, ``2130706433``, ``[::1]``...); None for a name."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, flags=socket.AI_NUMERICHOST)
    except (socket.gaierror, UnicodeError, ValueError):
        return None
    return ipaddress.ip_address(infos[0][4][0]) if infos else None


def url_refused(url: str, *, allow_private: bool = False) -> bool:
    """Save-time check of a webhook URL, without DNS: a literal address in a refused range or a
    refused host name (the same rule as at delivery, which also resolves names)."""
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return True
    if not host:
        return True
    if name_refused(host, allow_private=allow_private):
        return True
    literal = literal_address(host)
    return literal is not None and address_refused(literal, allow_private=allow_private)


def resolve_allowed(host: str, port: int, *, allow_private: bool = False) -> IPAddress:
    """The address to connect to for ``host``: resolved now, and refused (:class:`DestinationRefused`)
    if the name is refused, does not resolve, or *any* of its addresses is refused."""
    if name_refused(host, allow_private=allow_private):
        raise DestinationRefused
    literal = literal_address(host)
    if literal is not None:
        found: list[IPAddress] = [literal]
    else:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError, ValueError):
            raise DestinationRefused from None
        found = [ipaddress.ip_address(info[4][0]) for info in infos]
    if not found or any(address_refused(a, allow_private=allow_private) for a in found):
        raise DestinationRefused
    chosen = found[0]
    if isinstance(chosen, ipaddress.IPv6Address) and chosen.ipv4_mapped is not None:
        return chosen.ipv4_mapped
    return chosen


class PinnedAdapter(HTTPAdapter):
    """A transport that checks the destination on every request and connects to the checked IP.

    The connection pool is opened on the address :func:`resolve_allowed` returned; for HTTPS the
    TLS server name and the certificate's host name stay the URL's name, and the ``Host`` header is
    the URL's authority. Proxies are never used."""

    def __init__(self, *, allow_private: bool = False, **kwargs: Any) -> None:
        self.allow_private = allow_private
        super().__init__(**kwargs)

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        parts = urlsplit(request.url or "")
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise DestinationRefused
        request.headers["Host"] = parts.netloc.rpartition("@")[2]
        return super().send(request, *args, **kwargs)

    def get_connection_with_tls_context(
        self,
        request: requests.PreparedRequest,
        verify: Any,
        proxies: Any = None,
        cert: Any = None,
    ) -> Any:
        host_params, tls_kwargs = self.build_connection_pool_key_attributes(request, verify, cert)
        pool_kwargs: dict[str, Any] = dict(tls_kwargs)
        scheme, name = host_params["scheme"], host_params["host"]
        port = host_params["port"] or (443 if scheme == "https" else 80)
        address = resolve_allowed(name, port, allow_private=self.allow_private)
        if scheme == "https":
            pool_kwargs["server_hostname"] = name
            pool_kwargs["assert_hostname"] = name
        return self.poolmanager.connection_from_host(
            host=str(address), port=port, scheme=scheme, pool_kwargs=pool_kwargs
        )


def guard(session: requests.Session, *, allow_private: bool = False) -> requests.Session:
    """Make ``session`` deliver only to allowed destinations (both schemes go through
    :class:`PinnedAdapter`; no proxy from the environment)."""
    adapter = PinnedAdapter(allow_private=allow_private)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.trust_env = False
    return session
