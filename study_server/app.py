"""The application factory.

Configuration comes from the ``config`` mapping, else the environment, else defaults:

=========================  ==============================  ==================================
key                        environment variable            default
=========================  ==============================  ==================================
SQLALCHEMY_DATABASE_URI    DATABASE_URL                    sqlite:///artifacts/study.sqlite3
MAPS_DIR                   NORMLIME_MAPS                   assets/maps/mnist, else
                                                           artifacts/maps
FRAME_ANCESTORS            NORMLIME_FRAME_ANCESTORS        ``*`` (participant pages may be
                                                           framed by any recruiting site)
PARTICIPANT_RATE           NORMLIME_PARTICIPANT_RATE       100/10 (requests per token)
ENTRY_RATE                 NORMLIME_ENTRY_RATE             300/60 (entry+consent per address)
ADMIN_LOGIN_RATE           NORMLIME_ADMIN_LOGIN_RATE       10/900 (failed logins per address)
TRUSTED_PROXIES            NORMLIME_TRUSTED_PROXIES        0 (X-Forwarded-* hops to trust)
SECURE_COOKIES             NORMLIME_SECURE_COOKIES         off (admin cookie over https only)
DB_POOL_SIZE               NORMLIME_DB_POOL_SIZE           5
FAKE_MTURK                 NORMLIME_FAKE_MTURK             off (debug turkSubmitTo endpoint)
BENCHMARK_ENDPOINTS        NORMLIME_BENCHMARK_ENDPOINTS    off (benchmarks/load.py references)
MAX_CONTENT_LENGTH         -                               64 KiB
=========================  ==============================  ==================================

The Flask ``SECRET_KEY`` (admin sessions only; participants carry no cookie) is read from
the database, where ``normlime init-db`` generated it, so every gunicorn worker shares it.
"""

from __future__ import annotations

import os
from pathlib import Path

from flask import Flask, render_template, request
from sqlalchemy.orm import Session
from werkzeug.exceptions import HTTPException

from . import schema
from .maps import default_maps_dir, load_maps
from .models import db
from .ratelimit import SlidingWindow, parse_rate

__all__ = ["create_app"]

REPO = Path(__file__).resolve().parent.parent

_ENV = {
    "SQLALCHEMY_DATABASE_URI": "DATABASE_URL",
    "MAPS_DIR": "NORMLIME_MAPS",
    "FRAME_ANCESTORS": "NORMLIME_FRAME_ANCESTORS",
    "PARTICIPANT_RATE": "NORMLIME_PARTICIPANT_RATE",
    "ENTRY_RATE": "NORMLIME_ENTRY_RATE",
    "ADMIN_LOGIN_RATE": "NORMLIME_ADMIN_LOGIN_RATE",
    "TRUSTED_PROXIES": "NORMLIME_TRUSTED_PROXIES",
    "SECURE_COOKIES": "NORMLIME_SECURE_COOKIES",
    "DB_POOL_SIZE": "NORMLIME_DB_POOL_SIZE",
    "FAKE_MTURK": "NORMLIME_FAKE_MTURK",
    "BENCHMARK_ENDPOINTS": "NORMLIME_BENCHMARK_ENDPOINTS",
}
_DEFAULTS = {
    "FRAME_ANCESTORS": "*",
    "PARTICIPANT_RATE": "100/10",
    "ENTRY_RATE": "300/60",
    "ADMIN_LOGIN_RATE": "10/900",
    "TRUSTED_PROXIES": 0,
    "SECURE_COOKIES": False,
    "DB_POOL_SIZE": 5,
    "FAKE_MTURK": False,
    "BENCHMARK_ENDPOINTS": False,
    "MAX_CONTENT_LENGTH": 64 * 1024,
}
_BOOLEAN = ("SECURE_COOKIES", "FAKE_MTURK", "BENCHMARK_ENDPOINTS")


def _flag(value) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def _resolve_config(config: dict | None) -> dict:
    cfg = dict(_DEFAULTS)
    for key, env in _ENV.items():
        if os.environ.get(env):
            cfg[key] = os.environ[env]
    cfg.update(config or {})
    if "DATABASE_URL" in cfg and "SQLALCHEMY_DATABASE_URI" not in (config or {}):
        cfg["SQLALCHEMY_DATABASE_URI"] = cfg.pop("DATABASE_URL")
    cfg["SQLALCHEMY_DATABASE_URI"] = schema.normalize_db_url(
        cfg.get("SQLALCHEMY_DATABASE_URI") or schema.DEFAULT_DB
    )
    cfg["MAPS_DIR"] = str(cfg.get("MAPS_DIR") or default_maps_dir())
    for key in _BOOLEAN:
        cfg[key] = _flag(cfg[key])
    cfg["TRUSTED_PROXIES"] = int(cfg["TRUSTED_PROXIES"])
    cfg["DB_POOL_SIZE"] = int(cfg["DB_POOL_SIZE"])
    for key in ("PARTICIPANT_RATE", "ENTRY_RATE", "ADMIN_LOGIN_RATE"):
        parse_rate(cfg[key])  # fail at start-up, not on the first request
    if cfg["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        cfg.setdefault("SQLALCHEMY_ENGINE_OPTIONS", {})
    else:
        cfg.setdefault(
            "SQLALCHEMY_ENGINE_OPTIONS",
            {"pool_size": cfg["DB_POOL_SIZE"], "max_overflow": 10, "pool_pre_ping": True},
        )
    return cfg


def create_app(config: dict | None = None) -> Flask:
    """Build the study server.  Needs a maps bundle and a database with the schema."""
    cfg = _resolve_config(config)
    app = Flask(
        __name__,
        template_folder=str(REPO / "templates"),
        static_folder=str(REPO / "static"),
        static_url_path="/static",
    )
    app.config.update(
        SQLALCHEMY_TRACK_MODIFICATIONS=False,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_NAME="normlime_admin",
        PERMANENT_SESSION_LIFETIME=8 * 3600,
        TEMPLATES_AUTO_RELOAD=False,
    )
    app.config.update(cfg)
    app.config["SESSION_COOKIE_SECURE"] = cfg["SECURE_COOKIES"]
    if cfg["TRUSTED_PROXIES"]:
        from werkzeug.middleware.proxy_fix import ProxyFix

        n = cfg["TRUSTED_PROXIES"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n, x_port=n)

    app.extensions["normlime_maps"] = load_maps(cfg["MAPS_DIR"])
    db.init_app(app)
    with app.app_context():
        engine = schema.configure_engine(db.engine)
        schema.check_current(engine)
        with Session(engine) as session:
            secret = schema.get_setting(session, "secret_key")
        if not app.config.get("SECRET_KEY"):
            app.config["SECRET_KEY"] = secret
        engine.dispose()  # forked gunicorn workers open their own connections

    limits = {
        key: SlidingWindow(*parse_rate(cfg[key])) for key in ("PARTICIPANT_RATE", "ENTRY_RATE")
    }
    app.extensions["normlime_limits"] = limits

    from .admin import bp as admin_bp
    from .participant import bp as participant_bp

    app.register_blueprint(participant_bp)
    app.register_blueprint(admin_bp)
    if cfg["FAKE_MTURK"]:
        from .devtools import bp as dev_bp

        app.register_blueprint(dev_bp)
    if cfg["BENCHMARK_ENDPOINTS"]:
        from .bench import bp as bench_bp

        app.register_blueprint(bench_bp)

    @app.template_global("static")
    def _static(filename: str) -> str:
        return f"{request.script_root}/static/{filename}"

    _install_headers(app)
    _install_errors(app)

    @app.get("/healthz")
    def healthz():
        return {"ok": True}

    @app.teardown_request
    def _end_transaction(exc):
        # One request, one transaction: anything not committed by the view is undone.
        if exc is not None:
            db.session.rollback()

    return app


def _install_headers(app: Flask) -> None:
    frame_ancestors = app.config["FRAME_ANCESTORS"]

    @app.after_request
    def _headers(resp):
        h = resp.headers
        h.setdefault("X-Content-Type-Options", "nosniff")
        # Participant tokens live in URLs: never leak them to other sites.
        h.setdefault("Referrer-Policy", "no-referrer")
        if request.blueprint == "admin":
            h["X-Frame-Options"] = "DENY"
            h["Content-Security-Policy"] = (
                "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
            )
            h["Cache-Control"] = "no-store"
        elif "Content-Security-Policy" not in h:
            # Participant pages are framed by MTurk: allow framing, nothing else external.
            form_action = resp.headers.pop("X-Form-Action", "")
            h["Content-Security-Policy"] = (
                "default-src 'none'; img-src 'self'; style-src 'self'; script-src 'self'; "
                f"form-action 'self' {form_action}; base-uri 'none'; "
                f"frame-ancestors {frame_ancestors}"
            ).replace("  ", " ")
        return resp


def _install_errors(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        db.session.rollback()
        if request.path.startswith("/_bench/") or request.accept_mimetypes.best == (
            "application/json"
        ):
            resp = {"error": exc.description, "status": exc.code}, exc.code
        else:
            resp = (
                render_template(
                    "message.html", title=exc.name, message=exc.description, status=exc.code
                ),
                exc.code,
            )
        from flask import make_response

        out = make_response(resp)
        if exc.code == 429 and getattr(exc, "retry_after", None):
            out.headers["Retry-After"] = str(int(exc.retry_after) + 1)
        return out
