"""report.md and the pre-registration come from their Jinja2 templates."""

from __future__ import annotations

import datetime as dt
import re

import jinja2
import pytest

from analysis import templating
from analysis.study.pipeline import run_analysis
from analysis.study.preregister import render_preregistration
from analysis.study.report import render_markdown
from analysis.study.simulate import simulate_export

REPORT_SECTIONS = [
    "# Human evaluation: analysis of the votes",
    "## Summary (pasteable)",
    "## Participants",
    "## Votes",
    "## Primary analysis: a conditional logit of the choices",
    "## Reproduction: the paper's analysis (Ahern et al. 2020), one-way ANOVA and Tukey HSD",
    "## Secondary analyses: repeated-measures tests",
    "## Position bias",
    "## Robustness",
    "### Per class",
    "## Files",
]
PREREG_SECTIONS = [
    "# Pre-registration: pilot",
    "## 1. Hypotheses",
    "## 2. Dependent variable",
    "## 3. Conditions",
    "## 4. Analyses",
    "## 5. Outliers and exclusions",
    "## 6. Sample size",
    "## 7. Other",
]


@pytest.fixture(scope="module")
def analysis():
    raw = simulate_export(
        30, methods=("alpha", "beta", "gamma"), real_questions=9, attention_checks=2, classes=3
    )
    return run_analysis(raw, bootstrap=10)


def headings(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("#")]


def assert_clean(text: str) -> None:
    """No template syntax left, no line indented or ending in a space, one final newline."""
    assert text.endswith("\n") and not text.endswith("\n\n")
    assert not re.search(r"\{[{%#]|[}%#]\}", text)
    assert all(line == line.strip() for line in text.splitlines())


def test_report_sections_in_order_and_paragraphs_on_one_line(analysis):
    text = render_markdown(analysis)
    assert headings(text) == REPORT_SECTIONS
    assert_clean(text)
    summary = text.split("## Summary (pasteable)\n\n", 1)[1].split("\n", 1)[0]
    assert summary.startswith(f"Of {analysis.selection.total} participants, ")
    assert "In the primary analysis, a conditional logit" in summary
    assert summary.endswith("pairwise null hypotheses.")
    table = text.split("### Per class\n\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert table[:2] == [
        "| class | alpha votes (share) | beta votes (share) | gamma votes (share) |",
        "|---|---|---|---|",
    ]
    assert len(table) == 2 + 3  # one row per class


def test_preregistration_sections_in_order():
    text = render_preregistration(
        "pilot", methods=("alpha", "beta", "gamma"), speeder_ms=900, today=dt.date(2024, 1, 2)
    )
    assert headings(text) == PREREG_SECTIONS
    assert_clean(text)
    lines = text.splitlines()
    assert lines[2].startswith("Written 2024-01-02 by `normlime preregister`")
    assert "- H3: alpha is chosen more than each other method." in lines
    command = next(line for line in lines if line.startswith("All of it is"))
    assert command.endswith("--seed 0 --exclude-speeders 900 --out results/`.")


def test_the_template_file_is_what_renders(analysis, monkeypatch):
    """Editing the template changes the report: the prose lives in the template."""
    env = templating.environment()
    source = env.loader.get_source(env, "study_report.md.j2")[0]
    assert "## Position bias\n" in source
    edited = source.replace("## Position bias\n", "## Slot preference\n")
    monkeypatch.setattr(
        env,
        "loader",
        jinja2.ChoiceLoader([jinja2.DictLoader({"study_report.md.j2": edited}), env.loader]),
    )
    env.cache.clear()
    try:
        text = render_markdown(analysis)
    finally:
        monkeypatch.undo()
        env.cache.clear()
    assert "## Slot preference" in text and "## Position bias" not in text
    assert "## Position bias" in render_markdown(analysis)
