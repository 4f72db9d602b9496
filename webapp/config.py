"""The one place environment variables are read.

`Settings.from_env()` reads every variable once, converts it to its type and validates it; a bad
value raises `ConfigError` whose message names the variable. `wsgi.py` turns that into a one-line
exit message, so gunicorn, Celery and the Flask CLI all stop with the same clear line.

pydantic-settings was considered (issue 15) and not adopted: the conversion here is ~40 lines
(`_convert` and its helpers: booleans, bounded integers, comma lists, URLs, cron expressions,
pipelines), while pydantic's ValidationError is a multi-line report keyed by field that would
need the same amount of code to become "NAME: reason", plus field validators for the cross-field
checks `from_env` makes (SMTP_HOST needs ALERT_MAIL_FROM, re-ingest exchanges, Flower's
authentication...). The settings stay a frozen dataclass whose field annotations are the types.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit


class ConfigError(ValueError):
    """A configuration variable is missing or has a bad value."""


SECRET_KEY_MIN_LENGTH = 32
SECRET_KEY_MIN_DISTINCT = 10
TRUE_WORDS = {"true", "1", "yes", "on"}
FALSE_WORDS = {"false", "0", "no", "off"}
ALLOWED_PARTITION_MONTHS = (1, 2, 3, 4, 6, 12)


def parse_bool(name: str, raw: str) -> bool:
    """Strict boolean: true/false/1/0/yes/no/on/off, case-insensitive; anything else is an error."""
    word = raw.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ConfigError(f"{name}: expected a boolean (true/false/1/0/yes/no/on/off), got {raw!r}")


def _int(name: str, raw: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    try:
        value = int(raw.strip())
    except ValueError:
        raise ConfigError(f"{name}: expected an integer, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ConfigError(f"{name}: must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{name}: must be at most {maximum}, got {value}")
    return value


def _cron(name: str, raw: str) -> str:
    fields = raw.split()
    if len(fields) != 5:
        raise ConfigError(
            f"{name}: expected a 5-field cron expression (minute hour day month weekday), "
            f"got {raw!r}"
        )
    from celery.schedules import crontab

    try:
        crontab(*fields)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{name}: invalid cron expression {raw!r}: {exc}") from None
    return raw


def _url(name: str, raw: str) -> str:
    value = raw.strip().rstrip("/")
    if not value.startswith(("http://", "https://")):
        raise ConfigError(f"{name}: expected an http(s) URL, got {raw!r}")
    return value


def _csv(raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


#: PIPELINES by default: the demo's four dataset stages (the two of stage 3 run in parallel).
DEFAULT_PIPELINES = (
    "dataset-ingestion > internal-dataset-ingestion > internal-statistics, internal-dataset-links"
)

Pipeline = tuple[tuple[str, ...], ...]

#: Longest STALLED_AFTER_MINUTES (and per-pipeline override): the longest window, 30 days.
STALLED_MAX_MINUTES = 30 * 24 * 60


def parse_pipelines(raw: str, name: str = "PIPELINES") -> tuple[Pipeline, ...]:
    """`a > b > c, d; e > f`: pipelines separated by `;`, stages in order by `>`, message types
    running in parallel within a stage by `,`. A type belongs to at most one stage."""
    pipelines: list[Pipeline] = []
    seen: set[str] = set()
    for part in raw.split(";"):
        if not part.strip():
            continue
        stages: list[tuple[str, ...]] = []
        for stage in part.split(">"):
            types = _csv(stage)
            if not types:
                raise ConfigError(f"{name}: empty stage in pipeline {part.strip()!r}")
            for message_type in types:
                if message_type in seen:
                    raise ConfigError(f"{name}: message type {message_type!r} appears twice")
                seen.add(message_type)
            stages.append(types)
        pipelines.append(tuple(stages))
    return tuple(pipelines)


def parse_stalled_after(
    raw: str, pipelines: tuple[Pipeline, ...], name: str = "STALLED_AFTER_BY_PIPELINE"
) -> dict[Pipeline, int]:
    """`dataset-ingestion=30, other-type=240`: minutes after which a run of the pipeline holding
    that message type (any of its types, usually its first) counts as stalled."""
    out: dict[Pipeline, int] = {}
    for part in _csv(raw):
        message_type, sep, minutes = part.partition("=")
        message_type = message_type.strip()
        pipeline = next((p for p in pipelines if any(message_type in s for s in p)), None)
        if not sep or pipeline is None:
            raise ConfigError(
                f"{name}: expected message-type=minutes for a type of PIPELINES, got {part!r}"
            )
        out[pipeline] = _int(name, minutes, minimum=1, maximum=STALLED_MAX_MINUTES)
    return out


@dataclass(frozen=True)
class Settings:
    """Typed settings of one process. Field names are the environment variable names."""

    # PostgreSQL
    POSTGRES_DB: str = "pacer-dashboard"
    POSTGRES_USER: str = "pacer-dashboard"
    POSTGRES_PASSWORD: str = ""
    POSTGRES_HOST: str = "localhost"
    POSTGRES_PORT: int = 5432
    # Web / auth
    ENVIRONMENT: str = "production"
    SECRET_KEY: str = ""
    DISABLED_AUTH: bool = False
    SSO_SERVER_URL: str = ""
    SSO_CLIENT_ID: str = ""
    SSO_CLIENT_SECRET: str = ""
    SSO_GROUPS_CLAIM: str = ""
    SSO_SCOPES: str = "openid email profile"
    ADMIN_GROUP: str = "Administrator"
    SESSION_COOKIE_SECURE: bool = False
    #: Reverse proxies in front of gunicorn whose X-Forwarded-* headers are trusted (0 = none).
    TRUSTED_PROXIES: int = 0
    #: External base URL (https://dashboard.example.org): the OIDC redirect_uri and the allowed
    #: WebSocket Origin come from it, never from the request's Host header.
    PUBLIC_URL: str = ""
    #: Bearer token /metrics requires (empty = no token asked).
    METRICS_TOKEN: str = ""
    #: Client networks (CIDR, comma-separated) allowed to read /metrics (empty = any).
    METRICS_ALLOW_NETWORKS: tuple[str, ...] = ()
    # RabbitMQ
    RMQ_PROTOCOL: str = "amqp"
    RMQ_HOST: str = ""
    RMQ_PORT: int = 5672
    RMQ_USERNAME: str = "pacer-dashboard"
    RMQ_PASSWORD: str = ""
    RMQ_VHOST: str = "/"
    RMQ_MANAGEMENT_PORT: int = 15672
    # Report ingestion
    DASHBOARD_EXCHANGE: str = "dashboard-logging-exchange"
    DASHBOARD_QUEUE: str = "dashboard-logging"
    DASHBOARD_ROUTING_KEY: str = "message.logging"
    REPORT_TASK_NAME: str = "dashboard.tasks.log_pacer_message"
    PACER_TIMEZONE: str = "UTC"
    INGEST_BATCH_SIZE: int = 500
    INGEST_FLUSH_MS: int = 200
    INGEST_PREFETCH: int = 0  # 0 = 4 x INGEST_BATCH_SIZE
    REPORT_MAX_BYTES: int = 8 * 1024 * 1024
    DEDUPE_WINDOW_DAYS: int = 14
    CELERY_QUEUE: str = "pacer-dashboard-tasks"
    # Partitions
    MESSAGE_PARTITION_MONTHS: int = 6
    MESSAGE_PARTITIONS_AHEAD: int = 2
    MESSAGE_RETENTION_MONTHS: int | None = None
    PARTITIONS_CRON: str = "17 3 * * *"
    # Investigation checks
    ICAT_SERVER_URL: str = ""
    ICAT_USERNAME: str = ""
    ICAT_PASSWORD: str = ""
    ICAT_AUTH_PLUGIN: str = "db"
    #: IANA zone the ICAT server reads `{ts ...}` literals in; empty = PACER_TIMEZONE.
    ICAT_TIMEZONE: str = ""
    PANOSC_API_URL: str = ""
    PANOSC_API_USERNAME: str = ""
    PANOSC_API_PASSWORD: str = ""
    PANOSC_API_TIMEOUT: int = 10
    #: Path of one search item under PANOSC_API_URL (PACER's `apiUrl`); placeholders {name} and
    #: {visit_id} only. Older PACER versions create items at /items/{name}.
    PANOSC_ITEM_PATH: str = "/items/{name}/{visit_id}"
    #: Message types with a pipeline trace (format: `parse_pipelines`); others get related messages.
    PIPELINES: str = DEFAULT_PIPELINES
    #: Minutes after its first report a pipeline run that has not completed counts as stalled
    #: (/stalled), unless STALLED_AFTER_BY_PIPELINE sets another for its pipeline.
    STALLED_AFTER_MINUTES: int = 120
    #: Per-pipeline override: `message-type=minutes, ...`, a type naming its pipeline.
    STALLED_AFTER_BY_PIPELINE: str = ""
    #: Days of reports /stalled looks at by default (the page offers 1 to 30).
    STALLED_WINDOW_DAYS: int = 3
    INVESTIGATION_CHECKS_CRON: str = "30 4 * * *"
    INVESTIGATION_CHECK_WINDOW_DAYS: int = 30
    INDUSTRIAL_INVESTIGATION_TYPES: tuple[str, ...] = ("INDUSTRIAL",)
    INVESTIGATION_OPS_EXCHANGE: str = "investigation-ops-exchange"
    INVESTIGATION_OPS_ROUTING_KEY: str = "investigation.ops"
    #: Content type of those requests (UTF-8 JSON text). text/plain: kombu hands PACER's consumer
    #: a str it can report on; application/json would hand it a dict (README, design notes).
    INVESTIGATION_OPS_CONTENT_TYPE: str = "text/plain"
    # Actions
    REINGEST_RATE_PER_SECOND: int = 20
    PUBLISH_CONFIRM_TIMEOUT: int = 10
    #: The only exchanges re-ingest publishes to (comma-separated PACER exchanges). Empty =
    #: re-ingest disabled. Names that are never allowed (see `never_reingest_reason`) fail start-up.
    REINGEST_EXCHANGES: tuple[str, ...] = ()
    #: Broker user for re-ingest publishes, whose write permission covers only those exchanges
    #: (SECURITY.md). Empty = the main RMQ_USERNAME / RMQ_PASSWORD.
    REINGEST_RMQ_USERNAME: str = ""
    REINGEST_RMQ_PASSWORD: str = ""
    #: Single re-ingests one user may attempt per minute (beyond: 429 with Retry-After).
    REINGEST_USER_PER_MINUTE: int = 30
    # Alerts (webapp/alerts): e-mail through SMTP, webhooks; evaluated by beat
    #: SMTP server of the alert e-mails (empty = no e-mail is sent; deliveries fail with why).
    SMTP_HOST: str = ""
    SMTP_PORT: int = 587
    #: Upgrade the connection with STARTTLS before authenticating (certificate verified).
    SMTP_STARTTLS: bool = True
    SMTP_USER: str = ""
    SMTP_PASSWORD: str = ""
    SMTP_TIMEOUT: int = 10
    #: PEM file of the CA certificates the SMTP server's certificate is verified against on
    #: STARTTLS (an internal CA); empty = the system's trust store.
    SMTP_CA_FILE: str = ""
    #: From: address of alert e-mails (required when SMTP_HOST is set).
    ALERT_MAIL_FROM: str = ""
    #: Seconds between two evaluations of the alert rules by beat (at most 60).
    ALERT_EVALUATE_SECONDS: int = 60
    #: Silence rules learn the usual gap of a type from this many days of hourly rollups...
    ALERT_SILENCE_LEARN_DAYS: int = 28
    #: ...as this percentile of its gaps, in the current band (working hours / nights+weekends)...
    ALERT_SILENCE_PERCENTILE: int = 95
    #: ...and never alarm before this many minutes of silence.
    ALERT_SILENCE_FLOOR_MINUTES: int = 15
    WEBHOOK_TIMEOUT: int = 10
    #: Attempts of one notice (e-mail or webhook) before it is recorded as failed.
    ALERT_DELIVERY_ATTEMPTS: int = 5
    # Processes (webapp/processes.py: how each one starts)
    #: Control files of this checkout's processes (gunicorn control socket, beat schedule).
    RUN_DIR: str = ".run"
    WEB_BIND: str = "0.0.0.0:8000"
    WEB_WORKERS: int = 2
    WEB_THREADS: int = 16
    WORKER_CONCURRENCY: int = 4
    #: Celery node name (%h = host name); unique per worker on one host.
    WORKER_NAME: str = "worker@%h"
    LOG_LEVEL: str = "INFO"
    #: Live sockets one web process serves (0 = three quarters of WEB_THREADS); never all threads.
    WS_MAX_PER_PROCESS: int = 0
    #: Live sockets of one client (signed-in user, or address when anonymous) per process.
    WS_MAX_PER_CLIENT: int = 8
    #: The live-socket process (`python -m webapp.processes live`: gunicorn's gevent worker, a
    #: socket is a greenlet, not a thread); the reverse proxy sends `/ws/` to it (README).
    LIVE_BIND: str = "0.0.0.0:8001"
    #: Live sockets one live process serves (beyond: closed with 1013).
    LIVE_MAX_SOCKETS: int = 5000
    #: Niceness the live process adds to itself (0-19; 0 = the page tier's priority): its
    #: pushes can wait a few ms for a core, a page request should not wait for a push.
    LIVE_NICE: int = 10
    FLOWER_BIND: str = "127.0.0.1:5555"
    #: user:password[,user:password]; read by Flower itself. Required when Flower listens on
    #: anything but the loopback interface.
    FLOWER_BASIC_AUTH: str = ""
    # Extra SQLAlchemy / Flask overrides that tests pass to create_app; never read from env.
    overrides: Mapping[str, Any] = field(default_factory=dict)

    # ---- derived values -------------------------------------------------------------------
    @property
    def is_development(self) -> bool:
        return self.ENVIRONMENT in ("development", "testing")

    @property
    def public_origin(self) -> str:
        """scheme://host[:port] of PUBLIC_URL ("" when unset)."""
        if not self.PUBLIC_URL:
            return ""
        parts = urlsplit(self.PUBLIC_URL)
        return f"{parts.scheme}://{parts.netloc}".lower()

    @property
    def database_url(self) -> str:
        user = quote(self.POSTGRES_USER, safe="")
        password = quote(self.POSTGRES_PASSWORD, safe="")
        auth = f"{user}:{password}" if self.POSTGRES_PASSWORD else user
        return (
            f"postgresql+psycopg2://{auth}@{self.POSTGRES_HOST}:{self.POSTGRES_PORT}/"
            f"{quote(self.POSTGRES_DB, safe='')}"
        )

    @property
    def broker_url(self) -> str:
        """AMQP URL with every part fully quoted (a `/`, `@`, `:` or `%` in a password works)."""
        user = quote(self.RMQ_USERNAME, safe="")
        password = quote(self.RMQ_PASSWORD, safe="")
        vhost = quote(self.RMQ_VHOST, safe="")
        # kombu: "pyamqp" = py-amqp transport, "amqps" = the same over TLS.
        protocol = "amqps" if self.RMQ_PROTOCOL == "amqps" else "pyamqp"
        return f"{protocol}://{user}:{password}@{self.RMQ_HOST}:{self.RMQ_PORT}/{vhost}"

    @property
    def broker_use_ssl(self) -> bool:
        return self.RMQ_PROTOCOL == "amqps"

    @property
    def reingest_broker_url(self) -> str:
        """`broker_url` with the re-ingest broker user, when one is configured."""
        if not self.REINGEST_RMQ_USERNAME:
            return self.broker_url
        return dataclasses.replace(
            self,
            RMQ_USERNAME=self.REINGEST_RMQ_USERNAME,
            RMQ_PASSWORD=self.REINGEST_RMQ_PASSWORD,
            REINGEST_RMQ_USERNAME="",
        ).broker_url

    @property
    def ingest_prefetch(self) -> int:
        return self.INGEST_PREFETCH or 4 * self.INGEST_BATCH_SIZE

    def pipeline_for(self, message_type: str | None) -> Pipeline | None:
        """The pipeline (stages of message types) `message_type` belongs to, if any."""
        for pipeline in parse_pipelines(self.PIPELINES):
            if any(message_type in stage for stage in pipeline):
                return pipeline
        return None

    def stalled_after_minutes(self, pipeline: Pipeline) -> int:
        """Minutes after which a run of `pipeline` that has not completed counts as stalled."""
        overrides = parse_stalled_after(
            self.STALLED_AFTER_BY_PIPELINE, parse_pipelines(self.PIPELINES)
        )
        return overrides.get(pipeline, self.STALLED_AFTER_MINUTES)

    @property
    def timezone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.PACER_TIMEZONE)

    @property
    def icat_timezone(self) -> zoneinfo.ZoneInfo:
        """The ICAT server's zone (ICAT_TIMEZONE, by default PACER_TIMEZONE)."""
        return zoneinfo.ZoneInfo(self.ICAT_TIMEZONE or self.PACER_TIMEZONE)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read and validate the environment. Raises ConfigError naming the first bad variable."""
        env = dict(os.environ if environ is None else environ)
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name == "overrides" or f.name not in env:
                continue
            raw = env[f.name]
            values[f.name] = _convert(f.name, f.type, raw)
        values.update(overrides)
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        """Cross-field checks that a single variable cannot express."""
        if self.ENVIRONMENT not in ("production", "development", "testing"):
            raise ConfigError(
                f"ENVIRONMENT: expected production, development or testing, got {self.ENVIRONMENT!r}"
            )
        if not self.SECRET_KEY and not self.is_development:
            raise ConfigError(
                "SECRET_KEY: required outside development/testing "
                '(generate one with: python -c "import secrets; print(secrets.token_hex(32))")'
            )
        if not self.is_development and (
            len(self.SECRET_KEY.strip()) < SECRET_KEY_MIN_LENGTH
            or len(set(self.SECRET_KEY)) < SECRET_KEY_MIN_DISTINCT
        ):
            # It signs the session cookies: a guessable key is a login for anyone.
            raise ConfigError(
                f"SECRET_KEY: too weak for production (at least {SECRET_KEY_MIN_LENGTH} "
                f"characters, {SECRET_KEY_MIN_DISTINCT} of them different; generate one with: "
                'python -c "import secrets; print(secrets.token_hex(32))")'
            )
        if not self.RMQ_HOST:
            raise ConfigError("RMQ_HOST: required (the RabbitMQ host PACER publishes reports to)")
        if self.RMQ_PROTOCOL not in ("amqp", "amqps"):
            raise ConfigError(f"RMQ_PROTOCOL: expected amqp or amqps, got {self.RMQ_PROTOCOL!r}")
        for name in ("POSTGRES_PORT", "RMQ_PORT", "RMQ_MANAGEMENT_PORT"):
            port = getattr(self, name)
            if not 0 < port < 65536:
                raise ConfigError(f"{name}: expected a TCP port (1-65535), got {port}")
        if not self.DISABLED_AUTH:
            for name in ("SSO_SERVER_URL", "SSO_CLIENT_ID", "SSO_CLIENT_SECRET"):
                if not getattr(self, name):
                    raise ConfigError(f"{name}: required unless DISABLED_AUTH is true")
        if self.PUBLIC_URL:
            _public_url(self.PUBLIC_URL)
        elif not self.DISABLED_AUTH and not self.is_development:
            raise ConfigError(
                "PUBLIC_URL: required in production when auth is enabled (the external URL, "
                "e.g. https://dashboard.example.org; the OIDC redirect_uri is built from it)"
            )
        for network in self.METRICS_ALLOW_NETWORKS:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                raise ConfigError(
                    f"METRICS_ALLOW_NETWORKS: expected CIDR networks (10.0.0.0/8,::1/128), "
                    f"got {network!r}"
                ) from None
        if self.MESSAGE_PARTITION_MONTHS not in ALLOWED_PARTITION_MONTHS:
            raise ConfigError(
                f"MESSAGE_PARTITION_MONTHS: must be one of {ALLOWED_PARTITION_MONTHS}, "
                f"got {self.MESSAGE_PARTITION_MONTHS}"
            )
        if self.INGEST_PREFETCH and self.INGEST_PREFETCH <= self.INGEST_BATCH_SIZE:
            raise ConfigError(
                f"INGEST_PREFETCH: must be above INGEST_BATCH_SIZE ({self.INGEST_BATCH_SIZE}) "
                f"or 0 for four times the batch size, got {self.INGEST_PREFETCH}"
            )
        for name in ("WEB_BIND", "LIVE_BIND", "FLOWER_BIND"):
            _bind(name, getattr(self, name))
        if self.LOG_LEVEL.upper() not in LOG_LEVELS:
            raise ConfigError(
                f"LOG_LEVEL: expected one of {', '.join(LOG_LEVELS)}, got {self.LOG_LEVEL!r}"
            )
        flower_host = self.FLOWER_BIND.rpartition(":")[0].strip("[]")
        if flower_host not in LOOPBACK_HOSTS and not self.FLOWER_BASIC_AUTH:
            raise ConfigError(
                f"FLOWER_BASIC_AUTH: required when FLOWER_BIND listens beyond this machine "
                f"({self.FLOWER_BIND}): Flower can revoke and inspect tasks"
            )
        if self.FLOWER_BASIC_AUTH and not all(
            ":" in pair and pair.split(":", 1)[1] for pair in self.FLOWER_BASIC_AUTH.split(",")
        ):
            raise ConfigError("FLOWER_BASIC_AUTH: expected user:password[,user:password]")
        for name in ("PACER_TIMEZONE", "ICAT_TIMEZONE"):
            value = getattr(self, name)
            if name == "ICAT_TIMEZONE" and not value:
                continue  # PACER_TIMEZONE's
            try:
                zoneinfo.ZoneInfo(value)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                raise ConfigError(f"{name}: unknown IANA time zone {value!r}") from None
        _item_path(self.PANOSC_ITEM_PATH)
        if not _CONTENT_TYPE_RE.fullmatch(self.INVESTIGATION_OPS_CONTENT_TYPE):
            raise ConfigError(
                "INVESTIGATION_OPS_CONTENT_TYPE: expected a media type such as text/plain or "
                f"application/json, got {self.INVESTIGATION_OPS_CONTENT_TYPE!r}"
            )
        for name in self.REINGEST_EXCHANGES:
            reason = never_reingest_reason(name, self)
            if reason:
                raise ConfigError(
                    f"REINGEST_EXCHANGES: {name[:100]!r} can never be a re-ingest target: {reason}"
                )
        parse_stalled_after(self.STALLED_AFTER_BY_PIPELINE, parse_pipelines(self.PIPELINES))
        if self.REINGEST_RMQ_USERNAME and not self.REINGEST_RMQ_PASSWORD:
            raise ConfigError("REINGEST_RMQ_PASSWORD: required when REINGEST_RMQ_USERNAME is set")
        if self.SMTP_HOST and "@" not in self.ALERT_MAIL_FROM:
            raise ConfigError(
                "ALERT_MAIL_FROM: required when SMTP_HOST is set (the From: address of alert "
                f"e-mails, e.g. pacer-dashboard@example.org), got {self.ALERT_MAIL_FROM!r}"
            )
        if self.SMTP_USER and not self.SMTP_PASSWORD:
            raise ConfigError("SMTP_PASSWORD: required when SMTP_USER is set")
        if self.SMTP_CA_FILE:
            if not self.SMTP_STARTTLS:
                raise ConfigError(
                    "SMTP_CA_FILE: set, but SMTP_STARTTLS is false, so alert e-mails would go "
                    "out unencrypted and the CA file would never be used (set SMTP_STARTTLS=true, "
                    "or leave SMTP_CA_FILE empty)"
                )
            _ca_file("SMTP_CA_FILE", self.SMTP_CA_FILE)


#: Longest exchange name AMQP can carry (a short string: 255 bytes).
AMQP_NAME_MAX_BYTES = 255


def never_reingest_reason(exchange: str, settings: Settings) -> str | None:
    """Why `exchange` may never receive a re-ingest, whatever REINGEST_EXCHANGES says; None if
    it may (when listed). The dashboard's own exchanges, Celery's and the broker's are refused."""
    lowered = exchange.lower()
    if not exchange:
        return "the default exchange (it delivers to any queue by name)"
    if len(exchange.encode("utf-8")) > AMQP_NAME_MAX_BYTES:
        return f"not an AMQP exchange name (over {AMQP_NAME_MAX_BYTES} bytes)"
    if lowered.startswith("amq."):
        return "a RabbitMQ built-in exchange (amq.*)"
    if exchange == settings.DASHBOARD_EXCHANGE:
        return "the dashboard's own report exchange (DASHBOARD_EXCHANGE)"
    if exchange == settings.CELERY_QUEUE:
        return "the dashboard's Celery task exchange (CELERY_QUEUE)"
    if lowered.startswith("celery") or "pidbox" in lowered:
        return "a Celery exchange (tasks, events, remote control or replies)"
    return None


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def _public_url(raw: str) -> None:
    parts = urlsplit(raw)
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.query
        or parts.fragment
        or parts.username is not None
        or any(ch.isspace() or ch == "\\" for ch in raw)
    ):
        raise ConfigError(
            f"PUBLIC_URL: expected an http(s) URL without query or credentials "
            f"(https://dashboard.example.org), got {raw!r}"
        )
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise ConfigError(f"PUBLIC_URL: bad port in {raw!r}") from None


_CONTENT_TYPE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*")

#: The placeholders PANOSC_ITEM_PATH may use.
ITEM_PATH_FIELDS = frozenset({"name", "visit_id"})


def _item_path(raw: str) -> None:
    """PANOSC_ITEM_PATH: a path starting with `/`, with {name} and optionally {visit_id}."""
    import string

    problem = None
    try:
        fields = [
            (name, spec, conversion)
            for _, name, spec, conversion in string.Formatter().parse(raw)
            if name is not None
        ]
    except ValueError as exc:
        fields, problem = [], f"not a valid template ({exc})"
    if problem is None:
        if not raw.startswith("/") or "?" in raw or "#" in raw:
            problem = "expected a path starting with / (no query, no fragment)"
        elif any(n not in ITEM_PATH_FIELDS or spec or conv for n, spec, conv in fields):
            problem = "only the placeholders {name} and {visit_id} are allowed"
        elif "name" not in {n for n, _, _ in fields}:
            problem = "the placeholder {name} is required"
    if problem:
        raise ConfigError(
            f"PANOSC_ITEM_PATH: {problem}, e.g. /items/{{name}}/{{visit_id}} or /items/{{name}}; "
            f"got {raw!r}"
        )


def _ca_file(name: str, path: str) -> None:
    """A PEM file of CA certificates that TLS connections can be verified against."""
    import ssl

    try:
        ssl.create_default_context(cafile=path)
    except ssl.SSLError as exc:
        problem = f"holds no PEM certificate that can be loaded ({exc.reason or exc})"
    except OSError as exc:
        problem = f"cannot be read ({exc.strerror or exc})"
    else:
        return
    raise ConfigError(f"{name}: {path!r} {problem}; expected a PEM file of CA certificates")


def _bind(name: str, raw: str) -> None:
    host, sep, port = raw.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{name}: expected host:port (e.g. 127.0.0.1:8000), got {raw!r}")


_LIMITS: dict[str, tuple[int | None, int | None]] = {
    "POSTGRES_PORT": (1, 65535),
    "RMQ_PORT": (1, 65535),
    "RMQ_MANAGEMENT_PORT": (1, 65535),
    "INGEST_BATCH_SIZE": (1, 100_000),
    "INGEST_FLUSH_MS": (1, 60_000),
    "INGEST_PREFETCH": (0, 1_000_000),
    "REPORT_MAX_BYTES": (1024, None),
    "DEDUPE_WINDOW_DAYS": (1, None),
    "MESSAGE_PARTITIONS_AHEAD": (0, 120),
    "MESSAGE_RETENTION_MONTHS": (1, None),
    "PANOSC_API_TIMEOUT": (1, 600),
    "INVESTIGATION_CHECK_WINDOW_DAYS": (1, 3650),
    "REINGEST_RATE_PER_SECOND": (1, 10_000),
    "PUBLISH_CONFIRM_TIMEOUT": (1, 600),
    "REINGEST_USER_PER_MINUTE": (1, 100_000),
    "TRUSTED_PROXIES": (0, 10),
    "SMTP_PORT": (1, 65535),
    "SMTP_TIMEOUT": (1, 600),
    "ALERT_EVALUATE_SECONDS": (1, 60),
    "ALERT_SILENCE_LEARN_DAYS": (1, 366),
    "ALERT_SILENCE_PERCENTILE": (50, 100),
    "ALERT_SILENCE_FLOOR_MINUTES": (1, 10_080),
    "WEBHOOK_TIMEOUT": (1, 600),
    "ALERT_DELIVERY_ATTEMPTS": (1, 20),
    "WEB_WORKERS": (1, 64),
    "WEB_THREADS": (1, 1000),
    "WORKER_CONCURRENCY": (1, 64),
    "WS_MAX_PER_PROCESS": (0, 100_000),
    "WS_MAX_PER_CLIENT": (1, 10_000),
    "LIVE_MAX_SOCKETS": (1, 100_000),
    "LIVE_NICE": (0, 19),
    "STALLED_AFTER_MINUTES": (1, STALLED_MAX_MINUTES),
    "STALLED_WINDOW_DAYS": (1, 30),
}
_URLS = {"SSO_SERVER_URL", "ICAT_SERVER_URL", "PANOSC_API_URL", "PUBLIC_URL"}
_CRONS = {"PARTITIONS_CRON", "INVESTIGATION_CHECKS_CRON"}


def _convert(name: str, type_: Any, raw: str) -> Any:
    type_name = type_ if isinstance(type_, str) else getattr(type_, "__name__", str(type_))
    if type_name == "bool":
        return parse_bool(name, raw)
    if type_name in ("int", "int | None"):
        if type_name == "int | None" and raw.strip() == "":
            return None
        low, high = _LIMITS.get(name, (None, None))
        return _int(name, raw, minimum=low, maximum=high)
    if type_name.startswith("tuple"):
        return _csv(raw)
    if name in _URLS and raw.strip():
        return _url(name, raw)
    if name in _CRONS:
        return _cron(name, raw)
    if name == "PIPELINES":
        parse_pipelines(raw, name)  # validated here, parsed where used
    return raw
