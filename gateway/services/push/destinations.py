"""Where webhooks may go: public HTTPS receivers only, never the exchange's own network.

A member names a URL and the gateway POSTs to it, so without a check a member could aim
deliveries at 127.0.0.1, 10/8 or 169.254.169.254 and read the exchange's network off each
delivery's ``last_error`` (a server-side request forgery, OWASP SSRF). The rules:

* https only, except for hosts in ``CLAIMX_WEBHOOK_ALLOW_HOSTS`` (local receivers in
  development and tests), which may use http and any address;
* addresses that are not globally reachable (loopback, private, link-local, CGNAT
  100.64/10, multicast, unspecified, reserved, and IPv4-mapped, IPv4-compatible, 6to4 and
  NAT64 forms of those) are refused, in every spelling a resolver accepts: the legacy
  ``inet_aton`` forms (2130706433, 0x7f000001, 0177.0.0.1, 127.1) are parsed as the WHATWG
  URL standard's IPv4 parser does;
* names such as ``localhost`` or ``*.internal`` are refused by name;
* at delivery the name is resolved once, every address is checked, and the request is sent
  to a checked address (DNS rebinding cannot swap it between the check and the connect).

The checks are written here on the standard library's :mod:`ipaddress` and
:func:`socket.getaddrinfo` rather than taken from a third-party SSRF filter: those wrap
``requests`` or ``urllib3`` (not httpx), are thinly maintained, and the whole rule set is the
short list below, which is easier to audit than a dependency.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from gateway.core.errors import InputError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]
"""``(host, port) -> addresses`` as text; raises :class:`OSError` when the name is unknown."""

FORBIDDEN_CODE = "webhook_destination_forbidden"
BLOCKED_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")
BLOCKED_SUFFIXES = ("localhost", "local", "localdomain", "internal", "intranet", "lan",
                    "home.arpa", "corp", "home", "private")
"""Special-use and private-use names (RFC 6761, 6762, 8375; ICANN's ``.internal``)."""
_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
_NAT64 = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))
_COMPAT = ipaddress.IPv6Network("::/96")


class DestinationForbidden(InputError):
    """The URL points where webhooks may not go (422); the message names the rule only."""

    code = FORBIDDEN_CODE


def system_resolver(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to for a TCP connection, in the resolver's order."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def parse_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """The WHATWG URL standard's IPv4 parser (the ``inet_aton`` forms): 1-4 dot-separated
    decimal, 0x-hex or 0-octal parts, the last filling the remaining bytes. None when the
    last part is not a number (a name); :class:`ValueError` when it is but is out of range."""
    parts = host.split(".")
    if not _number(parts[-1]):
        return None
    if len(parts) > 4 or not all(_number(p) for p in parts):
        raise ValueError("not an IPv4 address")
    nums = [int(p[2:] or "0", 16) if p[:2] == "0x" else int(p, 8) if p[:1] == "0" and len(p) > 1
            else int(p) for p in parts]
    if any(n > 255 for n in nums[:-1]) or nums[-1] >= 256 ** (5 - len(nums)):
        raise ValueError("IPv4 address out of range")
    value = nums[-1]
    for i, n in enumerate(nums[:-1]):
        value += n << (8 * (3 - i))
    return ipaddress.IPv4Address(value)


def _number(part: str) -> bool:
    if part[:2] == "0x":
        return all(c in "0123456789abcdef" for c in part[2:])
    return part.isascii() and part.isdigit()


def literal_address(host: str) -> IPAddress | None:
    """The address a URL host spells (brackets, zone ids and trailing dots removed), or None
    for a name; :class:`ValueError` for a malformed address."""
    host = host.lower().strip("[]").replace("%25", "%").rstrip(".")
    if ":" in host:
        return ipaddress.IPv6Address(host)  # a zone id (fe80::1%eth0) is kept: link-local
    return parse_ipv4(host) if host else None


def forbidden_reason(ip: IPAddress) -> str | None:
    """Why webhooks may not go to ``ip``, or None for a globally reachable unicast address."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None and (why := forbidden_reason(embedded)):
            return why
        if ip.is_site_local:
            return "site-local"
    checks = [("unspecified", ip.is_unspecified), ("loopback", ip.is_loopback),
              ("link-local", ip.is_link_local), ("multicast", ip.is_multicast),
              ("shared (CGNAT)", isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT),
              ("private", ip.is_private), ("reserved", ip.is_reserved)]
    for why, hit in checks:
        if hit:
            return why
    return None if ip.is_global else "not globally reachable"


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv4-mapped, 6to4, NAT64 or IPv4-compatible address carries."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if any(ip in net for net in _NAT64) or (ip in _COMPAT and int(ip) > 1):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


@dataclass(frozen=True)
class Pinned:
    """A delivery's request, aimed at one checked address with the original Host and SNI."""

    url: httpx.URL
    headers: dict[str, str]
    extensions: dict[str, str]


class Destinations:
    """The policy, with the resolver behind it (tests substitute one: no DNS traffic)."""

    def __init__(self, allow_hosts: Iterable[str] = (), *,
                 resolver: Resolver = system_resolver) -> None:
        self.allow = {_canonical(h) for h in allow_hosts if h.strip()}
        self.resolver = resolver

    def allowed(self, host: str) -> bool:
        """Named in ``CLAIMX_WEBHOOK_ALLOW_HOSTS``: http and any address are allowed."""
        return _canonical(host) in self.allow

    def check(self, url: str) -> None:
        """Registration: refuse a URL whose scheme, name or address is not allowed; a name
        that does not resolve now is accepted (it is checked again at every delivery)."""
        parsed, host, ip = _parse(url)
        if self.allowed(host):
            return
        _check_static(parsed, host, ip)
        if ip is None:
            try:
                addresses = self.resolver(host.rstrip("."), parsed.port or 443)
            except (OSError, UnicodeError):
                return
            for text in addresses:
                _refuse_address(_address(text), "webhook host resolves to")

    def pin(self, url: str) -> list[Pinned]:
        """Delivery: resolve once and aim at each checked address in turn; raises
        :class:`DestinationForbidden` when the URL or any address is not allowed, or the
        name does not resolve."""
        parsed, host, ip = _parse(url)
        allowed = self.allowed(host)
        if not allowed:
            _check_static(parsed, host, ip)
        addresses: list[IPAddress] = [ip] if ip is not None else []
        if ip is None:
            port = parsed.port or (443 if parsed.scheme == "https" else 80)
            try:
                addresses = [_address(a) for a in self.resolver(host.rstrip("."), port)]
            except (OSError, UnicodeError, ValueError) as exc:
                raise DestinationForbidden("webhook host does not resolve") from exc
        if not addresses:
            raise DestinationForbidden("webhook host does not resolve")
        if not allowed:
            for a in addresses:
                _refuse_address(a, "webhook host resolves to")
        headers = {"Host": parsed.netloc.decode("ascii")}
        sni = ({"sni_hostname": host.rstrip(".")} if ip is None and parsed.scheme == "https"
               else {})
        return [Pinned(parsed.copy_with(host=str(a)), headers, sni) for a in addresses]


def _check_static(parsed: httpx.URL, host: str, ip: IPAddress | None) -> None:
    """The checks that need no resolver: scheme, then literal address or name."""
    if parsed.scheme != "https":
        raise DestinationForbidden("webhook url must use https", loc=["url"])
    if ip is not None:
        _refuse_address(ip, "webhook url points at")
    else:
        _refuse_name(host)


def _parse(url: str) -> tuple[httpx.URL, str, IPAddress | None]:
    """The URL as httpx will send it, its host, and the address the host spells if any."""
    try:
        parsed = httpx.URL(url)
        host = parsed.host
        ip = literal_address(host)
    except (httpx.InvalidURL, ValueError) as exc:
        _refuse_spelling(url)  # e.g. 0177.0.0.1, which httpx refuses: still say why
        raise InputError("webhook url host is not a valid name or address", code="bad_url",
                         loc=["url"]) from exc
    if parsed.scheme not in ("http", "https") or not host:
        raise InputError("webhook url must be an absolute http:// or https:// URL",
                         code="bad_url", loc=["url"])
    return parsed, host, ip


def _refuse_spelling(url: str) -> None:
    """Refuse the URL if its host, as the standard library splits it, is internal."""
    try:
        ip = literal_address(urlsplit(url).hostname or "")
    except ValueError:
        return
    if ip is not None:
        _refuse_address(ip, "webhook url points at")


def _canonical(host: str) -> str:
    """One spelling per host, so an allow-list entry matches however the URL writes it."""
    try:
        ip = literal_address(host)
    except ValueError:
        ip = None
    return str(ip) if ip is not None else host.lower().strip("[]").rstrip(".")


def _address(text: str) -> IPAddress:
    return ipaddress.ip_address(text.split("%", 1)[0])


def _refuse_address(ip: IPAddress, what: str) -> None:
    why = forbidden_reason(ip)
    if why is not None:
        raise DestinationForbidden(f"{what} an address webhooks may not reach ({why}); "
                                   "they go to public receivers only", loc=["url"])


def _refuse_name(host: str) -> None:
    name = host.lower().rstrip(".")
    if not name.isascii():
        raise InputError("webhook url host must be ASCII (use the xn-- form of an "
                         "internationalised name)", code="bad_url", loc=["url"])
    if name in BLOCKED_NAMES or any(name.endswith("." + s) or name == s
                                    for s in BLOCKED_SUFFIXES):
        raise DestinationForbidden("webhook url names a local or internal host", loc=["url"])
    if "." not in name:
        raise DestinationForbidden("webhook url host must be a fully qualified public name",
                                   loc=["url"])
