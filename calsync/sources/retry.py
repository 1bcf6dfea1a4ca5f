"""Retries and rate limits shared by the API sources (Google Calendar, Microsoft Graph)."""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass


class Stopped(BaseException):  # like KeyboardInterrupt: not an error, and not caught as one
    """calsync is stopping: the work in flight is given up. Raised from a wait (a retry's sleep)
    and between calendars; the state keeps what was saved before."""


def interruptible(stop: threading.Event) -> Callable[[float], None]:
    """A sleep that ends early, raising :class:`Stopped`, once ``stop`` is set."""

    def sleep(seconds: float) -> None:
        if stop.wait(max(0.0, seconds)):
            raise Stopped

    return sleep


def check(stop: threading.Event | None) -> None:
    """Raise :class:`Stopped` if calsync is stopping."""
    if stop is not None and stop.is_set():
        raise Stopped


@dataclass
class RetryPolicy:
    """Bounded exponential backoff with full jitter; Retry-After wins when the server sends it."""

    attempts: int = 6
    base_delay: float = 1.0
    max_delay: float = 60.0
    sleep: Callable[[float], None] = time.sleep
    jitter: Callable[[], float] = random.random

    def delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_delay * 5)
        return self.jitter() * min(self.max_delay, self.base_delay * 2.0**attempt)


class RateLimiter:
    """At most ``per_minute`` requests per key in any 60 seconds (Google allows 600 per user)."""

    def __init__(
        self,
        per_minute: int = 600,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.per_minute = per_minute
        self.clock = clock
        self.sleep = sleep
        self._sent: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def acquire(self, key: str) -> None:
        while True:
            with self._lock:
                now = self.clock()
                sent = self._sent.setdefault(key, deque())
                while sent and now - sent[0] >= 60.0:
                    sent.popleft()
                if len(sent) < self.per_minute:
                    sent.append(now)
                    return
                wait = 60.0 - (now - sent[0])
            self.sleep(wait)
