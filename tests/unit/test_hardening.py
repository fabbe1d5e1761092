"""The small guards behind the security hardening: JSON depth, plain-text names, webhook destinations."""
import ipaddress
import json

import pytest
from marshmallow import ValidationError

from services.common.schemas import PlainText
from services.common.web.app import json_depth
from services.common.webhooks import (NOT_ALLOWED, Allowance, DeliveryError, check_url, is_public, sign_webhook,
                                      verify_webhook, vetted_address)


def test_json_depth_counts_nesting_outside_strings():
    assert json_depth(b"{}") == 1 and json_depth(b"[[[]]]") == 3
    assert json_depth(json.dumps({"a": "[[[[{{{{", "b": [{"c": 1}]}).encode()) == 3
    assert json_depth(json.dumps({"q": 'a \\" [[['}).encode()) == 1  # an escaped quote keeps the string open
    assert json_depth(b"[" * 10_000) == 10_000


@pytest.mark.parametrize("name", ["Ana\u202eniL", "Ana\x00", "Ana\x1b[31m", "A\u2067na", "Ana\nLee"])
def test_a_name_refuses_control_and_bidi_characters(name):
    with pytest.raises(ValidationError, match="control character"):
        PlainText()(name)


def test_plain_text_keeps_every_script_and_line_breaks_where_allowed():
    for name in ("Zoë Ó'Brien", "محمد", "李雷", "Ana-María", "\u0928\u092e\u0938\u094d\u200c\u0924\u0947"):
        assert PlainText()(name) == name
    assert PlainText(multiline=True)("line one\nline two\ttab") == "line one\nline two\ttab"


@pytest.mark.parametrize("address, public", [
    ("93.184.216.34", True), ("2606:2800:220:1:248:1893:25c8:1946", True), ("127.0.0.1", False),
    ("10.1.2.3", False), ("172.16.0.1", False), ("192.168.1.1", False), ("169.254.169.254", False),
    ("100.64.0.1", False), ("0.0.0.0", False), ("224.0.0.1", False), ("::1", False), ("fd00::1", False),
    ("fe80::1", False), ("::ffff:127.0.0.1", False), ("::ffff:93.184.216.34", True)])
def test_only_public_addresses_are_public(address, public):
    assert is_public(ipaddress.ip_address(address)) is public


def test_a_webhook_url_is_https_without_credentials_unless_development_allows_http():
    assert check_url("https://hooks.example.org/a?b=1", allow_http=False) == ("https", "hooks.example.org", 443,
                                                                            "/a?b=1")
    for url in ("http://hooks.example.org/a", "https://user:pw@hooks.example.org/a", "ftp://x.example/a",
                "https:///nohost"):
        with pytest.raises(DeliveryError, match=NOT_ALLOWED):
            check_url(url, allow_http=False)
    assert check_url("http://127.0.0.1:8080/x", allow_http=True)[2] == 8080


def test_names_resolving_to_internal_addresses_are_refused_unless_the_deployment_allows_them():
    with pytest.raises(DeliveryError, match=NOT_ALLOWED):
        vetted_address("localhost", 80, Allowance())
    assert vetted_address("localhost", 80, Allowance.parse("localhost")) in ("127.0.0.1", "::1")
    assert vetted_address("127.0.0.1", 80, Allowance.parse(" 10.0.0.0/8 , 127.0.0.0/8 ")) == "127.0.0.1"
    allowance = Allowance.parse("10.20.0.0/16,Hooks.Internal.example.")
    assert allowance.permits("hooks.internal.example", ipaddress.ip_address("192.168.1.1"))
    assert allowance.permits("other.example", ipaddress.ip_address("10.20.3.4"))
    assert not allowance.permits("other.example", ipaddress.ip_address("10.21.3.4"))


def test_a_webhook_signature_binds_body_and_timestamp():
    header = sign_webhook("s3cret", 1700000000, b'{"a":1}')
    assert header.startswith("t=1700000000,v1=")
    assert verify_webhook("s3cret", header, b'{"a":1}')
    assert not verify_webhook("s3cret", header, b'{"a":2}')
    assert not verify_webhook("other", header, b'{"a":1}')
    assert not verify_webhook("s3cret", header.replace("t=1700000000", "t=1700000001"), b'{"a":1}')
