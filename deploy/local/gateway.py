"""One origin locally, routed as deploy/proxy/nginx.conf routes it in production:

    /           -> intake   (sign-in, front desk, client links)
    /scoring/   -> scoring
    /referral/  -> referral
    /notify/    -> notify

The full path goes upstream with the client's Host and, under a prefix, a SCRIPT_NAME header naming it;
gunicorn (which trusts it from 127.0.0.1, its default forwarded_allow_ips) moves the prefix from PATH_INFO to
SCRIPT_NAME, so each app matches its own routes and every url_for() link and redirect carries the prefix.
A caller cannot name a prefix of its own: werkzeug's server drops header names with an underscore, and what
is forwarded goes as Script-Name, which gunicorn does not read as SCRIPT_NAME.
With every RAPPORT_<SERVICE>_URL set to this origin plus the prefix, cookies, the Origin check and pages asking
intake's API (people.js) behave as behind the proxy. For local runs and tests only (werkzeug's proxy, one
connection per request); production runs nginx.

    python deploy/local/gateway.py --port 8000 --intake URL --scoring URL --referral URL --notify URL
"""
from __future__ import annotations

import argparse
import re

from werkzeug.middleware.http_proxy import ProxyMiddleware
from werkzeug.serving import run_simple
from werkzeug.wrappers import Response

PREFIXED = ("scoring", "referral", "notify")
# As nginx: /metrics are for Prometheus inside the network, never through the public origin.
METRICS = re.compile(r"^/(scoring/|referral/|notify/)?metrics$")
# Upstream answers within this; nginx's proxy_read_timeout is 30 s too.
TIMEOUT_S = 30


def gateway(upstreams: dict[str, str]):
    """The WSGI app routing to `upstreams` (service -> base URL, e.g. {"intake": "http://127.0.0.1:8001"})."""
    def target(service: str, prefix: str) -> dict:
        # host=None keeps the client's Host: the apps see the public origin (links, Origin check, cookies).
        return {"target": upstreams[service], "host": None, "headers": {"SCRIPT_NAME": prefix} if prefix else {},
                "remove_prefix": False, "ssl_context": None}

    proxy = ProxyMiddleware(_not_routed, {f"/{s}/": target(s, f"/{s}") for s in PREFIXED}, timeout=TIMEOUT_S)
    intake = target("intake", "")

    def app(environ, start_response):
        path = environ.get("PATH_INFO", "") or "/"
        if path == "/_proxy/healthz":
            return Response("ok\n", mimetype="text/plain")(environ, start_response)
        if METRICS.match(path):
            return Response("Not found\n", status=404, mimetype="text/plain")(environ, start_response)
        if path.strip("/") in PREFIXED and not path.endswith("/"):
            return Response(status=308, headers={"Location": f"{path}/"})(environ, start_response)
        if any(path.startswith(f"/{s}/") for s in PREFIXED):
            return proxy(environ, start_response)
        return proxy.proxy_to(intake, path, "")(environ, start_response)

    return app


def _not_routed(environ, start_response):  # every path is routed above; ProxyMiddleware wants an app behind it
    return Response(status=404)(environ, start_response)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    for service in ("intake", *PREFIXED):
        parser.add_argument(f"--{service}", required=True, help=f"{service}'s own URL, e.g. http://127.0.0.1:8001")
    args = parser.parse_args(argv)
    app = gateway({s: getattr(args, s) for s in ("intake", *PREFIXED)})
    run_simple(args.host, args.port, app, threaded=True)


if __name__ == "__main__":
    main()
