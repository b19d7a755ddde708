"""The study-server commands: init-db, create-study, set-admin-password, export-votes,
export-hits (with the ExternalQuestion XML checked), up and serve."""

from __future__ import annotations

import csv
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

from normlime_cli import cli
from study_server import cli as server_cli
from tests.server_fixtures import Walker, make_bundle, make_server

NS = "http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/2006-07-14/ExternalQuestion.xsd"


EXAMPLE_CONFIG = Path(__file__).parents[1] / "docs" / "study-config.example.toml"

def run(*args, env=None, input=None):
    return CliRunner().invoke(cli, [str(a) for a in args], env=env, input=input)


def one_error_line(result) -> str:
    lines = [ln for ln in result.output.strip().splitlines() if ln.strip()]
    assert lines[-1].startswith("Error: "), result.output
    return lines[-1]


def test_default_db_is_the_same_everywhere():
    from study_server.schema import DEFAULT_DB

    assert server_cli.DEFAULT_DB == DEFAULT_DB


def test_init_db_is_idempotent(db_url):
    r = run("init-db", "--db", db_url)
    assert r.exit_code == 0 and "created" in r.output
    r = run("init-db", "--db", db_url)
    assert r.exit_code == 0 and "already present" in r.output


def test_commands_need_the_schema_and_a_valid_url(tmp_path):
    url = f"sqlite:///{tmp_path / 'x.sqlite3'}"
    r = run("export-votes", "--db", url, "--out", tmp_path / "v.csv")
    assert r.exit_code == 2 and "normlime init-db" in one_error_line(r)
    r = run("init-db", "--db", "nonsense")
    assert r.exit_code == 2 and "not a database URL" in one_error_line(r)
    r = run("init-db", "--db", "sqlite://")
    assert r.exit_code == 2 and "in-memory" in one_error_line(r)


def test_create_study_and_its_validation(tmp_path):
    url = f"sqlite:///{tmp_path / 's.sqlite3'}"
    run("init-db", "--db", url)
    r = run(
        "create-study", "--db", url, "--name", "pilot", "--mode", "sandbox",
        "--completion-code", "C0DE1", "--base-url", "https://study.example",
        "--adapter", "mturk", "--adapter", "prolific",
        "--adapter", json.dumps({"name": "cint", "worker_param": "RID",
                                 "completion_url": "https://panel.example/done?c={code}"}),
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert re.search(r"https://study\.example/s/[\w-]+/cint\?RID=DEBUG_\w+", r.output)
    assert "/mturk?workerId=" in r.output and "PROLIFIC_PID=" in r.output
    assert "adapters: cint, mturk, prolific" in r.output  # no plain link: it was not asked for
    bad = [
        (["--name", "pilot", "--mode", "live"], "already exists"),
        (["--name", "x", "--mode", "production"], "Invalid value for '--mode'"),
        (["--name", "", "--mode", "live"], "study name"),
        (["--name", "y", "--mode", "live", "--adapter", "{not json"], "not valid JSON"),
        (["--name", "y", "--mode", "live", "--adapter", '{"kind": "x"}'], '"name"'),
        (
            ["--name", "y", "--mode", "live", "--adapter", '{"name": "p", "kind": "carrier"}'],
            "kind must be one of",
        ),
        (
            ["--name", "y", "--mode", "live", "--adapter",
             '{"name": "p", "worker_param": "a b"}'],
            "not a parameter name",
        ),
        (
            ["--name", "y", "--mode", "live", "--adapter",
             '{"name": "p", "worker_param": "pid", "completion_url": "ftp://x/{code}"}'],
            "not a valid URL",
        ),
        (
            ["--name", "y", "--mode", "live", "--adapter", "link",
             "--link-completion-url", "http://plain.example/done"],
            "must be an https:// URL for a live study",
        ),
        (
            ["--name", "y", "--mode", "live", "--adapter", "link",
             "--link-completion-url", "https://x.example/\r\nSet-Cookie: a"],
            "not a valid URL",
        ),
        (["--name", "y", "--mode", "live", "--adapter", "facebook"], "give one of"),
        (["--name", "y", "--mode", "live", "--adapter", "mturk", "--completion-code", "C1"],
         "which this study does not use"),
        (
            ["--name", "y", "--mode", "live", "--adapter",
             '{"name": "p", "worker_param": "pid", "completion_url": "https://x/{oops}"}'],
            "{code} placeholder",
        ),
        (["--name", "y", "--mode", "live", "--completion-code", "no spaces!"], "completion_code"),
    ]  # fmt: skip
    for args, message in bad:
        r = run("create-study", "--db", url, *args)
        assert r.exit_code == 2, (args, r.output)
        assert message in r.output, (args, r.output)
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM studies")).scalar() == 1
    engine.dispose()


def test_create_study_warns_of_an_anonymous_link_beside_the_panels(tmp_path):
    url = f"sqlite:///{tmp_path / 'w.sqlite3'}"
    run("init-db", "--db", url)
    r = run("create-study", "--db", url, "--name", "mixed", "--mode", "sandbox")
    assert r.exit_code == 0, r.output
    assert "warning: link is anonymous beside mturk, prolific" in r.output
    r = run("create-study", "--db", url, "--name", "panels", "--mode", "sandbox",
            "--adapter", "mturk", "--adapter", "prolific")  # fmt: skip
    assert r.exit_code == 0 and "warning" not in r.output
    r = run("create-study", "--db", url, "--name", "plain", "--mode", "sandbox",
            "--adapter", "link")  # fmt: skip
    assert r.exit_code == 0 and "warning" not in r.output


def test_gunicorn_warns_when_workers_count_limits_apart():
    from study_server.gunicorn_conf import separate_limits_warning

    message = separate_limits_warning(4, None)
    assert message and "4 worker processes" in message and "NORMLIME_LIMITS_STORAGE" in message
    assert separate_limits_warning(3, "memory://") is not None
    assert separate_limits_warning(1, None) is None
    assert separate_limits_warning(4, "redis://127.0.0.1:6379") is None


def test_set_admin_password(tmp_path):
    url = f"sqlite:///{tmp_path / 'a.sqlite3'}"
    run("init-db", "--db", url)
    r = run("set-admin-password", "--db", url, env={"NORMLIME_ADMIN_PASSWORD": "short"})
    assert r.exit_code == 2 and "at least 10 characters" in one_error_line(r)
    r = run("set-admin-password", "--db", url, input="a long password\na long password\n",
            env={"NORMLIME_ADMIN_PASSWORD": ""})  # fmt: skip
    assert r.exit_code == 0 and "stored as a salted hash" in r.output


def test_export_votes_writes_the_contract_columns(db_url, bundle_dir, tmp_path):
    live = make_server(db_url, bundle_dir, mode="live")
    w = Walker(live)
    w.enter(
        "mturk", workerId="WL", assignmentId="AL", hitId="H", turkSubmitTo="https://www.mturk.com"
    )
    w.consent()
    w.start()
    for _ in range(25):
        assert w.answer(3).status_code == 200
    partial = Walker(live)
    partial.enter(
        "mturk", workerId="WP", assignmentId="AP", hitId="H", turkSubmitTo="https://www.mturk.com"
    )
    partial.consent()
    partial.start()
    for _ in range(4):
        partial.answer(2)
    debug = make_server(db_url, bundle_dir, mode="debug")
    Walker(debug).begin().answer(1)

    out, parts = tmp_path / "votes.csv", tmp_path / "participants.csv"
    r = run("export-votes", "--db", db_url, "--out", out, "--participants", parts)
    assert r.exit_code == 0, r.output
    assert "wrote 29 answers" in r.output and "left out 1 participants" in r.output
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0])[:6] == [
        "participant_id", "question_index", "is_attention_check", "digit", "chosen_method",
        "passed",
    ]  # fmt: skip
    for extra in ("position", "response_ms", "shown_at", "answered_at", "study", "mode"):
        assert extra in rows[0]
    assert {r_["mode"] for r_ in rows} == {"live"}
    for row in rows:
        if row["is_attention_check"] == "true":
            assert row["chosen_method"] == "" and row["passed"] in ("true", "false")
        else:
            assert row["chosen_method"] in ("normlime", "lime", "smoothgrad", "vargrad")
            assert row["passed"] == ""
    completed = {r_["participant_id"]: r_["completed"] for r_ in rows}
    assert sorted(completed.values()) == ["false", "true"]
    prow = {p["participant_id"]: p for p in csv.DictReader(parts.open())}
    assert {p["answered"] for p in prow.values()} == {"25", "4"}
    assert all(p["worker_id"] == "" and len(p["worker_key"]) == 64 for p in prow.values())
    r = run("export-votes", "--db", db_url, "--out", out, "--include-debug")
    assert r.exit_code == 0 and "wrote 30 answers" in r.output
    r = run("export-votes", "--db", db_url, "--out", out, "--study", "nope")
    assert r.exit_code == 2 and "no study named 'nope'" in one_error_line(r)


def parse_question(path):
    tree = ET.parse(path)
    root = tree.getroot()
    assert root.tag == f"{{{NS}}}ExternalQuestion"
    children = [child.tag for child in root]
    assert children == [f"{{{NS}}}ExternalURL", f"{{{NS}}}FrameHeight"]
    url = root.find(f"{{{NS}}}ExternalURL").text
    height = int(root.find(f"{{{NS}}}FrameHeight").text)
    return url, height


def test_export_hits_writes_valid_external_questions(sqlite_url, bundle_dir, tmp_path):
    srv = make_server(sqlite_url, bundle_dir, mode="sandbox")
    out = tmp_path / "hits"
    r = run(
        "export-hits", "--db", sqlite_url, "--base-url", "https://study.example.org/",
        "--count", 3, "--sandbox", "--out", out, "--batch", "pilot-1", "--frame-height", 900,
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    url, height = parse_question(out / "external-question.xml")
    assert url == f"https://study.example.org/s/{srv.study_key}/mturk?batch=pilot-1"
    assert height == 900
    links = list(csv.DictReader((out / "hits.csv").open()))
    assert [row["hit"] for row in links] == ["0001", "0002", "0003"]
    for row in links:
        raw = (out / row["question_file"]).read_text()
        assert raw.startswith('<?xml version="1.0" encoding="UTF-8"?>')
        # the & of the query string is escaped in the XML text
        assert "?batch=pilot-1&amp;hit=" in raw and "&hit" not in raw
        url, height = parse_question(out / row["question_file"])
        assert url == row["external_url"] and url.startswith("https://")
        assert url.endswith(f"&hit={row['hit']}") and height == 900
    info = json.loads((out / "batch.json").read_text())
    assert info["sandbox"] is True and "sandbox" in info["requester_endpoint"]
    assert "2026-09-30" in info["note"]
    # the links work: MTurk appends its parameters and the entry page records batch/hit
    w = Walker(srv)
    path = links[1]["external_url"].replace("https://study.example.org", "")
    resp = w.client.get(
        path + "&workerId=WX&assignmentId=AX&hitId=HX&turkSubmitTo=https://workersandbox.mturk.com"
    )
    assert resp.status_code == 200
    w.page = resp.get_data(as_text=True)
    assert w.consent().status_code == 303
    params = json.loads(srv.scalar("SELECT entry_params FROM participants"))
    assert params == {"batch": "pilot-1", "hit": "0002", "hitId": "HX"}


@pytest.mark.parametrize(
    "args,message",
    [
        (["--base-url", "http://insecure.example"], "https:// URL"),
        (["--base-url", "https://ok.example", "--sandbox", "--study", "live-one"], "is live"),
        (["--base-url", "https://ok.example", "--study", "sandboxed"], "live HITs need"),
        (["--base-url", "https://ok.example", "--study", "nope"], "no study named"),
        (["--base-url", "https://ok.example", "--count", "0"], "Invalid value for '--count'"),
        (["--base-url", "https://ok.example", "--adapter", "prolific"], "no mturk adapter"),
    ],
)
def test_export_hits_refuses_bad_settings(tmp_path, bundle_dir, args, message):
    url = f"sqlite:///{tmp_path / 'h.sqlite3'}"
    run("init-db", "--db", url)
    run("create-study", "--db", url, "--name", "sandboxed", "--mode", "sandbox")
    run("create-study", "--db", url, "--name", "live-one", "--mode", "live",
        "--config", EXAMPLE_CONFIG)  # fmt: skip
    base = ["export-hits", "--db", url, "--out", tmp_path / "o"]
    if "--count" not in args:
        base += ["--count", "2"]
    r = run(*base, *args)
    assert r.exit_code == 2, r.output
    assert message in one_error_line(r)
    assert not (tmp_path / "o" / "external-question.xml").exists()


def test_a_live_studys_links_carry_no_example_ids(tmp_path):
    """Opened "to check", an example id would become a participant in the live data."""
    url = f"sqlite:///{tmp_path / 'l.sqlite3'}"
    run("init-db", "--db", url)
    r = run("create-study", "--db", url, "--name", "live-one", "--mode", "live",
            "--adapter", "mturk", "--adapter", "prolific", "--base-url", "https://s.example",
            "--config", EXAMPLE_CONFIG)  # fmt: skip
    assert r.exit_code == 0, r.output
    key = re.search(r"https://s\.example/s/([\w-]+)/mturk\n", r.output).group(1)
    assert f"https://s.example/s/{key}/prolific\n" in r.output
    assert "DEBUG_" not in r.output and "PROLIFIC_PID" not in r.output
    assert "give these links to the platforms" in r.output
    again = run("study-links", "--db", url, "--study", "live-one", "--base-url",
                "https://s.example")  # fmt: skip
    assert again.exit_code == 0 and "DEBUG_" not in again.output, again.output


def test_up_sets_everything_up_and_prints_the_links(tmp_path, bundle_dir):
    url = f"sqlite:///{tmp_path / 'up.sqlite3'}"
    r = run("up", "--maps", bundle_dir, "--db", url, "--no-serve", "--port", 5077,
            env={"NORMLIME_ADMIN_PASSWORD": ""})  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "created the study schema" in r.output and "study 'default' in debug mode" in r.output
    key = re.search(r"http://127\.0\.0\.1:5077/s/([\w-]+)\n", r.output).group(1)
    assert f"http://127.0.0.1:5077/s/{key}/mturk?workerId=" in r.output
    assert f"http://127.0.0.1:5077/s/{key}/prolific?PROLIFIC_PID=" in r.output
    assert "http://127.0.0.1:5077/admin/" in r.output
    password = re.search(r"admin password \(shown once, stored hashed\): (\S+)", r.output).group(1)
    assert len(password) >= 16
    again = run("up", "--maps", bundle_dir, "--db", url, "--no-serve",
                env={"NORMLIME_ADMIN_PASSWORD": ""})  # fmt: skip
    assert again.exit_code == 0 and password not in again.output
    assert "admin password: unchanged" in again.output
    chosen = run("up", "--maps", bundle_dir, "--db", url, "--no-serve",
                 env={"NORMLIME_ADMIN_PASSWORD": "operator's own password"})  # fmt: skip
    assert chosen.exit_code == 0 and "set from $NORMLIME_ADMIN_PASSWORD" in chosen.output
    from sqlalchemy import create_engine, text
    from werkzeug.security import check_password_hash

    engine = create_engine(url)
    with engine.connect() as conn:
        stored = conn.execute(
            text("SELECT value FROM settings WHERE key = 'admin_password_hash'")
        ).scalar()
        assert conn.execute(text("SELECT count(*) FROM studies")).scalar() == 1
    engine.dispose()
    assert check_password_hash(stored, "operator's own password")


def test_up_builds_a_missing_bundle_with_train_then_precompute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    calls = []

    def fake_child(target, *args, what):
        calls.append((f"{target.__module__}.{target.__name__}", args))
        make_bundle(tmp_path / args[0])

    monkeypatch.setattr(server_cli, "run_in_child", fake_child)
    monkeypatch.delenv("NORMLIME_MAPS", raising=False)
    # by default the bundle shipped in the package is served: nothing to build
    r = run("up", "--db", "sqlite:///artifacts/study.sqlite3", "--no-serve")
    assert r.exit_code == 0 and calls == [], r.output
    from explainers.shipped import shipped_maps

    assert f"maps: {shipped_maps()}" in r.output
    r = run("up", "--maps", "artifacts/maps", "--db", "sqlite:///artifacts/study.sqlite3",
            "--no-serve")  # fmt: skip
    assert r.exit_code == 0, r.output
    assert calls == [
        ("explainers.demo_bundle.build_demo_bundle",
         ("artifacts/maps", "artifacts/model/mnist-cnn.pt")),
    ]  # fmt: skip
    assert "maps: artifacts/maps" in r.output
    assert (tmp_path / "artifacts" / "study.sqlite3").is_file()


def test_up_fails_with_one_clear_line_when_the_build_fails(tmp_path, monkeypatch):
    """A real child process whose build raises: one line, exit 1, nothing created."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "artifacts" / "model").mkdir(parents=True)
    (tmp_path / "artifacts" / "model" / "mnist-cnn.pt").write_bytes(b"not a model")
    r = run("up", "--maps", tmp_path / "maps", "--db", "sqlite:///s.sqlite3", "--no-serve")
    assert r.exit_code == 1
    assert one_error_line(r) == (
        f"Error: building the demo bundle in {tmp_path / 'maps'} (model "
        "artifacts/model/mnist-cnn.pt) failed with exit code 1 (its output is above)"
    )
    assert not (tmp_path / "s.sqlite3").exists()
    assert not (tmp_path / "maps" / "manifest.json").exists()


def test_the_demo_bundle_records_the_command_that_rebuilds_it(tmp_path, monkeypatch):
    """up's build calls functions, not the CLI; the argv it records in the manifest, parsed
    by the real `normlime precompute`, asks for exactly the build's settings."""
    from explainers import demo_bundle, precompute
    from explainers.cli import precompute_command
    from explainers.shipped import shipped_model

    seen = {}
    monkeypatch.setattr(precompute, "precompute", lambda **kw: seen.update(kw))
    demo_bundle.build_demo_bundle(tmp_path / "maps", shipped_model())
    argv = seen["argv"]
    assert argv[0] == "precompute"
    ctx = precompute_command.make_context("precompute", list(argv[1:]))
    assert ctx.params["preset"] == seen["preset"] == "demo"
    assert ctx.params["data_spec"] == "embedded" and seen["data"].source == "embedded"
    assert ctx.params["out_dir"] == seen["out_dir"] == tmp_path / "maps"
    assert ctx.params["model_path"] == seen["model_path"] == shipped_model()
    assert ctx.params["seed"] == seen.get("seed", 0) == 0


def test_serve_refuses_a_broken_bundle_or_database(tmp_path, bundle_dir):
    url = f"sqlite:///{tmp_path / 'v.sqlite3'}"
    r = run("serve", "--maps", tmp_path / "nothing", "--db", url)
    assert r.exit_code == 2 and "is not a maps bundle" in one_error_line(r)
    r = run("serve", "--maps", bundle_dir, "--db", url)
    assert r.exit_code == 2 and "no study schema" in one_error_line(r)
    broken = tmp_path / "broken"
    make_bundle(broken)
    (broken / "png" / "lime-3.png").write_bytes(b"tampered")
    run("init-db", "--db", url)
    r = run("serve", "--maps", broken, "--db", url)
    assert r.exit_code == 2 and "does not match the checksum" in one_error_line(r)
    for storage in ("nonsense", "postgres://x", "async+redis://127.0.0.1"):
        r = run("serve", "--maps", bundle_dir, "--db", url, "--limits-storage", storage)
        assert r.exit_code == 2 and "is not a storage URL" in one_error_line(r)
    r = run("up", "--maps", bundle_dir, "--db", url, "--no-serve",
            "--limits-storage", "redis://127.0.0.1:6379")  # fmt: skip
    assert r.exit_code == 0, r.output
