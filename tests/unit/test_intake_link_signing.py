"""Signed client links: they name one request, expire, and cannot be forged or moved between kinds."""
from datetime import datetime, timedelta, timezone

import pytest

from services.intake.adapters import links

SECRET = "a-test-secret-of-sufficient-length-0000"
NOW = datetime(2026, 3, 1, 12, tzinfo=timezone.utc)
EXPIRES = NOW + timedelta(hours=72)


def test_a_link_names_its_request_until_it_expires():
    token = links.sign(SECRET, "feedback", "req-1", EXPIRES)
    assert links.verify(SECRET, "feedback", token, now=NOW) == "req-1"
    assert links.verify(SECRET, "feedback", token, now=EXPIRES - timedelta(seconds=1)) == "req-1"
    with pytest.raises(links.LinkExpired):
        links.verify(SECRET, "feedback", token, now=EXPIRES)


def test_a_feedback_link_does_not_open_an_exit_interview():
    token = links.sign(SECRET, "feedback", "req-1", EXPIRES)
    with pytest.raises(links.LinkInvalid):
        links.verify(SECRET, "exit_interview", token, now=NOW)


def test_a_tampered_or_foreign_token_is_invalid():
    token = links.sign(SECRET, "feedback", "req-1", EXPIRES)
    payload, signature = token.split(".")
    for forged in (f"{payload}x.{signature}", token[:-3], "garbage", ""):
        with pytest.raises(links.LinkInvalid):
            links.verify(SECRET, "feedback", forged, now=NOW)
    with pytest.raises(links.LinkInvalid):
        links.verify("another-secret-of-sufficient-length-000", "feedback", token, now=NOW)


def test_the_expiry_cannot_be_extended_by_editing_the_token():
    from itsdangerous import URLSafeSerializer
    unsigned = URLSafeSerializer("guess", salt="rapport-intake-feedback-link").dumps(
        {"r": "req-1", "e": int((NOW + timedelta(days=365)).timestamp())})
    with pytest.raises(links.LinkInvalid):
        links.verify(SECRET, "feedback", unsigned, now=NOW)


def test_unknown_kinds_are_a_programming_error():
    with pytest.raises(ValueError):
        links.sign(SECRET, "survey", "req-1", EXPIRES)
