"""A project's model from a file or a callable, wrapped for the explainers and checked."""

from __future__ import annotations

import pytest
import torch

from explainers.user_model import Classifier, ModelSpecError, load_classifier


def _net():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 5))


def _load(path, tmp_path, **spec):
    return load_classifier({"file": path.name, **spec}, tmp_path, n_classes=5,
                           input_shape=(3, 4, 4))  # fmt: skip


def test_torchscript_and_whole_module_files_give_the_same_classifier(tmp_path):
    net = _net().eval()
    x = torch.rand(7, 3, 4, 4)
    with pytest.warns(FutureWarning):  # TorchScript is deprecated, files of it still exist
        torch.jit.save(torch.jit.trace(net, x), tmp_path / "scripted.pt")
    torch.save(net, tmp_path / "whole.pt")
    spec = {"input": {"mean": [0.5, 0.5, 0.5], "std": [0.2, 0.2, 0.2]}}
    expected = torch.softmax(net((x - 0.5) / 0.2), -1)
    for name in ("scripted.pt", "whole.pt"):
        model, sha = _load(tmp_path / name, tmp_path, **spec)
        assert isinstance(model, Classifier) and len(sha) == 64
        torch.testing.assert_close(model(x), expected, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(model.logits(x), net((x - 0.5) / 0.2), rtol=1e-5, atol=1e-6)


def test_a_normlime_mnist_model_file_is_used_as_it_is(tmp_path):
    from explainers.model import MnistCNN, save

    save(MnistCNN(), tmp_path / "cnn.pt")
    model, _ = load_classifier({"file": "cnn.pt"}, tmp_path, n_classes=10,
                               input_shape=(1, 28, 28))  # fmt: skip
    assert isinstance(model, MnistCNN)


@pytest.mark.parametrize(
    "setup, message",
    [
        (lambda p: torch.save(_net().state_dict(), p), "holds a state dict, not a model"),
        (lambda p: torch.save([1, 2], p), "holds a list, not a torch nn.Module"),
        (lambda p: p.write_bytes(b"not a model"), "cannot read model file"),
        (lambda p: None, "does not exist"),
    ],
)
def test_unusable_model_files_are_one_line(tmp_path, setup, message):
    setup(tmp_path / "m.pt")
    with pytest.raises(ModelSpecError, match=message):
        _load(tmp_path / "m.pt", tmp_path)


def test_wrong_input_normalisation_and_wrong_outputs(tmp_path):
    torch.save(_net(), tmp_path / "m.pt")
    with pytest.raises(ModelSpecError, match="mean has 2 values; the images have 3 channel"):
        _load(tmp_path / "m.pt", tmp_path, input={"mean": [0.1, 0.2]})
    with pytest.raises(ModelSpecError, match=r"fails on inputs of shape \(2, 1, 4, 4\)"):
        load_classifier({"file": "m.pt"}, tmp_path, n_classes=5, input_shape=(1, 4, 4))
    with pytest.raises(ModelSpecError, match=r"shape \(2, 5\); expected \(N, C\) = \(2, 7\)"):
        load_classifier({"file": "m.pt"}, tmp_path, n_classes=7, input_shape=(3, 4, 4))
