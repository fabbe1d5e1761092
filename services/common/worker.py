"""Worker processes (`python -m services.<name>.worker`): a consumer loop, an outbox relay and periodic tasks
in one process, each in its own thread, stopped together by SIGTERM; plus a small HTTP server for probes and
metrics when RAPPORT_WORKER_HTTP_PORT is set.
"""
from __future__ import annotations

import logging
import signal
import threading
from dataclasses import dataclass
from typing import Callable, Sequence
from wsgiref.simple_server import WSGIRequestHandler, make_server

import mongoengine as me

from . import mongo
from .config import Settings
from .kafka import ConsumerLoop, EventProducer, Handler, wait_for_broker
from .logs import configure_logging
from .metrics import render as render_metrics
from .outbox import OutboxRelay

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PeriodicTask:
    """Work a worker does on a clock (escalations, digests, deliveries): `run` is called every interval."""

    name: str
    interval_s: float
    run: Callable[[], object]


class Worker:
    def __init__(self, service: str, handlers: dict[str, Handler] | None = None,
                 outbox_documents: Sequence[type[me.Document]] = (), tasks: Sequence[PeriodicTask] = (),
                 settings: Settings | None = None, migrations: Sequence[Callable[[], None]] = ()):
        self.settings = settings or Settings.load(service)
        self._handlers, self._outbox_documents, self._tasks = handlers, list(outbox_documents), list(tasks)
        # Idempotent changes to the service's database that a new version needs, run at every start.
        self._migrations = list(migrations)
        self._stopping = threading.Event()
        self.loop: ConsumerLoop | None = None
        self._threads: list[threading.Thread] = []

    def stop(self, *_: object) -> None:
        self._stopping.set()
        if self.loop is not None:
            self.loop.stop()

    @property
    def ready(self) -> bool:
        if self._stopping.is_set():
            return False
        if self._handlers and (self.loop is None or not self.loop.ready):
            return False  # a consuming worker is ready only once its loop has joined its group
        return all(t.is_alive() for t in self._threads)

    def run(self) -> None:
        settings = self.settings
        configure_logging(settings.service, settings.log_level)
        mongo.connect(settings)
        for migrate in self._migrations:
            migrate()
        if settings.worker_http_port:
            self._serve_probes()
        wait_for_broker(settings)
        producer = EventProducer(settings)
        try:
            if self._outbox_documents:
                relay = OutboxRelay(self._outbox_documents, producer.send, settings.outbox_grace_s,
                                    settings.outbox_poll_s)
                self._start("outbox-relay", relay.run, relay.stop)
            for task in self._tasks:
                self._start(task.name, lambda t=task: self._every(t), None)
            if self._handlers:
                self.loop = ConsumerLoop(settings, group=settings.consumer_group or settings.service,
                                         handlers=self._handlers,
                                         producer=producer)
                if self._stopping.is_set():  # stop() came before the loop existed to be told
                    self.loop.stop()
                self.loop.run()  # returns on stop() or when the loop halts itself
                if self.loop.halted:
                    # Stay up but unready: the orchestrator sees it, an operator looks at the DLQ.
                    self._stopping.wait()
            else:
                self._stopping.wait()
        finally:
            self._stopping.set()
            for thread in self._threads:
                thread.join(timeout=15)
            producer.close()

    def _start(self, name: str, target: Callable[[], None], stop: Callable[[], None] | None) -> None:
        if stop is not None:
            threading.Thread(target=lambda: (self._stopping.wait(), stop()), daemon=True).start()
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _every(self, task: PeriodicTask) -> None:
        while not self._stopping.is_set():
            try:
                task.run()
            except Exception:  # one failed pass must not end the task; the next tick tries again
                log.exception("periodic task %s failed", task.name)
            self._stopping.wait(task.interval_s)

    def _serve_probes(self) -> None:
        def app(environ, start_response):
            path = environ.get("PATH_INFO", "")
            if path == "/metrics":
                body, content_type = render_metrics()
                start_response("200 OK", [("Content-Type", content_type)])
                return [body]
            if path == "/healthz":
                status = "200 OK"
            elif path == "/readyz":
                status = "200 OK" if self.ready and _database_answers() else "503 Service Unavailable"
            else:
                status = "404 Not Found"
            start_response(status, [("Content-Type", "text/plain")])
            return [status.encode()]

        server = make_server(self.settings.worker_http_host, self.settings.worker_http_port, app,
                             handler_class=_QuietHandler)
        threading.Thread(target=server.serve_forever, name="probes", daemon=True).start()


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args) -> None:  # probes every few seconds would drown the log
        pass


def _database_answers() -> bool:
    try:
        mongo.ping()
        return True
    except Exception:
        return False


def run(worker: Worker) -> None:
    signal.signal(signal.SIGTERM, worker.stop)
    signal.signal(signal.SIGINT, worker.stop)
    worker.run()

