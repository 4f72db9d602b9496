"""Broker and report settings for PACER consumers, read from the environment once.

The variable names are the dashboard's (DESIGN §12), so one `.env` serves both. Every part of the
broker URL is quoted with `safe=''`: a password such as `pa/ss@w:rd%1` must work as typed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote

from kombu import Connection

DEFAULT_REPORT_EXCHANGE = "dashboard-logging-exchange"
DEFAULT_REPORT_ROUTING_KEY = "message.logging"
DEFAULT_REPORT_QUEUE = "dashboard-logging"


class ConfigError(ValueError):
    """A setting is missing or invalid; the message names the variable."""


@dataclass(frozen=True)
class BrokerSettings:
    """Where RabbitMQ is and how to log in (RMQ_* variables)."""

    host: str
    protocol: str = "amqp"
    port: int = 5672
    username: str = "pacer-dashboard"
    password: str = ""
    vhost: str = "/"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> BrokerSettings:
        """Read RMQ_PROTOCOL, RMQ_HOST, RMQ_PORT, RMQ_USERNAME, RMQ_PASSWORD, RMQ_VHOST."""
        env = os.environ if environ is None else environ
        host = env.get("RMQ_HOST", "").strip()
        if not host:
            raise ConfigError("RMQ_HOST is required (the RabbitMQ host name)")
        protocol = env.get("RMQ_PROTOCOL", "amqp").strip().lower() or "amqp"
        if protocol not in ("amqp", "amqps"):
            raise ConfigError(f"RMQ_PROTOCOL must be 'amqp' or 'amqps', not {protocol!r}")
        raw_port = env.get("RMQ_PORT", "5672").strip() or "5672"
        try:
            port = int(raw_port)
        except ValueError:
            raise ConfigError(f"RMQ_PORT must be an integer, not {raw_port!r}") from None
        if not 0 < port < 65536:
            raise ConfigError(f"RMQ_PORT must be between 1 and 65535, not {port}")
        return cls(
            host=host,
            protocol=protocol,
            port=port,
            username=env.get("RMQ_USERNAME", "pacer-dashboard"),
            password=env.get("RMQ_PASSWORD", ""),
            vhost=env.get("RMQ_VHOST", "/") or "/",
        )

    @property
    def url(self) -> str:
        """The AMQP URL, every part quoted (kombu unquotes each one again)."""
        user = quote(self.username, safe="")
        password = quote(self.password, safe="")
        host = quote(self.host, safe="")
        vhost = quote(self.vhost, safe="")
        return f"{self.protocol}://{user}:{password}@{host}:{self.port}/{vhost}"

    def __repr__(self) -> str:  # never print the password
        return (
            f"BrokerSettings(protocol={self.protocol!r}, host={self.host!r}, port={self.port}, "
            f"username={self.username!r}, vhost={self.vhost!r})"
        )

    def connection(self, *, confirm_publish: bool = False, heartbeat: float = 30) -> Connection:
        """A new (lazy) kombu connection; `confirm_publish` turns on publisher confirms."""
        options = {"confirm_publish": True} if confirm_publish else {}
        return Connection(
            self.url,
            ssl=self.protocol == "amqps",
            heartbeat=heartbeat,
            transport_options=options,
        )


@dataclass(frozen=True)
class ReportSettings:
    """Where reports go: the dashboard's direct exchange and routing key."""

    exchange: str = DEFAULT_REPORT_EXCHANGE
    routing_key: str = DEFAULT_REPORT_ROUTING_KEY
    #: Declared and bound by the worker when set, so reports wait for a dashboard that is down.
    queue: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ReportSettings:
        """Read DASHBOARD_EXCHANGE, DASHBOARD_ROUTING_KEY and (optional) DASHBOARD_QUEUE."""
        env = os.environ if environ is None else environ
        return cls(
            exchange=env.get("DASHBOARD_EXCHANGE") or DEFAULT_REPORT_EXCHANGE,
            routing_key=env.get("DASHBOARD_ROUTING_KEY") or DEFAULT_REPORT_ROUTING_KEY,
            queue=env.get("DASHBOARD_QUEUE") or None,
        )
