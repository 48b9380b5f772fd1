"""Webhooks cannot be registered towards the exchange's network: a hostile member's URLs in
every spelling, names resolving inside, and the allow list from the environment. No
traffic leaves this machine: names are resolved by a stand-in resolver."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from gateway.config import Settings
from gateway.core.errors import InputError
from gateway.services.push import endpoints
from gateway.services.push.destinations import (
    FORBIDDEN_CODE,
    DestinationForbidden,
    Destinations,
    parse_ipv4,
)
from gateway.store.db import Database
from gateway.store.tables import WebhookEndpoint
from tests.services.push_support import (
    INSURER,
    PUBLIC,
    VAULT,
    no_dns,
    resolver,
)

INTERNAL = [
    # IPv4 loopback in every spelling a resolver accepts
    "https://127.0.0.1/", "https://127.0.0.1./", "https://127.1/", "https://127.0.1/",
    "https://2130706433/", "https://0x7f000001/", "https://0X7F000001/", "https://0x7f.1/",
    "https://0177.0.0.1/", "https://0177.0.0.01/", "https://017700000001/",
    "https://127.255.255.254:5432/",
    # private, link-local (cloud metadata), CGNAT, this-network, multicast, reserved
    "https://10.0.0.1/", "https://10.1/", "https://012.0.0.1/", "https://172.16.0.1/",
    "https://172.31.255.255/", "https://192.168.1.1/", "https://3232235777/",
    "https://169.254.169.254/latest/meta-data/", "https://0xa9fea9fe/",
    "https://100.64.0.1/", "https://100.127.255.254/", "https://0.0.0.0/", "https://0/",
    "https://224.0.0.1/", "https://239.255.255.250/", "https://240.0.0.1/",
    "https://255.255.255.255/", "https://192.0.2.10/", "https://198.18.0.1/",
    # IPv6: loopback, unspecified, unique-local, link-local with a zone id, site-local,
    # multicast, and IPv4-mapped / -compatible / 6to4 / NAT64 forms of internal IPv4
    "https://[::1]/", "https://[0:0:0:0:0:0:0:1]/", "https://[::]/", "https://[fc00::1]/",
    "https://[fd12:3456::1]/", "https://[fe80::1]/", "https://[fe80::1%25eth0]/",
    "https://[fec0::1]/", "https://[ff02::1]/", "https://[::ffff:127.0.0.1]/",
    "https://[::ffff:7f00:1]/", "https://[::ffff:169.254.169.254]/", "https://[::127.0.0.1]/",
    "https://[::10.0.0.1]/", "https://[2002:7f00:1::]/", "https://[2002:a9fe:a9fe::1]/",
    "https://[64:ff9b::127.0.0.1]/", "https://[64:ff9b::a9fe:a9fe]/",
    "https://[64:ff9b:1::a00:1]/",
    # names refused by name, with and without trailing dots and in any case
    "https://localhost/", "https://LOCALHOST./", "https://localhost:8443/",
    "https://api.localhost/", "https://metadata.google.internal/", "https://printer.local/",
    "https://nas.home.arpa/", "https://db.localdomain/", "https://postgres/",
    "https://ip6-localhost/",
    # public addresses over plain http
    f"http://{PUBLIC}/hook", "http://hooks.example.com/hook",
]


@pytest.mark.parametrize("url", INTERNAL)
def test_internal_destinations_are_refused(url: str) -> None:
    with pytest.raises(DestinationForbidden) as err:
        Destinations(resolver=no_dns).check(url)
    assert (err.value.code, err.value.http_status) == (FORBIDDEN_CODE, 422)
    host = urlsplit(url).hostname or ""
    assert host not in err.value.msg.lower()  # names the rule, not the target


def test_registration_refuses_them_and_stores_nothing(db: Database) -> None:
    for url in INTERNAL:
        with db.session() as s, pytest.raises(DestinationForbidden):
            endpoints.register_endpoint(s, INSURER, url, vault=VAULT,
                                        destinations=Destinations(resolver=no_dns))
    with db.session() as s:
        assert s.scalar(select(WebhookEndpoint.id)) is None


def test_spellings_are_parsed_as_the_system_resolver_parses_them() -> None:
    """The legacy forms mean what inet_aton (and so getaddrinfo) makes of them."""
    for spelling in ["127.1", "127.0.1", "2130706433", "0x7f000001", "0x7f.1", "0177.0.0.1",
                     "017700000001", "10.1", "0xa9fea9fe", "0", "1.2.3.4", "3232235777"]:
        assert parse_ipv4(spelling) == ipaddress.IPv4Address(socket.inet_aton(spelling))
    assert parse_ipv4("hooks.example.com") is None
    assert parse_ipv4("1e100.net") is None


@pytest.mark.parametrize("url", ["https://256.0.0.1/", "https://1.2.3.4.5/", "https://08.0.0.1/",
                                 "https://4294967296/", "https://[::1::2]/",
                                 "https://h\u00f6oks.example.com/"])
def test_malformed_hosts_are_bad_urls(url: str) -> None:
    with pytest.raises(InputError) as err:
        Destinations(resolver=no_dns).check(url)
    assert err.value.code == "bad_url"


def test_public_destinations_are_accepted(db: Database) -> None:
    v6 = "2606:2800:21f:cb07:6820:80da:af6b:8b2c"
    dns = resolver({"hooks.example-insurer.cn": [PUBLIC, v6]})
    for url in [f"https://{PUBLIC}/hook", f"https://{PUBLIC}:8443/hook",
                f"https://[{v6}]/hook",
                "https://hooks.example-insurer.cn/claimx",
                "https://HOOKS.example-insurer.cn./claimx",
                "https://not-yet-in-dns.example-insurer.cn/claimx"]:  # checked at delivery
        with db.session() as s:
            endpoints.register_endpoint(s, INSURER, url, destinations=Destinations(resolver=dns),
                                        vault=VAULT)


def test_names_resolving_inside_are_refused_at_registration() -> None:
    answers = {"intranet.example.com": ["10.0.0.5"],
               "mixed.example.com": [PUBLIC, "127.0.0.1"],
               "mapped.example.com": ["::ffff:169.254.169.254"]}
    dns = resolver(answers)
    for name in answers:
        with pytest.raises(DestinationForbidden) as err:
            Destinations(resolver=dns).check(f"https://{name}/hook")
        assert "resolves to an address" in err.value.msg and "10.0.0.5" not in err.value.msg


def test_allow_hosts_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLAIMX_WEBHOOK_ALLOW_HOSTS", " 127.0.0.1, Hook.Test ,,")
    settings = Settings()
    assert settings.webhook_allow_hosts == ["127.0.0.1", "hook.test"]
    allowed = Destinations(settings.webhook_allow_hosts, resolver=no_dns)
    for url in ["http://127.0.0.1:8080/hook", "http://2130706433:8080/hook",
                "http://hook.test./x", "https://hook.test/x"]:
        allowed.check(url)
    with pytest.raises(DestinationForbidden):
        allowed.check("http://127.0.0.2/hook")  # only the named host, not its neighbours
    with pytest.raises(DestinationForbidden):
        Destinations(Settings(webhook_allow_hosts=[]).webhook_allow_hosts).check(
            "http://127.0.0.1/hook")
