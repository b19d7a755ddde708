"""Zhang & Gao (2020), "Measuring feature importance of convolutional neural networks".

For one input x with N features and K classes, the attribution matrix A (K x N) holds in
row j the Input x Gradient map of class j (Definition 1)::

    A[j, i] = x_i * d pred(C_j) / d x_i

computed for all classes with ONE forward and ONE backward pass (the input is repeated K
times in the batch and each copy is differentiated for its own class: the same Jacobian
as the paper's ``tf.jacobian``, without a per-class loop).  ``pred(C_j)`` is the output of
``forward_func``: with our models the **softmax probability** (post-softmax; the paper
allows either).  Pass a function returning logits to get the pre-softmax variant.

With the column means ``m_i = A_.i / K`` (A_.i = sum_j A[j, i]) and ``Ahat = A - m``:

* individual effect (Definition 3)     V[X_i]   = sum_j Ahat[j, i]^2
* STD map (eq. 1)                      STD[X_i] = sqrt(V[X_i])
* co-variation (Definition 4)          COV[X_i, X_s] = sum_j Ahat[j, i] Ahat[j, s]
* co-variation term (Proposition 4)    COV_i = Ahat_i . (ahat - Ahat_i),  ahat = sum_i Ahat_i
  (the matrix form: O(K N) instead of the O(K N^2) double loop of eq. 3)
* feature importance (Definition 5)    phi_i = V[X_i] + COV_i = Ahat_i . ahat
* class variation (Definition 2)       V[C] = sum_j (pred_j - mean pred)^2

Proposition 2: if the attributions are complete (each row of A sums to pred(C_j)), then
sum_i phi_i = V[C].  (In the paper's proof the factor 1/K is missing from ``A_.i`` in the
first line; with it the proof goes through.)  Input x Gradient is complete for a linear
model without bias, not for the CNN.

Top-k: with ``top_k = k`` only the k classes with the largest pred(C_j) of that input form
the rows of A (and K = k in all formulas), the paper's practical trick 1.

Silhouette (Algorithm 1): element v of the STD map is kept iff the largest ratio
v / u over its neighbours u is greater than theta, otherwise set to 0.  Neighbours are the
elements within Chebyshev distance r in the last two (spatial) dimensions, the element
itself excluded, those outside the map ignored (no padding).  Zeros: a zero element is
never kept (0/u = 0, and 0/0 is taken as 0, "no evidence"); a positive element with a zero
neighbour has ratio +inf and is kept.  Since v, u >= 0 the test is ``v > theta * min u``.
On MNIST the STD map is 0 on the background, so with r = 3 this literal rule keeps nearly
every non-zero element; ``ignore_zero_neighbours=True`` compares with the positive
neighbours only (an element without any is dropped), which does thin the map out.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import ForwardFunc, as_target, check_inputs, check_target

__all__ = [
    "OUTPUTS",
    "attribution_matrix",
    "centred",
    "individual_effect",
    "std_from_matrix",
    "covariation_term",
    "feature_importance",
    "class_variation",
    "silhouette",
    "StdMap",
]

#: what StdMap.attribute can return
OUTPUTS = ("std", "importance", "individual", "covariation", "silhouette")


def attribution_matrix(
    forward_func: ForwardFunc,
    inputs: torch.Tensor,
    top_k: int | None = None,
    batch_size: int = 500,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Input x Gradient attributions of every (or the top-k) class(es) per input.

    Returns ``A`` (N, K, *shape), the class index of each row ``classes`` (N, K) and the
    predictions ``pred`` (N, K) = forward_func(x)[classes] (for Definition 2).  Inputs are
    processed in chunks of ``batch_size // K`` inputs (at least one), each chunk in one
    forward and one backward pass over its K copies.
    """
    inputs = check_inputs(inputs)
    n, shape = inputs.shape[0], tuple(inputs.shape[1:])
    if top_k is not None and int(top_k) < 2:
        raise ValueError(f"top_k must be >= 2 (a variation needs two classes), got {top_k}")
    with torch.no_grad():
        n_classes = forward_func(inputs[:1]).shape[1]
    k = n_classes if top_k is None else min(int(top_k), n_classes)
    per_chunk = max(1, int(batch_size) // k)
    out_a, out_cls, out_pred = [], [], []
    for start in range(0, n, per_chunk):
        x = inputs[start : start + per_chunk].detach()
        m = x.shape[0]
        rep = x.unsqueeze(1).expand(m, k, *shape).reshape(m * k, *shape).requires_grad_(True)
        with torch.enable_grad():
            probs = forward_func(rep).view(m, k, -1)
            # every copy of an input has the same probabilities; rank the classes once
            if top_k is None:
                classes = torch.arange(k, device=x.device).expand(m, k)
            else:
                classes = probs[:, 0].detach().topk(k, dim=1).indices
            pred = probs.gather(2, classes.unsqueeze(2)).squeeze(2)  # (m, k), copy j -> class j
            (grad,) = torch.autograd.grad(pred.sum(), rep)
        out_a.append((rep.detach() * grad).view(m, k, *shape))
        out_cls.append(classes)
        out_pred.append(pred.detach())
    return torch.cat(out_a), torch.cat(out_cls), torch.cat(out_pred)


def centred(a: torch.Tensor) -> torch.Tensor:
    """Ahat = A - (1/K) A_.i : each feature's attributions minus their mean over classes.

    ``a`` has shape (..., K, N): classes on the second-to-last axis, features on the last.
    """
    return a - a.mean(dim=-2, keepdim=True)


def individual_effect(a: torch.Tensor) -> torch.Tensor:
    """V[X_i] = sum_j (A_ji - A_.i / K)^2 (Definition 3); (..., K, N) -> (..., N)."""
    return centred(a).square().sum(dim=-2)


def std_from_matrix(a: torch.Tensor) -> torch.Tensor:
    """STD[X_i] = sqrt(V[X_i]) (eq. 1); (..., K, N) -> (..., N)."""
    return individual_effect(a).sqrt()


def covariation_term(a: torch.Tensor) -> torch.Tensor:
    """sum_{s != i} COV[X_i, X_s] by Proposition 4's matrix form; (..., K, N) -> (..., N).

    COV_i = Ahat_i^T (ahat - Ahat_i) with ahat = A_r - A/K = sum_i Ahat_i (the row sums of
    Ahat): linear in N, never the N x N loop.
    """
    ahat = centred(a)
    row = ahat.sum(dim=-1, keepdim=True)  # (..., K, 1)
    return (ahat * (row - ahat)).sum(dim=-2)


def feature_importance(a: torch.Tensor) -> torch.Tensor:
    """phi_i = V[X_i] + sum_{s != i} COV[X_i, X_s] (Definition 5); (..., K, N) -> (..., N)."""
    return individual_effect(a) + covariation_term(a)


def class_variation(pred: torch.Tensor) -> torch.Tensor:
    """V[C] = sum_j (pred_j - mean_j pred_j)^2 (Definition 2); (..., K) -> (...)."""
    return (pred - pred.mean(dim=-1, keepdim=True)).square().sum(dim=-1)


def silhouette(
    std: torch.Tensor, r: int = 3, theta: float = 3.0, ignore_zero_neighbours: bool = False
) -> torch.Tensor:
    """Algorithm 1: keep an element iff max over neighbours of (element / neighbour) > theta.

    ``std`` (..., H, W) non-negative; neighbours within Chebyshev distance ``r`` in the last
    two dimensions (the element excluded, outside the map ignored).  See the module
    docstring for the handling of zeros; with ``ignore_zero_neighbours`` the ratios are
    taken over the positive neighbours only (an element without one is dropped), which
    keeps the map informative where most of it is exactly 0 (MNIST's background).
    """
    if std.ndim < 2:
        raise ValueError(f"silhouette needs maps with two spatial dimensions, got {std.shape}")
    if int(r) < 1:
        raise ValueError(f"r must be >= 1, got {r}")
    if (std < 0).any():
        raise ValueError("silhouette expects a non-negative map (an STD map)")
    r = int(r)
    h, w = std.shape[-2:]
    flat = std.reshape(-1, 1, h, w).to(torch.float32)
    padded = F.pad(flat, (r, r, r, r), value=float("inf"))
    side = 2 * r + 1
    windows = F.unfold(padded, kernel_size=side).view(flat.shape[0], side * side, h * w)
    windows[:, (side * side) // 2] = float("inf")  # the element is not its own neighbour
    if ignore_zero_neighbours:
        windows = windows.masked_fill(windows == 0, float("inf"))
    nearest = windows.min(dim=1).values.view_as(flat)
    # v / u > theta for some neighbour u  <=>  v > theta * min u  (v, u >= 0; u = 0 -> +inf)
    keep = (flat > 0) & (flat > float(theta) * nearest)
    return torch.where(keep, flat, torch.zeros_like(flat)).view_as(std).to(std.dtype)


class StdMap:
    """Zhang & Gao's per-input map from the Input x Gradient attribution matrix.

    Parameters
    ----------
    forward_func : callable
        (N, *shape) -> class scores (N, K); the model's softmax probabilities here.
    top_k : int or None, default None
        Use only the k classes with the largest scores of each input (None: all K).
    output : {"std", "importance", "individual", "covariation", "silhouette"}, default "std"
        "std" the STD map sqrt(V[X_i]) (the paper's visualisation); "importance" phi_i;
        "individual" V[X_i]; "covariation" the co-variation term; "silhouette" the
        Silhouette map of the STD map (needs two spatial dimensions).
    r : int, default 3
        Silhouette neighbourhood radius (the paper's r = 3).
    theta : float, default 3.0
        Silhouette ratio threshold (the paper's theta = 3).
    ignore_zero_neighbours : bool, default False
        Silhouette: compare with positive neighbours only (see :func:`silhouette`).  With
        the literal rule (False) every positive element next to a zero is kept, which on
        MNIST (zero background, r = 3) keeps nearly every non-zero element.
    batch_size : int, default 500
        Rows (input copies x classes) per forward/backward pass.
    random_state : ignored
        Accepted for a uniform constructor; the method is deterministic.

    ``attribute(inputs, target)`` validates ``target`` but does not use it: the map
    measures how strongly each feature separates the classes, for all (top-k) classes at
    once, whatever class is being explained.  Class maps (explainers.class_maps) therefore
    differ between classes only through the images averaged.
    """

    name = "std"

    def __init__(
        self,
        forward_func: ForwardFunc,
        top_k: int | None = None,
        output: str = "std",
        r: int = 3,
        theta: float = 3.0,
        ignore_zero_neighbours: bool = False,
        batch_size: int = 500,
        random_state: int | None = None,
    ):
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {', '.join(OUTPUTS)}, got {output!r}")
        if top_k is not None and int(top_k) < 2:
            raise ValueError(f"top_k must be >= 2, got {top_k}")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.forward_func = forward_func
        self.top_k = None if top_k is None else int(top_k)
        self.output = output
        self.r = int(r)
        self.theta = float(theta)
        self.ignore_zero_neighbours = bool(ignore_zero_neighbours)
        self.batch_size = int(batch_size)
        self.random_state = random_state

    def params(self) -> dict:
        return {
            "attribution": "input x gradient, all classes via one batched Jacobian",
            "pred": "forward_func output (softmax probabilities, post-softmax)",
            "top_k": self.top_k,
            "output": self.output,
            "r": self.r,
            "theta": self.theta,
            "ignore_zero_neighbours": self.ignore_zero_neighbours,
        }

    def matrix(self, inputs: torch.Tensor):
        """(A, classes, pred) for the inputs; see :func:`attribution_matrix`."""
        return attribution_matrix(self.forward_func, inputs, self.top_k, self.batch_size)

    def attribute(self, inputs: torch.Tensor, target: torch.Tensor | int) -> torch.Tensor:
        inputs = check_inputs(inputs)
        # validated for a uniform interface, then unused
        check_target(as_target(target, inputs.shape[0]), self.forward_func, inputs)
        n, shape = inputs.shape[0], tuple(inputs.shape[1:])
        a, _, _ = self.matrix(inputs)
        a = a.reshape(n, a.shape[1], -1).to(torch.float64)
        if self.output == "importance":
            values = feature_importance(a)
        elif self.output == "individual":
            values = individual_effect(a)
        elif self.output == "covariation":
            values = covariation_term(a)
        else:
            values = std_from_matrix(a)
        values = values.to(torch.float32).view(n, *shape)
        if self.output == "silhouette":
            values = silhouette(values, self.r, self.theta, self.ignore_zero_neighbours)
        return values
