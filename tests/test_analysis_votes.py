"""Loading, validating and filtering the votes export (analysis.study: votes, attention)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.study.attention import select_participants
from analysis.study.pipeline import run_analysis
from analysis.study.stats import position_bias
from analysis.study.votes import (
    METHODS,
    SurveyCounts,
    VotesError,
    read_votes_csv,
    restrict_rows,
    validate_votes,
)


def participant_rows(
    pid: str,
    votes: tuple[int, int, int, int] = (10, 6, 2, 2),
    checks_passed: int = 5,
    answers: int = 25,
    completed: bool | None = None,
) -> list[dict]:
    """One participant's export rows: checks at questions 1, 6, 11, 16, 21 (1-based)."""
    methods = [m for m, c in zip(METHODS, votes, strict=True) for _ in range(c)]
    rows, real_i, check_i = [], 0, 0
    for q in range(1, 26):
        is_check = q % 5 == 1
        row = {
            "participant_id": pid,
            "question_index": str(q),
            "is_attention_check": "true" if is_check else "false",
            "digit": str(q % 10),
            "chosen_method": "" if is_check else methods[real_i],
            "passed": ("true" if check_i < checks_passed else "false") if is_check else "",
            "position": str(q % 4),
        }
        if completed is not None:
            row["completed"] = "true" if completed else "false"
        if is_check:
            check_i += 1
        else:
            real_i += 1
        rows.append(row)
    return rows[:answers]


def export(*participants: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([row for rows in participants for row in rows]).astype(str)


def good_export() -> pd.DataFrame:
    return export(
        participant_rows("a", (12, 5, 2, 1)),
        participant_rows("b", (9, 7, 3, 1), checks_passed=4),
        participant_rows("c", (11, 4, 1, 4)),
    )


# ----------------------------------------------------------------------------- validation


def test_clean_export_is_typed():
    votes = validate_votes(good_export())
    table = votes.table
    assert len(table) == 75 and votes.has_position and not votes.has_completed
    assert table["is_attention_check"].sum() == 15
    assert set(table.loc[~table["is_attention_check"], "chosen_method"]) <= set(METHODS)
    assert (table.loc[table["is_attention_check"], "chosen_method"] == "").all()
    assert table["question_index"].dtype == np.int64
    assert votes.warnings == []


@pytest.mark.parametrize(
    ("true", "false"), [("true", "false"), ("True", "False"), ("1", "0"), ("TRUE", "FALSE")]
)
def test_boolean_spellings_give_identical_results(true, false):
    raw = good_export()
    for column in ("is_attention_check", "passed"):
        raw[column] = raw[column].replace({"true": true, "false": false})
    reference = validate_votes(good_export()).table
    pd.testing.assert_frame_equal(validate_votes(raw).table, reference)


def test_method_names_are_case_and_space_insensitive():
    raw = good_export()
    raw["chosen_method"] = raw["chosen_method"].str.upper().radd(" ")
    assert validate_votes(raw).table["chosen_method"].isin([*METHODS, ""]).all()


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: r.drop(columns=["passed", "digit"]), "lacks required column(s) digit, passed"),
        (lambda r: r.iloc[:0], "no answers"),
        (lambda r: r.assign(chosen_method=r.chosen_method.replace("vargrad", "")),
         "real-question row(s) have no chosen_method"),
        (lambda r: r.assign(passed=r.passed.replace("false", "")),
         "column 'passed' must be true/false"),
        (lambda r: r.assign(is_attention_check=r.is_attention_check.replace("false", "no?")),
         "column 'is_attention_check' must be true/false"),
        (lambda r: r.assign(question_index=r.question_index.replace("7", "7.5")),
         "column 'question_index' must hold whole numbers"),
        (lambda r: r.assign(digit=r.digit.replace("3", "12")), "column 'digit' must hold"),
        (lambda r: r.assign(position=r.position.replace("2", "4")), "holds both 0 and 4"),
        (lambda r: r.assign(position=r.position.replace("2", "5")), "column 'position' must"),
        (lambda r: r.assign(participant_id=r.participant_id.replace("c", " ")),
         "have no participant_id"),
        (lambda r: pd.concat([r, r.iloc[[3]]]), "duplicated answers: 1 (participant, question)"),
        (lambda r: r.assign(study=["s1"] * 50 + ["s2"] * 25), "mixes 2 study values"),
        (lambda r: r.assign(mode=["live"] * 50 + ["debug"] * 25), "mixes 2 mode values"),
    ],
)
def test_bad_exports_raise_one_readable_error(mutate, message):
    with pytest.raises(VotesError) as info:
        validate_votes(mutate(good_export()))
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_a_name_outside_the_given_methods_is_refused_and_otherwise_counts_as_a_method():
    raw = good_export().assign(
        chosen_method=lambda r: r.chosen_method.replace("lime", "gradcam")
    )
    with pytest.raises(VotesError, match=r"unknown method name\(s\) 'gradcam'"):
        validate_votes(raw, methods=METHODS)
    votes = validate_votes(raw)  # no options column: the chosen names are the methods
    assert votes.methods == ("normlime", "smoothgrad", "vargrad", "gradcam")
    assert votes.methods_source == "chosen_method"
    assert any("misspelt" in w for w in votes.warnings)


def test_participant_with_more_answers_than_the_survey_is_an_error():
    extra = participant_rows("a")[:2]
    extra[0]["question_index"], extra[1]["question_index"] = "26", "27"
    raw = export(participant_rows("a"), extra, participant_rows("b"))
    with pytest.raises(VotesError, match="more answers than the survey has"):
        validate_votes(raw)


def test_wrong_mix_of_real_questions_and_checks_is_an_error():
    rows = participant_rows("a")
    rows[0].update(is_attention_check="false", chosen_method="lime", passed="")  # 21 + 4
    with pytest.raises(VotesError, match="'a' with 21 real answers and 4 checks"):
        validate_votes(export(rows, participant_rows("b")))


def test_completed_flag_contradicting_the_answers_is_an_error():
    raw = export(participant_rows("a", completed=True, answers=23), participant_rows("b",
                 completed=True))
    with pytest.raises(VotesError, match="marked completed but have fewer than 25 answers"):
        validate_votes(raw)


def test_check_rows_with_a_method_are_never_votes():
    raw = good_export()
    checks = raw["is_attention_check"] == "true"
    raw.loc[checks, "chosen_method"] = "normlime"  # as a server that records check options
    votes = validate_votes(raw)
    assert any("never counted as votes" in w for w in votes.warnings)
    assert (votes.table.loc[votes.table["is_attention_check"], "chosen_method"] == "").all()
    analysis = run_analysis(raw)
    assert sum(analysis.vote_totals.values()) == 60


def slot_test(raw: pd.DataFrame) -> dict:
    votes = validate_votes(raw)
    return position_bias(select_participants(votes).votes, votes.has_position)


def test_position_accepts_the_servers_1_to_4_and_a_0_to_3_numbering():
    zero_based = slot_test(good_export())
    one_based = good_export()
    one_based["position"] = (one_based["position"].astype(int) + 1).astype(str)
    assert slot_test(one_based) == zero_based
    assert zero_based["counts"] == {"1": 15, "2": 15, "3": 15, "4": 15}


def test_server_checks_passed_column_is_cross_checked():
    raw = good_export()
    counted = raw.groupby("participant_id")["passed"].transform(lambda s: (s == "true").sum())
    assert validate_votes(raw.assign(checks_passed=counted.astype(str))).warnings == []
    wrong = counted.where(raw["participant_id"] != "b", 5)
    warnings = validate_votes(raw.assign(checks_passed=wrong.astype(str))).warnings
    assert len(warnings) == 1 and "disagrees" in warnings[0] and "'b'" in warnings[0]


def test_extra_columns_are_ignored_and_position_is_optional():
    raw = good_export().assign(browser="x")
    pd.testing.assert_frame_equal(validate_votes(raw).table, validate_votes(good_export()).table)
    timed = validate_votes(good_export().assign(response_ms="1234"))
    assert timed.has_response_ms and (timed.table["response_ms"] == 1234).all()
    no_position = slot_test(good_export().drop(columns=["position"]))
    assert no_position["available"] is False
    assert "no position column" in no_position["reason"]


def test_read_votes_csv_errors(tmp_path):
    with pytest.raises(VotesError, match="not found"):
        read_votes_csv(tmp_path / "missing.csv")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(VotesError, match="empty"):
        read_votes_csv(empty)
    path = tmp_path / "ok.csv"
    good_export().to_csv(path, index=False)
    pd.testing.assert_frame_equal(read_votes_csv(path), good_export())


def test_restrict_rows_by_study_and_mode():
    raw = good_export().assign(study=["s1"] * 50 + ["s2"] * 25, mode="sandbox")
    kept, warnings = restrict_rows(raw, study="s2")
    assert set(kept["participant_id"]) == {"c"}
    assert warnings and "'sandbox' mode, not 'live'" in warnings[0]
    with pytest.raises(VotesError, match="no answers with study 's3'"):
        restrict_rows(raw, study="s3")
    with pytest.raises(VotesError, match="no mode column"):
        restrict_rows(good_export(), mode="live")


# ----------------------------------------------------------------------------- filtering


def filtering_export() -> pd.DataFrame:
    return export(
        participant_rows("pass5"),
        participant_rows("pass4", checks_passed=4),
        participant_rows("pass3", checks_passed=3),
        participant_rows("short_ok", answers=13, checks_passed=5),  # 10 real, 3 checks
        participant_rows("short_bad", answers=13, checks_passed=1),  # failed 2 of 3
        participant_rows("one_check", answers=1, checks_passed=1),  # no real answer yet
    )


def test_paper_rule_keeps_four_of_five_and_excludes_incomplete():
    sel = select_participants(validate_votes(filtering_export()), min_checks=4)
    p = sel.participants
    assert p.loc[p["kept"]].index.tolist() == ["pass4", "pass5"]
    assert p.loc["pass3", "reason"] == "attention"
    assert "passed 3 of 5 attention checks; at least 4 required" in p.loc["pass3", "detail"]
    assert (p.loc[["short_ok", "short_bad", "one_check"], "reason"] == "incomplete").all()
    assert sel.excluded_by_reason() == {
        "incomplete": 3, "attention": 1, "no_votes": 0, "speeder": 0
    }
    assert (sel.total, sel.kept, sel.excluded) == (6, 2, 4)
    assert set(sel.votes["participant_id"]) == {"pass4", "pass5"}
    assert not sel.votes["is_attention_check"].any() and len(sel.votes) == 40


def test_min_checks_threshold_is_configurable():
    raw = filtering_export()
    strict = select_participants(validate_votes(raw), min_checks=5)
    assert strict.participants.loc[strict.participants["kept"]].index.tolist() == ["pass5"]
    lax = select_participants(validate_votes(raw), min_checks=3)
    assert lax.kept == 3
    with pytest.raises(VotesError, match="--min-checks must be between 0 and 5"):
        select_participants(validate_votes(raw), min_checks=6)


def test_include_incomplete_keeps_those_that_have_not_failed_yet():
    sel = select_participants(validate_votes(filtering_export()), 4, include_incomplete=True)
    p = sel.participants
    assert p.loc[p["kept"]].index.tolist() == ["pass4", "pass5", "short_ok"]
    assert p.loc["short_bad", "reason"] == "attention"
    assert "failed 2 of 3 attention checks answered" in p.loc["short_bad", "detail"]
    assert p.loc["one_check", "reason"] == "no_votes"
    analysis = run_analysis(filtering_export(), include_incomplete=True)
    assert any("incomplete survey" in w for w in analysis.warnings)
    assert analysis.props.loc["short_ok"].sum() == pytest.approx(1.0)


def test_completed_flag_false_with_all_answers_counts_as_incomplete():
    raw = export(
        participant_rows("a", completed=True),
        participant_rows("b", completed=False),
        participant_rows("c", completed=True),
    )
    sel = select_participants(validate_votes(raw))
    assert sel.participants.loc["b", "reason"] == "incomplete"
    assert "not marked completed" in sel.participants.loc["b", "detail"]


def test_nothing_left_after_filtering_is_an_error_that_says_why():
    raw = export(participant_rows("x", checks_passed=2), participant_rows("y", answers=20))
    with pytest.raises(VotesError) as info:
        run_analysis(raw)
    text = str(info.value)
    assert "nothing left after filtering 2 participants" in text
    assert "1 incomplete survey" in text and "1 failed attention checks" in text
    assert "--include-incomplete" in text


def test_survey_design_is_configurable():
    rows = [r for r in participant_rows("a") if int(r["question_index"]) <= 10]
    rows_b = [r for r in participant_rows("b") if int(r["question_index"]) <= 10]
    design = SurveyCounts(real_questions=8, attention_checks=2)
    analysis = run_analysis(export(rows, rows_b), design=design, min_checks=2)
    assert analysis.selection.kept == 2
    assert sum(analysis.vote_totals.values()) == 16


def test_no_within_method_variance_is_flagged_not_reported_as_a_number():
    same = (20, 0, 0, 0)
    analysis = run_analysis(export(*(participant_rows(p, same) for p in "abc")))
    assert np.isnan(analysis.anova.F) or np.isinf(analysis.anova.F)
    assert np.isnan(analysis.anova.p)
    assert all(np.isnan(r["p_adj"]) and r["reject"] is None for r in analysis.tukey)
    assert any("undefined" in w for w in analysis.warnings)
    from analysis.study.report import summary_dict

    summary = summary_dict(analysis)
    assert summary["anova"]["F"] is None and summary["anova"]["p"] is None


def test_options_column_is_checked_against_the_chosen_slot(tmp_path):
    from analysis.study.simulate import simulate_export

    simulate_export(6, random_state=3, p_incomplete=0).to_csv(tmp_path / "v.csv", index=False)
    raw = read_votes_csv(tmp_path / "v.csv")
    votes = validate_votes(raw)
    assert votes.has_options
    real = votes.table[~votes.table["is_attention_check"]]
    shown = [o.split("|")[p - 1] for o, p in zip(real["options"], real["position"], strict=True)]
    assert shown == list(real["chosen_method"])

    row = int(np.flatnonzero(raw["options"] != "")[0])
    broken = raw.copy()
    broken.loc[row, "options"] = "lime|lime|smoothgrad|vargrad"
    with pytest.raises(VotesError, match="must list the 4 methods"):
        validate_votes(broken)
    swapped = raw.copy()
    order = swapped.loc[row, "options"].split("|")
    slot = int(swapped.loc[row, "position"]) - 1
    order[slot], order[(slot + 1) % 4] = order[(slot + 1) % 4], order[slot]
    swapped.loc[row, "options"] = "|".join(order)
    with pytest.raises(VotesError, match="shows another method"):
        validate_votes(swapped)
    with pytest.raises(VotesError, match="no position column"):
        validate_votes(raw.drop(columns=["position"]))
