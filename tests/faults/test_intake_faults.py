"""Intake's write-then-publish through a broker restart and an API that dies before it could publish."""
from __future__ import annotations

import os
import signal
import sys
import threading
import uuid
from collections import defaultdict

import requests

from deploy.local import runtime
from deploy.local.components import free_port, start_process
from deploy.local.runtime import ROOT
from services.common.auth import Identity
from services.common.events import Topic
from tests.support.identity import bearer
from tests.support.kafka_reader import events_on, wait_for



def start_intake_api(faulty, unique, folder, kafka_bootstrap: str | None = None):
    port = free_port()
    env = {**os.environ, "RAPPORT_KAFKA_BOOTSTRAP": kafka_bootstrap or faulty.kafka_bootstrap,
           "RAPPORT_MONGO_URI": faulty.mongo_uri, "RAPPORT_DB_PREFIX": f"f{unique}", "RAPPORT_WEB_WORKERS": "1",
           "RAPPORT_API_REQUESTS_PER_MINUTE": "100000"}
    process = start_process(f"intake-api-{port}", [
        sys.executable, "-m", "gunicorn", "-c", str(ROOT / "deploy" / "gunicorn.conf.py"), "-b", f"127.0.0.1:{port}",
        "services.intake.entrypoints.app:create_app()"], folder, env)
    url = f"http://127.0.0.1:{port}"
    runtime.wait_http([f"{url}/healthz"], timeout_s=60)
    return process, url


def new_clinic(url: str, org: str) -> tuple[str, dict]:
    admin = bearer(Identity(f"admin-{org[:8]}", org, (), "admin"))
    clinic = requests.post(f"{url}/api/clinics", json={"name": "North"}, headers=admin, timeout=10)
    assert clinic.status_code == 201, clinic.text
    clinic_id = clinic.json()["id"]
    return clinic_id, bearer(Identity(f"desk-{org[:8]}", org, (clinic_id,), "front_desk"))


def register(url: str, desk: dict, clinic: str, n: int) -> str | None:
    """Register a client, retrying with the same Idempotency-Key until an answer; its id if accepted."""
    key = f"register-{n}-{uuid.uuid4().hex[:8]}"
    for _ in range(20):
        try:
            response = requests.post(f"{url}/api/clients", headers={**desk, "Idempotency-Key": key}, timeout=30,
                                     json={"clinic_id": clinic, "first_name": "Fault", "last_name": f"Test{n}",
                                           "concerns": ["stress"]})
        except requests.RequestException:
            continue
        if response.status_code == 201:
            return response.json()["id"]
        if response.status_code < 500:
            raise AssertionError(response.text)
    return None


def announced(bootstrap: str, org: str) -> dict[str, set[str]]:
    """Per client: the ids of the intake.submitted events announcing it (copies of one event count once)."""
    per_client: dict[str, set[str]] = defaultdict(set)
    for event in events_on(bootstrap, Topic.INTAKE_SUBMITTED, lambda e: e["org_id"] == org):
        per_client[event["payload"]["client_id"]].add(event["event_id"])
    return per_client


def report(name: str, accepted: list[str], per_client: dict[str, set[str]]) -> dict:
    figures = {"lost": len(set(accepted) - set(per_client)),
               "duplicated": sum(1 for ids in per_client.values() if len(ids) > 1),
               "unexpected": len(set(per_client) - set(accepted))}
    print(f"\n{name}: {len(accepted)} accepted; " + ", ".join(f"{k} {v}" for k, v in figures.items()))
    return figures


def test_r1_a_broker_restart_while_intakes_arrive_loses_and_doubles_none(faulty, start_worker, unique, tmp_path):
    api, url = start_intake_api(faulty, unique, tmp_path)
    start_worker("intake", RAPPORT_OUTBOX_GRACE_S="1")
    clinic, desk = new_clinic(url, unique)
    accepted: list[str] = []
    stop = threading.Event()

    def post_continuously():
        n = 0
        while not stop.is_set() and n < 400:
            client = register(url, desk, clinic, n)
            if client:
                accepted.append(client)
            n += 1

    poster = threading.Thread(target=post_continuously)
    poster.start()
    try:
        wait_for(lambda: len(accepted) >= 20, timeout_s=60)
        faulty.process("kafka").stop()
        wait_for(lambda: len(accepted) >= 30, timeout_s=120)  # accepted while the broker is down
        faulty.start_again("kafka")
        wait_for(lambda: len(accepted) >= 60, timeout_s=120)
    finally:
        stop.set()
        poster.join(120)
        api.stop()

    per_client = wait_for(lambda: (lambda seen: seen if set(accepted) <= set(seen) else None)(
        announced(faulty.kafka_bootstrap, unique)), timeout_s=120, interval_s=1)
    figures = report("R1 (broker restarted mid-run)", accepted, per_client)
    assert figures == dict.fromkeys(figures, 0)


def test_r2_an_api_that_dies_after_the_write_before_the_publish_is_caught_up_by_the_relay(
        faulty, start_worker, unique, tmp_path):
    # The API cannot reach the broker, so every accepted intake stays in its document's outbox; then it is
    # killed. That is the state a crash between the write and the publish leaves behind.
    api, url = start_intake_api(faulty, unique, tmp_path, kafka_bootstrap=f"127.0.0.1:{free_port()}")
    clinic, desk = new_clinic(url, unique)
    accepted = [register(url, desk, clinic, n) for n in range(15)]
    api.popen.send_signal(signal.SIGKILL)
    api.popen.wait()
    assert None not in accepted and announced(faulty.kafka_bootstrap, unique) == {}

    start_worker("intake", RAPPORT_OUTBOX_GRACE_S="1")
    per_client = wait_for(lambda: (lambda seen: seen if len(seen) >= len(accepted) else None)(
        announced(faulty.kafka_bootstrap, unique)), timeout_s=120, interval_s=1)
    figures = report("R2 (API killed before publishing)", accepted, per_client)
    assert figures == dict.fromkeys(figures, 0)
