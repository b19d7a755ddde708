"""Admin pages: password (hashed, no default), CSRF, login rate limit, progress, downloads."""

from __future__ import annotations

import csv
import io
import re

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DatabaseError
from sqlalchemy.orm import Session

from study_server.studies import set_admin_password
from tests.server_fixtures import Walker, make_server

PASSWORD = "correct horse battery"


def csrf(page: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def login(client, password=PASSWORD):
    page = client.get("/admin/login").get_data(as_text=True)
    return client.post("/admin/login", data={"password": password, "csrf_token": csrf(page)})


def with_password(srv):
    with Session(srv.engine) as session, session.begin():
        set_admin_password(session, PASSWORD)
    return srv


def test_no_password_no_admin(sqlite_server):
    c = sqlite_server.client()
    r = c.get("/admin/login")
    assert r.status_code == 503 and "set-admin-password" in r.get_data(as_text=True)
    assert c.get("/admin/").status_code == 303  # to the login page
    stored = sqlite_server.scalar("SELECT value FROM settings WHERE key = 'admin_password_hash'")
    assert stored is None


def test_password_is_stored_hashed(sqlite_server):
    srv = with_password(sqlite_server)
    stored = srv.scalar("SELECT value FROM settings WHERE key = 'admin_password_hash'")
    assert PASSWORD not in stored and stored.startswith(("scrypt:", "pbkdf2:"))


def test_login_needs_csrf_and_the_right_password(sqlite_server):
    srv = with_password(sqlite_server)
    c = srv.client()
    r = c.post("/admin/login", data={"password": PASSWORD})
    assert r.status_code == 400 and "expired" in r.get_data(as_text=True)
    c2 = srv.client()
    c2.get("/admin/login")
    r = c2.post("/admin/login", data={"password": PASSWORD, "csrf_token": "forged"})
    assert r.status_code == 400
    assert login(c, "wrong password!").status_code == 401
    assert c.get("/admin/").status_code == 303
    r = login(c)
    assert r.status_code == 303 and r.headers["Location"] == "/admin/"
    assert c.get("/admin/").status_code == 200
    kinds = [k for (k,) in srv.rows("SELECT kind FROM events ORDER BY id")]
    assert kinds.count("admin_login_failed") == 1 and kinds.count("admin_login") == 1


def _from(client, address: str):
    client.environ_base["REMOTE_ADDR"] = address
    return client


def test_login_attempts_are_limited_per_address_not_for_everyone(sqlite_url, bundle_dir):
    srv = with_password(make_server(sqlite_url, bundle_dir, config={"ADMIN_LOGIN_RATE": "3/600"}))
    for _ in range(3):
        assert login(_from(srv.client(), "203.0.113.9"), "nope nope nope").status_code == 401
    # a fresh client (new session) from the same address is limited, even with the right
    # password: attempts are counted before the password is checked
    r = login(_from(srv.client(), "203.0.113.9"))
    assert r.status_code == 429 and "Too many login attempts" in r.get_data(as_text=True)
    assert 590 <= int(r.headers["Retry-After"]) <= 601
    # ... while the operator, from another address, logs in at once
    assert login(_from(srv.client(), "198.51.100.7")).status_code == 303
    assert srv.scalar("SELECT count(*) FROM events WHERE kind = 'admin_login_failed'") == 3


def test_login_backoff_grows_with_the_attempts(sqlite_server):
    """The default rate stacks windows: 5 a minute, then 10 per 15 minutes, ..."""
    srv = with_password(sqlite_server)
    c = _from(srv.client(), "203.0.113.10")
    statuses = [login(c, "wrong wrong wrong").status_code for _ in range(6)]
    assert statuses == [401] * 5 + [429]
    first_wait = int(login(c).headers["Retry-After"])
    assert 1 <= first_wait <= 61


def test_copied_session_cookie_stops_working_after_logout(sqlite_server):
    srv = with_password(sqlite_server)
    c = srv.client()
    assert login(c).status_code == 303
    cookie = c.get_cookie("normlime_admin")
    thief = srv.client()
    thief.set_cookie("normlime_admin", cookie.value)
    assert thief.get("/admin/").status_code == 200  # a stolen cookie works until...
    page = c.get("/admin/").get_data(as_text=True)
    assert c.post("/admin/logout", data={"csrf_token": csrf(page)}).status_code == 303
    assert thief.get("/admin/").status_code == 303  # ... the session is revoked
    assert c.get("/admin/").status_code == 303
    revoked = srv.scalar("SELECT count(*) FROM admin_sessions WHERE revoked_at IS NOT NULL")
    assert revoked == 1
    # only a hash of the session id is stored
    stored = srv.scalar("SELECT id_hash FROM admin_sessions")
    assert len(stored) == 64 and stored not in cookie.value


def test_dashboard_shows_progress_and_downloads_votes(server):
    srv = with_password(server)
    done = []
    for i in range(3):
        w = Walker(srv).begin(worker=f"W{i}", assignment=f"A{i}")
        n = 25 if i < 2 else 7
        for _ in range(n):
            assert w.answer(1).status_code == 200
        done.append(w)
    c = srv.client()
    login(c)
    page = c.get("/admin/").get_data(as_text=True)
    row = re.search(r'<tr data-study="[^"]+">(.*?)</tr>', page, re.S).group(1)
    assert '<td class="started">3</td>' in row
    assert '<td class="completed">2</td>' in row
    assert '<td class="answers">57</td>' in row
    # passing = completed with >= 4 of 5 checks right: recompute from the database
    passing = srv.scalar(
        "SELECT count(*) FROM (SELECT p.id FROM participants p JOIN responses r "
        "ON r.participant_id = p.id WHERE p.completed_at IS NOT NULL "
        "AND r.chosen_role = 'correct' GROUP BY p.id HAVING count(*) >= 4) x"
    )
    assert f'<td class="passing">{passing}</td>' in row
    assert re.search(r'<td class="median">\d+(\.\d)?</td>', row)
    assert "/mturk</code>" in page and "/prolific</code>" in page
    adapters = re.search(r'<td class="adapters">(.*?)</td>', row, re.S).group(1)
    assert re.findall(r'data-kind="(\w+)">(\w+)<', adapters) == [
        ("redirect", "link"),
        ("mturk", "mturk"),
        ("redirect", "prolific"),
    ]

    r = c.get("/admin/export/votes.csv")  # debug study: nothing by default
    assert r.status_code == 200 and r.get_data(as_text=True).count("\n") == 1
    r = c.get("/admin/export/votes.csv?include_debug=1")
    rows = list(csv.DictReader(io.StringIO(r.get_data(as_text=True))))
    assert len(rows) == 57 and r.headers["Content-Disposition"].startswith("attachment;")
    r = c.get("/admin/export/participants.csv?include_debug=1")
    parts = list(csv.DictReader(io.StringIO(r.get_data(as_text=True))))
    assert sorted(p["completed"] for p in parts) == ["false", "true", "true"]
    assert c.get("/admin/export/secrets.csv").status_code == 404
    assert srv.scalar("SELECT count(*) FROM events WHERE kind = 'export_downloaded'") == 3


def test_closing_a_study_needs_csrf_and_a_typed_confirmation(sqlite_server):
    srv = with_password(sqlite_server)
    c = srv.client()
    login(c)
    page = c.get("/admin/").get_data(as_text=True)
    assert f'href="/admin/studies/{srv.study_id}/close"' in page  # a link, not a button
    url = f"/admin/studies/{srv.study_id}/active"
    name = srv.scalar("SELECT name FROM studies")
    assert c.post(url, data={"active": "0"}).status_code == 400
    # one click (no confirmation, or the wrong name) closes nothing
    for confirm in ({}, {"confirm": "wrong"}):
        r = c.post(url, data={"active": "0", "csrf_token": csrf(page), **confirm})
        assert r.status_code == 400 and "type its name" in r.get_data(as_text=True)
        assert srv.scalar("SELECT active FROM studies") in (1, True)
    confirm_page = c.get(f"/admin/studies/{srv.study_id}/close").get_data(as_text=True)
    assert f"Close {name}?" in confirm_page and 'name="confirm"' in confirm_page
    r = c.post(url, data={"active": "0", "csrf_token": csrf(confirm_page), "confirm": name})
    assert r.status_code == 303
    assert srv.scalar("SELECT active FROM studies") in (0, False)
    assert c.get("/admin/studies/999/close").status_code == 404
    assert c.post(url, data={"active": "x", "csrf_token": csrf(page)}).status_code == 400
    assert (
        c.post(
            "/admin/studies/999/active", data={"active": "1", "csrf_token": csrf(page)}
        ).status_code
        == 404
    )
    # logging out ends the session
    assert c.post("/admin/logout", data={"csrf_token": csrf(page)}).status_code == 303
    assert c.get("/admin/").status_code == 303


def test_event_log_is_append_only(server):
    srv = server
    w = Walker(srv).begin()
    assert w.answer(1).status_code == 200
    n = srv.scalar("SELECT count(*) FROM events")
    assert n >= 2
    for sql in ("UPDATE events SET kind = 'x'", "DELETE FROM events"):
        with pytest.raises(DatabaseError, match="append-only"), srv.engine.begin() as conn:
            conn.execute(text(sql))
    with pytest.raises(DatabaseError), srv.engine.begin() as conn:
        conn.execute(text("UPDATE responses SET choice = 1"))
    assert srv.scalar("SELECT count(*) FROM events") == n


def test_the_quality_table_shows_times_failed_checks_and_fast_responders(
    sqlite_server, monkeypatch
):
    import datetime as dt

    from study_server import flow
    from study_server.models import utcnow

    srv = with_password(sqlite_server)
    clock = [utcnow()]
    monkeypatch.setattr(flow, "utcnow", lambda: clock[0])  # the time each answer is stored
    # answer times under the test's control: three at 8 s, one at 0.5 s, one too short
    for i, (n, ms) in enumerate(((12, 8000), (12, 8000), (12, 8000), (12, 500), (2, 9000))):
        w = Walker(srv).begin(worker=f"Q{i}", assignment=f"QA{i}")
        for _ in range(n):
            clock[0] += dt.timedelta(milliseconds=ms)
            assert w.answer(1).status_code == 200
    ids = [r[0] for r in srv.rows("SELECT id FROM participants ORDER BY id")]
    c = srv.client()
    login(c)
    page = c.get(f"/admin/studies/{srv.study_id}/participants").get_data(as_text=True)
    rows = dict(re.findall(r'<tr data-participant="([^"]+)"[^>]*>(.*?)</tr>', page, re.S))
    public = [r[0] for r in srv.rows("SELECT public_id FROM participants ORDER BY id")]
    assert list(rows) == public
    flags = [">fast<" in rows[p] for p in public]
    assert flags == [False, False, False, True, False]  # 0.5 s < 30% of the median 8 s
    assert '<td class="median">8.0</td>' in rows[public[0]]
    assert '<td class="median">&ndash;</td>' in rows[public[4]]  # 2 answers: no median
    for pid, p in zip(ids, public, strict=True):
        failed = srv.scalar("SELECT count(*) FROM responses WHERE participant_id = :p AND "
                            "chosen_role NOT IN ('option', 'correct')", p=pid)  # fmt: skip
        answered = srv.scalar("SELECT count(*) FROM responses WHERE participant_id = :p", p=pid)
        assert f'<td class="answered">{answered}</td>' in rows[p]
        checks = srv.scalar("SELECT count(*) FROM responses WHERE participant_id = :p AND "
                            "chosen_role != 'option'", p=pid)  # fmt: skip
        assert f'<td class="checks-failed">{failed} of {checks}</td>' in rows[p]
    assert c.get("/admin/studies/999/participants").status_code == 404
    c2 = srv.client()  # not logged in
    assert c2.get(f"/admin/studies/{srv.study_id}/participants").status_code == 303
