"""Numerical faithfulness metrics of attribution maps, batched over images.

Every metric acts on *features*: the project's partition of the image (``[lime]
features``): one pixel each, or the cells of a grid, so that a grid-superpixel method is
scored on the grid it explains.  A map's score for a feature is the sum of its values over
the feature's pixels (channels summed first).  "Most relevant" means the highest signed
score (RISE's and ROAD's order); ties go to the lower feature index.

Conventions, stated once:

* ``predict(x)`` maps a float batch (B, C, H, W) to class scores (B, K): the model's
  probabilities, or its logits where a metric says so;
* ``substrate`` is what a removed feature is replaced with: one value per channel
  (default: the training images' per-channel mean);
* deletion / insertion (Petsiuk et al., RISE, 2018): the target's probability as the
  features are removed (replaced by the substrate) or inserted (into a blurred copy), most
  relevant first, at ``steps + 1`` evenly spaced fractions; AUC by the trapezoid rule;
* ROAD (Rong et al., 2022): at each percentage p, the ``floor(p * M)`` most (MoRF) or least
  (LeRF) relevant features are removed and filled by noisy linear imputation; the model is
  scored against the *true* labels, never a fixed class, without retraining;
* faithfulness correlation (Bhatt et al., 2020): for ``n_subsets`` random feature subsets
  of ``subset_size``, Pearson's r between the subset's summed scores and the drop of the
  target's output when the subset is replaced by the substrate; the subsets come from a
  seeded generator.
"""

from __future__ import annotations

import numpy as np
import torch

from .imputation import noisy_linear_imputation

__all__ = [
    "feature_scores",
    "feature_masks",
    "ranking",
    "predict_batches",
    "predict_stream",
    "trapezoid_auc",
    "deletion_insertion",
    "road_curves",
    "faithfulness_correlation",
    "pearson_rows",
    "spearman_rows",
]


def _labels(features: np.ndarray | None, h: int, w: int) -> np.ndarray:
    return np.arange(h * w).reshape(h, w) if features is None else np.asarray(features)


def feature_scores(maps: np.ndarray, features: np.ndarray | None) -> np.ndarray:
    """(N, M) scores from (N, H, W) or (N, C, H, W) maps: sums over each feature's pixels."""
    maps = np.asarray(maps, dtype=np.float64)
    if maps.ndim == 4:
        maps = maps.sum(axis=1)
    n, h, w = maps.shape
    labels = _labels(features, h, w).reshape(-1)
    m = int(labels.max()) + 1
    out = np.zeros((n, m))
    np.add.at(out, (slice(None), labels), maps.reshape(n, -1))
    return out


def feature_masks(chosen: np.ndarray, features: np.ndarray | None, shape) -> np.ndarray:
    """(N, M) booleans over features -> (N, H, W) booleans over pixels."""
    h, w = shape
    labels = _labels(features, h, w)
    return np.asarray(chosen, dtype=bool)[:, labels]


def ranking(scores: np.ndarray) -> np.ndarray:
    """(N, M) feature indices, most relevant (highest score) first; ties: lower index first."""
    return np.argsort(-np.asarray(scores, dtype=np.float64), axis=1, kind="stable")


def _first_k(order: np.ndarray, counts) -> np.ndarray:
    """(N, M) booleans: the first ``counts[i]`` features of each row's ``order``."""
    n, m = order.shape
    position = np.empty_like(order)
    position[np.arange(n)[:, None], order] = np.arange(m)[None, :]
    return position < np.asarray(counts).reshape(-1, 1)


def predict_batches(predict, x: torch.Tensor, batch_size: int = 128) -> np.ndarray:
    """``predict`` over ``x`` in batches, without gradients, as float64 numpy."""
    out = []
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            out.append(predict(x[start : start + batch_size]).detach().to(torch.float64).cpu())
    return torch.cat(out).numpy()


def predict_stream(predict, batches, batch_size: int = 128) -> np.ndarray:
    """``predict`` over the concatenation of the ``batches`` (an iterable of tensors, made
    lazily), holding about ``batch_size`` images at a time: large images never need the
    whole perturbed set in memory."""
    out, pending, held = [], [], 0

    def flush():
        if pending:
            out.append(predict_batches(predict, torch.cat(pending), batch_size))
            pending.clear()

    for batch in batches:
        pending.append(batch)
        held += len(batch)
        if held >= batch_size:
            flush()
            held = 0
    flush()
    return np.concatenate(out)


def trapezoid_auc(curves: np.ndarray) -> np.ndarray:
    """RISE's AUC of each row, on [0, 1] with uniform spacing."""
    arr = np.asarray(curves, dtype=np.float64)
    return (arr.sum(axis=-1) - arr[..., 0] / 2 - arr[..., -1] / 2) / (arr.shape[-1] - 1)


def _substituted(x: torch.Tensor, pixels: np.ndarray, fill: torch.Tensor) -> torch.Tensor:
    mask = torch.as_tensor(pixels, device=x.device).unsqueeze(1)
    return torch.where(mask, fill, x)


def _fill(substrate, x: torch.Tensor) -> torch.Tensor:
    value = torch.as_tensor(np.asarray(substrate, dtype=np.float32), device=x.device)
    return value.reshape(1, -1, 1, 1).expand_as(x) if value.ndim == 1 else value.expand_as(x)


def deletion_insertion(
    predict, x, scores, features, target, *, steps: int, substrate, blurred, batch_size=128,
    curves=("deletion", "insertion"),
) -> dict[str, np.ndarray]:  # fmt: skip
    """(N, steps + 1) curves ``deletion`` and ``insertion`` (or those of ``curves``) of the
    target's probability."""
    x = torch.as_tensor(x)
    n, _c, h, w = x.shape
    order = ranking(scores)
    m = order.shape[1]
    fill = _fill(substrate, x)
    blurred = torch.as_tensor(blurred, dtype=x.dtype, device=x.device)
    rows = np.arange(n)
    masks = [
        feature_masks(_first_k(order, np.full(n, round(k * m / steps))), features, (h, w))
        for k in range(steps + 1)
    ]
    wanted, curves = curves, {}
    for name, start, source in (("deletion", x, fill), ("insertion", blurred, x)):
        if name not in wanted:
            continue
        probs = predict_stream(
            predict, (_substituted(start, pixels, source) for pixels in masks), batch_size
        ).reshape(steps + 1, n, -1)
        curves[name] = probs[:, rows, target].T
    return curves


def road_curves(
    predict, x, scores, features, labels, *, percentages, order: str, noise: float, rng,
    batch_size=128,
) -> dict[str, np.ndarray]:  # fmt: skip
    """(N, P) ``correct`` (0/1 against the true labels) and ``p_true`` after removing, at
    each percentage, the most (``order="morf"``) or least (``"lerf"``) relevant features
    and imputing them (noisy linear imputation)."""
    x = torch.as_tensor(x)
    n, _c, h, w = x.shape
    ranked = ranking(scores)
    if order == "lerf":
        ranked = ranked[:, ::-1]
    elif order != "morf":
        raise ValueError(f"order must be 'morf' or 'lerf', got {order!r}")
    m = ranked.shape[1]
    images = x.detach().cpu().numpy()
    rng = np.random.default_rng(rng)

    def perturbed():
        for p in percentages:
            count = int(m * p + 1e-9)  # floor, safe from 0.29 * 100 = 28.999...
            pixels = feature_masks(_first_k(ranked, np.full(n, count)), features, (h, w))
            filled = noisy_linear_imputation(images, pixels, noise=noise, rng=rng)
            yield torch.as_tensor(filled, dtype=x.dtype, device=x.device)

    probs = predict_stream(predict, perturbed(), batch_size).reshape(len(percentages), n, -1)
    labels = np.asarray(labels)
    correct = (probs.argmax(axis=2) == labels[None, :]).astype(np.float64).T
    p_true = probs[:, np.arange(n), labels].T
    return {"correct": correct, "p_true": p_true}


def faithfulness_correlation(
    predict, x, scores, features, target, *, n_subsets: int, subset_size: int, substrate,
    rng, batch_size=128, subsets=None,
) -> np.ndarray:  # fmt: skip
    """(N,) Pearson's r between summed scores of random subsets and the output's drop.

    ``subsets`` (runs, N, subset_size) feature indices replaces the seeded draw (to replay
    another implementation's subsets)."""
    x = torch.as_tensor(x)
    n, _c, h, w = x.shape
    scores = np.asarray(scores, dtype=np.float64)
    m = scores.shape[1]
    if not 1 <= subset_size < m:
        raise ValueError(f"subset_size must be from 1 to {m - 1} features, got {subset_size}")
    n_subsets = n_subsets if subsets is None else len(subsets)
    rng = np.random.default_rng(rng)
    fill = _fill(substrate, x)
    rows = np.arange(n)
    clean = predict_batches(predict, x, batch_size)[rows, target]
    sums = np.zeros((n, n_subsets))

    def perturbed():
        for r in range(n_subsets):
            # one subset per image and run: the smallest subset_size of uniform keys
            if subsets is None:
                keys = rng.random((n, m))
                picked = np.argpartition(keys, subset_size - 1, axis=1)[:, :subset_size]
            else:
                picked = np.asarray(subsets[r])
            chosen = np.zeros((n, m), dtype=bool)
            np.put_along_axis(chosen, picked, True, axis=1)
            sums[:, r] = (scores * chosen).sum(axis=1)
            yield _substituted(x, feature_masks(chosen, features, (h, w)), fill)

    out = predict_stream(predict, perturbed(), batch_size).reshape(n_subsets, n, -1)
    drops = (clean[None, :] - out[:, rows, target]).T  # (N, runs)
    return pearson_rows(sums, drops)


def pearson_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson's r of each row pair; 0 where either row is constant."""
    a = np.asarray(a, dtype=np.float64) - np.mean(a, axis=1, keepdims=True)
    b = np.asarray(b, dtype=np.float64) - np.mean(b, axis=1, keepdims=True)
    den = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    num = (a * b).sum(axis=1)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def spearman_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman's rank correlation of each row pair (average ranks for ties)."""
    from scipy.stats import rankdata

    a = np.asarray(a, dtype=np.float64).reshape(len(a), -1)
    b = np.asarray(b, dtype=np.float64).reshape(len(b), -1)
    return pearson_rows(rankdata(a, axis=1), rankdata(b, axis=1))
