"""Local LIME (explainers.lime): recovery of known models, reproducibility, fast path."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from explainers.lime import (
    LocalLime,
    fit_local_model,
    fit_local_models,
    inference_forward,
    per_input_seeds,
)


def sparse_logistic_model(d=784, k=5, seed=0, distractors=40):
    """f(x) = sigmoid(a . x - b): K strong features plus many weak distractors."""
    rng = np.random.default_rng(seed)
    a = np.zeros(d)
    strong = rng.choice(d, size=k, replace=False)
    a[strong] = rng.choice([-1.0, 1.0], size=k) * rng.uniform(2.0, 4.0, size=k)
    rest = np.setdiff1d(np.arange(d), strong)
    a[rng.choice(rest, size=distractors, replace=False)] = rng.normal(0, 0.05, size=distractors)
    coef = torch.tensor(a, dtype=torch.float64)

    def forward(x):
        logit = x.reshape(x.shape[0], -1).double() @ coef - 0.5 * coef.sum()
        p = torch.sigmoid(logit)
        return torch.stack([p, 1 - p], dim=1)

    return forward, a, np.sort(strong)


def test_recovers_a_known_sparse_model():
    forward, a, strong = sparse_logistic_model()
    x0 = torch.full((3, 1, 28, 28), 0.5) + 0.1 * torch.rand(3, 1, 28, 28)
    lime = LocalLime(forward, n_samples=800, sigma=0.05, n_features=5, random_state=0)
    result = lime.explain(x0, 0)
    for i in range(3):
        w = result.weights[i]
        np.testing.assert_array_equal(np.flatnonzero(w), strong)
        # the local slope of sigmoid(a.x - b) at x0 is p (1 - p) a
        p = float(forward(x0[i : i + 1])[0, 0])
        np.testing.assert_allclose(w[strong], p * (1 - p) * a[strong], rtol=0.05)
        assert result.r2[i] > 0.95
        assert result.prob[i] == pytest.approx(p)
        assert result.intercept[i] == pytest.approx(p, abs=0.01)
    # for the other label the slopes flip sign
    other = lime.explain(x0[:1], 1)
    np.testing.assert_allclose(other.weights[0], -result.weights[0], rtol=0.05, atol=1e-6)


def test_k_limits_the_support_and_shape_is_generic():
    # conv-feature-like inputs (C, H, W) without clipping: the KAR benchmark's use
    torch.manual_seed(0)
    proj = torch.randn(4 * 5 * 5, 3, dtype=torch.float64)

    def forward(f):
        return torch.softmax(f.reshape(f.shape[0], -1).double() @ proj, dim=1)

    x = torch.rand(2, 4, 5, 5)
    lime = LocalLime(forward, n_samples=300, sigma=0.2, n_features=7, clip=None, random_state=1)
    out = lime.attribute(x, torch.tensor([0, 2]))
    assert out.shape == x.shape and out.dtype == torch.float32
    nnz = (out.reshape(2, -1) != 0).sum(1)
    assert nnz.tolist() == [7, 7]
    # K at least the number of features: plain weighted least squares on all of them
    full = LocalLime(forward, n_samples=300, sigma=0.2, n_features=500, clip=None, random_state=1)
    assert (full.attribute(x[:1], 0) != 0).sum() == 100


def test_seeds_make_explanations_reproducible_and_batch_independent():
    forward, _, _ = sparse_logistic_model(seed=3)
    x = torch.rand(3, 1, 28, 28)
    lime = LocalLime(forward, n_samples=200, sigma=0.1, n_features=10, random_state=42)
    a = lime.explain(x, 0)
    b = LocalLime(forward, n_samples=200, sigma=0.1, n_features=10, random_state=42).explain(x, 0)
    np.testing.assert_array_equal(a.weights, b.weights)
    np.testing.assert_array_equal(a.seeds, per_input_seeds(42, 3))
    # one input alone with its seed gives exactly its row of the batch
    alone = lime.explain(x[2:3], 0, seeds=a.seeds[2:3])
    np.testing.assert_array_equal(alone.weights[0], a.weights[2])
    other = LocalLime(forward, n_samples=200, sigma=0.1, n_features=10, random_state=7)
    assert not np.array_equal(other.explain(x, 0).weights, a.weights)


def test_samples_are_clipped_to_the_valid_range():
    lime = LocalLime(lambda x: x, n_samples=500, sigma=0.5, random_state=0)
    xs, z = lime.sample(torch.zeros(1, 4, 4), seed=3)
    assert xs.min() >= 0.0 and xs.max() <= 1.0
    torch.testing.assert_close(z, xs)  # x0 = 0: the applied perturbation is x' itself


def test_several_k_share_one_path():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(400, 60))
    y = np.tanh(z[:, :20] @ rng.normal(size=20) * 0.3)
    pi = np.exp(-rng.uniform(0, 1, 400))
    many = fit_local_models(z, y, pi, [3, 10, 30])
    for k, (w, b, r2) in zip([3, 10, 30], many, strict=True):
        w1, b1, r21 = fit_local_model(z, y, pi, k)
        # the same features; values up to rounding (the Gram rows come in other blocks)
        np.testing.assert_array_equal(w != 0, w1 != 0)
        np.testing.assert_allclose(w, w1, rtol=1e-12, atol=0)
        assert np.count_nonzero(w) == k
        assert b == pytest.approx(b1, rel=1e-12) and r2 == pytest.approx(r21, rel=1e-12)
    assert many[0][2] < many[1][2] < many[2][2]  # more features, better fit


def test_flat_output_gives_an_empty_explanation():
    lime = LocalLime(
        lambda x: torch.full((x.shape[0], 2), 0.5), n_samples=50, sigma=0.1, random_state=0
    )
    r = lime.explain(torch.rand(1, 1, 6, 6), 0)
    assert not r.weights.any() and r.r2[0] == 0.0


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_samples": 1}, "n_samples"),
        ({"sigma": 0.0}, "sigma"),
        ({"n_features": 0}, "n_features"),
        ({"kernel_width": -1.0}, "kernel_width"),
        ({"batch_size": 0}, "batch_size"),
        ({"clip": (0.0,)}, "clip"),
        ({"n_jobs": -1}, "n_jobs"),
    ],
)
def test_bad_parameters_are_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LocalLime(lambda x: x, **kwargs)


def test_bad_inputs_are_rejected():
    lime = LocalLime(lambda x: x, n_samples=10)
    with pytest.raises(ValueError, match="target"):
        lime.explain(torch.rand(2, 1, 4, 4), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="non-finite"):
        lime.explain(torch.full((1, 1, 4, 4), float("nan")), 0)
    with pytest.raises(ValueError, match="seeds"):
        lime.explain(torch.rand(2, 1, 4, 4), 0, seeds=[1])


def test_fast_forward_path_gives_the_same_outputs_and_maps(trained_model, test_images):
    """channels-last + inference mode + batch size 100: the same maps as the plain path.

    The reference is the eager model in its default layout, one batch of all samples, with
    the same float64 softmax of its logits (float32 probabilities near 1 are too coarse to
    compare against).  Tolerances: probabilities within 1e-6 (oneDNN's channels-last
    convolutions round differently); local explanations with the same seed select at
    least 90% of the same pixels and their weight vectors correlate >= 0.99.
    """
    import copy

    images, _ = test_images
    x = images[::10]  # 5 images, different digits

    def plain(batch):
        with torch.no_grad():
            return torch.softmax(trained_model.logits(batch).double(), dim=1)

    fast = inference_forward(copy.deepcopy(trained_model))
    p_plain, p_fast = plain(x), fast(x)
    torch.testing.assert_close(p_fast, p_plain, atol=1e-6, rtol=0)
    target = p_plain.argmax(1)
    kw = {"n_samples": 400, "sigma": 0.2, "n_features": 30, "random_state": 3}
    w_plain = LocalLime(plain, batch_size=400, **kw).explain(x, target).weights
    w_fast = LocalLime(fast, batch_size=100, **kw).explain(x, target).weights
    for a, b in zip(w_plain, w_fast, strict=True):
        shared = len(set(np.flatnonzero(a)) & set(np.flatnonzero(b)))
        assert shared >= 27
        assert np.corrcoef(a, b)[0, 1] >= 0.99


def test_model_randomisation_sanity_check(trained_model, random_model, test_images):
    """Adebayo et al. (2018): NormLIME and LIME class maps must depend on the weights.

    The same 20 images (2 per digit) are explained for the trained CNN and for the same
    architecture with random weights; to give every class explanations with both models,
    the target and the partition are the true digit.  The class maps of the two models
    must be clearly different (mean Pearson over digits below 0.5) while each map is
    non-trivial.
    """
    from explainers.normlime import display_class_maps
    from explainers.stability import pearson_per_class

    images, labels = test_images
    idx = np.concatenate([np.flatnonzero(labels.numpy() == d)[:2] for d in range(10)])
    x, y = images[idx], labels[idx]
    maps = {}
    for name, model in (("trained", trained_model), ("random", random_model)):
        lime = LocalLime(
            inference_forward(model), n_samples=300, sigma=0.2, n_features=40, random_state=0
        )
        maps[name] = display_class_maps(lime.explain(x, y).weights, y.numpy())
    for method in ("normlime", "lime"):
        trained, randomised = maps["trained"][method], maps["random"][method]
        assert (trained.max(axis=1) > 0).all() and (randomised.max(axis=1) > 0).all()
        r = pearson_per_class(trained, randomised)
        assert r.mean() < 0.5, (method, r)


def test_worker_threads_and_fit_batches_do_not_change_the_result():
    forward, _, _ = sparse_logistic_model(seed=4)
    x = torch.rand(5, 1, 28, 28)
    kw = {"n_samples": 200, "sigma": 0.1, "n_features": 8, "random_state": 9}
    ticks = []
    serial = LocalLime(forward, n_jobs=0, **kw).explain(x, 0, progress=ticks.append)
    threaded = LocalLime(forward, n_jobs=3, fit_batch_size=2, **kw).explain(
        x, 0, progress=ticks.append
    )
    one_by_one = LocalLime(forward, n_jobs=0, fit_batch_size=1, **kw).explain(x, 0)
    np.testing.assert_array_equal(serial.weights, threaded.weights)
    np.testing.assert_array_equal(serial.r2, threaded.r2)
    # a batch of LASSO paths selects what each path alone selects; values up to rounding
    np.testing.assert_array_equal(serial.weights != 0, one_by_one.weights != 0)
    np.testing.assert_allclose(serial.weights, one_by_one.weights, rtol=1e-9, atol=1e-12)
    assert sum(ticks) == 10 and len(ticks) == 1 + 3  # one tick per batch of fits


def test_least_squares_paths_agree():
    from explainers.local_fit import _solve_normal_equations

    rng = np.random.default_rng(2)
    x = rng.normal(size=(500, 40))
    y = x @ rng.normal(size=40) + 0.1 * rng.normal(size=500)
    np.testing.assert_allclose(
        _solve_normal_equations(x.T @ x, x.T @ y),
        np.linalg.lstsq(x, y, rcond=None)[0],
        rtol=1e-9,
        atol=1e-12,
    )
    collinear = np.column_stack([x[:, :5], x[:, 0]])  # Cholesky fails: least-squares fallback
    b = _solve_normal_equations(collinear.T @ collinear, collinear.T @ y)
    np.testing.assert_allclose(collinear @ b, collinear @ np.linalg.lstsq(collinear, y)[0])


@pytest.mark.parametrize("n, k", [(300, 6), (60, 40)])  # normal equations; few samples
def test_local_fit_is_weighted_least_squares_on_the_selected_features(n, k):
    rng = np.random.default_rng(5)
    z = rng.normal(size=(n, 50))
    y = np.tanh(z[:, :6] @ rng.normal(size=6)) + 0.05 * rng.normal(size=n)
    pi = rng.uniform(0.2, 1.0, n)
    w, b, r2 = fit_local_model(z, y, pi, k)
    selected = np.flatnonzero(w)
    assert selected.size == k
    design = np.column_stack([np.ones(n), z[:, selected]])
    sw = np.sqrt(pi)
    ref = np.linalg.lstsq(design * sw[:, None], y * sw, rcond=None)[0]
    np.testing.assert_allclose(w[selected], ref[1:], rtol=1e-9)
    assert b == pytest.approx(ref[0], rel=1e-9)
    resid = (y - design @ ref) * sw
    y_bar = pi @ y / pi.sum()
    assert r2 == pytest.approx(1 - resid @ resid / (pi @ (y - y_bar) ** 2), rel=1e-9)


def test_real_explanations_select_what_lars_path_selects(trained_model, test_images):
    """The batched LASSO path on the CNN's own explanations (10 images, K = 100) against
    scikit-learn's lars_path run on the same samples, as LocalLime once did."""
    from sklearn.linear_model import lars_path

    images, _ = test_images
    images = images[::5][:10]
    forward = inference_forward(trained_model)
    targets = forward(images).argmax(1)
    lime = LocalLime(forward, n_samples=600, sigma=0.5, n_features=100, random_state=3)
    result = lime.explain(images, targets)
    width = lime.width_for(784)
    for i in range(images.shape[0]):
        xs, z = lime.sample(images[i], int(result.seeds[i]))
        y = lime.model_outputs(xs, int(targets[i]), "cpu")  # the same batches, the same y
        z = z.reshape(600, -1).double().numpy()
        pi = np.exp(-np.einsum("ij,ij->i", z, z) / width**2)
        sw = np.sqrt(pi)
        xc = (z - pi @ z / pi.sum()) * sw[:, None]
        yc = (y - pi @ y / pi.sum()) * sw
        norms = np.linalg.norm(xc, axis=0)
        xs_unit = xc / np.where(norms > 0, norms, 1.0)
        _, _, coefs = lars_path(xs_unit, yc / np.linalg.norm(yc), method="lasso", max_iter=150)
        first = np.flatnonzero(np.count_nonzero(coefs, axis=0) == 100)[0]
        np.testing.assert_array_equal(
            np.flatnonzero(result.weights[i]), np.flatnonzero(coefs[:, first])
        )


def test_the_batch_size_changes_speed_not_outputs(trained_model, test_images):
    images, _ = test_images
    forward = inference_forward(trained_model)
    xs, _ = LocalLime(forward, n_samples=500).sample(images[0], seed=1)
    outputs = [
        LocalLime(forward, n_samples=500, batch_size=b).model_outputs(xs, 3, "cpu")
        for b in (64, 128, 500)
    ]
    for y in outputs[1:]:  # measured identical here; oneDNN may pick other kernels elsewhere
        np.testing.assert_allclose(y, outputs[0], rtol=1e-6, atol=1e-12)
