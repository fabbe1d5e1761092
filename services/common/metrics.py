"""Prometheus metrics shared by every API and worker process.

Labels are route templates, topics and groups — never concrete paths or ids, which would leak client ids
into a monitoring system and explode cardinality. gunicorn runs several processes per API, so the APIs use
prometheus_client's multiprocess mode (deploy/gunicorn.conf.py sets PROMETHEUS_MULTIPROC_DIR).
"""
from __future__ import annotations

import os

from prometheus_client import (CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Gauge, Histogram,
                               generate_latest, multiprocess)

HTTP_REQUESTS = Counter("rapport_http_requests_total", "HTTP requests answered",
                        ["service", "route", "method", "status"])
HTTP_LATENCY = Histogram("rapport_http_request_seconds", "HTTP request latency", ["service", "route", "method"],
                         buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
EVENTS_CONSUMED = Counter("rapport_events_consumed_total", "Messages taken off a topic, by outcome",
                          ["group", "topic", "outcome"])
EVENTS_PUBLISHED = Counter("rapport_events_published_total", "Events acknowledged by the broker",
                           ["service", "topic"])
HANDLER_LATENCY = Histogram("rapport_handler_seconds", "Time to handle one consumed event", ["group", "topic"],
                            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5))
CONSUMER_LAG = Gauge("rapport_consumer_lag", "Messages behind the end of the partition",
                     ["group", "topic", "partition"], multiprocess_mode="max")
CONSUMER_HALTED = Gauge("rapport_consumer_halted", "1 when the consumer stopped itself (too many DLQ'd)",
                        ["group"], multiprocess_mode="max")


def render() -> tuple[bytes, str]:
    """The exposition text for this process, or for all processes of a gunicorn API."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
