"""``normlime reproduce``, ``normlime preregister`` and the analysis package's layering."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from analysis.reproduce import PRESETS, evaluate_claims, to_html
from analysis.study.pipeline import run_analysis
from analysis.study.report import summary_dict
from analysis.study.simulate import PAPER_VOTES, simulate_export
from normlime_cli import cli

REPO = Path(__file__).resolve().parent.parent


def paper_like_summary() -> dict:
    frame = simulate_export(100, random_state=1)
    return json.loads(json.dumps(summary_dict(run_analysis(frame, bootstrap=50))))


def kar_rows(normlime_gain_50, lime_gain_80, normlime_gain_80, conv_normlime_acc=0.992):
    rows = [
        {
            "kind": "baseline",
            "method": "baseline",
            "fraction": "0",
            "accuracy_mean": "0.990",
            "error_gain_mean": "0",
        }
    ]
    for method, gain in (("normlime", normlime_gain_50), ("smoothgrad", 0.4), ("vargrad", 0.3)):
        rows.append(
            {
                "kind": "kar",
                "method": method,
                "fraction": "0.5",
                "accuracy_mean": "0.99",
                "error_gain_mean": str(gain),
            }
        )
    for f, nl, li in ((0.8, normlime_gain_80, lime_gain_80), (0.9, 0.45, 0.6)):
        rows.append(
            {
                "kind": "kar",
                "method": "normlime",
                "fraction": str(f),
                "accuracy_mean": "0.98",
                "error_gain_mean": str(nl),
            }
        )
        rows.append(
            {
                "kind": "kar",
                "method": "lime",
                "fraction": str(f),
                "accuracy_mean": "0.98",
                "error_gain_mean": str(li),
            }
        )
    rows.append(
        {
            "kind": "kar",
            "method": "normlime",
            "fraction": "0.3",
            "accuracy_mean": str(conv_normlime_acc),
            "error_gain_mean": "-0.2",
        }
    )
    return rows


def verdicts(claims):
    return {c["claim"].split(" ")[0] + ":" + c["claim"][:20]: c["verdict"] for c in claims}


def test_claims_follow_their_rules():
    meta = {"test_accuracy": 0.9908, "data": {"n_train": 60000}}
    summary = paper_like_summary()
    rows = kar_rows(0.05, 0.3, 0.0)
    claims = evaluate_claims(meta, summary, False, rows, rows, PRESETS["cpu"])
    by = {c["claim"]: c for c in claims}
    assert all(set(c) == {"claim", "paper", "ours", "verdict", "why"} for c in claims)
    assert by["test accuracy 99.04%"]["verdict"] == "reproduced"
    assert all(c["verdict"] == "reproduced" for c in claims), [
        (c["claim"], c["verdict"], c["ours"]) for c in claims if c["verdict"] != "reproduced"
    ]

    worse = kar_rows(0.5, 0.3, 0.6, conv_normlime_acc=0.985)
    claims = evaluate_claims(
        {"test_accuracy": 0.980, "data": {"n_train": 60000}},
        summary,
        False,
        worse,
        worse,
        PRESETS["cpu"],
    )
    failed = [c["claim"] for c in claims if c["verdict"] == "not reproduced"]
    assert len(failed) == 4 and failed[0] == "test accuracy 99.04%"

    subset = evaluate_claims(
        {"test_accuracy": 0.99, "data": {"n_train": 1500}},
        summary,
        True,
        rows,
        rows,
        PRESETS["smoke"],
    )
    comparable = [c for c in subset if c["verdict"] != "not comparable"]
    assert comparable == []
    assert any("SIMULATED" in c["why"] for c in subset)
    assert any("smoke preset" in c["why"] for c in subset)
    partial = [r for r in rows if r["fraction"] != "0.8"]
    missing = evaluate_claims(meta, summary, False, partial, partial, PRESETS["cpu"])[-1]
    assert missing["verdict"] == "not comparable" and "not both run" in missing["why"]


def test_paper_votes_reproduce_the_study_claims():
    frame = simulate_export(100, random_state=0)
    summary = json.loads(json.dumps(summary_dict(run_analysis(frame, bootstrap=20))))
    assert summary["votes"]["normlime"] > summary["votes"]["lime"]
    claims = evaluate_claims({}, summary, False, None, None, PRESETS["paper"])
    study = {c["claim"][:5]: c["verdict"] for c in claims[1:5]}
    assert set(study.values()) == {"reproduced"}
    assert sum(PAPER_VOTES.values()) == 1660


def test_html_report_stands_alone(tmp_path):
    from PIL import Image

    Image.new("RGB", (4, 4)).save(tmp_path / "a.png")
    page = to_html(
        "# T\n\n> **warn** x < y\n\n| a | b |\n|---|---|\n| 1 | `2` |\n\n![fig](a.png)\n\n- item\n",
        tmp_path,
        "t",
    )
    assert "<h1>T</h1>" in page
    assert "<blockquote>\n<p><strong>warn</strong> x &lt; y</p>\n</blockquote>" in page
    assert "<td><code>2</code></td>" in page and "<li>item</li>" in page
    assert 'src="data:image/png;base64,' in page and "a.png" not in page


def test_html_report_renders_markdown_lists_and_aligned_tables_as_html(tmp_path):
    """The benchmarks' tables carry ``---:`` alignment rows and the analyses write ``*``
    lists; both must come out as HTML, never as literal text or data rows."""
    text = (
        "Settings:\n\n* first\n* second\n\n"
        "| method | error gain |\n|:---|---:|\n| NormLIME | 0.10 |\n| LIME | 0.20 |\n"
    )
    page = to_html(text, tmp_path, "t")
    assert "<ul>\n<li>first</li>\n<li>second</li>\n</ul>" in page
    assert "* first" not in page
    assert "<table>" in page and page.count("<tr>") == 3  # the header and two data rows
    assert "---" not in page and '<td style="text-align: right;">0.10</td>' in page
    assert page.startswith("<!doctype html>") and "<title>t</title>" in page
    assert "<title>a &lt;b&gt;</title>" in to_html(text, tmp_path, "a <b>")  # escaped


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("reproduce") / "out"
    result = CliRunner().invoke(cli, ["reproduce", "--preset", "smoke", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out, result


def test_reproduce_smoke_end_to_end(smoke):
    out, result = smoke
    claims = json.loads((out / "claims.json").read_text())
    assert len(claims) == 9
    assert {c["verdict"] for c in claims} <= {"reproduced", "not reproduced", "not comparable"}
    # the shipped model is the full-MNIST one: its accuracy is a real comparison
    assert claims[0]["verdict"] == "reproduced" and claims[0]["ours"] == "99.08%"
    # so are the shipped stimuli (Figure 1)
    assert claims[1]["claim"].startswith("Figure 1")
    assert claims[1]["verdict"] in ("reproduced", "not reproduced")
    # simulated votes and smoke-sized benchmarks are never passed off as evidence
    assert all(c["verdict"] == "not comparable" for c in claims[2:])
    report = (out / "report.md").read_text()
    assert "SIMULATED STUDY" in report and "## Claims" in report
    for figure in (
        "maps/montage.png",
        "study/choice_model.png",
        "kar-pixels/kar.png",
        "kar-conv/kar.png",
        "occlusion/occlusion.png",
    ):
        assert (out / figure).is_file(), figure
        assert f"]({figure})" in report
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") >= 5
    assert "reproduced" in result.output


def test_reproduce_shows_each_long_steps_progress_unless_told_not_to(smoke):
    _out, result = smoke  # run with the default --progress
    assert "kar" in result.stderr and "100%" in result.stderr, result.stderr[-2000:]


def test_reproduce_resumes_without_redoing_the_work(smoke):
    out, _ = smoke
    jobs = {p: p.stat().st_mtime for p in out.glob("kar-*/kar-jobs.jsonl")}
    again = CliRunner().invoke(
        cli, ["reproduce", "--preset", "smoke", "--out", str(out), "--no-progress"]
    )
    assert again.exit_code == 0, again.output
    assert "100%" not in again.stderr
    assert jobs and {p: p.stat().st_mtime for p in jobs} == jobs
    assert json.loads((out / "claims.json").read_text())[0]["verdict"] == "reproduced"


def test_reproduce_bad_input(tmp_path):
    result = CliRunner().invoke(
        cli,
        [
            "reproduce",
            "--preset",
            "smoke",
            "--votes",
            str(tmp_path / "none.csv"),
            "--out",
            str(tmp_path / "o"),
        ],
    )
    assert result.exit_code == 2 and "not found" in result.output
    assert not (tmp_path / "o").exists()


def test_preregister_writes_the_sections_forms_ask_for(tmp_path):
    power = tmp_path / "power"
    ran = CliRunner().invoke(
        cli,
        [
            "power",
            "--shares",
            "0.566,0.264,0.079,0.091",
            "--simulations",
            "100",
            "--out",
            str(power),
        ],
    )
    assert ran.exit_code == 0, ran.output
    out = tmp_path / "prereg.md"
    result = CliRunner().invoke(
        cli,
        [
            "preregister",
            "--study",
            "replication-1",
            "--power-json",
            str(power / "power.json"),
            "--maps",
            str(REPO / "assets" / "maps" / "mnist"),
            "--exclude-speeders",
            "800",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    text = out.read_text()
    for section in (
        "Hypotheses",
        "Dependent variable",
        "Conditions",
        "Analyses",
        "Outliers and exclusions",
        "Sample size",
        "Other",
    ):
        assert f". {section}" in text
    needed = json.loads((power / "power.json").read_text())["participants_needed"]
    assert f"Planned: {needed} kept participants" in text
    assert "below 800 ms are excluded" in text and "--exclude-speeders 800" in text
    assert "conditional logit" in text and "1000 resamples, seed 0" in text

    bad = CliRunner().invoke(
        cli,
        [
            "preregister",
            "--study",
            "s",
            "--power-json",
            str(tmp_path / "prereg.md"),
            "--out",
            str(tmp_path / "x.md"),
        ],
    )
    assert bad.exit_code == 2 and "not readable JSON" in bad.output


def test_preregister_reads_the_study_record(tmp_path):
    db = f"sqlite:///{tmp_path / 'study.sqlite3'}"
    runner = CliRunner()
    assert runner.invoke(cli, ["init-db", "--db", db]).exit_code == 0
    made = runner.invoke(cli, ["create-study", "--db", db, "--name", "rep", "--mode", "debug"])
    assert made.exit_code == 0, made.output
    out = tmp_path / "p.md"
    ok = runner.invoke(cli, ["preregister", "--study", "rep", "--db", db, "--out", str(out)])
    assert ok.exit_code == 0, ok.output
    assert "Study record: mode `debug`" in out.read_text()
    missing = runner.invoke(cli, ["preregister", "--study", "nope", "--db", db, "--out", str(out)])
    assert missing.exit_code == 2 and "no study named 'nope'" in missing.output


def test_the_statistics_never_import_the_server_or_torch():
    code = (
        "import sys\n"
        "import analysis.study.pipeline, analysis.study.report, analysis.study.power\n"
        "import analysis.study.preregister, analysis.study.robustness\n"
        "print(sorted(m for m in ('study_server', 'torch', 'explainers') if m in sys.modules))"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "['explainers']"  # explainers.bundle's method names only
    for path in (REPO / "analysis" / "study").glob("*.py"):
        if path.name != "cli.py":
            assert "study_server" not in path.read_text(), path.name
    assert not list((REPO / "analysis").glob("kar.py"))  # the benchmarks have their package


def test_the_figure_1_claim_follows_the_stimulus_flags(tmp_path):
    """Issue 20, item 6: NormLIME visibly differs from LIME and shows the digit, judged by
    the inspect-maps flags on bundles built to pass and to fail."""
    import numpy as np

    from explainers.bundle import write_bundle
    from explainers.inspect import inspect_bundle
    from tests.test_stimuli import _clean_maps, _digits_with_support

    images, labels, corners = _digits_with_support()
    meta = {"test_accuracy": 0.9908, "data": {"n_train": 60000}}
    summary = paper_like_summary()

    def verdict(maps, name):
        write_bundle(tmp_path / name, maps)
        report = inspect_bundle(tmp_path / name, images=images, labels=labels)
        claims = evaluate_claims(meta, summary, False, None, None, PRESETS["cpu"], report)
        return next(c for c in claims if c["claim"].startswith("Figure 1"))

    clean = _clean_maps(corners)
    good = verdict(clean, "clean")
    assert good["verdict"] == "reproduced", good
    copies = {**clean, "lime": clean["normlime"] * 2.0}
    assert verdict(copies, "copies")["verdict"] == "not reproduced"
    framed = {**clean, "normlime": clean["normlime"].copy()}
    framed["normlime"][3, -3:, :] = 5.0  # a bright bar in the empty frame of digit 3
    bad = verdict(framed, "framed")
    assert bad["verdict"] == "not reproduced" and "NormLIME [3]" in bad["ours"]
    no_support = evaluate_claims(meta, summary, False, None, None, PRESETS["cpu"],
                                 inspect_bundle(tmp_path / "clean"))  # fmt: skip
    fig = next(c for c in no_support if c["claim"].startswith("Figure 1"))
    assert fig["verdict"] == "not comparable"
    assert np.isfinite(good["why"].count("0.9"))
