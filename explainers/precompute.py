"""``normlime precompute``: class-level maps for every method, written as a maps bundle.

Which images (all from the *test* set; the seed decides everything random):

* NormLIME and LIME: ``lime.per_class`` test images of every true digit, drawn with the
  seed; one local LIME explanation each (target = the model's predicted label of that
  image, noise seed derived from the run's seed and the image's test-set index); the
  explanations are partitioned by the predicted label (paper eq. 7) and aggregated by
  ``explainers.normlime`` -- NormLIME eq. (9) and SP-LIME's eq. (6), both shown through
  the one display filter (positive mean local weight).  Both maps come from the same local
  explanations, as in the paper.
* every per-image method (SmoothGrad-squared, VarGrad and the baselines): the mean of its
  maps over ``per_image.per_class`` random test images of the digit with target = the
  digit (``explainers.class_maps.mean_class_maps``, the paper's 10 images).

Presets (the ``stable`` one is the default; see docs/explainers-lime.md for the study that
chose it):

* ``stable`` -- class-level maps from two runs with different seeds and different images
  correlate r >= 0.93 (NormLIME) and >= 0.87 (LIME) on every digit;
* ``demo`` -- a cheap setting for trying the pipeline in about a minute from the
  embedded data; its maps are visibly noisier (r 0.58-0.82).

Local explanations are cached on disk (``explainers.cache``), so a re-run with the same
model, images, parameters and seed costs only the aggregation.
"""

from __future__ import annotations

import inspect
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from .bundle import write_bundle
from .cache import LocalCache, explanation_key
from .class_maps import mean_class_maps
from .data import MnistData, as_float, stratified_sample
from .lime import (
    DEFAULT_BATCH_SIZE,
    LimeResult,
    LocalLime,
    inference_forward,
    retain_freed_memory,
)
from .model import file_checksum, load
from .normlime import class_usage_counts, display_class_maps
from .registry import ALL_METHODS, STUDY_METHODS, explainer_class

__all__ = [
    "LimeSettings",
    "PerImageSettings",
    "Preset",
    "PRESETS",
    "PrecomputeError",
    "PrecomputeResult",
    "resolve_preset",
    "select_lime_images",
    "image_seed",
    "explain_cached",
    "precompute",
]

LIME_FAMILY = ("normlime", "lime")
#: LIME runs with at least this many model evaluations are compiled by default: compilation
#: costs ~10 s with a warm inductor cache and ~1 min cold, and saves ~20% of forward time
COMPILE_MIN_SAMPLES = 1_000_000
DISPLAY_FILTER = (
    "signed scores, positive part: NormLIME shows max(0, mean over E_y(c_i) of "
    "gamma(w, i) * w_i) (eq. 9 with the signed weight), LIME shows "
    "sqrt(max(0, sum_j w_ji |w_ji|)) over the explanations labelled y (eq. 6 with the signed "
    "square); equal to eq. 9 / eq. 6 where all local weights are positive, 0 where all are "
    "negative (explainers.normlime.positive_evidence)"
)


class PrecomputeError(ValueError):
    """Bad input to precompute (one readable line; the CLI turns it into exit code 2)."""


@dataclass(frozen=True)
class LimeSettings:
    """How the local explanations behind the NormLIME and LIME class maps are made."""

    per_class: int  # local explanations (test images) per true digit
    n_samples: int  # perturbed samples per local explanation
    sigma: float  # Gaussian perturbation std in pixel units
    n_features: int  # K, features selected by the LASSO
    kernel_width: float | None = None  # None: 0.75 * sqrt(784) * sigma


@dataclass(frozen=True)
class PerImageSettings:
    """How the per-image methods' class maps are made (mean over images of the class)."""

    per_class: int = 10  # the paper's 10 images per digit
    n_samples: int | None = None  # None: each method's own default (SmoothGrad/VarGrad: 100)


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    lime: LimeSettings
    per_image: PerImageSettings = field(default_factory=PerImageSettings)


PRESETS: dict[str, Preset] = {
    "stable": Preset(
        "stable",
        "class maps from two seeds and different images correlate r >= 0.93 (NormLIME) / "
        ">= 0.87 (LIME) on every digit, mean 0.95 / 0.93 (docs/explainers-lime.md); "
        "about 12 minutes on 2 CPU cores",
        LimeSettings(per_class=180, n_samples=2000, sigma=0.5, n_features=784),
    ),
    "demo": Preset(
        "demo",
        "the stable settings with 20 instead of 180 local explanations per digit: "
        "about a minute of LIME on 2 CPU cores; between-seed r 0.58-0.82 per digit, mean 0.7",
        LimeSettings(per_class=20, n_samples=2000, sigma=0.5, n_features=784),
    ),
}


def resolve_preset(
    name: str | Preset = "stable",
    *,
    per_class: int | None = None,
    samples: int | None = None,
    n_features: int | None = None,
) -> Preset:
    """The preset ``name`` with ``--per-class``/``--samples`` applied to every method.

    ``name`` may also be a :class:`Preset` (custom settings from Python).  ``n_features``
    overrides LIME's K.  A K that is not below half the number of samples would leave the
    local least-squares fit (nearly) underdetermined and is refused.
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
    if 2 * lime.n_features > lime.n_samples:
        raise PrecomputeError(
            f"LIME with K={lime.n_features} features needs at least {2 * lime.n_features} "
            f"samples per explanation, got {lime.n_samples}: raise --samples or lower "
            "--n-features"
        )
    return replace(preset, lime=lime, per_image=per_image)


def fit_threads() -> int:
    """Worker threads for LASSO fits: the cores beyond one, at least one (overlap)."""
    return max(1, min(8, (os.cpu_count() or 2) - 1))


# --------------------------------------------------------------------------- seeds


def _stream(seed: int, *path: int) -> np.random.SeedSequence:
    return np.random.SeedSequence([int(seed), *map(int, path)])


def _int_seed(seq: np.random.SeedSequence) -> int:
    return int(seq.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def image_seed(seed: int, test_index: int) -> int:
    """The noise seed of the local explanation of test image ``test_index`` in run ``seed``."""
    return _int_seed(_stream(seed, 1, test_index))


def method_seed(seed: int, method: str) -> int:
    """The seed handed to a per-image method (its noise and its choice of images)."""
    return _int_seed(_stream(seed, 2, ALL_METHODS.index(method)))


def select_lime_images(labels: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """Test-set indices of ``per_class`` random images of every true digit for run ``seed``."""
    from .data import DataError

    try:
        return stratified_sample(labels, per_class, np.random.default_rng(_stream(seed, 0)))
    except DataError as exc:
        raise PrecomputeError(
            f"{exc} (NormLIME/LIME need {per_class} test images per digit): pass --per-class "
            "with a smaller number, --preset demo, or --data with full MNIST"
        ) from None


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
) -> tuple[LimeResult, int]:
    """``lime.explain`` for every image, reusing cached explanations; returns (result, hits)."""
    n = images.shape[0]
    d = int(np.prod(images.shape[1:]))
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
    for start in range(0, len(todo), chunk):
        rows = np.asarray(todo[start : start + chunk])
        part = lime.explain(
            images[torch.as_tensor(rows, device=images.device)],
            torch.as_tensor(targets[rows]),
            seeds=result.seeds[rows],
            progress=progress,
        )
        result.weights[rows] = part.weights
        result.intercept[rows] = part.intercept
        result.r2[rows] = part.r2
        result.prob[rows] = part.prob
        if cache is not None:
            for j, i in enumerate(rows):
                cache.put(keys[i], part.weights[j], part.intercept[j], part.r2[j], part.prob[j])
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


def _constructor_kwargs(cls, **candidates) -> dict:
    """The candidates ``cls`` accepts (None values left to the class's own defaults)."""
    accepted = inspect.signature(cls).parameters
    return {k: v for k, v in candidates.items() if k in accepted and v is not None}


def _explainer_params(explainer) -> dict:
    params = getattr(explainer, "params", None)
    if callable(params):
        params = params()
    return dict(params or {})


def _jsonable(obj):
    return json.loads(json.dumps(obj, default=lambda o: o.item() if hasattr(o, "item") else str(o)))


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
    seed: int = 0,
    device: str | None = None,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool = True,
    keep_local: bool = False,
    compile_model: bool | None = None,
    log: Callable[[str], None] = print,
    argv: Sequence[str] | None = None,
) -> PrecomputeResult:
    """Compute every requested method's class maps and write the bundle into ``out_dir``."""
    from tqdm import tqdm

    from .model import ModelFileError

    started = time.perf_counter()
    retain_freed_memory()  # ~1.7x faster forward passes here, identical results
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
    settings = resolve_preset(
        preset, per_class=per_class, samples=samples, n_features=n_features
    )
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    try:
        model = load(model_path, map_location=dev)
    except ModelFileError as exc:
        raise PrecomputeError(str(exc)) from None
    except (RuntimeError, ValueError) as exc:  # e.g. an unknown or unavailable device
        raise PrecomputeError(f"cannot load the model on {dev}: {exc}") from None
    model_sha = file_checksum(model_path)
    sidecar = Path(model_path).with_suffix(".json")
    model_meta = json.loads(sidecar.read_text()) if sidecar.is_file() else {}
    labels = data.test_labels
    images_all = as_float(data.test_images).to(dev)
    lime_family = [m for m in methods if m in LIME_FAMILY]
    per_image_methods = [m for m in methods if m not in LIME_FAMILY]
    bar_opts = {"file": sys.stderr, "disable": not progress, "mininterval": 1.0}

    maps: dict[str, np.ndarray] = {}
    methods_info: dict[str, dict] = {}
    extra_local: dict = {}
    hits = n_local = 0

    if lime_family:
        ls = settings.lime
        index = select_lime_images(labels, ls.per_class, seed)
        log(
            f"NormLIME/LIME: {index.size:,} local explanations of test images "
            f"({ls.per_class} per digit), {ls.n_samples} samples each, sigma={ls.sigma}, "
            f"K={ls.n_features}"
        )
        t0 = time.perf_counter()
        if compile_model is None:
            compile_model = index.size * ls.n_samples >= COMPILE_MIN_SAMPLES
        forward = inference_forward(
            model, compile=compile_model, compile_batch_size=batch_size
        )
        forward_desc = "inference_forward(channels_last, float64 softmax" + (
            ", torch.compile)" if compile_model else ")"
        )
        images = images_all[torch.as_tensor(index, device=dev)]
        pred = _predict(forward, images)
        seeds = np.array([image_seed(seed, int(t)) for t in index], dtype=np.int64)
        lime = LocalLime(
            forward,
            n_samples=ls.n_samples,
            sigma=ls.sigma,
            n_features=ls.n_features,
            kernel_width=ls.kernel_width,
            batch_size=batch_size,
            n_jobs=fit_threads(),
        )
        cache = LocalCache(cache_dir) if use_cache else None
        with tqdm(total=index.size, desc="local LIME explanations", unit="img", **bar_opts) as bar:
            local, hits = explain_cached(
                lime,
                images,
                pred,
                seeds,
                model_sha256=model_sha,
                forward_desc=forward_desc,
                cache=cache,
                progress=bar.update,
            )
        n_local = index.size
        class_maps = display_class_maps(local.weights, pred)
        local_time = time.perf_counter() - t0
        if hits:
            log(f"  {hits:,} of {index.size:,} local explanations came from the cache")
        params = {
            **lime.params(),
            "kernel_width_used": lime.width_for(784),
            "per_class": ls.per_class,
            "images": "test images drawn per true digit; partitioned by predicted label",
            "forward": forward_desc,
        }
        for method in lime_family:
            maps[method] = class_maps[method].reshape(10, 28, 28).astype(np.float32)
            methods_info[method] = {
                "parameters": {
                    **params,
                    "aggregation": "NormLIME eq. (9)" if method == "normlime" else
                    "SP-LIME eq. (6) conditioned on the predicted label",
                    "display_filter": DISPLAY_FILTER,
                },
                "seed": seed,
                "model_sha256": model_sha,
                "wall_time_s": round(local_time, 2),
                "wall_time_note": "shared: NormLIME and LIME aggregate the same explanations",
            }
        local_path = out_dir / "local.npz"
        out_dir.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(
            local_path,
            test_index=index,
            true_label=labels[index],
            pred_label=pred,
            seed=seeds,
            r2=local.r2,
            prob=local.prob,
            normlime_raw=class_maps["normlime_raw"].reshape(10, 28, 28),
            lime_raw=class_maps["lime_raw"].reshape(10, 28, 28),
            usage_counts=class_usage_counts(local.weights, pred).reshape(10, 28, 28),
            **({"weights": local.weights} if keep_local else {}),
        )
        extra_local = {
            "count": int(index.size),
            "per_class": ls.per_class,
            "per_predicted_label": np.bincount(pred, minlength=10).tolist(),
            "misclassified": int((pred != labels[index]).sum()),
            "mean_r2": round(float(local.r2.mean()), 4),
            "cache_hits": int(hits),
            "cache_dir": str(cache.root) if cache is not None else None,
            "wall_time_s": round(local_time, 2),
            "file": "local.npz (test indices, labels, seeds, R^2, raw class scores, |E_y(c_i)|"
            + (", the weight matrix M)" if keep_local else ")"),
        }

    for method in per_image_methods:
        pi = settings.per_image
        cls = explainer_class(method)
        mseed = method_seed(seed, method)
        kwargs = _constructor_kwargs(
            cls, forward_func=model, n_samples=pi.n_samples, random_state=mseed
        )
        explainer = cls(**kwargs)
        log(f"{method}: mean over {pi.per_class} test images per digit")
        t0 = time.perf_counter()
        with tqdm(total=10, desc=method, unit="digit", **bar_opts) as bar:
            try:
                arr, chosen = mean_class_maps(
                    _Counted(explainer, bar.update),
                    images_all,
                    labels,
                    per_class=pi.per_class,
                    random_state=mseed,
                    n_classes=10,
                    return_indices=True,
                )
            except ValueError as exc:
                if "requested" not in str(exc):
                    raise
                raise PrecomputeError(
                    f"{method}: {exc}; pass a smaller --per-class or --data with full MNIST"
                ) from None
        maps[method] = np.asarray(arr, dtype=np.float32).reshape(10, 28, 28)
        methods_info[method] = {
            "parameters": {
                **_jsonable(_explainer_params(explainer)),
                "per_class": pi.per_class,
                "images": "test images drawn per true digit, target = the digit",
                "test_index": np.asarray(chosen).tolist(),
            },
            "seed": seed,
            "method_seed": mseed,
            "model_sha256": model_sha,
            "wall_time_s": round(time.perf_counter() - t0, 2),
        }

    wall = time.perf_counter() - started
    extra = {
        "generator": {
            "command": "normlime precompute",
            "argv": list(argv) if argv is not None else None,
            "preset": settings.name,
            "preset_description": settings.description,
            "lime": asdict(settings.lime),
            "per_image": asdict(settings.per_image),
        },
        "model": {
            "path": str(model_path),
            "sha256": model_sha,
            "test_accuracy": model_meta.get("test_accuracy"),
        },
        "data": data.provenance(),
        "seed": seed,
        "local_explanations": extra_local or None,
        "environment": {
            "torch": torch.__version__,
            "device": str(dev),
            "threads": torch.get_num_threads(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "wall_time_s": round(wall, 2),
    }
    write_bundle(out_dir, maps, methods_info=_jsonable(methods_info), extra=_jsonable(extra))
    manifest = json.loads((out_dir / "manifest.json").read_text())
    return PrecomputeResult(out_dir, maps, manifest, hits, n_local, wall)


class _Counted:
    """Pass-through explainer that ticks a progress bar once per ``attribute`` call."""

    def __init__(self, explainer, tick):
        self.explainer = explainer
        self.tick = tick

    def attribute(self, inputs, target):
        out = self.explainer.attribute(inputs, target)
        self.tick(1)
        return out
