"""Bad input: a clear 4xx (or 429), and nothing stored changes."""

from __future__ import annotations

import html
import secrets

import pytest

from study_server import tokens
from tests.server_fixtures import Walker, hidden_fields, image_urls, make_server

MTURK = {
    "workerId": "WBAD",
    "assignmentId": "ABAD",
    "hitId": "H",
    "turkSubmitTo": "https://workersandbox.mturk.com",
}


def refused(srv, resp, status: int, text: str | None = None, before=None):
    body = html.unescape(resp.get_data(as_text=True))
    assert resp.status_code == status, body
    if text:
        assert text in body, body
    if before is not None:
        assert srv.snapshot() == before


@pytest.fixture
def walked(server):
    """A participant who has answered 3 items (on SQLite and on PostgreSQL)."""
    w = Walker(server).begin()
    for _ in range(3):
        assert w.answer(2).status_code == 200
    return server, w


def test_unknown_and_malformed_links(walked):
    srv, w = walked
    c = w.client
    before = srv.snapshot()
    refused(srv, c.get("/p/" + "A" * 32), 404, "not valid", before)
    refused(srv, c.get("/p/short"), 404, "not valid", before)
    refused(srv, c.get("/p/" + "%00" * 32), 404, None, before)
    refused(srv, c.post("/p/" + "B" * 32 + "/answer", data={"q": 1, "c": 1, "f": "0" * 24}), 404)
    refused(srv, c.post("/p/" + "B" * 32 + "/start"), 404, None, before)
    refused(srv, c.get("/s/nosuchstudy/mturk", query_string=MTURK), 404, "not valid", before)
    refused(srv, c.get("/s/bad$key"), 404, None, before)
    refused(srv, c.get(f"/s/{srv.study_key}/nosuchpanel"), 404, "not valid", before)
    refused(srv, c.get(f"/p/{w.token}/img/1/" + "0" * 24), 404, "No such image", before)
    refused(srv, c.get(f"/p/{w.token}/img/1/not-hex"), 404, None, before)
    refused(srv, c.get(f"/p/{w.token}/img/99/" + "0" * 24), 404, None, before)
    # an image of an item not shown yet is not served, even with its genuine id
    future = tokens.image_id(srv.secret, w.token, 20, 1)
    refused(srv, c.get(f"/p/{w.token}/img/20/{future}"), 404, None, before)


@pytest.mark.parametrize(
    "params,message",
    [
        ({"assignmentId": "A", "hitId": "H", "turkSubmitTo": "https://x"}, "needs a workerId"),
        ({**MTURK, "workerId": "bad id with spaces"}, "invalid value"),
        ({**MTURK, "workerId": "x" * 200}, "invalid value"),
        ({k: v for k, v in MTURK.items() if k != "assignmentId"}, "assignmentId"),
        ({k: v for k, v in MTURK.items() if k != "turkSubmitTo"}, "turkSubmitTo"),
        ({**MTURK, "turkSubmitTo": "javascript:alert(1)"}, "not a valid URL"),
    ],
)
def test_bad_entry_parameters(sqlite_server, params, message):
    srv = sqlite_server
    before = srv.snapshot()
    refused(srv, srv.client().get(f"/s/{srv.study_key}/mturk", query_string=params), 400, message)
    assert srv.snapshot() == before


def test_tampered_or_incomplete_consent(sqlite_server):
    srv = sqlite_server
    w = Walker(srv)
    w.enter("mturk", **MTURK)
    fields = hidden_fields(w.page)
    action = f"/s/{srv.study_key}/mturk/consent"
    before = srv.snapshot()
    cases = [
        ({**fields}, 400, "tick the consent box"),
        ({**fields, "agree": "yes", "p.worker_id": "SOMEONEELSE"}, 400, "altered"),
        ({**fields, "agree": "yes", "p.submit_to": "https://evil.example"}, 400, "altered"),
        ({**fields, "agree": "yes", "sig": "0" * 32}, 400, "altered"),
        ({**fields, "agree": "yes", "nonce": "short"}, 400, "'nonce' is malformed"),
        ({"agree": "yes"}, 400, "is missing"),
        ({**fields, "agree": "yes", "extra": "1"}, 400, "not expected"),
        ({**fields, "agree": "yes", "p.x.hitId": "H\r\nX"}, 400, "malformed"),
    ]
    for data, status, text in cases:
        refused(srv, w.client.post(action, data=data), status, text, before)


def test_bad_answers_change_nothing(walked):
    srv, w = walked
    page = w.page  # item 4 is current
    fields = hidden_fields(page)
    url = w.home + "/answer"
    before = srv.snapshot()
    bad = [
        ({**fields, "c": "0"}, 400, "'c'"),
        ({**fields, "c": "5"}, 400, "'c'"),
        ({**fields, "c": "-1"}, 400, "'c'"),
        ({**fields, "c": "one"}, 400, "'c'"),
        ({**fields}, 400, "'c'"),
        ({**fields, "c": "1", "q": "0"}, 400, "'q'"),
        ({**fields, "c": "1", "q": "26"}, 400, "'q'"),
        ({**fields, "c": "1", "q": "4.0"}, 400, "'q'"),
        ({**fields, "c": "1", "f": "0" * 24}, 400, "altered"),
        ({**fields, "c": "1", "f": ""}, 400, "'f' is malformed"),
        # non-ASCII digits and absurd numbers are malformed, not server errors
        ({**fields, "c": "²"}, 400, "'c' must be a number"),
        ({**fields, "c": "٣"}, 400, "'c' must be a number"),
        ({**fields, "c": "1" + "0" * 5000}, 400, "'c' must be a number"),
        ({**fields, "c": "1", "q": "²"}, 400, "'q' must be a number"),
        ({**fields, "c": "1", "q": "1" + "0" * 5000}, 400, "'q' must be a number"),
        ({**fields, "c": ["1", "2"]}, 400, "'c' is repeated"),
        ({**fields, "c": "1", "x": "1"}, 400, "'x' is not expected"),
        # a signature of another item does not fit this one
        ({**fields, "c": "1", "q": "9"}, 400, "altered"),
    ]
    for data, status, text in bad:
        refused(srv, w.client.post(url, data=data), status, text, before)
    # a genuine signature for an item not shown yet: refused as not shown
    sig = tokens.form_signature(srv.secret, w.token, 9)
    refused(
        srv,
        w.client.post(url, data={"q": "9", "c": "1", "f": sig}),
        409,
        "not been shown",
        before,
    )
    # changing an earlier answer is refused
    sig1 = tokens.form_signature(srv.secret, w.token, 1)
    refused(srv, w.client.post(url, data={"q": "1", "c": "4", "f": sig1}), 409, "cannot be changed")
    assert srv.snapshot() == before
    # a JSON client gets JSON errors
    r = w.client.post(url, data={"q": "1", "c": "9"}, headers={"Accept": "application/json"})
    assert r.status_code == 400 and r.is_json
    assert r.get_json() == {
        "status": 400,
        "error": "The form field 'c' is out of range. Please reload the page.",
    }


def test_requests_after_completion(sqlite_server):
    srv = sqlite_server
    w = Walker(srv).begin()
    last = None
    for _ in range(25):
        last = w.page
        assert w.answer(1).status_code == 200
    before = srv.snapshot()
    # a finished participant who presses Start again (an old tab) lands on the completion page
    r = w.client.post(w.home + "/start")
    assert r.status_code == 303 and r.headers["Location"].endswith(w.home)
    assert srv.snapshot() == before
    refused(srv, w.answer(3, last), 409, "cannot be changed", before)
    # the identical last answer again (a retry) is acknowledged with the completion page
    r = w.answer(1, last)
    assert r.status_code == 200 and "Thank you" in r.get_data(as_text=True)
    assert srv.snapshot() == before


def test_oversized_body_is_refused(sqlite_server):
    srv = sqlite_server
    w = Walker(srv).begin()
    before = srv.snapshot()
    fields = {**hidden_fields(w.page), "c": "1", "padding": "x" * 100_000}
    refused(srv, w.client.post(w.home + "/answer", data=fields), 413, None, before)


def test_flood_from_one_participant_gets_429(sqlite_url, bundle_dir):
    srv = make_server(sqlite_url, bundle_dir, config={"PARTICIPANT_RATE": "15/60"})
    w = Walker(srv).begin()  # 2 requests: start + first item
    page = w.page
    before = srv.snapshot()
    statuses = [w.client.get(w.home).status_code for _ in range(30)]
    assert statuses[:13] == [200] * 13 and set(statuses[13:]) == {429}
    r = w.client.get(w.home)
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
    assert "Too many requests" in r.get_data(as_text=True)
    r = w.answer(1, page)
    assert r.status_code == 429
    assert srv.snapshot() == before
    # another participant is not affected
    other = Walker(srv).begin(worker="W2", assignment="A2")
    assert other.answer(1).status_code == 200


def test_flood_of_new_entries_from_one_address_gets_429(sqlite_url, bundle_dir):
    srv = make_server(sqlite_url, bundle_dir, config={"ENTRY_RATE": "5/60"})
    c = srv.client()
    statuses = [c.get(f"/s/{srv.study_key}").status_code for _ in range(8)]
    assert statuses == [200] * 5 + [429] * 3
    assert srv.scalar("SELECT count(*) FROM participants") == 0


def test_closed_study_takes_no_new_participants_but_lets_others_finish(sqlite_server):
    srv = sqlite_server
    w = Walker(srv).begin()
    from sqlalchemy import text

    with srv.engine.begin() as conn:
        conn.execute(text("UPDATE studies SET active = :f"), {"f": False})
    before = srv.snapshot()
    refused(srv, Walker(srv).enter("link"), 403, "closed", before)
    assert w.answer(1).status_code == 200


def test_images_of_real_questions_match_their_slots(sqlite_server):
    srv = sqlite_server
    w = Walker(srv).begin()
    from tests.server_fixtures import participant_items

    items = participant_items(srv, w.token)
    pngs = {
        (m, d): (srv.maps_dir / f"png/{m}-{d}.png").read_bytes()
        # an attention check may come first: its options are class pictures (survey v2)
        for m in ("normlime", "lime", "smoothgrad", "vargrad", "picture")
        for d in range(10)
    }
    for k in range(3):
        urls = image_urls(w.page)
        for slot, url in enumerate(urls, start=1):
            method, digit, _ = items[k]["slots"][slot - 1]
            # the served file is recompressed and padded: the same pixels, not the same bytes
            assert _pixels(w.client.get(url).get_data()) == _pixels(pngs[(method, digit)])
        w.answer(1)


def _pixels(png: bytes):
    import io

    from PIL import Image

    with Image.open(io.BytesIO(png)) as img:
        return img.mode, img.size, img.convert("RGB").tobytes()


def test_unknown_token_floods_are_limited_per_address_before_any_query(sqlite_url, bundle_dir):
    from sqlalchemy import event

    srv = make_server(sqlite_url, bundle_dir, config={"MISS_RATE": "5 per minute"})
    w = Walker(srv).begin()  # a real participant from the same address
    queries = []
    with srv.app.app_context():
        from study_server.models import db

        event.listen(db.engine, "before_cursor_execute", lambda *a: queries.append(a[2]))
    c = srv.client()
    made_up = ["".join(secrets.choice("ABCDEFGHabcdefgh0123_-") for _ in range(32))
               for _ in range(12)]  # fmt: skip
    statuses = []
    for token in made_up:
        before = len(queries)
        statuses.append((c.get(f"/p/{token}").status_code, len(queries) - before))
    assert [s for s, _ in statuses] == [404] * 5 + [429] * 7
    assert all(n == 0 for s, n in statuses if s == 429)  # refused before any database work
    # long junk tokens do not grow the limiter's storage: they share one per-address key
    storage = srv.app.extensions["normlime_limiter"].storage
    keys_before = len(storage.events)
    for i in range(200):
        c.get("/p/" + "x" * (100 + i))
    assert len(storage.events) <= keys_before + 1
    # the genuine participant (their token carries its MAC) is not held up by the flood
    assert w.client.get(w.home).status_code == 200
    # ... while another address is unaffected
    other = srv.client()
    other.environ_base["REMOTE_ADDR"] = "198.51.100.20"
    assert other.get(f"/p/{made_up[0]}").status_code == 404
