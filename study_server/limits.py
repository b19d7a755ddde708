"""Rate limits, through Flask-Limiter.

Storage is ``memory://`` by default (one process: ``normlime serve``, tests) and any
storage Flask-Limiter knows for real deployments: ``redis://127.0.0.1:6379`` makes every
limit hold across gunicorn workers and hosts (``--limits-storage``,
``$NORMLIME_LIMITS_STORAGE``).  The moving-window strategy counts exactly: with Redis a
check and its hit are one atomic script, so N parallel requests never get more than the
limit between them.

The limits (rates in Flask-Limiter's notation, e.g. ``100 per 10 seconds``; separate
several with ``;``):

``PARTICIPANT_RATE``  per participant token, the participant's pages and answers; far
                      above human speed (a survey is about 30 pages in 10 minutes, and a
                      page's images must load before its options take a vote).
``IMAGE_RATE``        per participant token, option images: six per page request the page
                      rate allows, so a participant under the page limit (anyone answering
                      at a human speed) never meets it and never sees a broken image.
``MISS_RATE``         per client address: requests that end in 404 (unknown tokens, study
                      keys, images).  Checked before the view, so a flood of made-up
                      tokens stops costing database lookups once the limit is reached.
                      Tokens carry an HMAC (:func:`study_server.tokens.new_token`): a
                      request with a genuine token skips this check, so the vote path
                      asks the shared storage once, not twice.
``ENTRY_RATE``        per client address: entry links and consent forms.
``ADMIN_LOGIN_RATE``  per client address: every login attempt counts before the password
                      is checked.  Stacked windows make a backoff (a few tries a minute,
                      then fewer per quarter hour, hour, day), and only the address that
                      sends them is slowed: the operator logs in from another.

The participant routes (the vote path) ask the limiter's strategy directly
(:class:`ParticipantLimits`, on Flask-Limiter's own storage and moving-window strategy):
one storage call per request instead of Flask-Limiter's per-request resolution of
decorated limits, which cost more CPU than the vote's database work (benchmarks/load.py).
Entry links, consent and the admin login use Flask-Limiter's decorators.

If the shared storage is unreachable, both fall back to per-process memory storage
rather than refusing votes (fail open: a vote is never lost to the limiter; for a while
each process counts on its own, so a client can get up to one limit per worker), and go
back to the shared storage by themselves: the participant limits retry it 10 s after a
failure, whatever requests arrive.  A Redis that hangs without closing connections would
hold every request: Redis connections get a 0.5 s connect and read timeout
(:data:`REDIS_TIMEOUTS`), so a hung Redis costs one request half a second, then the
fallback answers (tests/test_server_redis_outage.py).
"""

from __future__ import annotations

import re
import time

from flask import Flask, current_app, request
from flask_limiter import Limiter
from limits import parse_many
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from werkzeug.exceptions import TooManyRequests

from .tokens import TOKEN_RE, token_is_signed

__all__ = ["DEFAULT_RATES", "normalize_rate", "check_storage_url", "install_limits", "retry_after"]

DEFAULT_RATES = {
    "PARTICIPANT_RATE": "100 per 10 seconds",
    "IMAGE_RATE": "600 per 10 seconds",
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
#: redis-py waits forever by default; a limit check must never hold a vote that long
REDIS_TIMEOUTS = {"socket_connect_timeout": 0.5, "socket_timeout": 0.5}


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


def check_storage_url(url: str) -> str:
    """A storage URL Flask-Limiter understands (``memory://``, ``redis://host:port``, ...)."""
    from limits.storage import SCHEMES

    scheme = str(url).split("://", 1)[0] if "://" in str(url) else ""
    if scheme not in SCHEMES or scheme.startswith("async+"):
        raise ValueError(
            f"limits storage {url!r} is not a storage URL (memory://, redis://HOST:PORT, "
            "memcached://HOST:PORT, ...)"
        )
    return str(url)


def _address() -> str:
    return request.remote_addr or "?"


def _is_miss(response) -> bool:
    return response.status_code == 404


def install_limits(app: Flask) -> Limiter:
    """Create the app's limiter and attach the limits to the views registered so far."""
    url = app.config["LIMITS_STORAGE"]
    limiter = Limiter(
        key_func=_address,
        app=app,
        storage_uri=url,
        storage_options=REDIS_TIMEOUTS if url.split("://", 1)[0].startswith("redis") else {},
        strategy="moving-window",
        key_prefix=app.config["LIMITS_KEY_PREFIX"],
        in_memory_fallback_enabled=True,
        swallow_errors=True,
    )
    views = app.view_functions
    cfg = app.config
    # rates are fixed strings per app (parsed once), not callables evaluated per request
    misses = limiter.shared_limit(
        cfg["MISS_RATE"],
        scope="miss",
        key_func=_address,
        deduct_when=_is_miss,
        error_message=TOO_MANY_MISSES,
    )
    entry = limiter.shared_limit(
        cfg["ENTRY_RATE"], scope="entry", key_func=_address, error_message=SLOW_DOWN
    )
    login = limiter.limit(
        cfg["ADMIN_LOGIN_RATE"],
        key_func=_address,
        methods=["POST"],
        scope="admin-login",
        error_message="Too many login attempts from your address; wait and try again.",
    )
    plan = {
        "participant.entry": (entry, misses),
        "participant.consent": (entry, misses),
        "admin.login": (login,),
    }
    for name, limits in plan.items():
        view = views[name]
        # Each decorator registers its limit under the view's name; one wrapper then
        # checks them all (stacked wrappers would check every limit twice).
        for limit in limits[:-1]:
            limit(view)
        views[name] = limits[-1](view)
    # Flask-Limiter's before_request hook applies default and application-wide limits; we
    # declare none (every limit is on a view), so the hook would only cost time per request.
    hooks = app.before_request_funcs.get(None, [])
    if limiter._check_request_limit in hooks:
        hooks.remove(limiter._check_request_limit)
    app.extensions["normlime_participant_limits"] = ParticipantLimits(limiter, cfg)
    return limiter


class ParticipantLimits:
    """The per-token and unknown-link limits of the participant routes."""

    def __init__(self, limiter: Limiter, cfg):
        self.limiter = limiter
        self.prefix = cfg["LIMITS_KEY_PREFIX"]
        self.secret = cfg["SECRET_KEY"]
        self.per_token = parse_many(cfg["PARTICIPANT_RATE"])
        self.per_token_images = parse_many(cfg["IMAGE_RATE"])
        self.misses = parse_many(cfg["MISS_RATE"])
        # our own strategy on the shared storage: Flask-Limiter's ``limiter.limiter`` stays on
        # its memory fallback until one of its own decorated views rechecks the storage
        self._shared = MovingWindowRateLimiter(limiter.storage)
        self._fallback = MovingWindowRateLimiter(MemoryStorage())
        self._down_since = 0.0

    def _strategy(self):
        # after a storage failure, stay on the in-memory fallback for 10 s before retrying
        if self._down_since and time.monotonic() - self._down_since < 10:
            return self._fallback
        return self._shared

    def _call(self, method: str, item, *ids: str) -> bool:
        try:
            return getattr(self._strategy(), method)(item, self.prefix, *ids)
        except Exception:  # noqa: BLE001 - a storage outage must not refuse votes
            if not self._down_since or time.monotonic() - self._down_since >= 10:
                current_app.logger.warning("rate-limit storage unreachable; using memory")
            self._down_since = time.monotonic()
            return getattr(self._fallback, method)(item, self.prefix, *ids)

    def check(self, token: str, *, image: bool = False) -> None:
        """Before any database work: refuse with 429 when a limit is reached.  Images count
        in their own window (``IMAGE_RATE``), pages and answers in ``PARTICIPANT_RATE``."""
        if not self.limiter.enabled:
            return
        signed = token_is_signed(self.secret, token)
        if not signed:
            for item in self.misses:
                if not self._call("test", item, "miss", _address()):
                    self._refuse(item, ("miss", _address()), TOO_MANY_MISSES)
        # A malformed token must not become a key (a flood of long random tokens would
        # grow the storage without bound): it is counted per address instead.
        key = token if TOKEN_RE.fullmatch(token) else f"bad:{_address()}"
        scope, rates = ("img", self.per_token_images) if image else ("p", self.per_token)
        for item in rates:
            if not self._call("hit", item, scope, key):
                self._refuse(item, (scope, key), SLOW_DOWN)

    def missed(self) -> None:
        """The request ended in 404: count it against the client's address."""
        if not self.limiter.enabled:
            return
        for item in self.misses:
            self._call("hit", item, "miss", _address())

    def _refuse(self, item, ids, message: str):
        try:
            reset = self._strategy().get_window_stats(item, self.prefix, *ids).reset_time
            wait = max(int(reset - time.time()) + 1, 1)
        except Exception:  # noqa: BLE001
            wait = 1
        exc = TooManyRequests(message)
        exc.retry_after = wait
        raise exc


def retry_after(limiter: Limiter) -> int:
    """Seconds until the limit just breached lets a request through again (at least 1)."""
    current = limiter.current_limit
    if current is None:
        return 1
    return max(int(current.reset_at - time.time()) + 1, 1)
