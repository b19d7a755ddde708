"""Methods as plug-ins: Captum classes by name, a user's function, our kinds with parameters."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from explainers.registry import build, kind_class
from explainers.user_model import Classifier


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
        torch.nn.Linear(4 * 8 * 8, 5),
    )  # fmt: skip
    return Classifier(net, mean=[0.5] * 3, std=[0.25] * 3).eval()


@pytest.fixture(scope="module")
def inputs():
    g = torch.Generator().manual_seed(1)
    return torch.rand((6, 3, 8, 8), generator=g), torch.tensor([0, 1, 2, 3, 4, 0])


@pytest.mark.parametrize(
    "params, channels",
    [
        ({"attribution": "IntegratedGradients", "attribute_args": {"n_steps": 8}}, 3),
        ({"attribution": "Saliency", "attribute_args": {"abs": True}}, 3),
        ({"attribution": "GradientShap", "attribute_args": {"baselines": 0.0, "n_samples": 4}}, 3),
        ({"attribution": "Occlusion", "attribute_args": {"sliding_window_shapes": [3, 2, 2],
                                                         "strides": [3, 2, 2]}}, 3),
        ({"attribution": "Saliency", "noise_tunnel": {"nt_type": "smoothgrad_sq",
                                                      "nt_samples": 4, "stdevs": 0.1}}, 3),
        ({"attribution": "LayerGradCam", "layer": "0"}, 1),
    ],
)  # fmt: skip
def test_any_captum_class_by_name_gives_one_map_per_input(model, inputs, params, channels):
    x, t = inputs
    explainer = build("captum", model, random_state=7, params=params)
    out = explainer.attribute(x, t)
    assert out.shape == (6, channels, 8, 8) and out.dtype == torch.float32
    assert torch.isfinite(out).all() and out.abs().sum() > 0
    again = build("captum", model, random_state=7, params=params).attribute(x, t)
    torch.testing.assert_close(out, again)  # stochastic ones are seeded
    # a map depends on its image, not on the batch it came in
    torch.testing.assert_close(explainer.attribute(x[3:5], t[3:5]), out[3:5])


def test_a_captum_method_equals_captum_called_directly(model, inputs):
    from captum.attr import IntegratedGradients

    x, t = inputs
    ours = build("captum", model, random_state=0, params={
        "attribution": "IntegratedGradients", "attribute_args": {"n_steps": 16}}).attribute(x, t)
    theirs = IntegratedGradients(model.logits).attribute(x, target=t, n_steps=16)
    torch.testing.assert_close(ours, theirs.float(), rtol=1e-5, atol=1e-6)


def test_probability_output_differs_from_logits(model, inputs):
    x, t = inputs
    logit = build("captum", model, random_state=0, params={"attribution": "Saliency"})
    prob = build("captum", model, random_state=0,
                 params={"attribution": "Saliency", "output": "probability"})  # fmt: skip
    assert not torch.allclose(logit.attribute(x, t), prob.attribute(x, t))


@pytest.mark.parametrize(
    "kind, params, message",
    [
        ("captum", {"attribution": "Nope"}, "captum.attr has no attribution class 'Nope'"),
        ("captum", {"attribution": "LayerGradCam"}, "LayerGradCam needs a layer"),
        ("captum", {"attribution": "LayerGradCam", "layer": "fc9"}, "the model has no layer 'fc9'"),
        ("captum", {"attribution": "Saliency", "output": "soft"}, "output must be one of"),
        ("smoothgrad", {"n_samplez": 3}, "method kind 'smoothgrad': unknown parameter 'n_samplez'"),
        ("function", {"callable": "os.path"}, "must be written 'module:name'"),
        ("function", {"callable": "no_mod_here:f"}, "cannot import 'no_mod_here'"),
        ("nonsense", {}, "unknown method kind 'nonsense'"),
    ],
)  # fmt: skip
def test_bad_method_parameters_are_one_clear_error(model, kind, params, message):
    with pytest.raises(ValueError) as info:
        build(kind, model, random_state=0, params=params)
    assert message in str(info.value)


def test_a_users_function_and_our_kinds_with_parameters(model, inputs, tmp_path, monkeypatch):
    x, t = inputs
    (tmp_path / "my_attr.py").write_text(
        "import torch\n\n\ndef grad_norm(model, inputs, target, power=1):\n"
        "    x = inputs.clone().requires_grad_(True)\n"
        "    s = model.logits(x).gather(1, target[:, None]).sum()\n"
        "    (g,) = torch.autograd.grad(s, x)\n"
        "    return g.abs().sum(1) ** power\n"
        "\n\ndef wrong(model, inputs, target):\n    return inputs[:, 0, :4]\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    f = build("function", model, random_state=0,
              params={"callable": "my_attr:grad_norm", "args": {"power": 2}})  # fmt: skip
    out = f.attribute(x, t)
    assert out.shape == (6, 8, 8)
    sal = build("captum", model, random_state=0, params={"attribution": "Saliency"})
    np.testing.assert_allclose(out.numpy(), (sal.attribute(x, t).sum(1) ** 2).numpy(), rtol=1e-5)
    bad = build("function", model, random_state=0, params={"callable": "my_attr:wrong"})
    with pytest.raises(ValueError, match=r"returned maps of shape \(6, 4, 8\)"):
        bad.attribute(x, t)
    sg = build("smoothgrad", model, random_state=3, params={"n_samples": 5, "sigma": 0.1})
    assert (sg.n_samples, sg.sigma) == (5, 0.1)
    assert kind_class("captum").__name__ == "CaptumAttribution"
