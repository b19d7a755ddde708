"""Admin pages: login, live progress, downloads, opening/closing a study.

CSRF: a random token kept in the (signed, HttpOnly, SameSite=Lax) session cookie and
echoed in every admin form; written here instead of pulling in Flask-WTF because there are
three small forms and no WTForms validation to reuse.

Login rate limit: failed logins are events in the append-only log; more than
ADMIN_LOGIN_RATE failures from one address (or ten times that from all addresses) within
the window answer 429 before the password is even checked.  Counting in the database keeps
the limit correct across gunicorn workers and restarts without another service.
"""

from __future__ import annotations

import datetime as dt
import functools
import secrets

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from sqlalchemy import func, select, update
from werkzeug.exceptions import TooManyRequests
from werkzeug.security import check_password_hash

from . import exports
from .flow import log_event
from .models import Event, Study, db, utcnow
from .ratelimit import parse_rate
from .recruitment import load_adapters
from .schema import get_setting

bp = Blueprint("admin", __name__, url_prefix="/admin")


def _csrf_token() -> str:
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    return session["csrf"]


@bp.context_processor
def _inject():
    return {"csrf_token": _csrf_token}


@bp.before_request
def _check_csrf():
    if request.method == "POST":
        sent = request.form.get("csrf_token", "")
        expected = session.get("csrf", "")
        if not sent or not expected or not secrets.compare_digest(sent, expected):
            abort(400, "The form has expired or did not come from this site; reload and retry.")


def login_required(view):
    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        if not session.get("admin"):
            return redirect(url_for("admin.login"), code=303)
        return view(*args, **kwargs)

    return wrapped


def _ip() -> str:
    return request.remote_addr or "?"


def _check_login_rate() -> None:
    limit, window = parse_rate(current_app.config["ADMIN_LOGIN_RATE"])
    since = utcnow() - dt.timedelta(seconds=window)
    base = (
        select(func.count())
        .select_from(Event)
        .where(Event.kind == "admin_login_failed", Event.at >= since)
    )
    mine = db.session.execute(base.where(Event.ip == _ip())).scalar_one()
    total = db.session.execute(base).scalar_one()
    if mine >= limit or total >= 10 * limit:
        exc = TooManyRequests("Too many failed logins; wait a few minutes and try again.")
        exc.retry_after = window
        raise exc


@bp.route("/login", methods=["GET", "POST"])
def login():
    stored = get_setting(db.session, "admin_password_hash")
    if stored is None:
        return render_template("admin/login.html", disabled=True), 503
    if request.method == "GET":
        return render_template("admin/login.html", disabled=False)
    _check_login_rate()
    password = request.form.get("password", "")
    if not password or not check_password_hash(stored, password):
        log_event("admin_login_failed", ip=_ip())
        db.session.commit()
        return render_template("admin/login.html", disabled=False, failed=True), 401
    session.clear()
    session.permanent = True
    session["admin"] = True
    session["csrf"] = secrets.token_urlsafe(32)  # a fresh token per login
    log_event("admin_login", ip=_ip())
    db.session.commit()
    return redirect(url_for("admin.dashboard"), code=303)


@bp.post("/logout")
def logout():
    session.clear()
    return redirect(url_for("admin.login"), code=303)


@bp.get("/")
@login_required
def dashboard():
    studies = exports.study_progress(db.session)
    base = request.host_url.rstrip("/")
    for s in studies:
        adapters = load_adapters(
            db.session.execute(select(Study.adapters).where(Study.id == s["id"])).scalar_one()
        )
        s["links"] = {
            name: f"{base}/s/{s['public_key']}" + ("" if name == "link" else f"/{name}")
            for name in adapters
        }
    db.session.rollback()
    return render_template("admin/dashboard.html", studies=studies)


@bp.get("/export/<kind>.csv")
@login_required
def export(kind: str):
    include_debug = request.args.get("include_debug") == "1"
    study = request.args.get("study") or None
    if kind == "votes":
        columns, rows = exports.VOTE_COLUMNS, exports.vote_rows
    elif kind == "participants":
        columns, rows = exports.PARTICIPANT_COLUMNS, exports.participant_rows
    else:
        abort(404, "Unknown export.")
    text = exports.csv_text(columns, rows(db.session, include_debug=include_debug, study=study))
    log_event("export_downloaded", ip=_ip(), export=kind, include_debug=include_debug, study=study)
    db.session.commit()
    name = f"{kind}-{exports.utc_stamp()}.csv"
    return Response(
        text,
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@bp.post("/studies/<int:study_id>/active")
@login_required
def set_active(study_id: int):
    value = request.form.get("active")
    if value not in ("0", "1"):
        abort(400, "The form field 'active' must be 0 or 1.")
    result = db.session.execute(
        update(Study).where(Study.id == study_id).values(active=value == "1")
    )
    if result.rowcount != 1:
        abort(404, "No such study.")
    log_event("study_active_set", study_id=study_id, ip=_ip(), active=value == "1")
    db.session.commit()
    return redirect(url_for("admin.dashboard"), code=303)
