"""Running the same call from several threads released at one moment, to reach races a sequence never does."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, TypeVar

T = TypeVar("T")


def at_once(call: Callable[[], T], times: int) -> list[T]:
    """`call` from `times` threads that all start it together; the results in thread order."""
    barrier = threading.Barrier(times)

    def released() -> T:
        barrier.wait()
        return call()

    with ThreadPoolExecutor(times) as pool:
        return list(pool.map(lambda _: released(), range(times)))
