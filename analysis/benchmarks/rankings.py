"""Feature rankings for the benchmarks: turning explainers into importance scores.

KAR and occlusion need, for every method, a *score* per feature -- higher means more
important -- over either the input pixels (1x28x28) or the paper's "conv features" (the
output of the second conv layer after its ReLU, 64x14x14, ``MnistCNN.conv_features``).
The methods themselves live in ``explainers/``; this module only calls them and
aggregates their maps.  Three kinds of ranking:

``global`` (KAR default, the paper's reading)
    one score vector for all images.  NormLIME: the global score S(c_i) (eq. 3-5) of the
    local LIME explanations of a sample of training images; LIME: SP-LIME's
    ``||omega_i||_2`` (eq. 6) of the *same* local explanations; every per-image method
    (SHAP, SmoothGrad, VarGrad, Input x Gradient, STD, Random): the mean over the sample
    of ``|map|``.  ("we use the absolute value of I(c_i) as the feature importance".)
``class``
    one score vector per class, used for an image through the *model's predicted class*
    (never its true label).  NormLIME S_y (eq. 9), LIME SP-L2 conditioned on the label,
    per-image methods: mean ``|map|`` over the sample images predicted as y.
``per-image``
    Hooker et al.'s ROAR/KAR: each image ranked by ``|map|`` of its own explanation for the
    predicted class.  LIME uses the image's own local weights; NormLIME has no per-image
    map and uses its class ranking of the predicted class.

Every explanation targets the explained model's predicted class.  The sample of explained
images is stratified by predicted class, drawn from a seed that is recorded.

Conv features: explainers run on ``forward_func = softmax(model.head(f))`` over the conv
features ``f`` of the sample images.  Noise scales (LIME's and SmoothGrad/VarGrad's
``sigma``) are given in pixel units and rescaled to conv features by the ratio of the
features' standard deviation to the pixels' (0.3081), so a noise level means the same
relative perturbation in both spaces; LIME clips conv samples at 0 (post-ReLU).

LIME with ``neighbourhood = "data"`` in its parameters (the presets' reading of the
paper's eq. 1-2, docs/stimuli-protocol.md part two) draws each explanation's neighbours
from the benchmark's training images in the same feature space -- pixels, or their conv
features -- with the model's outputs on them computed once (:func:`data_neighbourhood`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = [
    "FEATURE_SPACES",
    "RANKING_KINDS",
    "KAR_METHODS",
    "LIME_DERIVED",
    "FEATURE_SHAPES",
    "Ranking",
    "forward_for",
    "feature_inputs",
    "explainer_for",
    "explain_maps",
    "lime_weights",
    "data_neighbourhood",
    "aggregate",
    "stratified_by_prediction",
    "noise_scale",
]

FEATURE_SPACES = ("pixels", "conv")
RANKING_KINDS = ("global", "class", "per-image")
FEATURE_SHAPES = {"pixels": (1, 28, 28), "conv": (64, 14, 14)}
#: methods a ranking can be built from (NormLIME aggregates LIME's local explanations)
KAR_METHODS = ("normlime", "lime", "shap", "smoothgrad", "vargrad", "random", "inputxgrad", "std")
#: methods whose scores come from the same local LIME explanations
LIME_DERIVED = ("normlime", "lime")
#: pixel-space standard deviation of MNIST (explainers.model.MNIST_STD)
PIXEL_STD = 0.3081
#: noise levels (pixel units) of the explainers' own defaults, rescaled for conv features
_DEFAULT_SIGMA = {"lime": 0.5, "normlime": 0.5, "smoothgrad": 0.3, "vargrad": 0.3}


@dataclass
class Ranking:
    """Importance scores of one method in one feature space.

    ``scores`` is (F,) for ``global`` and (n_classes, F) for ``class``; for ``per-image``
    ``per_image`` maps a split name ("train", "test") to an (N, F) array (often a memmap)
    and ``scores`` holds the class ranking used by methods without per-image maps.
    """

    method: str
    kind: str
    features: str
    scores: np.ndarray | None
    per_image: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)

    def payload(self) -> dict:
        """What a KAR job needs (plain numpy, picklable)."""
        return {"kind": self.kind, "scores": self.scores, "per_image": self.per_image}


# --------------------------------------------------------------------------- inputs


#: The KAR and occlusion benchmarks rank features by SmoothGrad/VarGrad of the softmax
#: probability, the f every benchmark method explains here and the setting their recorded
#: results (docs/results) were computed with; the study's maps use the logit, as the
#: methods' sources define them (explainers.gradients).  ``"score"`` in a preset's
#: method parameters overrides it.
BENCHMARK_GRADIENT_SCORE = "probability"
_NOISE_TUNNEL = ("smoothgrad", "vargrad")


def forward_for(model, features: str) -> Callable:
    """The function explainers explain: class probabilities from pixels or conv features."""
    import torch

    if features == "pixels":
        return model
    if features == "conv":
        return lambda f: torch.softmax(model.head(f), dim=1)
    raise ValueError(f"features must be one of {FEATURE_SPACES}, got {features!r}")


def feature_inputs(model, images, features: str, batch_size: int = 1000):
    """Float inputs of the feature space: pixels (N,1,28,28) in [0,1] or conv features."""
    import torch

    from explainers.data import as_float

    x = images if isinstance(images, torch.Tensor) else as_float(images)
    if features == "pixels":
        return x
    device = next(model.parameters()).device
    out = []
    with torch.inference_mode():
        for start in range(0, x.shape[0], batch_size):
            out.append(model.conv_features(x[start : start + batch_size].to(device)))
    return torch.cat(out).clone()


def noise_scale(inputs, features: str) -> float:
    """Factor turning a pixel-unit noise level into the feature space's units."""
    if features == "pixels":
        return 1.0
    return float(inputs.float().std()) / PIXEL_STD


def stratified_by_prediction(pred: np.ndarray, per_class: int, random_state: int) -> np.ndarray:
    """``per_class`` random indices per predicted class (fewer if a class has fewer)."""
    rng = np.random.default_rng(random_state)
    pred = np.asarray(pred)
    out = []
    for c in np.unique(pred):
        idx = np.flatnonzero(pred == c)
        out.append(np.sort(rng.choice(idx, size=min(per_class, idx.size), replace=False)))
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


# --------------------------------------------------------------------------- explaining


def explainer_for(
    method: str, forward_func, features: str, params: dict, scale: float, seed,
    neighbourhood=None,
):  # fmt: skip
    """An explainer instance from ``explainers`` with the benchmark's parameters.

    ``params`` are the method's parameters in pixel units; noise levels are multiplied by
    ``scale`` (see :func:`noise_scale`); LIME clips at [0, 1] on pixels and at 0 on conv.
    LIME whose parameters say ``neighbourhood = "data"`` needs ``neighbourhood`` (a
    :class:`explainers.neighbourhood.DataNeighbourhood` of the feature space).
    """
    from explainers.registry import LOCAL_LIME, kind_class, method_spec

    p = dict(params)
    if method in ("lime", "normlime") and p.pop("neighbourhood", None) == "data":
        if neighbourhood is None:
            raise ValueError("LIME on data neighbours needs the neighbour pool")
        p.pop("effective_size", None)  # the neighbourhood object carries it
        return kind_class(LOCAL_LIME)(
            forward_func, random_state=seed, neighbourhood=neighbourhood, **p
        )
    if method in _DEFAULT_SIGMA:
        p["sigma"] = float(p.get("sigma", _DEFAULT_SIGMA[method])) * scale
    if method == "lime":
        p.setdefault("clip", (0.0, 1.0) if features == "pixels" else (0.0, None))
    if method in _NOISE_TUNNEL:
        p.setdefault("score", BENCHMARK_GRADIENT_SCORE)
    kind = method_spec(method).kind
    return kind_class(kind)(forward_func, random_state=seed, **p)


def explain_maps(
    method: str,
    forward_func,
    inputs,
    targets,
    features: str,
    params: dict,
    scale: float,
    seed: int,
    chunk: int = 64,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Per-image maps (N, F) of a per-image method, computed in chunks (progress per chunk).

    The seed of each chunk is derived from ``seed`` and the chunk's start, so a map
    depends only on (image position, seed, parameters).
    """
    import torch

    n = inputs.shape[0]
    out = np.zeros((n, int(np.prod(inputs.shape[1:]))), dtype=np.float32)
    targets = torch.as_tensor(targets, dtype=torch.long)
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        explainer = explainer_for(method, forward_func, features, params, scale, seed + start)
        maps = explainer.attribute(inputs[start:stop], targets[start:stop].to(inputs.device))
        out[start:stop] = maps.detach().reshape(stop - start, -1).cpu().numpy()
        if progress is not None:
            progress(stop - start)
    return out


def lime_weights(
    forward_func,
    inputs,
    targets,
    features: str,
    params: dict,
    scale: float,
    seed: int,
    progress: Callable[[int], None] | None = None,
    neighbourhood=None,
    seeds=None,
) -> tuple[np.ndarray, np.ndarray]:
    """Local LIME weight matrix M (N, F) and the fits' R^2 (N,).

    ``seeds`` (N,) fixes every input's draw (default: spawned from ``seed``)."""
    import torch

    explainer = explainer_for("lime", forward_func, features, params, scale, seed, neighbourhood)
    result = explainer.explain(
        inputs, torch.as_tensor(targets, dtype=torch.long), seeds=seeds, progress=progress
    )
    return result.weights.astype(np.float32), np.asarray(result.r2)


def data_neighbourhood(model, images: np.ndarray, features: str, params: dict, cache: Path):
    """The data neighbourhood of LIME ``params`` (None unless they say ``neighbourhood =
    "data"``): ``images`` (the benchmark's training images) as inputs of the feature space,
    and the model's outputs on them, computed once and cached under ``cache``."""
    if params.get("neighbourhood") != "data":
        return None
    import hashlib

    import torch

    from explainers.neighbourhood import DataNeighbourhood

    pool = feature_inputs(model, images, features).cpu()
    fwd = forward_for(model, features)
    digest = hashlib.blake2b(
        np.ascontiguousarray(images).tobytes() + features.encode(), digest_size=16
    ).hexdigest()
    path = Path(cache) / f"pool-outputs-{features}-{digest}.npy"
    if path.is_file():
        outputs = np.load(path)
    else:
        device = next(model.parameters()).device
        with torch.inference_mode():
            outputs = torch.cat(
                [fwd(pool[s : s + 500].to(device)).double().cpu() for s in range(0, len(pool), 500)]
            ).numpy()
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, outputs)
    return DataNeighbourhood(
        pool, outputs, effective_size=params["effective_size"], digest=digest
    )


# --------------------------------------------------------------------------- aggregating


def aggregate(
    method: str, kind: str, maps: np.ndarray, pred: np.ndarray, n_classes: int = 10
) -> np.ndarray:
    """Scores from the sample's maps (or LIME weights): (F,) or (n_classes, F).

    ``pred`` are the explained model's predicted labels of the sample (the explanations'
    targets).  ``per-image`` rankings use the class aggregation for the class ranking.
    """
    from explainers import normlime as nl

    maps = np.asarray(maps, dtype=np.float64)
    pred = np.asarray(pred)
    if kind == "global":
        if method == "normlime":
            return nl.normlime_scores(maps)
        if method == "lime":
            return nl.splime_importance(maps)
        return np.abs(maps).mean(axis=0)
    if kind in ("class", "per-image"):
        if method == "normlime":
            return nl.class_normlime(maps, pred, n_classes)
        if method == "lime":
            return nl.class_splime(maps, pred, n_classes)
        glob = np.abs(maps).mean(axis=0)
        rows = []
        for c in range(n_classes):
            sel = pred == c
            # a class the sample never predicts falls back to the global mean
            rows.append(np.abs(maps[sel]).mean(axis=0) if sel.any() else glob)
        return np.stack(rows)
    raise ValueError(f"ranking kind must be one of {RANKING_KINDS}, got {kind!r}")


def save_ranking(path: Path, ranking: Ranking) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        path,
        scores=np.zeros(0) if ranking.scores is None else ranking.scores,
        meta=json.dumps(ranking.meta, sort_keys=True, default=str),
    )


def load_ranking(path: Path, method: str, kind: str, features: str) -> Ranking:
    blob = np.load(path)
    scores = blob["scores"]
    return Ranking(
        method=method,
        kind=kind,
        features=features,
        scores=None if scores.size == 0 else scores,
        meta=json.loads(str(blob["meta"])),
    )


def timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


# --------------------------------------------------------------------------- pipeline


def _bar(total: int, desc: str, enabled: bool):
    import sys

    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="img", file=sys.stderr, disable=not enabled)


def _method_params(method: str, params: dict, features: str, baseline_value) -> dict:
    """The explainer parameters of ``method`` (LIME's for NormLIME), plus SHAP's baseline."""
    import inspect

    from explainers.registry import kind_class

    p = dict(params.get("lime" if method == "normlime" else method, {}))
    if method == "shap" and features == "conv" and "feature_mask" not in p:
        # 12,544 single-element players are out of KernelSHAP's reach and channel-shared
        # superpixels would tie all 64 channels: players are (channel, block) groups
        p.pop("superpixel", None)
        p["feature_mask"] = channel_block_mask(FEATURE_SHAPES["conv"], p.pop("conv_block", 7))
    if method == "shap" and "baseline" not in p:
        cls = kind_class("shap")
        if "baseline" in inspect.signature(cls).parameters:
            # SHAP's "absent" feature takes the benchmark's replacement value
            value = np.asarray(baseline_value, dtype=np.float32)
            p["baseline"] = (
                float(value) if value.ndim == 0 else value.reshape(FEATURE_SHAPES[features])
            )
    return p


def channel_block_mask(shape: tuple[int, int, int], block: int):
    """Group ids (C, H, W): one group per (channel, block x block spatial tile)."""
    import torch

    c, h, w = shape
    bh, bw = -(-h // block), -(-w // block)
    tile = (torch.arange(h)[:, None] // block) * bw + torch.arange(w)[None, :] // block
    return torch.arange(c)[:, None, None] * (bh * bw) + tile[None]


def _cached_npz(path: Path, compute: Callable[[], dict]) -> dict:
    if path.exists():
        with np.load(path) as blob:
            return {k: blob[k] for k in blob.files}
    out = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **out)
    tmp.replace(path)
    return out


def _per_image_maps(
    path: Path,
    method: str,
    model,
    images: np.ndarray,
    targets: np.ndarray,
    features: str,
    params: dict,
    scale: float,
    seed: int,
    chunk: int,
    progress: bool,
    neighbourhood=None,
) -> str:
    """(N, F) maps of every image, written chunk by chunk to a .npy (resumable)."""
    from numpy.lib.format import open_memmap

    n, f = images.shape[0], int(np.prod(FEATURE_SHAPES[features]))
    state_path = path.with_name(path.name + ".done")
    done = int(state_path.read_text()) if state_path.exists() and path.exists() else 0
    arr = (
        open_memmap(path, mode="r+")
        if done
        else open_memmap(path, mode="w+", dtype=np.float32, shape=(n, f))
    )
    fwd = forward_for(model, features)
    bar = _bar(n, f"{method} maps ({path.stem.split('-')[-1]})", progress)
    bar.update(done)
    for start in range(done, n, chunk):
        stop = min(n, start + chunk)
        x = feature_inputs(model, images[start:stop], features)
        x = x.to(next(model.parameters()).device)
        if method == "lime":
            w, _ = lime_weights(
                fwd, x, targets[start:stop], features, params, scale, seed + start,
                neighbourhood=neighbourhood,
            )  # fmt: skip
            arr[start:stop] = w
        else:
            arr[start:stop] = explain_maps(
                method, fwd, x, targets[start:stop], features, params, scale, seed + start
            )
        arr.flush()
        state_path.write_text(str(stop))
        bar.update(stop - start)
    bar.close()
    del arr
    return str(path)


def compute_rankings(
    methods,
    kind: str,
    features: str,
    model,
    data,
    pred: dict,
    *,
    per_class: int,
    params: dict,
    seed: int,
    cache: Path,
    baseline_value=0.0,
    progress: bool = True,
    log=print,
    lime_derived=LIME_DERIVED,
    chunk: int = 256,
) -> dict[str, Ranking]:
    """Rankings of ``methods`` from ``model`` (explained for its predicted classes).

    ``pred`` maps "train"/"test" to the model's predictions on ``data``.  The explained
    sample is ``per_class`` training images per predicted class.  Local LIME explanations
    are computed once for NormLIME and LIME; SmoothGrad and VarGrad share one set of noisy
    gradients.  Everything is cached under ``cache`` (reruns and resumes reuse it).
    """
    import torch

    from .jobs import derive_seed

    cache = Path(cache)
    device = next(model.parameters()).device
    sample = stratified_by_prediction(pred["train"], per_class, derive_seed("kar-sample", seed))
    targets = torch.as_tensor(pred["train"][sample], dtype=torch.long)
    x = feature_inputs(model, data.train_images[sample], features).to(device)
    fwd = forward_for(model, features)
    scale = noise_scale(x, features)
    sample_meta = {
        "explained_images": int(sample.size),
        "per_class": per_class,
        "sample_seed": derive_seed("kar-sample", seed),
        "noise_scale": scale,
    }

    def method_seed(m: str) -> int:
        return derive_seed("kar-explain", seed, "lime" if m in lime_derived else m)

    maps: dict[str, np.ndarray] = {}
    timing: dict[str, float] = {}
    lime_r2 = None
    missing = [m for m in methods if not (cache / f"{kind}-{m}.npz").exists()]
    lime_p = _method_params("lime", params, features, baseline_value)
    needs_pool = any(m in lime_derived for m in missing) or (
        kind == "per-image" and "lime" in methods
    )
    nb = (
        data_neighbourhood(model, data.train_images, features, lime_p, cache)
        if needs_pool
        else None
    )
    if nb is not None:
        sample_meta["neighbour_pool"] = (
            f"{nb.size:,} training images ({features}), effective size {nb.effective_size:g}"
        )
    if any(m in lime_derived for m in missing):
        t0 = time.perf_counter()
        p = lime_p
        bar = _bar(len(sample), "LIME local explanations", progress)
        blob = _cached_npz(
            cache / "sample-lime.npz",
            lambda: dict(
                zip(
                    ("weights", "r2"),
                    lime_weights(
                        fwd,
                        x,
                        targets,
                        features,
                        p,
                        scale,
                        method_seed("lime"),
                        progress=bar.update,
                        neighbourhood=nb,
                    ),
                    strict=True,
                )
            ),
        )
        bar.close()
        for m in lime_derived:
            maps[m] = blob["weights"]
            timing[m] = time.perf_counter() - t0
        lime_r2 = float(np.mean(blob["r2"]))
    grads = [m for m in ("smoothgrad", "vargrad") if m in missing]
    if len(grads) == 2 and params.get("smoothgrad", {}) == params.get("vargrad", {}):
        t0 = time.perf_counter()
        blob = _cached_npz(
            cache / "sample-noisygrad.npz",
            lambda: _noisy_pair(
                fwd, x, targets, params.get("smoothgrad", {}), scale, method_seed("smoothgrad")
            ),
        )
        maps.update(blob)
        timing["smoothgrad"] = timing["vargrad"] = time.perf_counter() - t0
    for m in missing:
        if m in maps:
            continue
        t0 = time.perf_counter()
        p = _method_params(m, params, features, baseline_value)
        bar = _bar(len(sample), f"{m} maps", progress)
        maps[m] = _cached_npz(
            cache / f"sample-{m}.npz",
            lambda m=m, p=p, bar=bar: {
                m: explain_maps(
                    m, fwd, x, targets, features, p, scale, method_seed(m), progress=bar.update
                )
            },
        )[m]
        bar.close()
        timing[m] = time.perf_counter() - t0

    rankings = {}
    for m in methods:
        path = cache / f"{kind}-{m}.npz"
        if path.exists():
            ranking = load_ranking(path, m, kind, features)
        else:
            scores = aggregate(m, kind, maps[m], targets.cpu().numpy())
            meta = {
                **sample_meta,
                "method": m,
                "kind": kind,
                "features": features,
                "explainer_params": _describe(_method_params(m, params, features, baseline_value)),
                "explain_seed": method_seed(m),
                "sample_explain_s": round(timing.get(m, 0.0), 2),
                "aggregation": _aggregation_text(m, kind),
                # features outside the support tie at 0 (removed lowest index first)
                "nonzero_features": int(np.count_nonzero(scores))
                if scores.ndim == 1
                else round(float(np.count_nonzero(scores, axis=1).mean()), 1),
            }
            if m in lime_derived and lime_r2 is not None:
                meta["lime_mean_r2"] = lime_r2
            ranking = Ranking(m, kind, features, scores, meta=meta)
            save_ranking(path, ranking)
        if kind == "per-image" and m != "normlime":
            t0 = time.perf_counter()
            p = _method_params(m, params, features, baseline_value)
            for split in ("train", "test"):
                ranking.per_image[split] = _per_image_maps(
                    cache / f"per-image-{m}-{split}.npy",
                    m,
                    model,
                    getattr(data, f"{split}_images"),
                    pred[split],
                    features,
                    p,
                    scale,
                    derive_seed("kar-per-image", seed, m, split),
                    chunk,
                    progress,
                    neighbourhood=nb if m == "lime" else None,
                )
            ranking.meta["per_image_explain_s_this_invocation"] = round(time.perf_counter() - t0, 1)
        rankings[m] = ranking
        log(f"  {m}: ranking ready ({ranking.meta.get('aggregation', '')})")
    return rankings


def _noisy_pair(fwd, x, targets, params: dict, scale: float, seed: int, chunk: int = 64):
    """SmoothGrad-squared and VarGrad maps from one set of noisy gradients."""
    from explainers.gradients import noisy_gradient_maps

    p = dict(params)
    p["sigma"] = float(p.get("sigma", _DEFAULT_SIGMA["smoothgrad"])) * scale
    p.setdefault("score", BENCHMARK_GRADIENT_SCORE)
    n = x.shape[0]
    out = {
        m: np.zeros((n, int(np.prod(x.shape[1:]))), dtype=np.float32)
        for m in ("smoothgrad", "vargrad")
    }
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        got = noisy_gradient_maps(
            fwd, x[start:stop], targets[start:stop], random_state=seed + start, **p
        )
        for m in out:
            out[m][start:stop] = got[m].reshape(stop - start, -1).cpu().numpy()
    return out


def _describe(params: dict) -> dict:
    return {k: (f"array{tuple(np.shape(v))}" if np.ndim(v) else v) for k, v in params.items()}


def _aggregation_text(method: str, kind: str) -> str:
    if method == "normlime":
        return "NormLIME S(c_i), eq. 3-5" if kind == "global" else "NormLIME S_y(c_i), eq. 9"
    if method == "lime":
        return "SP-LIME ||omega_i||_2, eq. 6" + ("" if kind == "global" else " per label")
    if kind == "global":
        return "mean |map| over the sample"
    return "mean |map| over the sample images predicted as the class"
