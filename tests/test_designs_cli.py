"""``normlime analyze --responses`` end to end: a simulated export of each task through the
command, checked against an independent filter and fit; bad input is one line, exit 2,
nothing written."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from PIL import Image

from analysis.designs import glmm
from analysis.designs.simulate import simulate_responses
from normlime_cli import cli

CONDITIONS = ("none", "normlime", "lime")
MODEL_KEYS = {"baseline", "coef", "ci", "accuracy", "n_participants", "n_items"}


def analyze(*args):
    return CliRunner().invoke(cli, ["analyze", *map(str, args)])


def export(task="forward", n=90, seed=11, **kwargs):
    kwargs = {"conditions": CONDITIONS, "odds_ratios": {"normlime": 2.5}} | kwargs
    return simulate_responses(n, task=task, random_state=seed, **kwargs)


def write(frame: pd.DataFrame, path) -> None:
    """As a server would write it: true/false, empty for missing."""
    out = frame.copy()
    out["completed"] = out["completed"].map({True: "true", False: "false"})
    out.to_csv(path, index=False)


def independent(frame: pd.DataFrame):
    """Who is kept and their test answers, by plain pandas from the raw rows."""
    checks = frame[frame["phase"] == "check"].groupby("participant")["correct"].agg(["size", "sum"])
    completed = frame.groupby("participant")["completed"].first()
    n_checks = checks.loc[completed[completed].index, "size"].mode()[0]
    passed = checks["sum"].reindex(completed.index, fill_value=0)
    kept = completed.index[completed & (passed >= n_checks - 1)]
    test = frame[(frame["phase"] == "test") & frame["participant"].isin(kept)]
    return kept, test


@pytest.fixture(scope="module", params=["forward", "distinction", "agreement"])
def run(request, tmp_path_factory):
    task = request.param
    extra = {"odds_ratios_model_wrong": {"normlime": 0.4}} if task == "agreement" else {}
    frame = export(task, n=120, seed=16, **extra)
    folder = tmp_path_factory.mktemp(task)
    write(frame, folder / "responses.csv")
    chance = ["--chance", "0.1"] if task == "forward" else []
    result = analyze("--responses", folder / "responses.csv", *chance, "--out", folder / "out")
    assert result.exit_code == 0, result.output
    return task, frame, folder / "out", result.output


def test_summary_against_an_independent_filter_and_fit(run):
    task, frame, out, stdout = run
    summary = json.loads((out / "summary.json").read_text())
    kept, test = independent(frame)
    assert summary["task"] == task and summary["baseline"] == "none"
    assert summary["participants"]["kept"] == len(kept)
    assert summary["participants"]["total"] == frame["participant"].nunique()
    model = summary["accuracy_model"]
    assert set(model) >= MODEL_KEYS
    assert model["n_participants"] == len(kept) and model["n_items"] == test["item"].nunique()
    shares = test.groupby("condition")["correct"].mean()
    for c in CONDITIONS:
        assert model["accuracy"][c] == pytest.approx(shares[c], abs=1e-12)
    # the fit, rebuilt here from the independently filtered rows
    _, participant = np.unique(test["participant"], return_inverse=True)
    _, item = np.unique(test["item"], return_inverse=True)
    cond = test["condition"].to_numpy()
    X = np.column_stack([np.ones(len(test)), cond == "normlime", cond == "lime"]).astype(float)
    fit = glmm.fit_glmm(test["correct"].to_numpy(float), X, participant, item)
    for k, c in enumerate(("normlime", "lime"), start=1):
        assert model["coef"][c] == pytest.approx(fit.beta[k], abs=1e-6)
        lo, hi = model["ci"][c]
        assert (hi - lo) / 2 == pytest.approx(1.959964 * fit.se[k], rel=1e-4)
    assert model["bootstrap"] is None  # off unless --bootstrap is given
    # the simulated effect (odds ratio 2.5 for NormLIME) is found, LIME's null is not
    assert model["ci"]["normlime"][0] > 0 and model["ci"]["lime"][0] < 0 < model["ci"]["lime"][1]
    assert summary["conclusion"]["better"] == ["normlime"]
    assert "normlime: correct more often than none" in stdout
    chance = {"forward": 0.1, "distinction": 0.25, "agreement": 0.5}[task]
    assert summary["chance"]["value"] == chance
    assert [row["condition"] for row in summary["accuracy"]] == list(CONDITIONS)


def test_report_says_what_a_reader_may_conclude(run):
    task, _, out, _ = run
    report = (out / "report.md").read_text()
    target = {"forward": "predicted the model's answer", "distinction": "picked the prediction",
              "agreement": "judged correctly whether the model was right"}[task]  # fmt: skip
    assert f"Participants shown NormLIME {target}" in report
    assert "more often than those shown no explanation: odds ratio" in report
    assert "LIME did not differ from the baseline beyond chance" in report
    assert "## Primary analysis: a logistic mixed model" in report
    assert "![Accuracy by condition](accuracy.png)" in report
    with Image.open(out / "accuracy.png") as image:
        assert image.format == "PNG" and image.size[0] > 300
    if task == "agreement":
        summary = json.loads((out / "summary.json").read_text())
        agreement = summary["agreement"]
        assert set(agreement["by_model_correct"]) == {"model_right", "model_wrong"}
        wrong = agreement["by_model_correct"]["model_wrong"]
        assert wrong["coef"]["normlime"] < 0  # simulated: odds ratio 0.4 on wrong predictions
        assert "## Right and wrong predictions (agreement)" in report
        assert "raised confidence in the model's" in report or "did not raise confidence" in report
    exclusions = pd.read_csv(out / "exclusions.csv")
    assert set(exclusions["reason"]) <= {"incomplete", "attention"}


def test_fresh_interpreter_no_torch(tmp_path):
    """The real entry point, as a user runs it: no torch import, exit 0."""
    write(export("distinction", n=45, seed=3), tmp_path / "r.csv")
    code = (
        "import sys\nfrom normlime_cli import main\ntry:\n"
        f"    main(['analyze', '--responses', {str(tmp_path / 'r.csv')!r}, '--out', "
        f"{str(tmp_path / 'o')!r}])\n"
        "except SystemExit as exc:\n    assert not exc.code, exc.code\n"
        "print('torch imported:', 'torch' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "torch imported: False" in done.stdout
    assert (tmp_path / "o" / "summary.json").is_file()


def test_bootstrap_baseline_and_modes(tmp_path):
    frame = export("distinction", n=60, seed=5)
    debug = export("distinction", n=12, seed=6, mode="debug")
    debug["participant"] = "d" + debug["participant"]
    write(pd.concat([frame, debug]), tmp_path / "r.csv")
    result = analyze("--responses", tmp_path / "r.csv", "--bootstrap", "20", "--seed", "3",
                     "--baseline", "lime", "--out", tmp_path / "o")  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["participants"]["total"] == 60  # the debug rows were left out ...
    assert "recorded in debug or sandbox mode" in result.output  # ... with a warning
    model = summary["accuracy_model"]
    assert model["baseline"] == "lime" and set(model["coef"]) == {"none", "normlime"}
    assert model["bootstrap"]["n"] == 20 and model["bootstrap"]["seed"] == 3
    assert set(model["bootstrap"]["ci"]) == {"none", "normlime"}
    only_debug = analyze("--responses", tmp_path / "r.csv", "--mode", "debug",
                         "--out", tmp_path / "d")  # fmt: skip
    assert only_debug.exit_code == 0, only_debug.output
    assert json.loads((tmp_path / "d" / "summary.json").read_text())["participants"]["total"] == 12


def _set(column, value, rows="first"):
    """Set ``column`` on the first test row, on every row ("all") or on the checks."""

    def edit(f):
        f = f.copy()
        f[column] = f[column].astype(object)
        if rows == "first":
            f.loc[f.index[f["phase"] == "test"][0], column] = value
        else:
            f.loc[(f["phase"] == "check") if rows == "checks" else f.index, column] = value
        return f

    return edit


def _two_conditions(f):
    f = f.copy()
    i = f.index[(f["participant"] == "p00001") & (f["phase"] == "test")][0]
    f.loc[i, "condition"] = "lime" if f.loc[i, "condition"] != "lime" else "none"
    return f


BAD = [
    (lambda f: f.drop(columns=["model_correct"]), "lacks required column(s) model_correct"),
    (_set("correct", 2), "column 'correct' must hold whole numbers in 0..1"),
    (_set("task", "distinction"), "the export mixes tasks"),
    (_set("task", "preference", "all"), "unknown task 'preference'"),
    (_set("phase", "practice"), "column 'phase' must be one of learn, test, check"),
    (lambda f: f.replace({"condition": {"none": "control"}}), "no condition 'none'"),
    (lambda f: f[f["condition"] == "none"], "at least two conditions"),
    (_two_conditions, "answered in more than one condition"),
    (lambda f: pd.concat([f, f.iloc[[3]]]), "duplicated answers"),
    (_set("mode", "debug", "all"), "every answer was recorded in 'debug'"),
    (_set("study", "other"), "mixes 2 study values"),
    (_set("correct", 1, "checks"), None),  # a valid edit, for contrast: everybody passes
    (_set("correct", 0, "checks"), "too few kept participants"),
    (_set("completed", "maybe"), "column 'completed' must be true/false"),
]


@pytest.mark.parametrize(("edit", "message"), BAD)
def test_bad_input_exits_2_with_one_line(tmp_path, edit, message):
    write_frame = edit(export("forward", n=45, seed=2))
    out = tmp_path / "out"
    path = tmp_path / "bad.csv"
    frame = write_frame.copy()
    if frame["completed"].dtype == bool:
        write(frame, path)
    else:
        frame.to_csv(path, index=False)
    result = analyze("--responses", path, "--chance", "0.1", "--out", out)
    if message is None:
        assert result.exit_code == 0, result.output
        return
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], lines
    assert not out.exists()


@pytest.mark.parametrize(
    ("task", "column", "value", "message"),
    [
        ("distinction", "response", 5, "column 'response' must hold whole numbers in 1..4"),
        ("agreement", "correct", None, "contradicts their confidence and model_correct"),
        ("agreement", "model_correct", "", "column 'model_correct' must hold whole numbers"),
    ],
)
def test_task_specific_errors(tmp_path, task, column, value, message):
    frame = export(task, n=30, seed=4)
    row = frame.index[frame["phase"] == "test"][0]
    frame[column] = frame[column].astype(object)
    frame.loc[row, column] = 1 - frame.loc[row, column] if value is None else value
    write(frame, tmp_path / "bad.csv")
    result = analyze("--responses", tmp_path / "bad.csv", "--out", tmp_path / "out")
    assert result.exit_code == 2 and message in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--votes", "v.csv"], "exactly one of --db URL or --votes CSV or --responses CSV"),
        (["--methods", "a,b"], "--methods belongs to the votes analysis"),
        (["--chance", "1.5"], "--chance must be between 0 and 1"),
        (["--baseline", "gradcam"], "--baseline 'gradcam' is not a condition"),
        (["--min-checks", "9"], "--min-checks must be between 0 and 3"),
        (["--exclude-speeders", "100000"], "too few kept participants"),
    ],
)
def test_bad_options_exit_2(tmp_path, args, message):
    write(export("forward", n=30, seed=8), tmp_path / "r.csv")
    result = analyze("--responses", tmp_path / "r.csv", *args, "--out", tmp_path / "out")
    assert result.exit_code == 2 and message in result.output, result.output
    assert not (tmp_path / "out").exists()


def test_missing_file_and_options_without_responses(tmp_path):
    missing = analyze("--responses", tmp_path / "nope.csv", "--out", tmp_path / "o")
    assert missing.exit_code == 2 and "responses file not found" in missing.output
    stray = analyze("--votes", tmp_path / "v.csv", "--baseline", "none", "--out", tmp_path / "o")
    assert stray.exit_code == 2 and "--baseline and --chance go with --responses" in stray.output
    assert not (tmp_path / "o").exists()
