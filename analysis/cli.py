"""The analysis commands: the human study (``analysis.study``), the numerical benchmarks
(``analysis.benchmarks``) and ``normlime reproduce``, which composes both (and the
explainers) into one report."""

from __future__ import annotations

import json
from pathlib import Path

import click

from .benchmarks.cli import COMMANDS as BENCHMARK_COMMANDS
from .errors import InputError, benchmark_project_option
from .evaluate.cli import COMMANDS as EVALUATE_COMMANDS
from .study.cli import COMMANDS as STUDY_COMMANDS

__all__ = ["COMMANDS", "reproduce_command"]


@click.command("reproduce")
@click.option(
    "--preset",
    type=click.Choice(["smoke", "cpu", "paper"]),
    default="cpu",
    show_default=True,
    help="smoke: under a minute, the code path only; cpu: ~17 min on 2 cores with full "
    "MNIST; paper: the paper's protocol (a GPU or a cluster)",
)
@click.option(
    "--votes",
    "votes_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="the study's votes export (default: a labelled SIMULATED study)",
)
@click.option(
    "--model",
    "model_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="the CNN to explain [default: the shipped model]",
)
@click.option(
    "--data",
    "data_spec",
    default=None,
    metavar="PATH|embedded|download",
    help="MNIST for the benchmarks [default: the preset's]",
)
@click.option(
    "--scheduler",
    default=None,
    metavar="tcp://HOST:PORT",
    help="run the benchmark jobs on this Dask scheduler",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="output folder (rerun the same command to resume)",
)
@click.option("--progress/--no-progress", default=True, show_default=True,
              help="each long step's progress bar, on stderr")  # fmt: skip
@benchmark_project_option("reproduce")
def reproduce_command(
    preset, votes_path, model_path, data_spec, scheduler, seed, out_dir, progress, bench_project
):
    """Reproduce the paper into one report: model, maps, study analysis, KAR, occlusion.

    Writes report.md, a self-contained report.html and claims.json (each of the
    paper's claims with our figure and a verdict) to --out.  With --project, the maps
    are the project's (precompute --project) and its model and data are explained.
    """
    from explainers.lime import retain_freed_memory
    from explainers.precompute import PrecomputeError

    from .reproduce import run_reproduce
    from .study.votes import VotesError

    retain_freed_memory()  # a process-wide malloc setting: the entry point's decision

    if votes_path is not None and not votes_path.is_file():
        raise InputError(f"--votes {votes_path} not found")
    if model_path is not None and not model_path.is_file():
        raise InputError(f"--model {model_path} not found")
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"--out {out_dir} exists and is not a directory")
    try:
        paths = run_reproduce(
            out_dir,
            preset_name=preset,
            votes_path=votes_path,
            model_path=model_path,
            data_spec=data_spec,
            scheduler=scheduler,
            seed=seed if bench_project is None else bench_project.seed,
            project=None if bench_project is None else bench_project.project,
            log=lambda m: click.echo(m, err=True),
            progress=progress,
        )
    except (VotesError, PrecomputeError) as exc:
        raise InputError(str(exc)) from None
    except ValueError as exc:  # a benchmark's BenchmarkError or a setting's validation
        raise InputError(str(exc)) from None
    claims = json.loads(paths["claims.json"].read_text())
    for c in claims:
        click.echo(f"{c['verdict']:>15}  {c['claim']}")
    click.echo(f"report: {paths['report.md']} and {paths['report.html']}")


COMMANDS: list = [*STUDY_COMMANDS, *BENCHMARK_COMMANDS, *EVALUATE_COMMANDS, reproduce_command]
