"""Rate limits.

Participant floods: an in-memory sliding window per participant token (and per client
address for entry links), checked before any database work so a flood costs no queries.
It is per process: with ``gunicorn -w N`` one participant can reach at most N times the
limit, which still stops a runaway client; the limit is set far above human speed.

Admin login: counted from the append-only event log (failed logins in the last window,
per address and in total), so the limit holds across gunicorn workers and restarts
without another service.  See :mod:`study_server.admin`.
"""

from __future__ import annotations

import re
import threading
import time
from collections import deque

__all__ = ["SlidingWindow", "parse_rate"]

_RATE_RE = re.compile(r"\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)\s*s?\s*")


def parse_rate(text: str) -> tuple[int, float]:
    """``"100/10"`` or ``"100/10s"`` -> (100 requests, per 10 seconds)."""
    match = _RATE_RE.fullmatch(str(text))
    if not match or int(match.group(1)) < 1 or float(match.group(2)) <= 0:
        raise ValueError(f"a rate is COUNT/SECONDS, e.g. 100/10, got {text!r}")
    return int(match.group(1)), float(match.group(2))


class SlidingWindow:
    """At most ``limit`` hits per key within ``window`` seconds."""

    def __init__(self, limit: int, window: float, max_keys: int = 100_000):
        self.limit, self.window, self.max_keys = limit, window, max_keys
        self._hits: dict[str, deque] = {}
        self._lock = threading.Lock()

    def hit(self, key: str) -> float:
        """Record a hit; returns 0 when allowed, else the seconds to wait."""
        now = time.monotonic()
        with self._lock:
            hits = self._hits.get(key)
            if hits is None:
                if len(self._hits) >= self.max_keys:
                    self._prune(now)
                hits = self._hits[key] = deque()
            while hits and hits[0] <= now - self.window:
                hits.popleft()
            if len(hits) >= self.limit:
                return max(hits[0] + self.window - now, 0.001)
            hits.append(now)
            return 0.0

    def _prune(self, now: float) -> None:
        for key in [k for k, h in self._hits.items() if not h or h[-1] <= now - self.window]:
            del self._hits[key]
        if len(self._hits) >= self.max_keys:  # still full: forget the oldest half
            for key in list(self._hits)[: self.max_keys // 2]:
                del self._hits[key]
