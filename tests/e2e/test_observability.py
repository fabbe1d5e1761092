"""Every process started for the platform answers probes and exposes Prometheus metrics."""
from __future__ import annotations

import requests


def test_every_api_and_worker_serves_metrics_and_probes(platform):
    for name, url in {**{f"{k}-api": v for k, v in platform.urls.items()},
                      **{f"{k}-worker": v for k, v in platform.worker_urls.items()}}.items():
        assert requests.get(f"{url}/healthz", timeout=5).status_code == 200, name
        assert requests.get(f"{url}/readyz", timeout=10).status_code == 200, name
        metrics = requests.get(f"{url}/metrics", timeout=5)
        assert metrics.status_code == 200 and "# TYPE rapport_" in metrics.text, name


def test_api_metrics_count_requests_by_route_template_not_by_id(platform):
    url = platform.urls["referral"]
    requests.get(f"{url}/api/intakes/some-client-id-123", timeout=5)
    text = requests.get(f"{url}/metrics", timeout=5).text
    assert 'route="/api/intakes/<intake_id>"' in text
    assert "some-client-id-123" not in text


def test_a_request_id_is_echoed_for_tracing(platform):
    response = requests.get(f"{platform.urls['scoring']}/healthz", headers={"X-Request-ID": "trace-42"},
                            timeout=5)
    assert response.headers["X-Request-ID"] == "trace-42"
