"""The real receivers notify's tests deliver to: an SMTP server (aiosmtpd) and an HTTP server that checks
the webhook signature. Imported by the other notify tests; the tests here check the receivers themselves,
so that a delivery test cannot pass because its receiver accepts anything."""
from __future__ import annotations

import json
import smtplib
import threading
import urllib.error
import urllib.request
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aiosmtpd.controller import Controller

from services.notify import domain
from tests.support.components import free_port


class SmtpInbox:
    """aiosmtpd handler keeping every accepted message with its envelope recipients."""

    def __init__(self):
        self.messages: list[tuple[list[str], EmailMessage]] = []
        self._lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        message = message_from_bytes(envelope.original_content or envelope.content, policy=policy.default)
        with self._lock:
            self.messages.append((list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[EmailMessage]:
        with self._lock:
            return [m for rcpts, m in self.messages if address in rcpts]


class SmtpServer:
    def __init__(self):
        self.inbox = SmtpInbox()
        self.port = free_port()
        self._controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)

    def __enter__(self):
        self._controller.start()
        return self

    def __exit__(self, *_):
        self._controller.stop()


class WebhookReceiver:
    """A local HTTP endpoint that verifies X-Rapport-Signature with the secret notify handed out.

    It answers 401 to a bad signature and, while `fail_next` > 0, 500 to a good one (to test retries).
    """

    def __init__(self):
        self.secret = ""
        self.fail_next = 0
        self.received: list[dict] = []  # {"verified", "body", "delivery_id", "status"}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                verified = domain.verify_webhook(receiver.secret, self.headers.get("X-Rapport-Signature", ""), body)
                status = 401 if not verified else 500 if receiver.fail_next > 0 else 200
                if verified and receiver.fail_next > 0:
                    receiver.fail_next -= 1
                receiver.received.append({"verified": verified, "body": json.loads(body), "status": status,
                                          "delivery_id": self.headers.get("X-Rapport-Delivery")})
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_port}/hooks/rapport"

    def accepted(self) -> list[dict]:
        return [r for r in self.received if r["status"] == 200]

    def __enter__(self):
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *_):
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def smtp_server():
    with SmtpServer() as server:
        yield server


@pytest.fixture
def webhook_receiver():
    with WebhookReceiver() as receiver:
        yield receiver


def test_the_smtp_server_keeps_what_it_accepted(smtp_server):
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "a@example.org", "b@example.org", "hello"
    message.set_content("body")
    with smtplib.SMTP("127.0.0.1", smtp_server.port, timeout=5) as smtp:
        smtp.send_message(message)
    [received] = smtp_server.inbox.to("b@example.org")
    assert received["Subject"] == "hello"


def test_the_webhook_receiver_rejects_a_wrong_signature(webhook_receiver):
    webhook_receiver.secret = "right"
    body = b'{"x":1}'
    for secret, expected in (("wrong", 401), ("right", 200)):
        request = urllib.request.Request(webhook_receiver.url, data=body, method="POST", headers={
            "X-Rapport-Signature": domain.sign_webhook(secret, 1700000000, body)})
        try:
            status = urllib.request.urlopen(request, timeout=5).status
        except urllib.error.HTTPError as exc:
            status = exc.code
        assert status == expected
    assert [r["verified"] for r in webhook_receiver.received] == [False, True]
