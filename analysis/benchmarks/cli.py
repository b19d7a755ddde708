"""``normlime kar`` and ``normlime occlusion``: the numerical benchmarks.

Heavy modules (torch, pandas, the explainers, dask) are imported inside the command
bodies so that composing these commands into the ``normlime`` group costs nothing.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import click

from explainers.devices import device_option

from ..errors import InputError, benchmark_project_option

__all__ = ["COMMANDS", "InputError", "kar_command", "occlusion_command"]



def _echo(msg: str) -> None:
    click.echo(msg, err=True)


@contextlib.contextmanager
def _user_errors():
    """The benchmarks' bad input (a ValueError with one line) as a user error."""
    try:
        yield
    except ValueError as exc:  # BenchmarkError, a setting's validation, too few images
        raise InputError(str(exc)) from None



def _from_project(bench, model_path, data_spec, seed, methods):
    """A project's model file, data, seed and methods, unless given on the command line."""
    click_ctx = click.get_current_context()
    from click.core import ParameterSource

    if click_ctx.get_parameter_source("seed") == ParameterSource.DEFAULT:
        seed = bench.seed
    return (
        model_path or bench.model_path,
        data_spec or bench.data_spec,
        seed,
        methods or ",".join(bench.methods),
    )


def _parse_methods(text: str | None, allowed, default) -> tuple[str, ...]:
    from explainers.registry import parse_methods

    try:
        return parse_methods(text, allowed=allowed, default=default)
    except ValueError as exc:
        raise InputError(str(exc)) from None


def _parse_fractions(text: str | None, default) -> tuple[float, ...]:
    if text is None:
        return tuple(default)
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise InputError(f"--fractions must be numbers separated by commas, got {text!r}") from None
    if not values:
        raise InputError("--fractions is empty")
    bad = [v for v in values if not 0.0 < v < 1.0]
    if bad:
        raise InputError(
            f"--fractions are fractions of features removed, strictly between 0 and 1 "
            f"(got {', '.join(f'{v:g}' for v in bad)})"
        )
    if len(set(values)) != len(values):
        raise InputError("--fractions names a fraction twice")
    return tuple(sorted(values))





_common = [
    click.option(
        "--preset",
        type=click.Choice(["smoke", "cpu", "paper"]),
        default="paper",
        show_default=True,
        help="smoke: ~1 min on the embedded subset; cpu: ~20 min on 2 cores with full MNIST; "
        "paper: the paper's full protocol. Explicit options override the preset.",
    ),
    click.option(
        "--data",
        "data_spec",
        default=None,
        metavar="PATH|embedded|download",
        help="MNIST: an IDX directory (e.g. ../shared/data/mnist), 'embedded' or 'download' "
        "[default: the preset's: smoke embedded, cpu/paper download]",
    ),
    click.option("--seed", type=int, default=0, show_default=True, help="master seed"),
    click.option(
        "--jobs",
        "n_jobs",
        type=click.IntRange(min=1),
        default=None,
        help="local worker processes (joblib) [default: the preset's]",
    ),
    click.option(
        "--threads",
        type=click.IntRange(min=1),
        default=None,
        help="torch threads per job [default: cores / jobs]",
    ),
    click.option(
        "--scheduler",
        default=None,
        metavar="tcp://HOST:PORT",
        help="run the jobs on this dask.distributed scheduler instead of locally",
    ),
    device_option,
    click.option("--progress/--no-progress", default=True, show_default=True),
    click.option(
        "--out",
        "out_dir",
        type=click.Path(file_okay=False, path_type=Path),
        required=True,
        help="output directory (rerunning with the same options resumes)",
    ),
]


def _with_common(fn):
    for option in reversed(_common):
        fn = option(fn)
    return fn


@click.command("kar")
@click.option(
    "--features",
    type=click.Choice(["pixels", "conv"]),
    default="pixels",
    show_default=True,
    help="rank and remove input pixels, or the second conv layer's outputs (64x14x14)",
)
@click.option(
    "--methods",
    default=None,
    help="comma-separated: normlime,lime,shap,smoothgrad,vargrad,random,inputxgrad,std "
    "[default: the preset's]",
)
@click.option("--fractions", default=None, help="fractions removed, e.g. 0.1,0.5,0.9")
@click.option("--runs", type=click.IntRange(min=1), default=None, help="retrainings per cell")
@click.option("--train-size", type=click.IntRange(min=10), default=None)
@click.option("--test-size", type=click.IntRange(min=10), default=None)
@click.option("--epochs", type=click.IntRange(min=1), default=None)
@click.option(
    "--ranking",
    type=click.Choice(["global", "class", "per-image"]),
    default="global",
    show_default=True,
    help="one ranking per method (paper); per predicted class; per image (Hooker et al.)",
)
@click.option(
    "--replacement",
    type=click.Choice(["mean", "zero"]),
    default="mean",
    show_default=True,
    help="value of removed features: training mean (pixels 0.1307; conv per-feature mean) or 0",
)
@click.option(
    "--explain-per-class",
    type=click.IntRange(min=1),
    default=None,
    help="training images explained per predicted class to build the rankings",
)
@click.option(
    "--mask-control/--no-mask-control",
    default=None,
    help="also train on the binary keep-mask alone [default: on for class/per-image]",
)
@click.option(
    "--model",
    "model_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="explain this trained model instead of training one in --out",
)
@_with_common
@benchmark_project_option("kar")
def kar_command(
    features,
    methods,
    fractions,
    runs,
    train_size,
    test_size,
    epochs,
    ranking,
    replacement,
    explain_per_class,
    mask_control,
    model_path,
    preset,
    data_spec,
    seed,
    n_jobs,
    threads,
    scheduler,
    device,
    progress,
    out_dir,
    bench_project,
):
    """Keep-And-Retrain: remove the least important features, retrain, report error gain.

    Writes kar.csv (one row per retraining), kar-summary.csv, kar.md (the table), kar.png
    (error gain against fraction removed) and kar.json (settings, timings) to --out.
    Finished retrainings are kept in --out/kar-jobs.jsonl: rerun the same command to
    resume an interrupted run.
    """
    from .api import kar_benchmark
    from .presets import kar_preset
    from .rankings import KAR_METHODS

    p = kar_preset(preset, features)
    if bench_project is not None:
        model_path, data_spec, seed, methods = _from_project(
            bench_project, model_path, data_spec, seed, methods)  # fmt: skip
    t0 = time.perf_counter()
    with _user_errors():
        kar_benchmark(
            out_dir, features=features, preset=preset, model_path=model_path,
            data_spec=data_spec, seed=seed, n_jobs=n_jobs, threads=threads,
            scheduler=scheduler, progress=progress, log=_echo,
            methods=_parse_methods(methods, KAR_METHODS, p.methods),
            fractions=_parse_fractions(fractions, p.fractions), runs=runs, ranking=ranking,
            replacement=replacement, train_size=train_size, test_size=test_size,
            epochs=epochs, explain_per_class=explain_per_class, mask_control=mask_control,
            device=device,
        )  # fmt: skip
    click.echo((out_dir / "kar.md").read_text())
    click.echo(
        f"wall time {time.perf_counter() - t0:.0f} s; wrote kar.csv, kar.md, kar.png to {out_dir}"
    )


@click.command("occlusion")
@click.option(
    "--methods",
    default=None,
    help="comma-separated: inputxgrad,std,smoothgrad,vargrad,lime,normlime,shap,random "
    "[default: the preset's]",
)
@click.option("--images", type=click.IntRange(min=1), default=None, help="test images")
@click.option("--step", type=click.IntRange(1, 784), default=None, help="pixels per step")
@click.option(
    "--top-k",
    type=click.IntRange(2, 10),
    default=10,
    show_default=True,
    help="classes whose probabilities give the entropy and SD (Zhang & Gao: all 10 on MNIST)",
)
@click.option(
    "--order",
    type=click.Choice(["abs", "signed"]),
    default="abs",
    show_default=True,
    help="occlude by descending |importance| or signed importance (RISE)",
)
@click.option(
    "--value",
    type=click.Choice(["mean", "zero"]),
    default="mean",
    show_default=True,
    help="occlusion value: the training mean 0.1307 or 0",
)
@click.option(
    "--explain-per-class",
    type=click.IntRange(min=1),
    default=None,
    help="training images per class explained for NormLIME's class ranking",
)
@click.option(
    "--model",
    "model_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="the trained model to explain [default: train one into --out per the preset]",
)
@_with_common
@benchmark_project_option("occlusion")
def occlusion_command(
    methods,
    images,
    step,
    top_k,
    order,
    value,
    explain_per_class,
    model_path,
    preset,
    data_spec,
    seed,
    n_jobs,
    threads,
    scheduler,
    device,
    progress,
    out_dir,
    bench_project,
):
    """Occlude pixels by descending importance and track p(target), entropy and SD (Zhang &
    Gao), plus RISE's deletion and insertion AUC.

    Writes occlusion.csv (curves), occlusion-auc.csv (per image), occlusion-summary.csv,
    occlusion.md, occlusion.png and one occlusion-<metric>.png per metric to --out.
    Rerun the same command to resume.
    """
    from .api import occlusion_benchmark
    from .occlusion import OCCLUSION_METHODS
    from .presets import occlusion_preset

    p = occlusion_preset(preset)
    if bench_project is not None:
        model_path, data_spec, seed, methods = _from_project(
            bench_project, model_path, data_spec, seed, methods)  # fmt: skip
    t0 = time.perf_counter()
    with _user_errors():
        occlusion_benchmark(
            out_dir, preset=preset, model_path=model_path, data_spec=data_spec, seed=seed,
            n_jobs=n_jobs, threads=threads, scheduler=scheduler, device=device,
            progress=progress, log=_echo,
            methods=_parse_methods(methods, OCCLUSION_METHODS, p.methods), images=images,
            step=step, top_k=top_k, order=order, value=value,
            explain_per_class=explain_per_class,
        )  # fmt: skip
    click.echo((out_dir / "occlusion.md").read_text())
    click.echo(
        f"wall time {time.perf_counter() - t0:.0f} s; wrote occlusion.csv, occlusion.md, "
        f"occlusion.png to {out_dir}"
    )


COMMANDS = [kar_command, occlusion_command]
