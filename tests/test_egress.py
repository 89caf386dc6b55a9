"""SSRF-safe webhooks (issue 15 item 2): internal destinations are refused when the URL is saved and
at every delivery attempt, with one message for every refusal; the connection goes to the address
that was checked (DNS rebinding), with TLS still verified for the name."""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from broker.config import Settings
from broker.events import egress, webhooks
from broker.events import outbox as events
from broker.events.webhooks import Worker
from broker.storage import keys
from tests.support.apps import mini_payload
from tests.support.developer import FORM
from tests.support.factories import make_user
from tests.support.signin import session_sign_in
from tests.support.webhook_receiver import Receiver

REFUSED = "destination not allowed"
SECRET = "brk_whsec_" + "s" * 43

# The addresses of the issue, then the other ranges and spellings that must not pass.
ISSUE_URLS = [
    "https://169.254.169.254/latest/meta-data/",
    "https://10.0.0.5/hook",
    "https://192.168.1.1/hook",
    "https://127.0.0.1:6379/",
    "https://[::1]/hook",
    "https://metadata.google.internal/computeMetadata/v1/",
]
MORE_URLS = [
    "https://172.16.0.1/hook",
    "https://100.64.0.1/hook",  # CGNAT
    "https://198.18.0.1/hook",  # benchmarking
    "https://192.0.2.10/hook",  # documentation
    "https://0.0.0.0/hook",
    "https://224.0.0.1/hook",
    "https://255.255.255.255/hook",
    "https://127.1/hook",  # short form of 127.0.0.1
    "https://0x7f000001/hook",  # hexadecimal
    "https://2130706433/hook",  # one decimal number
    "https://localhost/hook",
    "https://METADATA.google.internal./hook",
    "https://[fe80::1]/hook",
    "https://[fd00::1]/hook",
    "https://[ff02::1]/hook",
    "https://[::]/hook",
    "https://[::ffff:127.0.0.1]/hook",  # IPv4-mapped
    "https://[::ffff:a9fe:a9fe]/hook",  # IPv4-mapped 169.254.169.254
    "https://[::a00:5]/hook",  # IPv4-compatible 10.0.0.5
    "https://[2002:a9fe:a9fe::1]/hook",  # 6to4 of 169.254.169.254
    "https://[64:ff9b::a00:5]/hook",  # NAT64 of 10.0.0.5
    "https://[2001:db8::1]/hook",
]
REFUSED_URLS = ISSUE_URLS + MORE_URLS


@pytest.mark.parametrize(
    ("address", "refused", "refused_in_development"),
    [
        ("93.184.215.14", False, False),
        ("2606:4700:4700::1111", False, False),
        ("::ffff:93.184.215.14", False, False),
        ("2002:5db8:d70e::1", False, False),  # 6to4 of a public address
        ("64:ff9b::5db8:d70e", False, False),  # NAT64 of a public address
        ("127.0.0.1", True, False),
        ("10.1.2.3", True, False),
        ("192.168.1.1", True, False),
        ("::1", True, False),
        ("fd12::1", True, False),
        ("::ffff:10.0.0.5", True, False),
        ("169.254.169.254", True, True),
        ("fe80::1", True, True),
        ("100.64.0.1", True, True),
        ("198.19.255.1", True, True),
        ("203.0.113.9", True, True),
        ("239.1.1.1", True, True),
        ("ff05::2", True, True),
        ("240.0.0.1", True, True),
        ("0.0.0.0", True, True),
        ("::", True, True),
        ("::ffff:169.254.169.254", True, True),
        ("2002:a9fe:a9fe::", True, True),
        ("64:ff9b::7f00:1", True, True),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", True, True),  # Teredo
        ("fe80::1%eth0", True, True),
    ],
)
def test_address_classification(address: str, refused: bool, refused_in_development: bool) -> None:
    addr = ipaddress.ip_address(address)
    assert egress.address_refused(addr) is refused
    assert egress.address_refused(addr, allow_private=True) is refused_in_development


# --- save time -----------------------------------------------------------------------------------


@pytest.mark.parametrize("url", REFUSED_URLS)
def test_platform_api_refuses_internal_webhook_urls_with_one_message(
    client: Any, store: Any, settings: Settings, url: str
) -> None:
    auth = {"Authorization": f"Bearer {settings.platform_api_key}"}
    dev = make_user(store)
    response = client.post("/internal/v1/apps", json=mini_payload(dev, webhook_url=url), headers=auth)
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.get_json()["errors"] == {"webhook_url": [REFUSED]}


def test_a_public_name_is_accepted_at_save_time(client: Any, store: Any, settings: Settings) -> None:
    auth = {"Authorization": f"Bearer {settings.platform_api_key}"}
    dev = make_user(store)
    url = "https://hooks.example.com/broker"
    response = client.post("/internal/v1/apps", json=mini_payload(dev, webhook_url=url), headers=auth)
    assert response.status_code == 201, response.get_data(as_text=True)


def test_developer_console_and_api_refuse_the_metadata_address(app: Any, client: Any, store: Any) -> None:
    app.config["WTF_CSRF_ENABLED"] = False
    session_sign_in(client, make_user(store, "devon", "pw-devon-123"))
    page = client.post(
        "/developer/apps", data={**FORM, "webhook_url": "https://169.254.169.254/latest/meta-data/"}
    )
    assert page.status_code == 400
    assert REFUSED in page.get_data(as_text=True)
    api = client.post(
        "/developer/v1/apps",
        json={
            "kind": "org_app",
            "client_type": "confidential",
            "name": "Roster",
            "scopes": ["org.members.read"],
            "redirect_uris": ["https://roster.example.com/cb"],
            "webhook_url": "https://[::ffff:169.254.169.254]/",
        },
    )
    assert api.status_code == 400, api.get_data(as_text=True)
    assert api.get_json()["errors"]["webhook_url"] == [REFUSED]


def test_loopback_is_accepted_at_save_time_only_when_allowed(
    app: Any, client: Any, store: Any, settings: Settings
) -> None:
    auth = {"Authorization": f"Bearer {settings.platform_api_key}"}
    dev = make_user(store)

    def create(url: str) -> Any:
        return client.post("/internal/v1/apps", json=mini_payload(dev, webhook_url=url), headers=auth)

    loopback = "http://127.0.0.1:8770/webhook"
    assert create(loopback).get_json()["errors"] == {"webhook_url": [REFUSED]}
    app.extensions["broker.settings"] = replace(settings, webhook_allow_private=True)
    assert create(loopback).status_code == 201
    assert create("https://10.0.0.5/hook").status_code == 201
    for url in ("https://169.254.169.254/latest/meta-data/", "https://metadata.google.internal/"):
        assert create(url).get_json()["errors"] == {"webhook_url": [REFUSED]}


# --- delivery ------------------------------------------------------------------------------------


@pytest.fixture
def one_try(settings: Settings) -> Settings:
    return replace(settings, webhook_max_attempts=1, webhook_timeout_seconds=5)


def _add_app(store: Any, client_id: str, url: str) -> None:
    store.redis.hset(
        keys.app(client_id),
        mapping={
            "client_id": client_id,
            "name": client_id,
            "status": "active",
            "webhook_url": url,
            "webhook_secret": SECRET,
        },
    )
    store.redis.zadd(keys.apps_all(), {client_id: time.time()})


def _emit(store: Any, client_id: str) -> str:
    pipe = store.redis.pipeline(transaction=True)
    event_id = events.emit(pipe, client_id, "grant.revoked", {"user": "u_x"})
    pipe.execute()
    return event_id


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> Callable[[str, Callable[[], str]], list[str]]:
    """Fake DNS answers for chosen names (others resolve as usual); returns the log of lookups."""
    real = socket.getaddrinfo
    answers: dict[str, Callable[[], str]] = {}
    lookups: list[str] = []

    def fake(host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if name in answers:
            if flags & socket.AI_NUMERICHOST:
                raise socket.gaierror(socket.EAI_NONAME, "not numeric")
            lookups.append(name)
            address = answers[name]()
            fam = socket.AF_INET6 if ":" in address else socket.AF_INET
            return [(fam, socket.SOCK_STREAM, 6, "", (address, port or 0))]
        return real(host, port, family, type, proto, flags)

    monkeypatch.setattr(socket, "getaddrinfo", fake)

    def answer(name: str, address: Callable[[], str]) -> list[str]:
        answers[name] = address
        return lookups

    return answer


def test_every_refused_destination_gets_the_same_outcome_and_nothing_is_sent(
    store: Any, one_try: Settings, dns: Any
) -> None:
    rx = Receiver()  # a live listener on loopback: it must never be reached
    dns("internal.test", lambda: "10.0.0.5")
    dns("rebound.test", lambda: "169.254.169.254")
    urls = [
        *ISSUE_URLS,
        rx.url,
        f"http://localhost:{rx.port}/hook",
        "https://internal.test/hook",
        "https://rebound.test/hook",
        "https://no-such-host.invalid/hook",  # does not resolve: same answer as a refused range
    ]
    worker = Worker(store, one_try)
    try:
        for i, url in enumerate(urls):
            client_id = f"app_{i:016x}"
            _add_app(store, client_id, url)
            _emit(store, client_id)
            assert worker.deliver_next(client_id) == "dead", url
            (attempt,) = webhooks.recent_attempts(store, client_id)
            assert (attempt["error"], attempt["status"], attempt["outcome"]) == (REFUSED, "", "dead"), url
            (dead,) = webhooks.dead_letters(store, client_id)
            assert dead["last_error"] == REFUSED
    finally:
        worker.close()
        rx.stop()
    assert rx.requests == []


def test_allowing_private_destinations_lets_loopback_through_but_never_metadata(
    store: Any, one_try: Settings
) -> None:
    rx = Receiver()
    worker = Worker(store, replace(one_try, webhook_allow_private=True))
    try:
        _add_app(store, "app_000000000000000a", rx.url)
        _add_app(store, "app_000000000000000b", "http://169.254.169.254/latest/meta-data/")
        _emit(store, "app_000000000000000a")
        _emit(store, "app_000000000000000b")
        assert worker.deliver_next("app_000000000000000a") == "delivered"
        assert worker.deliver_next("app_000000000000000b") == "dead"
        assert webhooks.recent_attempts(store, "app_000000000000000b")[0]["error"] == REFUSED
        assert len(rx.wait_for(1)) == 1
    finally:
        worker.close()
        rx.stop()


def test_dns_rebinding_cannot_move_the_connection_and_every_attempt_checks_again(
    store: Any, one_try: Settings, dns: Any
) -> None:
    """The name answers a permitted address once, then the metadata address: the first delivery
    connects to the address it checked (one lookup, nothing resolved between check and connect);
    the next attempt looks up again and is refused."""
    rx = Receiver()
    answers = iter(["127.0.0.1", "169.254.169.254", "169.254.169.254"])
    lookups = dns("rebind.test", lambda: next(answers))
    worker = Worker(store, replace(one_try, webhook_allow_private=True))
    client_id = "app_00000000000000cc"
    try:
        _add_app(store, client_id, f"http://rebind.test:{rx.port}/hook")
        first = _emit(store, client_id)
        assert worker.deliver_next(client_id) == "delivered"
        assert lookups == ["rebind.test"]
        (received,) = rx.wait_for(1)
        assert received.headers["Host"] == f"rebind.test:{rx.port}"  # the name, not the address
        assert received.headers["Broker-Event-Id"] == first
        _emit(store, client_id)
        assert worker.deliver_next(client_id) == "dead"
        assert lookups == ["rebind.test", "rebind.test"]
        assert webhooks.recent_attempts(store, client_id)[0]["error"] == REFUSED
    finally:
        worker.close()
        rx.stop()
    assert len(rx.requests) == 1


# --- TLS still checks the name ---------------------------------------------------------------------


def _certificate(tmp_path: Path, name: str) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / f"{name}.pem", tmp_path / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


@pytest.fixture
def https_receiver(tmp_path: Path) -> Iterator[tuple[int, Path, list[tuple[str, str]]]]:
    """An HTTPS receiver on 127.0.0.1 whose certificate names ``hook.test``; records (SNI, Host)."""
    cert, key = _certificate(tmp_path, "hook.test")
    seen: list[tuple[str, str]] = []
    server_names: list[str] = []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    context.sni_callback = lambda _sock, name, _ctx: server_names.append(name or "")  # type: ignore[assignment,misc,return-value]

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            seen.append((server_names[-1] if server_names else "", self.headers["Host"]))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], cert, seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_https_goes_to_the_checked_address_with_sni_and_certificate_for_the_name(
    store: Any, one_try: Settings, dns: Any, https_receiver: tuple[int, Path, list[tuple[str, str]]]
) -> None:
    port, ca, seen = https_receiver
    dns("hook.test", lambda: "127.0.0.1")
    dns("other.test", lambda: "127.0.0.1")
    session = requests.Session()
    session.verify = str(ca)
    worker = Worker(store, replace(one_try, webhook_allow_private=True), session=session)
    try:
        _add_app(store, "app_00000000000000d1", f"https://hook.test:{port}/hook")
        _add_app(store, "app_00000000000000d2", f"https://other.test:{port}/hook")
        _emit(store, "app_00000000000000d1")
        _emit(store, "app_00000000000000d2")
        assert worker.deliver_next("app_00000000000000d1") == "delivered"
        # Same address, but the certificate does not name other.test: verification still fails.
        assert worker.deliver_next("app_00000000000000d2") == "dead"
        assert webhooks.recent_attempts(store, "app_00000000000000d2")[0]["error"] == "connection failed"
    finally:
        worker.close()
    assert seen == [("hook.test", f"hook.test:{port}")]


def test_the_developer_sees_the_refusal_in_the_console(
    app: Any, client: Any, store: Any, settings: Settings, dns: Any
) -> None:
    """A name that passed at save time but resolves inside: the console shows the one message."""
    app.config["WTF_CSRF_ENABLED"] = False
    dns("hooks.roster.test", lambda: "10.0.0.5")
    session_sign_in(client, make_user(store, "devon", "pw-devon-123"))
    from tests.support.developer import register

    client_id = register(client, webhook_url="https://hooks.roster.test/hook")
    _emit(store, client_id)
    worker = Worker(store, replace(settings, webhook_max_attempts=1))
    try:
        assert worker.deliver_next(client_id) == "dead"
    finally:
        worker.close()
    html = client.get(f"/developer/apps/{client_id}").get_data(as_text=True)
    assert REFUSED in html
    body = client.get(f"/developer/v1/apps/{client_id}").get_json()
    assert [a["error"] for a in body["deliveries"]["items"]] == [REFUSED]
    assert body["deliveries"]["dead"][0]["last_error"] == REFUSED
