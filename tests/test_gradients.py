"""SmoothGrad-squared, VarGrad and Input x Gradient (explainers/gradients.py).

The hand-written noise tunnel is checked against Captum's NoiseTunnel(Saliency) on the
same noise: Captum's noise draw is replaced, for the test only, by the noise our
explainer draws for the same inputs, so any difference is a difference in the maths.
"""

from __future__ import annotations

import pytest
import torch
from captum.attr import InputXGradient as CaptumInputXGradient
from captum.attr import NoiseTunnel, Saliency

from explainers.gradients import (
    InputXGradient,
    SmoothGradSquared,
    VarGrad,
    input_seeds,
    noisy_gradient_maps,
    target_gradients,
)

#: agreement with Captum: max |ours - captum| <= RTOL * max |captum| (measured ~1.4e-7)
RTOL = 1e-5


@pytest.fixture(scope="module")
def batch(test_images):
    x, y = test_images
    return x[::5][:10], y[::5][:10]  # one image per digit


def _captum_on_our_noise(monkeypatch, explainer, x, y, nt_type):
    """Captum NoiseTunnel(Saliency) with its noise replaced by ours for the same inputs."""
    seeds = input_seeds(explainer.random_state, x.shape[0])
    noise = explainer._draw_noise(seeds, tuple(x.shape[1:]), x)  # (N, n, *shape)

    def add_our_noise(inp, stdev, n_samples):
        assert n_samples == explainer.n_samples and stdev == explainer.sigma
        return inp.repeat_interleave(n_samples, dim=0) + noise.reshape(-1, *inp.shape[1:])

    monkeypatch.setattr(NoiseTunnel, "_add_noise_to_input", staticmethod(add_our_noise))
    nt = NoiseTunnel(Saliency(explainer.score_func))
    return nt.attribute(
        x, nt_type=nt_type, nt_samples=explainer.n_samples, stdevs=explainer.sigma, target=y
    )


@pytest.mark.parametrize(
    ("cls", "nt_type"), [(SmoothGradSquared, "smoothgrad_sq"), (VarGrad, "vargrad")]
)
@pytest.mark.parametrize(("batch_size", "score"), [(16, "logit"), (200, "probability")])
def test_noise_tunnel_matches_captum_on_same_noise(
    monkeypatch, trained_model, batch, cls, nt_type, batch_size, score
):
    x, y = batch
    ours = cls(
        trained_model, n_samples=10, sigma=0.3, batch_size=batch_size, random_state=3,
        score=score,
    )
    got = ours.attribute(x, y)
    ref = _captum_on_our_noise(monkeypatch, ours, x, y, nt_type)
    assert got.shape == x.shape and got.dtype == torch.float32
    scale = ref.abs().max()
    assert scale > 0
    assert (got - ref).abs().max() <= RTOL * scale


def test_noise_is_gaussian_with_sigma_and_seeded(trained_model, batch):
    x, _ = batch
    sg = SmoothGradSquared(trained_model, n_samples=50, sigma=0.3, random_state=0)
    noise = sg._draw_noise(input_seeds(0, 4), (1, 28, 28), x)
    assert noise.shape == (4, 50, 1, 28, 28)
    assert abs(float(noise.mean())) < 0.01
    assert abs(float(noise.std()) - 0.3) < 0.005
    # different inputs get different noise
    assert not torch.equal(noise[0], noise[1])


@pytest.mark.parametrize("score", ["logit", "probability"])
def test_zero_sigma_reduces_to_squared_gradient_and_zero_variance(trained_model, batch, score):
    x, y = batch
    fn = trained_model.logits if score == "logit" else trained_model
    grad = torch.stack(
        [
            torch.autograd.functional.jacobian(lambda v, t=t: fn(v[None])[0, t], xi)
            for xi, t in zip(x[:3], y[:3].tolist(), strict=True)
        ]
    )
    sg = SmoothGradSquared(trained_model, n_samples=3, sigma=0.0, random_state=0, score=score)
    vg = VarGrad(trained_model, n_samples=3, sigma=0.0, random_state=0, score=score)
    torch.testing.assert_close(
        sg.attribute(x[:3], y[:3]), grad**2, rtol=1e-4, atol=1e-10 * float(grad.abs().max()) ** 2
    )
    assert float(vg.attribute(x[:3], y[:3]).abs().max()) < 1e-10 * float(grad.abs().max()) ** 2


def test_default_score_is_the_logit_and_probability_is_an_option(trained_model, batch):
    """SmoothGrad and VarGrad differentiate the class score S_c by default (their sources'
    definition); the probability's gradient is the logit's times p(1 - p)-like factors,
    so the two maps differ, and a model without .logits cannot use the default."""
    x, y = batch
    logit = SmoothGradSquared(trained_model, n_samples=4, random_state=0)
    prob = SmoothGradSquared(trained_model, n_samples=4, random_state=0, score="probability")
    assert logit.params()["score"] == "logit" and "logit" in logit.params()["f"]
    a, b = logit.attribute(x, y), prob.attribute(x, y)
    assert (a - b).abs().max() > 10 * b.abs().max()  # logit gradients are far larger
    with pytest.raises(ValueError, match="logits"):
        VarGrad(lambda v: torch.softmax(trained_model.logits(v), 1))
    with pytest.raises(ValueError, match="score must be one of"):
        VarGrad(trained_model, score="softmax")


def test_reproducible_batch_size_invariant_and_per_input(trained_model, batch):
    x, y = batch[0][:6], batch[1][:6]
    a = SmoothGradSquared(trained_model, n_samples=6, batch_size=200, random_state=1)
    b = SmoothGradSquared(trained_model, n_samples=6, batch_size=5, random_state=1)
    c = SmoothGradSquared(trained_model, n_samples=6, random_state=2)
    full = a.attribute(x, y)
    torch.testing.assert_close(full, a.attribute(x, y), rtol=0, atol=0)
    torch.testing.assert_close(full, b.attribute(x, y), rtol=1e-5, atol=1e-9)
    # an input's map depends only on the input, its target and its position in the call
    torch.testing.assert_close(full[:4], a.attribute(x[:4], y[:4]), rtol=1e-5, atol=1e-9)
    assert (full - c.attribute(x, y)).abs().max() > 1e-3 * full.abs().max()


def test_both_maps_from_one_set_of_gradients(trained_model, batch):
    x, y = batch
    kw = dict(n_samples=6, sigma=0.3, batch_size=64, random_state=4)
    both = noisy_gradient_maps(trained_model, x, y, **kw)
    torch.testing.assert_close(both["smoothgrad"], SmoothGradSquared(trained_model, **kw)
                               .attribute(x, y), rtol=0, atol=0)
    torch.testing.assert_close(both["vargrad"], VarGrad(trained_model, **kw)
                               .attribute(x, y), rtol=0, atol=0)
    # VarGrad = E[g^2] - E[|g|]^2 <= E[g^2] = SmoothGrad^2, and not identical
    assert bool((both["vargrad"] <= both["smoothgrad"] + 1e-12).all())
    assert (both["smoothgrad"] - both["vargrad"]).abs().max() > 0


def test_input_x_gradient_matches_captum(trained_model, batch):
    x, y = batch
    got = InputXGradient(trained_model, batch_size=4).attribute(x, y)
    ref = CaptumInputXGradient(trained_model).attribute(x.clone().requires_grad_(), target=y)
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-8)


def test_shape_generic_on_conv_features(trained_model, batch):
    """The KAR benchmark explains conv-2 features (64, 14, 14) through the network head."""
    x, y = batch
    with torch.no_grad():
        feats = trained_model.conv_features(x[:3])

    def head(f):
        return torch.softmax(trained_model.head(f), dim=1)

    for explainer in (
        SmoothGradSquared(head, n_samples=4, random_state=0, score="probability"),
        VarGrad(head, n_samples=4, random_state=0, score="probability"),
        InputXGradient(head),
    ):
        out = explainer.attribute(feats, y[:3])
        assert out.shape == feats.shape and torch.isfinite(out).all()
        assert out.abs().max() > 0
    # Input x Gradient on features = features * d head / d features
    grad = target_gradients(head, feats, y[:3])
    torch.testing.assert_close(InputXGradient(head).attribute(feats, y[:3]), feats * grad)


def test_bad_arguments_are_rejected(trained_model, batch):
    x, y = batch
    with pytest.raises(ValueError, match="n_samples"):
        SmoothGradSquared(trained_model, n_samples=0)
    with pytest.raises(ValueError, match="sigma"):
        VarGrad(trained_model, sigma=-1)
    with pytest.raises(ValueError, match="target"):
        SmoothGradSquared(trained_model, n_samples=2).attribute(x, y[:3])
    with pytest.raises(TypeError):
        InputXGradient(trained_model).attribute(x.to(torch.int64), y)
