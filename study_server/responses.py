"""Error replies, shared by the app's handlers and the blueprints (its own module so that
a blueprint never imports the application factory that imports it)."""

from __future__ import annotations

from flask import g, make_response, render_template, request
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from .models import db

__all__ = ["error_response"]


def error_response(status: int, title: str, message: str, *, retry_after=None):
    """A 4xx/5xx reply: JSON for API clients, else a page with the study's mode banner and,
    when waiting helps, an automatic return to where the participant was."""
    if request.path.startswith("/_bench/") or request.accept_mimetypes.best == (
        "application/json"
    ):
        out = make_response({"error": message, "status": status}, status)
    else:
        back = _way_back() if retry_after else None
        html = render_template(
            "message.html",
            title=title,
            message=message,
            status=status,
            mode=_mode_for_banner(),
            back=back,
            retry_after=int(retry_after) if retry_after else None,
        )
        out = make_response(html, status)
    if retry_after:
        out.headers["Retry-After"] = str(int(retry_after))
    out.headers["Cache-Control"] = "no-store"
    return out


def _mode_for_banner() -> str | None:
    mode = g.get("study_mode")
    args = request.view_args or {}
    ids = args.get("token") or args.get("key")
    if mode is None and request.blueprint == "participant" and ids:
        from .flow import mode_of

        try:
            mode = mode_of(token=args.get("token"), study_key=args.get("key"))
        except (OperationalError, InterfaceError, PoolTimeout):
            mode = None  # the database is down: the page says so, without a banner
        finally:
            db.session.rollback()
    return mode


def _way_back() -> str | None:
    """Where a participant returns after waiting: their survey's current question (a GET,
    never a re-posted form), or the entry link they opened."""
    token = (request.view_args or {}).get("token")
    if token:
        return f"{request.script_root}/p/{token}"
    if request.method == "GET" and request.blueprint == "participant":
        return request.full_path.rstrip("?")
    return None
