"""``normlime analyze`` end to end: export CSV or study database -> summary.json + report."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import uuid

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from PIL import Image
from scipy import stats as sps

from analysis.study.pipeline import run_analysis
from analysis.study.report import summary_dict
from analysis.study.simulate import PAPER_VOTES, simulate_export
from analysis.study.votes import METHODS, read_votes_csv
from normlime_cli import cli

SUMMARY_KEYS = {
    "participants", "votes", "choice_model", "choice_model_note", "anova", "tukey",
    "rm_anova", "friedman", "wilcoxon", "position_bias", "robustness",
}
CHOICE_KEYS = {
    "reference", "coef", "ci", "position_coef", "n_participants", "n_questions", "bootstrap",
}
TUKEY_KEYS = {"group1", "group2", "meandiff", "p_adj", "lower", "upper", "reject"}


def analyze(*args: str):
    result = CliRunner().invoke(cli, ["analyze", *map(str, args)])
    return result


def write_server_csv(frame: pd.DataFrame, path) -> None:
    """As ``normlime export-votes`` writes it: lower-case true/false, empty for missing."""
    out = frame.copy()
    for column in ("is_attention_check", "completed"):
        out[column] = out[column].map({True: "true", False: "false"})
    out["passed"] = out["passed"].map({True: "true", False: "false"}).fillna("")
    out.to_csv(path, index=False)


def independent_summary(frame: pd.DataFrame, min_checks: int = 4):
    """What the analysis must find, computed here from the raw rows by plain pandas."""
    per = frame.groupby("participant_id").agg(
        answers=("question_index", "size"),
        checks=("is_attention_check", "sum"),
        passed=("passed", lambda s: int(s.fillna(False).sum())),
    )
    complete = (per["answers"] == 25) & (per["checks"] == 5)
    kept = per.index[complete & (per["passed"] >= min_checks)]
    real = frame[~frame["is_attention_check"] & frame["participant_id"].isin(kept)]
    counts = pd.crosstab(real["participant_id"], real["chosen_method"]).reindex(
        columns=list(METHODS), fill_value=0
    )
    return per, kept, counts, counts.div(counts.sum(axis=1), axis=0)


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    frame = simulate_export(
        150, random_state=7, p_inattentive=0.12, p_incomplete=0.06, position_logits=(1.1, 0, 0, 0)
    )
    path = tmp_path_factory.mktemp("export") / "votes.csv"
    write_server_csv(frame, path)
    return frame, path


def run_console(*args: str) -> tuple[str, bool]:
    """Run the real entry point in a fresh interpreter; return stdout and whether torch
    got imported (``analyze`` must never import it)."""
    code = (
        "import sys\n"
        "from normlime_cli import main\n"
        "try:\n"
        f"    main({[str(a) for a in args]!r})\n"
        "except SystemExit as exc:\n"
        "    assert not exc.code, exc.code\n"
        "print('torch imported:', 'torch' in sys.modules)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    return run.stdout, "torch imported: True" in run.stdout


def test_end_to_end_from_a_server_export(simulated, tmp_path):
    frame, path = simulated
    out = tmp_path / "report"
    stdout, torch_imported = run_console("analyze", "--votes", path, "--out", out)
    assert not torch_imported
    assert "reproduction, one-way ANOVA (the paper's test): F(3, " in stdout
    assert "primary choice model (log-odds vs lime): normlime " in stdout
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary) == SUMMARY_KEYS
    model = summary["choice_model"]
    assert set(model) >= CHOICE_KEYS
    assert model["reference"] == "lime" and model["coef"]["lime"] == 0
    assert set(model["coef"]) == set(model["ci"]) == set(METHODS)
    assert set(model["position_coef"]) == {"1", "2", "3", "4"}
    assert model["bootstrap"]["n"] == 1000 and model["bootstrap"]["seed"] == 0
    assert model["statsmodels_check"]["max_abs_difference"] < 1e-6
    # the simulation makes slot 1 attractive (position_logits 1.1, 0, 0, 0)
    for slot in ("2", "3", "4"):
        assert model["position_coef"][slot] < -0.6
    report = (out / "report.md").read_text()
    assert "## Primary analysis: a conditional logit" in report
    assert "## Reproduction: the paper's analysis" in report
    assert report.index("## Primary analysis") < report.index("## Reproduction")

    per, kept, counts, props = independent_summary(frame)
    n_incomplete = int(((per["answers"] < 25)).sum())
    assert n_incomplete > 0 and len(kept) < len(per) - n_incomplete  # both kinds excluded
    assert summary["participants"] == {
        "total": len(per), "kept": len(kept), "excluded": len(per) - len(kept)
    }
    assert summary["votes"] == {m: int(counts[m].sum()) for m in METHODS}

    f_ref = sps.f_oneway(*(props[m].to_numpy() for m in METHODS))
    anova = summary["anova"]
    assert (anova["df_between"], anova["df_within"]) == (3, 4 * len(kept) - 4)
    assert anova["F"] == pytest.approx(f_ref.statistic, rel=1e-10)
    assert anova["p"] == pytest.approx(f_ref.pvalue, rel=1e-8)
    assert 0 < anova["eta_squared"] < 1

    assert len(summary["tukey"]) == 6
    assert all(set(row) == TUKEY_KEYS for row in summary["tukey"])
    tukey = {(r["group1"], r["group2"]): r for r in summary["tukey"]}
    assert tukey[("lime", "normlime")]["meandiff"] == pytest.approx(
        props["normlime"].mean() - props["lime"].mean()
    )
    assert tukey[("lime", "normlime")]["reject"] is True

    fr = sps.friedmanchisquare(*(props[m].to_numpy() for m in METHODS))
    assert summary["friedman"]["statistic"] == pytest.approx(fr.statistic, rel=1e-10)
    assert len(summary["wilcoxon"]) == 6

    # the simulated participants favour the leftmost slot: the check must notice
    pb = summary["position_bias"]
    real = frame[~frame["is_attention_check"] & frame["participant_id"].isin(kept)]
    assert pb["available"] is True
    assert pb["counts"] == {str(s): int((real["position"] == s).sum()) for s in (1, 2, 3, 4)}
    assert pb["p"] < 1e-6

    report = (out / "report.md").read_text()
    assert "one-way ANOVA" in report and "Ahern et al. 2020" in report
    assert "Friedman" in report and "Holm" in report and "Position bias" in report
    assert "![Votes per method](votes.png)" in report
    for name in ("votes.png", "proportions.png", "choice_model.png", "digits.png"):
        with Image.open(out / name) as image:
            assert image.format == "PNG" and image.size[0] > 300
    exclusions = pd.read_csv(out / "exclusions.csv")
    assert len(exclusions) == summary["participants"]["excluded"]
    assert set(exclusions["reason"]) == {"incomplete", "attention"}
    observations = pd.read_csv(out / "proportions.csv", index_col="participant_id")
    np.testing.assert_allclose(
        observations[list(METHODS)].to_numpy(), props.to_numpy(), rtol=0, atol=1e-15
    )
    details = json.loads((out / "details.json").read_text())
    assert details["excluded_by_reason"]["incomplete"] == n_incomplete
    assert details["settings"]["min_checks"] == 4


def test_min_checks_and_include_incomplete_change_the_kept_set(simulated, tmp_path):
    frame, path = simulated
    strict = run_analysis(read_votes_csv(path), min_checks=5)
    _, kept5, _, _ = independent_summary(frame, min_checks=5)
    assert strict.selection.kept == len(kept5)

    lax = analyze("--votes", path, "--out", tmp_path / "b", "--include-incomplete")
    assert lax.exit_code == 0, lax.output
    inc = json.loads((tmp_path / "b" / "summary.json").read_text())
    _, kept4, _, _ = independent_summary(frame)
    assert inc["participants"]["kept"] > len(kept4)
    assert "incomplete surveys" in lax.output  # the warning reaches the terminal
    assert "> **Warning**" in (tmp_path / "b" / "report.md").read_text()


def paper_like_export(seed: int = 2020) -> pd.DataFrame:
    """83 kept participants whose votes total exactly the paper's 939/438/132/151, plus
    12 who fail the attention checks and 5 who stop early (both must be excluded)."""
    rng = np.random.default_rng(seed)
    pool = np.repeat(np.arange(4), [PAPER_VOTES[m] for m in METHODS])
    per_person = rng.permutation(pool).reshape(83, 20)
    rows = []
    for i in range(100):
        pid = f"w{i:03d}"
        fails = i >= 83 and i < 95
        stop = 25 if i < 95 else int(rng.integers(5, 24))
        choices = per_person[i] if i < 83 else rng.integers(0, 4, size=20)
        check_at = set(rng.choice(np.arange(1, 26), size=5, replace=False).tolist())
        real_i = check_i = 0
        for q in range(1, stop + 1):
            is_check = q in check_at
            rows.append(
                {
                    "participant_id": pid,
                    "question_index": q,
                    "is_attention_check": "True" if is_check else "False",
                    "digit": q % 10,
                    "chosen_method": "" if is_check else METHODS[choices[real_i]],
                    "passed": ("False" if fails and check_i < 2 else "True") if is_check else "",
                }
            )
            check_i += is_check
            real_i += not is_check
    return pd.DataFrame(rows)


def test_replicates_the_papers_setting(tmp_path):
    path = tmp_path / "paper.csv"
    paper_like_export().to_csv(path, index=False)
    result = analyze("--votes", path, "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["participants"] == {"total": 100, "kept": 83, "excluded": 17}
    assert summary["votes"] == PAPER_VOTES
    anova = summary["anova"]
    assert (anova["df_between"], anova["df_within"]) == (3, 328)  # as in the paper
    assert 100 <= anova["F"] < 1000 and anova["p"] < 1e-60
    tukey = {frozenset((r["group1"], r["group2"])): r for r in summary["tukey"]}

    def higher(a, b):
        row = tukey[frozenset((a, b))]
        diff = row["meandiff"] if row["group2"] == a else -row["meandiff"]
        return row["reject"] and row["p_adj"] < 0.001 and diff > 0

    for other in ("lime", "smoothgrad", "vargrad"):
        assert higher("normlime", other)
    for gradient in ("smoothgrad", "vargrad"):
        assert higher("lime", gradient)
    assert summary["position_bias"]["available"] is False  # no position column here
    assert summary["choice_model"] is None  # nor a screen order: reported, not guessed
    assert "no options column" in summary["choice_model_note"]
    assert "## Primary analysis" in (tmp_path / "out" / "report.md").read_text()
    details = json.loads((tmp_path / "out" / "details.json").read_text())
    assert details["excluded_by_reason"] == {
        "incomplete": 5, "attention": 12, "no_votes": 0, "speeder": 0
    }


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda f: f.drop(columns=["chosen_method"]), "lacks required column(s) chosen_method"),
        (lambda f: f.assign(chosen_method=f["chosen_method"].replace("lime", "LIME-v2")),
         "unknown method name(s) 'LIME-v2'"),
        (lambda f: pd.concat([f, f.iloc[[10]]]), "duplicated answers"),
        (lambda f: f.drop(columns=["options"]).assign(is_attention_check=False,
                                                      chosen_method="lime"),
         "more answers than the survey has"),
        (lambda f: f.assign(passed=np.where(f["is_attention_check"], False, pd.NA)),
         "nothing left after filtering"),
    ],
)
def test_bad_input_exits_2_with_one_line(simulated, tmp_path, edit, message):
    frame, _ = simulated
    path = tmp_path / "bad.csv"
    write_server_csv(edit(frame), path)
    result = analyze("--votes", path, "--out", tmp_path / "out")
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0]
    assert not (tmp_path / "out" / "summary.json").exists()


def test_source_options_are_checked(tmp_path):
    for args in ([], ["--votes", "a.csv", "--db", "sqlite:///x.db"]):
        result = analyze(*args, "--out", tmp_path / "o")
        assert result.exit_code == 2 and "exactly one of --db URL or --votes CSV" in result.output
    missing = analyze("--votes", tmp_path / "nope.csv", "--out", tmp_path / "o")
    assert missing.exit_code == 2 and "votes file not found" in missing.output
    nodb = analyze("--db", f"sqlite:///{tmp_path}/nope.sqlite3", "--out", tmp_path / "o")
    assert nodb.exit_code == 2 and "database file not found" in nodb.output
    assert not (tmp_path / "nope.sqlite3").exists()  # reading never creates a database


@pytest.mark.parametrize(
    ("args", "drop", "message"),
    [
        (["--reference", "gradcam"], None, "unknown reference method 'gradcam'"),
        (["--exclude-speeders", "500"], "response_ms", "needs a response_ms column"),
        (["--bootstrap", "-1"], None, "Invalid value for '--bootstrap'"),
    ],
)
def test_bad_analysis_options_exit_2(simulated, tmp_path, args, drop, message):
    frame, _ = simulated
    path = tmp_path / "votes.csv"
    write_server_csv(frame.drop(columns=[drop]) if drop else frame, path)
    result = analyze("--votes", path, *args, "--out", tmp_path / "out")
    assert result.exit_code == 2 and message in result.output, result.output
    assert not (tmp_path / "out").exists()


def test_declared_speeder_rule_excludes_and_reports(simulated, tmp_path):
    frame, path = simulated
    result = analyze("--votes", path, "--exclude-speeders", "4300", "--out", tmp_path / "s")
    assert result.exit_code == 0, result.output
    details = json.loads((tmp_path / "s" / "details.json").read_text())
    assert details["settings"]["speeder_ms"] == 4300
    assert details["excluded_by_reason"]["speeder"] > 10  # medians ~ 4,900 +- 900 ms
    assert "Pre-declared speeder rule" in (tmp_path / "s" / "report.md").read_text()


def test_unwritable_output_is_a_one_line_error(simulated, tmp_path):
    _, path = simulated
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    for out in (blocker, blocker / "sub"):
        result = analyze("--votes", path, "--out", out)
        assert result.exit_code == 2, result.output
        assert len(result.output.strip().splitlines()) == 1
        assert str(blocker) in result.output


# ----------------------------------------------------------------------------- --db


def fill_study_db(url: str, frame: pd.DataFrame, mode: str = "live") -> None:
    """Store a simulated export in a fresh study database through the server's schema."""
    from sqlalchemy import insert

    from study_server.models import Item, Participant, Response, Study
    from study_server.schema import init_db, make_engine

    engine = make_engine(url)
    init_db(engine)
    now = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    with engine.begin() as conn:
        conn.execute(
            insert(Study),
            [{"id": 1, "name": "simulated", "public_key": "k" * 16, "mode": mode,
              "secret": "s" * 32, "adapters": "{}"}],
        )
        ids = {pid: i + 1 for i, pid in enumerate(frame["participant_id"].unique())}
        done = frame.groupby("participant_id")["completed"].first()
        conn.execute(
            insert(Participant),
            [{"id": i, "study_id": 1, "public_id": pid, "token": uuid.uuid4().hex,
              "adapter": "link", "entry_nonce": uuid.uuid4().hex, "mode": mode, "seed": i,
              "survey_version": 1, "created_at": now,
              "completed_at": now if done[pid] else None} for pid, i in ids.items()],
        )
        items, responses = [], []
        for r in frame.itertuples(index=False):
            pid = ids[r.participant_id]
            items.append({"participant_id": pid, "position": int(r.question_index),
                          "is_check": bool(r.is_attention_check), "digit": int(r.digit),
                          "slots": json.dumps([[m, int(r.digit), "option"]
                                               for m in str(r.options).split("|") if m])})
            role = ("correct" if r.passed else "distractor") if r.is_attention_check else "option"
            responses.append({"participant_id": pid, "position": int(r.question_index),
                              "choice": int(r.position),
                              "chosen_method": r.chosen_method or "normlime",
                              "chosen_role": role, "answered_at": now,
                              "response_ms": int(r.response_ms)})
        conn.execute(insert(Item), items)
        conn.execute(insert(Response), responses)
    engine.dispose()


def test_db_and_exported_csv_give_the_same_summary(simulated, tmp_path):
    from study_server.exports import VOTE_COLUMNS, vote_rows, write_csv
    from study_server.schema import make_engine

    frame, _ = simulated
    url = f"sqlite:///{tmp_path / 'study.sqlite3'}"
    fill_study_db(url, frame)
    engine = make_engine(url)
    with engine.connect() as conn:
        write_csv(tmp_path / "export.csv", VOTE_COLUMNS, vote_rows(conn))
    engine.dispose()

    via_db = analyze("--db", url, "--out", tmp_path / "db")
    assert via_db.exit_code == 0, via_db.output
    from_db = json.loads((tmp_path / "db" / "summary.json").read_text())
    from_csv = summary_dict(run_analysis(read_votes_csv(tmp_path / "export.csv")))
    assert from_db == json.loads(json.dumps(from_csv))
    _, kept, counts, _ = independent_summary(frame)
    assert from_db["participants"]["kept"] == len(kept)
    assert from_db["votes"] == {m: int(counts[m].sum()) for m in METHODS}


def test_db_reads_live_votes_unless_a_test_mode_is_named(simulated, tmp_path):
    frame, _ = simulated
    url = f"sqlite:///{tmp_path / 'sandbox.sqlite3'}"
    first = frame["participant_id"].unique()[:8]
    fill_study_db(url, frame[frame["participant_id"].isin(first)], mode="sandbox")
    live = analyze("--db", url, "--out", tmp_path / "o")
    assert live.exit_code == 2 and "holds no answers for mode 'live'" in live.output
    sandbox = analyze("--db", url, "--mode", "sandbox", "--out", tmp_path / "o")
    assert sandbox.exit_code == 0, sandbox.output
    assert "'sandbox' mode, not 'live'" in sandbox.output


@pytest.fixture
def postgres_url():
    """A throw-away PostgreSQL database on the workplace server (dropped afterwards)."""
    psycopg = pytest.importorskip("psycopg")
    admin = "postgresql://postgres@127.0.0.1:5432/test"
    try:
        conn = psycopg.connect(admin, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL not reachable: {exc}")
    name = f"analysis_{uuid.uuid4().hex[:12]}"
    conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.close()


@pytest.mark.postgres
def test_db_on_postgresql(simulated, tmp_path, postgres_url):
    frame, _ = simulated
    first = frame["participant_id"].unique()[:40]
    subset = frame[frame["participant_id"].isin(first)]
    fill_study_db(postgres_url, subset)
    result = analyze("--db", postgres_url, "--out", tmp_path / "pg")
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "pg" / "summary.json").read_text())
    _, kept, counts, _ = independent_summary(subset)
    assert summary["participants"]["kept"] == len(kept)
    assert summary["votes"] == {m: int(counts[m].sum()) for m in METHODS}
