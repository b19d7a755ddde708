"""How stable are class-level NormLIME and LIME maps between independent runs?

The study (issue 2, item 10; results in docs/explainers-lime.md) builds two independent
pools of local explanations -- disjoint test images drawn per digit and different noise
seeds -- and correlates the class maps built from the first ``n`` explanations per digit of
each pool (Pearson on the 784-vector, per digit).  It reports, for every setting, the
minimum and the mean over digits, against the wall time that setting costs.

Two facts keep the study affordable without changing what it measures:

* for one image and one ``sigma``, the model outputs of ``n_max`` samples serve every
  ``n_samples <= n_max`` (the first ``n_samples`` of an i.i.d. sequence are an i.i.d.
  sample), every ``K`` and every kernel width -- only the LASSO/least-squares fits differ.
  So each image costs one forward pass of ``n_max`` samples per ``sigma``;
* the maps from ``n`` explanations per digit are the maps of the first ``n`` of the pool,
  so one pool of ``n_max`` per digit gives the whole curve along ``n``.

Costs are measured separately (:func:`time_setting`): the wall time of ``LocalLime.explain``
for a batch of real images with exactly that setting, times the number of explanations.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from .bundle import display_values
from .inspect import pearson_per_class
from .lime import LocalLime
from .local_fit import fit_local_models_batch
from .normlime import display_class_maps

__all__ = [
    "FitSpec",
    "Pool",
    "explain_pool",
    "first_per_label",
    "fit_pool",
    "sample_pool",
    "pearson_per_class",
    "stability_rows",
    "time_setting",
    "split_pools",
    "as_displayed",
]


@dataclass(frozen=True)
class FitSpec:
    """One local-fit setting evaluated on shared samples.

    ``width_factor`` scales the default kernel width ``0.75 * sqrt(d) * sigma``
    (``None`` = the default itself).
    """

    n_samples: int
    n_features: int
    width_factor: float | None = None

    def kernel_width(self, sigma: float, n_dims: int) -> float | None:
        if self.width_factor is None:
            return None
        return float(self.width_factor) * 0.75 * np.sqrt(n_dims) * sigma


@dataclass
class Pool:
    """Local explanations of one pool of images for several fit settings (same samples)."""

    sigma: float
    image_index: np.ndarray  # indices into the pooled images (test set, or train + test)
    true_label: np.ndarray
    pred_label: np.ndarray
    weights: dict[FitSpec, np.ndarray]  # (n_images, d) float32 per spec
    r2: dict[FitSpec, np.ndarray]


def split_pools(
    labels: np.ndarray, per_class: int, seed: int, n_pools: int = 2
) -> list[np.ndarray]:
    """``n_pools`` disjoint random index sets with ``per_class`` images of every label.

    Within a pool indices are ordered by label, then by draw, so the first ``n`` of a
    label are a random sample of ``n`` images of it.
    """
    rng = np.random.default_rng(seed)
    pools: list[list[np.ndarray]] = [[] for _ in range(n_pools)]
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        if idx.size < per_class * n_pools:
            raise ValueError(f"label {c} has {idx.size} images, {per_class * n_pools} needed")
        for p in range(n_pools):
            pools[p].append(idx[p * per_class : (p + 1) * per_class])
    return [np.concatenate(p) for p in pools]


def sample_pool(
    forward_func: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    targets: np.ndarray,
    seeds: np.ndarray,
    sigma: float,
    n_max: int,
    *,
    batch_size: int = 128,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Model outputs ``f(x')`` (n_images, n_max) for every image's seeded samples.

    This is the expensive part (the forward passes).  The samples themselves are not kept:
    ``LocalLime.sample`` regenerates them exactly from the seed, so fits with other
    settings can be redone later without touching the model.
    """
    lime = LocalLime(forward_func, n_samples=n_max, sigma=sigma, batch_size=batch_size)
    out = np.zeros((images.shape[0], n_max))
    for i in range(images.shape[0]):
        xs, _ = lime.sample(images[i], int(seeds[i]))
        out[i] = lime.model_outputs(xs, int(targets[i]), images.device)
        if progress is not None:
            progress(1)
    return out


def fit_pool(
    images: torch.Tensor,
    seeds: np.ndarray,
    outputs: np.ndarray,
    sigma: float,
    specs: Sequence[FitSpec],
    *,
    progress: Callable[[int], None] | None = None,
) -> tuple[dict[FitSpec, np.ndarray], dict[FitSpec, np.ndarray]]:
    """Fit every spec on the samples behind ``outputs`` (see :func:`sample_pool`)."""
    n_max = outputs.shape[1]
    if max(s.n_samples for s in specs) > n_max:
        raise ValueError(f"a spec needs more than the {n_max} samples drawn")
    lime = LocalLime(lambda x: x, n_samples=n_max, sigma=sigma)
    n = images.shape[0]
    d = int(np.prod(images.shape[1:]))
    weights = {s: np.zeros((n, d), dtype=np.float32) for s in specs}
    r2 = {s: np.zeros(n) for s in specs}
    groups: dict[tuple[int, float], list[FitSpec]] = {}
    for s in specs:
        width = s.kernel_width(sigma, d) or lime.width_for(d)
        groups.setdefault((s.n_samples, width), []).append(s)
    with threadpool_limits(limits=1, user_api="blas"):
        for start in range(0, n, lime.fit_batch_size):  # the LASSO paths of a batch together
            rows = range(start, min(start + lime.fit_batch_size, n))
            zs = [lime.sample(images[i], int(seeds[i]))[1].reshape(n_max, d).numpy() for i in rows]
            dist2 = [np.einsum("ij,ij->i", z, z, dtype=np.float64) for z in zs]
            for (m, width), group in groups.items():
                fits = fit_local_models_batch(
                    [z[:m] for z in zs],
                    [outputs[i, :m] for i in rows],
                    [np.exp(-d2[:m] / (width * width)) for d2 in dist2],
                    [s.n_features for s in group],
                )
                for i, image_fits in zip(rows, fits, strict=True):
                    for s, (w, _, fit_r2) in zip(group, image_fits, strict=True):
                        weights[s][i] = w
                        r2[s][i] = fit_r2
            if progress is not None:
                progress(len(rows))
    return weights, r2


def explain_pool(
    forward_func: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    targets: np.ndarray,
    seeds: np.ndarray,
    sigma: float,
    specs: Sequence[FitSpec],
    *,
    batch_size: int = 128,
    progress: Callable[[int], None] | None = None,
) -> tuple[dict[FitSpec, np.ndarray], dict[FitSpec, np.ndarray]]:
    """Fit every spec on one shared draw of ``max(n_samples)`` samples per image."""
    n_max = max(s.n_samples for s in specs)
    outputs = sample_pool(
        forward_func, images, targets, seeds, sigma, n_max, batch_size=batch_size
    )
    return fit_pool(images, seeds, outputs, sigma, specs, progress=progress)


def first_per_label(true_label: np.ndarray, n: int) -> np.ndarray:
    """Row indices of the first ``n`` rows of every true label (pool order)."""
    return np.concatenate([np.flatnonzero(true_label == c)[:n] for c in np.unique(true_label)])


def as_displayed(maps: np.ndarray) -> np.ndarray:
    """Class maps (C, d) as participants see them: the rendering rule's values in [0, 1]."""
    maps = np.asarray(maps, dtype=np.float64)
    return np.stack([display_values(m) for m in maps])


def class_maps_from_pool(pool: Pool, spec: FitSpec, n: int) -> dict[str, np.ndarray]:
    """Display and raw class maps from the first ``n`` explanations per digit of a pool."""
    rows = first_per_label(pool.true_label, n)
    return display_class_maps(pool.weights[spec][rows], pool.pred_label[rows], 10)


def stability_rows(
    pool_a: Pool, pool_b: Pool, per_class: Iterable[int], seconds_per_explanation=None
) -> list[dict]:
    """One row per (spec, n): min/mean over digits of the between-pool correlations."""
    rows = []
    for spec in pool_a.weights:
        for n in per_class:
            maps_a = class_maps_from_pool(pool_a, spec, n)
            maps_b = class_maps_from_pool(pool_b, spec, n)
            row = {"sigma": pool_a.sigma, **asdict(spec), "per_class": int(n)}
            for key in ("normlime", "lime", "normlime_raw", "lime_raw"):
                a, b = maps_a[key], maps_b[key]
                if key in ("normlime", "lime"):  # as displayed: the rendering rule applied
                    a, b = as_displayed(a), as_displayed(b)
                r = pearson_per_class(a, b)
                row[f"{key}_min"] = float(r.min())
                row[f"{key}_mean"] = float(r.mean())
            rows_used = first_per_label(pool_a.true_label, n)
            row["mean_r2"] = float(pool_a.r2[spec][rows_used].mean())
            if seconds_per_explanation is not None:
                sec = seconds_per_explanation.get((pool_a.sigma, spec))
                if sec is not None:
                    row["s_per_explanation"] = float(sec)
                    row["lime_wall_s"] = float(sec * n * 10)
            rows.append(row)
    return rows


def time_setting(
    forward_func: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    targets: np.ndarray,
    sigma: float,
    spec: FitSpec,
    *,
    batch_size: int = 128,
    seed: int = 0,
) -> float:
    """Measured wall seconds per explanation of ``LocalLime.explain`` with this setting."""
    d = int(np.prod(images.shape[1:]))
    lime = LocalLime(
        forward_func,
        n_samples=spec.n_samples,
        sigma=sigma,
        n_features=spec.n_features,
        kernel_width=spec.kernel_width(sigma, d),
        batch_size=batch_size,
        random_state=seed,
    )
    start = time.perf_counter()
    lime.explain(images, torch.as_tensor(targets))
    return (time.perf_counter() - start) / images.shape[0]
