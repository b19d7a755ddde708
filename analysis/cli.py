"""``normlime analyze``: the statistical analysis of the study's votes.

pandas, scipy, statsmodels and matplotlib are imported inside the command body, so
composing this module into the ``normlime`` group costs nothing for other commands;
``analyze`` never imports torch.
"""

from __future__ import annotations

from pathlib import Path

import click

from .benchmark_cli import COMMANDS as BENCHMARK_COMMANDS  # kar, occlusion (issue 4)

__all__ = ["COMMANDS", "InputError", "analyze_command"]


class InputError(click.ClickException):
    """Bad input from the user: one readable line on stderr and exit code 2."""

    exit_code = 2


@click.command("analyze")
@click.option("--db", "db_url", metavar="URL", help="the study server's database URL")
@click.option(
    "--votes",
    "votes_path",
    type=click.Path(path_type=Path),
    metavar="CSV",
    help="a votes export written by `normlime export-votes`",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    required=True,
    help="directory for summary.json, report.md, the plots and tables",
)
@click.option(
    "--min-checks",
    type=int,
    default=4,
    show_default=True,
    help="attention checks a participant must pass to be kept (the paper: 4 of 5)",
)
@click.option(
    "--include-incomplete",
    is_flag=True,
    help="keep incomplete surveys that have not already failed the attention rule",
)
@click.option(
    "--alpha",
    type=float,
    default=0.05,
    show_default=True,
    help="family-wise significance level of Tukey HSD and the Holm-corrected Wilcoxon tests",
)
@click.option(
    "--real-questions",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="real questions in one complete survey",
)
@click.option(
    "--attention-checks",
    type=click.IntRange(min=0),
    default=5,
    show_default=True,
    help="attention checks in one complete survey",
)
@click.option("--study", default=None, help="analyse only this study (export column 'study')")
@click.option("--mode", default=None, help="analyse only this server mode: debug, sandbox or live")
def analyze_command(
    db_url,
    votes_path,
    out_dir,
    min_checks,
    include_incomplete,
    alpha,
    real_questions,
    attention_checks,
    study,
    mode,
):
    """Filter participants, then run the paper's ANOVA + Tukey HSD and repeated-measures tests.

    Reads the study server's export (--votes) or its database (--db), keeps participants
    who passed at least --min-checks attention checks in a complete survey, and writes
    summary.json, report.md (pasteable into a paper), votes.png and proportions.png to
    --out.
    """
    from .pipeline import run_analysis
    from .report import format_p, write_outputs
    from .votes import (
        SurveyDesign,
        VotesError,
        read_votes_csv,
        read_votes_db,
        redact_url,
    )

    if (db_url is None) == (votes_path is None):
        raise InputError("give exactly one of --db URL or --votes CSV")
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"--out {out_dir} exists and is not a directory")
    try:
        if votes_path is not None:
            raw, source = read_votes_csv(votes_path), str(votes_path)
        else:
            raw, source = read_votes_db(db_url, study=study, mode=mode), redact_url(db_url)
        analysis = run_analysis(
            raw,
            min_checks=min_checks,
            include_incomplete=include_incomplete,
            design=SurveyDesign(real_questions, attention_checks),
            alpha=alpha,
            source=source,
            study=study,
            mode=mode,
        )
    except VotesError as exc:
        raise InputError(str(exc)) from None
    try:
        paths = write_outputs(analysis, out_dir)
    except OSError as exc:
        raise InputError(f"cannot write the results to {out_dir}: {exc.strerror or exc}") from None

    for warning in analysis.warnings:
        click.echo(f"Warning: {warning}", err=True)
    sel, anova = analysis.selection, analysis.anova
    click.echo(
        f"kept {sel.kept} of {sel.total} participants; votes "
        + ", ".join(f"{m} {n}" for m, n in analysis.vote_totals.items())
    )
    click.echo(
        f"one-way ANOVA (the paper's test): F({anova.df_between}, {anova.df_within}) = "
        f"{anova.F:.4g}, p = {format_p(anova.p)}"
    )
    click.echo(f"report: {paths['report.md']}")


COMMANDS: list = [analyze_command, *BENCHMARK_COMMANDS]
