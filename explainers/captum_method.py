"""Any Captum attribution class as a study method (kind ``captum``).

A project names the class and its arguments::

    [[methods]]
    name = "integrated_gradients"
    kind = "captum"
    attribution = "IntegratedGradients"      # any class of captum.attr
    attribute_args = { n_steps = 32 }        # passed to .attribute()
    # init_args = { multiply_by_inputs = true }   passed to the constructor
    # layer = "layer4"                       # Layer* classes: a submodule of the model
    # noise_tunnel = { nt_type = "smoothgrad_sq", nt_samples = 20, stdevs = 0.1 }
    # output = "logit"                       # or "probability"

Captum differentiates the model's class scores (``output = "logit"``, as Captum's own
tutorials do) or its softmax probabilities.  A layer method's coarse map (GradCAM's
(N, 1, h, w)) is upsampled bilinearly to the input's H x W, as Captum's
``LayerAttribution.interpolate`` does for display.  Captum's stochastic methods draw
from torch's and numpy's global generators, so every call runs under generators seeded
from ``random_state`` and a digest of the inputs and targets (and restored after it): a
map depends on its image and its batch, not on what ran before.
"""

from __future__ import annotations

import contextlib
import hashlib

import numpy as np
import torch

from . import seeds
from .base import as_target, check_inputs, check_target

__all__ = ["CaptumAttribution", "resolve_layer", "seeded_global_rngs"]

#: Captum classes that draw random numbers: run one image per call, each under its own
#: seeded generators, so a map depends on its image and not on the batch around it
_STOCHASTIC = ("GradientShap", "KernelShap", "Lime", "ShapleyValueSampling",
               "FeaturePermutation")  # fmt: skip
#: Captum classes whose baselines must be a distribution (a tensor), not a number
_TENSOR_BASELINES = ("GradientShap", "DeepLiftShap")
OUTPUTS = ("logit", "probability")


class _Scores(torch.nn.Module):
    """The model's class scores as an nn.Module (some Captum classes need a module)."""

    def __init__(self, model, output: str):
        super().__init__()
        self.model = model
        self.output = output

    def forward(self, x):
        if self.output == "logit" and callable(getattr(self.model, "logits", None)):
            return self.model.logits(x)
        return self.model(x)


@contextlib.contextmanager
def seeded_global_rngs(seed: int, device: torch.device):
    """torch's and numpy's global generators seeded with ``seed`` for the block, restored
    after it (Captum draws GradientShap's interpolation points from numpy's)."""
    devices = [device] if device.type == "cuda" else []
    state = np.random.get_state()
    try:
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(int(seed))
            np.random.seed(int(seed) % 2**32)
            yield
    finally:
        np.random.set_state(state)


def resolve_layer(model, path: str):
    """The submodule ``path`` ("layer4", "features.3") of the user's network."""
    root = getattr(model, "net", model)
    try:
        return root.get_submodule(path)
    except (AttributeError, TypeError):
        names = [n for n, _ in root.named_children()]
        raise ValueError(
            f"the model has no layer {path!r}; its top-level layers are "
            f"{', '.join(names) or '(none)'}"
        ) from None


def _captum_class(name: str):
    import captum.attr as ca

    cls = getattr(ca, str(name), None)
    if not isinstance(cls, type) or not issubclass(cls, ca.Attribution):
        raise ValueError(
            f"captum.attr has no attribution class {name!r} (e.g. IntegratedGradients, "
            "Saliency, GradientShap, LayerGradCam, Occlusion)"
        )
    return cls


def _tupled(value):
    if isinstance(value, list):
        return tuple(_tupled(v) for v in value)
    return value


class CaptumAttribution:
    """A Captum attribution class with fixed arguments, behind our ``attribute`` interface.

    Parameters
    ----------
    forward_func : the model (N, *shape) -> probabilities, with ``.logits`` for scores.
    attribution : name of a class in ``captum.attr``.
    init_args, attribute_args : keyword arguments of its constructor and ``attribute``.
    layer : dotted submodule name, for Layer* classes.
    noise_tunnel : keyword arguments of ``NoiseTunnel.attribute`` (wraps the method).
    output : "logit" (default) or "probability", what is attributed.
    batch_size : images per Captum call (bounds memory for IG's n_steps copies).
    random_state : seed of the stochastic methods.
    """

    name = "captum"

    def __init__(
        self,
        forward_func,
        attribution: str = "Saliency",
        init_args: dict | None = None,
        attribute_args: dict | None = None,
        layer: str | None = None,
        noise_tunnel: dict | None = None,
        output: str = "logit",
        batch_size: int = 16,
        random_state: int | None = None,
    ):
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {', '.join(OUTPUTS)}, got {output!r}")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        cls = _captum_class(attribution)
        self.forward_func = forward_func
        self.attribution = cls.__name__
        self.init_args = {k: _tupled(v) for k, v in (init_args or {}).items()}
        self.attribute_args = {k: _tupled(v) for k, v in (attribute_args or {}).items()}
        self.layer = layer
        self.noise_tunnel = dict(noise_tunnel) if noise_tunnel else None
        self.output = output
        self.batch_size = int(batch_size)
        self.random_state = random_state
        self._scores = _Scores(forward_func, output)
        is_layer = cls.__name__.startswith(("Layer", "GuidedGradCam"))
        if is_layer and layer is None:
            raise ValueError(f"{cls.__name__} needs a layer (e.g. layer = \"conv2\")")
        args = (self._scores,) + ((resolve_layer(forward_func, layer),) if layer else ())
        try:
            method = cls(*args, **self.init_args)
        except TypeError as exc:
            raise ValueError(f"{cls.__name__}: {exc}") from None
        if self.noise_tunnel is not None:
            from captum.attr import NoiseTunnel

            method = NoiseTunnel(method)
        self._method = method

    def params(self) -> dict:
        import captum

        return {
            "attribution": self.attribution,
            "init_args": self.init_args,
            "attribute_args": self.attribute_args,
            "layer": self.layer,
            "noise_tunnel": self.noise_tunnel,
            "output": self.output,
            "captum": captum.__version__,
        }

    def _call_seed(self, inputs: torch.Tensor, target: torch.Tensor) -> int:
        h = hashlib.blake2b(digest_size=8)
        h.update(inputs.detach().to("cpu", torch.float32).numpy().tobytes())
        h.update(target.cpu().numpy().tobytes())
        return seeds.derive(int(self.random_state or 0), int.from_bytes(h.digest(), "little") >> 1)

    def _kwargs(self, inputs: torch.Tensor) -> dict:
        kwargs = dict(self.attribute_args)
        base = kwargs.get("baselines")
        if isinstance(base, int | float) and self.attribution in _TENSOR_BASELINES:
            kwargs["baselines"] = torch.full_like(inputs[:1], float(base))
        if self.noise_tunnel is not None:
            kwargs.update(self.noise_tunnel)
        return kwargs

    def _one_batch(self, inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        with seeded_global_rngs(self._call_seed(inputs, target), inputs.device):
            attr = self._method.attribute(
                inputs.detach().clone().requires_grad_(True), target=target, **self._kwargs(inputs)
            )
        attr = attr[0] if isinstance(attr, tuple) else attr
        if attr.shape[-2:] != inputs.shape[-2:]:
            from captum.attr import LayerAttribution

            if attr.ndim == 3:
                attr = attr.unsqueeze(1)
            attr = LayerAttribution.interpolate(attr, tuple(inputs.shape[-2:]), "bilinear")
        return attr.detach().to(torch.float32)

    def attribute(self, inputs: torch.Tensor, target: torch.Tensor | int) -> torch.Tensor:
        """(N, *shape) inputs -> (N, channels, H, W) maps (channels: the input's, or 1)."""
        inputs = check_inputs(inputs)
        target = check_target(as_target(target, inputs.shape[0]), self.forward_func, inputs)
        target = target.to(inputs.device)
        step = 1 if self.stochastic else self.batch_size
        parts = [
            self._one_batch(inputs[s : s + step], target[s : s + step])
            for s in range(0, inputs.shape[0], step)
        ]
        return torch.cat(parts)

    @property
    def stochastic(self) -> bool:
        return self.noise_tunnel is not None or self.attribution in _STOCHASTIC
