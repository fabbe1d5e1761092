"""The command bus every service's bootstrap builds: a command goes to the handler its type is listed under
(`COMMAND_HANDLERS` at the bottom of the service's handlers.py), with the dependencies the bootstrap wired.

Handlers name what they need as parameters (`publish`, `clock`, a mailer ...); the bus binds those once, at
start-up, so an entrypoint passes only the command and a test passes a fake clock or publisher to the
bootstrap instead of patching module globals. Event handlers get theirs the same way (`inject_events`); the
consumer loop passes the event and the publisher.
"""
from __future__ import annotations

import inspect
from dataclasses import replace
from datetime import datetime
from functools import partial
from typing import Any, Callable, Mapping

from .kafka import BatchHandler

Clock = Callable[[], datetime]


def inject(handler: Callable, dependencies: Mapping[str, Any]) -> Callable:
    """`handler` with every dependency it names bound; what it does not name is left alone."""
    wanted = inspect.signature(handler).parameters
    return partial(handler, **{name: value for name, value in dependencies.items() if name in wanted})


def inject_events(event_handlers: Mapping[str, Callable], dependencies: Mapping[str, Any]) -> dict[str, Callable]:
    """A service's EVENT_HANDLERS with the dependencies each names bound (a batch handler stays one): what
    its worker's consumer loop, and a replay, run."""
    return {topic: replace(handler, handle=inject(handler.handle, dependencies))
            if isinstance(handler, BatchHandler) else inject(handler, dependencies)
            for topic, handler in event_handlers.items()}


class MessageBus:
    def __init__(self, command_handlers: Mapping[type, Callable], dependencies: Mapping[str, Any]):
        self._handlers = {kind: inject(handler, dependencies) for kind, handler in command_handlers.items()}

    def handle(self, command: Any) -> Any:
        handler = self._handlers.get(type(command))
        if handler is None:
            raise TypeError(f"no handler for {type(command).__name__}")
        return handler(command)
