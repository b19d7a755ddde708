"""The consent page: the study's own facts, and a list of what is kept that matches what a
survey actually stores (tables and cookies), on every route."""

from __future__ import annotations

import html
import json
import re

import pytest
from sqlalchemy import text

from study_server import consent
from study_server.config import ConfigError, parse_config
from tests.server_fixtures import STUDY_CONFIG, Walker, make_server

TABLES = {"participants": "id", "items": "participant_id", "responses": "participant_id",
          "events": "participant_id"}  # fmt: skip


def _stored_columns(srv, pid: int) -> set[str]:
    """Every table.column that holds a value for this participant."""
    out = set()
    with srv.engine.connect() as conn:
        for table, key in TABLES.items():
            rows = conn.execute(text(f"SELECT * FROM {table} WHERE {key} = :p"), {"p": pid})
            for row in rows.mappings():
                out |= {f"{table}.{c}" for c, v in row.items()
                        if v not in (None, "", "{}") and c != "detail"}  # fmt: skip
                if table == "events":
                    detail = json.loads(row["detail"])
                    out |= {f"events.detail.{k.split('.')[0]}" for k, v in detail.items()
                            if v not in (None, "")}  # fmt: skip
    return out


def _kept_on_page(page: str) -> list[str]:
    block = re.search(r'<ul class="kept">(.*?)</ul>', page, re.S).group(1)
    items = re.findall(r"<li>(.*?)</li>", block, re.S)
    return [" ".join(html.unescape(li).split()) for li in items]


def _walk(srv, adapter: str, params: dict) -> tuple[str, Walker, set[str]]:
    w = Walker(srv)
    cookies = set()
    path = f"/s/{srv.study_key}" + ("" if adapter == "link" else f"/{adapter}")
    r = w.client.get(path, query_string=params)
    consent_page = r.get_data(as_text=True)
    w.enter(adapter, **params)
    assert w.consent().status_code == 303
    w.start()
    while "Thank you" not in w.page:
        assert w.answer(1).status_code == 200
    cookies |= {c.key for c in w.client._cookies.values()}
    return consent_page, w, cookies


ROUTES = [
    ("mturk", {"workerId": "W9", "assignmentId": "A9", "hitId": "H9",
               "turkSubmitTo": "https://www.mturk.com"}, True),
    ("prolific", {"PROLIFIC_PID": "P9", "STUDY_ID": "S9", "SESSION_ID": "X9"}, True),
    ("link", {}, False),
    ("link", {"pid": "panel-7"}, True),
]  # fmt: skip


@pytest.mark.parametrize("adapter,params,identified", ROUTES)
def test_what_the_page_says_is_kept_is_what_a_survey_stores(db_url, bundle_dir, adapter,
                                                            params, identified):  # fmt: skip
    srv = make_server(db_url, bundle_dir, mode="live")
    page, w, cookies = _walk(srv, adapter, params)
    pid = srv.scalar(f"SELECT id FROM participants WHERE token = '{w.token}'")
    stored = _stored_columns(srv, pid)
    undeclared = stored - set(consent.COLUMNS)
    assert not undeclared, f"stored but not on the consent page: {sorted(undeclared)}"
    needed = {consent.COLUMNS[c] for c in stored}
    platform = {"mturk": "Mechanical Turk", "prolific": "Prolific"}.get(
        adapter, "the site that sent you here"
    )
    expected = [consent.STATEMENTS[k].format(platform=platform) for k in consent.STATEMENTS
                if k in needed]  # fmt: skip
    shown = _kept_on_page(page)
    # every kind of data stored is stated, and nothing is stated that is not stored
    assert [s for s in shown if "cookie" not in s] == expected
    # the IP address is not kept with the participant's events
    assert srv.scalar(f"SELECT count(*) FROM events WHERE participant_id = {pid} "
                      "AND ip IS NOT NULL") == 0  # fmt: skip
    # the cookie is stated exactly when one is set
    cookie_lines = [s for s in shown if "cookie" in s]
    if identified:
        assert cookies == set() and cookie_lines == []
    else:
        assert cookies == {consent.RESUME_COOKIE.format(key=srv.study_key)}
        assert len(cookie_lines) == 1 and f"{consent.RESUME_DAYS} days" in cookie_lines[0]
    assert "IP address is not stored" in page and "forgotten within 1 minute." in page


def test_the_page_states_the_studys_facts_and_how_to_withdraw(sqlite_url, bundle_dir):
    srv = make_server(sqlite_url, bundle_dir, mode="live")
    page = html.unescape(Walker(srv).client.get(f"/s/{srv.study_key}").get_data(as_text=True))
    page = " ".join(page.split())
    facts = STUDY_CONFIG["consent"]
    for key in ("researcher", "institution", "contact", "ethics", "pay", "keep"):
        assert facts[key] in page, key
    assert "takes about 12 minutes" in page
    assert "the participant number you are shown at the end" in page
    assert "We record nothing else" not in page
    w = Walker(srv)
    w.enter("link")
    w.consent()
    w.start()
    while "Thank you" not in w.page:
        w.answer(1)
    public_id = srv.scalar(f"SELECT public_id FROM participants WHERE token = '{w.token}'")
    assert f'<code class="ref">{public_id}</code>' in w.page and facts["contact"] in w.page


def test_a_live_study_without_consent_facts_takes_nobody(sqlite_url, bundle_dir):
    srv = make_server(sqlite_url, bundle_dir, mode="live")
    with srv.engine.begin() as conn:  # a live study made before the facts were required
        conn.execute(text("UPDATE studies SET config = '{}'"))
    before = srv.snapshot()
    c = srv.client()
    r = c.get(f"/s/{srv.study_key}")
    assert r.status_code == 503 and "not ready" in r.get_data(as_text=True)
    assert srv.snapshot() == before


def test_create_study_refuses_a_live_study_without_its_facts(tmp_path):
    from tests.test_server_cli import EXAMPLE_CONFIG, one_error_line, run

    url = f"sqlite:///{tmp_path / 'c.sqlite3'}"
    run("init-db", "--db", url)
    r = run("create-study", "--db", url, "--name", "x", "--mode", "live")
    assert r.exit_code == 2 and "consent facts" in one_error_line(r)
    bad = tmp_path / "bad.toml"
    bad.write_text(EXAMPLE_CONFIG.read_text().replace('contact = "ada', 'contakt = "ada'))
    r = run("create-study", "--db", url, "--name", "x", "--mode", "live", "--config", bad)
    assert r.exit_code == 2 and "unknown field consent.contakt" in one_error_line(r)
    r = run("create-study", "--db", url, "--name", "x", "--mode", "live", "--config",
            EXAMPLE_CONFIG)  # fmt: skip
    assert r.exit_code == 0, r.output
    from study_server.schema import make_engine

    with make_engine(url).connect() as conn:
        stored = json.loads(conn.execute(text("SELECT config FROM studies")).scalar_one())
    assert stored["consent"]["ethics"].startswith("EX-REC-2026-117")
    # a debug study may go without
    assert run("create-study", "--db", url, "--name", "y", "--mode", "debug").exit_code == 0


@pytest.mark.parametrize(
    "change,message",
    [
        (lambda c: c["consent"].pop("ethics"), "lacks ethics"),
        (lambda c: c["consent"].update(contact="nobody"), "must be an e-mail address"),
        (lambda c: c["consent"].update(minutes=0), "whole number from 1"),
        (lambda c: c["consent"].update(minutes=True), "whole number from 1"),
        (lambda c: c["consent"].update(pay=""), "non-empty string"),
        (lambda c: c.update(extra={}), "unknown section 'extra'"),
        (lambda c: c["prolific"].update(devices=["fridge"]), "prolific.devices"),
        (lambda c: c["prolific"].pop("places"), "lacks places"),
    ],
)
def test_bad_configurations_are_named(change, message):
    config = json.loads(json.dumps(STUDY_CONFIG))
    change(config)
    with pytest.raises(ConfigError, match=message):
        parse_config(config)
