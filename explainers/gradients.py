"""Gradient maps: SmoothGrad-squared, VarGrad and Input x Gradient.

SmoothGrad and VarGrad differentiate the *class score* ``S_c``, the pre-softmax logit of the
target class, as their sources define them: Smilkov et al. (2017) write the saliency map
as the gradient of "the class activation function S_c", and Adebayo et al. (2018) define
VarGrad on the same gradient.  ``score="probability"`` differentiates the softmax
probability instead (the NormLIME paper's f for LIME), kept as an option: a confident
model's probability is saturated, and its gradient is then so heavy-tailed that one of
100 noise draws can carry most of a map's energy (docs/explainers-baselines.md).

``score="logit"`` needs a model that exposes its class scores as ``forward_func.logits(x)``
(as ``MnistCNN`` does); ``forward_func(x)`` itself returns probabilities everywhere in
this package.  Input x Gradient explains the probability ``f(x) = forward_func(x)[target]``.

SmoothGrad-squared (Smilkov et al. 2017, in the squared form of Hooker et al. 2018)::

    I_SGSQ(x) = E_eta[ (df/dx (x + eta))^2 ],          eta ~ N(0, sigma^2 I)

VarGrad (Adebayo et al. 2018)::

    I_VG(x) = Var_eta( |df/dx (x + eta)| )   (population variance, 1/n)

Both expectations are estimated from ``n_samples`` noise draws (paper: 100 draws,
sigma = 0.3 in the [0, 1] pixel units of the model's input; noisy inputs are not clipped,
as in SmoothGrad and Captum).  They equal Captum's ``NoiseTunnel(Saliency(f))`` with
``nt_type="smoothgrad_sq"`` / ``"vargrad"`` on the same noise (checked in
tests/test_gradients.py); this hand-written version

* draws each input's noise from its own ``torch.Generator`` seeded from ``random_state``
  and the input's position (Captum uses the global RNG), so a map is a pure function of
  (input, target, random_state, position) and does not depend on ``batch_size``;
* runs one forward + backward pass per batch of ``batch_size`` noisy samples, whatever the
  number of inputs, instead of one pass over all ``N * n_samples`` samples at once (on
  the CPU a 200-sample pass costs about half as much per sample as a 1,000-sample one:
  benchmarks/gradients.py);
* accumulates the first and second moments in float64 (Captum: float32), so the variance
  E[a^2] - E[a]^2 does not lose digits to cancellation;
* can return both maps from one set of noisy gradients (:func:`noisy_gradient_maps`).

Input x Gradient (Shrikumar et al. 2016): ``x * df/dx (x)``, one pass per batch.
"""

from __future__ import annotations

import torch

from . import seeds
from .base import ForwardFunc, as_target, check_inputs, check_target

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "SmoothGradSquared",
    "VarGrad",
    "InputXGradient",
    "input_seeds",
    "target_gradients",
    "noisy_gradient_maps",
    "SCORES",
]

#: what the noise-tunnel methods can differentiate (see the module docstring)
SCORES = {
    "logit": "pre-softmax class score S_c (logit) of the target class",
    "probability": "softmax probability of the target class",
}


def score_function(forward_func: ForwardFunc, score: str) -> ForwardFunc:
    """The function whose target column is differentiated for ``score``."""
    if score not in SCORES:
        raise ValueError(f"score must be one of {', '.join(SCORES)}, got {score!r}")
    if score == "probability":
        return forward_func
    logits = getattr(forward_func, "logits", None)
    if not callable(logits):
        raise ValueError(
            "score='logit' needs a model exposing its class scores as .logits(x); "
            "pass score='probability' to differentiate the softmax output instead"
        )
    return logits

#: noisy samples per forward/backward pass.  Measured on the 2-core CPU (one thread): 50,
#: 100 and 200 cost the same per sample, 400 is 1.4x and 1000 1.9x slower per sample
#: (benchmarks/gradients.py --sweep, docs/explainers-baselines.md)
DEFAULT_BATCH_SIZE = 200


def target_gradients(
    forward_func: ForwardFunc, inputs: torch.Tensor, target: torch.Tensor
) -> torch.Tensor:
    """d forward_func(x)[target] / dx for a batch, in one forward and one backward pass.

    The probabilities of different rows do not depend on each other, so the gradient of
    their sum with respect to the batch is the batch of per-row gradients.
    """
    x = inputs.detach().requires_grad_(True)
    with torch.enable_grad():
        probs = forward_func(x)
        if probs.ndim != 2 or probs.shape[0] != x.shape[0]:
            raise ValueError(
                f"forward_func must return (N, n_classes) scores, got {tuple(probs.shape)}"
            )
        selected = probs.gather(1, target.to(probs.device).view(-1, 1)).sum()
        (grad,) = torch.autograd.grad(selected, x)
    return grad


#: one seed per input position (explainers.seeds.per_input)
input_seeds = seeds.per_input


def _moment_dtype(device: torch.device) -> torch.dtype:
    # float64 accumulators where the device has them (not on Apple's MPS)
    return torch.float32 if device.type == "mps" else torch.float64


class _NoiseTunnel:
    """Shared machinery of SmoothGrad-squared and VarGrad."""

    name = "noise-tunnel"

    def __init__(
        self,
        forward_func: ForwardFunc,
        n_samples: int = 100,
        sigma: float = 0.3,
        batch_size: int = DEFAULT_BATCH_SIZE,
        random_state: int | None = None,
        score: str = "logit",
    ):
        if int(n_samples) < 1:
            raise ValueError(f"n_samples must be >= 1, got {n_samples}")
        if not float(sigma) >= 0.0:
            raise ValueError(f"sigma must be >= 0, got {sigma}")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.forward_func = forward_func
        self.score = score
        self.score_func = score_function(forward_func, score)
        self.n_samples = int(n_samples)
        self.sigma = float(sigma)
        self.batch_size = int(batch_size)
        self.random_state = random_state

    def params(self) -> dict:
        """The parameters that determine the maps (for manifests)."""
        return {
            "n_samples": self.n_samples,
            "sigma": self.sigma,
            "batch_size": self.batch_size,
            "random_state": self.random_state,
            "score": self.score,
            "f": SCORES[self.score],
        }

    def _draw_noise(
        self, seeds: list[int], feature_shape: tuple[int, ...], like: torch.Tensor
    ) -> torch.Tensor:
        """eta for consecutive inputs, one seed each: (len(seeds), n_samples, *feature_shape).

        Each input's noise comes from its own generator, so it does not depend on the
        batch size or on the other inputs of the call.
        """
        draws = []
        for seed in seeds:
            generator = torch.Generator(device=like.device).manual_seed(seed)
            draws.append(
                torch.randn(
                    (self.n_samples, *feature_shape),
                    generator=generator,
                    device=like.device,
                    dtype=like.dtype,
                )
            )
        return torch.stack(draws) * self.sigma

    def moments(
        self, inputs: torch.Tensor, target: torch.Tensor | int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """E[|g|] and E[g^2] over the noise, per input: two (N, *shape) tensors (float64).

        ``g = df/dx(x + eta)``.  Input ``i`` of the call gets its noise from the seed
        ``input_seeds(random_state, N)[i]``; noisy samples of consecutive inputs share
        forward/backward passes of ``batch_size`` samples.
        """
        inputs = check_inputs(inputs)
        n, feature_shape = inputs.shape[0], tuple(inputs.shape[1:])
        target = check_target(as_target(target, n), self.forward_func, inputs).to(inputs.device)
        seeds = input_seeds(self.random_state, n)
        dtype = _moment_dtype(inputs.device)
        mean_abs = torch.zeros((n, *feature_shape), dtype=dtype, device=inputs.device)
        mean_sq = torch.zeros_like(mean_abs)
        per_chunk = max(1, self.batch_size // self.n_samples)
        for start in range(0, n, per_chunk):
            stop = min(n, start + per_chunk)
            x = inputs[start:stop].detach()
            noise = self._draw_noise(seeds[start:stop], feature_shape, x)
            noisy = (x.unsqueeze(1) + noise).reshape(-1, *feature_shape)
            owner = torch.arange(start, stop, device=x.device).repeat_interleave(self.n_samples)
            for b in range(0, noisy.shape[0], self.batch_size):
                rows = owner[b : b + self.batch_size]
                grad = target_gradients(
                    self.score_func, noisy[b : b + self.batch_size], target[rows]
                ).to(dtype)
                mean_abs.index_add_(0, rows, grad.abs())
                mean_sq.index_add_(0, rows, grad * grad)
        return mean_abs / self.n_samples, mean_sq / self.n_samples


class SmoothGradSquared(_NoiseTunnel):
    """SmoothGrad-squared: E[(df/dx(x + eta))^2], eta ~ N(0, sigma^2 I).

    Parameters
    ----------
    forward_func : callable
        (N, *shape) -> class probabilities (N, n_classes).
    n_samples : int, default 100
        Noise draws per input (the paper's 100).
    sigma : float, default 0.3
        Standard deviation of the noise in input units (the paper's 0.3 on [0, 1] pixels).
    batch_size : int, default 200
        Noisy samples per forward/backward pass (any number of inputs share a pass).
    random_state : int or None
        Seed of the noise; an int gives the same maps on every call with the same inputs.
    """

    name = "smoothgrad"

    def attribute(self, inputs: torch.Tensor, target: torch.Tensor | int) -> torch.Tensor:
        _, mean_sq = self.moments(inputs, target)
        return mean_sq.to(torch.float32)


class VarGrad(_NoiseTunnel):
    """VarGrad: Var(|df/dx(x + eta)|) over eta ~ N(0, sigma^2 I) (population variance).

    Same parameters as :class:`SmoothGradSquared`.  ``Var(|g|) = E[g^2] - E[|g|]^2``,
    which is what Captum's ``NoiseTunnel(Saliency)`` computes with ``nt_type="vargrad"``
    (Saliency takes the absolute value of the gradient); rounding below zero is clipped.
    """

    name = "vargrad"

    def attribute(self, inputs: torch.Tensor, target: torch.Tensor | int) -> torch.Tensor:
        mean_abs, mean_sq = self.moments(inputs, target)
        return (mean_sq - mean_abs * mean_abs).clamp_min(0.0).to(torch.float32)


def noisy_gradient_maps(
    forward_func: ForwardFunc,
    inputs: torch.Tensor,
    target: torch.Tensor | int,
    n_samples: int = 100,
    sigma: float = 0.3,
    batch_size: int = DEFAULT_BATCH_SIZE,
    random_state: int | None = None,
    score: str = "logit",
) -> dict[str, torch.Tensor]:
    """SmoothGrad-squared and VarGrad from ONE set of noisy gradients (half the passes).

    Returns ``{"smoothgrad": ..., "vargrad": ...}``, each identical to what
    :class:`SmoothGradSquared` / :class:`VarGrad` with the same arguments return.
    """
    tunnel = _NoiseTunnel(forward_func, n_samples, sigma, batch_size, random_state, score)
    mean_abs, mean_sq = tunnel.moments(inputs, target)
    return {
        "smoothgrad": mean_sq.to(torch.float32),
        "vargrad": (mean_sq - mean_abs * mean_abs).clamp_min(0.0).to(torch.float32),
    }


class InputXGradient:
    """Input x Gradient: ``x * df/dx(x)`` with f the target class's probability.

    Parameters
    ----------
    forward_func : callable
        (N, *shape) -> class probabilities (N, n_classes).
    batch_size : int, default 200
        Inputs per forward/backward pass.
    random_state : ignored
        Accepted so that every registered method has the same constructor; the method is
        deterministic.
    """

    name = "inputxgrad"

    def __init__(
        self,
        forward_func: ForwardFunc,
        batch_size: int = DEFAULT_BATCH_SIZE,
        random_state: int | None = None,
    ):
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.forward_func = forward_func
        self.batch_size = int(batch_size)
        self.random_state = random_state

    def params(self) -> dict:
        return {"batch_size": self.batch_size, "f": "softmax probability of the target class"}

    def attribute(self, inputs: torch.Tensor, target: torch.Tensor | int) -> torch.Tensor:
        inputs = check_inputs(inputs)
        target = as_target(target, inputs.shape[0])
        target = check_target(target, self.forward_func, inputs).to(inputs.device)
        out = []
        for b in range(0, inputs.shape[0], self.batch_size):
            x = inputs[b : b + self.batch_size]
            grad = target_gradients(self.forward_func, x, target[b : b + self.batch_size])
            out.append((x.detach() * grad).to(torch.float32))
        return torch.cat(out)
