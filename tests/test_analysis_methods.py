"""The analysis with any methods, classes and survey length (issue 13, "Beyond MNIST").

The exports here are built row by row from a stated model, independently of
``analysis.study.simulate``: a study of three methods under their own names, five
classes, 6 real questions and 2 attention checks per participant, where one method is
chosen three times as often as each other one.
"""

from __future__ import annotations

import json
from itertools import combinations

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from scipy import stats as sps

from analysis.study.attention import pass_threshold, select_participants
from analysis.study.pipeline import run_analysis
from analysis.study.report import COLOURS, PALETTE, display_name, method_colours, summary_dict
from analysis.study.simulate import simulate_export
from analysis.study.votes import (
    METHODS,
    SurveyCounts,
    VotesError,
    order_methods,
    validate_votes,
)
from normlime_cli import cli

THREE = ("normlime", "integrated_gradients", "saliency")  # the inference order
FAVOURITE = "integrated_gradients"
REAL, CHECKS, CLASSES = 6, 2, 5


def participant(pid, methods, rng, failed_checks=0, answers=REAL + CHECKS, weight=3.0):
    """One participant's rows: checks at random positions, each real question showing
    every method once in a random order, the favourite ``weight`` times as attractive."""
    kinds = rng.permutation([False] * REAL + [True] * CHECKS)
    fails = set(rng.choice(CHECKS, size=failed_checks, replace=False).tolist())
    attraction = np.array([weight if m == FAVOURITE else 1.0 for m in methods])
    rows, real_i, check_i = [], 0, 0
    for q, is_check in enumerate(kinds[:answers], start=1):
        row = {"participant_id": pid, "question_index": q}
        if is_check:
            row.update(
                is_attention_check="true",
                digit=int(rng.integers(CLASSES)),
                chosen_method="",
                passed="false" if check_i in fails else "true",
                position="",
                options="",
            )
            check_i += 1
        else:
            order = rng.permutation(len(methods))
            p = attraction[order] / attraction[order].sum()
            slot = int(rng.choice(len(methods), p=p))
            row.update(
                is_attention_check="false",
                digit=real_i % CLASSES,
                chosen_method=methods[order[slot]],
                passed="",
                position=slot + 1,
                options="|".join(methods[i] for i in order),
            )
            real_i += 1
        rows.append(row)
    return rows


def study_export(methods=THREE, n=40, seed=0) -> pd.DataFrame:
    """``n`` complete surveys (every tenth fails both checks, every tenth + 1 fails one)
    and two incomplete ones; the row order of the methods is the caller's."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        failed = 2 if i % 10 == 0 else 1 if i % 10 == 1 else 0
        rows += participant(f"p{i:03d}", methods, rng, failed_checks=failed)
    for i in range(2):
        rows += participant(f"short{i}", methods, rng, answers=4)
    return pd.DataFrame(rows).astype(str)


def expected_kept(n=40) -> set[str]:
    return {f"p{i:03d}" for i in range(n) if i % 10 != 0}


def independent_proportions(raw: pd.DataFrame, methods) -> pd.DataFrame:
    real = raw[(raw["is_attention_check"] == "false") & raw["participant_id"].isin(expected_kept())]
    counts = pd.crosstab(real["participant_id"], real["chosen_method"])
    counts = counts.reindex(columns=list(methods), fill_value=0)
    return counts.div(counts.sum(axis=1), axis=0)


# ------------------------------------------------------------------ methods and design


def test_methods_are_read_from_the_data_in_the_stated_order():
    shuffled = ("saliency", "integrated_gradients", "normlime")  # as the rows list them
    raw = study_export(shuffled)
    votes = validate_votes(raw)
    assert votes.methods == THREE and votes.methods_source == "options"
    assert votes.warnings == []
    from_choices = validate_votes(raw.drop(columns=["options"]))
    assert from_choices.methods == THREE and from_choices.methods_source == "chosen_method"
    assert any("no options column" in w for w in from_choices.warnings)
    given = validate_votes(raw, methods=shuffled)  # the caller's order is kept
    assert given.methods == shuffled and given.methods_source == "given"
    assert order_methods({"zeta", "vargrad", "alpha", "lime"}) == (
        "lime",
        "vargrad",
        "alpha",
        "zeta",
    )


def test_the_survey_design_is_read_from_the_complete_surveys():
    votes = validate_votes(study_export())
    assert votes.design == SurveyCounts(REAL, CHECKS, classes=None)
    assert votes.design_source == "inferred"
    assert sorted(votes.table["digit"].dropna().unique()) == list(range(CLASSES))
    paper = validate_votes(simulate_export(5, random_state=1))
    assert paper.design == SurveyCounts() and paper.design_source == "paper"


def test_methods_and_design_given_by_the_caller_are_checked():
    raw = study_export()
    with pytest.raises(VotesError, match="'integrated_gradients'.*one of normlime, saliency"):
        validate_votes(raw, methods=("normlime", "saliency"))
    with pytest.raises(VotesError, match="must list the 4 methods"):
        validate_votes(raw, methods=(*THREE, "lime"))
    with pytest.raises(VotesError, match="must be distinct"):
        validate_votes(raw, methods=("normlime", "saliency", "NormLIME"))
    with pytest.raises(VotesError, match=r"must hold whole numbers in 0\.\.3"):
        validate_votes(raw, SurveyCounts(REAL, CHECKS, classes=4))
    with pytest.raises(VotesError, match="more answers than the survey has"):
        validate_votes(raw, SurveyCounts(5, CHECKS, classes=None))
    one = raw[raw["chosen_method"].isin(["", "saliency"])].drop(columns=["options"])
    with pytest.raises(VotesError, match="at least two methods"):
        validate_votes(one)


def test_pass_threshold_is_every_check_but_one():
    assert [pass_threshold(SurveyCounts(6, c)) for c in (0, 1, 2, 5, 8)] == [0, 0, 1, 4, 7]
    votes = validate_votes(study_export())
    sel = select_participants(votes)
    assert sel.min_checks == 1
    p = sel.participants
    assert set(p.index[p["kept"]]) == expected_kept()
    assert (p.loc[[f"p{i:03d}" for i in range(0, 40, 10)], "reason"] == "attention").all()
    assert (p.loc[["short0", "short1"], "reason"] == "incomplete").all()
    assert "passed 0 of 2 attention checks; at least 1 required" in p.loc["p000", "detail"]
    strict = select_participants(votes, min_checks=2)  # an explicit threshold still wins
    assert set(strict.participants.index[strict.participants["kept"]]) == {
        f"p{i:03d}" for i in range(40) if i % 10 > 1
    }


# ------------------------------------------------------------------ the whole analysis


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    folder = tmp_path_factory.mktemp("three")
    raw = study_export()
    raw.to_csv(folder / "votes.csv", index=False)
    result = CliRunner().invoke(
        cli,
        [
            "analyze",
            "--votes",
            str(folder / "votes.csv"),
            "--out",
            str(folder / "out"),
            "--bootstrap",
            "100",
        ],
    )
    assert result.exit_code == 0, result.output
    return raw, folder / "out", result.output


def test_three_methods_end_to_end(analysed):
    raw, out, console = analysed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["participants"] == {"total": 42, "kept": 36, "excluded": 6}
    assert list(summary["votes"]) == list(THREE)
    assert sum(summary["votes"].values()) == 36 * REAL
    assert max(summary["votes"], key=summary["votes"].get) == FAVOURITE

    props = independent_proportions(raw, THREE)
    f_ref = sps.f_oneway(*(props[m].to_numpy() for m in THREE))
    assert summary["anova"]["F"] == pytest.approx(f_ref.statistic, rel=1e-12)
    assert summary["anova"]["p"] == pytest.approx(f_ref.pvalue, rel=1e-9)
    assert summary["anova"]["p"] < 0.01
    assert (summary["anova"]["df_between"], summary["anova"]["df_within"]) == (2, 3 * 36 - 3)

    tukey = {(r["group1"], r["group2"]): r for r in summary["tukey"]}
    assert list(tukey) == list(combinations(sorted(THREE), 2))
    assert tukey[("integrated_gradients", "normlime")]["reject"]
    assert tukey[("integrated_gradients", "saliency")]["reject"]
    assert summary["rm_anova"]["ratio_to_one_way"] == pytest.approx(2 / 3)
    assert set(summary["friedman"]["mean_ranks"]) == set(THREE)
    assert summary["position_bias"]["df"] == 2 and len(summary["position_bias"]["counts"]) == 3

    model = summary["choice_model"]
    assert model["reference"] == "saliency"  # no lime: the last method
    assert set(model["coef"]) == set(THREE) and model["coef"]["saliency"] == 0.0
    assert model["coef"][FAVOURITE] > 0.5  # planted log(3) = 1.1
    assert set(model["position_coef"]) == {"1", "2", "3"}
    assert "integrated_gradients" in console and "saliency" in console


def test_three_methods_report_and_details(analysed):
    _, out, _ = analysed
    details = json.loads((out / "details.json").read_text())
    settings = details["settings"]
    assert settings["methods"] == list(THREE) and settings["methods_source"] == "options"
    assert (settings["real_questions"], settings["attention_checks"]) == (REAL, CHECKS)
    assert settings["design_source"] == "inferred" and settings["min_checks"] == 1
    assert set(details["proportions"]) == set(THREE)
    assert set(details["votes_by_digit"]) == {str(c) for c in range(CLASSES)}
    assert all(set(row) == set(THREE) for row in details["votes_by_digit"].values())
    report = (out / "report.md").read_text()
    assert "integrated_gradients" in report and "NormLIME" in report
    assert "SmoothGrad" not in report and "VarGrad" not in report
    assert "three maps on the screen" in report and "three pairs" in report
    assert "at least 1 of 2 attention checks passed" in report
    columns = pd.read_csv(out / "proportions.csv").columns
    assert [c for c in columns if not c.startswith("votes_") and c != "participant_id"] == list(
        THREE
    )
    for figure in ("votes.png", "proportions.png", "choice_model.png", "digits.png"):
        assert (out / figure).stat().st_size > 1000


def test_two_methods_run_too():
    pair = ("saliency", FAVOURITE)
    raw = study_export(pair, seed=4)
    analysis = run_analysis(raw, bootstrap=50)
    assert analysis.methods == (FAVOURITE, "saliency")
    props = independent_proportions(raw, analysis.methods)
    f_ref = sps.f_oneway(*(props[m].to_numpy() for m in analysis.methods))
    anova = analysis.anova
    assert (anova.F, anova.p) == pytest.approx((f_ref.statistic, f_ref.pvalue), rel=1e-9)
    assert anova.df_between == 1 and anova.p < 0.01
    assert [(r["group1"], r["group2"]) for r in analysis.tukey] == [(FAVOURITE, "saliency")]
    assert analysis.rm_anova["ratio_to_one_way"] == pytest.approx(0.5)
    assert "three or more" in analysis.friedman["note"]
    assert analysis.choice_model.reference == "saliency"
    assert analysis.choice_model.coef[FAVOURITE] > 0
    summary = summary_dict(analysis)
    assert list(summary["votes"]) == [FAVOURITE, "saliency"]
    from analysis.study.report import render_markdown

    report = render_markdown(analysis)
    assert "single pair" in report and "Friedman test: not run" in report


# ------------------------------------------------------------------ the paper's four


def test_the_papers_four_methods_give_the_same_numbers_given_or_read():
    raw = simulate_export(30, random_state=5)
    read = run_analysis(raw, bootstrap=20)
    given = run_analysis(raw, bootstrap=20, methods=METHODS, design=SurveyCounts(), min_checks=4)
    assert read.methods == METHODS and read.votes.methods_source == "options"
    assert read.selection.min_checks == 4 and read.choice_model.reference == "lime"
    assert summary_dict(read) == summary_dict(given)
    nobody = raw.drop(columns=["options"]).replace({"chosen_method": {"vargrad": "lime"}})
    assert validate_votes(nobody).methods == METHODS  # a method nobody chose keeps its 0 votes


def test_names_and_colours_of_methods_the_paper_did_not_have():
    assert display_name("lime") == "LIME" and display_name("saliency") == "saliency"
    colours = method_colours(("normlime", "integrated_gradients", "saliency"))
    assert colours == {
        "normlime": COLOURS["normlime"],
        "integrated_gradients": PALETTE[0],
        "saliency": PALETTE[1],
    }
    assert method_colours(("saliency", "lime"))["saliency"] == PALETTE[0]
    assert not set(PALETTE) & set(COLOURS.values())


# ------------------------------------------------------------------ the commands


def test_power_contrast_is_checked_against_the_studys_methods(tmp_path):
    path = tmp_path / "pilot.csv"
    study_export().to_csv(path, index=False)
    bad = CliRunner().invoke(
        cli, ["power", "--pilot", str(path), "--contrast", "normlime:lime", "--out", str(tmp_path)]
    )
    assert bad.exit_code == 2
    assert "from normlime, integrated_gradients, saliency" in bad.output
    shares = CliRunner().invoke(
        cli,
        [
            "power",
            "--shares",
            "0.5,0.5",
            "--methods",
            "a,b",
            "--contrast",
            "a:c",
            "--out",
            str(tmp_path),
        ],
    )
    assert shares.exit_code == 2 and "from a, b; got 'a:c'" in shares.output


def test_power_and_preregister_for_a_three_method_study(tmp_path):
    path = tmp_path / "pilot.csv"
    study_export().to_csv(path, index=False)
    ran = CliRunner().invoke(
        cli,
        [
            "power",
            "--pilot",
            str(path),
            "--simulations",
            "100",
            "--max-participants",
            "12",
            "--out",
            str(tmp_path / "power"),
        ],
    )
    assert ran.exit_code == 0, ran.output
    power = json.loads((tmp_path / "power" / "power.json").read_text())
    assert power["contrast"] == "normlime:saliency"
    assert power["model"]["methods"] == list(THREE) and power["model"]["questions"] == REAL
    assert power["pilot"]["min_checks"] == 1 and "F(2, n - 2)" in power["omnibus"]["test"]
    prereg = CliRunner().invoke(
        cli,
        [
            "preregister",
            "--study",
            "pets",
            "--power-json",
            str(tmp_path / "power" / "power.json"),
            "--real-questions",
            "6",
            "--attention-checks",
            "2",
            "--out",
            str(tmp_path / "p.md"),
        ],
    )
    assert prereg.exit_code == 0, prereg.output
    text = (tmp_path / "p.md").read_text()
    assert "all three methods: NormLIME, integrated_gradients, saliency" in text
    assert "F(2, G - 2)" in text and "at least 1 of 2 attention checks" in text
    assert "--methods normlime,integrated_gradients,saliency" in text
    assert "SmoothGrad" not in text
