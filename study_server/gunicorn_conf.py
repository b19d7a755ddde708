"""gunicorn settings for the study server: ``gunicorn -c python:study_server.gunicorn_conf``.

Command-line flags still win (``-w``, ``-b``, ``--access-logfile``).  What this file adds
is the redacting logger (no worker id or participant token in any log line, access log
included).
"""

logger_class = "study_server.logs.GunicornLogger"
