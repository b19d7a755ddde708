"""LIME on the data manifold: neighbours drawn from real inputs (issue 20, item 1)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from explainers.lime import LocalLime
from explainers.local_fit import fit_local_models
from explainers.neighbourhood import DataNeighbourhood, effective_sample_size


def _linear_pool(n=3000, side=8, pixels=(3, 17, 30, 41, 58), seed=0):
    """Random images whose class-0 probability is exactly linear in a few pixels."""
    rng = np.random.default_rng(seed)
    images = rng.random((n, 1, side, side)).astype(np.float32)
    flat = images.reshape(n, -1).astype(np.float64)
    p = 0.1 + 0.8 * flat[:, list(pixels)].mean(1)
    outputs = np.stack([p, 1 - p], axis=1)
    return torch.from_numpy(images), outputs, set(pixels)


def _forward_for(pixels):
    def forward(x):
        p = 0.1 + 0.8 * x.reshape(x.shape[0], -1)[:, list(pixels)].double().mean(1)
        return torch.stack([p, 1 - p], dim=1)

    return forward


def test_the_kernel_is_calibrated_to_the_effective_size():
    pool, outputs, _ = _linear_pool()
    for m in (30, 300, 1000):
        nb = DataNeighbourhood(pool, outputs, effective_size=m)
        probs = nb.probabilities(pool[:20] * 0.9 + 0.05)
        np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-12)
        ess = effective_sample_size(probs)
        assert np.all(np.abs(ess / m - 1) < 0.01), (m, ess)


def test_a_neighbourhood_never_contains_x0_and_never_leaves_the_pool():
    pool, outputs, _ = _linear_pool(n=500)
    pool = pool.clone()
    pool[123] = pool[7]  # an exact duplicate of pool image 7
    x0 = pool[7 : 8].clone()
    nb = DataNeighbourhood(pool, outputs, effective_size=50)
    probs = nb.probabilities(x0)[0]
    assert probs[7] == 0 and probs[123] == 0
    near = pool[7].clone()
    near.view(-1)[0] += 1 / 255  # differs in one pixel by one grey level: not a copy
    pool2 = torch.cat([pool, near[None]])
    nb2 = DataNeighbourhood(pool2, np.concatenate([outputs, outputs[:1]]), effective_size=50)
    assert nb2.probabilities(x0)[0][-1] > 0
    for seed in range(200):
        idx, counts = nb.draw(probs, seed, 1000)
        assert idx.min() >= 0 and idx.max() < pool.shape[0]
        assert 7 not in idx and 123 not in idx
        assert counts.sum() == 1000 and np.all(np.diff(idx) > 0)


def test_draws_follow_the_kernel_and_reproduce_from_the_seed():
    pool, outputs, _ = _linear_pool(n=400)
    nb = DataNeighbourhood(pool, outputs, effective_size=40)
    probs = nb.probabilities(pool[:1] + 0.01)[0]
    a = nb.draw(probs, 11, 1000)
    b = nb.draw(probs, 11, 1000)
    c = nb.draw(probs, 12, 1000)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not (a[0].size == c[0].size and np.array_equal(a[0], c[0]))
    # 200,000 draws: every frequency within 5 standard errors of its probability
    idx, counts = nb.draw(probs, 3, 200_000)
    freq = np.zeros_like(probs)
    freq[idx] = counts / counts.sum()
    se = np.sqrt(probs * (1 - probs) / 200_000) + 1e-9
    assert np.all(np.abs(freq - probs) < 5 * se + 1e-6)


def test_counts_as_weights_are_the_fit_on_the_repeated_draws():
    rng = np.random.default_rng(4)
    z = rng.standard_normal((60, 12))
    y = z[:, 2] - 0.5 * z[:, 7] + 0.1 * rng.standard_normal(60)
    counts = rng.integers(1, 5, 60).astype(np.float64)
    repeated = np.repeat(np.arange(60), counts.astype(int))
    (w1, b1, r1), = fit_local_models(z, y, counts, (3,))
    (w2, b2, r2), = fit_local_models(z[repeated], y[repeated], np.ones(repeated.size), (3,))
    np.testing.assert_allclose(w1, w2, atol=1e-10)
    assert b1 == pytest.approx(b2, abs=1e-10) and r1 == pytest.approx(r2, abs=1e-10)


def test_local_models_recover_the_pixels_f_is_linear_in():
    pool, outputs, pixels = _linear_pool()
    nb = DataNeighbourhood(pool, outputs, effective_size=500)
    rng = np.random.default_rng(1)
    x = torch.from_numpy(rng.random((8, 1, 8, 8)).astype(np.float32))
    lime = LocalLime(_forward_for(pixels), n_samples=1000, n_features=5, neighbourhood=nb,
                     random_state=0)  # fmt: skip
    result = lime.explain(x, 0)
    for w in result.weights:
        assert set(np.flatnonzero(w)) == pixels
        np.testing.assert_allclose(w[sorted(pixels)], 0.8 / 5, rtol=1e-6)
    np.testing.assert_allclose(result.r2, 1.0, atol=1e-9)


def test_a_pixel_constant_across_the_pool_is_never_selected():
    pool, outputs, _ = _linear_pool(pixels=(5, 20, 33))
    pool = pool.clone()
    pool.view(pool.shape[0], -1)[:, 20] = 0.25  # constant over the pool
    flat = pool.reshape(pool.shape[0], -1).double()
    p = 0.1 + 0.8 * flat[:, [5, 20, 33]].mean(1).numpy()
    outputs = np.stack([p, 1 - p], axis=1)
    nb = DataNeighbourhood(pool, outputs, effective_size=300)
    x = pool[:6].clone()
    x.view(6, -1)[:, 20] = 0.9  # x0 differs from the pool there: a constant, non-zero shift
    for k in (1, 2, 10, 40):
        lime = LocalLime(_forward_for((5, 20, 33)), n_samples=800, n_features=k,
                         neighbourhood=nb, random_state=2)  # fmt: skip
        weights = lime.explain(x, 0).weights
        assert not weights[:, 20].any(), k


def test_an_explanation_depends_on_its_input_and_seed_only():
    pool, outputs, pixels = _linear_pool(n=1500)
    rng = np.random.default_rng(5)
    outputs = np.clip(outputs + 0.05 * rng.standard_normal(outputs.shape), 0, 1)
    nb = DataNeighbourhood(pool, outputs, effective_size=200)
    x = torch.from_numpy(rng.random((20, 1, 8, 8)).astype(np.float32))
    seeds = np.arange(100, 120)
    lime = LocalLime(_forward_for(pixels), n_samples=500, n_features=8, neighbourhood=nb)
    together = lime.explain(x, 0, seeds=seeds)
    alone = [lime.explain(x[i : i + 1], 0, seeds=seeds[i : i + 1]) for i in (0, 9, 19)]
    for i, single in zip((0, 9, 19), alone, strict=True):
        np.testing.assert_array_equal(single.weights[0] != 0, together.weights[i] != 0)
        np.testing.assert_allclose(single.weights[0], together.weights[i], rtol=1e-9, atol=1e-12)


def test_grid_features_draw_from_data_too():
    from explainers.features import grid_features

    rng = np.random.default_rng(6)
    images = rng.random((2000, 3, 8, 8)).astype(np.float32)
    left = images[:, :, :, :4].mean(axis=(1, 2, 3))
    p = 0.2 + 0.6 * left
    nb = DataNeighbourhood(images, np.stack([p, 1 - p], 1), effective_size=400)
    labels = grid_features(8, 8, 4)  # 4 cells of 4x4
    lime = LocalLime(lambda x: torch.ones(x.shape[0], 2) / 2, n_samples=800, n_features=2,
                     features=labels, neighbourhood=nb, random_state=0)  # fmt: skip
    result = lime.explain(torch.from_numpy(images[:5] * 0.5 + 0.25), 0)
    assert result.weights.shape == (5, int(labels.max()) + 1)
    left_cells = np.unique(labels[:, :4])
    for w in result.weights:
        assert set(np.flatnonzero(w)) == set(left_cells.tolist())


def test_bad_input_is_refused_in_one_line():
    pool, outputs, _ = _linear_pool(n=100)
    with pytest.raises(ValueError, match="needs a pool of more than"):
        DataNeighbourhood(pool, outputs, effective_size=100)
    with pytest.raises(ValueError, match="outputs must be"):
        DataNeighbourhood(pool, outputs[:50])
    with pytest.raises(ValueError, match="effective_size"):
        DataNeighbourhood(pool, outputs, effective_size=0)
    nb = DataNeighbourhood(pool, outputs, effective_size=10)
    with pytest.raises(ValueError, match="hide"):
        from explainers.features import grid_features

        LocalLime(lambda x: x, features=grid_features(8, 8, 4), perturbation="hide",
                  neighbourhood=nb)  # fmt: skip
    lime = LocalLime(lambda x: torch.ones(x.shape[0], 2), neighbourhood=nb)
    with pytest.raises(ValueError, match="neighbour pool holds"):
        lime.explain(torch.zeros(2, 1, 9, 9), 0)


def test_a_feature_carried_by_few_neighbours_gets_no_slope():
    """The amendment after the first grid: a pixel that is ink in only a few of the drawn
    neighbours cannot get a slope, however well it would fit their outcomes."""
    rng = np.random.default_rng(7)
    n = 2000
    images = (rng.random((n, 1, 8, 8)) * 0.5).astype(np.float32)
    images[:, 0, 0, 0] = 0.0
    rare = rng.choice(n, 6, replace=False)
    images[rare, 0, 0, 0] = 1.0  # pixel 0 is ink in six images of the whole pool
    p = 0.3 + 0.2 * images[:, 0, 3, 3] + 0.6 * images[:, 0, 0, 0]
    outputs = np.stack([p, 1 - p], 1).astype(np.float64)
    x = torch.from_numpy(images[rare[:3]].copy())
    x[:, 0, 0, 0] = 0.0
    for min_varying, expect_pixel_0 in ((0, True), (10, False)):
        nb = DataNeighbourhood(images, outputs, effective_size=1500, min_varying=min_varying)
        lime = LocalLime(lambda t: torch.ones(t.shape[0], 2), n_samples=1500, n_features=2,
                         neighbourhood=nb, random_state=0)  # fmt: skip
        weights = lime.explain(x, 0).weights
        assert bool(weights[:, 0].any()) is expect_pixel_0, min_varying
        assert (weights[:, 27] != 0).all()  # pixel (3, 3): it varies in every neighbour


def test_the_participation_ratio_counts_the_neighbours_a_feature_varies_in():
    pool, outputs, _ = _linear_pool(n=50)
    nb = DataNeighbourhood(pool, outputs, effective_size=10, min_varying=10)
    z = np.zeros((1000, 4), np.float32)
    z[:9, 0] = 0.7  # varies in 9 of 1,000 neighbours (ratio 9.2)
    z[:10, 1] = 0.7  # in 10 (ratio 10.2)
    z[:, 2] = np.random.default_rng(0).standard_normal(1000)  # everywhere
    z[0, 3] = 5.0  # one outlier over small noise
    z[1:, 3] = 0.01 * np.random.default_rng(1).standard_normal(999)
    np.testing.assert_array_equal(nb.fixed_features(z), [True, False, False, True])
