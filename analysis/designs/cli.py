"""The command-line side of the designs that measure whether an explanation helps:
``normlime analyze --responses``, ``normlime power --design`` and ``normlime preregister
--design`` are options of the existing commands (``analysis/study/cli.py``), which hand
over to the functions here.  Heavy imports stay inside the functions."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import InputError
from ..words import count

__all__ = [
    "analyze_responses",
    "design_power",
    "design_power_options",
    "design_preregister",
    "design_preregister_options",
    "parse_conditions",
    "responses_options",
    "run_analyze_responses",
    "run_design_power",
    "run_design_preregister",
    "uses_design",
]

DESIGNS = ("forward", "distinction", "agreement")
#: power's design options and their defaults (a non-default value needs --design)
POWER_DEFAULTS = {
    "conditions_text": None,
    "odds_ratio_text": None,
    "baseline_accuracy": None,
    "item_sd": 1.0,
    "participant_sd": 0.8,
    "items_per_participant": 20,
    "item_pool": None,
    "classes": 10,
}
#: simulated studies per sample size for --design unless --simulations is given (a fit
#: per study: 500 keeps the search near a minute; the power's Monte Carlo SE is then
#: about 0.018 at 0.8)
DESIGN_SIMULATIONS = 500


def _apply(options):
    def decorate(f):
        for option in reversed(options):
            f = option(f)
        return f

    return decorate


def responses_options(f):
    """``analyze``'s options for --responses."""
    return _apply(
        [
            click.option(
                "--responses",
                "responses_path",
                type=click.Path(path_type=Path),
                metavar="CSV",
                help="a forward-simulation, distinction or agreement export (one row per "
                "answer): the mixed model of correctness by condition, Wald intervals; no "
                "bootstrap unless --bootstrap N is given (docs/designs-analysis.md)",
            ),
            click.option(
                "--baseline",
                default=None,
                metavar="NAME",
                help="with --responses: the condition the others are compared with (default: "
                "none, no explanation)",
            ),
            click.option(
                "--chance",
                type=float,
                default=None,
                metavar="P",
                help="with --responses: forward simulation's chance level, 1 / the classes "
                "offered (default: read from the responses)",
            ),
        ]
    )(f)


def design_power_options(f):
    """``power``'s options for --design."""
    return _apply(
        [
            click.option(
                "--design",
                type=click.Choice(DESIGNS),
                default=None,
                help="power a study of whether explanations help (conditions between "
                "participants; the mixed model of `analyze --responses`) instead of the "
                "preference study",
            ),
            click.option(
                "--conditions",
                "conditions_text",
                default=None,
                metavar="none,A,...",
                help="with --design: the conditions, 'none' (no explanation, the baseline) "
                "among them (default: none,normlime)",
            ),
            click.option(
                "--odds-ratio",
                "odds_ratio_text",
                default=None,
                metavar="R|A=R,...",
                help="with --design: the odds ratio of a correct answer against the baseline "
                "to detect, one for every explanation or one per condition",
            ),
            click.option(
                "--baseline-accuracy",
                type=float,
                default=None,
                help="with --design: the baseline's accuracy for a typical participant and "
                "item (default: forward 0.6, distinction 0.45, agreement 0.6)",
            ),
            click.option(
                "--item-sd",
                type=float,
                default=1.0,
                show_default=True,
                help="with --design: SD of the items' random intercepts (log-odds)",
            ),
            click.option(
                "--participant-sd",
                type=float,
                default=0.8,
                show_default=True,
                help="with --design: SD of the participants' random intercepts (log-odds)",
            ),
            click.option(
                "--items-per-participant",
                type=click.IntRange(min=2),
                default=20,
                show_default=True,
                help="with --design: test items each participant answers",
            ),
            click.option(
                "--items",
                "item_pool",
                type=click.IntRange(min=2),
                default=None,
                help="with --design: the item pool (default: --items-per-participant, so "
                "everybody answers every item)",
            ),
            click.option(
                "--classes",
                type=click.IntRange(min=2),
                default=10,
                show_default=True,
                help="with --design forward: the classes a participant chooses from",
            ),
        ]  # fmt: skip
    )(f)


def design_preregister_options(f):
    """``preregister``'s options for --design."""
    return _apply(
        [
            click.option(
                "--design",
                type=click.Choice(DESIGNS),
                default=None,
                help="register a study of whether explanations help (conditions between "
                "participants) instead of the preference study; --real-questions is then "
                "the test items per participant",
            ),
            click.option(
                "--conditions",
                "conditions_text",
                default=None,
                metavar="none,A,...",
                help="with --design: the conditions, 'none' among them (default: those of "
                "--power-json, else none,normlime)",
            ),
        ]
    )(f)


def uses_design(options: dict) -> bool:
    """Whether ``power`` was given --design or any of its options (an option without
    --design is refused by :func:`run_design_power`, never ignored)."""
    return options.get("design") is not None or any(
        options.get(k) != v for k, v in POWER_DEFAULTS.items()
    )


def _source(name: str):
    from click.core import ParameterSource

    return click.get_current_context().get_parameter_source(name) != ParameterSource.DEFAULT


def run_analyze_responses(options: dict) -> None:
    """``analyze --responses`` from the command's options (its ``locals()``); the
    bootstrap is off unless --bootstrap is given."""
    if options["responses_path"] is None:
        raise InputError("--baseline and --chance go with --responses CSV")
    if options["db_url"] is not None or options["votes_path"] is not None:
        raise InputError("give exactly one of --db URL or --votes CSV or --responses CSV")
    votes_only = {
        "--methods": options["methods_text"],
        "--reference": options["reference"],
        "--real-questions": options["real_questions"],
        "--attention-checks": options["attention_checks"],
        "--project": options["project_dir"],
        "--evaluation": options["evaluation_dir"],
    }
    analyze_responses(
        options["responses_path"],
        options["out_dir"],
        baseline=options["baseline"],
        chance=options["chance"],
        min_checks=options["min_checks"],
        include_incomplete=options["include_incomplete"],
        alpha=options["alpha"],
        speeder_ms=options["speeder_ms"],
        bootstrap=options["bootstrap"] if _source("bootstrap") else 0,
        seed=options["seed"],
        study=options["study"],
        mode=options["mode"],
        votes_only=votes_only,
    )


def run_design_power(options: dict) -> None:
    """``power --design`` from the command's options."""
    if options["design"] is None:
        given = [k for k, v in POWER_DEFAULTS.items() if options.get(k) != v]
        flags = ", ".join("--" + k.replace("_text", "").replace("_", "-").replace(
            "item-pool", "items") for k in given)  # fmt: skip
        raise InputError(f"{flags} go{'es' if len(given) == 1 else ''} with --design")
    if options["pilot_path"] is not None or options["shares"] is not None:
        raise InputError("--design plans a study of its own: drop --pilot and --shares")
    if not 0 < options["target"] < 1 or not 0 < options["alpha"] < 1:
        raise InputError("--power and --alpha must be between 0 and 1")
    if (options["pay_per_hour"] is None) != (options["minutes_per_survey"] is None):
        raise InputError("--pay-per-hour and --minutes-per-survey go together")
    design_power(
        design=options["design"],
        conditions_text=options["conditions_text"],
        odds_ratio_text=options["odds_ratio_text"],
        baseline_accuracy=options["baseline_accuracy"],
        item_sd=options["item_sd"],
        participant_sd=options["participant_sd"],
        items_per_participant=options["items_per_participant"],
        items=options["item_pool"],
        target=options["target"],
        alpha=options["alpha"],
        simulations=options["simulations"] if _source("simulations") else DESIGN_SIMULATIONS,
        max_participants=options["max_participants"],
        keep_rate=options["keep_rate"],
        pay_per_hour=options["pay_per_hour"],
        minutes_per_survey=options["minutes_per_survey"],
        platform_fee=options["platform_fee"],
        seed=options["seed"],
        out_dir=options["out_dir"],
        classes=options["classes"],
    )


def run_design_preregister(options: dict) -> None:
    """``preregister --design`` from the command's options."""
    from analysis.study.cli import _read_json, _study_record

    if options["design"] is None:
        raise InputError("--conditions goes with --design")
    if options["methods_text"] is not None:
        raise InputError("--design registers conditions, not methods: use --conditions")
    if not 0 < options["alpha"] < 1:
        raise InputError(f"--alpha must be between 0 and 1, got {options['alpha']}")
    checks, min_checks = options["attention_checks"], options["min_checks"]
    if min_checks is not None and min_checks > checks:
        raise InputError(f"--min-checks must be between 0 and {checks}, got {min_checks}")
    power_path, maps_dir, db_url = options["power_path"], options["maps_dir"], options["db_url"]
    design_preregister(
        study_name=options["study_name"],
        design=options["design"],
        conditions_text=options["conditions_text"],
        power=_read_json(power_path, "--power-json") if power_path else None,
        study_record=_study_record(db_url, options["study_name"]) if db_url else None,
        maps_manifest=_read_json(maps_dir / "manifest.json", "--maps") if maps_dir else None,
        attention_checks=checks,
        min_checks=min_checks,
        speeder_ms=options["speeder_ms"],
        alpha=options["alpha"],
        seed=options["seed"],
        items_per_participant=options["real_questions"] if _source("real_questions") else None,
        out_path=options["out_path"],
    )


def analyze_responses(
    path: Path,
    out_dir: Path,
    *,
    baseline: str | None,
    chance: float | None,
    min_checks: int | None,
    include_incomplete: bool,
    alpha: float,
    speeder_ms: int | None,
    bootstrap: int,
    seed: int,
    study: str | None,
    mode: str | None,
    votes_only: dict,
) -> None:
    """``normlime analyze --responses CSV``: validate, filter, fit, write, summarise."""
    from analysis.study.cli import _write_results

    from .pipeline import run_design_analysis
    from .report import conclusions, write_outputs
    from .responses import ResponsesError, read_responses_csv

    given = [flag for flag, value in votes_only.items() if value not in (None, False)]
    if given:
        raise InputError(
            f"{', '.join(given)} belong{'s' if len(given) == 1 else ''} to the votes analysis "
            "(--votes/--db), not to --responses"
        )
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"--out {out_dir} exists and is not a directory")
    try:
        analysis = run_design_analysis(
            read_responses_csv(path),
            source=str(path),
            baseline=baseline,
            chance=chance,
            min_checks=min_checks,
            include_incomplete=include_incomplete,
            speeder_ms=speeder_ms,
            alpha=alpha,
            study=study,
            mode=mode,
            bootstrap=bootstrap,
            seed=seed,
        )
    except ResponsesError as exc:  # and the VotesError of the shared parsers
        raise InputError(str(exc)) from None
    except ValueError as exc:
        raise InputError(str(exc)) from None
    paths = _write_results(write_outputs, analysis, out_dir)
    sel, model = analysis.selection, analysis.model
    click.echo(
        f"{analysis.task}: kept {sel.kept} of {count(sel.total, 'participant')}; share correct "
        + ", ".join(f"{c} {model.accuracy[c]:.3f}" for c in analysis.conditions)
    )
    if model.fitted:
        click.echo(
            f"primary mixed model (log-odds ratio vs {model.baseline}, 95% Wald CI): "
            + ", ".join(
                f"{c} {model.coef[c]:.3f} [{model.ci[c][0]:.3f}, {model.ci[c][1]:.3f}]"
                for c in model.others
            )
        )
        verdict = conclusions(analysis)
        if verdict["none_differ"]:
            click.echo("no condition differed from the baseline beyond chance")
        else:
            for key, word in (("better", "more"), ("worse", "less")):
                for c in verdict[key]:
                    click.echo(f"{c}: correct {word} often than {model.baseline}")
    else:
        click.echo(f"primary mixed model: not fitted ({model.note})")
    click.echo(f"report: {paths['report.md']}")


def parse_conditions(text: str | None, baseline: str = "none") -> tuple[str, ...]:
    """--conditions none,normlime,... : the baseline first, two or more distinct names."""
    if text is None:
        return (baseline, "normlime")
    names = tuple(c.strip().lower() for c in text.split(","))
    if len(names) < 2 or len(set(names)) != len(names) or "" in names:
        raise InputError(f"--conditions must name two or more distinct conditions, got {text!r}")
    if baseline not in names:
        raise InputError(f"--conditions must include the baseline {baseline!r}, got {text!r}")
    return (baseline, *(c for c in names if c != baseline))


def _odds_ratios(text: str | None, conditions: tuple[str, ...]) -> dict[str, float]:
    """--odds-ratio 1.5 (every explanation condition) or normlime=1.5,lime=1.2."""
    import math

    others = conditions[1:]
    if text is None:
        raise InputError("--design needs --odds-ratio: the effect to detect (e.g. 1.5)")
    out: dict[str, float] = {}
    try:
        if "=" not in text:
            out = {c: float(text) for c in others}
        else:
            for part in text.split(","):
                name, value = part.split("=")
                out[name.strip().lower()] = float(value)
    except ValueError:
        raise InputError(
            f"--odds-ratio must be a number or NAME=VALUE pairs separated by commas, got {text!r}"
        ) from None
    unknown = set(out) - set(others)
    if unknown:
        raise InputError(
            f"--odds-ratio names {', '.join(sorted(unknown))}, not among the explanation "
            f"conditions ({', '.join(others)})"
        )
    if any(not (math.isfinite(v) and v > 0) for v in out.values()):
        raise InputError(f"--odds-ratio values must be above 0, got {text!r}")
    return {c: out.get(c, 1.0) for c in others}


def design_power(
    *,
    design: str,
    conditions_text: str | None,
    odds_ratio_text: str | None,
    baseline_accuracy: float | None,
    item_sd: float,
    participant_sd: float,
    items_per_participant: int,
    items: int | None,
    target: float,
    alpha: float,
    simulations: int,
    max_participants: int,
    keep_rate: float | None,
    pay_per_hour: float | None,
    minutes_per_survey: float | None,
    platform_fee: float,
    seed: int,
    out_dir: Path,
    classes: int,
) -> None:
    """``normlime power --design forward|distinction|agreement``."""
    import json
    import math

    from analysis.study.power import study_cost

    from .power import DesignPowerModel, design_power_search, plot_design_power

    conditions = parse_conditions(conditions_text)
    ratios = _odds_ratios(odds_ratio_text, conditions)
    for name, value in (("--item-sd", item_sd), ("--participant-sd", participant_sd)):
        if not (math.isfinite(value) and value >= 0):
            raise InputError(f"{name} must be a number >= 0, got {value}")
    if keep_rate is not None and not 0 < keep_rate <= 1:
        raise InputError(f"--keep-rate must be in (0, 1], got {keep_rate}")
    try:
        model = DesignPowerModel(
            task=design,
            conditions=conditions,
            odds_ratios=tuple(ratios[c] for c in conditions[1:]),
            baseline_accuracy=baseline_accuracy,
            item_sd=item_sd,
            participant_sd=participant_sd,
            items_per_participant=items_per_participant,
            items=items or items_per_participant,
            classes=classes,
        )
    except ValueError as exc:
        raise InputError(str(exc)) from None

    def progress(point):
        click.echo(
            f"  n = {point['n']}: "
            + ", ".join(f"{c} {point['power'][c]:.3f}" for c in conditions[1:])
            + f" ({point['failed_fits']} failed fits)",
            err=True,
        )

    search = design_power_search(
        model, target=target, alpha=alpha, simulations=simulations, seed=seed,
        max_participants=max_participants, progress=progress,
    )  # fmt: skip
    result = {
        "design": design,
        "participants_needed": search["needed"],
        "participants_needed_by_condition": search["needed_by_condition"],
        "curve": search["curve"],
        "test": "two-sided Wald z test of each condition's log-odds ratio against the baseline "
        "in glmer(correct ~ condition + (1|participant) + (1|item), binomial), the primary "
        "analysis of `normlime analyze --responses`",
        "simulations": simulations,
        "seed": seed,
        "power": target,
        "alpha": alpha,
        "model": model.as_dict(),
        "max_participants": max_participants,
        "keep_rate": keep_rate or 1.0,
    }
    if pay_per_hour is not None and search["needed"] is not None:
        result["cost"] = study_cost(
            search["needed"], keep_rate=keep_rate or 1.0, pay_per_hour=pay_per_hour,
            minutes_per_survey=minutes_per_survey, platform_fee=platform_fee,
        )  # fmt: skip
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "power.json").write_text(json.dumps(result, indent=2) + "\n")
        plot_design_power(result, out_dir / "power.png")
    except OSError as exc:
        raise InputError(f"cannot write to {out_dir}: {exc.strerror or exc}") from None
    click.echo(
        f"design {design}: conditions {', '.join(conditions)} (baseline {conditions[0]}); odds "
        "ratios "
        + ", ".join(f"{c} {ratios[c]:g}" for c in conditions[1:])
        + f"; baseline accuracy {model.baseline_accuracy:g}; participant SD {participant_sd:g}, "
        f"item SD {item_sd:g}; {items_per_participant} test items each"
    )
    needed = search["needed"]
    click.echo(
        f"power {target} (alpha {alpha}) for every condition vs {conditions[0]}: "
        + (
            f"{needed} kept participants in all ({math.ceil(needed / len(conditions))} per "
            "condition)"
            if needed is not None
            else f"not reached with {max_participants} participants"
        )  # fmt: skip
    )
    if "cost" in result:
        cost = result["cost"]
        click.echo(
            f"cost: recruit {cost['participants_to_recruit']} x {cost['pay_per_participant']:.2f}"
            f" = {cost['payments']:.2f} + fee {cost['platform_fee']:.2f} = {cost['total']:.2f}"
        )
    click.echo(f"power.json: {out_dir / 'power.json'}")


def design_preregister(
    *,
    study_name: str,
    design: str,
    conditions_text: str | None,
    power: dict | None,
    study_record: dict | None,
    maps_manifest: dict | None,
    attention_checks: int,
    min_checks: int | None,
    speeder_ms: int | None,
    alpha: float,
    seed: int,
    items_per_participant: int | None,
    out_path: Path,
) -> None:
    """``normlime preregister --design forward|distinction|agreement``."""
    from analysis.study.cli import _write_text

    from .preregister import render_design_preregistration

    if power is not None and power.get("design") not in (None, design):
        raise InputError(
            f"--power-json was written for the {power.get('design')} design, not {design}"
        )
    if power is not None and "design" not in power:
        raise InputError("--power-json was written for the preference study; run `normlime "
                         f"power --design {design}` for this design")  # fmt: skip
    if conditions_text is None and power is not None:
        conditions = tuple(power["model"]["conditions"])
    else:
        conditions = parse_conditions(conditions_text)
    text = render_design_preregistration(
        study_name,
        task=design,
        conditions=conditions,
        power=power,
        study_record=study_record,
        maps_manifest=maps_manifest,
        attention_checks=attention_checks,
        min_checks=min_checks,
        speeder_ms=speeder_ms,
        alpha=alpha,
        seed=seed,
        items_per_participant=items_per_participant,
    )
    _write_text(out_path, text)
    click.echo(f"pre-registration ({design} design): {out_path}")
