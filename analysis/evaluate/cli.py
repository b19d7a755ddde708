"""``normlime evaluate``: numerical faithfulness of a study project's methods."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from explainers.devices import device_option
from explainers.errors import InputError

__all__ = ["COMMANDS", "evaluate_command"]


def _floats(text: str, what: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise InputError(f"{what} must be numbers separated by commas, got {text!r}") from None
    if not values or any(not 0.0 < v < 1.0 for v in values) or len(set(values)) != len(values):
        raise InputError(f"{what} must be distinct shares strictly between 0 and 1, got {text!r}")
    return tuple(sorted(values))


@click.command("evaluate")
@click.option(
    "--project",
    "project_dir",
    required=True,
    metavar="DIR|NAME",
    help="a study project folder, or a built-in project (mnist, mnist-demo, ...)",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="output directory (rerunning with the same options resumes)",
)
@click.option("--maps", "maps_dir", type=click.Path(file_okay=False, path_type=Path),
              default=None, help="the bundle of the class-level rows [default: the "
              "project's maps; the shipped bundle for the built-in mnist project]")  # fmt: skip
@click.option("--model", "model_file", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="a model file replacing the project's [model] (e.g. what "
              "`normlime train` wrote); --maps must then be that model's bundle")  # fmt: skip
@click.option("--data", "data_spec", default=None, metavar="PATH|embedded|download",
              help="replaces an MNIST project's dataset path")  # fmt: skip
@click.option("--images", type=click.IntRange(min=2), default=100, show_default=True,
              help="test images evaluated, stratified by label")  # fmt: skip
@click.option("--seed", type=int, default=None, help="[default: the project's seed]")
@click.option("--methods", default=None, help="comma-separated [default: every method]")
@click.option(
    "--levels",
    default="per-image,class-level",
    show_default=True,
    help="per-image maps, the bundle's class maps as every image's ranking, or both",
)
@click.option("--steps", type=click.IntRange(min=2), default=16, show_default=True,
              help="deletion/insertion: fractions 0, 1/steps, ..., 1")  # fmt: skip
@click.option("--percentages", default="0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9", show_default=True,
              help="ROAD: shares of the features removed")  # fmt: skip
@click.option("--subsets", type=click.IntRange(min=2), default=100, show_default=True,
              help="faithfulness correlation: random subsets per image")  # fmt: skip
@click.option("--subset-fraction", type=click.FloatRange(0, 1, min_open=True, max_open=True),
              default=0.1, show_default=True,
              help="faithfulness correlation: subset size")  # fmt: skip
@click.option("--randomisation-images", type=click.IntRange(min=2), default=20,
              show_default=True, help="images explained again per randomised layer")  # fmt: skip
@click.option("--bootstrap", type=click.IntRange(min=100), default=1000, show_default=True)
@click.option("--jobs", "n_jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="local worker processes (joblib)")  # fmt: skip
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="torch threads per job")  # fmt: skip
@click.option("--scheduler", default=None, metavar="tcp://HOST:PORT",
              help="run the jobs on this dask.distributed scheduler")  # fmt: skip
@device_option
@click.option("--progress/--no-progress", default=True, show_default=True)
def evaluate_command(project_dir, out_dir, maps_dir, model_file, data_spec, images, seed,
                     methods, levels, steps, percentages, subsets, subset_fraction,
                     randomisation_images, bootstrap, n_jobs, threads, scheduler, device,
                     progress):  # fmt: skip
    """ROAD, deletion/insertion, faithfulness correlation and the model-randomisation check
    for every method of a study project and a random baseline, with bootstrap intervals
    and rank tables (docs/evaluate.md)."""
    from explainers.lime import retain_freed_memory
    from explainers.project import ProjectError, load_project

    from .run import LEVELS, EvaluateSettings, evaluate_project

    # the entry point's process-wide malloc setting, as precompute's (~2x faster forward
    # passes here, identical results)
    retain_freed_memory()
    try:
        project = load_project(project_dir)
    except ProjectError as exc:
        raise InputError(str(exc)) from None
    chosen_levels = tuple(v.strip() for v in levels.split(",") if v.strip())
    if not chosen_levels or any(v not in LEVELS for v in chosen_levels):
        raise InputError(f"--levels takes {' and/or '.join(LEVELS)}, got {levels!r}")
    settings = EvaluateSettings(
        images=images,
        seed=project.seed if seed is None else seed,
        steps=steps,
        percentages=_floats(percentages, "--percentages"),
        subsets=subsets,
        subset_fraction=subset_fraction,
        randomisation_images=randomisation_images,
        bootstrap=bootstrap,
        levels=chosen_levels,
        methods=tuple(m.strip() for m in methods.split(",") if m.strip()) if methods else None,
    )
    try:
        result = evaluate_project(
            project, out_dir, settings, device=device, n_jobs=n_jobs, scheduler=scheduler,
            threads=threads, progress=progress, log=lambda m: click.echo(m, err=True),
            argv=sys.argv, maps_dir=maps_dir, data_spec=data_spec, model_file=model_file,
        )  # fmt: skip
    except ProjectError as exc:
        raise InputError(str(exc)) from None
    click.echo((out_dir / "evaluation.md").read_text())
    return result


COMMANDS = [evaluate_command]
