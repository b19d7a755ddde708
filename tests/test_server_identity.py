"""No participant stranded, one person one participation: returning by any route,
adapters chosen per study, plain-link resume, 429 pages that lead back, error banners."""

from __future__ import annotations

import html
import re
import time

from tests.server_fixtures import Walker, make_server

SANDBOX = "https://workersandbox.mturk.com"


def mturk(worker: str, assignment: str = "A1") -> dict:
    return {"workerId": worker, "assignmentId": assignment, "hitId": "H", "turkSubmitTo": SANDBOX}


def finish(w: Walker) -> None:
    while "Thank you" not in w.page:
        assert w.answer(1).status_code == 200


def test_a_finished_worker_sees_the_completion_page_by_every_route(server):
    srv = server
    w = Walker(srv).begin(worker="W42", assignment="ASSIGN42")
    finish(w)
    code = srv.scalar("SELECT completion_code FROM participants")
    routes = [
        ("mturk", mturk("W42", "ASSIGN42")),  # the tab was closed before Submit
        ("mturk", mturk("W42", "ANOTHER")),
        ("prolific", {"PROLIFIC_PID": "W42", "STUDY_ID": "S", "SESSION_ID": "X"}),
        ("link", {"pid": "W42"}),
    ]
    for adapter, params in routes:
        back = Walker(srv)
        r = back.enter(adapter, **params)
        assert r.status_code == 303 and r.headers["Location"] == w.home, adapter
        back.show()
        page = html.unescape(back.page)
        assert "Thank you" in page and code in page, adapter
        # the MTurk form posts the assignment the survey was completed under
        assert 'name="assignmentId" value="ASSIGN42"' in back.page
        assert f'action="{SANDBOX}/mturk/externalSubmit"' in back.page
    assert srv.scalar("SELECT count(*) FROM participants") == 1


def test_one_participation_per_worker_whatever_the_adapter(server):
    srv = server
    w = Walker(srv).begin(worker="W7")
    for _ in range(3):
        assert w.answer(2).status_code == 200
    for adapter, params in [
        ("prolific", {"PROLIFIC_PID": "W7", "STUDY_ID": "S", "SESSION_ID": "X"}),
        ("link", {"pid": "W7"}),
    ]:
        other = Walker(srv)
        r = other.enter(adapter, **params)
        assert r.status_code == 303 and r.headers["Location"] == w.home
        other.show()
        assert "Question 4 of 25" in other.page
    assert srv.scalar("SELECT count(*) FROM participants") == 1
    assert srv.scalar("SELECT count(*) FROM responses") == 3


def test_participations_made_before_the_identity_change_are_found(server):
    """Rows of schema 0001 hold a per-adapter key; a worker is still one participant."""
    from study_server.tokens import legacy_worker_key

    srv = server
    w = Walker(srv).begin(worker="OLDW")
    with srv.engine.begin() as conn:
        from sqlalchemy import text

        conn.execute(
            text("UPDATE participants SET worker_key = :k"),
            {"k": legacy_worker_key(srv.secret, "mturk", "OLDW")},
        )
    r = Walker(srv).enter("prolific", PROLIFIC_PID="OLDW", STUDY_ID="S", SESSION_ID="X")
    assert r.status_code == 303 and r.headers["Location"] == w.home
    assert srv.scalar("SELECT count(*) FROM participants") == 1


def test_adapters_are_chosen_per_study(sqlite_url, bundle_dir):
    from study_server.recruitment import default_adapters

    only_mturk = {"mturk": default_adapters()["mturk"]}
    srv = make_server(sqlite_url, bundle_dir, adapters=only_mturk)
    before = srv.snapshot()
    c = srv.client()
    for path, params in [
        (f"/s/{srv.study_key}", {"pid": "W1"}),
        (f"/s/{srv.study_key}/prolific", {"PROLIFIC_PID": "W1"}),
        (f"/s/{srv.study_key}/link", {}),
    ]:
        r = c.get(path, query_string=params, follow_redirects=True)
        assert r.status_code == 404 and "not valid" in r.get_data(as_text=True)
    assert c.get(f"/s/{srv.study_key}/mturk", query_string=mturk("W1")).status_code == 200
    assert srv.snapshot() == before


def test_plain_link_participants_resume(sqlite_server):
    srv = sqlite_server
    w = Walker(srv)
    assert w.enter("link").status_code == 200
    assert w.consent().status_code == 303
    first = w.show()
    resume = re.search(r'class="resume">.*?href="([^"]+)"', w.page, re.S)
    assert resume and resume.group(1).endswith(w.home)
    assert first.status_code == 200
    w.start()
    for _ in range(3):
        assert w.answer(3).status_code == 200
    # the same browser opening the same link again is back at question 4
    again = Walker(srv, client=w.client)
    r = again.enter("link")
    assert r.status_code == 303 and r.headers["Location"] == w.home
    again.show()
    assert "Question 4 of 25" in again.page
    # the resume link works in any browser (no cookie)
    other = srv.client()
    page = other.get(resume.group(1)).get_data(as_text=True)
    assert "Question 4 of 25" in page
    # a different browser opening the plain link is a new, anonymous participant
    fresh = Walker(srv)
    assert fresh.enter("link").status_code == 200 and "Before you begin" in fresh.page
    assert srv.scalar("SELECT count(*) FROM participants") == 1
    # the cookie is first-party, HttpOnly, and scoped to this study's entry link
    cookie = w.client.get_cookie(f"normlime_resume_{srv.study_key}", path=f"/s/{srv.study_key}")
    assert cookie is not None and cookie.http_only and cookie.same_site == "Lax"


def test_a_429_page_returns_to_the_current_question(sqlite_url, bundle_dir):
    srv = make_server(sqlite_url, bundle_dir, config={"PARTICIPANT_RATE": "6 per 2 seconds"})
    w = Walker(srv).begin()
    assert w.answer(1).status_code == 200
    current = w.page
    statuses = [w.client.get(w.home).status_code for _ in range(8)]
    assert 429 in statuses
    r = w.client.post(w.home + "/answer", data={"q": "2", "c": "1", "f": "0" * 24})
    assert r.status_code == 429
    page = r.get_data(as_text=True)
    wait = int(r.headers["Retry-After"])
    assert 1 <= wait <= 3
    assert f'<meta http-equiv="refresh" content="{wait};url={w.home}">' in page
    assert f'href="{w.home}"' in page and "slow down" in page
    assert 'class="banner">debug run' in page  # the study's mode, even before any lookup
    time.sleep(wait)
    back = w.client.get(w.home)
    assert back.status_code == 200 and "Question 2 of 25" in back.get_data(as_text=True)
    assert "Question 2 of 25" in current


def test_error_pages_keep_the_mode_banner(sqlite_server):
    srv = sqlite_server
    c = srv.client()
    bad = c.get(f"/s/{srv.study_key}/mturk", query_string={**mturk("W1"), "workerId": "a b"})
    assert bad.status_code == 400
    assert 'class="banner">debug run' in bad.get_data(as_text=True)
    w = Walker(srv).begin()
    r = w.client.post(w.home + "/answer", data={"q": "1", "c": "²", "f": "0" * 24})
    body = r.get_data(as_text=True)
    assert r.status_code == 400 and 'class="banner">debug run' in body
    assert "reload the page" in body


def test_platform_urls_are_validated(sqlite_url, bundle_dir):
    debug = make_server(sqlite_url, bundle_dir)
    before = debug.snapshot()
    c = debug.client()
    for submit in [
        "https://workersandbox.mturk.com\r\nX-Injected: 1",
        "https://evil.example/\x00",
        "https://a.example/" + "x" * 300,
        "https://a.example/?x=1",
    ]:
        r = c.get(
            f"/s/{debug.study_key}/mturk", query_string={**mturk("W1"), "turkSubmitTo": submit}
        )
        assert r.status_code == 400, submit
    assert debug.snapshot() == before

    live = make_server(sqlite_url, bundle_dir, mode="live")
    c = live.client()
    for submit in ["http://www.mturk.com", "https://www.mturk.com.evil.example"]:
        r = c.get(
            f"/s/{live.study_key}/mturk", query_string={**mturk("W1"), "turkSubmitTo": submit}
        )
        assert r.status_code == 400, submit
    ok = c.get(
        f"/s/{live.study_key}/mturk",
        query_string={**mturk("W1"), "turkSubmitTo": "https://www.mturk.com"},
    )
    assert ok.status_code == 200


# ----------------------------------------------------------------------------- issue 24, item 5


def test_a_worker_who_moves_panels_finishes_on_the_panel_that_pays(server):
    """Began on MTurk, came back through Prolific with the same id: the participation
    moves to Prolific and finishes on its completion link, never on an MTurk form whose
    target is not a URL (the audit's `None/mturk/externalSubmit`)."""
    srv = server
    w = Walker(srv).begin(worker="MOVER", assignment="A-MT")
    for _ in range(2):
        assert w.answer(1).status_code == 200
    back = Walker(srv)
    r = back.enter("prolific", PROLIFIC_PID="MOVER", STUDY_ID="S", SESSION_ID="SESS9")
    assert r.status_code == 303 and r.headers["Location"] == w.home
    row = srv.rows("SELECT adapter, assignment_id, submit_to FROM participants")
    assert row == [("prolific", "SESS9", None)]
    kinds = [k for (k,) in srv.rows("SELECT kind FROM events ORDER BY id")]
    assert "adapter_changed" in kinds
    back.show()
    finish(back)
    page = html.unescape(back.page)
    assert "externalSubmit" not in page and "<form" not in page
    assert "app.prolific.com/submissions/complete?cc=" in page
    # after completion nothing moves: the MTurk link shows the Prolific finish again
    again = Walker(srv)
    again.enter("mturk", **mturk("MOVER", "A-LATER"))
    again.show()
    assert srv.rows("SELECT adapter FROM participants") == [("prolific",)]
    again_page = html.unescape(again.page)
    assert "externalSubmit" not in again_page and "<form" not in again_page
    assert "app.prolific.com/submissions/complete?cc=" in again_page


def test_the_plain_link_never_takes_a_participation_from_a_panel(server):
    srv = server
    w = Walker(srv).begin(worker="STAY", assignment="A-STAY")
    assert w.answer(1).status_code == 200
    r = Walker(srv).enter("link", pid="STAY")
    assert r.status_code == 303 and r.headers["Location"] == w.home
    assert srv.rows("SELECT adapter, assignment_id FROM participants") == [("mturk", "A-STAY")]


def test_an_mturk_completion_without_a_target_shows_the_code_not_a_broken_form(server):
    srv = server
    w = Walker(srv).begin(worker="NOTARGET", assignment="A-NT")
    with srv.engine.begin() as conn:
        from sqlalchemy import text

        conn.execute(text("UPDATE participants SET submit_to = NULL"))
    finish(w)
    page = html.unescape(w.page)
    code = srv.scalar("SELECT completion_code FROM participants")
    assert "Thank you" in page and code in page
    assert "<form" not in w.page and "None/mturk" not in w.page


def test_the_plain_link_honours_the_panels_worker_ids(server):
    """The MTurk link with `/mturk` removed enters the plain link: it still names the
    worker, so the same person resumes instead of starting a second participation."""
    srv = server
    w = Walker(srv).begin(worker="EDITED", assignment="A-ED")
    assert w.answer(1).status_code == 200
    r = Walker(srv).enter("link", workerId="EDITED", assignmentId="A-ED", hitId="H")
    assert r.status_code == 303 and r.headers["Location"] == w.home
    r = Walker(srv).enter("link", PROLIFIC_PID="EDITED")
    assert r.status_code == 303 and r.headers["Location"] == w.home
    assert srv.scalar("SELECT count(*) FROM participants") == 1
    # a new worker through the edited link is identified, and found again by MTurk later
    fresh = Walker(srv)
    fresh.enter("link", workerId="NEWBIE")
    assert fresh.consent().status_code == 303
    r = Walker(srv).enter("mturk", **mturk("NEWBIE", "A-NB"))
    assert r.status_code == 303 and r.headers["Location"] == fresh.home
    assert srv.scalar("SELECT count(*) FROM participants") == 2
    assert srv.rows("SELECT adapter FROM participants ORDER BY id")[-1] == ("mturk",)
    bad = Walker(srv).enter("link", workerId="bad id!")
    assert bad.status_code == 400
    assert srv.scalar("SELECT count(*) FROM participants") == 2
