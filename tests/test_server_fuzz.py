"""Property-based fuzzing of the participant HTTP boundary (hypothesis), SQLite and PostgreSQL.

Every participant route is sent generated requests: entry links with arbitrary query
strings, consent forms with arbitrary fields and one-field mutations of a genuine form,
returning workers, ``/p/<token>`` (and ``/start``, ``/answer``, ``/img/<pos>/<id>``) with
arbitrary tokens, methods, query strings and bodies, genuine and forged image URLs, and
one-field mutations of a genuine answer form (valid token and signature, then a choice out
of range, the wrong position, an extra or repeated field, huge values, unicode digits, a
missing field...).

The property, for every example: the response is 2xx, 3xx or 4xx, never 5xx; and every
table is unchanged (row count and a checksum of the rows of every table) unless the
request was a valid consent, start or answer, or a returning worker's new assignment, for
which exactly the expected rows change.  Where a mutation may leave the request as the
server reads it identical to the genuine one (an empty query ``?&``, say), werkzeug's own
parse of the request decides which it is.

Examples are derandomized (the same ones on every run, for CI), hypothesis's example
database is off, and the counts are bounded: the file runs in about 25 s on 2 cores, both
databases.  ``pytest -s`` shows per test the statuses seen and the valid changes checked.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections import Counter
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from study_server import fields as schema
from study_server import tokens
from study_server.models import db
from tests.server_fixtures import Walker, form_action, hidden_fields, image_urls, make_server

pytestmark = pytest.mark.timeout(240)

#: examples per test and database
EXAMPLES = 200


def fuzz_settings(examples: int = EXAMPLES):
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,  # the same examples on every run: reproducible in CI
        database=None,  # nothing replayed from earlier runs: each run is the same
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
        ],
    )


SUBMIT_TO = "https://workersandbox.mturk.com"
METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS")
LIMIT = 64 * 1024  # the server's body limit
BIG = 70 * 1024
FORM = "application/x-www-form-urlencoded"
HEX = "0123456789abcdef"
TOKEN_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"

# ----------------------------------------------------------------------------- strategies

#: short text, any unicode (no surrogates: those cannot be encoded in a request at all)
texts = st.text(max_size=24)
#: printable ASCII for raw query strings and content types (percent signs included, so
#: broken escapes such as %zz occur)
ascii_text = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=40)
digits_like = st.sampled_from(
    ["", "0", "1", "2", "4", "5", "6", "7", "-1", "+1", " 1", "1 ", "01", "1.0", "1e3", "0x1",
     "²", "٣", "１", "1\x00", "99999999999999999999", "9" * 600, "NaN", "∞"]
)  # fmt: skip
values = st.one_of(texts, digits_like, st.integers().map(str), ascii_text)
huge_values = st.sampled_from(["x" * 600, "9" * 5000, "é" * 300, "x" * BIG])
#: mostly ordinary values, now and then a huge one
any_values = st.integers(0, 9).flatmap(lambda i: huge_values if i == 0 else values)
names = st.one_of(
    st.sampled_from(
        ["q", "c", "f", "l", "agree", "nonce", "sig", "p.", "p.workerId", "p.x", "workerId",
         "assignmentId", "hitId", "turkSubmitTo", "PROLIFIC_PID", "SESSION_ID", "STUDY_ID",
         "pid", "csrf_token", "", "x" * 81, "Q", "c[]"]
    ),
    texts,
)  # fmt: skip
pairs = st.lists(st.tuples(names, any_values), max_size=6)
content_types = st.one_of(
    st.none(),
    st.sampled_from(
        [FORM, "multipart/form-data; boundary=XyZ", "multipart/form-data", "application/json",
         "text/plain", "application/octet-stream", FORM + "; charset=latin-1"]
    ),
    ascii_text,
)  # fmt: skip


@st.composite
def bodies(draw):
    """(bytes or None, content type): a form, raw bytes, JSON, or a body over the limit."""
    kind = draw(st.sampled_from(["none", "form", "raw", "json", "huge"]))
    if kind == "none":
        return None, None
    if kind == "form":
        return urlencode(draw(pairs)).encode(), FORM
    if kind == "raw":
        return draw(st.binary(max_size=300)), draw(content_types)
    if kind == "json":
        return json.dumps(dict(draw(pairs))).encode(), "application/json"
    return b"q=" + b"1" * BIG, FORM


@st.composite
def queries(draw):
    """A raw query string: encoded pairs, printable ASCII, or percent-escaped bytes."""
    kind = draw(st.sampled_from(["none", "pairs", "ascii", "bytes"]))
    if kind == "none":
        return ""
    if kind == "pairs":
        return urlencode(draw(pairs))
    if kind == "ascii":
        return draw(ascii_text).replace("#", "%23")
    return quote(draw(st.binary(max_size=60)), safe="=&")


@st.composite
def segments(draw, genuine: tuple[str, ...] = ()):
    """A path segment: a genuine value, a near miss, or anything (percent-encoded)."""
    options = [
        st.text(alphabet=TOKEN_ALPHABET, min_size=32, max_size=32),  # right shape, unknown
        st.text(alphabet=TOKEN_ALPHABET, min_size=1, max_size=40),
        texts.filter(lambda s: s not in ("", ".", "..")),
    ]
    if genuine:
        g = st.sampled_from(genuine)
        options += [g, g.map(lambda s: s[:-1] + ("A" if s[-1] != "A" else "B"))]
    return quote(draw(st.one_of(*options)), safe="")


# ----------------------------------------------------------------------------- the harness


def table_rows(srv) -> dict[str, Counter]:
    """Every row of every table, as a multiset of (column, value) tuples."""
    out = {}
    with srv.engine.connect() as conn:
        for name, table in sorted(db.metadata.tables.items()):
            rows = conn.execute(select(table)).mappings().all()
            out[name] = Counter(tuple(sorted(r.items())) for r in rows)
    return out


def fingerprint(rows: dict[str, Counter]) -> dict[str, tuple[int, str]]:
    """Row count and a SHA-256 of the table's contents, per table."""
    return {
        name: (
            sum(c.values()),
            hashlib.sha256(repr(sorted(map(repr, c.elements()))).encode()).hexdigest()[:16],
        )
        for name, c in rows.items()
    }


def changes(before: dict, after: dict) -> dict[str, tuple[list[dict], list[dict]]]:
    """table -> (rows added, rows removed), for the tables that changed."""
    out = {}
    for name in before.keys() | after.keys():
        b, a = before.get(name, Counter()), after.get(name, Counter())
        added, removed = a - b, b - a
        if added or removed:
            out[name] = ([dict(r) for r in added.elements()], [dict(r) for r in removed.elements()])
    return out


def parsed(method="GET", path="/", query="", body=None, content_type=None, **_) -> Request:
    """The request as werkzeug (and so the server) reads it: query arguments, form fields."""
    kw = {"method": method, "query_string": query or None}
    if body is not None:
        kw["data"] = body
    if content_type is not None:
        kw["content_type"] = content_type
    return Request(EnvironBuilder(path=path, **kw).get_environ())


def reads_as(request: dict, form: dict) -> bool:
    """True when the server reads ``request`` exactly as the genuine POST of ``form``."""
    seen = parsed(**request)
    return (
        request["method"] == "POST"
        and not seen.args
        and len(request.get("body") or b"") <= LIMIT
        and seen.form.to_dict(flat=False) == {k: [v] for k, v in form.items()}
    )


class Harness:
    """One study server, a pool of participants in every state, and the property check."""

    def __init__(self, srv):
        self.srv = srv
        self.n_items = srv.app.extensions["normlime_maps"].design.n_items
        self.pool: list[dict] = []  # {"token", "worker"}, in order of creation
        self.statuses: Counter = Counter()
        self.made = 0
        #: the valid requests checked, by the change they made (none of them: a shallow run)
        self.valid: Counter = Counter()

    # participants -----------------------------------------------------------------------

    def new_participant(self, stage: str = "fresh") -> dict:
        """A participant through the real routes: consented (fresh), started with 3 or all
        but one answers (active, in turn: the last answer completes the survey), finished
        (done), or finished and withdrawn."""
        self.made += 1
        worker = f"FZ{secrets.token_hex(8)}"
        w = Walker(self.srv)
        resp = w.enter(
            "mturk", workerId=worker, assignmentId=f"{worker}A", hitId="H", turkSubmitTo=SUBMIT_TO
        )
        assert resp.status_code == 200
        assert w.consent().status_code == 303
        p = {"token": w.token, "worker": worker}
        if stage != "fresh":
            w.start()
            answers = (3, self.n_items - 1)[self.made % 2] if stage == "active" else self.n_items
            for k in range(answers):
                assert w.answer(k % 2 + 1).status_code == 200
        if stage == "withdrawn":
            from sqlalchemy.orm import Session

            from study_server.models import Study
            from study_server.withdrawal import withdraw

            with Session(self.srv.engine) as session, session.begin():
                withdraw(session, session.get(Study, self.srv.study_id), worker_id=worker)
        self.pool.append(p)
        return p

    def participant(self, token: str) -> dict:
        row = self.srv.rows(
            "SELECT p.id, p.started_at, p.completed_at, p.withdrawn_at, p.adapter, "
            "p.assignment_id, p.submit_to, (SELECT count(*) FROM responses r "
            "WHERE r.participant_id = p.id) FROM participants p WHERE p.token = :t",
            t=token,
        )[0]
        keys = ("id", "started_at", "completed_at", "withdrawn_at", "adapter", "assignment_id",
                "submit_to", "answered")  # fmt: skip
        return dict(zip(keys, row, strict=True))

    def of_state(self, state: str, *, besides: str | None = None) -> dict:
        """A pool participant in ``state`` (fresh, active, done, withdrawn); made if none."""
        rows = self.srv.rows(
            "SELECT token, started_at, completed_at, withdrawn_at FROM participants"
        )
        states = {
            t: "withdrawn" if w else "done" if c else "active" if s else "fresh"
            for t, s, c, w in rows
        }
        for p in self.pool:
            if states.get(p["token"]) == state and p["token"] != besides:
                return p
        return self.new_participant(state)

    def item_slots(self, participant_id: int, position: int) -> list:
        raw = self.srv.scalar(
            "SELECT slots FROM items WHERE participant_id = :p AND position = :k",
            p=participant_id,
            k=position,
        )
        return json.loads(raw)

    # requests ---------------------------------------------------------------------------

    def send(self, method, path, query="", body=None, content_type=None, client=None):
        kwargs = {"method": method}
        if body is not None:
            kwargs["data"] = body
        if content_type is not None:
            kwargs["content_type"] = content_type
        return (client or self.srv.client()).open(path + (f"?{query}" if query else ""), **kwargs)

    def check(self, request: dict, expect=None):
        """Send ``request``; the property: not a 5xx, and nothing changed unless
        ``expect(changes, response)`` is given, which asserts the exact change."""
        before = table_rows(self.srv)
        resp = self.send(**request)
        after = table_rows(self.srv)
        self.statuses[resp.status_code] += 1
        body = resp.get_data()[:400].decode("utf-8", "replace")
        assert 200 <= resp.status_code < 500, (shown(request), resp.status_code, body)
        ch = changes(before, after)
        if expect is None:
            assert fingerprint(before) == fingerprint(after), (shown(request), ch)
        else:
            expect(ch, resp)
            self.valid[getattr(expect, "change", "checked") if ch else "unchanged"] += 1
        return resp


def report(h: Harness) -> None:
    """What the run reached (shown with ``pytest -s``)."""
    print(f"\nstatuses {sorted(h.statuses.items())}; valid {dict(h.valid)}")


def shown(request: dict) -> str:
    out = {k: v for k, v in request.items() if k != "client"}
    if isinstance(out.get("body"), bytes) and len(out["body"]) > 300:
        out["body"] = out["body"][:300] + b"..."
    return repr(out)


def only_tables(ch: dict, *names: str) -> None:
    assert set(ch) == set(names), {k: (len(a), len(r)) for k, (a, r) in ch.items()}


def event_kinds(ch: dict) -> list[str]:
    added, removed = ch.get("events", ([], []))
    assert removed == []
    return sorted(e["kind"] for e in added)


def one_row_changed(ch: dict, table: str, row_id) -> tuple[dict, dict]:
    added, removed = ch[table]
    assert len(added) == len(removed) == 1, (added, removed)
    assert added[0]["id"] == removed[0]["id"] == row_id
    return removed[0], added[0]


def same_except(old: dict, new: dict, *columns: str) -> None:
    assert {k: v for k, v in old.items() if k not in columns} == {
        k: v for k, v in new.items() if k not in columns
    }


def assert_started(pid: int):
    def expect(ch, resp):
        assert resp.status_code == 303, resp.status_code
        only_tables(ch, "participants", "events")
        old, new = one_row_changed(ch, "participants", pid)
        assert old["started_at"] is None and new["started_at"] is not None
        same_except(old, new, "started_at")
        assert event_kinds(ch) == ["started"]

    expect.change = "started"
    return expect


def assert_answer_stored(h: Harness, info: dict, position: int, choice: int):
    slots = h.item_slots(info["id"], position)

    def expect(ch, resp):
        assert resp.status_code == 200, (resp.status_code, resp.get_data(as_text=True)[:300])
        last = position == h.n_items
        only_tables(ch, "responses", *(("participants", "events") if last else ()))
        added, removed = ch["responses"]
        assert removed == [] and len(added) == 1
        row = added[0]
        assert (row["participant_id"], row["position"], row["choice"]) == (
            info["id"],
            position,
            choice,
        )
        assert row["chosen_method"] == slots[choice - 1][0]
        if last:
            old, new = one_row_changed(ch, "participants", info["id"])
            assert old["completed_at"] is None and new["completed_at"] is not None
            assert new["completion_code"]
            same_except(old, new, "completed_at", "completion_code")
            assert event_kinds(ch) == ["completed"]

    expect.change = "answer stored"
    return expect


def assert_participant_created(h: Harness, adapter: str):
    def expect(ch, resp):
        assert resp.status_code == 303, (resp.status_code, resp.get_data(as_text=True)[:300])
        only_tables(ch, "participants", "items", "events")
        p_added, p_removed = ch["participants"]
        assert p_removed == [] and len(p_added) == 1
        p = p_added[0]
        assert p["adapter"] == adapter and p["started_at"] is None
        assert resp.headers["Location"].endswith(f"/p/{p['token']}")
        i_added, i_removed = ch["items"]
        assert i_removed == [] and len(i_added) == h.n_items
        assert {i["participant_id"] for i in i_added} == {p["id"]}
        assert sorted(i["position"] for i in i_added) == list(range(1, h.n_items + 1))
        assert event_kinds(ch) == ["participant_created"]

    expect.change = "participant created"
    return expect


@pytest.fixture
def harness(db_url, bundle_dir):
    srv = make_server(db_url, bundle_dir, config={"MISS_RATE": "100000/1"})
    h = Harness(srv)
    for stage in ("fresh", "active", "done", "withdrawn"):
        h.new_participant(stage)
    yield h
    srv.engine.dispose()
    with srv.app.app_context():
        db.engine.dispose()


# ----------------------------------------------------------------------------- entry + consent


def test_fuzz_entry_links_and_consent_forms(harness):
    h = harness
    key = h.srv.study_key

    @fuzz_settings()
    @given(st.data())
    def run(data):
        kind = data.draw(st.sampled_from(["entry", "consent-any", "consent-mutated", "returning"]))
        if kind == "entry":
            # any method, key, adapter, query and body: an entry link alone changes nothing
            path = "/s/" + data.draw(st.one_of(st.just(key), segments((key,))))
            path += data.draw(st.sampled_from(["", "/mturk", "/prolific", "/link", "/nope", "/"]))
            body, ctype = data.draw(bodies())
            method = data.draw(st.sampled_from(METHODS))
            h.check(dict(method=method, path=path, query=data.draw(queries()), body=body,
                         content_type=ctype))  # fmt: skip
        elif kind == "consent-any":
            adapter = data.draw(st.sampled_from(["mturk", "prolific", "link", "nope"]))
            body, ctype = data.draw(bodies())
            h.check(dict(method=data.draw(st.sampled_from(METHODS)),
                         path=f"/s/{key}/{adapter}/consent", query=data.draw(queries()),
                         body=body, content_type=ctype))  # fmt: skip
        elif kind == "consent-mutated":
            consent_mutation(h, data)
        else:
            returning_worker(h, data)

    run()
    report(h)
    assert {s // 100 for s in h.statuses} >= {2, 3, 4}, h.statuses
    assert h.statuses[303] and h.statuses[400] and h.statuses[404], h.statuses
    assert h.valid["participant created"] and h.valid["participant moved"], h.valid


CONSENT_MUTATIONS = ["none", "replay", "drop", "set", "add", "repeat", "method", "adapter",
                     "key", "query", "json", "huge", "disagree"]  # fmt: skip


def consent_mutation(h: Harness, data) -> None:
    """A genuine consent form (the entry page of a new worker), with one thing changed."""
    key = h.srv.study_key
    adapter = data.draw(st.sampled_from(["link", "mturk", "prolific"]))
    worker = f"NEW{secrets.token_hex(6)}"
    query = {
        "link": {"pid": worker} if data.draw(st.booleans()) else {},
        "mturk": {"workerId": worker, "assignmentId": f"{worker}A", "hitId": "H",
                  "turkSubmitTo": SUBMIT_TO},
        "prolific": {"PROLIFIC_PID": worker, "SESSION_ID": f"{worker}S", "STUDY_ID": "S1"},
    }[adapter]  # fmt: skip
    client = h.srv.client()
    resp = client.get(
        f"/s/{key}" + ("" if adapter == "link" else f"/{adapter}"), query_string=query
    )
    assert resp.status_code == 200, resp.status_code
    page = resp.get_data(as_text=True)
    form = {**hidden_fields(page), "agree": "yes"}
    action = form_action(page, "consent")
    request = dict(method="POST", path=action, body=urlencode(form).encode(), content_type=FORM,
                   client=client)  # fmt: skip
    mutation = data.draw(st.sampled_from(CONSENT_MUTATIONS))
    status = 400
    if mutation == "none":
        h.check(request, assert_participant_created(h, adapter))
        return
    if mutation == "replay":  # a double click: the second post resolves to the first
        assert h.send(**request).status_code == 303
        status = 303
    elif mutation == "drop":
        name = data.draw(st.sampled_from(sorted(form)))
        request["body"] = urlencode({k: v for k, v in form.items() if k != name}).encode()
    elif mutation == "set":
        name = data.draw(st.sampled_from(sorted(form)))
        value = data.draw(st.one_of(values, huge_values).filter(lambda v: v != form[name]))
        request["body"] = urlencode({**form, name: value}).encode()
        status = 413 if len(request["body"]) > LIMIT else 400
    elif mutation == "add":
        name = data.draw(names.filter(lambda n: n not in form))
        request["body"] = urlencode([*form.items(), (name, data.draw(values))]).encode()
    elif mutation == "repeat":
        name = data.draw(st.sampled_from(sorted(form)))
        request["body"] = urlencode([*form.items(), (name, form[name])]).encode()
    elif mutation == "method":
        request["method"] = data.draw(st.sampled_from(["GET", "PUT", "DELETE", "PATCH"]))
        status = 405
    elif mutation == "adapter":
        other = data.draw(
            st.sampled_from(["link", "mturk", "prolific", "nope"]).filter(lambda a: a != adapter)
        )
        request["path"] = f"/s/{key}/{other}/consent"
        status = 404 if other == "nope" else 400
    elif mutation == "key":
        request["path"] = action.replace(key, "K" + secrets.token_hex(4))
        status = 404
    elif mutation == "query":
        request["query"] = data.draw(queries().filter(bool))
        status = None  # any 4xx
    elif mutation == "json":
        request["body"], request["content_type"] = json.dumps(form).encode(), "application/json"
    elif mutation == "huge":
        request["body"] = urlencode({**form, "pad": "x" * BIG}).encode()
        status = 413
    elif mutation == "disagree":
        value = data.draw(values.filter(lambda v: v != "yes"))
        request["body"] = urlencode({**form, "agree": value}).encode()
    if mutation not in ("replay", "adapter", "key") and reads_as(request, form):
        # the change vanished in parsing (e.g. a query of just "&"): a genuine consent
        h.check(request, assert_participant_created(h, adapter))
        return
    resp = h.check(request)
    if status is None:
        assert 400 <= resp.status_code < 500, resp.status_code
    else:
        assert resp.status_code == status, (mutation, resp.status_code, resp.get_data()[:300])


def returning_worker(h: Harness, data) -> None:
    """A pool participant's worker id arriving again, through any adapter, with the same or
    a new assignment: only an unfinished participation moves, and only to an identified
    panel (the rule in docs/study-server.md)."""
    p = data.draw(st.sampled_from(h.pool))
    info = h.participant(p["token"])
    adapter = data.draw(st.sampled_from(["mturk", "prolific", "link"]))
    new = data.draw(st.booleans())
    assignment = p["worker"] + ("N" + secrets.token_hex(3) if new else "A")
    if adapter == "mturk":
        query = {"workerId": p["worker"], "assignmentId": assignment, "hitId": "H",
                 "turkSubmitTo": SUBMIT_TO}  # fmt: skip
        target = ("mturk", assignment, SUBMIT_TO)
    elif adapter == "prolific":
        session_id = assignment if data.draw(st.booleans()) else None
        query = {"PROLIFIC_PID": p["worker"], **({"SESSION_ID": session_id} if session_id else {})}
        target = ("prolific", session_id, None)
    else:
        param = data.draw(st.sampled_from(["pid", "workerId", "PROLIFIC_PID"]))
        query, target = {param: p["worker"]}, None
    path = f"/s/{h.srv.study_key}" + ("" if adapter == "link" else f"/{adapter}")
    moves = (
        target is not None
        and not info["withdrawn_at"]
        and not info["completed_at"]
        and (
            target[0] != info["adapter"]
            or (target[1] is not None and target[1:] != (info["assignment_id"], info["submit_to"]))
        )
    )

    def expect(ch, resp):
        if info["withdrawn_at"]:
            assert resp.status_code == 410 and ch == {}, (resp.status_code, ch)
            return
        assert resp.status_code == 303, resp.status_code
        assert resp.headers["Location"].endswith(f"/p/{p['token']}")
        if not moves:
            assert ch == {}, ch
            return
        only_tables(ch, "participants", "events")
        old, row = one_row_changed(ch, "participants", info["id"])
        assert (row["adapter"], row["assignment_id"], row["submit_to"]) == target
        same_except(old, row, "adapter", "assignment_id", "submit_to")
        moved = "adapter_changed" if target[0] != info["adapter"] else "assignment_changed"
        assert event_kinds(ch) == [moved]

    expect.change = "participant moved"
    h.check(dict(method="GET", path=path, query=urlencode(query)), expect)


# ----------------------------------------------------------------------------- survey routes


def test_fuzz_survey_routes_with_arbitrary_requests(harness):
    """/p/<token>, /start, /answer and /img/<pos>/<id>: any token (genuine ones of every
    state included), method, query and body.  Only a field-less POST /start of a participant
    who has not started may change anything."""
    h = harness

    @fuzz_settings()
    @given(st.data())
    def run(data):
        state = data.draw(st.sampled_from(["fresh", "active", "done", "withdrawn"]))
        p = h.of_state(state)
        route = data.draw(st.sampled_from(["home", "start", "answer", "img", "other"]))
        if data.draw(st.booleans()):
            # a clean request (genuine token, the route's own method, nothing else), so that
            # genuine starts and pages of every state are among the examples too
            token, query, body, ctype = p["token"], "", None, None
            method = "GET" if route in ("home", "img", "other") else "POST"
        else:
            token = data.draw(st.one_of(st.just(p["token"]), segments((p["token"],))))
            method = data.draw(st.sampled_from(["POST", "POST", "GET", *METHODS]))
            body, ctype = data.draw(bodies())
            query = data.draw(queries())
        if route == "img":
            position = data.draw(st.one_of(st.integers(0, 30), st.integers(-5, 10**30)))
            image = data.draw(
                st.one_of(st.just("0" * 24), st.text(HEX, min_size=24, max_size=24), segments())
            )
            suffix = f"/img/{position}/{image}"
        elif route == "other":
            suffix = "/" + data.draw(segments())
        else:
            suffix = {"home": "", "start": "/start", "answer": "/answer"}[route]
        request = dict(method=method, path=f"/p/{token}{suffix}", query=query, body=body,
                       content_type=ctype)  # fmt: skip
        expect = None
        if route == "start" and token == p["token"] and state == "fresh" and reads_as(request, {}):
            expect = assert_started(h.participant(p["token"])["id"])
        h.check(request, expect)
        # then the route's genuine request, whatever the draws were: starts and the pages
        # of every state, between the fuzzed ones
        info = h.participant(p["token"])
        if route == "start":
            fresh = info["started_at"] is None
            h.check(dict(method="POST", path=f"/p/{p['token']}/start"),
                    assert_started(info["id"]) if fresh else None)  # fmt: skip
        else:
            h.check(dict(method="GET", path=f"/p/{p['token']}"))

    run()
    report(h)
    assert {s // 100 for s in h.statuses} >= {2, 3, 4}, h.statuses
    assert h.valid["started"], h.valid


def test_fuzz_genuine_and_forged_image_urls(harness):
    """Genuine image URLs of shown items, and correctly signed ones of items not shown yet
    or used with another participant's token: read-only whatever the method, and served
    only when genuine, shown, of a participant who has not withdrawn, and fetched by GET."""
    h = harness
    secret = h.srv.secret

    @fuzz_settings(EXAMPLES // 2)
    @given(st.data())
    def run(data):
        state = data.draw(st.sampled_from(["active", "active", "done", "withdrawn"]))
        p = h.of_state(state)
        other = h.of_state("active", besides=p["token"])
        info = h.participant(p["token"])
        page = h.srv.client().get(f"/p/{p['token']}").get_data(as_text=True)
        on_page = image_urls(page)
        position = data.draw(st.integers(1, h.n_items))
        signed = tokens.image_id(secret, p["token"], position, data.draw(st.integers(1, 6)))
        url = data.draw(
            st.one_of(
                st.sampled_from(on_page) if on_page else st.nothing(),
                st.just(f"/p/{p['token']}/img/{position}/{signed}"),
                st.just(f"/p/{other['token']}/img/{position}/{signed}"),
            )
        )
        method = data.draw(st.sampled_from(METHODS))
        resp = h.check(dict(method=method, path=url))
        pos, image = int(url.split("/")[-2]), url.split("/")[-1]
        servable = (
            url.startswith(f"/p/{p['token']}/")
            and not info["withdrawn_at"]
            and pos <= info["answered"] + 1
            and any(
                image == tokens.image_id(secret, p["token"], pos, slot)
                for slot in range(1, len(h.item_slots(info["id"], pos)) + 1)
            )
        )
        if method in ("GET", "HEAD"):
            if servable:
                assert resp.status_code == 200 and resp.mimetype == "image/png"
            else:
                assert resp.status_code == (410 if state == "withdrawn" and p["token"] in url
                                            else 404), (url, resp.status_code)  # fmt: skip
        elif method != "OPTIONS":
            assert resp.status_code == 405, (method, resp.status_code)

    run()
    report(h)
    assert h.statuses[200] and h.statuses[404], h.statuses


# ----------------------------------------------------------------------------- answers

ANSWER_MUTATIONS = [
    "none", "none", "choice-valid", "choice", "choice-out", "position", "position-signed",
    "signature", "extra", "repeat", "missing", "huge", "token", "other-participant",
    "done", "withdrawn", "method", "json", "query",
]  # fmt: skip


def test_fuzz_mutations_of_a_genuine_answer_form(harness):
    """The current item's genuine form (valid token and signature), then one change: a
    choice out of range or malformed, another position (signed or not), a foreign or
    broken signature, an extra, repeated or missing field, huge or unicode values, another
    participant's token, another method or body.  Only an unchanged form (or another
    choice that is still one of the item's options) stores an answer: exactly one row."""
    h = harness
    secret = h.srv.secret

    @fuzz_settings()
    @given(st.data())
    def run(data):
        p = h.of_state("active")
        info = h.participant(p["token"])
        client = h.srv.client()
        page = client.get(f"/p/{p['token']}").get_data(as_text=True)
        form = hidden_fields(page)
        position = info["answered"] + 1
        assert form["q"] == str(position), (form, position)
        n_options = len(h.item_slots(info["id"], position))
        form["c"] = str(data.draw(st.integers(1, n_options)))
        genuine = dict(form)
        body_pairs = None
        path = f"/p/{p['token']}/answer"
        mutation = data.draw(st.sampled_from(ANSWER_MUTATIONS))
        expect, status = None, 400
        if mutation in ("none", "choice-valid"):
            if mutation == "choice-valid":
                form["c"] = str(data.draw(st.integers(1, n_options)))
            expect = assert_answer_stored(h, info, position, int(form["c"]))
        elif mutation == "choice":
            form["c"] = data.draw(
                st.one_of(values, huge_values).filter(
                    lambda v: not (v.isascii() and v.isdigit() and v == str(int(v))
                                   and 1 <= int(v) <= n_options)
                )
            )  # fmt: skip
            status = 413 if len(urlencode(form)) > LIMIT else 400
        elif mutation == "choice-out":
            form["c"] = str(
                data.draw(st.one_of(st.integers(max_value=0), st.integers(min_value=n_options + 1)))
            )
        elif mutation in ("position", "position-signed"):
            q = data.draw(
                st.one_of(st.integers(1, h.n_items), st.integers(-3, 10**6)).filter(
                    lambda k: k != position
                )
            )
            form["q"] = str(q)
            if mutation == "position-signed":
                form["f"] = tokens.form_signature(secret, p["token"], q)
                if 1 <= q < position:
                    # an answered item: the same answer again is acknowledged, another is 409
                    stored = h.srv.scalar(
                        "SELECT choice FROM responses WHERE participant_id = :p AND position = :k",
                        p=info["id"],
                        k=q,
                    )
                    if data.draw(st.booleans()):
                        form["c"] = str(stored)
                    status = 200 if form["c"] == str(stored) else 409
                elif position < q <= h.n_items:
                    status = 409  # not shown yet
        elif mutation == "signature":
            form["f"] = data.draw(
                st.one_of(
                    st.text(HEX, min_size=24, max_size=24),
                    st.just(tokens.form_signature(secret, h.of_state("done")["token"], position)),
                    st.just(form["f"].upper()),
                    st.just(form["f"][:-1]),
                    values,
                ).filter(lambda f: f != genuine["f"])
            )
        elif mutation == "extra":
            name = data.draw(names.filter(lambda n: n not in schema.ANSWER.fields))
            body_pairs = [*form.items(), (name, data.draw(values))]
        elif mutation == "repeat":
            name = data.draw(st.sampled_from(sorted(form)))
            body_pairs = [*form.items(), (name, data.draw(st.sampled_from([form[name], "1"])))]
        elif mutation == "missing":
            del form[data.draw(st.sampled_from(sorted(schema.ANSWER.required)))]
        elif mutation == "huge":
            name = data.draw(st.sampled_from(sorted(form)))
            form[name] = data.draw(huge_values)
            status = 413 if len(urlencode(form)) > LIMIT else 400
        elif mutation == "token":
            path = f"/p/{data.draw(segments())}/answer"
            status = 404
        elif mutation == "other-participant":
            path = f"/p/{h.of_state('active', besides=p['token'])['token']}/answer"
        elif mutation in ("done", "withdrawn"):
            path = f"/p/{h.of_state(mutation)['token']}/answer"
            # withdrawn: the page saying they withdrew (410), as their other routes do
            status = 410 if mutation == "withdrawn" else 400
        body = urlencode(body_pairs if body_pairs is not None else form).encode()
        request = dict(method="POST", path=path, body=body, content_type=FORM, client=client)
        if mutation == "method":
            request["method"] = data.draw(st.sampled_from(["GET", "PUT", "DELETE", "PATCH"]))
            status = 405
        elif mutation == "json":
            request["body"], request["content_type"] = json.dumps(form).encode(), "application/json"
        elif mutation == "query":
            request["query"] = data.draw(queries().filter(bool))
            if reads_as(request, form):  # e.g. "?&": no argument, a genuine answer
                expect = assert_answer_stored(h, info, position, int(form["c"]))
        resp = h.check(request, expect)
        if expect is None:
            assert resp.status_code == status, (mutation, resp.status_code, resp.get_data()[:300])

    run()
    report(h)
    assert h.statuses[200] and h.statuses[400] and h.statuses[409], h.statuses
    assert h.valid["answer stored"] >= 5, h.valid
