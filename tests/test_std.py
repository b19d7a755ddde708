"""Zhang & Gao's feature importance (explainers/std.py): definitions and Propositions 2, 4."""

from __future__ import annotations

import pytest
import torch

from explainers.gradients import InputXGradient
from explainers.std import (
    StdMap,
    attribution_matrix,
    class_variation,
    covariation_term,
    feature_importance,
    individual_effect,
    silhouette,
    std_from_matrix,
)


def covariation_double_loop(a: torch.Tensor) -> torch.Tensor:
    """sum_{s != i} COV[X_i, X_s] straight from Definition 4 (the O(K N^2) loop)."""
    rows = a.tolist()
    k, n = len(rows), len(rows[0])
    col_mean = [sum(rows[j][i] for j in range(k)) / k for i in range(n)]
    out = []
    for i in range(n):
        total = 0.0
        for s in range(n):
            if s != i:
                total += sum(
                    (rows[j][i] - col_mean[i]) * (rows[j][s] - col_mean[s]) for j in range(k)
                )
        out.append(total)
    return torch.tensor(out, dtype=torch.float64)


def individual_double_loop(a: torch.Tensor) -> torch.Tensor:
    """V[X_i] straight from Definition 3."""
    rows = a.tolist()
    k, n = len(rows), len(rows[0])
    out = []
    for i in range(n):
        mean = sum(rows[j][i] for j in range(k)) / k
        out.append(sum((rows[j][i] - mean) ** 2 for j in range(k)))
    return torch.tensor(out, dtype=torch.float64)


def test_proposition_4_matrix_form_equals_double_loop():
    gen = torch.Generator().manual_seed(0)
    a = torch.randn((6, 25), generator=gen, dtype=torch.float64)
    torch.testing.assert_close(covariation_term(a), covariation_double_loop(a))
    torch.testing.assert_close(individual_effect(a), individual_double_loop(a))
    torch.testing.assert_close(std_from_matrix(a) ** 2, individual_effect(a))
    torch.testing.assert_close(
        feature_importance(a), individual_double_loop(a) + covariation_double_loop(a)
    )
    # batched over leading dimensions: the same numbers per matrix
    stack = torch.stack([a, 2 * a, -a])
    torch.testing.assert_close(covariation_term(stack)[1], covariation_double_loop(2 * a))


def test_proposition_4_on_the_cnn_attribution_matrix(trained_model, test_images):
    x, _ = test_images
    a, classes, _ = attribution_matrix(trained_model, x[:2], top_k=4)
    assert a.shape == (2, 4, 1, 28, 28) and classes.shape == (2, 4)
    flat = a[1].reshape(4, -1).to(torch.float64)
    loop = covariation_double_loop(flat[:, :200])  # a 200-pixel block keeps the loop short
    torch.testing.assert_close(covariation_term(flat[:, :200]), loop, rtol=1e-9, atol=1e-15)


def test_proposition_2_sum_of_importance_is_class_variation_when_complete():
    """Input x Gradient is complete for a linear model without bias: rows of A sum to pred."""
    gen = torch.Generator().manual_seed(1)
    weight = torch.randn((5, 12), generator=gen, dtype=torch.float64)

    def linear(v):
        return v.flatten(1) @ weight.T

    x = torch.randn((3, 12), generator=gen, dtype=torch.float64)
    a, classes, pred = attribution_matrix(linear, x)
    torch.testing.assert_close(a.sum(-1), pred)  # completeness holds
    phi = feature_importance(a)
    torch.testing.assert_close(phi.sum(-1), class_variation(pred))
    # ... and the statement needs completeness: with a bias the rows no longer sum to pred
    bias = torch.randn(5, generator=gen, dtype=torch.float64)
    a_b, _, pred_b = attribution_matrix(lambda v: linear(v) + bias, x)
    gap = (feature_importance(a_b).sum(-1) - class_variation(pred_b)).abs()
    assert bool((gap > 1e-3).all())
    # top-k: the k largest predictions, Proposition 2 with K = k
    a_k, classes_k, pred_k = attribution_matrix(linear, x, top_k=3)
    full = linear(x)
    torch.testing.assert_close(pred_k, full.topk(3, dim=1).values)
    torch.testing.assert_close(feature_importance(a_k).sum(-1), class_variation(pred_k))


def test_attribution_matrix_rows_are_input_x_gradient_per_class(trained_model, test_images):
    x, _ = test_images
    x = x[:3]
    a, classes, pred = attribution_matrix(trained_model, x, batch_size=7)  # chunked
    assert torch.equal(classes[0], torch.arange(10))
    ixg = InputXGradient(trained_model)
    for j in (0, 4, 9):
        torch.testing.assert_close(a[:, j], ixg.attribute(x, j), rtol=1e-5, atol=1e-9)
    with torch.no_grad():
        torch.testing.assert_close(pred, trained_model(x))


def test_top_k_uses_the_k_most_probable_classes(trained_model, test_images):
    x, _ = test_images
    x = x[:4]
    a_k, classes, pred = attribution_matrix(trained_model, x, top_k=3)
    with torch.no_grad():
        probs = trained_model(x)
    assert torch.equal(classes, probs.topk(3, dim=1).indices)
    a_all, _, _ = attribution_matrix(trained_model, x)
    for i in range(4):
        torch.testing.assert_close(a_k[i], a_all[i, classes[i]])


def test_silhouette_algorithm_1():
    m = torch.tensor(
        [
            [0.0, 0.0, 0.0, 0.0, 0.0],
            [0.0, 1.0, 1.0, 1.0, 0.0],
            [0.0, 1.0, 9.0, 1.0, 0.0],
            [0.0, 1.0, 1.0, 2.0, 0.0],
            [0.0, 0.0, 0.0, 0.0, 0.0],
        ]
    )
    # literal rule: every positive element next to a zero has ratio +inf -> kept; zeros never
    lit = silhouette(m, r=1, theta=3.0)
    assert torch.equal(lit, m)
    # positive neighbours only: 9 > 3 * 1 kept; 2 vs min 1 -> ratio 2 < 3 dropped; 1s dropped
    only = silhouette(m, r=1, theta=3.0, ignore_zero_neighbours=True)
    expected = torch.zeros_like(m)
    expected[2, 2] = 9.0
    assert torch.equal(only, expected)
    # theta below the 2/1 ratio keeps the 2 as well; ratio must be strictly greater
    assert silhouette(m, r=1, theta=1.5, ignore_zero_neighbours=True)[3, 3] == 2.0
    assert silhouette(m, r=1, theta=2.0, ignore_zero_neighbours=True)[3, 3] == 0.0
    # the radius: a 5 two steps away from a 1 is found only with r >= 2
    n = torch.full((5, 5), 4.0)
    n[0, 0] = 1.0
    n[2, 2] = 5.0
    assert silhouette(n, r=1, theta=3.0)[2, 2] == 0.0
    assert silhouette(n, r=2, theta=3.0)[2, 2] == 5.0
    # leading dimensions are independent maps
    batch = torch.stack([m, n])[:, None]
    assert torch.equal(silhouette(batch, r=1, theta=3.0)[0, 0], lit)
    with pytest.raises(ValueError, match="non-negative"):
        silhouette(-m)


def test_std_map_explainer(trained_model, test_images):
    x, y = test_images
    x, y = x[:4], y[:4]
    std = StdMap(trained_model).attribute(x, y)
    assert std.shape == x.shape and std.dtype == torch.float32
    a, _, _ = attribution_matrix(trained_model, x)
    torch.testing.assert_close(
        std, std_from_matrix(a.reshape(4, 10, -1).double()).float().view_as(x)
    )
    # a class-discriminability map: the same whatever target is named
    assert torch.equal(std, StdMap(trained_model).attribute(x, (y + 1) % 10))
    assert bool((std[x == 0] == 0).all())  # Input x Gradient: no ink, no attribution
    imp = StdMap(trained_model, output="importance").attribute(x, y)
    torch.testing.assert_close(
        imp.flatten(1).sum(1).double(),
        feature_importance(a.reshape(4, 10, -1).double()).sum(1),
        rtol=1e-4,
        atol=1e-9,
    )
    sil = StdMap(trained_model, output="silhouette", ignore_zero_neighbours=True).attribute(x, y)
    assert bool(((sil == 0) | (sil == std)).all()) and (sil == 0).sum() > (std == 0).sum()
    with pytest.raises(ValueError, match="output"):
        StdMap(trained_model, output="nope")
    with pytest.raises(ValueError, match="top_k"):
        StdMap(trained_model, top_k=1)


def test_std_map_on_conv_features(trained_model, test_images):
    x, y = test_images
    with torch.no_grad():
        feats = trained_model.conv_features(x[:2])
    std = StdMap(lambda f: torch.softmax(trained_model.head(f), 1), top_k=5).attribute(
        feats, y[:2]
    )
    assert std.shape == feats.shape and std.abs().max() > 0
