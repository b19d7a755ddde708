"""The model-randomisation sanity check (Adebayo et al., NeurIPS 2018), cascading.

The model's parameterised layers are re-initialised one after another from the top (the
output layer) down, cumulatively, and after each the method's maps of the same images,
with the same seed, are compared with the maps of the trained model by Spearman's rank
correlation (per image, over pixels).  A method whose maps explain the model falls towards
0 as the layers go; one that ignores the weights (an edge detector) stays at 1.

Layers are the modules that hold parameters of their own (``weight``/``bias``), in the
order ``named_modules`` lists them, which for a sequential network is the forward order.
A layer is re-initialised by its own ``reset_parameters()`` (PyTorch's default
initialisation) under a generator seeded from the check's seed and the layer's name, so
every layer's new weights are reproducible and independent of the others.
"""

from __future__ import annotations

import copy
import zlib

import numpy as np
import torch

from .metrics import spearman_rows

__all__ = ["RandomisationError", "randomisable_layers", "cascading_randomisation"]


class RandomisationError(ValueError):
    """The model has no layer the check can re-initialise (one readable line)."""


def randomisable_layers(model: torch.nn.Module) -> list[str]:
    """Names of the modules with parameters of their own, input side first."""
    names = []
    for name, module in model.named_modules():
        own = list(module.parameters(recurse=False))
        if own and name:
            if not hasattr(module, "reset_parameters"):
                raise RandomisationError(
                    f"layer {name!r} ({type(module).__name__}) has parameters but no "
                    "reset_parameters(): the randomisation check cannot re-initialise it"
                )
            names.append(name)
    if not names:
        raise RandomisationError(
            "the model has no layer with parameters: the randomisation check needs one"
        )
    return names


def _reset(module: torch.nn.Module, seed: int) -> None:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module.reset_parameters()


def cascading_randomisation(model, explain, x, target, *, seed: int, layers=None):
    """Per layer (top first), (N,) Spearman correlations with the trained model's maps.

    ``explain(model, x, target) -> (N, H, W)`` maps; it is called with a randomised copy of
    ``model`` (the model itself is never changed).  Returns ``(layer names, (L, N) array)``.
    """
    layers = list(layers or randomisable_layers(model))
    original = np.asarray(explain(model, x, target), dtype=np.float64)
    copy_ = copy.deepcopy(model).eval()
    modules = dict(copy_.named_modules())
    out = []
    for name in reversed(layers):
        _reset(modules[name], (seed * 1_000_003 + zlib.crc32(name.encode())) % 2**63)
        maps = np.asarray(explain(copy_, x, target), dtype=np.float64)
        out.append(spearman_rows(original, maps))
    return list(reversed(layers))[: len(out)], np.stack(out)
