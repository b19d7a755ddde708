"""The interface every attribution method implements (modelled on Captum).

An explainer is a small class built around a ``forward_func`` that maps a batch of inputs
of any shape ``(N, *feature_shape)`` to class probabilities ``(N, n_classes)``.  For pixel
maps that is the model itself (it takes pixels in [0, 1]); for the KAR benchmark on conv
features it is the network's head applied to second-conv-layer activations.  Constructor
arguments are explicit, documented parameters (scikit-learn style) including a
``random_state`` for every stochastic method; there is no hidden global state.

``attribute(inputs, target)`` takes a float tensor ``(N, *feature_shape)`` and a long
tensor ``(N,)`` of class indices and returns a float32 tensor of the same shape as
``inputs``: one map per input, for that input's target class.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

import numpy as np
import torch

__all__ = [
    "ForwardFunc",
    "Explainer",
    "as_target",
    "check_inputs",
    "check_target",
]

ForwardFunc = Callable[[torch.Tensor], torch.Tensor]


@runtime_checkable
class Explainer(Protocol):
    """A per-input attribution method."""

    name: str

    def attribute(self, inputs: torch.Tensor, target: torch.Tensor | int) -> torch.Tensor:
        """One map per input for its target class, same shape as ``inputs``."""
        ...


def as_target(target: torch.Tensor | int | np.ndarray | list, n: int) -> torch.Tensor:
    """Normalise ``target`` to a long tensor of shape (n,), validating it."""
    t = torch.as_tensor(target, dtype=torch.long)
    if t.ndim == 0:
        t = t.expand(n).clone()
    if t.shape != (n,):
        raise ValueError(f"target must be an int or have shape ({n},), got {tuple(t.shape)}")
    return t


def check_target(
    target: torch.Tensor, forward_func, inputs: torch.Tensor, *, n_classes: int | None = None
) -> torch.Tensor:
    """Refuse class indices the model does not have.

    The number of classes is ``n_classes`` where the caller knows it (it has the model's
    outputs already), else one forward pass of one input tells it.
    """
    if target.numel() == 0:
        return target
    low, high = int(target.min()), int(target.max())
    if low < 0:
        raise ValueError(f"target {low} is not a class index (classes are numbered from 0)")
    if n_classes is None and forward_func is not None:
        with torch.no_grad():
            n_classes = int(forward_func(inputs[:1]).shape[-1])
    if n_classes is not None and high >= n_classes:
        raise ValueError(
            f"target {high} is out of range: the model has {n_classes} classes "
            f"(0-{n_classes - 1})"
        )
    return target


def check_inputs(inputs: torch.Tensor) -> torch.Tensor:
    """Validate a batch of inputs at the boundary: a float tensor with a batch dimension."""
    if not isinstance(inputs, torch.Tensor):
        raise TypeError(f"inputs must be a torch.Tensor, got {type(inputs).__name__}")
    if inputs.ndim < 2:
        raise ValueError(f"inputs must have a batch dimension, got shape {tuple(inputs.shape)}")
    if not inputs.is_floating_point():
        raise TypeError(f"inputs must be floating point, got {inputs.dtype}")
    if not torch.isfinite(inputs).all():
        raise ValueError("inputs contain non-finite values")
    return inputs
