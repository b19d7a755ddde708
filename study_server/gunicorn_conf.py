"""gunicorn settings for the study server: ``gunicorn -c python:study_server.gunicorn_conf``.

Command-line flags still win (``-w``, ``-b``, ``--access-logfile``).  What this file adds:

* the redacting logger (no worker id or participant token in any log line, access log
  included);
* a start-up warning when several worker processes would each keep their own rate-limit
  counts (``memory://`` storage, the default): a participant could then reach N times a
  limit and N times as many admin passwords would be tried.  Set
  ``NORMLIME_LIMITS_STORAGE=redis://HOST:PORT`` to share them.
"""

import os

logger_class = "study_server.logs.GunicornLogger"


def separate_limits_warning(workers: int, storage: str | None) -> str | None:
    """The warning for ``workers`` processes on limits ``storage`` (None: nothing to say)."""
    if workers <= 1 or (storage or "memory://").split("://")[0] != "memory":
        return None
    return (
        f"{workers} worker processes with memory:// rate limits: each process counts on its "
        f"own, so a participant can reach {workers} times a limit and {workers} times as "
        "many admin passwords can be tried; set NORMLIME_LIMITS_STORAGE=redis://HOST:PORT "
        "to share the limits"
    )


def on_starting(server):
    """Said once, by the master, before any worker starts."""
    message = separate_limits_warning(
        int(server.cfg.workers), os.environ.get("NORMLIME_LIMITS_STORAGE")
    )
    if message:
        server.log.warning("WARNING: %s", message)
