"""``normlime train`` and ``normlime precompute``.

Heavy imports (torch, the explainers) happen inside the commands so that composing this
module into the ``normlime`` group costs nothing for the web-server commands.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .devices import device_option
from .errors import InputError
from .shipped import shipped_model

__all__ = [
    "COMMANDS",
    "InputError",
    "data_option",
    "device_option",
    "load_data_or_fail",
    "project_option",
    "refuse_with_project",
]


def _load_project(_ctx, _param, value):
    if value is None:
        return None
    from .project import ProjectError, load_project

    try:
        return load_project(value)
    except ProjectError as exc:
        raise InputError(str(exc)) from None


def project_option(func):
    """``--project DIR``: run on a study project's model, data and methods (study.toml)."""
    return click.option(
        "--project",
        default=None,
        type=click.Path(path_type=Path),
        callback=_load_project,
        help="a study project: DIR/study.toml (see `normlime init-project`), or a built-in "
        "one: mnist, mnist-demo, mnist-paper, mnist-noise (the presets stable, demo, paper, "
        "noise as projects)",
    )(func)


def refuse_with_project(ctx: click.Context, names: tuple[str, ...]) -> None:
    """Options of the MNIST replication that a project's study.toml decides instead."""
    from click.core import ParameterSource

    given = [n for n in names if ctx.get_parameter_source(n) != ParameterSource.DEFAULT]
    if given:
        flag = "--" + given[0].replace("_path", "").replace("_spec", "").replace("_", "-")
        raise InputError(f"{flag} does not apply with --project: the project's study.toml sets it")


def data_option(default: str = "embedded"):
    return click.option(
        "--data",
        "data_spec",
        default=default,
        show_default=True,
        metavar="PATH|embedded|download",
        help="MNIST source: a directory with the IDX files (or its MNIST/raw), the embedded "
        "subset, or torchvision's download into ~/.cache/normlime.",
    )


def load_data_or_fail(spec: str):
    """Load MNIST for a command and print which data it uses (or fail with exit 2)."""
    from .data import DataError, load_mnist

    try:
        data = load_mnist(spec)
    except DataError as exc:
        raise InputError(str(exc)) from None
    click.echo(data.summary(), err=True)
    return data


@click.command("train")
@data_option()
@click.option("--epochs", type=click.IntRange(min=1), default=6, show_default=True)
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="seeds weight init, dropout and shuffling",
)
@click.option("--batch-size", type=click.IntRange(min=1), default=128, show_default=True)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=1e-3, show_default=True)
@device_option
@click.option(
    "--out",
    "out_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="where to write the weights (a JSON sidecar is written next to it); required "
    "without --project",
)
@project_option
@click.pass_context
def train_command(ctx, data_spec, epochs, seed, batch_size, lr, device, out_path, project):
    """Train the paper's CNN and save weights plus a JSON sidecar with its test accuracy.

    With --project: train the project's [model] callable into its weights file, with the
    settings of its [train] table.
    """
    from .train import TrainConfig, train_to_file

    if project is not None:
        _train_project(ctx, project, device)
        return
    if out_path is None:
        raise InputError("--out is required (where to write the weights)")

    data = load_data_or_fail(data_spec)
    config = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed)
    with click.progressbar(
        length=epochs, label="training", file=sys.stderr
    ) as bar:

        def progress(epoch, total, loss):
            bar.label = f"training (epoch {epoch}/{total}, loss {loss:.4f})"
            bar.update(1)

        result = train_to_file(data, config, out_path, device=device, progress=progress)
    click.echo(
        f"test accuracy {result.test_accuracy:.2%} after {_epochs(epochs)} "
        f"({result.wall_time_s:.0f} s); wrote {out_path} and {out_path.with_suffix('.json')}"
    )


def _train_project(ctx, project, device) -> None:
    from .project import ProjectError
    from .project_train import train_project

    refuse_with_project(ctx, ("data_spec", "epochs", "seed", "batch_size", "lr", "out_path"))
    try:
        meta = train_project(project, device=device, log=lambda line: click.echo(line, err=True))
    except ProjectError as exc:
        raise InputError(str(exc)) from None
    weights = project.root / project.model["weights"]
    click.echo(f"test accuracy {meta['test_accuracy']:.2%} after "
               f"{_epochs(meta['train']['epochs'])} ({meta['wall_time_s']:.0f} s); wrote "
               f"{weights}")  # fmt: skip


def _epochs(n: int) -> str:
    return f"{n} epoch" + ("" if n == 1 else "s")


#: the model shipped with the package (trained on full MNIST by `normlime train`)
SHIPPED_MODEL = shipped_model()


@click.command("precompute")
@click.option(
    "--model",
    "model_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=SHIPPED_MODEL,
    show_default=True,
    help="weights written by `normlime train`",
)
@data_option()
@click.option(
    "--methods",
    default=None,
    metavar="LIST",
    help="comma-separated methods [default: normlime,lime,smoothgrad,vargrad]; baselines "
    "shap, random, inputxgrad, std on request",
)
@click.option(
    "--preset",
    type=click.Choice(["stable", "paper", "noise", "demo"]),
    default="stable",
    show_default=True,
    help="stable: neighbours drawn from the training data, sparse local models, settings "
    "chosen by a stated rule (docs/stimuli.md; needs full MNIST); paper: the paper's stated "
    "settings (10 images per digit for SmoothGrad/VarGrad); noise: LIME on Gaussian noise "
    "around each image (the former stable preset); demo: under 2 minutes, noisier",
)
@click.option(
    "--per-class",
    type=click.IntRange(min=1),
    default=None,
    help="images per digit for every method (overrides the preset: NormLIME/LIME local "
    "explanations per digit, and the per-image methods' 10)",
)
@click.option(
    "--samples",
    type=click.IntRange(min=2),
    default=None,
    help="samples per explanation for every sampling method (overrides the preset)",
)
@click.option(
    "--n-features",
    type=click.IntRange(min=1),
    default=None,
    help="LIME's K, features per local explanation (overrides the preset)",
)
@click.option(
    "--effective-size",
    type=click.IntRange(min=1),
    default=None,
    help="m, the data neighbourhood's effective sample size: each image's kernel width is "
    "set so that its neighbourhood is worth m training images (overrides the preset)",
)
@click.option("--seed", type=int, default=0, show_default=True, help="images and noise")
@device_option
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="cache of local explanations [default: $NORMLIME_CACHE/local or "
    "~/.cache/normlime/local]",
)
@click.option("--no-cache", is_flag=True, help="neither read nor write the cache")
@click.option("--quiet", is_flag=True, help="no progress bars")
@click.option(
    "--compile/--no-compile",
    "compile_model",
    default=None,
    help="torch.compile the model for LIME's forward passes [default: only on a CPU and for "
    "runs of at least 1M samples, where the faster passes repay the compilation]",
)
@click.option(
    "--disjoint-from",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="another bundle whose images this run must not use (for a stability check with "
    "`normlime inspect-maps DIR --against OTHER`)",
)
@click.option(
    "--keep-local",
    is_flag=True,
    help="also store the local explanations' weight matrix in DIR/local.npz (for studies)",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=None,
    help="samples per forward pass of LIME [default: 200, measured fastest on CPUs; the maps "
    "do not depend on it]",
)
@click.option(
    "--scheduler",
    default=None,
    metavar="tcp://HOST:PORT",
    help="compute the local LIME explanations on this dask.distributed scheduler (they stream "
    "into the cache, so an interrupted run resumes)",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="bundle directory (manifest.json, maps.npz, png/); required without --project "
    "[default with --project: the project's maps folder]",
)
@project_option
@click.pass_context
def precompute_command(
    ctx,
    model_path,
    data_spec,
    methods,
    preset,
    per_class,
    samples,
    n_features,
    effective_size,
    seed,
    device,
    cache_dir,
    no_cache,
    quiet,
    compile_model,
    disjoint_from,
    keep_local,
    batch_size,
    scheduler,
    out_dir,
    project,
):
    """Compute the class-level maps of every method and write a maps bundle.

    With --project: the project's methods on its model and data, into its maps folder.
    """
    import sys

    from .lime import retain_freed_memory
    from .precompute import PrecomputeError, precompute
    from .registry import ALL_METHODS, STUDY_METHODS, parse_methods

    # a process-wide malloc setting: the entry point's decision, not the library's
    # (~1.7x faster forward passes here, identical results)
    retain_freed_memory()
    if project is not None:
        _precompute_project(
            ctx, project, out_dir, device=device, no_cache=no_cache, quiet=quiet,
            cache_dir=cache_dir, compile_model=compile_model, disjoint_from=disjoint_from,
            keep_local=keep_local, scheduler=scheduler, data_spec=data_spec,
            batch_size=batch_size,
        )  # fmt: skip
        return
    if out_dir is None:
        raise InputError("--out is required (the bundle directory)")
    try:
        method_list = parse_methods(methods, allowed=ALL_METHODS, default=STUDY_METHODS)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"--out {out_dir} exists and is not a directory")
    if not model_path.is_file():
        raise InputError(
            f"model file {model_path} does not exist (train one with `normlime train`)"
        )
    data = load_data_or_fail(data_spec)
    try:
        result = precompute(
            model_path=model_path,
            data=data,
            out_dir=out_dir,
            methods=method_list,
            preset=preset,
            per_class=per_class,
            samples=samples,
            n_features=n_features,
            effective_size=effective_size,
            seed=seed,
            device=device,
            cache_dir=cache_dir,
            use_cache=not no_cache,
            progress=not quiet,
            scheduler=scheduler,
            keep_local=keep_local,
            **({} if batch_size is None else {"batch_size": batch_size}),
            compile_model=compile_model,
            disjoint_from=disjoint_from,
            log=lambda line: click.echo(line, err=True),
            argv=sys.argv[1:],
        )
    except PrecomputeError as exc:
        raise InputError(str(exc)) from None
    click.echo(
        f"wrote {len(result.maps)} methods x 10 digits to {result.out_dir} "
        f"({', '.join(result.maps)}) in {result.wall_time_s:.0f} s"
        + (
            f"; {result.cache_hits} of {result.n_local} local explanations from the cache"
            if result.n_local
            else ""
        )
    )


def _precompute_project(ctx, project, out_dir, **options) -> None:
    """A study project (a built-in one included) through the same pipeline: its study.toml
    decides the model, methods and settings; the run's options apply as for MNIST."""
    from click.core import ParameterSource

    from .project import ProjectError
    from .project_precompute import precompute_project

    refuse_with_project(ctx, ("model_path", "methods", "preset", "per_class", "samples",
                              "n_features", "effective_size", "seed"))  # fmt: skip
    given_data = ctx.get_parameter_source("data_spec") != ParameterSource.DEFAULT
    batch = options.pop("batch_size")
    try:
        result = precompute_project(
            project, out_dir=out_dir, device=options["device"],
            use_cache=not options["no_cache"], cache_dir=options["cache_dir"],
            compile_model=options["compile_model"], disjoint_from=options["disjoint_from"],
            keep_local=options["keep_local"], scheduler=options["scheduler"],
            data_spec=options["data_spec"] if given_data else None,
            progress=not options["quiet"], log=lambda line: click.echo(line, err=True),
            argv=sys.argv[1:], **({} if batch is None else {"batch_size": batch}),
        )  # fmt: skip
    except ProjectError as exc:
        raise InputError(str(exc)) from None
    n = len(project.class_names)
    click.echo(f"wrote {len(result.maps)} methods x {n} classes to {result.out_dir} "
               f"({', '.join(result.maps)}) in {result.wall_time_s:.0f} s")  # fmt: skip


@click.command("init-project")
@click.argument("directory", type=click.Path(path_type=Path))
def init_project_command(directory):
    """Write a commented study.toml (and an example model.py) into DIRECTORY.

    The example runs offline on scikit-learn's 8x8 digits: `normlime train --project DIR`,
    then `normlime precompute --project DIR`, then `normlime up --project DIR`.
    """
    from .project import ProjectError, init_project

    try:
        path = init_project(directory)
    except ProjectError as exc:
        raise InputError(str(exc)) from None
    click.echo(f"wrote {path}; edit it, then `normlime train --project {directory}` and "
               f"`normlime precompute --project {directory}`")  # fmt: skip


@click.command("inspect-maps")
@click.argument("bundle_dir", type=click.Path(path_type=Path), required=False)
@click.option(
    "--against",
    type=click.Path(path_type=Path),
    default=None,
    help="a second bundle (another seed, disjoint images) to measure stability against",
)
@data_option()
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("artifacts/inspect"),
    show_default=True,
    help="where to write inspect.json and montage.png",
)
@click.option("--strict", is_flag=True, help="exit with code 1 when the report raises a flag")
@project_option
@click.pass_context
def inspect_maps_command(ctx, bundle_dir, against, data_spec, out_dir, strict, project):
    """Report on a maps bundle's stimuli before a study: stability, sparsity, cues, bytes.

    The digit's ink (for the ink/border mass shares) is taken from the mean training image
    of each digit in --data.  With --project: the project's bundle (BUNDLE_DIR defaults to
    its maps folder) and the ink of each class's mean image in its dataset.
    """
    from .bundle import BundleError, read_bundle
    from .inspect import format_report, inspect_bundle, save_report, write_montage

    if bundle_dir is not None and (Path(bundle_dir) / "stimuli.json").is_file():
        _inspect_stimuli(bundle_dir, out_dir, strict)
        return
    if project is not None:
        refuse_with_project(ctx, ("data_spec",))
        data = _project_data(project)
        bundle_dir = bundle_dir or project.maps_dir
    else:
        if bundle_dir is None:
            raise InputError("give the bundle directory (or --project DIR)")
        data = load_data_or_fail(data_spec)
    images, labels = (
        (data.train_images, data.train_labels) if data.n_train else
        (data.test_images, data.test_labels)
    )  # fmt: skip
    try:
        report = inspect_bundle(bundle_dir, against=against, images=images, labels=labels)
    except BundleError as exc:
        raise InputError(str(exc)) from None
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"--out {out_dir} exists and is not a directory")
    out_dir.mkdir(parents=True, exist_ok=True)
    save_report(report, out_dir / "inspect.json")
    write_montage(read_bundle(bundle_dir), out_dir / "montage.png")
    click.echo(format_report(report))
    click.echo(f"wrote {out_dir / 'inspect.json'} and {out_dir / 'montage.png'}", err=True)
    if strict and report["flags"]:
        raise SystemExit(1)


def _inspect_stimuli(bundle_dir: Path, out_dir: Path, strict: bool) -> None:
    """inspect-maps on a per-image stimuli bundle (normlime make-stimuli)."""
    import json

    from .item_stimuli import StimuliError, format_inspection, inspect_stimuli

    try:
        report = inspect_stimuli(bundle_dir)
    except StimuliError as exc:
        raise InputError(str(exc)) from None
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "inspect.json").write_text(json.dumps(report, indent=2) + "\n")
    click.echo(format_inspection(report))
    if strict and report["flags"]:
        raise SystemExit(1)


@click.command("make-stimuli")
@project_option
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              required=True, help="the stimuli bundle's folder")  # fmt: skip
@click.option("--learn", "n_learn", type=click.IntRange(min=0), default=10, show_default=True,
              help="items of the learning pool (forward simulation's learning phase)")  # fmt: skip
@click.option("--test", "n_test", type=click.IntRange(min=2), default=20, show_default=True,
              help="items of the test pool")  # fmt: skip
@click.option("--seed", type=int, default=None, help="[default: the project's seed]")
@click.option("--maps", "maps_dir", type=click.Path(file_okay=False, path_type=Path),
              default=None, help="the bundle with the aggregated methods' class maps "
              "[default: the project's]")  # fmt: skip
@data_option()
@device_option
@click.pass_context
def make_stimuli_command(ctx, project, out_dir, n_learn, n_test, seed, maps_dir, data_spec,
                         device):  # fmt: skip
    """Per-image stimuli for forward-simulation, distinction and agreement studies: test
    images (half the model gets wrong), each with the model's top classes and every
    method's explanation for each (docs/designs.md)."""
    from .item_stimuli import StimuliError, make_stimuli

    if project is None:
        raise InputError("give --project DIR (or a built-in project such as mnist)")
    from click.core import ParameterSource

    data = None
    given = ctx.get_parameter_source("data_spec") != ParameterSource.DEFAULT
    if project.dataset.get("kind") == "mnist-idx":
        data = load_data_or_fail(data_spec)  # MNIST: --data (default embedded) decides
    elif given:
        raise InputError("--data replaces an MNIST project's data; this project has its own")
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"--out {out_dir} exists and is not a directory")
    try:
        make_stimuli(project, out_dir, n_learn=n_learn, n_test=n_test, seed=seed,
                     device=device, maps_dir=maps_dir, data=data,
                     log=lambda m: click.echo(m, err=True))  # fmt: skip
    except (StimuliError, ValueError) as exc:
        raise InputError(str(exc)) from None


def _project_data(project):
    from .data import DataError
    from .datasets import load_dataset

    project.importable()
    try:
        return load_dataset(project.dataset, project.root, project.class_names)
    except DataError as exc:
        raise InputError(f"{project.path}: {exc}") from None


COMMANDS = [
    train_command,
    precompute_command,
    inspect_maps_command,
    init_project_command,
    make_stimuli_command,
]
