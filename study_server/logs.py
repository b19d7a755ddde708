"""Log lines without raw worker ids or participant tokens.

Entry links carry the platform's worker id in the query string (``?workerId=...``) and
every survey URL carries the participant's token, a capability.  Neither may reach a log:
request lines lose their query string and tokens are replaced by ``<token>``.

- ``normlime serve``: :class:`RequestHandler` replaces werkzeug's request logger;
- gunicorn: ``-c python:study_server.gunicorn_conf`` installs :class:`GunicornLogger`,
  which redacts every atom of the access log and the error log's messages;
- the app's own logger (tracebacks name the request path) gets :class:`RedactingFilter`.
"""

from __future__ import annotations

import logging
import re

from werkzeug.serving import WSGIRequestHandler

__all__ = ["redact", "RedactingFilter", "RequestHandler", "GunicornLogger", "install"]

_QUERY = re.compile(r"\?[^\s\"']*")
_TOKEN = re.compile(r"/p/[A-Za-z0-9_-]{32}(?![A-Za-z0-9_-])")
_PARAM = re.compile(r"(?i)\b(workerId|PROLIFIC_PID|pid|assignmentId|SESSION_ID)=[^&\s\"']*")


def redact(text: str) -> str:
    """``GET /s/K/mturk?workerId=W HTTP/1.1`` -> ``GET /s/K/mturk?<redacted> HTTP/1.1``."""
    text = _QUERY.sub("?<redacted>", str(text))
    text = _PARAM.sub(r"\1=<redacted>", text)
    return _TOKEN.sub("/p/<token>", text)


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        return True


class RequestHandler(WSGIRequestHandler):
    """werkzeug's development-server handler, logging redacted request lines."""

    def log_request(self, code="-", size="-") -> None:
        self.requestline = redact(self.requestline)
        super().log_request(code, size)


def install(logger: logging.Logger) -> None:
    if not any(isinstance(f, RedactingFilter) for f in logger.filters):
        logger.addFilter(RedactingFilter())


try:  # gunicorn is a dependency, but the module must import without it (Windows users)
    from gunicorn.glogging import Logger as _GunicornBase
except ImportError:  # pragma: no cover
    _GunicornBase = object


class GunicornLogger(_GunicornBase):
    """gunicorn's logger with every access-log atom and error message redacted."""

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        return {k: redact(v) if isinstance(v, str) else v for k, v in atoms.items()}

    def setup(self, cfg) -> None:
        super().setup(cfg)
        install(self.error_log)
        install(self.access_log)
