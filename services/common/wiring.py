"""Each service's wiring, one shape for all four: its handler tables, the documents whose pending events
the outbox relay publishes, and what its handlers need beyond the event or command. A service's
bootstrap.py declares one ServiceWiring; from it come the web app's command bus (`bootstrap`), the worker's
event handlers (`event_handlers`, also what a replay runs) and the worker process itself (`worker`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import mongoengine as me

from .bus import Clock, MessageBus, inject_events
from .config import Settings
from .mongo import utcnow
from .outbox import Publish
from .worker import PeriodicTask, Worker


def _none(settings: Settings) -> dict[str, Any]:
    return {}


def _no_tasks(settings: Settings, bus: MessageBus) -> Sequence[PeriodicTask]:
    return ()


@dataclass(frozen=True)
class ServiceWiring:
    service: str
    command_handlers: Mapping[type, Callable]
    event_handler_table: Mapping[str, Callable]
    outbox_documents: Sequence[type[me.Document]] = ()
    # Idempotent changes to the service's database that a new version needs, run at every worker start.
    migrations: Sequence[Callable[[], None]] = ()
    # What the handlers need beyond a publisher and a clock, made from the settings (notify: its mailer,
    # webhook poster, configuration and link base URLs); keyword options let a test replace some.
    dependencies: Callable[..., dict[str, Any]] = _none
    # Work the worker does on a clock, as commands on a bus without a publisher (notify's dispatch pass).
    tasks: Callable[[Settings, MessageBus], Sequence[PeriodicTask]] = _no_tasks

    def _wired(self, settings: Settings | None, clock: Clock, options: Mapping[str, Any]) -> dict[str, Any]:
        return {"clock": clock, **self.dependencies(settings or Settings.load(self.service), **options)}

    def bootstrap(self, publish: Publish | None, settings: Settings | None = None, clock: Clock = utcnow,
                  **options: Any) -> MessageBus:
        """The command bus of the web app (and of a CLI such as intake's seed)."""
        return MessageBus(self.command_handlers, {"publish": publish, **self._wired(settings, clock, options)})

    def event_handlers(self, settings: Settings | None = None, clock: Clock = utcnow,
                       **options: Any) -> dict[str, Callable]:
        """EVENT_HANDLERS with what each names bound; the consumer loop passes the event and the publisher."""
        return inject_events(self.event_handler_table, self._wired(settings, clock, options))

    def worker(self, settings: Settings | None = None) -> Worker:
        settings = settings or Settings.load(self.service)
        tasks = self.tasks(settings, MessageBus(self.command_handlers, self._wired(settings, utcnow, {})))
        return Worker(self.service, handlers=self.event_handlers(settings), settings=settings,
                      outbox_documents=self.outbox_documents, migrations=self.migrations, tasks=tasks)
