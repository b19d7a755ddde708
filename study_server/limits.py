"""Rate limits, through Flask-Limiter.

Storage is ``memory://`` by default (one process: ``normlime serve``, tests) and any
storage Flask-Limiter knows for real deployments: ``redis://127.0.0.1:6379`` makes every
limit hold across gunicorn workers and hosts (``--limits-storage``,
``$NORMLIME_LIMITS_STORAGE``).  The moving-window strategy counts exactly: with Redis a
check and its hit are one atomic script, so N parallel requests never get more than the
limit between them.

The limits (rates in Flask-Limiter's notation, e.g. ``100 per 10 seconds``; separate
several with ``;``):

``PARTICIPANT_RATE``  per participant token, every participant route; far above human
                      speed (a survey is about 150 requests in 10 minutes).
``MISS_RATE``         per client address: requests that end in 404 (unknown tokens, study
                      keys, images).  Checked before the view, so a flood of made-up
                      tokens stops costing database lookups once the limit is reached.
``ENTRY_RATE``        per client address: entry links and consent forms.
``ADMIN_LOGIN_RATE``  per client address: every login attempt counts before the password
                      is checked.  Stacked windows make a backoff (a few tries a minute,
                      then fewer per quarter hour, hour, day), and only the address that
                      sends them is slowed: the operator logs in from another.

If the shared storage is unreachable, Flask-Limiter falls back to per-process memory
storage rather than refusing votes.
"""

from __future__ import annotations

import re
import time

from flask import Flask, current_app, request
from flask_limiter import Limiter
from limits import parse_many

from .tokens import TOKEN_RE

__all__ = ["DEFAULT_RATES", "normalize_rate", "install_limits", "retry_after"]

DEFAULT_RATES = {
    "PARTICIPANT_RATE": "100 per 10 seconds",
    "MISS_RATE": "60 per minute",
    "ENTRY_RATE": "300 per minute",
    "ADMIN_LOGIN_RATE": "5 per minute; 10 per 15 minutes; 20 per hour; 50 per day",
}
SLOW_DOWN = (
    "Too many requests in a short time. Please slow down: your answers so far are saved, "
    "and the survey continues where you were."
)
TOO_MANY_MISSES = (
    "Too many requests for links that do not exist came from your address. "
    "Wait a minute, then open the link you were given."
)
_OLD_STYLE = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*s?\s*")


def normalize_rate(text: str) -> str:
    """Flask-Limiter notation; the old ``COUNT/SECONDS`` form (``100/10``) still works."""
    match = _OLD_STYLE.fullmatch(str(text))
    value = f"{match.group(1)} per {match.group(2)} seconds" if match else str(text)
    try:
        items = parse_many(value)
    except ValueError:
        items = []
    if not items or any(item.amount < 1 for item in items):
        raise ValueError(f"a rate is like '100 per 10 seconds' (or 100/10), got {text!r}")
    return value


def _address() -> str:
    return request.remote_addr or "?"


def _token_key() -> str:
    token = (request.view_args or {}).get("token", "")
    # A malformed token is a miss (404) counted per address: it must not become a key,
    # or a flood of long random tokens would grow the storage without bound.
    return f"t:{token}" if TOKEN_RE.fullmatch(token) else f"bad:{_address()}"


def _is_miss(response) -> bool:
    return response.status_code == 404


def _rate(name: str):
    return lambda: current_app.config[name]


def install_limits(app: Flask) -> Limiter:
    """Create the app's limiter and attach the limits to the views registered so far."""
    limiter = Limiter(
        key_func=_address,
        app=app,
        storage_uri=app.config["LIMITS_STORAGE"],
        strategy="moving-window",
        key_prefix=app.config["LIMITS_KEY_PREFIX"],
        in_memory_fallback_enabled=True,
        swallow_errors=True,
    )
    views = app.view_functions
    per_token = limiter.shared_limit(
        _rate("PARTICIPANT_RATE"), scope="p", key_func=_token_key, error_message=SLOW_DOWN
    )
    misses = limiter.shared_limit(
        _rate("MISS_RATE"),
        scope="miss",
        key_func=_address,
        deduct_when=_is_miss,
        error_message=TOO_MANY_MISSES,
    )
    entry = limiter.shared_limit(
        _rate("ENTRY_RATE"), scope="entry", key_func=_address, error_message=SLOW_DOWN
    )
    login = limiter.limit(
        _rate("ADMIN_LOGIN_RATE"),
        key_func=_address,
        methods=["POST"],
        scope="admin-login",
        error_message="Too many login attempts from your address; wait and try again.",
    )
    for name in ("participant.home", "participant.start", "participant.answer"):
        views[name] = misses(per_token(views[name]))
    views["participant.image"] = misses(per_token(views["participant.image"]))
    for name in ("participant.entry", "participant.entry_adapter", "participant.consent"):
        if name in views:
            views[name] = misses(entry(views[name]))
    views["admin.login"] = login(views["admin.login"])
    return limiter


def retry_after(limiter: Limiter) -> int:
    """Seconds until the limit just breached lets a request through again (at least 1)."""
    current = limiter.current_limit
    if current is None:
        return 1
    return max(int(current.reset_at - time.time()) + 1, 1)
