"""A researcher's own classifier behind the interface every explainer expects.

The explainers take pixels in [0, 1] with shape (N, C, H, W) and a model returning class
probabilities (N, n_classes), with the pre-softmax scores as ``model.logits(x)`` (what
SmoothGrad, VarGrad and Captum differentiate).  :class:`Classifier` wraps any
``nn.Module`` that way: the project's input normalisation ``(x - mean) / std`` runs inside
it, so LIME's perturbations and every map live in pixel space, the space a participant
sees.

A project's ``[model]`` names the network in one of two ways:

``callable = "module:function"``  returns an ``nn.Module`` (``args`` are its keyword
                                   arguments); ``weights`` optionally a state-dict file.
``file = "model.pt"``             a TorchScript file (``torch.jit.save``), a whole module
                                   saved with ``torch.save`` (unpickling runs code: only
                                   load files you trust), or a normlime MNIST model.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from torch import nn

from .function_method import import_callable

__all__ = ["ModelSpecError", "Classifier", "load_classifier", "resolve_file", "state_checksum"]


class ModelSpecError(ValueError):
    """The project's model cannot be loaded or does not fit its data (one line)."""


class Classifier(nn.Module):
    """``net`` with the input normalisation inside; ``forward`` gives probabilities."""

    def __init__(self, net: nn.Module, mean=(0.0,), std=(1.0,)):
        super().__init__()
        self.net = net
        mean_t = torch.as_tensor(mean, dtype=torch.float32).reshape(1, -1, 1, 1)
        std_t = torch.as_tensor(std, dtype=torch.float32).reshape(1, -1, 1, 1)
        if torch.any(std_t <= 0):
            raise ModelSpecError("[model.input] std must be positive")
        self.register_buffer("mean", mean_t)
        self.register_buffer("std", std_t)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.logits(x).float(), dim=-1)


def resolve_file(base: Path, value: str) -> Path:
    """A ``[model] file``: relative to the project, or ``package:PACKAGE/PATH`` for a file
    shipped inside an installed package (the built-in projects' paper CNN)."""
    if value.startswith("package:"):
        from .shipped import package_dir

        package, _, rest = value[len("package:"):].partition("/")
        return package_dir(package) / rest
    return Path(base) / value


def state_checksum(module: nn.Module) -> str:
    """SHA-256 over the module's parameters and buffers (names, shapes, values)."""
    h = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        h.update(name.encode())
        h.update(str(tuple(tensor.shape)).encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _is_torchscript(path: Path) -> bool:
    """TorchScript archives hold the module's code; torch.save archives do not."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, OSError):
        return False
    return any("/code/" in n for n in names)


def _from_file(path: Path) -> nn.Module:
    import warnings

    if not path.is_file():
        raise ModelSpecError(f"model file {path} does not exist")
    if _is_torchscript(path):
        try:
            with warnings.catch_warnings():  # deprecated in torch, still a format people have
                warnings.simplefilter("ignore", FutureWarning)
                return torch.jit.load(str(path), map_location="cpu")
        except Exception as exc:
            raise ModelSpecError(f"cannot read model file {path}: {_first_line(exc)}") from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise ModelSpecError(f"cannot read model file {path}: {_first_line(exc)}") from None
    if isinstance(obj, dict) and {"config", "state_dict"} <= set(obj):
        from .model import load

        return load(path)
    if isinstance(obj, dict):
        raise ModelSpecError(
            f"{path} holds a state dict, not a model: name the architecture with "
            "callable = \"module:function\" and this file as weights"
        )
    if not isinstance(obj, nn.Module):
        raise ModelSpecError(f"{path} holds a {type(obj).__name__}, not a torch nn.Module")
    return obj


def _from_callable(spec: dict, base: Path, weights: bool = True) -> nn.Module:
    try:
        fn = import_callable(spec["callable"], "[model] callable")
    except ValueError as exc:
        raise ModelSpecError(str(exc)) from None
    try:
        net = fn(**dict(spec.get("args", {})))
    except Exception as exc:
        raise ModelSpecError(f"{spec['callable']} failed: {_first_line(exc)}") from None
    if not isinstance(net, nn.Module):
        kind = type(net).__name__
        raise ModelSpecError(f"{spec['callable']} returned a {kind}, not an nn.Module")
    if weights and spec.get("weights"):
        path = base / spec["weights"]
        try:
            net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        except FileNotFoundError:
            raise ModelSpecError(f"weights file {path} does not exist") from None
        except Exception as exc:
            raise ModelSpecError(f"cannot load weights {path}: {_first_line(exc)}") from None
    return net


def load_classifier(
    spec: dict,
    base: str | Path,
    *,
    n_classes: int,
    input_shape: tuple[int, ...],
    device="cpu",
    weights: bool = True,
) -> tuple[Classifier, str]:
    """The project's model, wrapped and checked on a dummy batch; (model, checksum).

    The check: a batch (2, *input_shape) of mid-grey pixels must give scores of shape
    (2, n_classes).  A model that is already a normlime MNIST CNN is used as it is.
    ``weights=False`` leaves a callable's network as built (for training it).
    """
    base = Path(base)
    if spec.get("module") is not None:  # from Python: the module itself
        net = spec["module"]
        if not isinstance(net, nn.Module):
            raise ModelSpecError(f"model must be a torch nn.Module, got {type(net).__name__}")
    elif spec.get("callable"):
        net = _from_callable(spec, base, weights)
    elif spec.get("file"):
        net = _from_file(resolve_file(base, spec["file"]))
    else:
        raise ModelSpecError("[model] needs callable = \"module:function\" or file = \"path\"")
    inp = spec.get("input", {})
    mean, std = inp.get("mean", [0.0]), inp.get("std", [1.0])
    channels = input_shape[0]
    for key, value in (("mean", mean), ("std", std)):
        if len(value) not in (1, channels):
            raise ModelSpecError(
                f"[model.input] {key} has {len(value)} values; the images have {channels} "
                "channel(s)"
            )
    from .model import MnistCNN

    model = net if isinstance(net, MnistCNN) else Classifier(net, mean, std)
    model = model.to(device).eval()
    probe = torch.full((2, *input_shape), 0.5, device=device)
    try:
        with torch.no_grad():
            out = model.logits(probe)
    except Exception as exc:
        raise ModelSpecError(
            f"the model fails on inputs of shape {tuple(probe.shape)}: {_first_line(exc)}"
        ) from None
    if not isinstance(out, torch.Tensor) or out.shape != (2, n_classes):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ModelSpecError(
            f"the model's output for a batch of 2 has shape {shape}; expected (N, C) = "
            f"(2, {n_classes}), one score per class the project names"
        )
    if spec.get("file"):  # a file's checksum is its bytes', as for `normlime train`'s files
        from .model import file_checksum

        return model, file_checksum(resolve_file(base, spec["file"]))
    return model, state_checksum(model)
