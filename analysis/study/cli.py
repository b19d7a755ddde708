"""``normlime analyze``: the statistical analysis of the study's votes.

pandas, scipy, statsmodels and matplotlib are imported inside the command body, so
composing this module into the ``normlime`` group costs nothing for other commands;
``analyze`` never imports torch.
"""

from __future__ import annotations

from pathlib import Path

import click

from ..designs.cli import (
    design_power_options,
    design_preregister_options,
    responses_options,
    uses_design,
)
from ..errors import InputError
from ..words import count

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
    "--methods",
    "methods_text",
    default=None,
    metavar="A,B,...",
    help="the study's methods, in the order of the tables (default: read from the export)",
)
@click.option(
    "--min-checks",
    type=int,
    default=None,
    help="attention checks a participant must pass to be kept (default: all but one, "
    "the paper's 4 of 5)",
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
    default=None,
    help="real questions in one complete survey (with --attention-checks; default: the "
    "paper's 20 for its four methods, else the most common complete survey in the export)",
)
@click.option(
    "--attention-checks",
    type=click.IntRange(min=0),
    default=None,
    help="attention checks in one complete survey (with --real-questions; default: the "
    "paper's 5 for its four methods, else read from the export)",
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
    default=None,
    help="the method whose coefficient is 0 in the primary choice model (default: lime, "
    "else the study's last method)",
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
@click.option(
    "--project",
    "project_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="a study project: its methods (in its order) and survey length come from the maps "
    "bundle its precompute wrote (instead of --methods, --real-questions, --attention-checks)",
)
@click.option(
    "--evaluation",
    "evaluation_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="a `normlime evaluate` output: put its metric orders next to the choice model's",
)
@responses_options
def analyze_command(
    db_url,
    votes_path,
    out_dir,
    methods_text,
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
    project_dir,
    evaluation_dir,
    responses_path=None,
    baseline=None,
    chance=None,
):
    """Filter participants, fit the primary choice model, reproduce the paper's ANOVA.

    The primary analysis is a conditional logit of the choices (method + screen slot) with
    cluster-bootstrap intervals; the paper's one-way ANOVA + Tukey HSD are reproduced
    beside it, with the repeated-measures ANOVA, Friedman and Wilcoxon tests and the
    robustness figures.

    Reads the study server's export (--votes) or its database (--db), keeps participants
    who passed at least --min-checks attention checks in a complete survey, and writes
    summary.json, report.md (pasteable into a paper), votes.png and proportions.png to
    --out.  The methods and the survey's length come from the export unless given.
    """
    from .pipeline import run_analysis
    from .report import format_p, write_outputs
    from .votes import VotesError, read_votes_csv

    if responses_path is not None or baseline is not None or chance is not None:
        from ..designs.cli import run_analyze_responses  # --responses: analysis.designs

        return run_analyze_responses(locals())
    if (db_url is None) == (votes_path is None):
        raise InputError("give exactly one of --db URL or --votes CSV or --responses CSV")
    if project_dir is not None:
        if methods_text or real_questions is not None or attention_checks is not None:
            raise InputError("--project sets the methods and the survey; drop --methods, "
                             "--real-questions and --attention-checks")  # fmt: skip
        methods_text, real_questions, attention_checks = _project_survey(project_dir)
    design = _design(real_questions, attention_checks)
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
            design=design,
            methods=_methods(methods_text),
            alpha=alpha,
            source=source,
            study=study,
            mode=mode,
            speeder_ms=speeder_ms,
            reference=reference.strip().lower() if reference is not None else None,
            bootstrap=bootstrap,
            seed=seed,
        )
    except VotesError as exc:
        raise InputError(str(exc)) from None
    if evaluation_dir is not None:
        _compare(analysis, evaluation_dir)
    paths = _write_results(write_outputs, analysis, out_dir)
    sel, anova = analysis.selection, analysis.anova
    click.echo(
        f"kept {sel.kept} of {count(sel.total, 'participant')}; votes "
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


def _project_survey(project_dir: Path) -> tuple[str, int, int]:
    """(methods, real questions, checks) of a project's survey, from its bundle's manifest
    (read as JSON: the analysis imports no torch)."""
    from explainers.project import ProjectError, project_maps_dir

    try:
        manifest_path = project_maps_dir(project_dir) / "manifest.json"
    except ProjectError as exc:
        raise InputError(str(exc)) from None
    survey = _read_json(manifest_path, "--project").get("survey") if manifest_path.is_file() \
        else None  # fmt: skip
    if not survey:
        raise InputError(
            f"{manifest_path} is missing or has no survey: run `normlime precompute --project "
            f"{project_dir}` first"
        )
    real = len(survey["classes"]) * int(survey["repeats"])
    return ",".join(survey["methods"]), real, int(survey["attention_checks"])


def _methods(text: str | None) -> tuple[str, ...] | None:
    """--methods a,b,c as names (validated with the data by validate_votes)."""
    if text is None:
        return None
    return tuple(m.strip().lower() for m in text.split(","))


def _design(real_questions: int | None, attention_checks: int | None):
    """The stated survey, or None to read it from the data; a stated survey bounds no
    class index (its classes are whatever the export's digit column holds)."""
    from .votes import SurveyCounts

    if real_questions is None and attention_checks is None:
        return None
    if real_questions is None or attention_checks is None:
        raise InputError("give --real-questions and --attention-checks together")
    return SurveyCounts(real_questions, attention_checks, classes=None)


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
        from study_server.schema import (
            SchemaError,
            check_current,
            make_engine,
            normalize_db_url,
            schema_present,
        )
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
            check_current(engine)
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


# ------------------------------------------------------------------ normlime power


def _parse_shares(text: str) -> tuple[float, ...]:
    """Shares as typed: rounding to 3 decimals is forgiven (sum within 0.001 of 1, then
    normalised); anything further from 1 is refused."""
    try:
        shares = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise InputError(f"--shares must be numbers separated by commas, got {text!r}") from None
    total = sum(shares)
    if all(s >= 0 for s in shares) and abs(total - 1) <= SHARE_ROUNDING:
        shares = tuple(s / total for s in shares)
    return shares


#: how far typed shares may sum from 1 (rounding) before they are refused
SHARE_ROUNDING = 1e-3



def _compare(analysis, evaluation_dir: Path) -> None:
    """The choice model's order next to the evaluation's metric orders (or a warning)."""
    from analysis.evaluate.compare import CompareError, human_vs_metrics

    if analysis.choice_model is None:
        analysis.warnings.append(
            "--evaluation: no comparison, the choice model was not fitted"
        )
        return
    try:
        analysis.human_vs_metrics = human_vs_metrics(analysis.choice_model, evaluation_dir)
    except CompareError as exc:
        raise InputError(str(exc)) from None

@click.command("power")
@click.option(
    "--pilot",
    "pilot_path",
    type=click.Path(path_type=Path),
    metavar="CSV",
    help="a pilot's votes export: its fitted choice model, heterogeneity and keep rate",
)
@click.option(
    "--shares",
    metavar="P1,P2,...",
    help="assumed choice shares of the methods, in --methods order (sum 1)",
)
@click.option(
    "--methods",
    "methods_text",
    default=None,
    metavar="A,B,...",
    help="the planned study's methods (default: the pilot's, else normlime, lime, "
    "smoothgrad, vargrad)",
)
@click.option(
    "--concentration",
    type=float,
    default=None,
    metavar="A",
    help="Dirichlet precision of participants' preferences (smaller = more different; "
    "'inf' = identical). Default: estimated from --pilot, else 10",
)
@click.option(
    "--contrast",
    default=None,
    metavar="A:B",
    help="the pairwise contrast to power, two of the study's methods (default: the first "
    "method against the reference, normlime:lime for the paper's); the omnibus test is "
    "always powered too",
)
@click.option("--power", "target", type=float, default=0.8, show_default=True)
@click.option("--alpha", type=float, default=0.05, show_default=True)
@click.option(
    "--simulations",
    type=click.IntRange(min=100),
    default=1000,
    show_default=True,
    help="simulated studies per participant count",
)
@click.option(
    "--questions",
    type=click.IntRange(min=1),
    default=None,
    help="real questions per participant (default: the pilot's survey, else 20)",
)
@click.option("--max-participants", type=click.IntRange(min=5), default=5000, show_default=True)
@click.option(
    "--keep-rate",
    type=float,
    default=None,
    help="share of recruited participants kept by the attention rule (default: "
    "the pilot's, else 1)",
)
@click.option(
    "--min-checks",
    type=int,
    default=None,
    help="the pilot's inclusion rule (attention checks passed; default: all but one)",
)
@click.option("--pay-per-hour", type=float, default=None, metavar="X")
@click.option("--minutes-per-survey", type=float, default=None, metavar="M")
@click.option(
    "--platform-fee",
    type=float,
    default=0.0,
    show_default=True,
    metavar="F",
    help="the platform's fee as a fraction of the payments (e.g. 0.33)",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    required=True,
    help="directory for power.json and power.png",
)
@design_power_options
def power_command(
    pilot_path,
    shares,
    methods_text,
    concentration,
    contrast,
    target,
    alpha,
    simulations,
    questions,
    max_participants,
    keep_rate,
    min_checks,
    pay_per_hour,
    minutes_per_survey,
    platform_fee,
    seed,
    out_dir,
    **design_options,
):
    """Participants (and cost) needed for a planned study, by simulation.

    Simulates studies from a pilot's fitted choice model or from assumed shares, analyses
    each with the primary analysis's tests, and counts rejections.
    """
    import json
    import math

    from .power import power_search, study_cost
    from .report import plot_power

    if uses_design(design_options):
        from ..designs.cli import run_design_power  # --design: analysis.designs

        return run_design_power(locals() | design_options)
    if (pilot_path is None) == (shares is None):
        raise InputError("give exactly one of --pilot votes.csv or --shares P1,P2,...")
    if not 0 < target < 1 or not 0 < alpha < 1:
        raise InputError("--power and --alpha must be between 0 and 1")
    if (pay_per_hour is None) != (minutes_per_survey is None):
        raise InputError("--pay-per-hour and --minutes-per-survey go together")
    for name, value in (
        ("--pay-per-hour", pay_per_hour),
        ("--minutes-per-survey", minutes_per_survey),
        ("--platform-fee", platform_fee),
    ):
        if value is not None and (not math.isfinite(value) or value < 0):
            raise InputError(f"{name} must be a non-negative number, got {value}")
    if keep_rate is not None and not 0 < keep_rate <= 1:
        raise InputError(f"--keep-rate must be in (0, 1], got {keep_rate}")
    if concentration is not None and not concentration > 0:
        raise InputError(f"--concentration must be above 0, got {concentration}")
    methods = _methods(methods_text)
    try:
        if shares is not None:
            model = _assumed_model(shares, methods, concentration, questions)
            rate, pilot = keep_rate or 1.0, None
        else:
            model, rate, pilot = _pilot_model(
                pilot_path, min_checks, questions, concentration, methods
            )
            rate = keep_rate or rate
    except ValueError as exc:
        raise InputError(str(exc)) from None
    pair = _contrast(contrast, model.methods)
    k = len(model.methods)

    def progress(point):
        click.echo(
            f"  n = {point.n}: contrast {point.contrast_power:.3f}, omnibus "
            f"{point.omnibus_power:.3f}",
            err=True,
        )

    search = power_search(
        model,
        contrast=pair,
        target=target,
        simulations=simulations,
        alpha=alpha,
        seed=seed,
        max_participants=max_participants,
        progress=progress,
    )
    curve = [{"n": p.n, "power": p.contrast_power} for p in search.points]
    result = {
        "participants_needed": search.needed_contrast,
        "curve": curve,
        "contrast": f"{pair[0]}:{pair[1]}",
        "test": "two-sided cluster-robust Wald test of the contrast's log-odds difference "
        "in the primary conditional logit, against t(n - 1)",
        "simulations": simulations,
        "seed": seed,
        "power": target,
        "alpha": alpha,
        "omnibus": {
            "participants_needed": search.needed_omnibus,
            "curve": [{"n": p.n, "power": p.omnibus_power} for p in search.points],
            "test": f"cluster-robust Wald test of no method effect, as F({k - 1}, n - {k - 1})",
        },
        "failed_fits": {str(p.n): p.failed_fits for p in search.points if p.failed_fits},
        "model": model.as_dict(),
        "pilot": pilot,
        "max_participants": max_participants,
    }
    needed = [v for v in (search.needed_contrast, search.needed_omnibus) if v is not None]
    if pay_per_hour is not None and needed:
        result["cost"] = study_cost(
            max(needed),
            keep_rate=rate,
            pay_per_hour=pay_per_hour,
            minutes_per_survey=minutes_per_survey,
            platform_fee=platform_fee,
        )
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "power.json").write_text(json.dumps(result, indent=2) + "\n")
        plot_power(result, out_dir / "power.png")
    except OSError as exc:
        raise InputError(f"cannot write to {out_dir}: {exc.strerror or exc}") from None

    def say(n):
        return (
            f"{n} kept participants"
            if n is not None
            else f"not reached with {max_participants} participants"
        )

    click.echo(
        f"model: {model.source}; shares "
        + ", ".join(f"{m} {s:.3f}" for m, s in zip(model.methods, model.shares, strict=True))
        + f"; concentration {model.concentration}"
    )
    click.echo(
        f"contrast {pair[0]}:{pair[1]} at power {target} (alpha {alpha}): "
        f"{say(search.needed_contrast)}"
    )
    click.echo(f"omnibus test at power {target}: {say(search.needed_omnibus)}")
    if "cost" in result:
        cost = result["cost"]
        click.echo(
            f"cost: recruit {cost['participants_to_recruit']} (keep rate {rate:.3g}) "
            f"x {cost['pay_per_participant']:.2f} = {cost['payments']:.2f} + fee "
            f"{cost['platform_fee']:.2f} = {cost['total']:.2f}"
        )
    click.echo(f"power.json: {out_dir / 'power.json'}")


def _contrast(text: str | None, methods: tuple[str, ...]) -> tuple[str, str]:
    """--contrast A:B checked against the study's methods (default: the first method
    against the choice model's reference)."""
    from .choice import default_reference

    if text is None:
        pair = (methods[0], default_reference(methods))
        return pair if pair[0] != pair[1] else (methods[0], methods[1])
    pair = tuple(m.strip().lower() for m in text.split(":"))
    if len(pair) != 2 or pair[0] == pair[1] or any(m not in methods for m in pair):
        raise InputError(
            f"--contrast must name two different methods as A:B, from {', '.join(methods)}; "
            f"got {text!r}"
        )
    return pair


def _assumed_model(shares, methods, concentration, questions):
    """The power model of --shares over --methods (the paper's four by default)."""
    import math

    from .power import DEFAULT_CONCENTRATION, PowerModel
    from .votes import METHODS

    if concentration is None:
        concentration = DEFAULT_CONCENTRATION
    return PowerModel(
        methods or METHODS,
        _parse_shares(shares),
        concentration=None if math.isinf(concentration) else concentration,
        questions=questions or 20,
        source="assumed shares",
    )


def _pilot_model(path, min_checks, questions, concentration, methods=None):
    """The power model a pilot implies: its choice model's shares and slot effects, its
    heterogeneity (unless given) and its keep rate."""
    import math

    import numpy as np

    from . import choice, stats
    from .attention import select_participants
    from .power import MIN_PARTICIPANTS, PowerModel, estimate_concentration
    from .votes import VotesError, read_votes_csv, validate_votes

    try:
        votes = validate_votes(read_votes_csv(path), source=str(path), methods=methods)
        selection = select_participants(votes, min_checks)
    except VotesError as exc:
        raise ValueError(str(exc)) from None
    if selection.kept < MIN_PARTICIPANTS:
        raise ValueError(
            f"the pilot has {selection.kept} kept participant(s); a power calculation needs at "
            f"least {MIN_PARTICIPANTS}"
        )
    methods = votes.methods
    kept = selection.participants.index[selection.participants["kept"].to_numpy()]
    counts = stats.vote_matrix(selection.votes, kept, methods)
    position = None
    if votes.has_options:
        data = choice.choice_data(selection.votes, methods)
        fitted = choice.fit_choice_model(data, draws=0)
        beta = np.array([fitted.coef[m] for m in methods])
        shares = np.exp(beta) / np.exp(beta).sum()
        position = tuple(fitted.position_coef[str(s)] for s in range(1, len(methods) + 1))
        how = "the pilot's conditional logit (method + screen slot)"
    else:
        totals = counts.sum(axis=0).to_numpy(dtype=float)
        if (totals == 0).any():
            raise ValueError("some method has no votes in the pilot: no finite share to assume")
        shares = totals / totals.sum()
        how = "the pilot's vote shares (no options column: no slot effects)"
    if concentration is None:
        conc = estimate_concentration(counts.to_numpy())
    else:
        conc = None if math.isinf(concentration) else concentration
    model = PowerModel(
        methods,
        tuple(float(s) for s in shares / shares.sum()),
        concentration=conc,
        position_logits=position,
        questions=questions or votes.design.real_questions,
        source=f"pilot {path}: {how}",
    )
    pilot = {
        "path": str(path),
        "participants": selection.total,
        "kept": selection.kept,
        "min_checks": selection.min_checks,
        "estimated_concentration": concentration is None,
    }
    return model, selection.kept / selection.total, pilot


COMMANDS.append(power_command)


# ------------------------------------------------------------------ normlime preregister


@click.command("preregister")
@click.option("--study", "study_name", required=True, help="the study's name (create-study)")
@click.option(
    "--db",
    "db_url",
    default=None,
    metavar="URL",
    help="the study database: the study's mode and adapters are read from it",
)
@click.option(
    "--power-json",
    "power_path",
    type=click.Path(path_type=Path),
    default=None,
    help="a power.json written by `normlime power` (the planned sample size)",
)
@click.option(
    "--maps",
    "maps_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="the maps bundle shown to participants (its manifest is cited)",
)
@click.option(
    "--methods",
    "methods_text",
    default=None,
    metavar="A,B,...",
    help="the study's methods (default: those of --power-json, else the paper's four)",
)
@click.option("--real-questions", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--attention-checks", type=click.IntRange(min=0), default=5, show_default=True)
@click.option(
    "--min-checks",
    type=click.IntRange(min=0),
    default=None,
    help="attention checks to pass (default: all but one, the paper's 4 of 5)",
)
@click.option(
    "--exclude-speeders",
    "speeder_ms",
    type=click.IntRange(min=1),
    default=None,
    metavar="MS",
    help="declare the speeder rule (off by default)",
)
@click.option("--alpha", type=float, default=0.05, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--out",
    "out_path",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="the markdown file to write, e.g. prereg.md",
)
@design_preregister_options
def preregister_command(
    study_name,
    db_url,
    power_path,
    maps_dir,
    methods_text,
    real_questions,
    attention_checks,
    min_checks,
    speeder_ms,
    alpha,
    seed,
    out_path,
    design=None,
    conditions_text=None,
):
    """Write the study's pre-registration (hypotheses, design, exclusions, analyses, N)."""
    from .preregister import render_preregistration
    from .votes import METHODS

    if design is not None or conditions_text is not None:
        from ..designs.cli import run_design_preregister  # --design: analysis.designs

        return run_design_preregister(locals())

    if not 0 < alpha < 1:
        raise InputError(f"--alpha must be between 0 and 1, got {alpha}")
    if min_checks is not None and min_checks > attention_checks:
        raise InputError(f"--min-checks must be between 0 and {attention_checks}, got {min_checks}")
    power = _read_json(power_path, "--power-json") if power_path else None
    if power is not None and "participants_needed" not in power:
        raise InputError(f"{power_path} is not a power.json written by `normlime power`")
    manifest = _read_json(maps_dir / "manifest.json", "--maps") if maps_dir else None
    record = _study_record(db_url, study_name) if db_url else None
    methods = _methods(methods_text) or tuple((power or {}).get("model", {}).get("methods", ()))
    text = render_preregistration(
        study_name,
        power=power,
        study_record=record,
        maps_manifest=manifest,
        methods=_checked_methods(methods or METHODS),
        real_questions=real_questions,
        attention_checks=attention_checks,
        min_checks=min_checks,
        speeder_ms=speeder_ms,
        alpha=alpha,
        seed=seed,
    )
    _write_text(out_path, text)
    click.echo(f"pre-registration: {out_path}")


def _write_results(write_outputs, analysis, out_dir: Path) -> dict:
    """An analysis's result files (or one line saying why they cannot be written), then
    its warnings on stderr; the paths written."""
    try:
        paths = write_outputs(analysis, out_dir)
    except OSError as exc:
        raise InputError(f"cannot write the results to {out_dir}: {exc.strerror or exc}") from None
    for warning in analysis.warnings:
        click.echo(f"Warning: {warning}", err=True)
    return paths


def _write_text(out_path: Path, text: str) -> None:
    """Write a report file, or one line saying why it cannot be written."""
    try:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(text)
    except OSError as exc:
        raise InputError(f"cannot write {out_path}: {exc.strerror or exc}") from None


def _checked_methods(methods: tuple[str, ...]) -> tuple[str, ...]:
    if len(methods) < 2 or len(set(methods)) != len(methods) or "" in methods:
        raise InputError(f"--methods must name two or more distinct methods, got {methods}")
    return methods


def _read_json(path: Path, flag: str) -> dict:
    import json

    try:
        value = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise InputError(f"{flag}: {path} not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{flag}: {path} is not readable JSON ({exc})") from None
    if not isinstance(value, dict):
        raise InputError(f"{flag}: {path} does not hold a JSON object")
    return value


def _study_record(url: str, name: str) -> dict:
    """The study's mode and adapters, read from the server's database (command layer)."""
    import json

    try:
        from sqlalchemy import select

        from study_server.models import Study
        from study_server.schema import make_engine, normalize_db_url

        engine = make_engine(normalize_db_url(url))
        try:
            with engine.connect() as conn:
                row = conn.execute(
                    select(Study.__table__).where(Study.__table__.c.name == name)
                ).first()
        finally:
            engine.dispose()
    except Exception as exc:  # noqa: BLE001 - any driver failure becomes one readable line
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"cannot read {redact_url(url)}: {message}") from None
    if row is None:
        raise InputError(f"no study named {name!r} in {redact_url(url)}")
    return {"mode": row.mode, "adapters": sorted(json.loads(row.adapters or "{}"))}


COMMANDS.append(preregister_command)
