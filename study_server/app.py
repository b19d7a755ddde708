"""The application factory.

Configuration comes from the ``config`` mapping, else the environment, else defaults:

=========================  ==============================  ==================================
key                        environment variable            default
=========================  ==============================  ==================================
SQLALCHEMY_DATABASE_URI    DATABASE_URL                    sqlite:///artifacts/study.sqlite3
MAPS_DIR                   NORMLIME_MAPS                   the shipped bundle, else
                                                           artifacts/maps
STIMULI_DIR                NORMLIME_STIMULI                none (the per-image stimuli of
                                                           forward-simulation, distinction
                                                           and agreement studies)
FRAME_ANCESTORS            NORMLIME_FRAME_ANCESTORS        ``*`` (participant pages may be
                                                           framed by any recruiting site)
LIMITS_STORAGE             NORMLIME_LIMITS_STORAGE         memory:// (redis://HOST:PORT to share
                                                           the limits across processes)
LIMITS_KEY_PREFIX          NORMLIME_LIMITS_KEY_PREFIX      normlime
PARTICIPANT_RATE           NORMLIME_PARTICIPANT_RATE       100 per 10 seconds (per token)
IMAGE_RATE                 NORMLIME_IMAGE_RATE             600 per 10 seconds (per token)
MISS_RATE                  NORMLIME_MISS_RATE              60 per minute (404s per address)
ENTRY_RATE                 NORMLIME_ENTRY_RATE             300 per minute (per address)
ADMIN_LOGIN_RATE           NORMLIME_ADMIN_LOGIN_RATE       5 per minute; 10 per 15 minutes;
                                                           20 per hour; 50 per day (per address)
TRUSTED_PROXIES            NORMLIME_TRUSTED_PROXIES        0 (X-Forwarded-* hops to trust)
SECURE_COOKIES             NORMLIME_SECURE_COOKIES         off (admin cookie over https only)
DB_POOL_SIZE               NORMLIME_DB_POOL_SIZE           5
FAKE_MTURK                 NORMLIME_FAKE_MTURK             off (debug turkSubmitTo endpoint)
BENCHMARK_ENDPOINTS        NORMLIME_BENCHMARK_ENDPOINTS    off (benchmarks/load.py references)
MAX_CONTENT_LENGTH         -                               64 KiB, with or without a
                                                           Content-Length header
=========================  ==============================  ==================================

Rates are explained in :mod:`study_server.limits`.  The Flask ``SECRET_KEY`` (it signs the
admin session cookie and plain-link participants' resume cookie) is read from the database,
where ``normlime init-db`` generated it, so every gunicorn worker shares it.
"""

from __future__ import annotations

import io
import os

from flask import Flask, abort, request
from flask_wtf.csrf import CSRFError, CSRFProtect
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session
from werkzeug.exceptions import HTTPException

from explainers.shipped import package_dir

from . import schema
from .fields import FieldError
from .flow import check_open_surveys
from .limits import DEFAULT_RATES, check_storage_url, install_limits, normalize_rate, retry_after
from .logs import install as install_redaction
from .maps import default_maps_dir, load_maps
from .models import db
from .responses import error_response
from .task_stimuli import load_stimuli_store

__all__ = ["create_app"]


_ENV = {
    "SQLALCHEMY_DATABASE_URI": "DATABASE_URL",
    "MAPS_DIR": "NORMLIME_MAPS",
    "STIMULI_DIR": "NORMLIME_STIMULI",
    "FRAME_ANCESTORS": "NORMLIME_FRAME_ANCESTORS",
    "LIMITS_STORAGE": "NORMLIME_LIMITS_STORAGE",
    "LIMITS_KEY_PREFIX": "NORMLIME_LIMITS_KEY_PREFIX",
    "PARTICIPANT_RATE": "NORMLIME_PARTICIPANT_RATE",
    "IMAGE_RATE": "NORMLIME_IMAGE_RATE",
    "MISS_RATE": "NORMLIME_MISS_RATE",
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
    "LIMITS_STORAGE": "memory://",
    "LIMITS_KEY_PREFIX": "normlime",
    **DEFAULT_RATES,
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
    for key in DEFAULT_RATES:
        cfg[key] = normalize_rate(cfg[key])  # fail at start-up, not on the first request
    cfg["LIMITS_STORAGE"] = check_storage_url(cfg["LIMITS_STORAGE"])
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
        # package data (pyproject maps the repository's templates/ and static/ here)
        template_folder=str(package_dir("study_server.templates")),
        static_folder=str(package_dir("study_server.static")),
        static_url_path="/static",
    )
    app.config.update(
        SQLALCHEMY_TRACK_MODIFICATIONS=False,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_NAME="normlime_admin",
        PERMANENT_SESSION_LIFETIME=8 * 3600,
        TEMPLATES_AUTO_RELOAD=False,
        # CSRF tokens live as long as the (server-side revocable) admin session
        WTF_CSRF_TIME_LIMIT=None,
    )
    app.config.update(cfg)
    app.config["SESSION_COOKIE_SECURE"] = cfg["SECURE_COOKIES"]
    app.wsgi_app = BoundedBody(app.wsgi_app, cfg["MAX_CONTENT_LENGTH"])
    if cfg["TRUSTED_PROXIES"]:
        from werkzeug.middleware.proxy_fix import ProxyFix

        n = cfg["TRUSTED_PROXIES"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n, x_port=n)

    install_redaction(app.logger)
    app.extensions["normlime_maps"] = load_maps(cfg["MAPS_DIR"])
    # the per-image stimuli of forward-simulation, distinction and agreement studies
    app.extensions["normlime_stimuli"] = (
        load_stimuli_store(cfg["STIMULI_DIR"]) if cfg.get("STIMULI_DIR") else None
    )
    db.init_app(app)
    with app.app_context():
        engine = schema.configure_engine(db.engine)
        schema.check_current(engine)
        with Session(engine) as session:
            secret = schema.get_setting(session, "secret_key")
            check_open_surveys(session, app.extensions["normlime_maps"].design)
        if not app.config.get("SECRET_KEY"):
            app.config["SECRET_KEY"] = secret
        engine.dispose()  # forked gunicorn workers open their own connections

    from .admin import bp as admin_bp
    from .participant import bp as participant_bp

    csrf = CSRFProtect(app)
    # Participant forms are bound to their participant and item by an HMAC signature and
    # participants hold no session, so there is no ambient authority for CSRF to abuse.
    csrf.exempt(participant_bp)
    app.register_blueprint(participant_bp)
    app.register_blueprint(admin_bp)
    if cfg["FAKE_MTURK"]:
        from .devtools import bp as dev_bp

        csrf.exempt(dev_bp)
        app.register_blueprint(dev_bp)
    if cfg["BENCHMARK_ENDPOINTS"]:
        from .bench import bp as bench_bp

        csrf.exempt(bench_bp)
        app.register_blueprint(bench_bp)
    app.extensions["normlime_limiter"] = install_limits(app)

    @app.before_request
    def _bounded_body():
        if request.environ.get("normlime.body_too_large"):
            abort(413, "The request is too large. Reload the page and answer again.")

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
        if request.blueprint == "admin":
            # same-origin (not no-referrer): Flask-WTF checks the Referer over https
            h["Referrer-Policy"] = "same-origin"
            h["X-Frame-Options"] = "DENY"
            h["Content-Security-Policy"] = (
                "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
            )
            h["Cache-Control"] = "no-store"
        else:
            h.setdefault("Referrer-Policy", "no-referrer")
        if request.blueprint != "admin" and "Content-Security-Policy" not in h:
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
        retry = retry_after(app.extensions["normlime_limiter"]) if exc.code == 429 else None
        retry = getattr(exc, "retry_after", None) or retry
        return error_response(exc.code, exc.name, exc.description, retry_after=retry)

    @app.errorhandler(FieldError)
    def _bad_field(exc: FieldError):
        db.session.rollback()
        on_survey = bool(request.view_args and "token" in request.view_args)
        if on_survey or request.blueprint == "admin":
            hint = "Please reload the page."
        else:
            hint = "Please reopen the link you were given."
        return error_response(400, "Not accepted", f"{exc} {hint}")

    @app.errorhandler(CSRFError)
    def _csrf_error(exc: CSRFError):
        db.session.rollback()
        return error_response(
            400,
            "Form expired",
            f"The form has expired or did not come from this site ({exc.description}); "
            "reload the page and try again.",
        )

    @app.errorhandler(OperationalError)
    @app.errorhandler(InterfaceError)
    @app.errorhandler(PoolTimeout)
    def _database_down(exc: Exception):
        # Nothing was acknowledged: the request's transaction never committed.
        db.session.rollback()
        app.logger.warning("database error, answered 503: %s", str(exc).splitlines()[0])
        return error_response(
            503,
            "Temporarily unavailable",
            "The study's database is not answering right now. Nothing you sent was lost: "
            "your answers so far are saved. Please try again in a moment.",
            retry_after=5,
        )


class BoundedBody:
    """Refuse request bodies over ``limit`` bytes, also when no Content-Length is sent.

    Werkzeug enforces MAX_CONTENT_LENGTH from the header; a chunked body has none, so it
    is read here up to the limit (and handed on as a plain, measured body) or refused.
    """

    def __init__(self, wsgi_app, limit: int):
        self.wsgi_app, self.limit = wsgi_app, int(limit)

    def __call__(self, environ, start_response):
        if environ.get("CONTENT_LENGTH") in (None, "") and (
            environ.get("wsgi.input_terminated")
            or "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        ):
            data = environ["wsgi.input"].read(self.limit + 1)
            if len(data) > self.limit:
                environ["normlime.body_too_large"] = True
                data = b""
            environ["wsgi.input"] = io.BytesIO(data)
            environ["CONTENT_LENGTH"] = str(len(data))
            environ["wsgi.input_terminated"] = False
            environ.pop("HTTP_TRANSFER_ENCODING", None)
        return self.wsgi_app(environ, start_response)
