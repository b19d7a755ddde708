"""Forward-simulation, distinction and agreement studies, taken by simulated participants
through the test client, on a synthetic project's stimuli bundle (SQLite and PostgreSQL)."""

from __future__ import annotations

import csv
import json
import re
import threading
from collections import Counter

import pytest

from explainers.item_stimuli import read_stimuli
from tests.project_fixtures import run_cli, run_cli_error
from tests.server_fixtures import STUDY_CONFIG, Walker, hidden_fields, make_server
from tests.synthetic_project import write_project

CONDITIONS = ["none", "oracle", "saliency"]


def design(task: str, **extra) -> dict:
    d = {"task": task, "conditions": CONDITIONS, "learn_items": 4 if task == "forward" else 0,
         "test_items": 8, "attention_checks": 2, "explain_in_test": False}  # fmt: skip
    return {**STUDY_CONFIG, "design": {**d, **extra}}


@pytest.fixture(scope="module")
def stimuli_dir(tmp_path_factory):
    root = write_project(tmp_path_factory.mktemp("tasks") / "project", data="data_with_errors")
    out = root.parent / "stimuli"
    run_cli("make-stimuli", "--project", root, "--out", out, "--learn", "6", "--test", "12")
    return out


def _server(db_url, bundle_dir, stimuli_dir, task, **extra):
    return make_server(db_url, bundle_dir, mode="live", study_config=design(task, **extra),
                       config={"STIMULI_DIR": str(stimuli_dir)})  # fmt: skip


def _begin(srv, worker: str) -> Walker:
    """A participant who has consented and sees the instructions."""
    w = Walker(srv)
    r = w.enter("mturk", workerId=worker, assignmentId=f"A{worker}", hitId="H1",
                turkSubmitTo="https://www.mturk.com")  # fmt: skip
    assert r.status_code == 200, r.get_data(as_text=True)[:300]
    assert w.consent().status_code == 303
    w.show()
    return w


def attentive(default: int):
    """A chooser that follows attention checks' instructions and answers ``default``
    otherwise."""

    def choose(page: str) -> int:
        if "reading carefully" not in page:
            return default
        asked = re.search(r"choose (?:option )?(?:\u201c|&#8220;|“)?([^<”\u201d]+?)(?:\u201d|”)?"
                          r"(?: for this image)?\.</h1>", page).group(1)  # fmt: skip
        if asked.isdigit() and "choose option" in page:
            return int(asked)
        buttons = re.findall(r'value="(\d+)" class="option choice">([^<]+)</button>', page)
        return next(int(v) for v, label in buttons if label == asked)

    return choose


def _answer_all(w: Walker, chooser) -> list[str]:
    pages = []
    while "Thank you" not in w.page:
        pages.append(w.page)
        r = w.answer(chooser(w.page))
        assert r.status_code == 200, r.get_data(as_text=True)[:500]
    return pages


def test_the_bundle_balances_right_and_wrong_and_keeps_the_pools_apart(stimuli_dir):
    stimuli = read_stimuli(stimuli_dir)
    counts = stimuli.manifest["counts"]
    assert counts == {"learn": 6, "test": 12, "model_wrong": 9, "model_right": 9}
    learn = {it["test_index"] for it in stimuli.split("learn")}
    test = {it["test_index"] for it in stimuli.split("test")}
    assert not learn & test
    for split in ("learn", "test"):
        wrong = sum(not it["model_correct"] for it in stimuli.split(split))
        assert wrong == len(stimuli.split(split)) // 2
    # inspect-maps reads it: one length per kind of picture, no flag
    out = run_cli("inspect-maps", stimuli_dir, "--out", stimuli_dir.parent / "inspect")
    assert "flags: none" in out and "learn: 6 items, 3 the model gets wrong" in out


@pytest.mark.timeout(300)
def test_a_forward_simulation_study_end_to_end(db_url, bundle_dir, stimuli_dir, tmp_path):
    srv = _server(db_url, bundle_dir, stimuli_dir, "forward")
    walkers = [_begin(srv, f"W{i}") for i in range(6)]
    for w in walkers:
        assert "what the model will answer" in w.page
        w.start()
        pages = _answer_all(w, attentive(1))
        assert len(pages) == 14
        # practice pages tell the answer of the last practice item, test pages never do
        assert "practice" in pages[0] and "On the last" not in pages[0]
        assert all("On the last" in p for p in pages[1:4])
        assert not any("On the last" in p for p in pages[5:])
    conditions = Counter(c for (c,) in srv.rows("SELECT condition FROM participants"))
    assert conditions == {"none": 2, "oracle": 2, "saliency": 2}
    out = tmp_path / "responses.csv"
    run_cli("export-responses", "--db", db_url, "--out", out)
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 6 * 14
    assert Counter(r["phase"] for r in rows) == {"learn": 24, "test": 48, "check": 12}
    stimuli = read_stimuli(stimuli_dir)
    for r in rows:
        assert r["task"] == "forward" and r["condition"] in CONDITIONS
        if r["phase"] != "check":
            item = stimuli.item(r["item"])
            # scored against the model's answer, never the truth
            assert int(r["correct"]) == int(item["prediction"] == int(r["response"]))
            assert int(r["model_correct"]) == int(item["model_correct"])
    # learning images never among the same participant's test items
    by_person: dict = {}
    for r in rows:
        by_person.setdefault(r["participant"], {}).setdefault(r["phase"], set()).add(r["item"])
    for phases in by_person.values():
        assert not phases["learn"] & phases["test"]
    # ...and the analysis reads the export: the mixed model against no explanation
    results = tmp_path / "results"
    run_cli("analyze", "--responses", out, "--out", results, "--chance", "0.25")  # 4 classes
    summary = json.loads((results / "summary.json").read_text())
    model = summary["accuracy_model"]
    assert model["baseline"] == "none" and model["n_participants"] == 6
    assert set(model["coef"]) == {"oracle", "saliency"} and set(model["ci"]) == set(model["coef"])
    # every simulated participant answered option 1 on every test item
    test_rows = [r for r in rows if r["phase"] == "test"]
    for condition in CONDITIONS:
        mine = [int(r["correct"]) for r in test_rows if r["condition"] == condition]
        assert model["accuracy"][condition] == pytest.approx(sum(mine) / len(mine))


@pytest.mark.parametrize("task,n_buttons", [("distinction", 4), ("agreement", 4)])
def test_distinction_and_agreement_pages_and_scoring(sqlite_url, bundle_dir, stimuli_dir, task,
                                                    n_buttons):  # fmt: skip
    srv = _server(sqlite_url, bundle_dir, stimuli_dir, task)
    w = _begin(srv, "W1")
    assert w.page.count('class="example"') == 2  # HIVE's preview: one right, one wrong
    assert "the model was right" in w.page and "the model was wrong" in w.page
    w.start()
    pages = _answer_all(w, lambda page: 3)
    assert len(pages) == 10
    assert all(len(re.findall(r'name="c" value="\d+"', p)) == n_buttons for p in pages)
    rows = srv.rows(
        "SELECT i.phase, i.digit, r.choice, r.chosen_role, i.slots FROM items i JOIN responses r"
        " ON r.participant_id = i.participant_id AND r.position = i.position"
    )
    for phase, digit, choice, role, slots in rows:
        if task == "agreement" and phase == "test":
            right = json.loads(slots)[0][2] == "model-right"
            assert role == ("correct" if (choice >= 3) == right else "wrong")
        else:
            assert role == ("correct" if choice == digit else "wrong")


def test_conditions_stay_balanced_under_concurrent_arrivals(db_url, bundle_dir, stimuli_dir):
    srv = _server(db_url, bundle_dir, stimuli_dir, "agreement")
    errors = []

    def arrive(i):
        try:
            _begin(srv, f"C{i}")
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=arrive, args=(i,)) for i in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    counts = Counter(c for (c,) in srv.rows("SELECT condition FROM participants"))
    assert counts == {"none": 8, "oracle": 8, "saliency": 8}
    assert srv.scalar("SELECT arrivals FROM studies") == 24


def test_bad_input_gets_a_4xx_and_changes_nothing(sqlite_url, bundle_dir, stimuli_dir):
    srv = _server(sqlite_url, bundle_dir, stimuli_dir, "forward")
    w = _begin(srv, "W1")
    w.start()
    before = srv.snapshot()
    fields = hidden_fields(w.page)
    for c in ("0", "5", "1001", "x"):  # four classes: 1-4
        r = w.client.post(w.home + "/answer", data={**fields, "c": c})
        assert r.status_code == 400, (c, r.status_code)
    assert srv.snapshot() == before
    # a study whose condition the server has no maps for takes nobody
    other = _server(sqlite_url, bundle_dir, stimuli_dir, "forward",
                    conditions=["none", "gradcam"])  # fmt: skip
    before = other.snapshot()
    r = Walker(other).enter("mturk", workerId="Z", assignmentId="AZ", hitId="H",
                            turkSubmitTo="https://www.mturk.com")  # fmt: skip
    assert r.status_code == 503
    assert other.snapshot() == before


def test_create_study_refuses_a_bad_design(tmp_path):
    from tests.test_server_cli import EXAMPLE_CONFIG

    url = f"sqlite:///{tmp_path / 'd.sqlite3'}"
    run_cli("init-db", "--db", url)
    for extra, message in [
        ('[design]\ntask = "forward"\nconditions = ["none"]\n', "at least two"),
        ('[design]\ntask = "guess"\n', "design.task"),
        ('[design]\ntask = "agreement"\nconditions = ["none", "x"]\nlearn_items = 3\n',
         "learning phase"),
    ]:  # fmt: skip
        path = tmp_path / "c.toml"
        path.write_text(EXAMPLE_CONFIG.read_text() + "\n" + extra)
        line = run_cli_error("create-study", "--db", url, "--name", "x", "--mode", "live",
                             "--config", path)  # fmt: skip
        assert message in line, line


def test_the_consent_page_declares_what_a_task_survey_stores(sqlite_url, bundle_dir,
                                                             stimuli_dir):  # fmt: skip
    from study_server import consent
    from tests.test_server_consent import _kept_on_page, _stored_columns

    srv = _server(sqlite_url, bundle_dir, stimuli_dir, "agreement")
    page = Walker(srv).client.get(f"/s/{srv.study_key}/mturk", query_string={
        "workerId": "K1", "assignmentId": "AK1", "hitId": "H", "turkSubmitTo":
        "https://www.mturk.com"}).get_data(as_text=True)  # fmt: skip
    w = _begin(srv, "K1")
    w.start()
    _answer_all(w, lambda page: 1)
    pid = srv.scalar(f"SELECT id FROM participants WHERE token = '{w.token}'")
    stored = _stored_columns(srv, pid)
    assert {"participants.condition", "items.phase", "items.stimulus"} <= stored
    assert not stored - set(consent.COLUMNS)
    shown = _kept_on_page(page)
    needed = {consent.COLUMNS[c] for c in stored}
    expected = [consent.STATEMENTS[k].format(platform="Mechanical Turk")
                for k in consent.STATEMENTS if k in needed]  # fmt: skip
    assert shown == expected
