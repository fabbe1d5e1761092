"""What notify's tests share: the real receivers they deliver to (an SMTP server from aiosmtpd, an HTTP
server that checks the webhook signature) and a publisher that survives a freshly started broker.
Imported by the other notify tests; the tests here check the receivers themselves, so that a delivery test
cannot pass because its receiver accepts anything."""
from __future__ import annotations

import asyncio
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
from kafka.errors import KafkaError

from deploy.local.components import free_port
from services.common.config import Settings
from services.common.events import Event
from services.common.kafka import EventProducer
from services.common.webhooks import sign_webhook, verify_webhook
from tests.support.kafka_reader import wait_for


def publish(settings: Settings, events: list[Event]) -> None:
    """Publish keyed as the platform does (client id, else staff or counselor id). On a broker started
    moments ago partition leaders may still move, so a send that failed is tried again (same event id:
    a double is deduplicated by the consumer)."""
    producer = EventProducer(settings)
    try:
        for e in events:
            key = next(getattr(e.payload, name) for name in ("client_id", "staff_id", "counselor_id")
                       if getattr(e.payload, name, None))
            wait_for(lambda: _sent(producer, e, key), timeout_s=30, interval_s=0.5)
    finally:
        producer.close()


def _sent(producer: EventProducer, e: Event, key: str) -> bool:
    try:
        producer.publish(e, key)
        return True
    except KafkaError:
        return False


class SmtpInbox:
    """aiosmtpd handler keeping every accepted message with its envelope recipients; `delay_s` paces the
    server like a slow relay, so a test can kill a sender between messages."""

    def __init__(self, delay_s: float = 0.0):
        self.messages: list[tuple[list[str], EmailMessage]] = []
        self.delay_s = delay_s
        self._lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        message = message_from_bytes(envelope.original_content or envelope.content, policy=policy.default)
        with self._lock:
            self.messages.append((list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[EmailMessage]:
        with self._lock:
            return [m for rcpts, m in self.messages if address in rcpts]


class SmtpServer:
    def __init__(self, delay_s: float = 0.0):
        self.inbox = SmtpInbox(delay_s)
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
        self.redirect_to: str | None = None  # answer every POST with a redirect there
        self.received: list[dict] = []  # {"verified", "body", "delivery_id", "status"}
        self.fetched: list[str] = []  # paths of GET requests (what following a redirect would do)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                verified = verify_webhook(receiver.secret, self.headers.get("X-Rapport-Signature", ""), body)
                status = 401 if not verified else 500 if receiver.fail_next > 0 else 200
                if verified and receiver.fail_next > 0:
                    receiver.fail_next -= 1
                if receiver.redirect_to:
                    status = 302
                receiver.received.append({"verified": verified, "body": json.loads(body), "status": status,
                                          "delivery_id": self.headers.get("X-Rapport-Delivery")})
                self.send_response(status)
                if receiver.redirect_to:
                    self.send_header("Location", receiver.redirect_to)
                self.end_headers()

            def do_GET(self):
                receiver.fetched.append(self.path)
                self.send_response(200)
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
            "X-Rapport-Signature": sign_webhook(secret, 1700000000, body)})
        try:
            status = urllib.request.urlopen(request, timeout=5).status
        except urllib.error.HTTPError as exc:
            status = exc.code
        assert status == expected
    assert [r["verified"] for r in webhook_receiver.received] == [False, True]
