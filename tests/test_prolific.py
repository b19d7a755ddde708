"""``normlime prolific`` against a local stand-in of Prolific's API, faults included, and
the CloudResearch Connect adapter.

The money test is the stand-in's payment count: whatever fails between sending a payment and
storing its outcome (a reply lost after the payment was applied, a crash, a 5xx), a bulk
bonus is paid once.
"""

from __future__ import annotations

import csv
import json
import re
import secrets

import pytest
from click.testing import CliRunner
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from study_server import prolific_api, schema, tokens
from study_server.config import parse_config
from study_server.models import Participant, Study, db, utcnow
from study_server.prolific_cli import prolific_group
from study_server.reconcile import read_platform_export, reconcile
from study_server.recruitment import (
    CONNECT_COMPLETION_URL,
    AdapterError,
    default_adapters,
    optional_adapters,
    validate_adapters,
)
from study_server.studies import create_study
from tests.prolific_standin import StandIn
from tests.server_fixtures import STUDY_CONFIG

TOKEN = "tok-Q7v9sEcReT-3141592653"
CODE = "C0DE1234"
BASE = "https://study.example.org"
#: the shared study configuration, on two kinds of device
CONFIG = {
    **STUDY_CONFIG,
    "prolific": {**STUDY_CONFIG["prolific"], "devices": ["desktop", "tablet"]},
}


# ----------------------------------------------------------------------------- helpers


@pytest.fixture
def api(monkeypatch):
    """The stand-in, the environment pointing at it, and the recorded sleeps."""
    with StandIn(TOKEN) as standin:
        monkeypatch.setenv(prolific_api.TOKEN_ENV, TOKEN)
        monkeypatch.setenv(prolific_api.API_URL_ENV, standin.url)
        standin.slept = []
        monkeypatch.setattr(prolific_api, "sleep", standin.slept.append)
        yield standin


def new_study(db_url, *, name="np-study", adapters=None, config=CONFIG):
    """An initialised database with one sandbox study; returns its engine."""
    engine = schema.make_engine(db_url)
    schema.init_db(engine)
    with Session(engine) as session, session.begin():
        study = create_study(
            session,
            name,
            mode="sandbox",
            adapters=adapters or {"prolific": default_adapters(completion_code=CODE)["prolific"]},
        )
        study.config = json.dumps(parse_config(config), sort_keys=True)
    return engine


def add_participant(engine, worker: str, *, completed: bool = True, name="np-study") -> str:
    """A participation entered through the prolific adapter; returns its completion code."""
    with Session(engine) as session, session.begin():
        study = session.execute(select(Study).where(Study.name == name)).scalar_one()
        public_id = tokens.new_public_id()
        session.add(
            Participant(
                study_id=study.id,
                public_id=public_id,
                token=secrets.token_urlsafe(24),
                worker_key=tokens.worker_key(study.secret, worker),
                adapter="prolific",
                entry_nonce=tokens.new_nonce(),
                assignment_id=secrets.token_hex(6),
                entry_params="{}",
                mode="sandbox",
                seed=1,
                survey_version=2,
                created_at=utcnow(),
                started_at=utcnow(),
                completed_at=utcnow() if completed else None,
                completion_code=tokens.completion_code(study.secret, public_id),
            )
        )
        return tokens.completion_code(study.secret, public_id)


def run(db_url, command, *args, study="np-study"):
    argv = [command, "--db", db_url, "--study", study, *[str(a) for a in args]]
    return CliRunner().invoke(prolific_group, argv)


def ok(result) -> str:
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def one_error_line(result, code: int = 2) -> str:
    """The error: one line, the last (progress lines may come before it)."""
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert result.exit_code == code, result.output
    errors = [line for line in lines if line.startswith("Error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.output
    return errors[0]


def table_text(engine) -> str:
    """Every row of every table, as text (to look for what must not be stored)."""
    with engine.connect() as conn:
        return "\n".join(
            repr(tuple(row))
            for table in db.metadata.sorted_tables
            for row in conn.execute(select(table))
        )


def scalar(engine, sql: str):
    with engine.connect() as conn:
        return conn.execute(text(sql)).scalar()


def snapshot(engine) -> dict:
    with engine.connect() as conn:
        return {
            name: sorted(map(repr, conn.execute(select(table))))
            for name, table in db.metadata.tables.items()
        }


def journal(engine) -> dict[str, tuple[str, str | None]]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT key, state, remote_id FROM platform_calls")).all()
    return {k: (s, r) for k, s, r in rows}


def created_study(db_url, api) -> str:
    ok(run(db_url, "create", "--base-url", BASE))
    return next(iter(api.studies))


def bonus_file(tmp_path, lines, name="bonus.csv"):
    path = tmp_path / name
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


def ready_for_bonus(db_url, api, people=("PARTA1", "PARTB2")) -> str:
    """A created study with one synced submission per person; the Prolific study id."""
    engine = new_study(db_url)
    sid = created_study(db_url, api)
    for person in people:
        add_participant(engine, person)
        api.add_submission(sid, person, code=CODE)
    ok(run(db_url, "sync"))
    engine.dispose()
    return sid


# ----------------------------------------------------------------------------- the lifecycle

PEOPLE = {
    # person: (completed here, Prolific status, code Prolific received, category)
    "PARTOK1": (True, "AWAITING REVIEW", CODE, "approve"),
    "PARTRET": (True, "RETURNED", None, "returned_or_timed_out"),
    "PARTOK2": (True, "AWAITING REVIEW", CODE, "approve"),
    "PARTHALF": (False, "AWAITING REVIEW", CODE, "there_not_here"),
    "PARTWRONG": (True, "AWAITING REVIEW", "NOTMYCODE", "code_mismatch"),
    "PARTSTRANGER": (None, "AWAITING REVIEW", CODE, "there_not_here"),
}


def test_the_whole_lifecycle_against_the_stand_in(db_url, api, tmp_path):
    engine = new_study(db_url)
    for person, (completed, *_rest) in PEOPLE.items():
        if completed is not None:
            add_participant(engine, person, completed=completed)
    outputs = []

    def step(command, *args):
        out = ok(run(db_url, command, *args))
        outputs.append(out)
        return out

    # create: the draft, from the configuration and the prolific adapter
    step("create", "--base-url", BASE)
    ((pid, study),) = api.studies.items()
    public_key = scalar(engine, "SELECT public_key FROM studies")
    assert study["status"] == "UNPUBLISHED"
    assert study["external_study_url"] == (
        f"{BASE}/s/{public_key}/prolific?PROLIFIC_PID={{{{%PROLIFIC_PID%}}}}"
        "&SESSION_ID={{%SESSION_ID%}}&STUDY_ID={{%STUDY_ID%}}"
    )
    assert study["internal_name"] == "np-study" and study["prolific_id_option"] == "url_parameters"
    assert study["completion_codes"] == [
        {"code": CODE, "code_type": "COMPLETED", "actions": [{"action": "MANUALLY_REVIEW"}]}
    ]
    assert (study["reward"], study["total_available_places"]) == (250, 100)
    assert study["estimated_completion_time"] == 12
    assert study["device_compatibility"] == ["desktop", "tablet"]
    assert "already" in step("create", "--base-url", BASE) and len(api.studies) == 1

    # publish, pause, resume: Prolific's state machine
    assert "ACTIVE" in step("publish") and study["status"] == "ACTIVE"
    assert "PAUSED" in step("pause") and study["status"] == "PAUSED"
    assert "ACTIVE" in step("resume") and study["status"] == "ACTIVE"

    # sync: three pages of two, stored by submission id, counted by status
    subs = {
        person: api.add_submission(pid, person, status=status, code=code)
        for person, (_done, status, code, _cat) in PEOPLE.items()
    }
    out = step("sync")
    assert "6 submissions" in out and "3 pages" in out
    assert "AWAITING REVIEW 5" in out and "RETURNED 1" in out
    assert len(api.sent("GET", r"/submissions/\?page=")) == 2  # pages 2 and 3 by next link
    assert scalar(engine, "SELECT count(*) FROM platform_submissions") == 6

    # approve: exactly reconcile()'s approve rows, as it classes Prolific's own CSV export
    out = step("approve")
    assert (
        "reconcile: approve 2, code_mismatch 1, there_not_here 2, returned_or_timed_out 1, "
        "duplicate 0, here_not_there 0" in out
    )
    approved = {p for p, s in subs.items() if api.submissions[s]["status"] == "APPROVED"}
    assert approved == {p for p, v in PEOPLE.items() if v[3] == "approve"}
    export = tmp_path / "prolific_export.csv"
    with open(export, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["Submission id", "Participant id", "Status", "Completion code"])
        w.writerows([subs[p], p, s, c or ""] for p, (_d, s, c, _k) in PEOPLE.items())
    with Session(engine) as session:
        study_row = session.execute(select(Study)).scalar_one()
        result = reconcile(session, study_row, read_platform_export(export))
    for category, entries in result.items():
        expected = {p for p, v in PEOPLE.items() if v[3] == category}
        assert {e["worker_id"] for e in entries} == expected, category
    assert "0 submissions; 2 already approved" in step("approve")  # nothing sent again
    assert len(api.sent("POST", r"/api/v1/submissions/\w+/transition/")) == 2
    assert "6 updated" in step("sync")

    # bonus: set up once, paid once; the same file again pays nothing
    csv_path = bonus_file(tmp_path, ["participant_id,amount", "PARTOK1,1.50", "PARTOK2,0.75"])
    out = step("bonus", "--csv", csv_path)
    ((bulk, record),) = api.bulk.items()
    assert "paid bulk bonus" in out and api.payments(bulk) == 1
    assert record["csv_bonuses"] == "PARTOK1,1.50\nPARTOK2,0.75\n"
    assert "already paid" in step("bonus", "--csv", csv_path)
    reordered = bonus_file(tmp_path, ["PARTOK2,0.75", "PARTOK1,1.5"], name="again.csv")
    assert "already paid" in step("bonus", "--csv", reordered)
    assert api.payments(bulk) == 1 and len(api.bulk) == 1
    calls = journal(engine)
    assert calls[f"pay:{bulk}"][0] == "done" and calls["create:np-study"] == ("done", pid)
    assert {s for s, _ in calls.values()} == {"done"}

    # the token: sent to the API, in no output and no row; raw participant ids stored nowhere
    assert all(r.authorization == f"Token {TOKEN}" for r in api.requests)
    stored = table_text(engine)
    assert TOKEN not in "".join(outputs) and TOKEN not in stored
    assert not any(person in stored for person in PEOPLE)
    engine.dispose()


# ----------------------------------------------------------------------------- faults: money


def test_a_payment_applied_whose_answer_never_came_is_not_paid_again(
    sqlite_url, api, tmp_path, monkeypatch
):
    ready_for_bonus(sqlite_url, api)
    monkeypatch.setattr(prolific_api, "DEFAULT_TIMEOUT", 0.3)
    api.fault("POST", "/pay/$", "apply-delay", delay=1.0)
    csv_path = bonus_file(tmp_path, ["PARTA1,2.00", "PARTB2,2.00"])
    out = ok(run(sqlite_url, "bonus", "--csv", csv_path))
    ((bulk, _),) = api.bulk.items()
    assert "paid by an earlier attempt" in out  # the state check settled it
    assert api.payments(bulk) == 1 and len(api.sent("POST", "/pay/$")) == 1
    assert "already paid" in ok(run(sqlite_url, "bonus", "--csv", csv_path))
    assert api.payments(bulk) == 1 and len(api.sent("POST", "/pay/$")) == 1


def test_without_a_state_check_the_operator_settles_an_unknown_payment(sqlite_url, api, tmp_path):
    ready_for_bonus(sqlite_url, api)
    api.state_endpoint = False  # as on the real API, which documents no such endpoint
    api.fault("POST", "/pay/$", "apply-drop")
    csv_path = bonus_file(tmp_path, ["PARTA1,2.00"])
    line = one_error_line(run(sqlite_url, "bonus", "--csv", csv_path))
    assert "outcome is unknown" in line and "--resolve paid" in line and "--resolve unpaid" in line
    ((bulk, _),) = api.bulk.items()
    assert api.payments(bulk) == 1
    # run again without an answer: still asks, sends nothing
    assert "--resolve" in one_error_line(run(sqlite_url, "bonus", "--csv", csv_path))
    out = ok(run(sqlite_url, "bonus", "--csv", csv_path, "--resolve", "paid"))
    assert "the operator says so" in out
    assert api.payments(bulk) == 1 and len(api.sent("POST", "/pay/$")) == 1
    assert "already paid" in ok(run(sqlite_url, "bonus", "--csv", csv_path))
    line = one_error_line(run(sqlite_url, "bonus", "--csv", csv_path, "--resolve", "unpaid"))
    assert "--resolve is for a payment whose outcome is unknown" in line and "is paid" in line
    assert api.payments(bulk) == 1


def test_the_operator_may_say_an_unknown_payment_was_not_made(sqlite_url, api, tmp_path):
    ready_for_bonus(sqlite_url, api)
    api.state_endpoint = False
    api.fault("POST", "/pay/$", "drop")  # lost before it was applied
    csv_path = bonus_file(tmp_path, ["PARTA1,2.00"])
    one_error_line(run(sqlite_url, "bonus", "--csv", csv_path))
    ((bulk, _),) = api.bulk.items()
    assert api.payments(bulk) == 0
    assert "paid bulk bonus" in ok(
        run(sqlite_url, "bonus", "--csv", csv_path, "--resolve", "unpaid")
    )
    assert api.payments(bulk) == 1


@pytest.mark.parametrize("when", ["after", "before"])
def test_a_crash_between_intent_and_outcome_pays_exactly_once(
    sqlite_url, api, tmp_path, monkeypatch, when
):
    ready_for_bonus(sqlite_url, api)
    real_send = prolific_api.urllib_send

    def crashing(method, url, headers, data, timeout):
        if url.endswith("/pay/") and when == "before":
            raise RuntimeError("simulated crash")
        reply = real_send(method, url, headers, data, timeout)
        if url.endswith("/pay/"):
            raise RuntimeError("simulated crash")
        return reply

    monkeypatch.setattr(prolific_api, "urllib_send", crashing)
    csv_path = bonus_file(tmp_path, ["PARTA1,1.00", "PARTB2,3.00"])
    result = run(sqlite_url, "bonus", "--csv", csv_path)
    assert isinstance(result.exception, RuntimeError)
    ((bulk, _),) = api.bulk.items()
    engine = schema.make_engine(sqlite_url)
    assert journal(engine)[f"pay:{bulk}"][0] == "intent"
    monkeypatch.setattr(prolific_api, "urllib_send", real_send)
    out = ok(run(sqlite_url, "bonus", "--csv", csv_path))
    assert api.payments(bulk) == 1 and len(api.bulk) == 1
    assert ("paid by an earlier attempt" in out) == (when == "after")
    assert journal(engine)[f"pay:{bulk}"][0] == "done"
    engine.dispose()


def test_a_5xx_on_the_payment_goes_through_the_state_check(sqlite_url, api, tmp_path):
    ready_for_bonus(sqlite_url, api)
    api.fault("POST", "/pay/$", "503")  # refused unprocessed
    api.fault("POST", "/pay/$", "apply-500")  # then applied, answered 500
    csv_path = bonus_file(tmp_path, ["PARTA1,1.00"])
    out = ok(run(sqlite_url, "bonus", "--csv", csv_path))
    ((bulk, _),) = api.bulk.items()
    assert api.payments(bulk) == 1 and "paid by an earlier attempt" in out
    # each resend came only after the state check said unpaid
    methods = [r.method for r in api.requests if "/bulk-bonus-payments/" in r.path]
    assert methods == ["POST", "GET", "POST", "GET"]


def test_a_timeout_on_study_creation_adopts_the_draft(sqlite_url, api):
    new_study(sqlite_url).dispose()
    api.fault("POST", "/api/v1/studies/$", "apply-drop")
    out = ok(run(sqlite_url, "create", "--base-url", BASE))
    assert len(api.studies) == 1 and "adopted" in out
    ((pid, _),) = api.studies.items()
    engine = schema.make_engine(sqlite_url)
    assert journal(engine)["create:np-study"] == ("done", pid)
    engine.dispose()


def test_a_crash_after_creating_the_study_adopts_the_draft_on_the_next_run(
    sqlite_url, api, monkeypatch
):
    new_study(sqlite_url).dispose()
    real_send = prolific_api.urllib_send

    def crashing(method, url, headers, data, timeout):
        reply = real_send(method, url, headers, data, timeout)
        if method == "POST":
            raise RuntimeError("simulated crash")
        return reply

    monkeypatch.setattr(prolific_api, "urllib_send", crashing)
    assert isinstance(run(sqlite_url, "create", "--base-url", BASE).exception, RuntimeError)
    assert "unknown outcome" in one_error_line(run(sqlite_url, "publish"))
    monkeypatch.setattr(prolific_api, "urllib_send", real_send)
    assert "adopted" in ok(run(sqlite_url, "create", "--base-url", BASE))
    assert len(api.studies) == 1 and len(api.sent("POST", "/api/v1/studies/$")) == 1


# ----------------------------------------------------------------------------- faults: retries


def test_429_is_retried_after_its_retry_after(sqlite_url, api):
    new_study(sqlite_url).dispose()
    api.fault("POST", "/api/v1/studies/$", "429", retry_after="7")
    ok(run(sqlite_url, "create", "--base-url", BASE))
    sid = next(iter(api.studies))
    api.add_submission(sid, "PARTA1")
    api.fault("GET", "/submissions/$", "429", retry_after="99999")  # bounded
    assert "1 submissions" in ok(run(sqlite_url, "sync"))
    assert api.slept == [7.0, prolific_api.MAX_RETRY_AFTER]
    assert len(api.studies) == 1


def test_5xx_is_retried_for_idempotent_calls(sqlite_url, api):
    engine = new_study(sqlite_url)
    sid = created_study(sqlite_url, api)
    api.fault("POST", "/transition/$", "503", times=2)
    assert "ACTIVE" in ok(run(sqlite_url, "publish"))
    assert api.slept == [1.0, 2.0] and api.studies[sid]["status"] == "ACTIVE"
    # a transition applied but answered 500 is sent again and found done
    api.fault("POST", "/transition/$", "apply-500")
    ok(run(sqlite_url, "pause"))
    assert api.studies[sid]["status"] == "PAUSED"
    add_participant(engine, "PARTA1")
    sub = api.add_submission(sid, "PARTA1", code=CODE)
    ok(run(sqlite_url, "sync"))
    api.fault("POST", f"/submissions/{sub}/transition/$", "apply-drop")
    assert "approved 1 submissions" in ok(run(sqlite_url, "approve"))
    assert api.submissions[sub]["status"] == "APPROVED"
    assert all(state == "done" for state, _ in journal(engine).values())
    # persistent 5xx: one line, exit 1, and the journal says the outcome is unknown
    api.fault("POST", "/transition/$", "503", times=prolific_api.ATTEMPTS)
    line = one_error_line(run(sqlite_url, "resume"), code=1)
    assert "answered 503" in line
    assert "unknown" in {state for state, _ in journal(engine).values()}
    assert "ACTIVE" in ok(run(sqlite_url, "resume"))  # the same journal row, settled now
    assert all(state == "done" for state, _ in journal(engine).values())
    engine.dispose()


# ----------------------------------------------------------------------------- dry runs


def test_dry_runs_send_nothing_and_change_nothing(sqlite_url, api, tmp_path):
    engine = new_study(sqlite_url)
    add_participant(engine, "PARTA1")
    bonus = bonus_file(tmp_path, ["PARTA1,1.25"])
    before = snapshot(engine)
    out = ok(run(sqlite_url, "create", "--base-url", BASE, "--dry-run"))
    assert api.requests == [] and snapshot(engine) == before
    shown = re.search(r"would send: POST /api/v1/studies/ (\{.*\})", out).group(1)
    ok(run(sqlite_url, "create", "--base-url", BASE))
    assert json.loads(shown) == api.requests[-1].body  # exactly what a real run sends
    sid = next(iter(api.studies))
    api.add_submission(sid, "PARTA1", code=CODE)
    seen = len(api.requests)
    before = snapshot(engine)
    expected = {
        "publish": f'POST /api/v1/studies/{sid}/transition/ {{"action": "PUBLISH"}}',
        "pause": f'POST /api/v1/studies/{sid}/transition/ {{"action": "PAUSE"}}',
        "resume": f'POST /api/v1/studies/{sid}/transition/ {{"action": "START"}}',
        "sync": f"GET /api/v1/studies/{sid}/submissions/",
    }
    for command, line in expected.items():
        assert f"would send: {line}" in ok(run(sqlite_url, command, "--dry-run"))
    assert len(api.requests) == seen and snapshot(engine) == before
    ok(run(sqlite_url, "sync"))
    seen, before = len(api.requests), snapshot(engine)
    (sub,) = api.submissions
    out = ok(run(sqlite_url, "approve", "--dry-run"))
    assert f'POST /api/v1/submissions/{sub}/transition/ {{"action": "APPROVE"}}' in out
    out = ok(run(sqlite_url, "bonus", "--csv", bonus, "--dry-run"))
    body = {"csv_bonuses": "PARTA1,1.25\n", "study_id": sid}
    assert f"POST /api/v1/submissions/bonus-payments/ {json.dumps(body)}" in out
    assert "/pay/" in out
    assert len(api.requests) == seen and snapshot(engine) == before
    assert api.submissions[sub]["status"] == "AWAITING REVIEW" and not api.bulk
    engine.dispose()


# ----------------------------------------------------------------------------- mistakes


def test_mistakes_are_one_line_and_exit_2(sqlite_url, api, tmp_path, monkeypatch):
    engine = new_study(sqlite_url)
    before = snapshot(engine)
    assert "no study named" in one_error_line(run(sqlite_url, "sync", study="nonesuch"))
    assert "not created on Prolific yet" in one_error_line(run(sqlite_url, "publish"))
    monkeypatch.delenv(prolific_api.TOKEN_ENV)
    assert "PROLIFIC_TOKEN" in one_error_line(run(sqlite_url, "create", "--base-url", BASE))
    monkeypatch.setenv(prolific_api.TOKEN_ENV, TOKEN)
    monkeypatch.setenv(prolific_api.API_URL_ENV, "http://api.example.org")
    assert "must be https" in one_error_line(run(sqlite_url, "create", "--base-url", BASE))
    monkeypatch.setenv(prolific_api.API_URL_ENV, api.url)
    line = one_error_line(run(sqlite_url, "create", "--base-url", "ftp://x"))
    assert "--base-url" in line
    assert api.requests == [] and snapshot(engine) == before

    # a study that cannot be created: no prolific adapter, no code, no [prolific] table
    link = {"link": default_adapters()["link"]}
    no_code = {"prolific": default_adapters()["prolific"]}
    for name, adapters, config, message in [
        ("no-adapter", link, CONFIG, "no prolific adapter"),
        ("no-code", no_code, CONFIG, "no Prolific completion code"),
        ("no-table", None, {"consent": CONFIG["consent"]}, "no [prolific] table"),
    ]:
        new_study(sqlite_url, name=name, adapters=adapters, config=config).dispose()
        result = run(sqlite_url, "create", "--base-url", BASE, study=name)
        assert message in one_error_line(result)
    assert api.requests == []

    # bonus files
    sid = created_study(sqlite_url, api)
    ok(run(sqlite_url, "publish"))
    line = one_error_line(run(sqlite_url, "bonus", "--csv", bonus_file(tmp_path, ["PARTA1,1"])))
    assert "sync" in line  # nothing synced yet
    add_participant(engine, "PARTA1")
    api.add_submission(sid, "PARTA1", code=CODE)
    ok(run(sqlite_url, "sync"))
    seen = len(api.requests)
    for lines, message in [
        (["PARTA1,abc"], "is not a number like 1.50"),
        (["PARTA1,-1.00"], "is not a number like 1.50"),
        (["PARTA1,0"], "above 0"),
        (["PARTA1,1.005"], "is not a number"),
        (["PARTA1"], "expected 'participant id,amount'"),
        (["PART A1,1.00"], "not a Prolific participant id"),
        (["PARTA1,1.00", "PARTA1,2.00"], "appears twice"),
        (["NOBODY9,1.00"], "has no submission in study"),
        (["PARTA1,25.00"], "over the cap of 10.00"),
        ([], "holds no bonus"),
    ]:
        result = run(sqlite_url, "bonus", "--csv", bonus_file(tmp_path, lines))
        assert message in one_error_line(result), lines
    assert "not found" in one_error_line(run(sqlite_url, "bonus", "--csv", tmp_path / "nope"))
    assert len(api.requests) == seen and not api.bulk
    capped = bonus_file(tmp_path, ["PARTA1,25.00"])
    ok(run(sqlite_url, "bonus", "--csv", capped, "--max-bonus", "30"))
    assert len(api.bulk) == 1
    # Prolific's own refusal is one line too, and nothing is paid
    api.add_submission(sid, "PARTB2")
    add_participant(engine, "PARTB2")
    ok(run(sqlite_url, "sync"))
    api.submissions.clear()  # Prolific no longer knows these participants
    line = one_error_line(run(sqlite_url, "bonus", "--csv", bonus_file(tmp_path, ["PARTB2,1"])))
    assert "Prolific refused POST /api/v1/submissions/bonus-payments/: 400" in line
    assert len(api.bulk) == 1 and TOKEN not in line
    engine.dispose()


def test_the_token_goes_nowhere_else(sqlite_url, api):
    new_study(sqlite_url).dispose()
    client = prolific_api.client_from_env()
    with pytest.raises(prolific_api.PlatformError, match="another host"):
        client.call("GET", "https://elsewhere.example/api/v1/studies/")
    # a wrong token is refused by the stand-in: the message does not repeat ours
    wrong = prolific_api.Client("wrong-" + TOKEN, api.url)
    with pytest.raises(prolific_api.Refused) as exc:
        wrong.json("GET", "/api/v1/studies/")
    assert exc.value.status == 401 and TOKEN not in str(exc.value)


# ----------------------------------------------------------------------------- Connect


def test_connect_is_a_named_adapter_never_a_default():
    assert "connect" not in default_adapters()
    connect = default_adapters(completion_code="CR1", optional=True)["connect"]
    assert connect == optional_adapters(completion_code="CR1")["connect"]
    assert (connect["worker_param"], connect["assignment_param"]) == (
        "participantId",
        "assignmentId",
    )
    assert connect["record_params"] == ["projectId"]
    assert connect["completion_url"] == CONNECT_COMPLETION_URL
    screenout = "https://connect.cloudresearch.com/participant/project/P4RT1AL/complete"
    clean = validate_adapters({"connect": {**connect, "screenout_url": screenout}}, mode="live")
    assert clean["connect"]["screenout_url"] == screenout
    assert "screenout_url" not in validate_adapters({"connect": connect})["connect"]
    for cfg, message in [
        ({**connect, "screenout_url": "http://x.example/out"}, "must be an https:// URL"),
        ({**connect, "screenout_url": "https://x.example/{code}"}, "no placeholder"),
        ({**connect, "screenout_url": "javascript:alert(1)"}, "not a valid URL"),
        ({**default_adapters()["mturk"], "screenout_url": screenout}, "for redirect adapters"),
    ]:
        with pytest.raises(AdapterError, match=re.escape(message)):
            validate_adapters({"p": cfg}, mode="live")


def test_a_connect_participant_finishes_on_connects_redirect(sqlite_url, bundle_dir):
    from normlime_cli import cli
    from tests.server_fixtures import Walker, make_server

    engine = schema.make_engine(sqlite_url)
    schema.init_db(engine)
    r = CliRunner().invoke(
        cli,
        [
            "create-study",
            "--db",
            sqlite_url,
            "--name",
            "cr",
            "--mode",
            "sandbox",
            "--adapter",
            "connect",
            "--completion-code",
            "CRC0DE",
            "--base-url",
            BASE,
        ],
    )
    assert r.exit_code == 0, r.output
    assert re.search(r"/s/[\w-]+/connect\?participantId=DEBUG_\w+&assignmentId=", r.output)
    assert "adapters: connect" in r.output
    adapters = json.loads(scalar(engine, "SELECT adapters FROM studies"))
    srv = make_server(sqlite_url, bundle_dir, adapters=adapters)
    w = Walker(srv)
    r = w.enter("connect", participantId="CRWORKER1", assignmentId="CRA1", projectId="PRJ9")
    assert r.status_code == 200
    assert w.consent().status_code == 303
    w.start()
    for _ in range(25):
        assert w.answer(1).status_code == 200
    assert "https://connect.cloudresearch.com/participant/project/CRC0DE/complete" in w.page
    row = srv.rows(
        "SELECT p.adapter, p.assignment_id, p.entry_params FROM participants p "
        "JOIN studies s ON s.id = p.study_id WHERE s.name != 'cr'"
    )[0]
    assert row[0] == "connect" and row[1] == "CRA1" and json.loads(row[2]) == {"projectId": "PRJ9"}
    srv.engine.dispose()
    engine.dispose()
