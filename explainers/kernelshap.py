"""KernelSHAP (Lundberg & Lee 2017): Shapley values by sampled, weighted least squares.

The game for input x, target class t and baseline b (features grouped into M groups)::

    v(S) = f(b + z_S * (x - b))[t],   z_S in {0, 1}^M the indicator of coalition S

(the features outside S are replaced by the baseline: SHAP's "interventional" value with a
single reference).  The Shapley values are the solution of the weighted regression
``min_phi sum_S pi(S) (v(S) - v(0) - z_S . phi)^2`` over all proper coalitions, with the
Shapley kernel ``pi(S) = (M - 1) / (C(M, |S|) |S| (M - |S|))``, subject to the efficiency
constraint ``sum_i phi_i = v(all) - v(0) = f(x) - f(b)``.

As in Lundberg & Lee's implementation the constraint is enforced exactly by eliminating
the last variable, ``phi_M = Delta - sum_{i<M} phi_i``, and solving the unconstrained
regression ``v(S) - v(0) - z_M Delta = sum_{i<M} (z_i - z_M) phi_i``.

Players: only the groups that differ from the baseline somewhere in this input ("varying"
groups, as in the shap library) take part; the others get exactly 0 (Dummy property).  On
MNIST with baseline 0 that drops the empty background blocks, typically two thirds of
them, which makes the same coalition budget go much further.  M below is the number of
varying groups of the input.

Coalitions:

* if ``n_samples >= 2^M - 2`` every proper coalition is enumerated and weighted by
  pi(S): the result is the exact Shapley value (checked against the definition in
  tests/test_baselines.py);
* otherwise ``n_samples`` coalitions are sampled: a size s in 1..M-1 with probability
  proportional to the kernel mass of that size, ``(M-1) / (s (M-s))``, then a uniformly
  random subset of that size, each followed by its complement (paired sampling, which
  halves the variance); sampled coalitions then carry equal weight, which is the Monte
  Carlo estimate of the kernel-weighted regression.  Every input gets its own coalitions,
  drawn from a generator seeded by ``(random_state, position in the call)``.

Features: the feature shape is split into groups by ``superpixel`` (s x s blocks over the
last two dimensions, shared by all leading channels; blocks of s consecutive elements for
1-D features) or by an explicit integer ``feature_mask`` with ids 0..M-1.  As in Captum,
every element of a group receives the group's Shapley value (the map is piecewise
constant; ``explain`` returns the (N, M) group values).

All coalitions of all inputs are evaluated in forward passes of ``batch_size`` inputs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .base import ForwardFunc, as_target, check_inputs, check_target
from .gradients import input_seeds

__all__ = [
    "DEFAULT_BASELINE",
    "DEFAULT_SUPERPIXEL",
    "KernelShap",
    "ShapResult",
    "superpixel_mask",
    "auto_n_samples",
    "shapley_kernel",
]

#: value of a removed feature: 0 = background (no ink) in MNIST's [0, 1] pixel units, and
#: 0 = "off" for post-ReLU conv features.  Captum's default too.  Groups whose elements
#: all equal the baseline get exactly 0 (the Dummy property).
DEFAULT_BASELINE = 0.0
#: 2 x 2 pixel groups: 196 players on a 28 x 28 image
DEFAULT_SUPERPIXEL = 2


def superpixel_mask(feature_shape: tuple[int, ...], size: int) -> torch.Tensor:
    """Group ids (long, ``feature_shape``): s x s blocks over the last two dimensions.

    Leading dimensions (channels) share their block's id.  1-D shapes get blocks of
    ``size`` consecutive elements.  Ids run row-major over the blocks, 0..M-1.
    """
    size = int(size)
    if size < 1:
        raise ValueError(f"superpixel size must be >= 1, got {size}")
    if len(feature_shape) == 0:
        raise ValueError("inputs need at least one feature dimension")
    if len(feature_shape) == 1:
        return torch.arange(feature_shape[0]) // size
    h, w = feature_shape[-2:]
    bw = math.ceil(w / size)
    rows = torch.arange(h) // size
    cols = torch.arange(w) // size
    ids = rows[:, None] * bw + cols[None, :]
    return ids.expand(*feature_shape).clone()


def auto_n_samples(n_features: int) -> int:
    """The shap library's default budget, ``2 M + 2048``."""
    return 2 * int(n_features) + 2048


def shapley_kernel(m: int, sizes: torch.Tensor) -> torch.Tensor:
    """pi(S) = (M - 1) / (C(M, |S|) |S| (M - |S|)) for proper coalition sizes (float64)."""
    sizes = sizes.to(torch.float64)
    log_binom = (
        math.lgamma(m + 1) - torch.lgamma(sizes + 1) - torch.lgamma(m - sizes + 1)
    )
    return (m - 1) / (torch.exp(log_binom) * sizes * (m - sizes))


@dataclass
class ShapResult:
    """Group-level KernelSHAP output for a batch."""

    values: torch.Tensor  # (N, M) Shapley value of each group, float64
    f_x: torch.Tensor  # (N,) f(x)[t]
    f_baseline: torch.Tensor  # (N,) f(b)[t]
    mask: torch.Tensor  # group id per element, feature_shape
    exact: bool  # all coalitions enumerated for every input
    n_coalitions: list[int]  # proper coalitions evaluated, per input


class KernelShap:
    """KernelSHAP with grouped features, exact efficiency and batched evaluation.

    Parameters
    ----------
    forward_func : callable
        (N, *shape) -> class probabilities (N, n_classes); f is the target's probability.
    n_samples : int or None, default None
        Coalitions per input; None = ``2 M + 2048`` (the shap library's default), M the
        number of varying groups of the input.  When it reaches ``2^M - 2`` all
        coalitions are enumerated (exact Shapley values); otherwise it is rounded down to
        an even number (coalitions come in complementary pairs).
    baseline : float or tensor broadcastable to the feature shape, default 0.0
        Value of removed features (0 = MNIST background; pass 0.1307, the training mean
        pixel, to remove towards the mean as Hooker et al.'s KAR does).
    superpixel : int, default 2
        Side of the square feature groups (1 = every element is a player).
    feature_mask : long tensor of the feature shape, optional
        Explicit group ids 0..M-1; overrides ``superpixel``.
    batch_size : int, default 500
        Model inputs per forward pass.
    random_state : int or None
        Seed of the coalition sampling.
    """

    name = "shap"

    def __init__(
        self,
        forward_func: ForwardFunc,
        n_samples: int | None = None,
        baseline: float | torch.Tensor = DEFAULT_BASELINE,
        superpixel: int = DEFAULT_SUPERPIXEL,
        feature_mask: torch.Tensor | None = None,
        batch_size: int = 500,
        random_state: int | None = None,
    ):
        if n_samples is not None and int(n_samples) < 2:
            raise ValueError(f"n_samples must be >= 2, got {n_samples}")
        if int(superpixel) < 1:
            raise ValueError(f"superpixel must be >= 1, got {superpixel}")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.forward_func = forward_func
        self.n_samples = None if n_samples is None else int(n_samples)
        self.baseline = baseline
        self.superpixel = int(superpixel)
        self.feature_mask = feature_mask
        self.batch_size = int(batch_size)
        self.random_state = random_state

    def params(self) -> dict:
        base = self.baseline
        return {
            "n_samples": self.n_samples if self.n_samples is not None else "2*M+2048",
            "baseline": float(base) if isinstance(base, int | float) else "tensor",
            "superpixel": None if self.feature_mask is not None else self.superpixel,
            "feature_mask": self.feature_mask is not None,
            "sampling": "kernel-proportional sizes, paired complements; exact if 2^M-2 fit",
            "efficiency": "enforced exactly (last variable eliminated)",
            "random_state": self.random_state,
        }

    # ------------------------------------------------------------------ set-up helpers
    def _mask(self, feature_shape: tuple[int, ...], device) -> tuple[torch.Tensor, int]:
        if self.feature_mask is None:
            mask = superpixel_mask(feature_shape, self.superpixel)
        else:
            mask = torch.as_tensor(self.feature_mask, dtype=torch.long)
            if tuple(mask.shape) != feature_shape:
                raise ValueError(
                    f"feature_mask has shape {tuple(mask.shape)}, inputs have {feature_shape}"
                )
        ids = torch.unique(mask)
        m = ids.numel()
        if ids.min() != 0 or ids.max() != m - 1:
            raise ValueError("feature_mask ids must be exactly 0..M-1")
        return mask.to(device), m

    def _baseline(self, feature_shape, like: torch.Tensor) -> torch.Tensor:
        base = torch.as_tensor(self.baseline, dtype=like.dtype, device=like.device)
        try:
            return torch.broadcast_to(base, feature_shape)
        except RuntimeError:
            raise ValueError(
                f"baseline of shape {tuple(base.shape)} does not broadcast to {feature_shape}"
            ) from None

    def _sampled_coalitions(self, m: int, n_pairs: int, seed: int, device) -> torch.Tensor:
        """2 * n_pairs coalitions (bool, (2 n_pairs, M)): kernel-sized subsets + complements."""
        gen = torch.Generator(device="cpu").manual_seed(seed)
        sizes = torch.arange(1, m, dtype=torch.float64)
        size_prob = (m - 1) / (sizes * (m - sizes))
        drawn = torch.multinomial(size_prob, n_pairs, replacement=True, generator=gen) + 1
        ranks = torch.rand((n_pairs, m), generator=gen).argsort(dim=1).argsort(dim=1)
        z = ranks < drawn[:, None]
        return torch.cat([z, ~z]).to(device)

    @staticmethod
    def _all_coalitions(m: int, device) -> torch.Tensor:
        codes = torch.arange(1, 2**m - 1, device=device)
        bits = 2 ** torch.arange(m, device=device)
        return (codes[:, None] & bits[None, :]) > 0

    # ------------------------------------------------------------------ evaluation
    def _values(self, x, base, mask, target, owner, z) -> torch.Tensor:
        """v(S) for coalition rows z (R, M) of inputs ``owner`` (R,): (R,) float64."""
        shape = tuple(x.shape[1:])
        delta = (x - base).reshape(x.shape[0], -1)
        element_group = mask.reshape(-1)
        flat_base = base.reshape(-1)
        out = torch.empty(z.shape[0], dtype=torch.float64, device=x.device)
        with torch.no_grad():
            for start in range(0, z.shape[0], self.batch_size):
                stop = start + self.batch_size
                i = owner[start:stop]
                keep = z[start:stop][:, element_group].to(x.dtype)  # (B, F)
                batch = (flat_base + keep * delta[i]).reshape(-1, *shape)
                probs = self.forward_func(batch)
                out[start:stop] = probs.gather(1, target[i].view(-1, 1)).squeeze(1).double()
        return out

    def _coalitions(self, m: int, seed: int, device) -> tuple[torch.Tensor, torch.Tensor, bool]:
        """Coalitions (S, m) over m players, their regression weights (S,), exact or not."""
        budget = auto_n_samples(m) if self.n_samples is None else self.n_samples
        if budget >= 2**m - 2:
            z = self._all_coalitions(m, device)
            return z, shapley_kernel(m, z.sum(1)).to(device), True
        z = self._sampled_coalitions(m, max(1, budget // 2), seed, device)
        return z, torch.ones(z.shape[0], dtype=torch.float64, device=device), False

    def explain(self, inputs: torch.Tensor, target: torch.Tensor | int) -> ShapResult:
        """Group-level Shapley values (N, M) with f(x), f(b) and the coalition counts.

        Only the groups that differ from the baseline somewhere ("varying" groups, as in
        the shap library) are players; the others get exactly 0 (Dummy), and the
        coalition budget and the exact-enumeration test refer to the varying groups.
        """
        inputs = check_inputs(inputs)
        n, shape = inputs.shape[0], tuple(inputs.shape[1:])
        device = inputs.device
        target = check_target(as_target(target, n), self.forward_func, inputs).to(device)
        mask, m = self._mask(shape, device)
        base = self._baseline(shape, inputs)
        x = inputs.detach()
        differs = (x != base).reshape(n, -1).to(torch.float32)
        group_hits = torch.zeros((n, m), device=device).index_add_(1, mask.reshape(-1), differs)
        varying = group_hits > 0  # (N, M)
        seeds = input_seeds(self.random_state, n)

        # rows: per input, the full and the empty coalition, then the sampled ones
        rows, owners, plans = [], [], []
        for i in range(n):
            players = torch.nonzero(varying[i]).flatten()
            full = torch.zeros((2, m), dtype=torch.bool, device=device)
            full[0] = True
            if players.numel() >= 2:
                z_small, w, exact = self._coalitions(players.numel(), seeds[i], device)
                z = torch.zeros((z_small.shape[0], m), dtype=torch.bool, device=device)
                z[:, players] = z_small
            else:
                z_small, w, exact = None, None, True
                z = torch.zeros((0, m), dtype=torch.bool, device=device)
            rows.append(torch.cat([full, z]))
            owners.append(torch.full((2 + z.shape[0],), i, device=device))
            plans.append((players, z_small, w, exact))
        v_all = self._values(x, base, mask, target, torch.cat(owners), torch.cat(rows))

        values = torch.zeros((n, m), dtype=torch.float64, device=device)
        f_x = torch.empty(n, dtype=torch.float64, device=device)
        f_b = torch.empty_like(f_x)
        counts, all_exact, offset = [], True, 0
        for i, (players, z_small, w, exact) in enumerate(plans):
            size = rows[i].shape[0]
            v = v_all[offset : offset + size]
            offset += size
            f_x[i], f_b[i] = v[0], v[1]
            total = v[0] - v[1]
            counts.append(size - 2)
            all_exact &= exact
            if players.numel() == 1:
                values[i, players] = total
            if z_small is None:
                continue
            # eliminate phi_last:  v - v0 - z_last * total = sum_{j<last} (z_j - z_last) phi_j
            zf = z_small.to(torch.float64)
            design = zf[:, :-1] - zf[:, -1:]
            response = v[2:] - v[1] - zf[:, -1] * total
            head = _weighted_lstsq(design, response, w)
            values[i, players] = torch.cat([head, (total - head.sum()).view(1)])
        return ShapResult(values, f_x, f_b, mask, all_exact, counts)

    def attribute(self, inputs: torch.Tensor, target: torch.Tensor | int) -> torch.Tensor:
        result = self.explain(inputs, target)
        # every element gets its group's value (Captum's convention for feature masks)
        per_element = result.values[:, result.mask.reshape(-1)]
        return per_element.reshape(inputs.shape).to(torch.float32)


def _weighted_lstsq(x: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """argmin_b sum_k w_k (y_k - x_k b)^2 via the normal equations, float64 on the CPU.

    The (m-1) x (m-1) Gram matrix is formed on the inputs' device and solved on the CPU
    with LAPACK's SVD-based gelsd, which returns the minimum-norm solution when too few
    coalitions make the system rank-deficient.
    """
    xw = x * w[:, None]
    gram = (xw.T @ x).cpu()
    rhs = (xw.T @ y[:, None]).cpu()
    sol = torch.linalg.lstsq(gram, rhs, driver="gelsd").solution
    return sol.squeeze(-1).to(x.device)

