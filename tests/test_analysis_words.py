"""The analysis speaks to people: numbers formatted, plurals right, small studies and
disagreeing interval/p pairs said out loud (issue 24, item 6)."""

from __future__ import annotations

import re

import numpy as np

from analysis.study.pipeline import MIN_PARTICIPANTS, run_analysis
from analysis.study.report import format_p, render_markdown
from analysis.study.simulate import simulate_export
from analysis.words import count


def test_p_values_are_formatted_for_people():
    assert format_p(0.11887865938082559) == "0.119"
    assert format_p(0.0012) == "0.001"
    assert format_p(3.4e-12) == "3.40e-12"
    assert format_p(float("nan")) == "undefined"
    assert count(1, "participant") == "1 participant" and count(0, "resample") == "0 resamples"


def _random_clickers(n: int, seed: int):
    return simulate_export(
        n, preferences=(1, 1, 1, 1), p_inattentive=0.0, p_check_attentive=1.0,
        p_incomplete=0.0, random_state=seed,
    )  # fmt: skip


def test_a_small_study_says_so_and_explains_every_disagreeing_interval_and_p():
    seen_disagreement = False
    for seed in range(6):
        analysis = run_analysis(_random_clickers(3, seed), bootstrap=200, seed=seed)
        warnings = analysis.warnings
        assert any(w.startswith("only 3 kept participants: below 20") for w in warnings)
        model = analysis.choice_model
        for m, (lo, hi) in model.ci.items():
            if m == model.reference:
                continue
            disagree = (lo > 0 or hi < 0) != (model.p_wald[m] < analysis.alpha)
            said = any(w.startswith(f"{m} vs {model.reference}: the 95% bootstrap interval")
                       for w in warnings)  # fmt: skip
            assert disagree == said, (seed, m, lo, hi, model.p_wald[m])
            seen_disagreement |= disagree
        report = render_markdown(analysis)
        assert "> - only 3 kept participants" in report
    assert seen_disagreement  # the case the rule exists for does occur at this size


def test_a_large_enough_study_has_no_small_sample_warning():
    analysis = run_analysis(_random_clickers(MIN_PARTICIPANTS, 1), bootstrap=50)
    assert not any(w.startswith("only ") for w in analysis.warnings)


def test_plurals_agree_with_their_numbers():
    raw = simulate_export(12, random_state=3, p_inattentive=0.1)
    analysis = run_analysis(raw, bootstrap=20)
    report = render_markdown(analysis)
    assert not re.search(r"\b1 (participants|resamples|were excluded|choices)\b", report)
    assert not re.search(r"\b(0|[2-9]|\d\d+) participant\b", report)
    n = analysis.selection.excluded
    assert f"{n} {'was' if n == 1 else 'were'} excluded" in report
    # and p-values never print with 17 digits
    assert not re.search(r"\d\.\d{8,}e-\d\d", report)
    assert np.isfinite(analysis.anova.p)
