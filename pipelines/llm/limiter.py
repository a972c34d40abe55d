"""Requests-per-minute and tokens-per-minute limits for one endpoint, shared by all threads.

RPM is enforced by spacing: request k may start no earlier than k * 60/rpm seconds after the
first, so any window of T seconds holds at most T*rpm/60 + 1 requests (no burst at start-up,
which a server-side limiter would count against us). TPM is a token bucket refilled at tpm/60
per second, debited with an estimate before the call and corrected with the real usage after.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class RateLimiter:
    def __init__(
        self,
        rpm: float | None,
        tpm: float | None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.interval = 60.0 / rpm if rpm else 0.0
        self.tpm = tpm
        self._clock, self._sleep = clock, sleep
        self._lock = threading.Lock()
        self._next_slot = 0.0
        self._tokens = float(tpm or 0)
        self._refilled_at = clock()

    def acquire(self, tokens: int) -> None:
        """Block until one request of about `tokens` tokens may start."""
        with self._lock:
            now = self._clock()
            slot = max(now, self._next_slot)
            self._next_slot = slot + self.interval
            wait = slot - now
            if self.tpm:
                self._refill(now)
                need = min(float(tokens), float(self.tpm))  # one huge request must still pass, eventually
                deficit = need - self._tokens
                if deficit > 0:
                    wait = max(wait, deficit * 60.0 / self.tpm)
                self._tokens -= need
        if wait > 0:
            self._sleep(wait)

    def settle(self, estimated: int, actual: int) -> None:
        """Correct the bucket once the server reported the tokens really used."""
        if self.tpm:
            with self._lock:
                self._tokens -= min(actual, self.tpm) - min(estimated, self.tpm)

    def _refill(self, now: float) -> None:
        self._tokens = min(float(self.tpm), self._tokens + (now - self._refilled_at) * self.tpm / 60.0)
        self._refilled_at = now
