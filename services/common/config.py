"""Settings read from the environment, so that one image serves every deployment.

Every variable starts with RAPPORT_; `create_app(config)` and the workers accept the same keys as a dict
(lower-case, without the prefix) to override them in tests.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from typing import Any, Mapping

from services.common.mail import SmtpSettings


DEVELOPMENT_JWT_SECRET = "rapport-development-only-secret-change-me-000000"
KAFKA_SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")


# Keyword-only: `service` has no default and follows SmtpSettings' fields.
@dataclass(frozen=True, kw_only=True)
class Settings(SmtpSettings):
    """Every service's settings, from RAPPORT_<NAME> variables. The smtp_* fields (SmtpSettings) are the relay
    for messages to clients, which intake sends: their links and reminders."""
    service: str
    kafka_bootstrap: str = "127.0.0.1:9092"
    # How every Kafka client of the service connects: PLAINTEXT (local), SSL, SASL_PLAINTEXT or SASL_SSL. With
    # SASL each service signs in as its own principal, so the broker's ACLs can limit it to its own topics.
    kafka_security_protocol: str = "PLAINTEXT"
    kafka_ssl_cafile: str = ""
    kafka_ssl_certfile: str = ""  # with kafka_ssl_keyfile: a client certificate (mutual TLS)
    kafka_ssl_keyfile: str = ""
    kafka_sasl_mechanism: str = ""  # PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512
    kafka_sasl_username: str = ""
    kafka_sasl_password: str = ""
    mongo_uri: str = "mongodb://127.0.0.1:27017/"
    # Each service owns one database, named <db_prefix>_<service>; tests use their own prefix.
    db_prefix: str = "rapport"
    topic_partitions: int = 3
    topic_replication: int = 1
    max_body_bytes: int = 1024 * 1024
    # A handler that raises this many times for one message sends it to the dead-letter topic.
    consumer_max_attempts: int = 3
    consumer_retry_backoff_s: float = 0.2
    consumer_max_backoff_s: float = 10.0
    # A consumer stops itself (and reports unready) when more than this share of its last 100 messages
    # went to the dead-letter topic.
    consumer_dlq_halt_share: float = 0.5
    # The consumer group of the service's worker; empty means the service's name.
    consumer_group: str = ""
    # Port of a worker's small HTTP server (/healthz, /readyz, /metrics); 0 turns it off.
    worker_http_port: int = 0
    worker_http_host: str = "127.0.0.1"
    # Per caller (signed-in staff member, else address) and process; 429 with Retry-After beyond it.
    api_requests_per_minute: int = 1200
    # The outbox relay publishes events an API could not publish itself once they are this old.
    outbox_grace_s: float = 5.0
    outbox_poll_s: float = 1.0
    log_level: str = "INFO"
    # "development" allows the built-in JWT secret; anything else refuses to start without a real one.
    environment: str = "development"
    # Shared by every service: intake signs staff tokens with it, every service verifies them.
    jwt_secret: str = DEVELOPMENT_JWT_SECRET
    # A signed-in session (token) lapses after this long without a request ...
    session_idle_minutes: int = 30
    # ... and ends this long after the sign-in, however active.
    session_max_hours: int = 12
    # Where each service's pages are reachable from a browser, for links between them (and sign-in).
    intake_url: str = "http://127.0.0.1:8001"
    scoring_url: str = "http://127.0.0.1:8002"
    referral_url: str = "http://127.0.0.1:8003"
    notify_url: str = "http://127.0.0.1:8004"
    # Reminders of an unanswered client link, sent by intake's worker: the first this many hours after the
    # link was created or last sent, at most `link_reminder_max` of them (0: none), checked every poll.
    link_reminder_after_hours: float = 48.0
    link_reminder_max: int = 1
    link_reminder_poll_s: float = 60.0
    # Text messages go to an SMS gateway of the deployment's choosing as a signed webhook (POST {to, body});
    # no URL means no SMS at all. The secret signs each request (X-Rapport-Signature).
    sms_webhook_url: str = ""
    sms_webhook_secret: str = ""
    # Internal hosts or networks the SMS webhook may reach (comma-separated), as notify's webhook_allowed.
    sms_webhook_allowed: str = ""

    @property
    def database(self) -> str:
        return f"{self.db_prefix}_{self.service}"

    @property
    def kafka_client_options(self) -> dict[str, Any]:
        """Connection options shared by every kafka-python client (producer, consumer, admin)."""
        options: dict[str, Any] = {"bootstrap_servers": self.kafka_bootstrap,
                                   "security_protocol": self.kafka_security_protocol}
        optional = {"ssl_cafile": self.kafka_ssl_cafile, "ssl_certfile": self.kafka_ssl_certfile,
                    "ssl_keyfile": self.kafka_ssl_keyfile, "sasl_mechanism": self.kafka_sasl_mechanism,
                    "sasl_plain_username": self.kafka_sasl_username,
                    "sasl_plain_password": self.kafka_sasl_password}
        return options | {name: value for name, value in optional.items() if value}

    @classmethod
    def load(cls, service: str, overrides: Mapping[str, Any] | None = None,
             environ: Mapping[str, str] | None = None) -> "Settings":
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for field in fields(cls):
            if field.name == "service":
                continue
            raw = environ.get(f"RAPPORT_{field.name.upper()}")
            if raw is not None:
                values[field.name] = coerce(field.type, raw, f"RAPPORT_{field.name.upper()}")
        settings = replace(cls(service=service, **values), **dict(overrides or {}))
        if settings.environment != "development" and settings.jwt_secret == DEVELOPMENT_JWT_SECRET:
            raise ValueError("RAPPORT_JWT_SECRET must be set outside development (RAPPORT_ENVIRONMENT)")
        if len(settings.jwt_secret) < 32:
            raise ValueError("RAPPORT_JWT_SECRET must be at least 32 characters")
        if settings.sms_webhook_url and len(settings.sms_webhook_secret) < 16:
            raise ValueError("RAPPORT_SMS_WEBHOOK_URL needs RAPPORT_SMS_WEBHOOK_SECRET (at least 16 characters)")
        if settings.kafka_security_protocol not in KAFKA_SECURITY_PROTOCOLS:
            raise ValueError(f"RAPPORT_KAFKA_SECURITY_PROTOCOL must be one of {', '.join(KAFKA_SECURITY_PROTOCOLS)}")
        if settings.kafka_security_protocol.startswith("SASL") and not (
                settings.kafka_sasl_mechanism and settings.kafka_sasl_username and settings.kafka_sasl_password):
            raise ValueError("SASL needs RAPPORT_KAFKA_SASL_MECHANISM, RAPPORT_KAFKA_SASL_USERNAME and "
                             "RAPPORT_KAFKA_SASL_PASSWORD")
        return settings


def coerce(type_name: Any, raw: str, variable: str) -> Any:
    """An environment variable's text as its field's type (under `from __future__ import annotations` the
    type is its name); a value that does not fit names the variable."""
    try:
        if type_name in (bool, "bool"):
            if raw.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(raw)
            return raw.lower() in ("true", "1", "yes")
        if type_name in (int, "int"):
            return int(raw)
        if type_name in (float, "float"):
            return float(raw)
    except ValueError:
        expected = "true or false" if type_name in (bool, "bool") else "a number"
        raise ValueError(f"{variable} must be {expected}, got {raw!r}") from None
    return raw
