"""LIME's neighbourhood on the data manifold: neighbours drawn from real inputs (eq. 1-2).

The paper: "we first sample from our dataset according to a Gaussian probability
distribution pi_x0 centered around x0.  Repeatedly drawing x' from pi_x0 and applying f(.)
yield a new dataset X' = {(x', f(x'))}" (docs/stimuli-protocol.md, part two, argues the
reading).  :class:`DataNeighbourhood` holds a *pool* of real inputs (the training split)
and the model's outputs on it, computed once; for an input ``x0`` it

1. computes the squared distances ``D_j^2 = ||p_j - x0||^2`` to every pool input (one
   matrix product for a batch of inputs);
2. gives probability 0 to every pool input identical to ``x0`` (checked exactly), so the
   explained input is never its own neighbour;
3. sets the kernel width ``h(x0)`` so that the kernel ``pi_j = exp(-D_j^2 / h^2)`` has an
   effective sample size ``(sum pi)^2 / sum pi^2`` of ``effective_size`` over the pool
   (Kish's ESS; safeguarded Newton steps in ``log(1/h^2)``);
4. draws ``n`` neighbours i.i.d. with probability ``pi_j / sum pi`` (inverse CDF on the
   input's own seeded uniforms) and returns each distinct neighbour once with its count.

The local model is then fitted on the draws with their counts as weights, which is the
unweighted squared loss over the draws, eq. (2)'s expectation under pi: the kernel enters
once, through the draws.  No forward pass is made per neighbour: ``f(x')`` is a row of the
pool's outputs.  A feature that varies in fewer than ``min_varying`` of an explanation's
distinct neighbours gets no slope (:meth:`DataNeighbourhood.fixed_features`): a slope
identified by one or two real images is a leverage artefact, not a local trend
(docs/stimuli-protocol.md, part two, the amendment).

The width rule, not a fixed ``h``: MNIST's nearest-neighbour distances vary by a factor
of two between images, and a width set by the k-th neighbour's distance is nearly flat in
784 dimensions (the protocol quotes the measurement).
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
import torch

__all__ = ["DataNeighbourhood", "DEFAULT_EFFECTIVE_SIZE", "effective_sample_size"]

#: m, the images a neighbourhood is worth; the stable preset sets its own (the grid rule)
DEFAULT_EFFECTIVE_SIZE = 1000
#: a feature needs to vary in this many distinct neighbours to get a slope (ten
#: observations per estimated coefficient, the rule of docs/stimuli-protocol.md)
DEFAULT_MIN_VARYING = 10
#: squared distances below this are checked exactly for copies of x0 (float32 rounding of
#: ``|x|^2 + |p|^2 - 2 x.p`` is far smaller for inputs of MNIST's scale)
_COPY_CHECK_D2 = 1e-2
#: ESS calibration: |log ESS - log m| below this is close enough (0.2%)
_ESS_TOL = 2e-3
_MAX_NEWTON = 60
#: inputs per distance computation (see DataNeighbourhood._distances): every product
#: streams the whole pool from memory, so larger blocks cost less per input
_DISTANCE_BLOCK = 128
#: the largest Newton step in log(1/h^2) (a factor of e^2 in 1/h^2)
_MAX_STEP = 2.0
#: histogram bins that summarise a row's distances for the width calibration
_BINS = 2048


def effective_sample_size(weights: np.ndarray) -> np.ndarray:
    """Kish's ESS ``(sum w)^2 / sum w^2`` of every row of ``weights`` (any shape (..., P))."""
    w = np.asarray(weights, dtype=np.float64)
    s2 = np.einsum("...j,...j->...", w, w)
    return np.divide(w.sum(-1) ** 2, s2, out=np.zeros(w.shape[:-1]), where=s2 > 0)


def _histograms(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row of ``a`` (B, P), over its values >= 0 (a copy of the input is marked -1):
    (counts, mean value) of ``_BINS`` equal bins from 0 to the row's maximum, as float64
    (B, _BINS)."""
    n_rows = a.shape[0]
    top = a.amax(dim=1).clamp(min=1e-12)
    scale = (_BINS * (1 - 1e-6)) / top
    # bin 0 holds the copies (negative values), bins 1.._BINS the rest
    bins = (a * scale[:, None]).floor_().clamp_(min=-1.0).add_(1.0).long()
    bins += torch.arange(n_rows)[:, None] * (_BINS + 1)
    flat = bins.reshape(-1)
    size = n_rows * (_BINS + 1)
    counts = torch.bincount(flat, minlength=size).double().reshape(n_rows, -1)[:, 1:]
    sums = torch.bincount(flat, weights=a.reshape(-1), minlength=size).double()
    return counts, sums.reshape(n_rows, -1)[:, 1:] / counts.clamp(min=1.0)


def _calibrate(counts: torch.Tensor, centres: torch.Tensor, m: float) -> torch.Tensor:
    """(B,) ``beta = 1 / h^2`` with ESS(exp(-beta * a)) = m, from each row's histogram.

    The ESS depends on a row only through the distribution of its values, so each row
    is summarised once by a histogram of ``_BINS`` equal bins (count and mean value
    per bin; the bin mean makes the error second order in the bin width, about 1e-4
    of the ESS), and the root is found on the histograms: Newton steps on
    ``g(t) = log ESS - log m`` in ``t = log beta`` (g decreases in t), kept inside a
    bracket that every step narrows, bisection where Newton would leave it.
    ``d g / d t = 2 beta (sum a w^2 / sum w^2 - sum a w / sum w)``.
    """
    n_rows = counts.shape[0]
    log_m = math.log(m)
    # weights relative to the nearest non-empty bin (ESS does not change), so that no
    # width underflows every weight
    occupied = counts > 0
    centres = centres - torch.where(occupied, centres, math.inf).amin(1, keepdim=True)
    # start where the bin of the m-th nearest input has weight 1/e
    nth = torch.searchsorted(counts.cumsum(1), torch.full((n_rows, 1), m, dtype=counts.dtype))
    t = -torch.log(centres.gather(1, nth.clamp(max=_BINS - 1))[:, 0].clamp(min=1e-12))
    lo = torch.full((n_rows,), -math.inf, dtype=torch.float64)  # g(lo) > 0
    hi = torch.full((n_rows,), math.inf, dtype=torch.float64)  # g(hi) < 0
    for _ in range(_MAX_NEWTON):
        beta = torch.exp(t)
        w = counts * torch.exp(-centres * beta[:, None])  # per bin: count * weight
        w2 = counts * torch.exp(-2 * centres * beta[:, None])
        s1, s2 = w.sum(1), w2.sum(1)
        g = 2 * torch.log(s1) - torch.log(s2) - log_m
        converged = g.abs() < _ESS_TOL
        if bool(converged.all()):
            return beta
        lo = torch.where(g > 0, torch.maximum(lo, t), lo)
        hi = torch.where(g < 0, torch.minimum(hi, t), hi)
        slope = 2 * beta * ((centres * w2).sum(1) / s2 - (centres * w).sum(1) / s1)
        step = -g / torch.where(slope < 0, slope, torch.full_like(slope, -1.0))
        newton = t + step.clamp(-_MAX_STEP, _MAX_STEP)
        inside = (newton > lo) & (newton < hi)
        bracketed = torch.isfinite(lo) & torch.isfinite(hi)
        outward = torch.where(torch.isfinite(lo), t + _MAX_STEP, t - _MAX_STEP)
        fallback = torch.where(bracketed, (lo + hi) / 2, outward)
        t = torch.where(converged, t, torch.where(inside, newton, fallback))
    raise RuntimeError("the kernel width calibration did not converge")


def _varying(rows: torch.Tensor, min_varying: int) -> torch.Tensor:
    """(d,) bool: the columns of ``rows`` (n, d) whose variation rests on at least
    ``min_varying`` rows (participation ratio of the squared deviations; see
    DataNeighbourhood.fixed_features)."""
    dev = rows - rows.mean(dim=0)
    e = dev * dev
    s1, s2 = e.sum(dim=0), (e * e).sum(dim=0)
    return (s2 > 0) & (s1 * s1 >= max(int(min_varying), 1) * s2)


class DataNeighbourhood:
    """Neighbours of an input drawn from a pool of real inputs with a Gaussian kernel.

    Parameters
    ----------
    pool:
        (P, *shape) the pool's inputs in the explainer's input space (pixels in [0, 1],
        conv features, ...): a float tensor or array.
    outputs:
        (P, C) the model's class probabilities on the pool (computed once by the caller).
    effective_size:
        m: the kernel width of every input is set so that the kernel's effective sample
        size over the pool is m (default 1000).  Must be below the pool's size.
    min_varying:
        a feature is a candidate of the local model only if its variation over the
        explanation's distinct neighbours rests on at least this many of them (default
        10; :meth:`fixed_features`); 0 or 1 keeps every feature that varies at all.
    digest:
        a string identifying the pool's content (recorded in manifests and cache keys);
        default: a blake2b digest of the pool's bytes.
    """

    kind = "data"

    def __init__(
        self,
        pool,
        outputs,
        *,
        effective_size: float = DEFAULT_EFFECTIVE_SIZE,
        min_varying: int = DEFAULT_MIN_VARYING,
        digest: str | None = None,
    ):
        pool_t = torch.as_tensor(pool).detach().to("cpu", torch.float32)
        if pool_t.ndim < 2 or pool_t.shape[0] < 2:
            raise ValueError("the neighbour pool must be (P, *shape) with at least 2 inputs")
        outputs = np.asarray(outputs, dtype=np.float64)
        if outputs.ndim != 2 or outputs.shape[0] != pool_t.shape[0]:
            raise ValueError(
                f"outputs must be (P, C) for the {pool_t.shape[0]} pool inputs, "
                f"got shape {outputs.shape}"
            )
        if not np.all(np.isfinite(outputs)):
            raise ValueError("the model's outputs on the pool contain non-finite values")
        m = float(effective_size)
        if not (math.isfinite(m) and m >= 1):
            raise ValueError(f"effective_size must be a number >= 1, got {effective_size}")
        if m >= pool_t.shape[0]:
            raise ValueError(
                f"effective_size {m:g} needs a pool of more than {m:g} inputs, "
                f"the pool has {pool_t.shape[0]}"
            )
        self.pool = pool_t.contiguous()
        self.flat = self.pool.reshape(self.pool.shape[0], -1)
        self.sq_norms = torch.einsum("ij,ij->i", self.flat, self.flat)
        if int(min_varying) < 0:
            raise ValueError(f"min_varying must be >= 0, got {min_varying}")
        self.outputs = outputs
        self.effective_size = m
        self.min_varying = int(min_varying)
        self._digest = digest

    @property
    def size(self) -> int:
        return int(self.pool.shape[0])

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.pool.shape[1:])

    @property
    def digest(self) -> str:
        if self._digest is None:
            h = hashlib.blake2b(digest_size=16)
            h.update(self.pool.numpy().tobytes())
            h.update(self.outputs.tobytes())
            self._digest = h.hexdigest()
        return self._digest

    def params(self) -> dict:
        """What determines a neighbourhood (manifests and cache keys)."""
        m = self.effective_size
        return {
            "neighbourhood": self.kind,
            "effective_size": int(m) if float(m).is_integer() else m,
            "min_varying": self.min_varying,
            "pool_size": self.size,
            "pool_digest": self.digest,
        }

    def fixed_features(self, z: np.ndarray) -> np.ndarray:
        """(d,) bool: the columns of one explanation's design ``z`` (distinct neighbours x
        features) whose variation rests on fewer than ``min_varying`` neighbours.

        The number of neighbours a feature's variation rests on is the participation ratio
        of its squared deviations, ``(sum_i e_i)^2 / sum_i e_i^2`` with
        ``e_i = (z_i - mean z)^2``: about k when the feature takes one value in k of n
        neighbours and another in the rest (exactly ``n p (1 - p) / ((1 - p)^3 + p^3)``,
        p = k / n), about n/3 for Gaussian-like variation over n, and near 1 when one
        outlying neighbour carries it (a leverage point).  Two sums per column, in
        float32 (a count of values off the median would cost a sort per column).
        """
        z = torch.from_numpy(np.ascontiguousarray(z, dtype=np.float32))
        return ~_varying(z, self.min_varying).numpy()

    def candidates(self, idx: np.ndarray, x0: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """One explanation's design on its candidate features: ``(z, columns)`` with
        ``z = pool[idx] - x0`` restricted to the features that are not
        :meth:`fixed_features` (the same rule, without building the full design)."""
        rows = torch.index_select(self.flat, 0, torch.from_numpy(np.asarray(idx, np.int64)))
        columns = torch.nonzero(_varying(rows, self.min_varying))[:, 0]
        z = rows.index_select(1, columns) - x0.reshape(-1)[columns]
        return z.numpy(), columns.numpy()

    # ------------------------------------------------------------------ the kernel

    def squared_distances(self, inputs: torch.Tensor) -> torch.Tensor:
        """(B, P) ``||p_j - x0||^2`` for a batch of inputs (float32, one matrix product)."""
        return self._distances(inputs)[0]

    def _distances(self, inputs) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.as_tensor(inputs).detach().to("cpu", torch.float32).reshape(inputs.shape[0], -1)
        if x.shape[1] != self.flat.shape[1]:
            raise ValueError(
                f"inputs have {x.shape[1]} values each, the pool's inputs {self.flat.shape[1]}"
            )
        # Matrix products of one fixed shape: a row's float32 rounding then depends on
        # that row alone, not on the other inputs of its batch (measured bit-identical),
        # so an explanation depends only on its input, target and seed.
        # (pool x block) is ~30% faster here than (block x pool^T), with the same property.
        dots = torch.empty((x.shape[0], self.size))
        block = torch.zeros((_DISTANCE_BLOCK, x.shape[1]))
        for start in range(0, x.shape[0], _DISTANCE_BLOCK):
            rows = x[start : start + _DISTANCE_BLOCK]
            block.zero_()
            block[: rows.shape[0]] = rows
            dots[start : start + rows.shape[0]] = torch.mm(self.flat, block.T).T[: rows.shape[0]]
        d2 = self.sq_norms[None, :] - 2.0 * dots
        d2 += torch.einsum("ij,ij->i", x, x)[:, None]
        return d2.clamp_(min=0.0), x

    def probabilities(self, inputs: torch.Tensor) -> np.ndarray:
        """(B, P) float64 draw probabilities of every pool input for each of ``inputs``.

        Copies of an input get 0; each row sums to 1 and has an ESS of ``effective_size``
        (up to the calibration's tolerance).
        """
        return self.probabilities_for(inputs, (self.effective_size,))[0]

    def probabilities_for(self, inputs: torch.Tensor, sizes) -> list[np.ndarray]:
        """:meth:`probabilities` for several effective sizes from one distance computation
        (the width study's grid)."""
        d2, x = self._distances(inputs)
        rows, cols = self._copies(d2, x)
        # shift by the nearest non-copy so that the kernel's largest weight is 1; copies
        # are then marked -1 (a squared distance is never negative)
        d2[rows, cols] = float("inf")
        a = d2.sub_(d2.min(dim=1, keepdim=True).values)
        a[rows, cols] = -1.0
        usable = a.shape[1] - int(torch.bincount(rows, minlength=a.shape[0]).max())
        hist = _histograms(a)
        out = []
        for m in sizes:
            if usable <= m:
                raise ValueError(
                    f"an input has at most {usable} pool inputs that are not copies of it, "
                    f"fewer than effective_size {m:g}"
                )
            beta = _calibrate(*hist, float(m))
            w = torch.exp(a * -beta.float()[:, None]).double()
            w[rows, cols] = 0.0  # the input is never its own neighbour
            w /= w.sum(dim=1, keepdim=True)
            out.append(w.numpy())
        return out

    def _copies(self, d2: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(rows, columns) of the pool inputs exactly equal to an input (checked in full
        precision among the nearly equal ones)."""
        rows, cols = torch.nonzero(d2 < _COPY_CHECK_D2, as_tuple=True)
        if rows.numel():
            same = (self.flat[cols] == x[rows]).all(dim=1)
            rows, cols = rows[same], cols[same]
        return rows, cols

    # ------------------------------------------------------------------ drawing

    def draw(
        self, probabilities: np.ndarray, seed: int, n: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """``n`` i.i.d. draws from one row of :meth:`probabilities`, seeded by ``seed``:
        the inverse of the cumulative probabilities at the seed's uniforms.

        Returns (distinct pool indices in increasing order, their counts as float64).
        """
        return self.draw_many(np.asarray(probabilities)[None, :], [seed], n)[0]

    def neighbours(
        self, inputs: torch.Tensor, seeds, n: int
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """For each input: (distinct neighbour indices, counts) of ``n`` seeded draws."""
        return self.draw_many(self.probabilities(inputs), seeds, n)

    def draw_many(self, probabilities: np.ndarray, seeds, n: int) -> list:
        """:meth:`draw` for every row of ``probabilities`` with its seed: the cumulative
        sums and the searches of all rows at once (the same draws as row by row)."""
        p = torch.from_numpy(np.asarray(probabilities, dtype=np.float64))
        cdf = torch.cumsum(p, dim=1)
        u = np.stack([np.random.default_rng(int(s)).random(int(n)) for s in seeds])
        idx = torch.searchsorted(cdf, torch.from_numpy(u) * cdf[:, -1:], right=True)
        # u * total can round up to the total: the last input with probability > 0
        last = p.shape[1] - 1 - torch.argmax((p.flip(1) > 0).to(torch.uint8), dim=1)
        idx = torch.minimum(idx, last[:, None]).numpy()
        out = []
        for row in idx:
            chosen, counts = np.unique(row, return_counts=True)
            out.append((chosen, counts.astype(np.float64)))
        return out
