"""``normlime analyze``: the statistical analysis of the study's votes.

pandas, scipy, statsmodels and matplotlib are imported inside the command body, so
composing this module into the ``normlime`` group costs nothing for other commands;
``analyze`` never imports torch.
"""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import InputError

__all__ = ["COMMANDS", "InputError", "analyze_command"]


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
@click.option(
    "--exclude-speeders",
    "speeder_ms",
    type=click.IntRange(min=1),
    default=None,
    metavar="MS",
    help="pre-declared speeder rule: exclude participants whose median response time is "
    "below MS milliseconds (off by default; the paper used none)",
)
@click.option(
    "--reference",
    default="lime",
    show_default=True,
    help="the method whose coefficient is 0 in the primary choice model",
)
@click.option(
    "--bootstrap",
    type=click.IntRange(min=0),
    default=1000,
    show_default=True,
    help="cluster-bootstrap resamples of the primary choice model",
)
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="seed of the bootstrap and the permutation test (recorded in summary.json)",
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
    speeder_ms,
    reference,
    bootstrap,
    seed,
    study,
    mode,
):
    """Filter participants, fit the primary choice model, reproduce the paper's ANOVA.

    The primary analysis is a conditional logit of the choices (method + screen slot) with
    cluster-bootstrap intervals; the paper's one-way ANOVA + Tukey HSD are reproduced
    beside it, with the repeated-measures ANOVA, Friedman and Wilcoxon tests and the
    robustness figures.

    Reads the study server's export (--votes) or its database (--db), keeps participants
    who passed at least --min-checks attention checks in a complete survey, and writes
    summary.json, report.md (pasteable into a paper), votes.png and proportions.png to
    --out.
    """
    from .pipeline import run_analysis
    from .report import format_p, write_outputs
    from .votes import SurveyDesign, VotesError, read_votes_csv

    if (db_url is None) == (votes_path is None):
        raise InputError("give exactly one of --db URL or --votes CSV")
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"--out {out_dir} exists and is not a directory")
    try:
        if votes_path is not None:
            raw, source = read_votes_csv(votes_path), str(votes_path)
        else:
            raw, source = _read_votes_db(db_url, study=study, mode=mode), redact_url(db_url)
        analysis = run_analysis(
            raw,
            min_checks=min_checks,
            include_incomplete=include_incomplete,
            design=SurveyDesign(real_questions, attention_checks),
            alpha=alpha,
            source=source,
            study=study,
            mode=mode,
            speeder_ms=speeder_ms,
            reference=reference.strip().lower(),
            bootstrap=bootstrap,
            seed=seed,
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
    model = analysis.choice_model
    if model is None:
        click.echo(f"primary choice model: not fitted ({analysis.choice_note})")
    else:
        click.echo(
            f"primary choice model (log-odds vs {model.reference}): "
            + ", ".join(
                f"{m} {model.coef[m]:.3f} [{model.ci[m][0]:.3f}, {model.ci[m][1]:.3f}]"
                for m in model.methods
                if m != model.reference
            )
        )
    click.echo(
        f"reproduction, one-way ANOVA (the paper's test): F({anova.df_between}, "
        f"{anova.df_within}) = {anova.F:.4g}, p = {format_p(anova.p)}"
    )
    click.echo(f"report: {paths['report.md']}")


COMMANDS: list = [analyze_command]


# ------------------------------------------------------------------ the database


def _read_votes_db(url: str, study: str | None = None, mode: str | None = None):
    """Read the votes straight from the study server's database.

    Uses the server's own export (``study_server.exports.vote_rows``, what
    ``normlime export-votes`` writes), so ``--db`` and ``--votes`` see exactly the same
    table.  Like ``export-votes``, only live participants are read unless ``mode`` names
    a test mode (debug, sandbox).  A database file that does not exist is never created.
    This is the command layer: the statistics below it only ever see the DataFrame.
    """
    import pandas as pd

    from .votes import VotesError, as_strings

    try:
        from sqlalchemy.engine import make_url

        from study_server.exports import VOTE_COLUMNS, vote_rows
        from study_server.schema import SchemaError, make_engine, normalize_db_url, schema_present
    except ImportError as exc:  # the server package is part of this project
        raise VotesError(f"cannot read the database: study server unavailable ({exc})") from None
    try:
        normalized = normalize_db_url(url)
        parsed = make_url(normalized)
        if parsed.get_backend_name() == "sqlite" and not Path(parsed.database).is_file():
            raise VotesError(f"database file not found: {parsed.database}")
        engine = make_engine(normalized)
        try:
            if not schema_present(engine):
                raise VotesError(f"{redact_url(url)} has no study tables (not a study database?)")
            with engine.connect() as conn:
                rows = list(vote_rows(conn, include_debug=mode not in (None, "live"), study=study))
        finally:
            engine.dispose()
    except SchemaError as exc:
        raise VotesError(str(exc)) from None
    except VotesError:
        raise
    except Exception as exc:  # noqa: BLE001 - any driver failure becomes one readable line
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise VotesError(f"cannot read votes from {redact_url(url)}: {message}") from None
    if not rows:
        scope = " and ".join(
            f"{k} {v!r}" for k, v in (("study", study), ("mode", mode or "live")) if v
        )
        raise VotesError(f"{redact_url(url)} holds no answers for {scope}")
    return as_strings(pd.DataFrame(rows, columns=VOTE_COLUMNS))


def redact_url(url: str) -> str:
    """A database URL without its password (for messages and reports)."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a malformed URL is shown as given
        return url
