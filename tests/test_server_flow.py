"""The participant flow through the Flask test client, on SQLite and on PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest

from study_server.survey import MNIST_DESIGN, design_survey
from tests.server_fixtures import (
    Walker,
    asked_digit,
    form_action,
    hidden_fields,
    image_urls,
    make_server,
    participant_items,
    question_number,
)


def test_whole_mturk_survey_is_stored_exactly(server):
    srv = server
    w = Walker(srv)
    # preview: description only, no participant row, no maps
    r = w.enter("mturk", assignmentId="ASSIGNMENT_ID_NOT_AVAILABLE", hitId="H1")
    page = r.get_data(as_text=True)
    assert r.status_code == 200 and "This is a preview" in page
    assert "<img" not in page and "/p/" not in page
    assert srv.scalar("SELECT count(*) FROM participants") == 0

    r = w.enter(
        "mturk",
        workerId="WORKER1",
        assignmentId="ASSIGN1",
        hitId="HIT1",
        turkSubmitTo="https://workersandbox.mturk.com",
    )
    assert r.status_code == 200 and "agree to take part" in w.page
    assert srv.scalar("SELECT count(*) FROM participants") == 0  # consent creates it
    r = w.consent()
    assert r.status_code == 303 and re.fullmatch(r"/p/[A-Za-z0-9_-]{32}", w.home)
    r = w.show()
    assert "Instructions" in w.page and "worked example" in w.page
    w.start()

    items = participant_items(srv, w.token)
    sent = {}
    for k in range(1, 26):
        assert question_number(w.page) == k
        assert f'<progress value="{k - 1}" max="25">' in w.page
        assert asked_digit(w.page) == items[k - 1]["digit"]
        assert len(image_urls(w.page)) == 4
        choice = (k % 4) + 1
        sent[k] = choice
        r = w.answer(choice)
        assert r.status_code == 200, r.get_data(as_text=True)
    assert "Thank you" in w.page
    fields = hidden_fields(w.page)
    assert form_action(w.page, "finish") == ("https://workersandbox.mturk.com/mturk/externalSubmit")
    assert fields["assignmentId"] == "ASSIGN1"

    from sqlalchemy import select

    from study_server.models import Participant, Response

    R = Response.__table__
    with srv.engine.connect() as conn:  # typed columns: datetimes on SQLite too
        rows = conn.execute(
            select(
                R.c.position, R.c.choice, R.c.chosen_method, R.c.chosen_role, R.c.response_ms,
                R.c.answered_at, R.c.shown_at,
            ).order_by(R.c.position)
        ).all()  # fmt: skip
        started = conn.execute(select(Participant.started_at)).scalar_one()
    assert [(r[0], r[1]) for r in rows] == sorted(sent.items())
    for k, (row, item) in enumerate(zip(rows, items, strict=True)):
        method, digit, role = item["slots"][row[1] - 1]
        assert (row[2], row[3]) == (method, role)
        # an item is first shown by the reply storing the previous answer (item 1: start)
        assert row[6] == (rows[k - 1][5] if k else started)
        assert row[4] == int((row[5] - row[6]).total_seconds() * 1000)
    p = srv.rows("SELECT completed_at, completion_code, assignment_id FROM participants")[0]
    assert p[0] is not None and p[1] == fields["completion_code"] and p[2] == "ASSIGN1"
    assert srv.scalar("SELECT count(*) FROM events WHERE kind = 'completed'") == 1

    # the export says which method was chosen, where, and whether checks passed
    from sqlalchemy.orm import Session

    from study_server.exports import VOTE_COLUMNS, csv_text, vote_rows

    with Session(srv.engine) as session:
        text = csv_text(VOTE_COLUMNS, vote_rows(session, include_debug=True))
        assert list(vote_rows(session)) == []  # a debug study is not exported by default
    exported = list(csv.DictReader(io.StringIO(text)))
    assert len(exported) == 25
    assert list(exported[0])[:6] == [
        "participant_id",
        "question_index",
        "is_attention_check",
        "digit",
        "chosen_method",
        "passed",
    ]
    for row, item in zip(exported, items, strict=True):
        method, _digit, role = item["slots"][int(row["position"]) - 1]
        assert int(row["question_index"]) == item["position"]
        assert int(row["digit"]) == item["digit"]
        assert row["completed"] == "true"
        if item["is_check"]:
            assert row["is_attention_check"] == "true" and row["chosen_method"] == ""
            assert row["options"] == ""
            assert row["passed"] == ("true" if role == "correct" else "false")
        else:
            assert row["is_attention_check"] == "false" and row["passed"] == ""
            assert row["chosen_method"] == method
            assert row["options"] == "|".join(slot[0] for slot in item["slots"])


def test_stored_seed_reconstructs_the_survey(server):
    w = Walker(server).begin()
    seed = server.scalar("SELECT seed FROM participants WHERE token = :t", t=w.token)
    version = server.scalar("SELECT survey_version FROM participants WHERE token = :t", t=w.token)
    assert version == 2  # the bundle draws class pictures: version 2's checks
    stored = participant_items(server, w.token)
    rebuilt = design_survey(seed, design=MNIST_DESIGN.at_version(version))
    assert [
        (it.position, it.is_check, it.digit, [s.as_list() for s in it.slots]) for it in rebuilt
    ] == [(s["position"], s["is_check"], s["digit"], s["slots"]) for s in stored]


def test_refresh_back_button_and_return_visit_resume(server):
    srv = server
    w = Walker(srv).begin(worker="WRESUME", assignment="AS1")
    for _ in range(10):
        assert w.answer(1).status_code == 200
    eleven = w.page
    assert question_number(eleven) == 11
    # refresh: GET shows the same item, no new answer
    w.show()
    assert question_number(w.page) == 11
    assert srv.scalar("SELECT count(*) FROM responses") == 10
    # come back later through the same MTurk link: resume at the first unanswered item
    w2 = Walker(srv)
    r = w2.enter(
        "mturk",
        workerId="WRESUME",
        assignmentId="AS1",
        hitId="H1",
        turkSubmitTo="https://workersandbox.mturk.com",
    )
    assert r.status_code == 303 and r.headers["Location"] == w.home
    w2.show()
    assert question_number(w2.page) == 11
    # ... also when MTurk gave the worker a new assignment: finish under the new one
    r = w2.enter(
        "mturk",
        workerId="WRESUME",
        assignmentId="AS2",
        hitId="H1",
        turkSubmitTo="https://workersandbox.mturk.com",
    )
    assert r.status_code == 303
    assert srv.scalar("SELECT assignment_id FROM participants") == "AS2"
    assert srv.scalar("SELECT count(*) FROM events WHERE kind = 'assignment_changed'") == 1
    assert srv.scalar("SELECT count(*) FROM participants") == 1


def test_double_click_and_retry_store_one_answer(server):
    srv = server
    w = Walker(srv).begin()
    first = w.page
    r1 = w.answer(2, first)
    after = w.page
    r2 = w.answer(2, first)  # the same request again (double click / retry)
    assert r1.status_code == r2.status_code == 200
    assert question_number(after) == question_number(w.page) == 2
    assert srv.scalar("SELECT count(*) FROM responses") == 1
    before = srv.snapshot()
    r3 = w.answer(3, first)  # a different answer to the answered item (back button)
    assert r3.status_code == 409
    assert "already answered question 1" in r3.get_data(as_text=True)
    assert srv.snapshot() == before
    assert srv.scalar("SELECT choice FROM responses") == 2


def test_one_participation_per_worker(server):
    srv = server
    w = Walker(srv).begin(worker="WONCE")
    for _ in range(25):
        assert w.answer(4).status_code == 200
    assert "Thank you" in w.page
    again = Walker(srv)
    r = again.enter(
        "mturk",
        workerId="WONCE",
        assignmentId="ANOTHER",
        hitId="H2",
        turkSubmitTo="https://workersandbox.mturk.com",
    )
    # a finished worker who comes back sees the completion page again, not a refusal
    assert r.status_code == 303 and r.headers["Location"] == w.home
    again.show()
    assert "Thank you" in again.page and 'name="assignmentId" value="A1"' in again.page
    assert srv.scalar("SELECT count(*) FROM participants") == 1
    assert srv.scalar("SELECT assignment_id FROM participants") == "A1"
    # the completion page itself stays reachable (e.g. after a reload before submitting)
    r = w.show()
    assert r.status_code == 200 and "Thank you" in w.page


def test_worker_ids_are_keyed_hashes_unless_opted_in(db_url, bundle_dir):
    from study_server.tokens import worker_key

    hashed = make_server(db_url, bundle_dir)
    Walker(hashed).begin(worker="SECRETWORKER")
    key, raw = hashed.rows("SELECT worker_key, raw_worker_id FROM participants")[0]
    assert raw is None and key == worker_key(hashed.secret, "SECRETWORKER")
    dump = json.dumps(hashed.snapshot(), default=str)
    assert "SECRETWORKER" not in dump
    hashed.engine.dispose()

    raw_srv = make_server(db_url, bundle_dir, raw_worker_ids=True)
    Walker(raw_srv).begin(worker="BONUSWORKER")
    assert raw_srv.scalar(
        "SELECT raw_worker_id FROM participants p JOIN studies s ON s.id = p.study_id "
        "WHERE s.raw_worker_ids = :t",
        t=True,
    ) == ("BONUSWORKER")
    raw_srv.engine.dispose()


def finish(w: Walker):
    for _ in range(25):
        assert w.answer(1).status_code == 200


def test_prolific_flow_ends_at_the_completion_url(sqlite_server):
    srv = sqlite_server
    w = Walker(srv)
    r = w.enter("prolific", PROLIFIC_PID="5f0c" * 6, STUDY_ID="S1", SESSION_ID="SESS1")
    assert r.status_code == 200
    assert w.consent().status_code == 303
    w.start()
    finish(w)
    assert "https://app.prolific.com/submissions/complete?cc=PROLIFICCC" in w.page
    row = srv.rows("SELECT adapter, assignment_id, entry_params FROM participants")[0]
    assert row[0] == "prolific" and row[1] == "SESS1"
    assert json.loads(row[2]) == {"STUDY_ID": "S1"}


def test_plain_link_ends_with_a_completion_code(sqlite_server):
    srv = sqlite_server
    w = Walker(srv)
    assert w.enter("link").status_code == 200
    assert w.consent().status_code == 303
    w.start()
    finish(w)
    code = srv.scalar("SELECT completion_code FROM participants")
    assert re.fullmatch(r"[A-Z2-7]{10}", code)
    assert f'<code class="code">{code}</code>' in w.page
    assert "form of the site that sent you here" in w.page


def test_consent_is_idempotent(sqlite_server):
    srv = sqlite_server
    w = Walker(srv)
    w.enter("link")
    consent_page = w.page
    r1 = w.consent()
    w.page = consent_page
    r2 = w.consent()  # double click on "Continue"
    assert r1.status_code == r2.status_code == 303
    assert r1.headers["Location"] == r2.headers["Location"]
    assert srv.scalar("SELECT count(*) FROM participants") == 1


def test_participant_pages_set_no_cookie_and_may_be_framed(sqlite_server):
    srv = sqlite_server
    w = Walker(srv)
    responses = [
        w.enter(
            "mturk",
            workerId="W9",
            assignmentId="A9",
            hitId="H",
            turkSubmitTo="https://workersandbox.mturk.com",
        ),
        w.consent(),
    ]
    responses.append(w.show())
    responses.append(w.client.post(w.home + "/start"))
    responses.append(w.show())
    responses += [w.client.get(u) for u in image_urls(w.page)]
    responses.append(w.answer(1))
    for r in responses:
        assert "Set-Cookie" not in r.headers, r.request.path
        assert "X-Frame-Options" not in r.headers
        assert r.headers["Referrer-Policy"] == "no-referrer"
    csp = responses[-1].headers["Content-Security-Policy"]
    assert "frame-ancestors *" in csp and "script-src 'self'" in csp
    admin = w.client.get("/admin/login")
    assert admin.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in admin.headers["Content-Security-Policy"]


def test_the_servers_own_address_says_where_to_go_and_names_no_study(sqlite_server):
    """`normlime up` prints "serving on http://127.0.0.1:5000": opening it is not a 404."""
    srv = sqlite_server
    r = srv.client().get("/")
    page = r.get_data(as_text=True)
    assert r.status_code == 200 and "/admin/" in page and "link" in page
    assert srv.study_key not in page and "Set-Cookie" not in r.headers
    before = srv.scalar("SELECT count(*) FROM participants")
    assert srv.client().post("/").status_code == 405
    assert srv.scalar("SELECT count(*) FROM participants") == before


def test_frame_ancestors_is_configurable(sqlite_url, bundle_dir):
    srv = make_server(
        sqlite_url, bundle_dir, config={"FRAME_ANCESTORS": "https://worker.mturk.com"}
    )
    r = srv.client().get(f"/s/{srv.study_key}")
    assert "frame-ancestors https://worker.mturk.com" in r.headers["Content-Security-Policy"]


def test_completion_page_allows_posting_to_turk_submit_to(sqlite_server):
    w = Walker(sqlite_server).begin()
    finish(w)
    r = w.show()
    csp = r.headers["Content-Security-Policy"]
    assert "form-action 'self' https://workersandbox.mturk.com;" in csp


@pytest.mark.parametrize(
    "mode,origin,ok",
    [
        ("live", "https://www.mturk.com", True),
        ("live", "https://workersandbox.mturk.com", False),
        ("sandbox", "https://workersandbox.mturk.com", True),
        ("sandbox", "https://evil.example", False),
        ("debug", "http://localhost:8000", True),
    ],
)
def test_turk_submit_to_must_match_the_study_mode(sqlite_url, bundle_dir, mode, origin, ok):
    srv = make_server(sqlite_url, bundle_dir, mode=mode)
    w = Walker(srv)
    r = w.enter("mturk", workerId="W", assignmentId="A", hitId="H", turkSubmitTo=origin)
    assert r.status_code == (200 if ok else 400)
    if not ok:
        assert "turkSubmitTo" in r.get_data(as_text=True)
