"""Prolific's public API over HTTP: the client the ``normlime prolific`` operations use.

One :class:`Client` per command: ``Authorization: Token <token>`` sent to the API's origin
only (redirects are refused; a pagination link to another host is refused), JSON in and
out, a 429 waited out for its Retry-After (at most :data:`MAX_RETRY_AFTER` seconds), 5xx
answers and lost replies retried with backoff for idempotent calls only.  What a call means
and whether it may be sent again is decided by the journal in :mod:`study_server.prolific`.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from urllib.parse import urljoin, urlsplit

from explainers.errors import UserError

from .models import utcnow

__all__ = [
    "TOKEN_ENV", "API_URL_ENV", "DEFAULT_API_URL", "DEFAULT_TIMEOUT", "ATTEMPTS", "BACKOFF",
    "MAX_RETRY_AFTER", "ProlificError", "OperatorNeeded", "PlatformError", "NoReply",
    "Reply", "Client", "Refused", "client_from_env", "encode", "urllib_send", "retry_after",
]  # fmt: skip

TOKEN_ENV = "PROLIFIC_TOKEN"
API_URL_ENV = "PROLIFIC_API_URL"
DEFAULT_API_URL = "https://api.prolific.com"
#: seconds to wait for an answer before the outcome of a call is unknown
DEFAULT_TIMEOUT = 30.0
#: attempts of an idempotent call (429, 5xx, lost replies), and of a journalled step
ATTEMPTS = 4
#: first backoff in seconds, doubled on each retry
BACKOFF = 1.0
#: the longest Retry-After honoured, in seconds
MAX_RETRY_AFTER = 60.0
MAX_PAGES = 1000
#: how long the command sleeps; tests replace it
sleep = time.sleep
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


class ProlificError(UserError):
    """A mistake the operator can fix, or a refusal by Prolific (one line, exit 2)."""


class OperatorNeeded(ProlificError):
    """The outcome of a payment cannot be told by the program: the operator checks it."""


class PlatformError(RuntimeError):
    """Prolific gave no usable answer, even after retries (one line, exit 1)."""


class NoReply(Exception):
    """The request may have reached Prolific, but no answer came back (timeout, dropped
    connection): its outcome is unknown."""


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict:
        try:
            data = json.loads(self.body or b"{}")
        except ValueError:
            raise PlatformError(
                f"Prolific answered {self.status} with a body that is not JSON"
            ) from None
        return data if isinstance(data, dict) else {"results": data}


def encode(body: dict | None) -> bytes | None:
    """The one serialisation of a request body: what is sent is what ``--dry-run`` shows."""
    return None if body is None else json.dumps(body, sort_keys=True).encode()


# ----------------------------------------------------------------------------- transport


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # Following a redirect would carry the Authorization header to wherever it points.
    def redirect_request(self, *args, **kwargs):
        return None


def urllib_send(method: str, url: str, headers: dict, data: bytes | None, timeout: float):
    """One HTTP exchange; a Reply for any status, NoReply when no answer arrived."""
    opener = urllib.request.build_opener(_NoRedirect)
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with opener.open(request, timeout=timeout) as resp:
            return Reply(resp.status, _lower(resp.headers), resp.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return Reply(exc.code, _lower(exc.headers), exc.read())
    except urllib.error.URLError as exc:
        raise NoReply(_reason(exc.reason)) from None
    except (OSError, http.client.HTTPException) as exc:  # timeout, reset, closed early
        raise NoReply(_reason(exc)) from None


def _lower(headers) -> dict[str, str]:
    return {k.lower(): v for k, v in (headers or {}).items()}


def _reason(exc) -> str:
    if isinstance(exc, TimeoutError | socket.timeout):
        return "no answer in time"
    return type(exc).__name__ if isinstance(exc, BaseException) else str(exc)


def retry_after(headers: dict[str, str]) -> float:
    raw = headers.get("retry-after", "").strip()
    try:
        seconds = float(raw)
    except ValueError:
        try:
            seconds = (parsedate_to_datetime(raw) - utcnow()).total_seconds()
        except (TypeError, ValueError):
            seconds = BACKOFF
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


class Client:
    """Prolific's API for one token.  ``retry`` of :meth:`call` says what may be repeated:
    ``"idempotent"`` (429, 5xx and lost replies), ``"rate-limit"`` (429 only: the request
    was refused unprocessed) or ``"never"`` (the payment: the caller checks the state)."""

    def __init__(
        self,
        token: str,
        base_url: str = DEFAULT_API_URL,
        *,
        send=None,
        timeout: float = DEFAULT_TIMEOUT,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._token = token
        self._send = send or urllib_send
        self._sleep = sleep

    def wait(self, seconds: float) -> None:
        self._sleep(seconds)

    def scrub(self, text: str) -> str:
        """``text`` without the token (a refusal's detail is shown to the operator)."""
        return text.replace(self._token, "***") if self._token else text

    def _url(self, path_or_url: str) -> str:
        url = urljoin(self.base_url + "/", path_or_url)
        origin = urlsplit(self.base_url)
        parts = urlsplit(url)
        if (parts.scheme, parts.netloc) != (origin.scheme, origin.netloc):
            # the token goes to the API's origin and nowhere else
            raise PlatformError(f"Prolific pointed to another host ({parts.netloc}); refused")
        return url

    def call(
        self, method: str, path: str, body: dict | None = None, *, retry: str = "idempotent"
    ) -> Reply:
        url = self._url(path)
        headers = {
            "Authorization": f"Token {self._token}",
            "Accept": "application/json",
            "User-Agent": "normlime-study",
        }
        if body is not None:
            headers["Content-Type"] = "application/json"
        for attempt in range(1, ATTEMPTS + 1):
            last = attempt == ATTEMPTS
            try:
                reply = self._send(method, url, headers, encode(body), self.timeout)
            except NoReply:
                if retry != "idempotent" or last:
                    raise
                self._sleep(BACKOFF * 2 ** (attempt - 1))
                continue
            if reply.status == 429 and retry != "never" and not last:
                self._sleep(retry_after(reply.headers))
            elif reply.status >= 500 and retry == "idempotent" and not last:
                self._sleep(BACKOFF * 2 ** (attempt - 1))
            else:
                return reply
        raise AssertionError("unreachable")  # pragma: no cover

    def json(
        self, method: str, path: str, body: dict | None = None, *, retry: str = "idempotent"
    ) -> dict:
        """The JSON of a 2xx answer; a refusal (4xx) raises Refused, anything else
        PlatformError."""
        return self.check(method, path, self.call(method, path, body, retry=retry)).json()

    def check(self, method: str, path: str, reply: Reply) -> Reply:
        if 200 <= reply.status < 300:
            return reply
        what = f"{method} {urlsplit(path).path}"
        if 400 <= reply.status < 500 and reply.status != 429:
            raise Refused(
                reply.status,
                self.scrub(f"Prolific refused {what}: {reply.status} {_detail(reply)}"),
            )
        raise PlatformError(f"Prolific answered {reply.status} to {what}; try again later")

    def pages(self, path: str) -> Iterator[dict]:
        """Every page of a list, following its next links (``_links.next.href`` or
        ``next``) until there is none."""
        url, seen = path, set()
        while url:
            if url in seen or len(seen) >= MAX_PAGES:
                raise PlatformError(f"the pages of {urlsplit(path).path} do not end")
            seen.add(url)
            data = self.json("GET", url)
            yield data
            url = _next_link(data)


class Refused(ProlificError):
    """Prolific refused a request (4xx): nothing happened."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def _detail(reply: Reply) -> str:
    try:
        data = json.loads(reply.body or b"{}")
    except ValueError:
        data = reply.body.decode("utf-8", "replace")
    if isinstance(data, dict):
        data = data.get("error") or data.get("detail") or data
    return " ".join(str(data).split())[:300]


def _next_link(data: dict) -> str | None:
    nxt = (data.get("_links") or {}).get("next")
    if isinstance(nxt, dict):
        nxt = nxt.get("href")
    if nxt is None and isinstance(data.get("next"), str):
        nxt = data["next"]
    return nxt or None


def client_from_env() -> Client:
    """A client with ``$PROLIFIC_TOKEN`` and ``$PROLIFIC_API_URL`` (default the real API)."""
    token = os.environ.get(TOKEN_ENV, "").strip()
    if not token:
        raise ProlificError(
            f"set {TOKEN_ENV} to your Prolific API token (Prolific: Settings > API tokens); "
            "it is read from the environment only"
        )
    base = os.environ.get(API_URL_ENV, "").strip() or DEFAULT_API_URL
    parts = urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ProlificError(f"{API_URL_ENV} is not an http(s) URL")
    if parts.scheme != "https" and parts.hostname not in _LOOPBACK:
        raise ProlificError(f"{API_URL_ENV} must be https (the token would travel in clear)")
    return Client(token, base, timeout=DEFAULT_TIMEOUT, sleep=sleep)


