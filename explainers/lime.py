"""Local LIME, the NormLIME paper's variant (its eq. 1-2).

For each input ``x0`` (any feature shape) and the label ``y`` to explain, the samples
``x'`` come from one of two neighbourhoods (docs/stimuli-protocol.md, part two, says which
reading of the paper's eq. 1-2 each is):

* ``neighbourhood=DataNeighbourhood(...)`` (the paper's text: "sample from our dataset"):
  ``n_samples`` draws from a pool of real inputs with probability proportional to a
  Gaussian kernel around ``x0`` (``explainers.neighbourhood``); ``f(x')`` is a row of the
  model's outputs on the pool, computed once; the draws' counts are the sample weights and
  the kernel enters through the draws only.  Steps 1-3 below are replaced by this.
* the Gaussian-noise reading (``neighbourhood=None``):

1. draw ``n_samples`` points ``x' = clip(x0 + eta)``, ``eta ~ N(0, sigma^2 I)``, in feature
   space (pixels for images; clipping keeps them valid, e.g. in [0, 1]);
2. evaluate ``f(x')`` = the probability of ``y`` in large batches (one forward pass per batch
   of samples, never one per sample);
3. weight every sample by its proximity ``pi = exp(-D(x0, x')^2 / kernel_width^2)`` with
   ``D`` the Euclidean distance;

and then, for both:

4. select ``K`` features with the LASSO: the regularisation path (LARS with the lasso
   modification, as sklearn's ``lars_path(method="lasso")``) is followed until ``K``
   features are active -- for a batch of inputs at once (``explainers.lars``,
   ``explainers.local_fit``);
5. fit weighted least squares (with an intercept) on those ``K`` features only.

The explanation is ``w`` with at most ``K`` non-zeros, in units of "change of the probability
per unit change of the feature"; the fit's weighted ``R^2`` comes with it.

Design choices, all overridable (the defaults of the ``precompute`` presets are set by the
stability study in ``explainers.stability``):

* the regression is on the perturbation ``x' - x0`` actually applied (after clipping), so the
  intercept estimates ``f(x0)`` and ``w`` is a local slope;
* LASSO selection runs on weighted-centred columns scaled to unit norm, so a feature's
  chance of selection depends on how much of ``f``'s variation it explains, not on how much
  clipping shrank its noise (background pixels at 0 only move upwards);
* ``kernel_width=None`` means ``0.75 * sqrt(d) * sigma``: LIME's tabular default
  ``0.75 * sqrt(d)`` measured in units of the sampling noise, which is how LIME's tabular
  explainer scales its features.  In high dimension Gaussian samples all lie at nearly
  the same distance from ``x0``, so the kernel is close to uniform there;
* noise is drawn on the CPU from a per-input generator, so an input's explanation depends
  only on (input, target, parameters, its seed) -- not on the device, the batch it came
  in, or the order of inputs.  That is what makes the on-disk cache of
  ``explainers.cache`` sound.
"""

from __future__ import annotations

import copy
import ctypes
import functools
import math
import time
import warnings
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import torch
from threadpoolctl import ThreadpoolController

from . import seeds
from .base import ForwardFunc, as_target, check_inputs, check_target
from .features import describe_features, features_digest
from .local_fit import (
    fit_local_model,
    fit_local_models,
    fit_local_models_batch,
    fit_local_models_columns,
)
from .neighbourhood import DataNeighbourhood

__all__ = [
    "LimeResult",
    "LocalLime",
    "fit_local_model",
    "fit_local_models",
    "inference_forward",
    "per_input_seeds",
    "retain_freed_memory",
]

#: defaults of a single sparse local explanation: 1,000 samples as in the issue's
#: description of the paper's procedure, the noise level the stability study found best
#: (docs/explainers-lime.md), and K=100.  Class-level maps need more (the ``stable``
#: preset of ``normlime precompute`` uses 2,000 samples and all 784 pixels).
DEFAULT_N_SAMPLES = 1000
DEFAULT_SIGMA = 0.5
DEFAULT_N_FEATURES = 100
#: the forward-pass batch size measured fastest for the paper's CNN on CPU (benchmarks/)
DEFAULT_BATCH_SIZE = 200
#: local fits whose LASSO paths run together (measured in benchmarks/explainers.py)
DEFAULT_FIT_BATCH_SIZE = 16
#: inputs whose data-neighbourhood kernels come from one pass over the pool
#: (explainers.neighbourhood: the pass streams the pool; its products have a fixed shape)
KERNEL_BLOCK = 128


@dataclass
class LimeResult:
    """Local explanations of ``N`` inputs with ``d`` features each.

    ``weights`` (N, d) float32 with at most K non-zeros per row; ``intercept`` (N,) the fitted
    ``f`` at zero perturbation; ``r2`` (N,) weighted R^2 of the K-feature fit (0 when
    ``f`` did not vary over the samples); ``prob`` (N,) ``f(x0)`` for the explained label;
    ``seeds`` the per-input seeds that drew the noise.
    """

    weights: np.ndarray
    intercept: np.ndarray
    r2: np.ndarray
    prob: np.ndarray
    seeds: np.ndarray
    #: seconds spent drawing samples (noise and forward passes, or neighbours from data)
    #: and fitting the local models, when they ran one after the other (``n_jobs=0``)
    timings: dict = field(default_factory=dict)


#: n independent child seeds of ``random_state`` (explainers.seeds.spawned)
per_input_seeds = seeds.spawned


def inference_forward(
    model: torch.nn.Module,
    *,
    channels_last: bool = True,
    dtype: torch.dtype | None = None,
    float64_softmax: bool = True,
    compile: bool = False,
    compile_batch_size: int | None = None,
) -> ForwardFunc:
    """A fast forward function for explainers that only need outputs (no gradients).

    Runs on a private copy of the model (the caller's model is left as it was) under
    ``torch.inference_mode``, with 4-D inputs in channels-last layout, which lets oneDNN
    pick its fastest convolutions on CPU.  ``compile=True`` additionally compiles the
    network with ``torch.compile`` and inductor's weight freezing (about 20% faster here
    after ~10 s of compilation; if compilation fails, e.g. without a C++ compiler, the
    eager path is used).  The compiled graph is specialised to one batch shape, and each
    new shape would cost another compilation, so with ``compile_batch_size`` only batches
    of exactly that size (LIME's sample batches) take the compiled path and all others
    (the images themselves, a remainder) run eager (max |p difference| 0 in
    benchmarks/explainers.py).
    ``dtype=torch.bfloat16`` evaluates under bfloat16 autocast: 1.44x faster forward
    passes on this AVX-512-bf16 CPU, but the explanations do not meet the tolerance that
    would allow it (measured on 100 stable-preset explanations: supports overlap by a
    median Jaccard of 0.98 but only 49% are identical, and NormLIME class maps correlate
    down to r = 0.987 against the required 0.999), so nothing uses it by default.  With
    ``float64_softmax`` (and a model exposing ``logits``, as ``MnistCNN`` does) the softmax
    is taken in float64: the same function f, but a confident model's ``1 - p`` of 1e-9 is
    no longer rounded to 0 in float32, which would leave LIME nothing to fit.  The test
    suite checks that maps from this path equal those of the plain model within a stated
    tolerance; benchmarks/explainers.py measures the speed.
    """
    model = copy.deepcopy(model).eval()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    device_type = next(model.parameters()).device.type
    use_logits = float64_softmax and hasattr(model, "logits")
    net = _Logits(model) if use_logits else model
    compiled = [None]
    if compile:
        compiled[0] = torch.compile(net, dynamic=False, options={"freezing": True})

    def run(x: torch.Tensor) -> torch.Tensor:
        out = None
        if compiled[0] is not None and compile_batch_size in (None, x.shape[0]):
            try:
                out = compiled[0](x)
            except Exception as exc:  # no C++ toolchain, unsupported backend, ...
                warnings.warn(
                    f"torch.compile failed ({type(exc).__name__}); using eager mode",
                    RuntimeWarning,
                    stacklevel=3,
                )
                compiled[0] = None
        if out is None:
            out = net(x)
        return torch.softmax(out.double(), dim=1) if use_logits else out

    def forward(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            if channels_last and x.ndim == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            if dtype is not None and dtype != torch.float32:
                with torch.autocast(device_type=device_type, dtype=dtype):
                    return run(x)
            return run(x)

    return forward


class _Logits(torch.nn.Module):
    """The model's pre-softmax scores as a module (what gets compiled)."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.logits(x)


def retain_freed_memory() -> bool:
    """Make glibc malloc keep freed activation buffers instead of unmapping them.

    By default glibc serves blocks above a (dynamic) threshold with ``mmap`` and returns
    them on ``free``, so every forward pass page-faults its activations in afresh (a
    batch of 200 MNIST images needs ~20 MB).  Raising the mmap threshold to its maximum
    (32 MB) and the trim threshold to 512 MB keeps them in the heap: measured 1.6-1.9x
    faster forward passes on this machine, with bit-identical results.  A process-wide
    setting, so only entry points call it (``precompute``, the benchmark); returns False
    where the C library is not glibc.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        return bool(libc.mallopt(m_mmap_threshold, 32 << 20)) and bool(
            libc.mallopt(m_trim_threshold, 512 << 20)
        )
    except (OSError, AttributeError):
        return False


PERTURBATIONS = ("gaussian", "hide")


def _feature_labels(features) -> np.ndarray:
    labels = np.asarray(features)
    if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0:
        raise ValueError("features must be an (H, W) array of labels 0 .. M-1")
    m = int(labels.max()) + 1
    if np.unique(labels).size != m:
        raise ValueError(f"feature labels must use every number 0 .. {m - 1}")
    return labels.astype(np.int64)


@functools.cache
def _blas_controller() -> ThreadpoolController:
    """One inspection of the loaded BLAS libraries per process (``threadpool_limits``
    repeats it on every call: ~1 ms, measurable next to a 50 ms explanation)."""
    return ThreadpoolController()


def _finish(future: Future, progress) -> None:
    done = future.result()  # re-raises a worker's exception here
    if progress is not None:
        progress(done)


class LocalLime:
    """The paper's local LIME explainer (see the module docstring for the procedure).

    Parameters
    ----------
    forward_func:
        batch ``(B, *shape)`` -> class probabilities ``(B, C)``.
    n_samples:
        perturbed samples per explanation (default 1000).
    sigma:
        standard deviation of the Gaussian perturbation, in feature units (default 0.5
        for pixels in [0, 1]: the most stable of 0.1-1.0 in the stability study).
    n_features:
        ``K``, the number of features the LASSO selects (default 100).
    kernel_width:
        proximity kernel width; None means ``0.75 * sqrt(d) * sigma``.
    batch_size:
        samples per forward pass (default 200, measured fastest on CPU for the paper's CNN).
    clip:
        ``(low, high)`` bounds of valid features (either may be None), or None for no
        clipping.  Pixels: ``(0.0, 1.0)``.  ReLU conv features: ``(0.0, None)``.
    features:
        None (one feature per input value), or an int array (H, W) of feature labels
        0 .. M-1 shared by every input (``explainers.features.grid_features``).  Each
        feature's noise is then one draw added to all its pixels and channels, the local
        model has M weights, and ``attribute`` gives every pixel its feature's weight.
    perturbation:
        "gaussian" (default; the paper's noise) or "hide": with ``features``, LIME's own
        image perturbation -- each feature is kept or replaced by ``baseline`` with
        probability 1/2, and the local model is fitted on keep (0) / hidden (-1), so a
        positive weight means "the region's content raises the class's probability".
        Additive noise cannot say that about a saturated colour (brightening pure red
        can only add green and blue), hence this option for RGB images.
    baseline:
        the fill value of hidden features, in pixel units (default 0.5, mid-grey).
    neighbourhood:
        None (default): the Gaussian-noise samples above.  A
        :class:`explainers.neighbourhood.DataNeighbourhood`: ``n_samples`` neighbours drawn
        from its pool of real inputs (the paper's "sample from our dataset"); ``sigma``,
        ``kernel_width`` and ``clip`` then play no part, and ``perturbation="hide"`` is
        refused (it is a neighbourhood of its own).
    n_jobs:
        worker threads for the LASSO/least-squares fits, which then overlap with the
        sampling and forward passes of the next inputs (default 0: everything in the
        calling thread, the faster choice wherever the forward passes keep every core
        busy; ``explainers.precompute.fit_threads`` picks it per device).  Results do not
        depend on it.
    fit_batch_size:
        explanations whose LASSO paths are followed together (``explainers.lars``;
        default 16: larger batches gain little once the per-step cost is amortised).
        Results do not depend on it beyond rounding.
    random_state:
        seed of the noise; every input gets its own child seed (``per_input_seeds``).
    """

    name = "lime"

    def __init__(
        self,
        forward_func: ForwardFunc,
        n_samples: int = DEFAULT_N_SAMPLES,
        sigma: float = DEFAULT_SIGMA,
        n_features: int = DEFAULT_N_FEATURES,
        kernel_width: float | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        clip: tuple[float | None, float | None] | None = (0.0, 1.0),
        n_jobs: int = 0,
        fit_batch_size: int = DEFAULT_FIT_BATCH_SIZE,
        random_state: int | None = None,
        features: np.ndarray | None = None,
        perturbation: str = "gaussian",
        baseline: float = 0.5,
        neighbourhood: DataNeighbourhood | None = None,
    ):
        if not callable(forward_func):
            raise TypeError("forward_func must be callable")
        if int(n_samples) < 2:
            raise ValueError(f"n_samples must be at least 2, got {n_samples}")
        if not (float(sigma) > 0 and math.isfinite(float(sigma))):
            raise ValueError(f"sigma must be a positive number, got {sigma}")
        if int(n_features) < 1:
            raise ValueError(f"n_features must be at least 1, got {n_features}")
        if kernel_width is not None and not float(kernel_width) > 0:
            raise ValueError(f"kernel_width must be positive or None, got {kernel_width}")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if clip is not None and len(clip) != 2:
            raise ValueError(f"clip must be (low, high) or None, got {clip!r}")
        if int(n_jobs) < 0:
            raise ValueError(f"n_jobs must be >= 0, got {n_jobs}")
        if int(fit_batch_size) < 1:
            raise ValueError(f"fit_batch_size must be at least 1, got {fit_batch_size}")
        self.forward_func = forward_func
        self.n_samples = int(n_samples)
        self.sigma = float(sigma)
        self.n_features = int(n_features)
        self.kernel_width = None if kernel_width is None else float(kernel_width)
        self.batch_size = int(batch_size)
        self.clip = None if clip is None else tuple(clip)
        self.n_jobs = int(n_jobs)
        self.fit_batch_size = int(fit_batch_size)
        self.random_state = random_state
        self.features = None if features is None else _feature_labels(features)
        if perturbation not in PERTURBATIONS:
            raise ValueError(
                f"perturbation must be one of {', '.join(PERTURBATIONS)}, got {perturbation!r}"
            )
        if perturbation == "hide" and self.features is None:
            raise ValueError("perturbation='hide' needs features (e.g. a grid of superpixels)")
        self.perturbation = perturbation
        self.baseline = float(baseline)
        if neighbourhood is not None and not isinstance(neighbourhood, DataNeighbourhood):
            raise TypeError("neighbourhood must be None or a DataNeighbourhood")
        if neighbourhood is not None and perturbation == "hide":
            raise ValueError(
                "perturbation='hide' is a neighbourhood of its own: it cannot be combined "
                "with neighbours drawn from data"
            )
        self.neighbourhood = neighbourhood

    def params(self) -> dict:
        """The parameters that determine an explanation (recorded in manifests/cache keys)."""
        if self.neighbourhood is not None:
            return {
                "n_samples": self.n_samples,
                "n_features": self.n_features,
                **self.neighbourhood.params(),
                **(
                    {}
                    if self.features is None
                    else {
                        "features": describe_features(self.features),
                        "features_digest": features_digest(self.features),
                    }
                ),
            }
        return {
            "n_samples": self.n_samples,
            "sigma": self.sigma,
            "n_features": self.n_features,
            "kernel_width": self.kernel_width,
            "clip": None if self.clip is None else list(self.clip),
            **(
                {}
                if self.features is None
                else {
                    "features": describe_features(self.features),
                    "features_digest": features_digest(self.features),
                    "perturbation": self.perturbation,
                    **({"baseline": self.baseline} if self.perturbation == "hide" else {}),
                }
            ),
        }

    def n_dims(self, inputs: torch.Tensor) -> int:
        """The number of interpretable features of ``inputs`` (N, *shape)."""
        nb = self.neighbourhood
        if nb is not None and tuple(inputs.shape[1:]) != nb.input_shape:
            raise ValueError(
                f"inputs are {tuple(inputs.shape[1:])} but the neighbour pool holds "
                f"{nb.input_shape}"
            )
        if self.features is None:
            return int(np.prod(inputs.shape[1:]))
        if tuple(inputs.shape[-2:]) != self.features.shape:
            raise ValueError(
                f"inputs are {tuple(inputs.shape[-2:])} but the feature map is "
                f"{self.features.shape}"
            )
        return int(self.features.max()) + 1

    def width_for(self, n_dims: int) -> float:
        """The kernel width used for inputs with ``n_dims`` features."""
        if self.kernel_width is not None:
            return self.kernel_width
        # hidden/kept features have unit scale: LIME's tabular default 0.75 * sqrt(d)
        scale = 1.0 if self.perturbation == "hide" else self.sigma
        return 0.75 * math.sqrt(n_dims) * scale

    # ------------------------------------------------------------------ sampling

    def _check_clip_range(self, inputs: torch.Tensor) -> None:
        """Inputs outside ``clip`` would be clamped into it before any noise: every sample
        would then differ from x0 by the same offset and the local model would explain
        nothing (R^2 = 0, all-zero weights).  Refuse instead of returning silent zeros."""
        if self.clip is None or self.neighbourhood is not None:
            return
        low, high = self.clip
        lo, hi = float(inputs.min()), float(inputs.max())
        if (low is not None and lo < low - 1e-6) or (high is not None and hi > high + 1e-6):
            raise ValueError(
                f"inputs span [{lo:.3g}, {hi:.3g}], outside LIME's clip range "
                f"[{low}, {high}]: rescale them into it (e.g. pixels in [0, 1]) or pass "
                "clip=None (or the range your inputs live in)"
            )

    def sample(self, x0: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x', z = x' - x0)`` for one input ``x0`` (shape ``(*shape)``), drawn on the CPU."""
        gen = torch.Generator(device="cpu").manual_seed(int(seed))
        x0_cpu = x0.detach().to("cpu", torch.float32)
        if self.perturbation == "hide":
            return self._hide(x0_cpu, gen)
        if self.features is None:
            noise = torch.randn((self.n_samples, *x0_cpu.shape), generator=gen)
        else:
            labels = torch.from_numpy(self.features)
            per_feature = torch.randn((self.n_samples, int(labels.max()) + 1), generator=gen)
            noise = per_feature[:, labels].unsqueeze(1).expand(-1, *x0_cpu.shape).clone()
        xs = x0_cpu.unsqueeze(0) + noise.mul_(self.sigma)
        if self.clip is not None:
            low, high = self.clip
            xs = xs.clamp_(min=low, max=high)
        z = xs - x0_cpu.unsqueeze(0)
        if self.features is not None:
            z = self._feature_means(z)
        return xs, z

    def _hide(self, x0: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        labels = torch.from_numpy(self.features)
        keep = torch.rand((self.n_samples, int(labels.max()) + 1), generator=gen) < 0.5
        mask = keep[:, labels].unsqueeze(1).expand(-1, *x0.shape)
        xs = torch.where(mask, x0.unsqueeze(0), torch.full_like(x0, self.baseline).unsqueeze(0))
        return xs, keep.to(torch.float32) - 1.0

    def _feature_means(self, z: torch.Tensor) -> torch.Tensor:
        """(n, *shape) per-pixel perturbations -> (n, M): each feature's mean applied shift
        (clipping makes it differ from pixel to pixel)."""
        labels = torch.from_numpy(self.features)
        flat = labels.expand(*z.shape[1:]).reshape(-1)
        m = int(labels.max()) + 1
        sums = torch.zeros((z.shape[0], m), dtype=z.dtype).index_add_(
            1, flat, z.reshape(z.shape[0], -1)
        )
        return sums / torch.bincount(flat, minlength=m).to(z.dtype)

    def expand(self, weights: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        """(N, M) feature weights -> (N, *shape) maps: each pixel gets its feature's weight."""
        if self.features is None:
            return weights.reshape(weights.shape[0], *shape)
        per_pixel = weights[:, self.features]  # (N, H, W)
        return np.broadcast_to(per_pixel[:, None], (weights.shape[0], *shape)).copy()

    def model_outputs(self, xs: torch.Tensor, target: int, device) -> np.ndarray:
        """``f(x')`` for the target class, one forward pass per batch of samples."""
        out = np.empty(xs.shape[0], dtype=np.float64)
        with torch.inference_mode():
            for start in range(0, xs.shape[0], self.batch_size):
                chunk = xs[start : start + self.batch_size].to(device, non_blocking=True)
                probs = self.forward_func(chunk)
                out[start : start + chunk.shape[0]] = (
                    probs[:, target].detach().to("cpu", torch.float64).numpy()
                )
        return out

    # ------------------------------------------------------------------ entry points

    def explain(
        self,
        inputs: torch.Tensor,
        target: torch.Tensor | int,
        seeds: Sequence[int] | np.ndarray | None = None,
        progress=None,
    ) -> LimeResult:
        """Local explanations of ``inputs`` (N, *shape) for ``target`` as numpy arrays.

        ``seeds`` (N,) fixes each input's noise; by default they are spawned from
        ``random_state``.  ``progress(k)`` is called after each explanation (progress bars).
        """
        inputs = check_inputs(inputs)
        self._check_clip_range(inputs)
        n = inputs.shape[0]
        with torch.inference_mode():
            probs = self.forward_func(inputs)
        target = check_target(as_target(target, n), None, inputs, n_classes=probs.shape[-1])
        seeds = per_input_seeds(self.random_state, n) if seeds is None else np.asarray(seeds)
        if seeds.shape != (n,):
            raise ValueError(f"seeds must have shape ({n},), got {seeds.shape}")
        d = self.n_dims(inputs)
        width = self.width_for(d)
        weights = np.zeros((n, d), dtype=np.float32)
        intercept = np.zeros(n)
        r2 = np.zeros(n)
        prob = probs.gather(1, target.view(-1, 1).to(probs.device))[:, 0]
        prob = prob.detach().to("cpu", torch.float64).numpy()

        def fit(rows, zs, ys, pis, columns=None) -> int:
            if columns is None:
                fits = fit_local_models_batch(zs, ys, pis, (self.n_features,))
            else:
                fits = fit_local_models_columns(zs, columns, ys, pis, (self.n_features,), d)
            for i, [(w, b, fit_r2)] in zip(rows, fits, strict=True):
                weights[i], intercept[i], r2[i] = w, b, fit_r2
            return len(rows)

        groups = [
            range(s, min(s + self.fit_batch_size, n)) for s in range(0, n, self.fit_batch_size)
        ]
        # The fits are small matrix products: multithreaded BLAS next to a busy torch only
        # adds synchronisation cost (measured 9 ms single-threaded vs 170 ms with two
        # threads), so BLAS runs single-threaded during the fits; torch's own OpenMP
        # threads are not affected.  With n_jobs > 0 the fits of a group run in worker
        # threads while the main thread samples and evaluates the next group.
        timings = {"samples_s": 0.0, "fits_s": 0.0}
        draws = self._draws(inputs, target, seeds, groups, d, width)
        with _blas_controller().limit(limits=1, user_api="blas"):
            if self.n_jobs == 0:
                while True:
                    t0 = time.perf_counter()
                    group = next(draws, None)
                    if group is None:
                        break
                    t1 = time.perf_counter()
                    done = fit(*group)
                    timings["samples_s"] += t1 - t0
                    timings["fits_s"] += time.perf_counter() - t1
                    if progress is not None:
                        progress(done)
            else:
                with ThreadPoolExecutor(max_workers=self.n_jobs) as pool:
                    pending: deque = deque()
                    for group in draws:
                        # bound the samples held in memory to two groups per worker
                        while len(pending) >= 2 * self.n_jobs:
                            _finish(pending.popleft(), progress)
                        pending.append(pool.submit(fit, *group))
                    while pending:
                        _finish(pending.popleft(), progress)
                timings = {}  # the fits overlapped the draws: no split to report
        return LimeResult(
            weights=weights, intercept=intercept, r2=r2, prob=prob, seeds=seeds, timings=timings
        )

    def _draws(self, inputs, target, seeds, groups, d, width):
        """(rows, zs, ys, pis) for every group of rows, in order.

        With neighbours drawn from data, the kernels of up to ``KERNEL_BLOCK`` inputs come
        from one pass over the pool (each pass streams the whole pool from memory)."""
        if self.neighbourhood is None:
            for rows in groups:
                yield (rows, *self._draw_group(inputs, target, seeds, rows, d, width))
            return
        block: list = []
        for rows in [*groups, None]:
            if rows is not None and sum(len(r) for r in block) + len(rows) <= KERNEL_BLOCK:
                block.append(rows)
                continue
            if block:
                first, last = block[0][0], block[-1][-1]
                x0s = inputs[first : last + 1].detach().to("cpu", torch.float32)
                probs = self.neighbourhood.probabilities(x0s)
                for group in block:
                    part = probs[group[0] - first : group[-1] - first + 1]
                    yield (group, *self._draw_data(x0s, first, part, target, seeds, group, d))
            block = [rows] if rows is not None else []

    def _draw_group(self, inputs, target, seeds, rows, d, width) -> tuple[list, list, list]:
        """Perturbations ``z`` (n, d), model outputs ``y`` and sample weights for ``rows``
        (the Gaussian-noise reading)."""
        zs, ys = [], []
        for i in rows:
            xs, z = self.sample(inputs[i], int(seeds[i]))
            zs.append(z.reshape(self.n_samples, d).numpy())
            ys.append(self.model_outputs(xs, int(target[i]), inputs.device))
        pis = [
            np.exp(-np.einsum("ij,ij->i", z, z, dtype=np.float64) / (width * width)) for z in zs
        ]
        return zs, ys, pis

    def _draw_data(self, x0s, first, probs, target, seeds, rows, d) -> tuple:
        """Neighbours drawn from the data (``probs``: the kernels of ``rows``; ``x0s`` the
        inputs from row ``first`` on): no forward pass, the draws' counts are the weights.
        Returns (zs, ys, pis, columns): each design holds only its candidate features."""
        nb = self.neighbourhood
        found = nb.draw_many(probs, [int(seeds[i]) for i in rows], self.n_samples)
        zs, ys, pis, cols = [], [], [], []
        for i, (idx, counts) in zip(rows, found, strict=True):
            x0 = x0s[i - first]
            if self.features is None:
                z, columns = nb.candidates(idx, x0)  # the other features get no slope
            else:
                z = self._feature_means(nb.pool[torch.from_numpy(idx)] - x0.unsqueeze(0))
                z = z.reshape(idx.size, d).numpy()
                columns = np.flatnonzero(~nb.fixed_features(z))
                z = z[:, columns]
            zs.append(z)
            cols.append(columns)
            ys.append(nb.outputs[idx, int(target[i])])
            pis.append(counts)
        return zs, ys, pis, cols

    def attribute(self, inputs: torch.Tensor, target: torch.Tensor | int) -> torch.Tensor:
        """Local weight vectors (at most K non-zeros each), shaped and placed like ``inputs``."""
        result = self.explain(inputs, target)
        maps = self.expand(result.weights, tuple(inputs.shape[1:]))
        return torch.from_numpy(maps).to(inputs.device)
