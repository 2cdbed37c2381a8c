"""The dashboard's optional password: where it comes from, and checking a guess in constant time.

There is none by default: the dashboard listens on 127.0.0.1 only (.streamlit/config.toml), so
only this machine reaches it. Whoever shows it on a network sets one (README, "Showing it to
others"), and every page then asks for it first (pages/shared/gate.py).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import threading
import time
from collections import deque
from collections.abc import Mapping

PASSWORD_VARIABLE = "CIFAR_DASHBOARD_PASSWORD"


def dashboard_password(secrets: Mapping[str, object] | None = None,
                       environ: Mapping[str, str] = os.environ) -> str | None:
    """The password from the environment variable CIFAR_DASHBOARD_PASSWORD, else the same key in
    the dashboard's secrets (.streamlit/secrets.toml); None where neither sets one (empty counts
    as none)."""
    for source in (environ, secrets or {}):
        value = source.get(PASSWORD_VARIABLE)
        if value is not None and str(value) != "":
            return str(value)
    return None


def password_matches(guess: str, password: str) -> bool:
    """True when `guess` is the password. Compared in constant time (hmac.compare_digest), on
    digests of equal length, so the time taken tells neither how much of a guess was right nor
    how long the password is."""
    return hmac.compare_digest(hashlib.sha256(guess.encode("utf-8")).digest(),
                               hashlib.sha256(password.encode("utf-8")).digest())


# What a browser tab that has not given the password may still ask the server for: to run the
# app (which shows it the password form alone), to stop that run, and to say it is still there.
# Anything else (clearing every cache, asking for upload addresses, ...) is dropped.
MESSAGES_BEFORE_PASSWORD = frozenset({"rerun_script", "stop_script", "app_heartbeat"})

# What one browser tab may hold in uploads at once: room for a checkpoint of the upload limit
# (20 MB, .streamlit/config.toml) and a few dozen photos, not for filling the server's memory.
UPLOADS_PER_SESSION_BYTES = 50 * 1024 * 1024


class GuessLimiter:
    """Wrong passwords allowed per address: `wrong_allowed` in any `window_s` seconds; after
    that, guesses from there wait (the right one too) until the oldest wrong one is that old."""

    def __init__(self, wrong_allowed: int = 5, window_s: float = 60.0, clock=time.monotonic):
        self.wrong_allowed = wrong_allowed
        self.window_s = window_s
        self._clock = clock
        self._wrong: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def wait_s(self, address: str) -> float:
        """Seconds before a guess from `address` is checked; 0 when it may guess now."""
        with self._lock:
            recent = self._recent(address)
            if len(recent) < self.wrong_allowed:
                return 0.0
            return max(0.0, recent[-self.wrong_allowed] + self.window_s - self._clock())

    def record_wrong(self, address: str) -> None:
        with self._lock:
            recent = self._recent(address)
            recent.append(self._clock())
            self._wrong[address] = recent

    def record_right(self, address: str) -> None:
        with self._lock:
            self._wrong.pop(address, None)

    def _recent(self, address: str) -> deque[float]:
        # Forgetting what fell out of the window keeps one short queue per address, and none
        # for an address whose wrong guesses are all that old (many addresses fill nothing).
        recent = self._wrong.pop(address, deque())
        while recent and recent[0] <= self._clock() - self.window_s:
            recent.popleft()
        if recent:
            self._wrong[address] = recent
        return recent
