"""Liveness, readiness and metrics of every API, and its database and Kafka extensions."""
from __future__ import annotations

import logging
import os
from typing import Callable

from flask import Blueprint, Flask, current_app, jsonify

from services.common import mongo
from services.common.config import Settings
from services.common.kafka import BrokerProbe, EventProducer
from services.common.metrics import render as render_metrics

log = logging.getLogger(__name__)
API_SEND_TIMEOUT_S = 2.0


class MongoExtension:
    def init_app(self, app: Flask) -> None:
        mongo.connect(app.extensions["rapport.settings"])


class KafkaClients:
    """One app's producer and broker probe, created on first use in each process: neither may cross
    gunicorn's fork, and a producer opened before it would be shared by every worker."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._producer: EventProducer | None = None
        self._probe: BrokerProbe | None = None
        self._pid: int | None = None

    def _this_process(self) -> None:
        if self._pid != os.getpid():
            self._producer, self._probe, self._pid = None, None, os.getpid()

    def producer(self) -> EventProducer:
        self._this_process()
        if self._producer is None:
            # A short timeout: when the broker is away the request still succeeds (the outbox relay
            # publishes later), so waiting long would only make every request slow.
            self._producer = EventProducer(self._settings, timeout_s=API_SEND_TIMEOUT_S)
        return self._producer

    def probe(self) -> BrokerProbe:
        self._this_process()
        if self._probe is None:
            self._probe = BrokerProbe(self._settings)
        return self._probe

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close()
        if self._probe is not None:
            self._probe.close()
        self._producer = self._probe = None


class KafkaExtension:
    def init_app(self, app: Flask) -> None:
        app.extensions["rapport.kafka"] = KafkaClients(app.extensions["rapport.settings"])

    @staticmethod
    def _clients() -> KafkaClients:
        return current_app.extensions["rapport.kafka"]

    def send(self, topic: str, key: str, value: bytes) -> None:
        self._clients().producer().send(topic, key, value)

    def check_broker(self) -> None:
        self._clients().probe().check()


mongo_ext = MongoExtension()
kafka_ext = KafkaExtension()

health = Blueprint("health", __name__)


@health.get("/healthz")
def healthz():
    """Alive: the process answers. Says nothing about its dependencies (that is /readyz)."""
    return jsonify(status="ok")


@health.get("/metrics")
def metrics():
    body, content_type = render_metrics()
    return body, 200, {"Content-Type": content_type}


@health.get("/readyz")
def readyz():
    """Ready: the database and the Kafka broker are reachable; 503 with the failing checks otherwise."""
    checks = {"database": _check(mongo.ping), "kafka": _check(kafka_ext.check_broker)}
    ready = all(v == "ok" for v in checks.values())
    return jsonify(status="ready" if ready else "unavailable", checks=checks), 200 if ready else 503


def _check(probe: Callable[[], None]) -> str:
    try:
        probe()
        return "ok"
    except Exception as exc:  # readiness reports any failure as a state, never as a 500
        return f"failed: {type(exc).__name__}"
