"""cifar_core.password: where the dashboard's password comes from, and checking a guess."""

from __future__ import annotations

import hmac

from cifar_core import password
from cifar_core.password import PASSWORD_VARIABLE, dashboard_password, password_matches


def test_no_password_unless_one_is_set():
    assert dashboard_password({}, environ={}) is None
    assert dashboard_password(None, environ={"OTHER": "x"}) is None
    # An empty one is none: it would open the gate to an empty guess anyway.
    assert dashboard_password({PASSWORD_VARIABLE: ""}, environ={PASSWORD_VARIABLE: ""}) is None


def test_the_password_comes_from_the_environment_else_the_secrets():
    assert dashboard_password({}, environ={PASSWORD_VARIABLE: "from env"}) == "from env"
    assert dashboard_password({PASSWORD_VARIABLE: "from secrets"}, environ={}) == "from secrets"
    assert dashboard_password({PASSWORD_VARIABLE: "from secrets"},
                              environ={PASSWORD_VARIABLE: "from env"}) == "from env"
    assert dashboard_password({PASSWORD_VARIABLE: 1234}, environ={}) == "1234"  # TOML number


def test_only_the_password_matches():
    assert password_matches("s3cret ünïcode", "s3cret ünïcode")
    for guess in ("", "s3cret", "s3cret ünïcode ", "S3CRET ÜNÏCODE", "x" * 1000):
        assert not password_matches(guess, "s3cret ünïcode"), guess


def test_the_comparison_is_constant_time_on_equal_lengths(monkeypatch):
    # hmac.compare_digest has no early exit at the first wrong character; comparing digests
    # keeps the password's length out of the timing too.
    compared = []
    real = hmac.compare_digest
    monkeypatch.setattr(password.hmac, "compare_digest",
                        lambda a, b: compared.append((a, b)) or real(a, b))
    assert not password_matches("a", "a much longer password")
    [(guess, secret)] = compared
    assert len(guess) == len(secret) and guess != b"a"
