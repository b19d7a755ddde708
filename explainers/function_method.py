"""A researcher's own attribution function as a study method (kind ``function``).

::

    [[methods]]
    name = "my_method"
    kind = "function"
    callable = "mypackage.saliency:my_attributions"   # f(model, inputs, target) -> maps
    args = { strength = 2 }                           # extra keyword arguments, optional

``f`` receives the model (inputs in [0, 1] -> softmax probabilities; its class scores are
``model.logits(inputs)``), a float tensor (N, *shape) and a long tensor (N,) of target
classes, and returns one map per input: (N, H, W), (N, 1, H, W) or the inputs' shape.  It
runs under torch's and numpy's global generators seeded with the method's seed (restored
after the call), so a stochastic ``f`` that draws from either is reproducible.
"""

from __future__ import annotations

import torch

from .base import as_target, check_inputs, check_target

__all__ = ["FunctionAttribution", "import_callable"]


def import_callable(spec: str, what: str = "callable"):
    """``"package.module:name"`` -> the object, or ValueError saying what is wrong."""
    import importlib

    if not isinstance(spec, str) or spec.count(":") != 1:
        raise ValueError(f"{what} must be written 'module:name', got {spec!r}")
    module_name, attr = spec.split(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # ImportError, or the module itself failed on import
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"cannot import {module_name!r} for {what} {spec!r}: {first}") from None
    obj = module
    for part in attr.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise ValueError(f"{module_name!r} has no {attr!r} ({what} {spec!r})")
    if not callable(obj):
        raise ValueError(f"{what} {spec!r} is not callable")
    return obj


class FunctionAttribution:
    """``f(model, inputs, target, **args)`` behind our ``attribute`` interface."""

    name = "function"

    def __init__(self, forward_func, callable: str = "", args: dict | None = None,
                 random_state: int | None = None):  # fmt: skip
        self.forward_func = forward_func
        self.spec = callable
        self.fn = import_callable(callable, "the method's callable")
        self.args = dict(args or {})
        self.random_state = random_state

    def params(self) -> dict:
        return {"callable": self.spec, "args": self.args}

    def attribute(self, inputs: torch.Tensor, target: torch.Tensor | int) -> torch.Tensor:
        inputs = check_inputs(inputs)
        target = check_target(as_target(target, inputs.shape[0]), self.forward_func, inputs)
        from .captum_method import seeded_global_rngs

        with seeded_global_rngs(int(self.random_state or 0), inputs.device):
            out = self.fn(self.forward_func, inputs, target.to(inputs.device), **self.args)
        if not isinstance(out, torch.Tensor):
            out = torch.as_tensor(out)
        n, spatial = inputs.shape[0], tuple(inputs.shape[-2:])
        ok = out.shape[0] == n and tuple(out.shape[-2:]) == spatial and out.ndim in (3, 4)
        if not ok:
            raise ValueError(
                f"{self.spec} returned maps of shape {tuple(out.shape)}; expected ({n}, H, W), "
                f"({n}, 1, H, W) or the inputs' shape {tuple(inputs.shape)}"
            )
        return out.detach().to(torch.float32)
