"""Random: the control baseline that assigns feature importance at random.

The NormLIME paper's "Random" KAR baseline ("randomly assigns feature importance ... a
sanity check"): every element of a map is an independent draw from U(0, 1), so any ranking
of features by it is a uniformly random permutation.  The map ignores the model and the
target on purpose; it is the one method that Adebayo et al.'s model-randomisation check
cannot (and should not) tell apart from its randomised-model version.
"""

from __future__ import annotations

import torch

from .base import ForwardFunc, as_target, check_inputs, check_target
from .gradients import input_seeds

__all__ = ["RandomMap"]


class RandomMap:
    """Independent U(0, 1) importance per element.

    Parameters
    ----------
    forward_func : callable or None
        Accepted for a uniform constructor across methods; never called.
    random_state : int or None
        Seed; input ``i`` of a call gets its own generator seeded from
        ``(random_state, i)``, so an int gives the same maps on every call.
    """

    name = "random"

    def __init__(self, forward_func: ForwardFunc | None = None, random_state: int | None = None):
        self.forward_func = forward_func
        self.random_state = random_state

    def params(self) -> dict:
        return {"distribution": "U(0, 1) i.i.d. per element", "random_state": self.random_state}

    def attribute(self, inputs: torch.Tensor, target: torch.Tensor | int) -> torch.Tensor:
        inputs = check_inputs(inputs)
        # validated for a uniform interface, then unused
        check_target(as_target(target, inputs.shape[0]), self.forward_func, inputs)
        maps = []
        for seed in input_seeds(self.random_state, inputs.shape[0]):
            generator = torch.Generator(device=inputs.device).manual_seed(seed)
            maps.append(
                torch.rand(
                    tuple(inputs.shape[1:]),
                    generator=generator,
                    device=inputs.device,
                    dtype=torch.float32,
                )
            )
        return torch.stack(maps)
