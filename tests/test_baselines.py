"""KAR baselines: KernelSHAP, Random, and the per-class aggregation used by all methods."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from captum.attr import KernelShap as CaptumKernelShap

from explainers.class_maps import mean_class_maps, select_class_images
from explainers.kernelshap import KernelShap, superpixel_mask
from explainers.random_map import RandomMap

# --------------------------------------------------------------------------- helpers


def brute_force_shapley(f, x, baseline, target):
    """Exact Shapley values of v(S) = f(baseline with x on S)[target] from the definition."""
    m = x.numel()
    value = {}
    for r in range(m + 1):
        for subset in itertools.combinations(range(m), r):
            z = torch.zeros(m, dtype=x.dtype)
            z[list(subset)] = 1.0
            v = baseline + z * (x - baseline)
            value[subset] = float(f(v[None])[0, target])
    phi = torch.zeros(m, dtype=torch.float64)
    for i in range(m):
        others = [j for j in range(m) if j != i]
        for r in range(m):
            w = math.factorial(r) * math.factorial(m - r - 1) / math.factorial(m)
            for subset in itertools.combinations(others, r):
                with_i = tuple(sorted((*subset, i)))
                phi[i] += w * (value[with_i] - value[subset])
    return phi


def tiny_nonlinear(m: int, seed: int = 0):
    """A small model with interactions: softmax over 3 classes of a tanh layer."""
    gen = torch.Generator().manual_seed(seed)
    w1 = torch.randn((m, 6), generator=gen, dtype=torch.float64)
    w2 = torch.randn((6, 3), generator=gen, dtype=torch.float64)

    def f(v):
        v = v.flatten(1).to(torch.float64)
        return torch.softmax(torch.tanh(v @ w1) @ w2 + v[:, :1] * v[:, 1:2], dim=1)

    return f


# --------------------------------------------------------------------------- KernelSHAP


def test_kernelshap_exact_on_an_additive_model_with_sampling():
    """For an additive game every coalition design gives the Shapley values exactly."""
    gen = torch.Generator().manual_seed(0)
    weight = torch.randn((4, 36), generator=gen, dtype=torch.float64)

    def linear(v):
        return v.flatten(1).to(torch.float64) @ weight.T + 0.5

    x = torch.rand((3, 1, 6, 6), generator=gen, dtype=torch.float64)
    baseline = 0.1307
    target = torch.tensor([0, 2, 3])
    shap = KernelShap(linear, n_samples=40, baseline=baseline, superpixel=2, random_state=0)
    result = shap.explain(x, target)
    assert not result.exact and result.n_coalitions == [40, 40, 40]  # sampled, 2^9-2 > 40
    mask = superpixel_mask((1, 6, 6), 2).reshape(-1)
    contrib = weight[target] * (x.flatten(1) - baseline)  # w_i (x_i - b_i)
    expected = torch.zeros((3, 9), dtype=torch.float64).index_add_(1, mask, contrib)
    torch.testing.assert_close(result.values, expected, rtol=1e-8, atol=1e-10)
    # efficiency: the values add up to f(x) - f(baseline)
    torch.testing.assert_close(result.values.sum(1), result.f_x - result.f_baseline)
    # the map gives each pixel its group's value
    pixel_map = shap.attribute(x, target)
    assert pixel_map.shape == x.shape
    torch.testing.assert_close(pixel_map.flatten(1).double(), expected[:, mask], atol=1e-6,
                               rtol=1e-5)


def test_kernelshap_enumeration_gives_exact_shapley_values_of_a_nonlinear_model():
    f = tiny_nonlinear(7)
    x = torch.rand((2, 7), generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    base = torch.full((7,), 0.2, dtype=torch.float64)
    result = KernelShap(f, baseline=base, superpixel=1, random_state=0).explain(x, [1, 2])
    assert result.exact and result.n_coalitions == [2**7 - 2] * 2
    for i, t in enumerate((1, 2)):
        torch.testing.assert_close(
            result.values[i], brute_force_shapley(f, x[i], base, t), rtol=1e-7, atol=1e-10
        )


def test_kernelshap_sampling_approximates_shapley_values_like_captum():
    m = 10
    f = tiny_nonlinear(m, seed=3)
    x = torch.rand((1, m), generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    exact = brute_force_shapley(f, x[0], torch.zeros(m, dtype=torch.float64), 0)
    ours = KernelShap(f, n_samples=400, superpixel=1, random_state=0).explain(x, 0)
    assert not ours.exact  # 400 < 2^10 - 2
    err = (ours.values[0] - exact).abs().max() / exact.abs().max()
    with torch.random.fork_rng():  # Captum samples from the global RNG
        torch.manual_seed(0)
        ref = CaptumKernelShap(f).attribute(
            x, baselines=0.0, target=0, n_samples=400, feature_mask=torch.arange(m)[None]
        )[0].double()
    captum_err = (ref - exact).abs().max() / exact.abs().max()
    # measured: ours 0.026, Captum 0.070 (max error relative to the largest value)
    assert err < 0.1, err
    assert captum_err < 0.2, captum_err  # Captum's estimate of the same values
    assert torch.corrcoef(torch.stack([ours.values[0], ref]))[0, 1] > 0.9
    # efficiency holds exactly for ours whatever the sampling error
    assert abs(float(ours.values.sum() - (ours.f_x - ours.f_baseline).sum())) < 1e-12


def test_kernelshap_on_the_cnn(trained_model, test_images):
    x, y = test_images
    x, y = x[:3], y[:3]
    shap = KernelShap(trained_model, n_samples=60, superpixel=4, random_state=5)
    result = shap.explain(x, y)
    with torch.no_grad():
        f_x = trained_model(x).gather(1, y[:, None])[:, 0].double()
        f_b = trained_model(torch.zeros_like(x)).gather(1, y[:, None])[:, 0].double()
    torch.testing.assert_close(result.f_x, f_x, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(result.values.sum(1), f_x - f_b, rtol=1e-5, atol=1e-7)
    # Dummy: 4x4 blocks of pure background (= the baseline 0) get exactly 0
    blank = x.reshape(3, 7, 4, 7, 4).amax(dim=(2, 4)).reshape(3, 49) == 0
    assert bool(blank.any()) and bool((result.values[blank] == 0).all())
    maps = shap.attribute(x, y)
    assert maps.shape == x.shape
    torch.testing.assert_close(maps, shap.attribute(x, y), rtol=0, atol=0)  # seeded
    other = KernelShap(trained_model, n_samples=60, superpixel=4, random_state=6)
    assert not torch.equal(maps, other.attribute(x, y))


def test_kernelshap_on_conv_features_with_a_feature_mask(trained_model, test_images):
    x, y = test_images
    with torch.no_grad():
        feats = trained_model.conv_features(x[:2])
    channel_groups = torch.arange(64)[:, None, None].expand(64, 14, 14)
    shap = KernelShap(
        lambda f: torch.softmax(trained_model.head(f), 1),
        n_samples=80,
        feature_mask=channel_groups,
        random_state=0,
    )
    result = shap.explain(feats, y[:2])
    assert result.values.shape == (2, 64)
    torch.testing.assert_close(result.values.sum(1), result.f_x - result.f_baseline)
    maps = shap.attribute(feats, y[:2])
    assert maps.shape == feats.shape
    torch.testing.assert_close(maps[:, :, 3, 5].double(), result.values.float().double())


def test_kernelshap_rejects_bad_arguments(trained_model, test_images):
    x, y = test_images
    with pytest.raises(ValueError, match="0..M-1"):
        KernelShap(trained_model, feature_mask=torch.full((1, 28, 28), 3)).attribute(x[:1], 0)
    with pytest.raises(ValueError, match="feature_mask has shape"):
        KernelShap(trained_model, feature_mask=torch.zeros((28, 28))).attribute(x[:1], 0)
    with pytest.raises(ValueError, match="broadcast"):
        KernelShap(trained_model, baseline=torch.zeros(5)).attribute(x[:1], 0)
    with pytest.raises(ValueError, match="n_samples"):
        KernelShap(trained_model, n_samples=1)


# --------------------------------------------------------------------------- Random


def test_random_map():
    x = torch.rand((4, 3, 5, 5))
    a = RandomMap(random_state=0).attribute(x, 1)
    assert a.shape == x.shape and a.dtype == torch.float32
    assert bool(((a >= 0) & (a < 1)).all())
    assert torch.equal(a, RandomMap(random_state=0).attribute(x, [1, 2, 3, 4]))  # target unused
    assert torch.equal(a[:2], RandomMap(random_state=0).attribute(x[:2] * 7, 0))  # input unused
    assert not torch.equal(a, RandomMap(random_state=1).attribute(x, 1))
    assert not torch.equal(a[0], a[1])
    big = RandomMap(random_state=2).attribute(torch.zeros((20, 784)), 0)
    assert abs(float(big.mean()) - 0.5) < 0.01 and abs(float(big.var()) - 1 / 12) < 0.005


# --------------------------------------------------------------------------- class maps


class Scaled:
    """A deterministic stand-in explainer: input times (target + 1)."""

    def attribute(self, inputs, target):
        return inputs * (torch.as_tensor(target).view(-1, *[1] * (inputs.ndim - 1)) + 1)


def test_mean_class_maps_averages_the_chosen_images_of_each_class():
    gen = torch.Generator().manual_seed(0)
    images = torch.rand((60, 1, 4, 4), generator=gen)
    labels = np.repeat(np.arange(3), 20)
    maps, idx = mean_class_maps(
        Scaled(), images, labels, per_class=5, random_state=7, return_indices=True
    )
    assert maps.shape == (3, 1, 4, 4) and maps.dtype == np.float32 and idx.shape == (3, 5)
    for c in range(3):
        assert (labels[idx[c]] == c).all() and len(set(idx[c])) == 5
        np.testing.assert_allclose(maps[c], (images[idx[c]] * (c + 1)).mean(0).numpy(),
                                   rtol=1e-6)
    again = mean_class_maps(Scaled(), images, labels, per_class=5, random_state=7)
    np.testing.assert_array_equal(maps, again)
    assert np.array_equal(idx, select_class_images(labels, 5, random_state=7))
    other = select_class_images(labels, 5, random_state=8)
    assert not np.array_equal(idx, other)
    # the recorded indices reproduce the maps
    np.testing.assert_array_equal(
        maps, mean_class_maps(Scaled(), images, labels, indices=idx)
    )
    with pytest.raises(ValueError, match="class 0 has 20 images, 25 requested"):
        mean_class_maps(Scaled(), images, labels, per_class=25)
    with pytest.raises(ValueError, match="another class"):
        mean_class_maps(Scaled(), images, labels, indices=idx[::-1])


def test_mean_class_maps_with_a_real_explainer(trained_model, test_images):
    x, y = test_images
    maps = mean_class_maps(RandomMap(random_state=0), x, y, per_class=5, random_state=0)
    assert maps.shape == (10, 1, 28, 28)
    # mean of 5 U(0,1) maps: values in [0, 1), variance 1/60 around 0.5
    assert 0.45 < maps.mean() < 0.55 and abs(maps.var() - 1 / 60) < 0.003
