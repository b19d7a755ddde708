"""Admin pages: login, live progress, downloads, opening/closing a study.

CSRF: Flask-WTF's CSRFProtect (installed in the app factory) checks every admin form.

Sessions are revocable: a login stores a random session id in the signed cookie and only
its SHA-256 in ``admin_sessions``; every admin request checks that row, so logging out (or
the 8-hour expiry) ends the session for every copy of the cookie.

Login attempts are rate limited per client address by Flask-Limiter (``ADMIN_LOGIN_RATE``,
see :mod:`study_server.limits`), counted before the password is checked.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
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
from sqlalchemy import insert, select, update
from werkzeug.security import check_password_hash

from . import exports, fields
from .flow import log_event
from .models import AdminSession, Study, db, utcnow
from .schema import get_setting

bp = Blueprint("admin", __name__, url_prefix="/admin")
A = AdminSession.__table__


def _sid_hash(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()


def _session_valid() -> bool:
    sid = session.get("sid")
    if not isinstance(sid, str) or len(sid) > 64:
        return False
    row = db.session.execute(
        select(A.c.expires_at, A.c.revoked_at).where(A.c.id_hash == _sid_hash(sid))
    ).first()
    if row is None or row.revoked_at is not None:
        return False
    expires = row.expires_at if row.expires_at.tzinfo else row.expires_at.replace(tzinfo=dt.UTC)
    return expires > utcnow()


def login_required(view):
    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        if not _session_valid():
            session.clear()
            return redirect(url_for("admin.login"), code=303)
        return view(*args, **kwargs)

    return wrapped


def _ip() -> str:
    return request.remote_addr or "?"


@bp.route("/login", methods=["GET", "POST"])
def login():
    stored = get_setting(db.session, "admin_password_hash")
    if stored is None:
        return render_template("admin/login.html", disabled=True), 503
    if request.method == "GET":
        return render_template("admin/login.html", disabled=False)
    form = fields.parse(request.form, fields.ADMIN_LOGIN)
    if not check_password_hash(stored, form["password"]):
        log_event("admin_login_failed", ip=_ip())
        db.session.commit()
        return render_template("admin/login.html", disabled=False, failed=True), 401
    sid = secrets.token_urlsafe(32)
    now = utcnow()
    lifetime = dt.timedelta(seconds=current_app.config["PERMANENT_SESSION_LIFETIME"])
    db.session.execute(
        insert(A).values(id_hash=_sid_hash(sid), created_at=now, expires_at=now + lifetime)
    )
    log_event("admin_login", ip=_ip())
    db.session.commit()
    session.clear()  # a fresh session (and CSRF token) per login
    session.permanent = True
    session["sid"] = sid
    return redirect(url_for("admin.dashboard"), code=303)


@bp.post("/logout")
def logout():
    fields.parse(request.form, fields.ADMIN_LOGOUT)
    sid = session.get("sid")
    if isinstance(sid, str):
        db.session.execute(
            update(A)
            .where(A.c.id_hash == _sid_hash(sid), A.c.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )
        log_event("admin_logout", ip=_ip())
        db.session.commit()
    session.clear()
    return redirect(url_for("admin.login"), code=303)


@bp.get("/")
@login_required
def dashboard():
    design = current_app.extensions["normlime_maps"].design
    studies = exports.study_progress(db.session, design)
    base = request.host_url.rstrip("/")
    for s in studies:
        adapters = json.loads(
            db.session.execute(select(Study.adapters).where(Study.id == s["id"])).scalar_one()
        )
        s["adapters"] = {name: cfg["kind"] for name, cfg in adapters.items()}
        s["links"] = {
            name: f"{base}/s/{s['public_key']}" + ("" if name == "link" else f"/{name}")
            for name in adapters
        }
    db.session.rollback()
    return render_template(
        "admin/dashboard.html",
        studies=studies,
        n_checks=design.attention_checks,
        pass_threshold=exports.pass_threshold(design),
    )


@bp.get("/export/<kind>.csv")
@login_required
def export(kind: str):
    args = fields.parse(request.args, fields.ADMIN_EXPORT)
    include_debug = args.get("include_debug") == "1"
    study = args.get("study") or None
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


def _study(study_id: int):
    study = db.session.execute(select(Study).where(Study.id == study_id)).scalar_one_or_none()
    if study is None:
        abort(404, "No such study.")
    return study


@bp.get("/studies/<int:study_id>/participants")
@login_required
def participants(study_id: int):
    """The per-participant quality table: times, checks failed, fast responders."""
    study = _study(study_id)
    rows, study_median = exports.quality_rows(db.session, study_id)
    db.session.rollback()
    return render_template(
        "admin/participants.html", study=study, rows=rows, study_median=study_median,
        fast_fraction=exports.FAST_FRACTION, min_timed=exports.MIN_TIMED_ANSWERS,
    )  # fmt: skip


@bp.get("/studies/<int:study_id>/close")
@login_required
def confirm_close(study_id: int):
    """Closing stops new participants: the admin confirms by typing the study's name."""
    study = _study(study_id)
    design = current_app.extensions["normlime_maps"].design
    progress = next(s for s in exports.study_progress(db.session, design) if s["id"] == study_id)
    db.session.rollback()
    return render_template("admin/close.html", study=study, progress=progress)


@bp.post("/studies/<int:study_id>/active")
@login_required
def set_active(study_id: int):
    form = fields.parse(request.form, fields.ADMIN_ACTIVE)
    value = form["active"]
    if value == "0":
        name = db.session.execute(select(Study.name).where(Study.id == study_id)).scalar()
        if name is None:
            abort(404, "No such study.")
        if form.get("confirm") != name:
            db.session.rollback()
            abort(400, "To close a study, type its name on the confirmation page.")
    result = db.session.execute(
        update(Study).where(Study.id == study_id).values(active=value == "1")
    )
    if result.rowcount != 1:
        abort(404, "No such study.")
    log_event("study_active_set", study_id=study_id, ip=_ip(), active=value == "1")
    db.session.commit()
    return redirect(url_for("admin.dashboard"), code=303)
