"""The dashboard's optional password: where it comes from, and checking a guess in constant time.

There is none by default: the dashboard listens on 127.0.0.1 only (.streamlit/config.toml), so
only this machine reaches it. Whoever shows it on a network sets one (README, "Showing it to
others"), and every page then asks for it first (pages/shared/gate.py).
"""

from __future__ import annotations

import hashlib
import hmac
import os
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
