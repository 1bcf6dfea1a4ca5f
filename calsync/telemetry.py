"""Counts of the requests calsync sends, per provider, for ``/metrics``.

The sources count every attempt they make (a retry is another request), and every attempt that
failed (an HTTP error, a dropped connection, a timeout). Counting is always on: it costs a lock and
two integers, and the daemon reads the totals.
"""

from __future__ import annotations

import threading
from collections import Counter

GOOGLE, MICROSOFT, ICS = "google", "microsoft", "ics"


class RequestCounts:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: Counter[str] = Counter()
        self._errors: Counter[str] = Counter()

    def record(self, provider: str, *, error: bool = False) -> None:
        with self._lock:
            self._requests[provider] += 1
            if error:
                self._errors[provider] += 1

    def snapshot(self) -> tuple[dict[str, int], dict[str, int]]:
        """Requests and errors per provider, since the process started."""
        with self._lock:
            return dict(self._requests), dict(self._errors)


REQUESTS = RequestCounts()
