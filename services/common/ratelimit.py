"""Rate limits: a shared fixed-window counter in the database (for what must hold across every process, like
sign-in attempts per account and per address), and a per-process limit on each caller's API requests.

The shared counter is one upserted document per (bucket, key, window) with $inc: atomic on a single document,
so it needs no transactions. The per-caller API limit is kept in memory per process — approximate (a caller
spread over N processes gets up to N times the limit) but free of a database write per request; it exists to
stop a runaway script, not to meter usage.
"""
from __future__ import annotations

import math
import threading
import time
from collections import defaultdict
from dataclasses import dataclass

import mongoengine as me
from flask import Flask, jsonify, request
from pymongo import ReturnDocument


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after_s: int


class RateWindow(me.Document):
    id = me.StringField(primary_key=True)  # "<bucket>|<key>|<window start>"
    count = me.IntField(default=0)
    expires_at = me.DateTimeField()
    meta = {"collection": "rate_windows"}


def hit(bucket: str, key: str, limit: int, window_s: int, now: float | None = None) -> Decision:
    """Count one attempt for `key` in the current window of `window_s` seconds; allowed while ≤ `limit`."""
    now = time.time() if now is None else now
    start = int(now // window_s) * window_s
    document = RateWindow._get_collection().find_one_and_update(
        {"_id": f"{bucket}|{key}|{start}"}, {"$inc": {"count": 1}}, upsert=True,
        return_document=ReturnDocument.AFTER)
    retry_after = max(1, math.ceil(start + window_s - now))
    return Decision(document["count"] <= limit, 0 if document["count"] <= limit else retry_after)


def too_many(decision: Decision):
    response = jsonify(code=429, status="Too Many Requests",
                       message=f"Too many attempts; try again in {decision.retry_after_s} s.")
    return response, 429, {"Retry-After": str(decision.retry_after_s)}


class CallerLimiter:
    """At most `per_minute` API requests per caller per process, as a token bucket."""

    def __init__(self, per_minute: int):
        self._rate, self._capacity = per_minute / 60.0, float(per_minute)
        self._buckets: dict[str, tuple[float, float]] = defaultdict(lambda: (self._capacity, time.monotonic()))
        self._lock = threading.Lock()

    def take(self, caller: str) -> Decision:
        with self._lock:
            tokens, last = self._buckets[caller]
            now = time.monotonic()
            tokens = min(self._capacity, tokens + (now - last) * self._rate)
            if tokens < 1:
                self._buckets[caller] = (tokens, now)
                return Decision(False, max(1, math.ceil((1 - tokens) / self._rate)))
            self._buckets[caller] = (tokens - 1, now)
            return Decision(True, 0)


def init_app(app: Flask, per_minute: int, caller: callable) -> None:
    limiter = CallerLimiter(per_minute)

    @app.before_request
    def limit_api_callers():
        if not request.path.startswith("/api/"):
            return None
        who = caller()
        decision = limiter.take(who or f"address:{request.remote_addr}")
        return None if decision.allowed else too_many(decision)
