"""``--project`` on the benchmarks and ``reproduce``: which study projects they accept.

KAR retrains the paper's CNN (on kept input pixels, or on its second conv layer's
features), and occlusion and ``reproduce`` explain it on 28 x 28 grey MNIST images: their
engines know that network and those images only.  So they accept a study project whose
``[model] file`` holds a normlime MNIST CNN and whose ``[dataset]`` is MNIST
(``mnist-idx``) -- the built-in ``mnist`` projects are -- and refuse any other in one line.
"""

from __future__ import annotations

import click

from explainers.errors import InputError

__all__ = ["BenchmarkProject", "InputError", "benchmark_project_option"]

#: the methods each benchmark ranks by (a project's other methods are left out)
BENCHMARK_METHODS = ("normlime", "lime", "shap", "smoothgrad", "vargrad", "random",
                     "inputxgrad", "std")  # fmt: skip


class BenchmarkProject:
    """What a benchmark takes from a study project: model file, data, seed, methods."""

    def __init__(self, project, model_path, methods):
        self.project, self.model_path, self.methods = project, model_path, methods

    @property
    def data_spec(self) -> str:
        """The project's MNIST source as a ``--data`` value: a path written in study.toml
        is relative to the project's folder, whatever the working directory."""
        path = str(self.project.dataset.get("path", "embedded"))
        return path if path in ("embedded", "download") else str(self.project.root / path)

    @property
    def seed(self) -> int:
        return self.project.seed


def _accept(command: str, value):
    from explainers.model import MnistCNN, ModelFileError, load
    from explainers.project import ProjectError, load_project
    from explainers.user_model import resolve_file

    try:
        project = load_project(value)
    except ProjectError as exc:
        raise InputError(str(exc)) from None
    why = None
    if project.dataset.get("kind") != "mnist-idx":
        why = f"its [dataset] kind is {project.dataset.get('kind')!r}, not MNIST (mnist-idx)"
    elif not project.model.get("file"):
        why = "its [model] is a callable, not a file holding a normlime MNIST CNN"
    else:
        path = resolve_file(project.root, project.model["file"])
        try:
            ok = isinstance(load(path), MnistCNN)
        except (ModelFileError, OSError, RuntimeError, ValueError):
            ok = False
        if not ok:
            why = f"its [model] file {path} is not a normlime MNIST CNN"
    if why:
        raise InputError(
            f"`normlime {command} --project {value}`: {command} runs on the paper's CNN and "
            f"28 x 28 MNIST images (the built-in mnist projects, or a project of that shape); "
            f"{why}"
        )
    methods = tuple(
        m.name for m in project.methods
        if m.kind == m.name and not m.params and m.name in BENCHMARK_METHODS
    )  # fmt: skip
    if not methods:
        raise InputError(
            f"`normlime {command} --project {value}`: none of its methods is one {command} "
            f"ranks by ({', '.join(BENCHMARK_METHODS)}, as registered, without parameters)"
        )
    return BenchmarkProject(project, path, methods)


def benchmark_project_option(command: str):
    """``--project DIR|NAME``: the model file, MNIST data, seed and methods of a project."""

    def callback(_ctx, _param, value):
        return None if value is None else _accept(command, value)

    return click.option(
        "--project",
        "bench_project",
        default=None,
        callback=callback,
        metavar="DIR|NAME",
        help="take the model, MNIST data, seed and methods from a study project (e.g. the "
        "built-in mnist-paper); accepted: a [model] file holding a normlime MNIST CNN and an "
        "mnist-idx dataset",
    )
