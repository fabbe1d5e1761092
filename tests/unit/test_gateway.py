"""The local one-origin gateway (deploy/local/gateway.py) routes as deploy/proxy/nginx.conf does: which upstream
gets a path, with the full path, the client's Host and the prefix in SCRIPT_NAME. The upstream is a fake that
echoes what it received."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from werkzeug.test import Client

from deploy.local.gateway import gateway


class Echo(BaseHTTPRequestHandler):
    """A fake upstream answering with what it received, headers as sent (a WSGI server would drop SCRIPT_NAME,
    a header with an underscore; gunicorn takes it from the gateway's address)."""

    def answer(self):
        path, _, query = self.path.partition("?")
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        sent = json.dumps({"upstream": self.server.name, "path": path, "query": query,
                           "host": self.headers.get("Host"), "script_name": self.headers.get("SCRIPT_NAME"),
                           "body": body}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(sent)))
        self.end_headers()
        self.wfile.write(sent)

    do_GET = do_POST = answer

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def through_gateway():
    servers = {}
    for name in ("intake", "scoring", "referral", "notify"):
        servers[name] = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
        servers[name].name = name
        threading.Thread(target=servers[name].serve_forever, daemon=True).start()
    yield Client(gateway({name: f"http://127.0.0.1:{s.server_port}" for name, s in servers.items()}))
    for server in servers.values():
        server.shutdown()


@pytest.mark.parametrize("path, upstream, script_name", [
    ("/scoring/alliance", "scoring", "/scoring"), ("/referral/referrals/r-1", "referral", "/referral"),
    ("/notify/inbox", "notify", "/notify"), ("/", "intake", None), ("/api/people", "intake", None),
    ("/scoringx", "intake", None)])
def test_each_prefix_goes_to_its_service_with_the_full_path_and_the_prefix_named(through_gateway, path, upstream,
                                                                                 script_name):
    answer = through_gateway.get(f"{path}?a=1&a=2", headers={"Host": "rapport.test:8000"}).get_json()
    assert answer == {"upstream": upstream, "path": path, "query": "a=1&a=2", "host": "rapport.test:8000",
                      "script_name": script_name, "body": ""}


def test_a_posted_body_reaches_the_service(through_gateway):
    answer = through_gateway.post("/notify/inbox/acknowledge", data="ids=n-1").get_json()
    assert (answer["upstream"], answer["body"]) == ("notify", "ids=n-1")


def test_a_bare_prefix_is_redirected_and_metrics_stay_inside(through_gateway):
    redirected = through_gateway.get("/scoring")
    assert redirected.status_code == 308 and redirected.headers["Location"] == "/scoring/"
    for path in ("/metrics", "/notify/metrics"):
        assert through_gateway.get(path).status_code == 404
    assert through_gateway.get("/_proxy/healthz").text == "ok\n"
