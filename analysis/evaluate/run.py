"""``normlime evaluate``: every method of a study project on the numerical metrics.

The work is a grid of jobs (analysis.benchmarks.jobs): one per (level, method) computing
deletion/insertion, ROAD MoRF/LeRF and faithfulness correlation on every sampled image,
and one per per-image method for the randomisation check.  Rows are appended to
``OUT/jobs.jsonl`` as they finish, so an interrupted run resumes; ``--scheduler`` runs
them on Dask.  Then a seeded bootstrap over images gives every number its interval and
every metric its rank table (:mod:`analysis.evaluate.summary`).

Stated choices:

* images: ``images`` test images, stratified by true label (classes in turn, each class's
  images in a seeded random order);
* a per-image map explains the model's predicted class; a class-level map is the study
  bundle's map of the image's predicted class (what the human study shows for that class),
  used as the image's ranking;
* aggregated methods (NormLIME, SP-LIME) have class-level maps only; every per-image method
  has both (its class map is the bundle's); the random baseline has both, drawn from the
  run's seed: uniform scores per feature, redrawn for every image at both levels (one
  random map per class would make the class-level baseline one draw's luck, which the
  bootstrap over images cannot show);
* the randomisation check applies to per-image methods (a class map is an average of
  per-image maps over many images; randomise those).
"""

from __future__ import annotations

import json
import time
import weakref
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from explainers.errors import InputError

from . import metrics
from .randomisation import RandomisationError, cascading_randomisation, randomisable_layers

__all__ = ["EvaluateSettings", "EvaluateError", "METRICS", "evaluate_project", "sample_images"]

#: metric -> whether a better method makes it "lower" or "higher"
METRICS = {
    "deletion_auc": "lower",
    "insertion_auc": "higher",
    "road_morf": "lower",
    "road_lerf": "higher",
    "road_gap": "higher",
    "faithfulness_correlation": "higher",
    "randomisation_spearman": "lower",
}
LEVELS = ("per-image", "class-level")
RANDOM = "random"


class EvaluateError(InputError):
    """Bad input to ``evaluate`` (one readable line, exit code 2)."""


@dataclass(frozen=True)
class EvaluateSettings:
    """Every setting of an evaluation, recorded in its output.

    images : test images evaluated (stratified by label); seed : every random choice
    (sample, random baseline, ROAD noise, subsets, bootstrap, randomisation) derives from
    it; steps : deletion/insertion fractions 0, 1/steps, ..., 1; percentages : ROAD's
    removal shares; road_noise : the imputation noise's standard deviation (ROAD's 0.01);
    subsets / subset_fraction : faithfulness correlation's runs and subset size (a share
    of the features, at least 1); randomisation_images : the first images of the sample
    that the randomisation check explains again per layer; bootstrap : resamples.
    """

    images: int = 100
    seed: int = 0
    steps: int = 16
    percentages: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
    road_noise: float = 0.01
    subsets: int = 100
    subset_fraction: float = 0.1
    randomisation_images: int = 20
    bootstrap: int = 1000
    levels: tuple[str, ...] = LEVELS
    methods: tuple[str, ...] | None = None  # None: every method of the project
    batch_size: int = 128
    extra: dict = field(default_factory=dict)


def sample_images(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """``n`` indices stratified by label: classes in turn, each in a seeded random order."""
    labels = np.asarray(labels)
    if n > len(labels):
        raise EvaluateError(
            f"--images {n} is more than the {len(labels)} test images of the dataset"
        )
    rng = np.random.default_rng([seed, 0xE7A1])
    queues = [rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)]
    order = []
    depth = 0
    while len(order) < n:
        order += [int(q[depth]) for q in queues if depth < len(q)]
        depth += 1
    return np.asarray(order[:n], dtype=np.int64)


def _seed(settings: EvaluateSettings, *parts) -> int:
    from analysis.benchmarks.jobs import derive_seed

    return derive_seed(settings.seed, *parts)


# --------------------------------------------------------------------------- jobs


def metric_job(ctx: dict, job) -> dict:
    """Every metric but randomisation for one (level, method); per-image values."""
    level, method = job.params["level"], job.params["method"]
    settings = EvaluateSettings(**ctx["settings"])
    x = torch.as_tensor(ctx["x"]).to(ctx["torch_device"])
    scores = _scores(ctx, level, method, x, job.seed)
    features, pred, labels = ctx["features"], ctx["pred"], ctx["labels"]
    model = _forward(_model(ctx))
    curves = metrics.deletion_insertion(
        model, x, scores, features, pred, steps=settings.steps, substrate=ctx["substrate"],
        blurred=torch.as_tensor(ctx["blurred"]).to(x.device), batch_size=settings.batch_size,
    )  # fmt: skip
    road = {
        order: metrics.road_curves(
            model,
            x,
            scores,
            features,
            labels,
            percentages=settings.percentages,
            order=order,
            noise=settings.road_noise,
            rng=_seed(settings, "road", order, level, method),
            batch_size=settings.batch_size,
        )  # fmt: skip
        for order in ("morf", "lerf")
    }
    m = scores.shape[1]
    faith = metrics.faithfulness_correlation(
        model, x, scores, features, pred, n_subsets=settings.subsets,
        subset_size=max(1, round(settings.subset_fraction * m)), substrate=ctx["substrate"],
        rng=_seed(settings, "subsets", level, method), batch_size=settings.batch_size,
    )  # fmt: skip
    return {
        "values": {
            "deletion_auc": metrics.trapezoid_auc(curves["deletion"]).tolist(),
            "insertion_auc": metrics.trapezoid_auc(curves["insertion"]).tolist(),
            "road_morf": road["morf"]["correct"].mean(axis=1).tolist(),
            "road_lerf": road["lerf"]["correct"].mean(axis=1).tolist(),
            "faithfulness_correlation": faith.tolist(),
        },
        "curves": {
            "deletion": curves["deletion"].mean(axis=0).tolist(),
            "insertion": curves["insertion"].mean(axis=0).tolist(),
            "road_morf": road["morf"]["correct"].mean(axis=0).tolist(),
            "road_lerf": road["lerf"]["correct"].mean(axis=0).tolist(),
        },
    }


def randomisation_job(ctx: dict, job) -> dict:
    method = job.params["method"]
    settings = EvaluateSettings(**ctx["settings"])
    k = min(settings.randomisation_images, len(ctx["x"]))
    x = torch.as_tensor(ctx["x"][:k]).to(ctx["torch_device"])
    target = ctx["pred"][:k]
    explain = _explain_with(ctx, method, job.seed)
    layers, rho = cascading_randomisation(
        _model(ctx), explain, x, target, seed=_seed(settings, "randomise"), layers=ctx["layers"]
    )
    return {
        "values": {"randomisation_spearman": rho[-1].tolist()},
        "layers": layers,
        "curves": {"randomisation": rho.mean(axis=1).tolist()},
    }


_MODELS: dict = {}


def _model(ctx: dict):
    """The explained model: the caller's in this process; in a worker process (joblib,
    Dask) loaded once from the project, which the worker may not be able to unpickle a
    project's own network class from."""
    if ctx.get("model") is not None:
        return ctx["model"]
    key = (ctx["project"], ctx["dataset"].get("path"), str(ctx["model_spec"]), ctx["device"])
    if key not in _MODELS:
        from explainers.project import load_project
        from explainers.project_precompute import _load

        project = replace(
            load_project(ctx["project"]), dataset=ctx["dataset"], model=ctx["model_spec"]
        )
        _data, _dev, model, _sha = _load(project, ctx["device"])
        _MODELS[key] = model.eval()
    return _MODELS[key]


# one engine per live model (the engine holds its own copy, so the model can go)
_FORWARDS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _forward(model) -> Callable:
    """The model's outputs through precompute's inference engine
    (:func:`explainers.lime.inference_forward`: a private channels-last copy under
    ``torch.inference_mode``, a float64 softmax of the logits where the model has them):
    about twice the eager forward's speed on this CPU (benchmarks/evaluate.py)."""
    from explainers.lime import inference_forward

    if model not in _FORWARDS:
        _FORWARDS[model] = inference_forward(model)
    return _FORWARDS[model]


def _explain_with(ctx: dict, method: str, seed: int) -> Callable:
    """``explain(model, x, target) -> (N, H, W)`` maps of a per-image method."""
    from explainers.precompute import explainer_factory, reduce_channels

    kind, params = ctx["kinds"][method]

    def explain(model, x, target):
        explainer = explainer_factory(kind, params, ctx["per_image"])(model, seed)
        out = explainer.attribute(x, torch.as_tensor(target, dtype=torch.long))
        return reduce_channels(out.detach().to(torch.float64).cpu().numpy())

    return explain


def _scores(ctx: dict, level: str, method: str, x, seed: int) -> np.ndarray:
    n = len(x)
    m = ctx["n_features"]
    if method == RANDOM:
        # at both levels a fresh draw per image: one random map per class would make the
        # baseline one draw's luck, which the bootstrap over images cannot show
        return np.random.default_rng(seed).random((n, m))
    if level == "class-level":
        class_scores = metrics.feature_scores(ctx["class_maps"][method], ctx["features"])
        return class_scores[ctx["pred"]]
    maps = _explain_with(ctx, method, seed)(_model(ctx), x, ctx["pred"])
    return metrics.feature_scores(maps, ctx["features"])


# --------------------------------------------------------------------------- driver


def evaluate_project(
    project,
    out_dir: str | Path,
    settings: EvaluateSettings,
    *,
    device: str | None = None,
    n_jobs: int = 1,
    scheduler=None,
    threads: int | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
    argv=None,
    maps_dir: str | Path | None = None,
    data_spec: str | None = None,
    model_file: str | Path | None = None,
) -> dict:
    """Run (or resume) the evaluation of ``project`` into ``out_dir``; returns the summary.

    ``maps_dir`` names the bundle whose class maps the class-level rows use (default: the
    project's ``maps``; for the built-in ``mnist`` project without one, the shipped bundle,
    which that project made); ``data_spec`` replaces an MNIST dataset's path, ``model_file``
    the project's model.  Class-level rows need a bundle made from the evaluated model."""
    from analysis.benchmarks.jobs import ConfigMismatch, Job, JobStore, run_jobs
    from analysis.benchmarks.occlusion import gaussian_blur
    from explainers.data import as_float
    from explainers.features import parse_features
    from explainers.precompute import project_settings
    from explainers.project import ProjectError, with_data, with_model
    from explainers.project_precompute import _load

    from .summary import summarise, write_outputs

    started = time.perf_counter()
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise EvaluateError(f"--out {out_dir} exists and is not a directory")
    try:
        if data_spec is not None:
            project = with_data(project, data_spec)
        if model_file is not None:
            project = with_model(project, model_file)
    except ProjectError as exc:
        raise EvaluateError(str(exc)) from None
    data, dev, model, model_sha = _load(project, device)
    model.eval()
    rows = sample_images(data.test_labels, settings.images, settings.seed)
    x = as_float(data.test_images[rows]).to(dev)
    labels = np.asarray(data.test_labels[rows], dtype=np.int64)
    pred = metrics.predict_batches(model, x).argmax(axis=1)
    methods = _methods(project, settings)
    per_image = [m for m in methods if not project.method(m).aggregated]
    if "class-level" not in settings.levels and settings.methods is not None:
        aggregated = [m for m in methods if m not in per_image]
        if aggregated:
            raise EvaluateError(
                f"--methods {aggregated[0]}: an aggregated method has no per-image maps, only "
                "class maps; evaluate it with --levels class-level"
            )
    features = parse_features(project.lime.get("features"), tuple(x.shape[1:]))
    n_features = int(features.max()) + 1 if features is not None else x.shape[2] * x.shape[3]
    layers = None
    if per_image:
        try:
            layers = randomisable_layers(model)
        except RandomisationError as exc:
            raise EvaluateError(f"{project.path}: {exc}") from None
    class_maps = (
        _class_maps(project, methods, maps_dir, model_sha)
        if "class-level" in settings.levels
        else {}
    )
    train = as_float(data.train_images[:5000])
    substrate = train.mean(dim=(0, 2, 3)).numpy()
    ctx = {
        "settings": asdict(settings),
        # in this process the model itself; workers load it from the project
        "model": model if n_jobs == 1 and scheduler is None else None,
        "project": str(project.root) if not project.builtin else project.name,
        "dataset": project.dataset,
        "model_spec": project.model,
        "device": device,
        "torch_device": str(dev),
        "x": x.cpu().numpy(),
        "labels": labels,
        "pred": pred,
        "features": features,
        "n_features": n_features,
        "n_classes": len(project.class_names),
        "substrate": substrate,
        "blurred": torch.stack([gaussian_blur(img) for img in x]).cpu().numpy(),
        "class_maps": class_maps,
        "kinds": {m.name: (m.kind, m.params) for m in project.methods},
        "per_image": project_settings(project).per_image,
        "layers": layers,
    }
    jobs = []
    for level in settings.levels:
        for method in [*methods, RANDOM]:
            if level == "per-image" and method != RANDOM and method not in per_image:
                continue
            jobs.append(Job(f"{level}/{method}", _seed(settings, "method", level, method),
                            {"level": level, "method": method}))  # fmt: skip
    random_jobs = [
        Job(f"randomisation/{m}", _seed(settings, "method", "per-image", m),
            {"level": "per-image", "method": m})
        for m in per_image
    ]  # fmt: skip
    dataset = {
        **{k: str(v) for k, v in project.dataset.items()},
        "test_images": int(len(data.test_labels)),
    }
    config = {
        "settings": asdict(settings),
        "project": str(project.path),
        "dataset": dataset,
        "model_sha256": model_sha,
        "images": rows.tolist(),
        "methods": methods,
    }
    try:
        store = JobStore(out_dir / "jobs.jsonl", config)
    except ConfigMismatch as exc:
        raise EvaluateError(str(exc)) from None
    common = {"n_jobs": n_jobs, "scheduler": scheduler, "threads": threads, "progress": progress}
    records = run_jobs(metric_job, jobs, ctx, store, desc="metrics", **common)
    records += run_jobs(randomisation_job, random_jobs, ctx, store, desc="randomisation",
                        **common)  # fmt: skip
    summary = summarise(records, settings, METRICS)
    meta = {
        "project": project.name,
        "project_file": str(project.path),
        "dataset": dataset,
        "model_sha256": model_sha,
        "device": str(dev),
        "settings": asdict(settings),
        "images": rows.tolist(),
        "image_labels": labels.tolist(),
        "accuracy_on_sample": float((pred == labels).mean()),
        "n_features": n_features,
        "features": "pixels" if features is None else "grid",
        "layers": layers,
        "wall_s": round(time.perf_counter() - started, 2),
        "argv": list(argv) if argv else None,
    }
    write_outputs(out_dir, records, summary, meta)
    log(f"evaluate: {len(records)} jobs, {meta['wall_s']} s; results in {out_dir}")
    return {"summary": summary, "meta": meta}


def _methods(project, settings: EvaluateSettings) -> list[str]:
    names = [m.name for m in project.methods]
    if settings.methods is None:
        return names
    unknown = [m for m in settings.methods if m not in names]
    if unknown:
        raise EvaluateError(
            f"--methods: {unknown[0]!r} is not a method of {project.path} ({', '.join(names)})"
        )
    return list(settings.methods)


def _class_maps(project, methods: list[str], maps_dir=None, model_sha=None) -> dict:
    from explainers.bundle import BundleError, read_bundle
    from explainers.shipped import shipped_maps

    where = Path(maps_dir) if maps_dir is not None else project.maps_dir
    own = maps_dir is not None or (where / "manifest.json").is_file()
    if not own and project.builtin and project.name == "mnist":
        where = shipped_maps()
    try:
        bundle = read_bundle(where)
    except BundleError:
        raise EvaluateError(
            f"class-level rows need the project's maps bundle ({where}): run "
            "`normlime precompute --project ...` first, give --maps, or --levels per-image"
        ) from None
    made_by = bundle.manifest.get("model", {}).get("sha256")
    if model_sha is not None and made_by is not None and made_by != model_sha:
        # the class maps would be scored on a model that did not make them
        raise EvaluateError(
            f"the bundle {where} was made from model {made_by[:12]} "
            f"({bundle.manifest['model'].get('path') or 'no path recorded'}), not the "
            f"evaluated model {model_sha[:12]}: give --model with the bundle's model, --maps "
            "with this model's bundle, or --levels per-image"
        )
    missing = [m for m in methods if m not in bundle.maps]
    if missing:
        raise EvaluateError(
            f"the bundle {where} has no maps of {', '.join(missing)}: precompute the "
            "project again"
        )
    return {m: np.asarray(bundle.maps[m], dtype=np.float64) for m in methods}


def write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")
