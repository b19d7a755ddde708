"""``normlime precompute``: class-level maps for every method, written as a maps bundle.

Which images (the seed decides everything random; ``images`` of a preset names the pool:
``all`` = train + test, ``test`` = the test set only; ``--disjoint-from`` removes another
bundle's images from the pool):

* NormLIME and LIME: ``lime.per_class`` images of every true digit, drawn with the seed;
  one local LIME explanation each (target = the model's predicted label of that image,
  noise seed derived from the run's seed and the image's pool position); the
  explanations are partitioned by the predicted label (paper eq. 7) and aggregated by
  ``explainers.normlime`` -- NormLIME eq. (9) and SP-LIME's eq. (6), both shown through
  the one display filter (positive part of the signed score).  Both maps come from the
  same local explanations, as in the paper.
* every per-image method (SmoothGrad-squared, VarGrad and the baselines): the mean of its
  maps over ``per_image.per_class`` random images of the digit with target = the digit
  (``explainers.class_maps.mean_class_maps``; the paper used 10).

The bundle records every image it used (``images.npz``: split, index and a digest of the
pixels), so that a second run can be made disjoint from it.

Presets (``stable`` is the default; docs/stimuli-protocol.md states the rule that chose
it, docs/explainers-lime.md the measurements):

* ``stable`` -- sparse local models (K well below 784, so NormLIME's normalisation acts);
  class maps of two runs with different seeds and disjoint images correlate r >= 0.9;
* ``paper`` -- the paper's stated settings, our documented choices where it is silent;
* ``demo`` -- the stable settings with few images: under 2 minutes, noisier maps.

Local explanations are cached on disk (``explainers.cache``), so a re-run with the same
model, images, parameters and seed costs only the aggregation.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from . import seeds
from .bundle import write_bundle
from .cache import LocalCache, PoolOutputsCache, explanation_key, pool_outputs_key
from .class_maps import mean_class_maps
from .data import ImagePool, MnistData, as_float, image_pool
from .errors import UserError
from .lime import (
    DEFAULT_BATCH_SIZE,
    KERNEL_BLOCK,
    LimeResult,
    LocalLime,
    inference_forward,
)
from .neighbourhood import DataNeighbourhood
from .normlime import class_usage_counts, display_class_maps, usage_spread
from .registry import ALL_METHODS, STUDY_METHODS, build, method_spec, settings_params
from .sampling import SamplingError, per_class_sample

__all__ = [
    "LimeSettings",
    "PerImageSettings",
    "Preset",
    "PRESETS",
    "PrecomputeError",
    "PrecomputeResult",
    "resolve_preset",
    "select_lime_images",
    "draw_per_digit",
    "excluded_digests",
    "image_seed",
    "explain_cached",
    "precompute",
]

#: the bundle's record of which images every method's class maps were made from
IMAGES_FILE = "images.npz"
#: images per forward pass when the model's outputs on a neighbour pool are computed
POOL_BATCH_SIZE = 500
#: LIME runs on a CPU with at least this many model evaluations are compiled by default:
#: compilation costs ~10 s with a warm inductor cache and ~1 min cold, and saves 20-30% of
#: forward time
COMPILE_MIN_SAMPLES = 1_000_000
DISPLAY_FILTER = (
    "signed scores, positive part: NormLIME shows max(0, mean over E_y(c_i) of "
    "gamma(w, i) * w_i) (eq. 9 with the signed weight), LIME shows "
    "sqrt(max(0, sum_j w_ji |w_ji|)) over the explanations labelled y (eq. 6 with the signed "
    "square); equal to eq. 9 / eq. 6 where all local weights are positive, 0 where all are "
    "negative (explainers.normlime.positive_evidence)"
)


class PrecomputeError(UserError):
    """Bad input to precompute (one readable line; the CLI turns it into exit code 2)."""


@dataclass(frozen=True)
class LimeSettings:
    """How the local explanations behind the NormLIME and LIME class maps are made.

    ``neighbourhood`` is the reading of the paper's eq. (1)-(2) (docs/stimuli-protocol.md,
    part two): ``"data"`` draws each explanation's ``n_samples`` neighbours from the
    training images with a Gaussian kernel whose effective sample size is
    ``effective_size``; ``"gaussian"`` adds noise of ``sigma`` to the image, weighted by
    a kernel of ``kernel_width``.
    """

    per_class: int  # local explanations (images) per true digit
    n_samples: int  # samples (data: draws of neighbours) per local explanation
    sigma: float | None  # Gaussian perturbation std in pixel units (the noise reading)
    n_features: int  # K, features selected by the LASSO
    kernel_width: float | None = None  # None: 0.75 * sqrt(784) * sigma (the noise reading)
    images: str = "all"  # the explained images: "all" (train + test) or "test"
    neighbourhood: str = "gaussian"  # "data" or "gaussian"
    effective_size: int | None = None  # m, the data kernel's effective sample size

    def __post_init__(self):
        if self.neighbourhood not in NEIGHBOURHOODS:
            raise PrecomputeError(
                f"neighbourhood must be one of {', '.join(NEIGHBOURHOODS)}, "
                f"got {self.neighbourhood!r}"
            )
        if self.neighbourhood == "data" and not self.effective_size:
            raise PrecomputeError("a data neighbourhood needs its effective_size")
        if self.neighbourhood == "gaussian" and self.sigma is None:
            raise PrecomputeError("the Gaussian-noise neighbourhood needs its sigma")


#: the readings of eq. (1)-(2): neighbours drawn from the training data, or Gaussian noise
NEIGHBOURHOODS = ("data", "gaussian")


@dataclass(frozen=True)
class PerImageSettings:
    """How the per-image methods' class maps are made (mean over images of the class)."""

    per_class: int = 10  # the paper's 10 images per digit
    n_samples: int | None = None  # None: each method's own default (SmoothGrad/VarGrad: 100)
    score: str = "logit"  # what SmoothGrad/VarGrad differentiate (explainers.gradients)
    images: str = "all"  # the image pool: "all" (train + test) or "test"


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    lime: LimeSettings
    per_image: PerImageSettings = field(default_factory=PerImageSettings)


def project_settings(project) -> Preset:
    """A study project's [lime] and [per_image] tables as the run's settings."""
    li, pi = project.lime, project.per_image
    data = li["neighbourhood"] == "data"
    lime = LimeSettings(
        per_class=li["per_class"], n_samples=li["n_samples"],
        sigma=None if data else li["sigma"], n_features=li["n_features"],
        kernel_width=None if data else li["kernel_width"], images=li["images"],
        neighbourhood=li["neighbourhood"], effective_size=li["effective_size"] if data else None,
    )  # fmt: skip
    per_image = PerImageSettings(
        per_class=pi["per_class"], n_samples=pi.get("n_samples"), score=pi.get("score", "logit"),
        images=pi["images"],
    )  # fmt: skip
    name = PRESET_OF_PROJECT.get(project.name, "project") if project.builtin else "project"
    description = project.description or f"study project {project.name} ({project.path})"
    return Preset(name, description, lime, per_image)


#: the presets are the built-in study projects' settings (explainers/projects/*/study.toml,
#: the one place their numbers are written)
PROJECT_OF_PRESET = {
    "stable": "mnist", "paper": "mnist-paper", "noise": "mnist-noise", "demo": "mnist-demo",
}  # fmt: skip
PRESET_OF_PROJECT = {v: k for k, v in PROJECT_OF_PRESET.items()}


def _builtin_presets() -> dict[str, Preset]:
    from .project import load_project

    return {name: project_settings(load_project(project))
            for name, project in PROJECT_OF_PRESET.items()}  # fmt: skip


PRESETS: dict[str, Preset] = _builtin_presets()


def resolve_preset(
    name: str | Preset = "stable",
    *,
    per_class: int | None = None,
    samples: int | None = None,
    n_features: int | None = None,
    effective_size: int | None = None,
) -> Preset:
    """The preset ``name`` with ``--per-class``/``--samples`` applied to every method.

    ``name`` may also be a :class:`Preset` (custom settings from Python).  ``n_features``
    overrides LIME's K, ``effective_size`` the data neighbourhood's m.  A K that is not
    below half the number of samples would leave the local least-squares fit (nearly)
    underdetermined and is refused.
    """
    if isinstance(name, Preset):
        preset = name
    else:
        try:
            preset = PRESETS[name]
        except KeyError:
            raise PrecomputeError(
                f"unknown preset {name!r}; choose from {', '.join(PRESETS)}"
            ) from None
    lime, per_image = preset.lime, preset.per_image
    if per_class is not None:
        lime = replace(lime, per_class=int(per_class))
        per_image = replace(per_image, per_class=int(per_class))
    if samples is not None:
        lime = replace(lime, n_samples=int(samples))
        per_image = replace(per_image, n_samples=int(samples))
    if n_features is not None:
        lime = replace(lime, n_features=int(n_features))
    if effective_size is not None:
        if lime.neighbourhood != "data":
            raise PrecomputeError(
                f"--effective-size applies to neighbours drawn from data; the {preset.name} "
                "preset adds Gaussian noise"
            )
        lime = replace(lime, effective_size=int(effective_size))
    if 2 * lime.n_features > lime.n_samples:
        raise PrecomputeError(
            f"LIME with K={lime.n_features} features needs at least {2 * lime.n_features} "
            f"samples per explanation, got {lime.n_samples}: raise --samples or lower "
            "--n-features"
        )
    return replace(preset, lime=lime, per_image=per_image)


def fit_threads(device: torch.device | str = "cpu") -> int:
    """Worker threads for the local fits, which then overlap the forward passes.

    Worth it only where the forward passes leave cores idle: on a GPU, the cores beyond
    one.  On CPUs with at most 2 cores the forward passes keep both busy and a worker
    thread only contends with them (measured here, K = 20 / 100: 55.1 / 63.7 ms per
    explanation inline vs 59.4 / 66.9 ms with one worker), so the fits run inline.
    """
    cores = os.cpu_count() or 2
    if torch.device(device).type != "cpu":
        return max(1, min(8, cores - 1))
    return 0 if cores <= 2 else max(1, min(8, cores - 1))


# --------------------------------------------------------------------------- seeds


def image_seed(seed: int, position: int) -> int:
    """The noise seed of the local explanation of the image at pool ``position`` in run ``seed``."""
    return seeds.derive(seed, 1, position)


def method_seed(seed: int, name: str, kind: str | None = None, params: dict | None = None) -> int:
    """The one seed rule of a method in run ``seed`` (its noise and its choice of images).

    A registered method used as itself (``kind`` is its name, no parameters: every method
    of the MNIST replication) takes stream (2, its registered stream number); any other
    method -- a study project's own, or a registered kind with parameters -- derives its
    seed from its *name* (stream 3).  Never from a position in a list, so adding or
    reordering methods reseeds no other.
    """
    kind = name if kind is None else kind
    if kind == name and not params and name in ALL_METHODS:
        return seeds.derive(seed, 2, method_spec(name).stream)
    number = int.from_bytes(hashlib.blake2b(name.encode(), digest_size=7).digest(), "big")
    return seeds.derive(seed, 3, number)


def draw_per_digit(
    labels: np.ndarray,
    per_class: int,
    rng: np.random.Generator,
    allowed: np.ndarray | None = None,
    n_classes: int | None = None,
    what: str = "images",
) -> np.ndarray:
    """(n_classes, per_class) indices: ``per_class`` random allowed images of every class
    (``n_classes`` default: the largest label + 1)."""
    classes = None if n_classes is None else range(n_classes)
    try:
        return per_class_sample(labels, per_class, rng, classes=classes, allowed=allowed)
    except SamplingError as exc:
        raise PrecomputeError(
            f"digit {exc.label} has {exc.available} usable images, {per_class} {what} "
            "requested: pass --per-class with a smaller number, --preset demo, or --data with "
            "full MNIST"
        ) from None


def select_lime_images(
    labels: np.ndarray,
    per_class: int,
    seed: int,
    allowed: np.ndarray | None = None,
    n_classes: int | None = None,
) -> np.ndarray:
    """Pool indices of ``per_class`` random images of every true digit for run ``seed``.

    Sorted by digit, then by draw, so the first ``n`` of a digit are a random sample of it.
    """
    rng = np.random.default_rng(seeds.stream(seed, 0))
    return draw_per_digit(
        labels, per_class, rng, allowed, n_classes, what="NormLIME/LIME explanations"
    ).reshape(-1)


def excluded_digests(bundle_dir: str | Path) -> np.ndarray:
    """Digests of every image the bundle in ``bundle_dir`` used (its ``images.npz``)."""
    from .inspect import bundle_image_digests

    digests = bundle_image_digests(bundle_dir)
    if not digests:
        raise PrecomputeError(
            f"--disjoint-from {bundle_dir}: {Path(bundle_dir) / IMAGES_FILE} is missing "
            "(bundles made before image records cannot be excluded; regenerate that bundle)"
        )
    return np.unique(np.concatenate(list(digests.values())))


# --------------------------------------------------------------------------- local explanations


def explain_cached(
    lime: LocalLime,
    images: torch.Tensor,
    targets: np.ndarray,
    seeds: np.ndarray,
    *,
    model_sha256: str,
    forward_desc: str,
    cache: LocalCache | None,
    chunk: int = 32,
    progress: Callable[[int], None] | None = None,
    run_chunks: Callable | None = None,
) -> tuple[LimeResult, int]:
    """``lime.explain`` for every image, reusing cached explanations; returns (result, hits).

    ``run_chunks(images, targets, seeds, chunks)`` (numpy arrays and a list of row-index
    arrays) computes the missing explanations elsewhere, yielding ``(rows, result dict)``
    as chunks finish (:func:`explainers.distributed.dask_runner`); by default they are
    computed here with ``lime``.
    """
    n = images.shape[0]
    d = lime.n_dims(images)
    result = LimeResult(
        weights=np.zeros((n, d), dtype=np.float32),
        intercept=np.zeros(n),
        r2=np.zeros(n),
        prob=np.zeros(n),
        seeds=np.asarray(seeds, dtype=np.int64),
    )
    params = {**lime.params(), "forward": forward_desc}
    keys = [None] * n
    todo = []
    hits = 0
    images_cpu = images.detach().to("cpu")
    for i in range(n):
        if cache is not None:
            keys[i] = explanation_key(
                model_sha256=model_sha256,
                image=images_cpu[i].numpy(),
                target=int(targets[i]),
                params=params,
                seed=int(seeds[i]),
            )
            entry = cache.get(keys[i])
            if entry is not None and entry.weights.size == d:
                result.weights[i] = entry.weights
                result.intercept[i], result.r2[i], result.prob[i] = (
                    entry.intercept,
                    entry.r2,
                    entry.prob,
                )
                hits += 1
                if progress is not None:
                    progress(1)
                continue
        todo.append(i)
    chunks = [np.asarray(todo[s : s + chunk]) for s in range(0, len(todo), chunk)]
    if run_chunks is None:
        parts = (
            (
                rows,
                lime.explain(
                    images[torch.as_tensor(rows, device=images.device)],
                    torch.as_tensor(targets[rows]),
                    seeds=result.seeds[rows],
                    progress=progress,
                ).__dict__,
            )
            for rows in chunks
        )
    else:
        parts = run_chunks(images_cpu.numpy(), np.asarray(targets), result.seeds, chunks)
    for rows, part in parts:
        for key, value in (part.get("timings") or {}).items():
            result.timings[key] = result.timings.get(key, 0.0) + value
        result.weights[rows] = part["weights"]
        result.intercept[rows] = part["intercept"]
        result.r2[rows] = part["r2"]
        result.prob[rows] = part["prob"]
        if cache is not None:  # stream into the cache: a crash loses at most the open chunks
            for j, i in enumerate(rows):
                w, b, r2, p = (part[k][j] for k in ("weights", "intercept", "r2", "prob"))
                cache.put(keys[i], w, b, r2, p)
        if run_chunks is not None and progress is not None:
            progress(len(rows))
    return result, hits


# --------------------------------------------------------------------------- the command


@dataclass
class PrecomputeResult:
    out_dir: Path
    maps: dict[str, np.ndarray]
    manifest: dict
    cache_hits: int = 0
    n_local: int = 0
    wall_time_s: float = 0.0


def _predict(forward, images: torch.Tensor, batch: int = 1000) -> np.ndarray:
    out = []
    with torch.inference_mode():
        for s in range(0, images.shape[0], batch):
            out.append(forward(images[s : s + batch]).argmax(1).cpu())
    return torch.cat(out).numpy()


def _explainer_params(explainer) -> dict:
    params = getattr(explainer, "params", None)
    if callable(params):
        params = params()
    return dict(params or {})


def _jsonable(obj):
    return json.loads(json.dumps(obj, default=lambda o: o.item() if hasattr(o, "item") else str(o)))


# --------------------------------------------------------------------------- planning


@dataclass
class LocalPlan:
    """The local LIME explanations behind the aggregated methods (NormLIME, LIME)."""

    methods: tuple[str, ...]
    settings: LimeSettings
    pool: ImagePool
    index: np.ndarray  # pool positions of the explained images
    seeds: np.ndarray  # their noise seeds
    #: where a data neighbourhood draws from: the training split (None: Gaussian noise)
    neighbours: ImagePool | None = None


@dataclass
class PerImagePlan:
    """One per-image method's class maps: the mean over ``chosen`` images of each class."""

    method: str
    settings: PerImageSettings
    pool: ImagePool
    chosen: np.ndarray  # (n_classes, per_class) pool positions
    seed: int


@dataclass
class Plan:
    """Which explanations a run makes: everything random is decided here, from the seed."""

    settings: Preset
    seed: int
    n_classes: int
    image_shape: tuple[int, ...]
    local: LocalPlan | None
    per_image: list[PerImagePlan]


def plan_run(
    data: MnistData,
    methods: Sequence[str],
    settings: Preset,
    seed: int,
    excluded: np.ndarray | None = None,
    *,
    aggregated: Callable[[str], bool] | None = None,
    seed_of: Callable[[str], int] | None = None,
    n_classes: int | None = None,
) -> Plan:
    """Choose every image and seed of a run (no model needed).  Shapes come from the data.

    ``aggregated(name)`` says whether a method's class maps come from the local LIME
    explanations and ``seed_of(name)`` gives a per-image method's seed; by default both
    come from the registry (a study project passes its own).  ``n_classes`` defaults to
    the largest label + 1.
    """
    aggregated = aggregated or (lambda m: method_spec(m).aggregate)
    seed_of = seed_of or (lambda m: method_seed(seed, m))
    pools: dict[str, ImagePool] = {}

    def pool_of(name: str) -> tuple[ImagePool, np.ndarray | None]:
        if name not in pools:
            pools[name] = image_pool(data, name)
        pool = pools[name]
        allowed = None if excluded is None else ~np.isin(pool.digest, excluded)
        return pool, allowed

    if n_classes is None:
        n_classes = int(max(data.train_labels.max(initial=0), data.test_labels.max())) + 1
    local_methods = tuple(m for m in methods if aggregated(m))
    local = None
    if local_methods:
        ls = settings.lime
        pool, allowed = pool_of(ls.images)
        index = select_lime_images(pool.labels, ls.per_class, seed, allowed, n_classes)
        seeds_ = np.array([image_seed(seed, int(t)) for t in index], dtype=np.int64)
        neighbours = neighbour_pool(data, ls) if ls.neighbourhood == "data" else None
        local = LocalPlan(local_methods, ls, pool, index, seeds_, neighbours)
    per_image = []
    for method in methods:
        if aggregated(method):
            continue
        pi = settings.per_image
        pool, allowed = pool_of(pi.images)
        mseed = seed_of(method)
        chosen = draw_per_digit(
            pool.labels, pi.per_class, np.random.default_rng(mseed), allowed, n_classes,
            what=f"{method} images",
        )  # fmt: skip
        per_image.append(PerImagePlan(method, pi, pool, chosen, mseed))
    image_shape = tuple(next(iter(pools.values())).images.shape[1:]) if pools else ()
    return Plan(settings, seed, n_classes, image_shape, local, per_image)


def neighbour_pool(data: MnistData, ls: LimeSettings) -> ImagePool:
    """The images a data neighbourhood draws from: the training split (the data's only
    split where it has no training split), which must be larger than the kernel's
    effective size."""
    pool = image_pool(data, "train" if data.n_train else "test")
    if pool.images.shape[0] <= (ls.effective_size or 0):
        raise PrecomputeError(
            f"a neighbourhood of effective size {ls.effective_size} needs more than "
            f"{ls.effective_size} {pool.describe()}, the data has {pool.images.shape[0]}: "
            "lower the effective size (--effective-size; [lime] effective_size in a study "
            "project) or use data with more images"
        )
    return pool


# --------------------------------------------------------------------------- execution


@dataclass
class LocalRun:
    """The local explanations of a :class:`LocalPlan`, as computed (or read from the cache)."""

    result: LimeResult
    pred: np.ndarray
    params: dict
    hits: int
    wall_time_s: float
    cache_root: str | None
    #: the (H, W) feature labels of grid-feature LIME (None: one feature per input value)
    features: np.ndarray | None = None

    def to_pixels(self, values: np.ndarray, image_shape: tuple[int, ...]) -> np.ndarray:
        """(C, M) per-feature class values -> (C, H, W) maps, summed over channels."""
        if self.features is None:
            return reduce_channels(values.reshape(values.shape[0], *image_shape))
        return values[:, self.features]


def run_local(
    lp: LocalPlan,
    model,
    dev: torch.device,
    *,
    model_path: str | Path,
    model_sha: str,
    cache: LocalCache | None,
    batch_size: int,
    compile_model: bool | None,
    scheduler,
    worker_threads: int | None,
    bar_opts: dict,
    log: Callable[[str], None],
    lime_extra: dict | None = None,
) -> LocalRun:
    """Compute ``lp``'s local explanations here or on a Dask cluster, through the cache.

    ``lime_extra`` adds LocalLime arguments a study project sets (``features``, ``clip``).
    """
    from tqdm import tqdm

    ls = lp.settings
    t0 = time.perf_counter()
    if scheduler is not None or lp.neighbours is not None:
        # Dask workers run eager (the cache key names the forward path); neighbours drawn
        # from data need no forward pass per sample, so compilation could not pay
        compile_model = False
    elif compile_model is None:
        # On a GPU the forward passes are not what bounds LIME (the CPU draws the noise and
        # fits), so compilation time could not be won back there.
        compile_model = dev.type == "cpu" and lp.index.size * ls.n_samples >= COMPILE_MIN_SAMPLES
    forward = inference_forward(model, compile=compile_model, compile_batch_size=batch_size)
    forward_desc = "inference_forward(channels_last, float64 softmax" + (
        ", torch.compile)" if compile_model else ")"
    )
    images = as_float(lp.pool.images[lp.index]).to(dev)
    pred = _predict(forward, images)
    lime_kwargs = {
        "n_samples": ls.n_samples,
        "n_features": ls.n_features,
        "batch_size": batch_size,
        **(
            {"sigma": ls.sigma, "kernel_width": ls.kernel_width}
            if lp.neighbours is None
            else {}
        ),
        **(lime_extra or {}),
    }
    pool_info = None
    if lp.neighbours is not None:
        nb, pool_info = data_neighbourhood(
            lp, forward, dev, model_sha=model_sha, forward_desc=forward_desc,
            cache_root=None if cache is None else cache.root, log=log,
        )  # fmt: skip
        lime_kwargs["neighbourhood"] = nb
        lime_kwargs.pop("clip", None)  # neighbours are real images: nothing to clip
    lime = LocalLime(forward, **lime_kwargs, n_jobs=fit_threads(dev))
    run_chunks = None
    if scheduler is not None:
        from .distributed import dask_runner

        log(f"  local explanations on the Dask scheduler {scheduler}")
        runner = dask_runner(scheduler, Path(model_path).read_bytes(), threads=worker_threads)

        def run_chunks(imgs, tgts, sds, chunks):
            return runner(lime_kwargs, imgs, tgts, sds, chunks)

    with (
        tqdm(total=lp.index.size, desc="local LIME explanations", unit="img", **bar_opts) as bar,
        _scheduler_errors(scheduler),
    ):
        local, hits = explain_cached(
            lime,
            images,
            pred,
            lp.seeds,
            model_sha256=model_sha,
            forward_desc=forward_desc,
            cache=cache,
            progress=bar.update,
            run_chunks=run_chunks,
            # smaller tasks keep every Dask worker busy to the end; neighbours drawn from
            # data come in whole kernel blocks (one pass over the pool per block)
            chunk=(KERNEL_BLOCK if lp.neighbours is not None else 32) if run_chunks is None
            else 8,
        )
    d = lime.n_dims(images)
    params = {
        **lime.params(),
        **(
            {"kernel_width_used": lime.width_for(d)}
            if lp.neighbours is None
            else {"neighbour_pool": pool_info, "kernel_width_rule": KERNEL_WIDTH_RULE}
        ),
        "forward_batch_size": batch_size,  # speed only: the outputs do not depend on it
        "per_class": ls.per_class,
        "images": f"{lp.pool.describe()} drawn per true digit; partitioned by predicted label",
        "image_pool": ls.images,
        "forward": forward_desc,
    }
    root = str(cache.root) if cache is not None else None
    return LocalRun(local, pred, params, hits, time.perf_counter() - t0, root, lime.features)


KERNEL_WIDTH_RULE = (
    "neighbours x' drawn i.i.d. from the pool with probability proportional to "
    "exp(-||x' - x0||^2 / h(x0)^2), copies of x0 excluded; h(x0) set per image so that the "
    "kernel's effective sample size over the pool, (sum pi)^2 / sum pi^2, is effective_size "
    "(explainers.neighbourhood); the draws' counts weight the local fit"
)


def data_neighbourhood(
    lp: LocalPlan, forward, dev, *, model_sha: str, forward_desc: str, cache_root, log
) -> tuple[DataNeighbourhood, dict]:
    """The data neighbourhood of a plan: its pool as model inputs and the model's outputs
    on it, computed once in batches (and cached on disk with the local explanations)."""
    pool = lp.neighbours
    digest = hashlib.blake2b(
        pool.digest.tobytes() + repr(pool.images.shape).encode(), digest_size=16
    ).hexdigest()
    cache = PoolOutputsCache(cache_root) if cache_root is not None else None
    key = pool_outputs_key(model_sha256=model_sha, pool_digest=digest, forward=forward_desc)
    inputs = as_float(pool.images)
    outputs = cache.get(key, len(inputs)) if cache is not None else None
    seconds = 0.0
    if outputs is None:
        t0 = time.perf_counter()
        outputs = model_outputs(forward, inputs, dev)
        seconds = time.perf_counter() - t0
        log(f"  model outputs on {len(inputs):,} {pool.describe()} (the neighbour pool): "
            f"{seconds:.1f} s")  # fmt: skip
        if cache is not None:
            cache.put(key, outputs)
    nb = DataNeighbourhood(
        inputs, outputs, effective_size=lp.settings.effective_size, digest=digest
    )
    info = {
        "images": f"the {len(inputs):,} {pool.describe()} of the data",
        "model_outputs_s": round(seconds, 2),  # 0: read from the cache
    }
    return nb, info


def model_outputs(forward, inputs, dev, batch: int = POOL_BATCH_SIZE) -> np.ndarray:
    """(N, C) float64 class probabilities of ``inputs``, one forward pass per batch."""
    out = []
    with torch.inference_mode():
        for s in range(0, inputs.shape[0], batch):
            out.append(forward(inputs[s : s + batch].to(dev)).to("cpu", torch.float64))
    return torch.cat(out).numpy()


def reduce_channels(maps: np.ndarray) -> np.ndarray:
    """(C, channels, H, W) -> (C, H, W) by summing over the channels (Captum's
    visualize_image_attr convention); (C, H, W) maps pass through.  One grey channel
    (MNIST) is returned unchanged."""
    maps = np.asarray(maps)
    return maps.sum(axis=1, dtype=maps.dtype) if maps.ndim == 4 else maps


CHANNEL_RULE = (
    "a method's per-channel attributions are summed over the image's channels before "
    "averaging is displayed (Captum's visualize_image_attr convention); grey images have "
    "one channel"
)


def run_per_image(
    item: PerImagePlan, model, dev: torch.device, plan: Plan, bar_opts: dict, make: Callable
):
    """One per-image method's class maps (n_classes, H, W) and its explainer, built by
    ``make(model, seed)`` (:func:`explainer_factory`)."""
    n_classes = plan.n_classes
    from tqdm import tqdm

    explainer = make(model, item.seed)
    # only the chosen images go to the device; indices are re-expressed into them
    used = np.sort(item.chosen.ravel())
    with tqdm(total=n_classes, desc=item.method, unit="digit", **bar_opts) as bar:
        arr = mean_class_maps(
            _Counted(explainer, bar.update),
            as_float(item.pool.images[used]).to(dev),
            item.pool.labels[used],
            n_classes=n_classes,
            indices=np.searchsorted(used, item.chosen),
        )
    out = reduce_channels(np.asarray(arr, dtype=np.float32))
    out = out.reshape(n_classes, *plan.image_shape[-2:])
    return out, explainer


# --------------------------------------------------------------------------- aggregation


def aggregate_local(
    plan: Plan, run: LocalRun, model_sha: str, kind_of: Callable[[str], str] | None = None
) -> tuple[dict, dict, dict]:
    """NormLIME (eq. 9) and LIME (SP-LIME eq. 6) class maps from the local explanations.

    ``kind_of(name)`` is "normlime" or "lime" for each aggregated method (default: its
    name).  Returns (maps, methods_info, the arrays of local.npz).
    """
    kind_of = kind_of or (lambda m: m)
    lp = plan.local
    class_maps = display_class_maps(run.result.weights, run.pred, plan.n_classes)
    usage = class_usage_counts(run.result.weights, run.pred, plan.n_classes)

    def pixels(values):
        return run.to_pixels(values, plan.image_shape)

    maps, info = {}, {}
    for method in lp.methods:
        maps[method] = pixels(class_maps[kind_of(method)]).astype(np.float32)
        info[method] = {
            "parameters": {
                **run.params,
                "aggregation": "NormLIME eq. (9)" if kind_of(method) == "normlime" else
                "SP-LIME eq. (6) conditioned on the predicted label",
                "display_filter": DISPLAY_FILTER,
            },
            "seed": plan.seed,
            "model_sha256": model_sha,
            "wall_time_s": round(run.wall_time_s, 2),
            "wall_time_note": "shared: NormLIME and LIME aggregate the same explanations",
        }  # fmt: skip
    arrays = {
        "split": lp.pool.split[lp.index],
        "index": lp.pool.index[lp.index],
        "true_label": lp.pool.labels[lp.index],
        "pred_label": run.pred,
        "seed": lp.seeds,
        "r2": run.result.r2,
        "prob": run.result.prob,
        "normlime_raw": pixels(class_maps["normlime_raw"]),
        "lime_raw": pixels(class_maps["lime_raw"]),
        "usage_counts": pixels(usage),
    }
    return maps, info, arrays


def _local_summary(plan: Plan, run: LocalRun, arrays: dict, keep_local: bool) -> dict:
    lp = plan.local
    usage = arrays["usage_counts"].reshape(plan.n_classes, -1)
    return {
        "count": int(lp.index.size),
        "per_class": lp.settings.per_class,
        "image_pool": lp.settings.images,
        "per_predicted_label": np.bincount(run.pred, minlength=plan.n_classes).tolist(),
        "misclassified": int((run.pred != arrays["true_label"]).sum()),
        "mean_r2": round(float(run.result.r2.mean()), 4),
        "time_split_s": {k: round(v, 2) for k, v in run.result.timings.items()},
        "usage_cv_median": round(float(np.median(usage_spread(usage))), 4),
        "cache_hits": int(run.hits),
        "cache_dir": run.cache_root,
        "wall_time_s": round(run.wall_time_s, 2),
        "file": "local.npz (split 0 = train / 1 = test and index of every explained image, "
        "labels, seeds, R^2, raw class scores, |E_y(c_i)|"
        + (", the weight matrix M)" if keep_local else ")"),
    }


def _records(prefix: str, pool: ImagePool, positions: np.ndarray) -> dict[str, np.ndarray]:
    return {
        f"{prefix}_{key}": values[positions]
        for key, values in (("split", pool.split), ("index", pool.index), ("digest", pool.digest))
    }


# --------------------------------------------------------------------------- the run


@dataclass
class MapsRun:
    """Everything a run computed, ready for :func:`write_outputs`."""

    maps: dict[str, np.ndarray]
    info: dict[str, dict]
    records: dict[str, np.ndarray]
    local_arrays: dict | None
    local_summary: dict | None
    hits: int
    n_local: int


def explainer_factory(kind: str, params: dict, per_image: PerImageSettings) -> Callable:
    """``make(model, seed)`` of a per-image method: the registry's one construction,
    ``kind``'s share of the run's per-image settings (``n_samples``, ``score``) overridden
    by the method's own ``params``."""
    base = (
        settings_params(kind, n_samples=per_image.n_samples, score=per_image.score)
        if kind in ALL_METHODS else {}
    )  # fmt: skip
    merged = {**base, **dict(params)}

    def make(model, seed):
        return build(kind, model, random_state=seed, params=merged)

    return make


def compute_maps(
    plan: Plan,
    model,
    dev: torch.device,
    *,
    kinds: Mapping[str, tuple[str, dict]],
    model_sha: str,
    model_path: str | Path | None,
    cache: LocalCache | None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    compile_model: bool | None = None,
    scheduler=None,
    worker_threads: int | None = None,
    keep_local: bool = False,
    lime_extra: dict | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> MapsRun:
    """The one orchestrator of a planned run, for the MNIST replication and study projects.

    ``kinds[name]`` is each method's (registry kind, parameters): "normlime" and "lime"
    aggregate the local LIME explanations; every other kind is a per-image explainer
    averaged over its planned images.  A method that fails on the data raises
    :class:`PrecomputeError` naming it.
    """
    bar_opts = {"file": sys.stderr, "disable": not progress, "mininterval": 1.0}
    maps: dict[str, np.ndarray] = {}
    info: dict[str, dict] = {}
    records: dict[str, np.ndarray] = {}
    local_arrays = local_summary = None
    hits = n_local = 0
    if plan.local is not None:
        lp, ls = plan.local, plan.local.settings
        where = (
            f"neighbours drawn from the {lp.neighbours.images.shape[0]:,} "
            f"{lp.neighbours.describe()} (effective size {ls.effective_size})"
            if lp.neighbours is not None
            else f"Gaussian noise sigma={ls.sigma}"
        )
        log(
            f"{'/'.join(lp.methods)}: {lp.index.size:,} local explanations of "
            f"{lp.pool.describe()} ({ls.per_class} per class), {ls.n_samples} samples each, "
            f"{where}, K={ls.n_features}"
        )
        run = run_local(
            lp, model, dev, model_path=model_path, model_sha=model_sha, cache=cache,
            batch_size=batch_size, compile_model=compile_model, scheduler=scheduler,
            worker_threads=worker_threads, bar_opts=bar_opts, log=log, lime_extra=lime_extra,
        )  # fmt: skip
        hits, n_local = run.hits, int(lp.index.size)
        if hits:
            log(f"  {hits:,} of {n_local:,} local explanations came from the cache")
        agg_maps, agg_info, local_arrays = aggregate_local(
            plan, run, model_sha, kind_of=lambda m: kinds[m][0]
        )
        if keep_local:
            local_arrays["weights"] = run.result.weights
        maps.update(agg_maps)
        info.update(agg_info)
        records.update(_records("lime", lp.pool, lp.index))
        local_summary = _local_summary(plan, run, local_arrays, keep_local)
    for item in plan.per_image:
        kind, params = kinds[item.method]
        log(f"{item.method}: mean over {item.settings.per_class} {item.pool.describe()} per class")
        t0 = time.perf_counter()
        make = explainer_factory(kind, params, item.settings)
        try:
            maps[item.method], explainer = run_per_image(item, model, dev, plan, bar_opts, make)
        except (ValueError, RuntimeError) as exc:
            if isinstance(exc, UserError):
                raise
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise PrecomputeError(f"method {item.method!r} failed: {first}") from None
        records.update(_records(item.method, item.pool, item.chosen))
        info[item.method] = {
            "parameters": {
                "kind": kind,
                **_jsonable(_explainer_params(explainer)),
                "per_class": item.settings.per_class,
                "aggregation": "mean over the class's images, target = the class",
                "images": f"{item.pool.describe()} drawn per class, target = the class",
                "image_pool": item.settings.images,
            },
            "seed": plan.seed,
            "method_seed": item.seed,
            "model_sha256": model_sha,
            "wall_time_s": round(time.perf_counter() - t0, 2),
        }
    return MapsRun(maps, info, records, local_arrays, local_summary, hits, n_local)


# --------------------------------------------------------------------------- writing


def class_pictures(data: MnistData, n_classes: int) -> np.ndarray:
    """(C, H, W) each class's mean image, pixels in [0, 1] and channels averaged, over the
    training split (the data's only split where it has none): what a class looks like,
    the options of the attention checks (explainers.bundle, study_server.survey)."""
    images, labels = (
        (data.train_images, data.train_labels) if data.n_train else
        (data.test_images, data.test_labels)
    )  # fmt: skip
    out = []
    for c in range(n_classes):
        mine = images[labels == c].astype(np.float64) / 255.0
        if mine.ndim == 4:
            mine = mine.mean(1)
        out.append(mine.mean(0) if len(mine) else np.zeros(images.shape[-2:]))
    return np.stack(out).astype(np.float32)


def write_outputs(
    out_dir: Path,
    maps: dict,
    methods_info: dict,
    extra: dict,
    image_records: dict,
    local_arrays: dict | None,
    **bundle_options,
) -> dict:
    """The bundle, its image records and the local explanations' summary; the manifest.

    ``bundle_options`` go to :func:`explainers.bundle.write_bundle` (a study project's
    classes, display, representatives, survey).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    if local_arrays is not None:
        np.savez_compressed(out_dir / "local.npz", **local_arrays)
    write_bundle(
        out_dir, maps, methods_info=_jsonable(methods_info), extra=_jsonable(extra),
        **bundle_options,
    )  # fmt: skip
    np.savez_compressed(out_dir / IMAGES_FILE, **image_records)
    return json.loads((out_dir / "manifest.json").read_text())


# --------------------------------------------------------------------------- the command


def precompute(
    *,
    model_path: str | Path,
    data: MnistData,
    out_dir: str | Path,
    methods: Sequence[str] = STUDY_METHODS,
    preset: str | Preset = "stable",
    per_class: int | None = None,
    samples: int | None = None,
    n_features: int | None = None,
    effective_size: int | None = None,
    seed: int = 0,
    device: str | None = None,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool = True,
    keep_local: bool = False,
    compile_model: bool | None = None,
    disjoint_from: str | Path | None = None,
    scheduler=None,
    worker_threads: int | None = None,
    log: Callable[[str], None] = print,
    argv: Sequence[str] | None = None,
) -> PrecomputeResult:
    """The MNIST replication: every requested method's class maps, written into ``out_dir``.

    It runs the built-in study project of ``preset`` (``explainers/projects``; a custom
    :class:`Preset` runs ``mnist``'s with those settings) with this call's model, data,
    methods, seed and overrides, through the one front end
    (``project_precompute.precompute_project``) and so the one pipeline: planning
    (:func:`plan_run`), :func:`compute_maps` and :func:`write_outputs`.  The bundle carries
    the paper's survey block when the four shown methods are all there.  ``disjoint_from``
    names another bundle whose images this run must not use (a stability check compares
    two runs on disjoint images).  ``scheduler`` (``tcp://host:port`` or a
    ``distributed.Client``) computes the local LIME explanations on a Dask cluster, with
    ``worker_threads`` torch threads per task.
    """
    from .project import ProjectError
    from .project_precompute import precompute_project

    methods = tuple(methods)
    if not methods:
        raise PrecomputeError("no methods requested")
    unknown = [m for m in methods if m not in ALL_METHODS]
    if unknown:
        raise PrecomputeError(
            f"unknown method(s) {', '.join(unknown)}; choose from {', '.join(ALL_METHODS)}"
        )
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise PrecomputeError(f"--out {out_dir} exists and is not a directory")
    if not Path(model_path).is_file():
        raise PrecomputeError(f"model file {model_path} does not exist")
    settings = resolve_preset(
        preset, per_class=per_class, samples=samples, n_features=n_features,
        effective_size=effective_size,
    )  # fmt: skip
    project = replication_project(settings, methods, seed, model_path)
    try:
        return precompute_project(
            project, out_dir=out_dir, device=device, use_cache=use_cache,
            cache_dir=cache_dir, batch_size=batch_size, compile_model=compile_model,
            disjoint_from=disjoint_from, keep_local=keep_local, scheduler=scheduler,
            worker_threads=worker_threads, progress=progress, log=log, argv=argv, data=data,
            settings=settings, replication=True,
        )  # fmt: skip
    except ProjectError as exc:  # said without the built-in study.toml's path
        raise PrecomputeError(str(exc).removeprefix(f"{project.path}: ")) from None


def replication_project(settings: Preset, methods: Sequence[str], seed: int, model_path):
    """The built-in project behind a replication run, with its methods, seed and model."""
    from .project import MethodConfig, load_project

    project = load_project(PROJECT_OF_PRESET.get(settings.name, "mnist"))
    shown = tuple(m for m in STUDY_METHODS if m in methods)
    return replace(
        project,
        seed=int(seed),
        methods=tuple(MethodConfig(m, m) for m in methods),
        model={"file": str(Path(model_path).resolve())},
        # the paper's survey shows the four methods; any other set has no survey block
        survey=project.survey if shown == tuple(STUDY_METHODS) else None,
    )


def environment(dev: torch.device) -> dict:
    """What a manifest records about the machine that made the maps."""
    return {
        "torch": torch.__version__,
        "device": str(dev),
        "threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


@contextlib.contextmanager
def _scheduler_errors(scheduler):
    """An unreachable or failing Dask scheduler is one line, not a traceback."""
    if scheduler is None:
        yield
        return
    try:
        yield
    except (OSError, TimeoutError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PrecomputeError(
            f"cannot use the Dask scheduler {scheduler}: {first} (the local explanations "
            "finished so far are in the cache; rerun to resume)"
        ) from None


class _Counted:
    """Pass-through explainer that ticks a progress bar once per ``attribute`` call."""

    def __init__(self, explainer, tick):
        self.explainer = explainer
        self.tick = tick

    def attribute(self, inputs, target):
        out = self.explainer.attribute(inputs, target)
        self.tick(1)
        return out
