"""A study project: one ``study.toml`` names the model, data, classes, methods and survey.

``normlime init-project DIR`` writes a commented example (``_templates/study.toml``) that
runs offline; :func:`load_project` reads and validates one, every problem reported as a
:class:`ProjectError` of one line naming the file and the key.  Without ``--project`` the
commands run the MNIST replication exactly as before.
"""

from __future__ import annotations

import re
import shutil
import sys
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path

from .errors import UserError  # noqa: E402

__all__ = [
    "ProjectError",
    "MethodConfig",
    "Project",
    "PROJECT_FILE",
    "AGGREGATED_KINDS",
    "init_project",
    "load_project",
    "builtin_projects",
    "resolve_project",
    "project_maps_dir",
    "with_data",
    "with_model",
]

PROJECT_FILE = "study.toml"
TEMPLATES = Path(__file__).parent / "_templates"
#: the built-in study projects (``--project mnist``, ``mnist-demo``, ...)
BUILTIN = Path(__file__).parent / "projects"
#: kinds whose class maps are aggregated from local LIME explanations (one shared run)
AGGREGATED_KINDS = ("normlime", "lime")
DISPLAYS = ("heatmap", "overlay")
MAX_OPTIONS = 6
_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")
_SECTIONS = {"project", "model", "dataset", "classes", "methods", "lime", "per_image", "survey",
             "train"}  # fmt: skip


_DATASET_KEYS = {
    "imagefolder": {"kind", "path", "train_path", "size", "channels"},
    "torchvision": {"kind", "name", "root", "download", "train"},
    "mnist-idx": {"kind", "path"},
    "callable": {"kind", "callable", "args"},
}


class ProjectError(UserError):
    """study.toml is missing or invalid (one readable line)."""


@dataclass(frozen=True)
class MethodConfig:
    name: str
    kind: str
    params: dict = field(default_factory=dict)

    @property
    def aggregated(self) -> bool:
        return self.kind in AGGREGATED_KINDS


@dataclass(frozen=True)
class Project:
    root: Path
    name: str
    seed: int
    model: dict
    dataset: dict
    class_names: tuple[str, ...]
    methods: tuple[MethodConfig, ...]
    lime: dict
    per_image: dict
    survey: dict
    train: dict
    maps_dir: Path
    cache_dir: Path | None  # None: the default cache of local explanations
    description: str = ""
    builtin: bool = False

    @property
    def path(self) -> Path:
        return self.root / PROJECT_FILE

    def method(self, name: str) -> MethodConfig:
        return next(m for m in self.methods if m.name == name)

    def importable(self) -> None:
        """Put the project folder on sys.path, for its "module:function" names."""
        if str(self.root) not in sys.path:
            sys.path.insert(0, str(self.root))


def init_project(directory: str | Path) -> Path:
    """Write the commented example study.toml (and its model.py) into ``directory``."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise ProjectError(f"{directory} exists and is not a directory")
    target = directory / PROJECT_FILE
    if target.exists():
        raise ProjectError(f"{target} already exists; not overwriting it")
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(TEMPLATES / PROJECT_FILE, target)
    if not (directory / "model.py").exists():
        shutil.copyfile(TEMPLATES / "model.py", directory / "model.py")
    return target


# --------------------------------------------------------------------------- validation


class _Checker:
    """Typed access to one table of study.toml with errors that name the key."""

    def __init__(self, path: Path, section: str, table):
        if not isinstance(table, dict):
            raise ProjectError(f"{path}: [{section}] must be a table")
        self.path, self.section, self.table = path, section, table

    def fail(self, key: str, message: str):
        raise ProjectError(f"{self.path}: [{self.section}] {key} {message}")

    def only(self, known) -> None:
        unknown = sorted(set(self.table) - set(known))
        if unknown:
            self.fail(unknown[0], f"is not a [{self.section}] setting (known: "
                      f"{', '.join(sorted(known))})")  # fmt: skip

    def int(self, key, default=None, low=None, high=None):
        value = self.table.get(key, default)
        if value is None and default is None:
            self.fail(key, "is required")
        ok = isinstance(value, int) and not isinstance(value, bool)
        if not ok or (low is not None and value < low) or (high is not None and value > high):
            bounds = f" between {low} and {high}" if high is not None else f" >= {low}"
            self.fail(key, f"must be a whole number{bounds if low is not None else ''}, "
                      f"got {value!r}")  # fmt: skip
        return value

    def float(self, key, default=None, positive=True):
        value = self.table.get(key, default)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or (
            positive and not value > 0
        ):
            self.fail(key, f"must be a {'positive ' if positive else ''}number, got {value!r}")
        return float(value)

    def str(self, key, default=None, choices=None):
        value = self.table.get(key, default)
        if value is None:
            self.fail(key, "is required")
        if not isinstance(value, str) or (choices and value not in choices):
            extra = f" (one of {', '.join(choices)})" if choices else ""
            self.fail(key, f"must be a string{extra}, got {value!r}")
        return value

    def names(self, key, allowed, default):
        value = self.table.get(key, default)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.fail(key, f"must be a list of names, got {value!r}")
        unknown = [v for v in value if v not in allowed]
        if unknown:
            self.fail(key, f"names {unknown[0]!r}, which is not one of {', '.join(allowed)}")
        if len(set(value)) != len(value):
            self.fail(key, "names something twice")
        return value


def _load_toml(path: Path) -> dict:
    if path.is_dir():
        path = path / PROJECT_FILE
    if not path.is_file():
        if path.name == PROJECT_FILE and str(path.parent) in builtin_projects():
            raise ProjectError(
                f"no project at {path}: the folder {path.parent} here hides the built-in "
                f"project {path.parent.name!r} (run the command from another directory)"
            )
        raise ProjectError(f"no project at {path} (create one with `normlime init-project DIR`)")
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ProjectError(f"{path} is not valid TOML: {exc}") from None
    unknown = set(doc) - _SECTIONS
    if unknown:
        raise ProjectError(f"{path}: unknown section [{sorted(unknown)[0]}]")
    return doc


def _model(path, doc) -> dict:
    c = _Checker(path, "model", doc.get("model", {}))
    c.only({"callable", "file", "weights", "args", "input"})
    has_callable, has_file = "callable" in c.table, "file" in c.table
    if has_callable == has_file:
        raise ProjectError(f"{path}: [model] needs exactly one of callable or file")
    c.str("callable" if has_callable else "file")
    inp = _Checker(path, "model.input", c.table.get("input", {}))
    inp.only({"mean", "std"})
    for key in ("mean", "std"):
        v = inp.table.get(key, [0.0] if key == "mean" else [1.0])
        if not isinstance(v, list) or not v or not all(
            isinstance(x, int | float) and not isinstance(x, bool) for x in v
        ):
            inp.fail(key, f"must be a list of numbers, got {v!r}")
        if key == "std" and min(v) <= 0:
            inp.fail(key, "must be positive")
    return dict(c.table)


def _classes(path, doc) -> tuple[str, ...]:
    c = _Checker(path, "classes", doc.get("classes", {}))
    names = c.table.get("names")
    if not isinstance(names, list) or len(names) < 2 or not all(
        isinstance(n, str) and n.strip() for n in names
    ):
        c.fail("names", "must list at least 2 class names (strings)")
    if len(set(names)) != len(names):
        c.fail("names", "names a class twice")
    return tuple(names)


def _methods(path, doc) -> tuple[MethodConfig, ...]:
    from .registry import kind_class

    tables = doc.get("methods")
    if not isinstance(tables, list) or not tables:
        raise ProjectError(f"{path}: needs at least one [[methods]] table")
    out = []
    for i, table in enumerate(tables, start=1):
        c = _Checker(path, f"methods #{i}", table)
        name = c.str("name")
        if not _NAME.fullmatch(name):
            c.fail("name", f"{name!r} must be lower-case letters, digits and '_', starting "
                   "with a letter (at most 40)")  # fmt: skip
        kind = c.str("kind")
        if kind not in AGGREGATED_KINDS:
            try:
                kind_class(kind)
            except ValueError as exc:
                c.fail("kind", str(exc).replace("unknown method kind", "is an unknown kind"))
        params = {k: v for k, v in table.items() if k not in ("name", "kind")}
        if kind in AGGREGATED_KINDS and params:
            c.fail(sorted(params)[0], "is not a parameter of an aggregated method: set the "
                   "local explanations in [lime]")  # fmt: skip
        out.append(MethodConfig(name, kind, params))
    names = [m.name for m in out]
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup:
        raise ProjectError(f"{path}: two [[methods]] are named {dup!r}")
    return tuple(out)


def _lime(path, doc) -> dict:
    c = _Checker(path, "lime", doc.get("lime", {}))
    c.only({"per_class", "n_samples", "sigma", "n_features", "kernel_width", "images",
            "features", "clip", "perturbation", "baseline", "neighbourhood",
            "effective_size"})  # fmt: skip
    out = {
        "per_class": c.int("per_class", 40, low=1),
        "n_samples": c.int("n_samples", 1000, low=2),
        "sigma": c.float("sigma", 0.5),
        "n_features": c.int("n_features", 20, low=1),
        "kernel_width": c.float("kernel_width", None),
        "images": c.str("images", "test", ("test", "all")),
        "features": c.table.get("features", "pixels"),
        "clip": c.table.get("clip", [0.0, 1.0]),
        "perturbation": c.str("perturbation", "gaussian", ("gaussian", "hide")),
        "baseline": c.float("baseline", 0.5, positive=False),
        # the reading of eq. (1)-(2): "data" draws neighbours from the dataset's training
        # images (docs/stimuli-protocol.md, part two); "gaussian" adds noise.  Files
        # written before the data reading keep the noise they were made with.
        "neighbourhood": c.str("neighbourhood", "gaussian", ("data", "gaussian")),
        "effective_size": c.int("effective_size", 300, low=1),
    }
    noise_only = [k for k in ("sigma", "kernel_width", "clip", "perturbation", "baseline")
                  if k in c.table]  # fmt: skip
    if out["neighbourhood"] == "data" and noise_only:
        c.fail(noise_only[0], "applies to neighbourhood = \"gaussian\" only: neighbours "
               "drawn from data are real images")  # fmt: skip
    if out["neighbourhood"] != "data" and "effective_size" in c.table:
        c.fail("effective_size", "applies to neighbourhood = \"data\" only")
    if out["perturbation"] == "hide" and out["features"] in (None, "pixels"):
        c.fail("perturbation", "\"hide\" needs superpixel features, e.g. features = "
               "{ kind = \"grid\", cell = 8 }")  # fmt: skip
    clip = out["clip"]
    if clip is not None and (not isinstance(clip, list) or len(clip) != 2 or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in clip
    )):
        c.fail("clip", f"must be [low, high] (pixel units), got {clip!r}")
    if 2 * out["n_features"] > out["n_samples"]:
        c.fail("n_features", f"K={out['n_features']} needs n_samples >= {2 * out['n_features']}")
    from .features import parse_features

    try:  # the spelling only: the image shape is known, and checked, at precompute
        parse_features(out["features"], (1, 8, 8))
    except ValueError as exc:
        c.fail("features", str(exc))
    return out


def _per_image(path, doc) -> dict:
    c = _Checker(path, "per_image", doc.get("per_image", {}))
    c.only({"per_class", "images", "n_samples", "score"})
    return {"per_class": c.int("per_class", 10, low=1),
            "images": c.str("images", "test", ("test", "all")),
            # what a registered per-image kind takes from the run (SmoothGrad/VarGrad's
            # draws and score, SHAP's coalitions) unless the method sets its own
            "n_samples": c.int("n_samples", low=1) if "n_samples" in c.table else None,
            # checked by the explainer that takes it, built before any work
            "score": c.str("score", "logit")}  # fmt: skip


def _survey(path, doc, class_names, methods) -> dict:
    c = _Checker(path, "survey", doc.get("survey", {}))
    c.only({"methods", "classes", "repeats", "options", "attention_checks", "check_methods",
            "question", "display", "lookalike"})  # fmt: skip
    method_names = [m.name for m in methods]
    shown = c.names("methods", method_names, method_names)
    if not 2 <= len(shown) <= MAX_OPTIONS:
        c.fail("methods", f"must show 2 to {MAX_OPTIONS} methods (one option each), got "
               f"{len(shown)}")  # fmt: skip
    if "options" in c.table and c.int("options", low=2, high=MAX_OPTIONS) != len(shown):
        c.fail("options", f"= {c.table['options']} must equal the number of methods shown "
               f"({len(shown)}): each option is one method's map")  # fmt: skip
    asked = c.names("classes", list(class_names), list(class_names))
    if not asked:
        c.fail("classes", "must ask at least one class")
    repeats = c.int("repeats", 2, low=1, high=20)
    checks = c.int("attention_checks", 5, low=0, high=50)
    aggregated = [m.name for m in methods if m.aggregated and m.name in shown]
    check_methods = c.names("check_methods", shown, aggregated or shown)
    if checks and not check_methods:
        c.fail("check_methods", "must name at least one shown method")
    question = c.str("question", "Which explanation best highlights what makes this a {class}?")
    if "{class}" not in question:
        c.fail("question", "must contain {class}, where the asked class's name goes")
    lookalike = c.table.get("lookalike")
    if lookalike is not None:
        if not isinstance(lookalike, dict) or any(
            k not in class_names or v not in class_names or k == v for k, v in lookalike.items()
        ):
            c.fail("lookalike", "must map class names to other class names, e.g. "
                   "{ \"3\" = \"8\" }")  # fmt: skip
        missing = [n for n in class_names if n not in lookalike]
        if missing:
            c.fail("lookalike", f"has no look-alike for class {missing[0]!r}: name one for "
                   "every class, or leave the table out (the model's confusions decide)")
    return {
        "lookalike": lookalike,
        "methods": shown,
        "classes": asked,
        "repeats": repeats,
        "attention_checks": checks,
        "check_methods": check_methods,
        "question": question,
        "display": c.str("display", "heatmap", DISPLAYS),
    }


def _train(path, doc) -> dict:
    c = _Checker(path, "train", doc.get("train", {}))
    c.only({"epochs", "batch_size", "lr"})
    return {"epochs": c.int("epochs", 20, low=1), "batch_size": c.int("batch_size", 64, low=1),
            "lr": c.float("lr", 1e-3)}  # fmt: skip


def project_maps_dir(directory: str | Path) -> Path:
    """The maps folder a project's precompute writes, read without loading the rest
    (no torch: the web process uses it for ``--project``)."""
    path, builtin = resolve_project(directory)
    head = _Checker(path, "project", _load_toml(path).get("project", {}))
    return _place(builtin, path.parent.resolve(), head.str("maps", "maps"))


def _project_file(directory: str | Path) -> Path:
    given = Path(directory).expanduser()
    return given / PROJECT_FILE if given.is_dir() or not given.suffix else given


def builtin_projects() -> tuple[str, ...]:
    """The study projects shipped in the package: the MNIST replication's settings."""
    return tuple(sorted(p.parent.name for p in BUILTIN.glob(f"*/{PROJECT_FILE}")))


def resolve_project(directory: str | Path) -> tuple[Path, bool]:
    """(study.toml path, built-in?) of ``directory``: a path, or the name of a built-in
    project when no such path exists."""
    given = Path(directory).expanduser()
    if not given.exists() and str(directory) in builtin_projects():
        return BUILTIN / str(directory) / PROJECT_FILE, True
    return _project_file(directory), False


def _place(builtin: bool, root: Path, value: str | None) -> Path | None:
    # a built-in project lives in the (read-only) package: what it writes goes under the
    # current directory, and "default" is the shared cache of local explanations
    if value == "default":
        return None
    return Path(value) if builtin else root / value


def load_project(directory: str | Path) -> Project:
    """Read and validate ``DIR/study.toml`` (or the file itself, or a built-in's name)."""
    path, builtin = resolve_project(directory)
    doc = _load_toml(path)
    root = path.parent.resolve()
    head = _Checker(path, "project", doc.get("project", {}))
    head.only({"name", "seed", "maps", "cache", "description"})
    name = head.str("name", root.name)
    class_names = _classes(path, doc)
    methods = _methods(path, doc)
    dataset = _Checker(path, "dataset", doc.get("dataset", {}))
    kind = dataset.str("kind", choices=tuple(_DATASET_KEYS))
    dataset.only(_DATASET_KEYS[kind])
    return Project(
        root=root,
        name=name,
        seed=head.int("seed", 0, low=0),
        model=_model(path, doc),
        dataset=dict(dataset.table),
        class_names=class_names,
        methods=methods,
        lime=_lime(path, doc),
        per_image=_per_image(path, doc),
        survey=_survey(path, doc, class_names, methods),
        train=_train(path, doc),
        maps_dir=_place(builtin, root, head.str("maps", "maps")),
        cache_dir=_place(builtin, root, head.str("cache", "cache")),
        description=head.str("description", ""),
        builtin=builtin,
    )


def with_data(project: Project, data_spec: str | Path) -> Project:
    """``project`` reading its MNIST dataset from ``data_spec`` (a command's ``--data``): a
    directory, relative to the current directory as typed (not to the project's folder),
    ``embedded`` or ``download``."""
    if project.dataset.get("kind") != "mnist-idx":
        raise ProjectError(
            f"{project.path}: --data replaces an MNIST dataset's path; this project's "
            f"[dataset] kind is {project.dataset.get('kind')!r}"
        )
    spec = str(data_spec)
    if spec not in ("embedded", "download"):
        spec = str(Path(spec).expanduser().resolve())
    return replace(project, dataset={**project.dataset, "path": spec})


def with_model(project: Project, model_file: str | Path) -> Project:
    """``project`` explaining the model in ``model_file`` (a command's ``--model``: a
    normlime CNN, TorchScript or ``torch.save`` file, relative to the current directory)
    instead of its ``[model]``; the ``[model.input]`` normalisation stays."""
    path = Path(model_file).expanduser().resolve()
    if not path.is_file():
        raise ProjectError(f"--model {model_file}: no such file")
    model = {"file": str(path)}
    if "input" in project.model:
        model["input"] = project.model["input"]
    return replace(project, model=model)
