"""``normlime precompute --project DIR``: a study project's class maps, as a v2 bundle.

The same engine as the MNIST replication (``explainers.precompute``): planning from the
seed, the local LIME explanations through the on-disk cache, NormLIME / SP-LIME
aggregation, per-image methods averaged over ``[per_image] per_class`` images of each
class.  What a project adds, each a stated step recorded in the manifest:

* its methods are built from study.toml (``explainers.registry.build``): ours, any
  Captum class, or the researcher's function; a method's seed derives from the run's seed
  and the method's *name*, so adding or reordering methods reseeds no other;
* maps are summed over the image's channels (``precompute.CHANNEL_RULE``);
* the survey's look-alike of every class comes from the model's confusion matrix on the
  test images (the class it is most often confused with, either way round); a class the
  model never confuses takes the class whose mean image is nearest;
* an overlay study draws every method's map on the same representative image per class:
  of the test images of the class the model classifies correctly, the one nearest the
  mean of those images.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .cache import LocalCache
from .data import DataError, as_float, image_pool
from .datasets import load_dataset
from .devices import DeviceError, pick_device
from .features import parse_features
from .lime import DEFAULT_BATCH_SIZE
from .precompute import (
    CHANNEL_RULE,
    PrecomputeError,
    PrecomputeResult,
    Preset,
    _predict,
    class_pictures,
    compute_maps,
    environment,
    excluded_digests,
    explainer_factory,
    method_seed,
    plan_run,
    project_settings,
    write_outputs,
)
from .project import Project, ProjectError, with_data
from .user_model import ModelSpecError, load_classifier

__all__ = ["precompute_project", "lookalikes", "representatives"]

LOOKALIKE_RULE = (
    "the class each class is most often confused with on the test images (train + test "
    "when a class has no test image; confusion "
    "counts summed both ways, ties to the lower index); a class never confused takes the "
    "class whose mean test image is nearest (L2)"
)
REPRESENTATIVE_RULE = (
    "of the test images of the class the model classifies correctly (all of them if "
    "none), the one nearest (L2) the mean of those images; the same image for every method"
)


def _seed(project: Project, name: str) -> int:
    method = project.method(name)
    return method_seed(project.seed, method.name, method.kind, method.params)


def _class_means(images: np.ndarray, labels: np.ndarray, n: int) -> np.ndarray:
    flat = images.reshape(len(images), -1).astype(np.float64)
    return np.stack([flat[labels == c].mean(0) if np.any(labels == c) else
                     np.full(flat.shape[1], np.inf) for c in range(n)])  # fmt: skip


def lookalikes(labels: np.ndarray, pred: np.ndarray, means: np.ndarray) -> tuple[dict, list]:
    """(class -> look-alike class, confusion matrix as lists) by :data:`LOOKALIKE_RULE`."""
    n = means.shape[0]
    conf = np.zeros((n, n), dtype=np.int64)
    np.add.at(conf, (labels, pred), 1)
    both = conf + conf.T
    np.fill_diagonal(both, -1)
    out = {}
    for c in range(n):
        if both[c].max() > 0:
            out[c] = int(np.argmax(both[c]))
        else:
            dist = np.linalg.norm(means - means[c], axis=1)
            dist[c] = np.inf
            out[c] = int(np.argmin(dist))
    return out, conf.tolist()


def representatives(images: np.ndarray, labels: np.ndarray, pred: np.ndarray, n: int):
    """(n, C, H, W) float images in [0, 1] and their positions, by REPRESENTATIVE_RULE."""
    flat = images.reshape(len(images), -1).astype(np.float64)
    chosen = []
    for c in range(n):
        rows = np.flatnonzero((labels == c) & (pred == c))
        rows = rows if rows.size else np.flatnonzero(labels == c)
        dist = np.linalg.norm(flat[rows] - flat[rows].mean(0), axis=1)
        chosen.append(int(rows[np.argmin(dist)]))
    return images[chosen].astype(np.float32) / 255.0, chosen


def _load(project: Project, device, module=None, data=None):
    project.importable()
    try:
        if data is None:
            data = load_dataset(project.dataset, project.root, project.class_names)
    except DataError as exc:
        raise ProjectError(f"{project.path}: {exc}") from None
    try:
        dev = pick_device(device)
    except DeviceError as exc:
        raise ProjectError(str(exc)) from None
    spec = project.model if module is None else {"module": module, "input": project.model.get(
        "input", {})}  # fmt: skip
    try:
        model, sha = load_classifier(
            spec, project.root, n_classes=len(project.class_names),
            input_shape=tuple(as_float(data.test_images[:1]).shape[1:]), device=dev,
        )  # fmt: skip
    except ModelSpecError as exc:
        raise ProjectError(f"{project.path}: {exc}") from None
    return data, dev, model, sha


def _check_counts(project: Project, data, settings: Preset) -> None:
    """Every class needs the images its class maps average (one line naming the class)."""
    needs = []
    if any(m.aggregated for m in project.methods):
        needs.append(("lime", settings.lime))
    if any(not m.aggregated for m in project.methods):
        needs.append(("per_image", settings.per_image))
    for section, table in needs:
        pool = image_pool(data, table.images)
        counts = np.bincount(pool.labels, minlength=len(project.class_names))
        short = np.flatnonzero(counts < table.per_class)
        if short.size:
            c = int(short[0])
            raise ProjectError(
                f"{project.path}: class {project.class_names[c]!r} has {counts[c]} "
                f"{pool.describe()}, [{section}] per_class asks for {table.per_class}: "
                "lower per_class or add images"
            )


def _worker_model_file(project: Project, model, scheduler) -> Path | None:
    """The model file Dask workers load (a normlime CNN file), or one line why not."""
    from .model import MnistCNN
    from .user_model import resolve_file

    if not project.model.get("file"):
        return None  # the scheduler was refused before loading
    path = resolve_file(project.root, project.model["file"])
    if scheduler is not None and not isinstance(model, MnistCNN):
        raise ProjectError(
            f"{project.path}: --scheduler: the workers load normlime CNN files only, and "
            f"{path} holds another network (run without --scheduler)"
        )
    return path


def _check_method(project: Project, name: str, model, per_image) -> None:
    """Build a per-image method once: a bad class, layer or parameter fails before work."""
    method = project.method(name)
    try:
        explainer_factory(method.kind, method.params, per_image)(model, 0)
    except ValueError as exc:
        raise ProjectError(f"{project.path}: method {name!r}: {exc}") from None


def precompute_project(
    project: Project,
    *,
    out_dir: str | Path | None = None,
    device: str | None = None,
    use_cache: bool = True,
    cache_dir: str | Path | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    compile_model: bool | None = False,
    disjoint_from: str | Path | None = None,
    keep_local: bool = False,
    scheduler=None,
    worker_threads: int | None = None,
    data_spec: str | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
    argv=None,
    model=None,
    data=None,
    settings: Preset | None = None,
    replication: bool = False,
) -> PrecomputeResult:
    """Every method of ``project``: class maps and the survey block, as a v2 bundle.

    The one front end of the pipeline: ``explainers.precompute.precompute`` (the MNIST
    replication) runs its built-in project through it with ``replication=True``, the
    ``data`` it loaded and the ``settings`` its options resolved.

    ``model`` (an ``nn.Module`` from Python) replaces the project's ``[model]``; its
    ``[model.input]`` normalisation still applies.  ``data_spec`` replaces the ``path`` of
    an MNIST (``mnist-idx``) dataset.  ``cache_dir`` replaces the project's cache;
    ``disjoint_from`` names a bundle whose images this run must not use; ``scheduler``
    computes the local explanations on Dask, which needs a model the workers can load from
    its file (a ``[model] file`` holding a normlime CNN).
    """
    if data_spec is not None:
        project = with_data(project, data_spec)
    started = time.perf_counter()
    out_dir = Path(out_dir) if out_dir is not None else project.maps_dir
    if out_dir.exists() and not out_dir.is_dir():
        raise ProjectError(f"--out {out_dir} exists and is not a directory")
    if scheduler is not None and (model is not None or not project.model.get("file")):
        raise ProjectError(
            f"{project.path}: --scheduler sends the model to Dask workers as a file; this "
            "project's model is not one (use [model] file, or run without --scheduler)"
        )
    data, dev, model, model_sha = _load(project, device, model, data)
    settings = settings or project_settings(project)
    if not replication:  # the replication's plan names its options (--per-class) instead
        _check_counts(project, data, settings)
    for method in project.methods:  # a bad class, layer or parameter fails before any work
        if not method.aggregated:
            _check_method(project, method.name, model, settings.per_image)
    model_file = _worker_model_file(project, model, scheduler)
    names = [m.name for m in project.methods]
    excluded = excluded_digests(disjoint_from) if disjoint_from is not None else None
    try:
        plan = plan_run(
            data, names, settings, project.seed, excluded,
            aggregated=lambda n: project.method(n).aggregated,
            seed_of=lambda n: _seed(project, n),
            n_classes=len(project.class_names),
        )  # fmt: skip
    except PrecomputeError as exc:
        raise ProjectError(f"{project.path}: {exc}") from None
    li = project.lime
    lime_extra = None
    if plan.local is not None:
        try:
            features = parse_features(li["features"], plan.image_shape)
        except ValueError as exc:
            raise ProjectError(f"{project.path}: [lime] features: {exc}") from None
        lime_extra = _lime_extra(li, features, tuple(li["clip"]) if li["clip"] else None)
    try:
        run = compute_maps(
            plan, model, dev, kinds={m.name: (m.kind, m.params) for m in project.methods},
            model_sha=model_sha, model_path=model_file,
            cache=LocalCache(cache_dir or project.cache_dir) if use_cache else None,
            batch_size=batch_size, compile_model=compile_model, scheduler=scheduler,
            worker_threads=worker_threads, keep_local=keep_local, lime_extra=lime_extra,
            progress=progress, log=log,
        )  # fmt: skip
    except PrecomputeError as exc:
        raise ProjectError(f"{project.path}: {exc}") from None
    except ValueError as exc:  # e.g. images outside the clip range LIME assumes
        raise ProjectError(f"{project.path}: [lime] {exc}") from None
    survey, extra_classes, reps = (
        _survey(project, data, model, dev) if project.survey is not None else (None, {}, None)
    )
    display = survey["display"] if survey else "heatmap"
    wall = time.perf_counter() - started
    extra = _extra(
        project, settings, data, model_sha, run.local_summary, extra_classes, dev, wall, argv,
        replication=replication, disjoint_from=disjoint_from, scheduler=scheduler,
        model_file=model_file,
    )  # fmt: skip
    manifest = write_outputs(
        out_dir, run.maps, run.info, extra, run.records, run.local_arrays,
        classes=list(project.class_names), display=display,
        representatives=reps if display == "overlay" else None,
        study_methods=survey["methods"] if survey else None, survey=survey,
        pictures=class_pictures(data, len(project.class_names)),
    )  # fmt: skip
    return PrecomputeResult(out_dir, run.maps, manifest, run.hits, run.n_local, wall)


def _lime_extra(li: dict, features, clip) -> dict:
    """The LocalLime arguments a project's [lime] table sets beyond the plan's (only those
    that differ from LocalLime's defaults, so a default setting keeps its cache keys)."""
    extra = {} if li["features"] in (None, "pixels") else {"features": features}
    if li["neighbourhood"] == "data":  # real images: nothing to clip, no perturbation
        return extra
    if clip != (0.0, 1.0):
        extra["clip"] = clip
    if li["perturbation"] != "gaussian":
        extra["perturbation"] = li["perturbation"]
    if li["baseline"] != 0.5:
        extra["baseline"] = li["baseline"]
    return extra


def _survey(project: Project, data, model, dev) -> tuple[dict, dict, np.ndarray]:
    n = len(project.class_names)
    # the test images, unless some class has none there (then train + test)
    pool = image_pool(data, "test")
    if np.unique(pool.labels).size < n:
        pool = image_pool(data, "all")
    pred = _predict(model, as_float(pool.images).to(dev), batch=256)
    labels = pool.labels
    means = _class_means(pool.images, labels, n)
    look, confusion = lookalikes(labels, pred, means)
    given = project.survey.get("lookalike")
    if given:  # study.toml names every class's look-alike: the confusions only inform
        index_of = {name: i for i, name in enumerate(project.class_names)}
        look = {index_of[c]: index_of[d] for c, d in given.items()}
    reps, rep_index = representatives(pool.images, labels, pred, n)
    s = project.survey
    index = {name: i for i, name in enumerate(project.class_names)}
    survey = {
        "methods": list(s["methods"]),
        "classes": [index[c] for c in s["classes"]],
        "repeats": s["repeats"],
        "attention_checks": s["attention_checks"],
        "check_methods": list(s["check_methods"]),
        "lookalike": {str(c): j for c, j in look.items()},
        "question": s["question"],
        "display": s["display"],
    }
    extra = {
        "lookalike_rule": "given in study.toml ([survey] lookalike)" if given else LOOKALIKE_RULE,
        "confusion_matrix": confusion,
        "test_accuracy": round(float((pred == labels).mean()), 4),
        "lookalike_images": pool.describe(),
        "representative_rule": REPRESENTATIVE_RULE,
        "representatives": {"split": pool.split[rep_index].tolist(),
                            "index": pool.index[rep_index].tolist()},  # fmt: skip
    }
    return survey, extra, reps


def _extra(project, settings, data, model_sha, local_summary, classes_info, dev, wall, argv,
           *, replication, disjoint_from, scheduler, model_file):  # fmt: skip
    """The manifest's run block, for a study project and for the MNIST replication alike
    (the replication's keeps the form its bundles always had: no project block)."""
    from dataclasses import asdict

    from .precompute import IMAGES_FILE

    model_meta = {}
    if model_file is not None and Path(model_file).with_suffix(".json").is_file():
        model_meta = json.loads(Path(model_file).with_suffix(".json").read_text())
    generator = {
        "command": "normlime precompute" + ("" if replication else " --project"),
        "argv": list(argv) if argv is not None else None,
        "preset": settings.name,
        "preset_description": settings.description,
        "lime": asdict(settings.lime),
        "per_image": asdict(settings.per_image),
        "disjoint_from": None if disjoint_from is None else str(disjoint_from),
        "scheduler": None if scheduler is None else str(scheduler),
    }
    model = {
        "path": None if model_file is None else str(model_file),
        "sha256": model_sha,
        "test_accuracy": model_meta.get("test_accuracy"),
    }
    out = {"generator": generator}
    if not replication:
        generator["project"] = str(project.path)
        generator["project_sha256"] = hashlib.sha256(project.path.read_bytes()).hexdigest()
        generator["lime"].update({k: project.lime[k] for k in ("features", "clip",
                                                               "perturbation", "baseline")})
        out["project"] = {"name": project.name, "methods": {
            m.name: {"kind": m.kind, **m.params} for m in project.methods}}  # fmt: skip
        model = {"spec": project.model, **model}
    model.update(classes_info)
    return {
        **out,
        "model": model,
        "data": data.provenance(),
        "seed": project.seed,
        "images": {
            "file": f"{IMAGES_FILE} ({{method}}_split: 0 train / 1 test, {{method}}_index: "
            "position in that split of the data, {method}_digest: blake2b-64 of the pixels; "
            "'lime' holds the local explanations behind NormLIME and LIME)",
            "disjoint_from": generator["disjoint_from"],
        },
        "channels": CHANNEL_RULE,
        "local_explanations": local_summary,
        "environment": environment(dev),
        "wall_time_s": round(wall, 2),
    }
