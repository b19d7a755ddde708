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
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from . import seeds
from .cache import LocalCache
from .data import DataError, as_float, image_pool
from .datasets import load_dataset
from .devices import DeviceError, pick_device
from .features import parse_features
from .lime import DEFAULT_BATCH_SIZE
from .precompute import (
    CHANNEL_RULE,
    LimeSettings,
    PerImageSettings,
    PrecomputeError,
    PrecomputeResult,
    Preset,
    _jsonable,
    _local_summary,
    _predict,
    _records,
    aggregate_local,
    class_pictures,
    environment,
    method_seed,
    plan_run,
    run_local,
    run_per_image,
    write_outputs,
)
from .project import Project, ProjectError
from .registry import build, method_spec
from .user_model import ModelSpecError, load_classifier

__all__ = ["precompute_project", "project_method_seed", "lookalikes", "representatives"]

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


def project_method_seed(seed: int, method) -> int:
    """A project method's seed: a registered method used as it is keeps its MNIST stream;
    any other derives from its name (stream 3), never from its position in the list."""
    try:
        spec = method_spec(method.name)
    except ValueError:
        spec = None
    if spec is not None and method.kind == method.name and not method.params:
        return method_seed(seed, method.name)
    number = int.from_bytes(hashlib.blake2b(method.name.encode(), digest_size=7).digest(), "big")
    return seeds.derive(seed, 3, number)


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


def _settings(project: Project) -> Preset:
    li, pi = project.lime, project.per_image
    data = li["neighbourhood"] == "data"
    lime = LimeSettings(
        per_class=li["per_class"], n_samples=li["n_samples"],
        sigma=None if data else li["sigma"], n_features=li["n_features"],
        kernel_width=None if data else li["kernel_width"], images=li["images"],
        neighbourhood=li["neighbourhood"], effective_size=li["effective_size"] if data else None,
    )  # fmt: skip
    per_image = PerImageSettings(per_class=pi["per_class"], images=pi["images"])
    return Preset("project", f"study project {project.name} ({project.path})", lime, per_image)


def _load(project: Project, device, module=None):
    project.importable()
    try:
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
            input_shape=tuple(data.test_images.shape[1:]), device=dev,
        )  # fmt: skip
    except ModelSpecError as exc:
        raise ProjectError(f"{project.path}: {exc}") from None
    return data, dev, model, sha


def _check_counts(project: Project, data) -> None:
    """Every class needs the images its class maps average (one line naming the class)."""
    needs = []
    if any(m.aggregated for m in project.methods):
        needs.append(("lime", project.lime))
    if any(not m.aggregated for m in project.methods):
        needs.append(("per_image", project.per_image))
    for section, table in needs:
        pool = image_pool(data, table["images"])
        counts = np.bincount(pool.labels, minlength=len(project.class_names))
        short = np.flatnonzero(counts < table["per_class"])
        if short.size:
            c = int(short[0])
            raise ProjectError(
                f"{project.path}: class {project.class_names[c]!r} has {counts[c]} "
                f"{pool.describe()}, [{section}] per_class asks for {table['per_class']}: "
                "lower per_class or add images"
            )


def _maker(project: Project, name: str) -> Callable:
    method = project.method(name)

    def make(model, seed):
        try:
            return build(method.kind, model, random_state=seed, params=method.params)
        except ValueError as exc:
            raise ProjectError(f"{project.path}: method {name!r}: {exc}") from None

    return make


def precompute_project(
    project: Project,
    *,
    out_dir: str | Path | None = None,
    device: str | None = None,
    use_cache: bool = True,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool = True,
    log: Callable[[str], None] = print,
    argv=None,
    model=None,
) -> PrecomputeResult:
    """Every method of ``project``: class maps and the survey block, as a v2 bundle.

    ``model`` (an ``nn.Module`` from Python) replaces the project's ``[model]``; its
    ``[model.input]`` normalisation still applies.
    """
    started = time.perf_counter()
    out_dir = Path(out_dir) if out_dir is not None else project.maps_dir
    if out_dir.exists() and not out_dir.is_dir():
        raise ProjectError(f"--out {out_dir} exists and is not a directory")
    data, dev, model, model_sha = _load(project, device, model)
    settings = _settings(project)
    _check_counts(project, data)
    for method in project.methods:  # a bad class, layer or parameter fails before any work
        if not method.aggregated:
            _maker(project, method.name)(model, 0)
    names = [m.name for m in project.methods]
    try:
        plan = plan_run(
            data, names, settings, project.seed,
            aggregated=lambda n: project.method(n).aggregated,
            seed_of=lambda n: project_method_seed(project.seed, project.method(n)),
            n_classes=len(project.class_names),
        )  # fmt: skip
    except PrecomputeError as exc:
        raise ProjectError(f"{project.path}: {exc}") from None
    bar_opts = {"file": sys.stderr, "disable": not progress, "mininterval": 1.0}
    maps, info, records = {}, {}, {}
    local_arrays = local_summary = None
    hits = n_local = 0
    if plan.local is not None:
        maps_, info_, local_arrays, local_summary, hits = _local(
            project, plan, model, dev, model_sha, use_cache, batch_size, bar_opts, log
        )
        maps.update(maps_)
        info.update(info_)
        n_local = int(plan.local.index.size)
        records.update(_records("lime", plan.local.pool, plan.local.index))
    for item in plan.per_image:
        log(f"{item.method}: mean over {item.settings.per_class} {item.pool.describe()} per class")
        t0 = time.perf_counter()
        try:
            maps[item.method], explainer = run_per_image(
                item, model, dev, plan, bar_opts, make=_maker(project, item.method)
            )
        except (ValueError, RuntimeError) as exc:
            if isinstance(exc, ProjectError):
                raise
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ProjectError(f"{project.path}: method {item.method!r} failed: {first}") from None
        records.update(_records(item.method, item.pool, item.chosen))
        params = getattr(explainer, "params", None)
        info[item.method] = {
            "parameters": {
                "kind": project.method(item.method).kind,
                **_jsonable(params() if callable(params) else {}),
                "per_class": item.settings.per_class,
                "aggregation": "mean over the class's images, target = the class",
                "images": f"{item.pool.describe()} drawn per class, target = the class",
            },
            "seed": project.seed,
            "method_seed": item.seed,
            "model_sha256": model_sha,
            "wall_time_s": round(time.perf_counter() - t0, 2),
        }
    survey, extra_classes, reps = _survey(project, data, model, dev)
    wall = time.perf_counter() - started
    extra = _extra(project, settings, data, model_sha, local_summary, extra_classes, dev, wall,
                   argv)  # fmt: skip
    manifest = write_outputs(
        out_dir, maps, info, extra, records, local_arrays,
        classes=list(project.class_names), display=survey["display"],
        representatives=reps if survey["display"] == "overlay" else None,
        study_methods=survey["methods"], survey=survey,
        pictures=class_pictures(data, len(project.class_names)),
    )  # fmt: skip
    return PrecomputeResult(out_dir, maps, manifest, hits, n_local, wall)


def _lime_extra(li: dict, features, clip) -> dict:
    """The LocalLime arguments a project's [lime] table sets beyond the plan's."""
    if li["neighbourhood"] == "data":  # real images: nothing to clip, no perturbation
        return {"features": features}
    return {"features": features, "clip": clip, "perturbation": li["perturbation"],
            "baseline": li["baseline"]}  # fmt: skip


def _local(project, plan, model, dev, model_sha, use_cache, batch_size, bar_opts, log):
    lp, li = plan.local, project.lime
    try:
        features = parse_features(li["features"], plan.image_shape)
    except ValueError as exc:
        raise ProjectError(f"{project.path}: [lime] features: {exc}") from None
    clip = tuple(li["clip"]) if li["clip"] else None
    log(f"local LIME explanations: {lp.index.size:,} ({lp.settings.per_class} per class), "
        f"{lp.settings.n_samples} samples each, K={lp.settings.n_features}")  # fmt: skip
    try:
        run = run_local(
            lp, model, dev, model_path=None, model_sha=model_sha,
            cache=LocalCache(project.cache_dir) if use_cache else None, batch_size=batch_size,
            compile_model=False, scheduler=None, worker_threads=None, bar_opts=bar_opts,
            log=log, lime_extra=_lime_extra(li, features, clip),
        )  # fmt: skip
    except ValueError as exc:  # e.g. images outside the clip range LIME assumes
        raise ProjectError(f"{project.path}: [lime] {exc}") from None
    kinds = {m: project.method(m).kind for m in lp.methods}
    maps, info, arrays = aggregate_local(plan, run, model_sha, kind_of=kinds.__getitem__)
    return maps, info, arrays, _local_summary(plan, run, arrays, False), run.hits


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
        "lookalike_rule": LOOKALIKE_RULE,
        "confusion_matrix": confusion,
        "test_accuracy": round(float((pred == labels).mean()), 4),
        "lookalike_images": pool.describe(),
        "representative_rule": REPRESENTATIVE_RULE,
        "representatives": {"split": pool.split[rep_index].tolist(),
                            "index": pool.index[rep_index].tolist()},  # fmt: skip
    }
    return survey, extra, reps


def _extra(project, settings, data, model_sha, local_summary, classes_info, dev, wall, argv):
    from dataclasses import asdict

    return {
        "generator": {
            "command": "normlime precompute --project",
            "argv": list(argv) if argv is not None else None,
            "project": str(project.path),
            "project_sha256": hashlib.sha256(project.path.read_bytes()).hexdigest(),
            "preset": settings.name,
            "lime": {**asdict(settings.lime),
                     **{k: project.lime[k] for k in ("features", "clip", "perturbation",
                                                     "baseline")}},  # fmt: skip
            "per_image": asdict(settings.per_image),
        },
        "project": {"name": project.name, "methods": {m.name: {"kind": m.kind, **m.params}
                                                      for m in project.methods}},  # fmt: skip
        "model": {"spec": project.model, "sha256": model_sha, **classes_info},
        "data": data.provenance(),
        "seed": project.seed,
        "channels": CHANNEL_RULE,
        "local_explanations": local_summary,
        "environment": environment(dev),
        "wall_time_s": round(wall, 2),
    }
