"""Withdrawal on request, and reconciliation with the platform's submissions export."""

from __future__ import annotations

import csv

import pytest
from click.testing import CliRunner

from normlime_cli import cli
from tests.server_fixtures import Walker, make_server


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def one_error_line(result) -> str:
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    return lines[0]


def read_csv(path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def study_name(srv) -> str:
    return srv.scalar("SELECT name FROM studies")


def answer(w: Walker, n: int) -> None:
    for _ in range(n):
        assert w.answer(1).status_code == 200


def test_withdraw_deletes_the_answers_and_keeps_no_raw_id(db_url, bundle_dir, tmp_path):
    srv = make_server(db_url, bundle_dir, raw_worker_ids=True)
    leaving, staying = Walker(srv).begin(worker="LEAVINGW1"), Walker(srv).begin(worker="STAYS2")
    answer(leaving, 10)
    answer(staying, 4)
    name = study_name(srv)
    r = run("withdraw", "--db", srv.db_url, "--study", name, "--worker", "LEAVINGW1")
    assert r.exit_code == 0, r.output
    assert "10 answers deleted" in r.output
    pid = srv.scalar("SELECT id FROM participants WHERE token = :t", t=leaving.token)
    assert srv.scalar("SELECT count(*) FROM responses WHERE participant_id = :p", p=pid) == 0
    assert srv.scalar("SELECT count(*) FROM items WHERE participant_id = :p", p=pid) == 0
    assert srv.scalar("SELECT count(*) FROM responses") == 4  # the other participant's
    assert srv.scalar("SELECT raw_worker_id FROM participants WHERE id = :p", p=pid) is None
    events = srv.rows("SELECT kind, detail FROM events")
    assert ("participant_withdrawn" in [k for k, _ in events]) and not any(
        "LEAVINGW1" in d for _, d in events
    )
    # in no export, and the person gets a clear page, whichever way they come back
    out = tmp_path / "votes.csv"
    assert run("export-votes", "--db", srv.db_url, "--out", out, "--include-debug").exit_code == 0
    assert len(read_csv(out)) == 4
    for resp in (
        leaving.client.get(leaving.home),
        Walker(srv).enter("prolific", PROLIFIC_PID="LEAVINGW1"),
    ):
        assert resp.status_code == 410 and "withdrew" in resp.get_data(as_text=True)
    assert srv.scalar("SELECT count(*) FROM participants") == 2
    # bad requests: one line, exit 2, nothing changes
    before = srv.snapshot()
    for args, message in [
        (["--worker", "LEAVINGW1"], "already withdrawn"),
        (["--worker", "NOSUCHW"], "no participant with that worker id"),
        ([], "exactly one of --worker and --participant"),
        (["--worker", "STAYS2", "--participant", "abc"], "exactly one"),
    ]:
        r = run("withdraw", "--db", srv.db_url, "--study", name, *args)
        assert r.exit_code == 2 and message in one_error_line(r), r.output
    r = run("withdraw", "--db", srv.db_url, "--study", "nonesuch", "--worker", "STAYS2")
    assert r.exit_code == 2 and "no study named" in one_error_line(r)
    assert srv.snapshot() == before
    srv.engine.dispose()


def _mturk_batch(path, rows):
    cols = ["HITId", "AssignmentId", "WorkerId", "AssignmentStatus", "Answer.completion_code"]
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(cols)
        w.writerows(rows)


@pytest.fixture
def reconciled(sqlite_url, bundle_dir, tmp_path):
    srv = make_server(sqlite_url, bundle_dir)
    walkers = {}
    for worker, n in [("DONE1", 25), ("CLOSEDTAB", 25), ("HALF", 12), ("WRONGCODE", 25)]:
        walkers[worker] = w = Walker(srv).begin(worker=worker, assignment=f"{worker}_A")
        answer(w, n)
    prolific = Walker(srv)
    prolific.enter("prolific", PROLIFIC_PID="PROLIFIC1", STUDY_ID="S", SESSION_ID="SESS1")
    prolific.consent()
    prolific.start()
    answer(prolific, 25)

    def code(worker):
        return srv.scalar("SELECT completion_code FROM participants WHERE token = :t",
                          t=walkers[worker].token)  # fmt: skip

    return srv, code, tmp_path


def test_reconcile_an_mturk_batch(reconciled):
    srv, code, tmp = reconciled
    batch = tmp / "Batch_123_batch_results.csv"
    _mturk_batch(
        batch,
        [
            ["H", "DONE1_A", "DONE1", "Submitted", code("DONE1")],
            ["H", "HALF_A", "HALF", "Submitted", "GUESSED123"],
            ["H", "X_A", "STRANGER", "Submitted", "GUESSED123"],
            ["H", "WRONGCODE_A", "WRONGCODE", "Submitted", "NOTMYCODE1"],
            ["H", "DONE1_B", "DONE1", "Submitted", code("DONE1")],
        ],
    )
    out = tmp / "rec"
    r = run("reconcile", "--db", srv.db_url, "--study", study_name(srv),
            "--platform-export", batch, "--out", out)  # fmt: skip
    assert r.exit_code == 0, r.output
    approve = read_csv(out / "approve.csv")
    assert [(a["submission_id"], a["worker_id"]) for a in approve] == [("DONE1_A", "DONE1")]
    rows = read_csv(out / "investigate.csv")
    got = sorted((x["category"], x["submission_id"]) for x in rows)
    assert got == [
        ("code_mismatch", "WRONGCODE_A"),
        ("duplicate", "DONE1_B"),
        ("here_not_there", "CLOSEDTAB_A"),
        ("there_not_here", "HALF_A"),
        ("there_not_here", "X_A"),
    ]
    reasons = {x["submission_id"]: x["reason"] for x in rows}
    assert reasons["HALF_A"] == "started here, not completed"
    assert "approve                1" in r.output


def test_reconcile_a_prolific_export(reconciled):
    srv, _code, tmp = reconciled
    export = tmp / "prolific_export.csv"
    with open(export, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["Submission id", "Participant id", "Status", "Started at", "Completion code"])
        w.writerow(["SESS1", "PROLIFIC1", "AWAITING REVIEW", "2026-11-30T10:00:00", "PROLIFICCC"])
        w.writerow(["SESS2", "P2", "RETURNED", "2026-11-30T10:01:00", ""])
        w.writerow(["SESS3", "P3", "TIMED-OUT", "2026-11-30T10:02:00", ""])
    out = tmp / "rec2"
    r = run("reconcile", "--db", srv.db_url, "--study", study_name(srv),
            "--platform-export", export, "--out", out)  # fmt: skip
    assert r.exit_code == 0, r.output
    approve = read_csv(out / "approve.csv")
    assert [a["submission_id"] for a in approve] == ["SESS1"]
    rows = read_csv(out / "investigate.csv")
    assert sorted((x["category"], x["submission_id"]) for x in rows) == [
        ("returned_or_timed_out", "SESS2"),
        ("returned_or_timed_out", "SESS3"),
    ]


def test_reconcile_refuses_foreign_or_broken_files(reconciled):
    srv, _code, tmp = reconciled
    name = study_name(srv)
    (tmp / "foreign.csv").write_text("name,email\nann,a@example.org\n")
    (tmp / "binary.csv").write_bytes(b"PK\x03\x04\x00\x00garbage")
    (tmp / "empty.csv").write_text("")
    (tmp / "latin1.csv").write_bytes(
        "WorkerId,AssignmentId,AssignmentStatus\nJos\xe9,A,x\n".encode("latin-1")
    )
    (tmp / "ragged.csv").write_text("WorkerId,AssignmentId,AssignmentStatus\nW,A,Submitted,extra\n")
    (tmp / "noworker.csv").write_text("WorkerId,AssignmentId,AssignmentStatus\n,A,Submitted\n")
    cases = [
        ("missing.csv", "not found"),
        ("foreign.csv", "neither a Prolific submissions export nor an MTurk"),
        ("binary.csv", "binary data"),
        ("empty.csv", "neither a Prolific"),
        ("latin1.csv", "not UTF-8"),
        ("ragged.csv", "line 2: more fields"),
        ("noworker.csv", "line 2: no worker id"),
    ]
    for name_, message in cases:
        r = run("reconcile", "--db", srv.db_url, "--study", name,
                "--platform-export", tmp / name_, "--out", tmp / "o")  # fmt: skip
        assert r.exit_code == 2 and message in one_error_line(r), (name_, r.output)
    assert not (tmp / "o").exists()
