"""The study server: randomised 25-item surveys for crowd workers, every vote kept once.

``create_app(config)`` builds the Flask application (see :mod:`study_server.app` for the
configuration keys and their environment variables); gunicorn serves it with
``gunicorn -w 4 'study_server:create_app()'``.  Imports are lazy so that composing the
``normlime`` command line does not load Flask, SQLAlchemy or numpy.  Nothing here imports
torch.
"""

from __future__ import annotations

__all__ = ["create_app"]


def __getattr__(name: str):
    if name == "create_app":
        from .app import create_app

        return create_app
    raise AttributeError(f"module 'study_server' has no attribute {name!r}")
