"""The stability study's machinery (explainers.stability) and the shipped bundle's stability."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from explainers.lime import LocalLime, inference_forward, per_input_seeds
from explainers.stability import (
    FitSpec,
    Pool,
    explain_pool,
    pearson_per_class,
    split_pools,
    stability_rows,
)


def test_split_pools_are_disjoint_and_balanced():
    labels = np.repeat(np.arange(4), 25)
    a, b = split_pools(labels, 10, seed=3)
    assert not set(a) & set(b)
    for pool in (a, b):
        np.testing.assert_array_equal(np.bincount(labels[pool]), [10] * 4)
    a2, _ = split_pools(labels, 10, seed=3)
    np.testing.assert_array_equal(a, a2)
    with pytest.raises(ValueError, match="needed"):
        split_pools(labels, 13, seed=0)


def test_pearson_per_class_matches_numpy():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(3, 4, 5)), rng.normal(size=(3, 4, 5))
    b[1] = 2 * a[1] + 1
    r = pearson_per_class(a, b)
    for c in range(3):
        assert r[c] == pytest.approx(np.corrcoef(a[c].ravel(), b[c].ravel())[0, 1])
    assert r[1] == pytest.approx(1.0)
    assert pearson_per_class(np.zeros((1, 4)), rng.normal(size=(1, 4)))[0] == 0.0


def test_shared_samples_give_the_same_explanations_as_separate_runs(trained_model, test_images):
    """A spec fitted on the prefix of a longer draw equals LocalLime run with that setting."""
    images, _ = test_images
    x = images[:3]
    forward = inference_forward(trained_model)
    targets = forward(x).argmax(1).numpy()
    seeds = per_input_seeds(11, 3)
    specs = [FitSpec(300, 10), FitSpec(150, 25), FitSpec(150, 10, width_factor=0.5)]
    weights, r2 = explain_pool(forward, x, targets, seeds, 0.2, specs)
    for spec in specs:
        lime = LocalLime(
            forward,
            n_samples=spec.n_samples,
            sigma=0.2,
            n_features=spec.n_features,
            kernel_width=spec.kernel_width(0.2, 784),
        )
        direct = lime.explain(x, torch.as_tensor(targets), seeds=seeds)
        np.testing.assert_allclose(weights[spec], direct.weights, rtol=1e-5, atol=1e-9)
        np.testing.assert_allclose(r2[spec], direct.r2, rtol=1e-6)


def test_rows_report_higher_stability_for_identical_pools():
    rng = np.random.default_rng(1)
    spec = FitSpec(100, 5)
    labels = np.repeat(np.arange(10), 4)
    w = rng.normal(size=(40, 784)) * (rng.random((40, 784)) < 0.05)
    same = Pool(0.2, np.arange(40), labels, labels, {spec: w}, {spec: np.ones(40)})
    noise = Pool(0.2, np.arange(40), labels, labels, {spec: rng.permutation(w)},
                 {spec: np.ones(40)})
    row_same = stability_rows(same, same, [4], {(0.2, spec): 0.5})[0]
    assert row_same["normlime_min"] == pytest.approx(1.0)
    assert row_same["lime_wall_s"] == pytest.approx(0.5 * 4 * 10)
    row_noise = stability_rows(same, noise, [4])[0]
    assert row_noise["normlime_mean"] < 0.5
