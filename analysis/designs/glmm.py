"""A logistic mixed model with crossed random intercepts, fitted by the Laplace approximation.

The model is the one lme4 fits with::

    glmer(correct ~ condition + (1 | participant) + (1 | item), family = binomial)

    logit P(y_j = 1) = x_j' beta + sigma_p a[participant_j] + sigma_i b[item_j],
    a ~ N(0, I), b ~ N(0, I)   (spherical random effects, as lme4's ``u``)

and its marginal likelihood is approximated as lme4's default (``nAGQ = 1``) does: for
given ``theta = (sigma_p, sigma_i)`` and ``beta`` the random effects' conditional mode
``u*`` is found by Newton's method (penalised iteratively reweighted least squares), and

    log L(theta, beta) ~ log p(y | u*) - ||u*||^2 / 2 - log det(A) / 2,
    A = I + Lambda Z' W Z Lambda   (W = mu (1 - mu) at u*)

is maximised over ``(theta, beta)`` jointly (maximum likelihood, ``theta >= 0``).
lme4's deviance is ``-2 log L``.

Structure that keeps it fast: both diagonal blocks of ``A`` are diagonal (one random
intercept per participant, one per item), so ``A`` is solved through the Schur complement
on the smaller grouping factor (a dense matrix of its size; the larger factor is eliminated
in O(n)).  The gradient of ``log L`` is analytic (envelope theorem for ``u*``, implicit
derivatives of ``u*``, and the derivative of ``log det A`` through the weights' derivative
``w (1 - 2 mu)``); the optimiser is L-BFGS-B followed by Newton steps on a finite-difference
Hessian of that gradient.

Standard errors are lme4's default for ``glmer`` (``vcov(use.hessian = TRUE)``): the
fixed-effect block of the inverse Hessian of ``-log L`` over ``(theta, beta)``, so they
include the uncertainty of the variance components.  A standard deviation estimated at
0 (the boundary) is held there and left out of that Hessian.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from functools import cache

import numpy as np
from scipy import linalg, optimize, sparse
from scipy.special import expit

__all__ = ["GlmmFit", "fit_glmm", "laplace_loglik"]

#: Newton iterations for the random effects' mode (from a warm start, 3-6 are needed)
MODE_MAX_ITER = 50
MODE_TOL = 1e-10
#: Newton refinements after L-BFGS-B
POLISH_STEPS = 4
#: a fixed effect beyond this size on the logit scale has no finite estimate (a condition
#: in which every answer is correct, or none is)
DIVERGED = 15.0
#: a standard deviation below this is at the boundary (0)
BOUNDARY = 1e-4
#: the participant-by-item weight matrix is held dense up to this many cells (faster for
#: the designs of a study: numpy instead of scipy.sparse's per-call overhead), sparse above
DENSE_CELLS = 4_000_000


@dataclass
class GlmmFit:
    """One fitted model.  ``beta``/``cov``/``se`` follow ``names`` (the columns of X);
    ``sd`` = (participant, item) standard deviations of the random intercepts."""

    names: tuple[str, ...]
    beta: np.ndarray
    cov: np.ndarray
    sd: tuple[float, float]
    loglik: float
    converged: bool
    message: str = ""
    evaluations: int = 0
    boundary: tuple[bool, bool] = (False, False)
    gradient_max: float = float("nan")
    #: the covariance of beta given theta (lme4's ``use.hessian = FALSE``), for comparison
    cov_conditional: np.ndarray | None = None
    sd_se: tuple[float, float] | None = None
    extra: dict = field(default_factory=dict)

    @property
    def se(self) -> np.ndarray:
        return np.sqrt(np.diag(self.cov))

    @property
    def deviance(self) -> float:
        return -2.0 * self.loglik


class _Problem:
    """The data of one fit, ordered so that group 1 is the larger grouping factor (the one
    eliminated) and group 2 the smaller (the dense Schur complement)."""

    def __init__(self, y, X, participant, item, n_participants, n_items):
        self.y = np.asarray(y, dtype=float)
        self.X = np.asarray(X, dtype=float)
        self.n, self.p = self.X.shape
        participant = np.asarray(participant, dtype=np.int64)
        item = np.asarray(item, dtype=np.int64)
        self.swapped = n_items > n_participants
        if self.swapped:
            self.g1, self.g2, self.n1, self.n2 = item, participant, n_items, n_participants
        else:
            self.g1, self.g2, self.n1, self.n2 = participant, item, n_participants, n_items
        key = self.g1 * self.n2 + self.g2
        pairs, self.pair = np.unique(key, return_inverse=True)
        self.pair = self.pair.ravel()
        self.pair_g1, self.pair_g2 = pairs // self.n2, pairs % self.n2
        self.n_pairs = len(pairs)
        self.indptr = np.concatenate([[0], np.cumsum(np.bincount(self.pair_g1, minlength=self.n1))])
        self.dense = self.n1 * self.n2 <= DENSE_CELLS
        self.evaluations = 0

    def sum1(self, v):
        return np.bincount(self.g1, v, minlength=self.n1)

    def sum2(self, v):
        return np.bincount(self.g2, v, minlength=self.n2)

    def weights(self, w):
        """C[g1, g2] = sum of w over the observations of that pair: a dense array for the
        sizes of a study, CSR (fixed pattern) above DENSE_CELLS."""
        data = np.bincount(self.pair, w, minlength=self.n_pairs)
        if self.dense:
            full = np.zeros(self.n1 * self.n2)
            full[self.pair_g1 * self.n2 + self.pair_g2] = data
            return full.reshape(self.n1, self.n2)
        return sparse.csr_matrix((data, self.pair_g2, self.indptr), shape=(self.n1, self.n2))


class _State:
    """The random effects' mode for one (theta, beta) and the factorisation of A there."""

    __slots__ = ("u1", "u2", "eta", "mu", "w", "d1", "d2", "M", "chol", "h", "logdet")


def _factor(prob: _Problem, t1, t2, w):
    d1 = 1.0 + t1 * t1 * prob.sum1(w)
    d2 = 1.0 + t2 * t2 * prob.sum2(w)
    if t1 > 0 and t2 > 0:
        C = prob.weights(w)
        if prob.dense:
            M = C * (t1 * t2 / d1)[:, None]  # A11^-1 A12
            S = np.diag(d2) - (t1 * t2) * (C.T @ M)
        else:
            M = sparse.diags(t1 * t2 / d1) @ C
            S = np.diag(d2) - (t1 * t2) * (C.T @ M).toarray()
    else:
        M = None
        S = np.diag(d2)
    chol = linalg.cho_factor(S, lower=True, check_finite=False)
    return d1, d2, M, chol


def _solve(d1, M, chol, r1, r2):
    """A^-1 [r1; r2] through the Schur complement (r may be vectors or matrices)."""
    if M is None:
        x2 = linalg.cho_solve(chol, r2, check_finite=False)
        x1 = r1 / (d1 if r1.ndim == 1 else d1[:, None])
        return x1, x2
    x2 = linalg.cho_solve(chol, r2 - M.T @ r1, check_finite=False)
    x1 = r1 / (d1 if r1.ndim == 1 else d1[:, None]) - M @ x2
    return x1, x2


def _point(y, eta, u1, u2):
    """(h, mu) at eta: h = log p(y | eta) - ||u||^2 / 2, from one exp per observation."""
    e = np.exp(-np.abs(eta))
    mu = np.where(eta >= 0, 1.0, e) / (1.0 + e)
    # log p(y | eta) = -softplus(-(2y - 1) eta), softplus(x) = max(x, 0) + log1p(exp(-|x|))
    s = np.where(y > 0.5, eta, -eta)
    logp = np.minimum(s, 0.0) - np.log1p(e)
    return float(logp.sum() - 0.5 * (u1 @ u1 + u2 @ u2)), mu


def _mode(prob: _Problem, t1, t2, beta, u1, u2) -> _State:
    """Newton's method for u* = argmax h(u) (h is strictly concave), with step halving."""
    off = prob.X @ beta
    eta = off + t1 * u1[prob.g1] + t2 * u2[prob.g2]
    h, mu = _point(prob.y, eta, u1, u2)
    for _ in range(MODE_MAX_ITER):
        w = mu * (1.0 - mu)
        r = prob.y - mu
        g1 = t1 * prob.sum1(r) - u1
        g2 = t2 * prob.sum2(r) - u2
        d1, d2, M, chol = _factor(prob, t1, t2, w)
        s1, s2 = _solve(d1, M, chol, g1, g2)
        step = 1.0
        for _ in range(30):
            n1, n2 = u1 + step * s1, u2 + step * s2
            eta_new = off + t1 * n1[prob.g1] + t2 * n2[prob.g2]
            h_new, mu_new = _point(prob.y, eta_new, n1, n2)
            if h_new >= h - 1e-12 * abs(h):
                break
            step *= 0.5
        u1, u2, eta, mu, h_old, h = n1, n2, eta_new, mu_new, h, h_new
        size = step * max(np.abs(s1).max(initial=0.0), np.abs(s2).max(initial=0.0))
        if size < MODE_TOL or abs(h - h_old) < 1e-13 * max(1.0, abs(h)):
            break
    state = _State()
    state.u1, state.u2, state.eta, state.h, state.mu = u1, u2, eta, h, mu
    state.w = mu * (1.0 - mu)
    state.d1, state.d2, state.M, state.chol = _factor(prob, t1, t2, state.w)
    state.logdet = float(np.log(state.d1).sum() + 2.0 * np.log(np.diag(state.chol[0])).sum())
    return state


def _value_and_gradient(prob: _Problem, phi, warm):
    """-log L and its gradient over phi = (t1, t2, beta) (internal group order)."""
    t1, t2 = float(phi[0]), float(phi[1])
    beta = np.asarray(phi[2:], dtype=float)
    st = _mode(prob, t1, t2, beta, *warm)
    warm[0], warm[1] = st.u1, st.u2
    prob.evaluations += 1
    loglik = st.h - 0.5 * st.logdet
    y, X, g1, g2 = prob.y, prob.X, prob.g1, prob.g2
    mu, w = st.mu, st.w
    r = y - mu
    wd = w * (1.0 - 2.0 * mu)  # dw/deta
    u1o, u2o = st.u1[g1], st.u2[g2]

    # pieces of A^-1 at the observations
    if st.M is not None:
        Mt = st.M.T if prob.dense else st.M.T.toarray()  # n2 x n1
        K = linalg.cho_solve(st.chol, Mt, check_finite=False).T  # M S^-1, n1 x n2
        MK = (st.M * K).sum(axis=1) if prob.dense else st.M.multiply(K).sum(axis=1)
        inv11 = 1.0 / st.d1 + np.asarray(MK).ravel()
        inv12_pair = -K[prob.pair_g1, prob.pair_g2]
    else:
        inv11 = 1.0 / st.d1
        inv12_pair = np.zeros(prob.n_pairs)
    inv22 = np.diag(linalg.cho_solve(st.chol, np.eye(prob.n2), check_finite=False)).copy()
    a11, a22, a12 = inv11[g1], inv22[g2], inv12_pair[prob.pair]
    lev = t1 * t1 * a11 + t2 * t2 * a22 + 2.0 * t1 * t2 * a12

    # d g / d phi (g = grad_u h), columns: t1, t2, beta
    d = 2 + prob.p
    R1 = np.empty((prob.n1, d))
    R2 = np.empty((prob.n2, d))
    R1[:, 0] = prob.sum1(r) - t1 * prob.sum1(w * u1o)
    R2[:, 0] = -t2 * prob.sum2(w * u1o)
    R1[:, 1] = -t1 * prob.sum1(w * u2o)
    R2[:, 1] = prob.sum2(r) - t2 * prob.sum2(w * u2o)
    WX = w[:, None] * X
    for k in range(prob.p):
        R1[:, 2 + k] = -t1 * prob.sum1(WX[:, k])
        R2[:, 2 + k] = -t2 * prob.sum2(WX[:, k])
    du1, du2 = _solve(st.d1, st.M, st.chol, R1, R2)
    deta = t1 * du1[g1] + t2 * du2[g2]  # n x d
    deta[:, 0] += u1o
    deta[:, 1] += u2o
    deta[:, 2:] += X

    trace = (lev * wd) @ deta
    trace[0] += 2.0 * np.dot(w, t1 * a11 + t2 * a12)
    trace[1] += 2.0 * np.dot(w, t2 * a22 + t1 * a12)
    partial = np.empty(d)
    partial[0] = np.dot(r, u1o)
    partial[1] = np.dot(r, u2o)
    partial[2:] = X.T @ r
    grad = partial - 0.5 * trace
    return -loglik, -grad, st


def _glm_start(y, X) -> np.ndarray:
    """Logistic regression without random effects (IRLS), the fixed effects' start."""
    beta = np.zeros(X.shape[1])
    for _ in range(25):
        mu = np.clip(expit(X @ beta), 1e-9, 1 - 1e-9)
        w = mu * (1 - mu)
        step = np.linalg.lstsq(X.T @ (w[:, None] * X), X.T @ (y - mu), rcond=None)[0]
        beta = np.clip(beta + step, -DIVERGED, DIVERGED)
        if np.abs(step).max() < 1e-10:
            break
    return beta


def _hessian(fun, phi, free):
    """Central finite differences of the analytic gradient over the free parameters."""
    idx = np.flatnonzero(free)
    H = np.empty((len(idx), len(idx)))
    for a, i in enumerate(idx):
        h = 1e-4 * max(1.0, abs(phi[i]))
        if i < 2:
            h = min(h, 0.5 * phi[i]) if phi[i] > 0 else h
        up, down = phi.copy(), phi.copy()
        up[i] += h
        down[i] -= h
        H[a] = (fun(up)[1][idx] - fun(down)[1][idx]) / (2 * h)
    return 0.5 * (H + H.T), idx


def laplace_loglik(y, X, participant, item, sd, beta) -> float:
    """The Laplace log-likelihood at given (participant SD, item SD) and beta (for tests
    and for comparing with lme4's deviance at its own estimates)."""
    participant = np.asarray(participant)
    item = np.asarray(item)
    prob = _Problem(y, X, participant, item, participant.max() + 1, item.max() + 1)
    t = (sd[1], sd[0]) if prob.swapped else (sd[0], sd[1])
    warm = [np.zeros(prob.n1), np.zeros(prob.n2)]
    value, _, _ = _value_and_gradient(prob, np.r_[t, beta], warm)
    return -value


@cache
def _controller():
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # scikit-learn's dependency; without it BLAS keeps its threads
        return None
    return ThreadpoolController()


def one_blas_thread():
    """A context in which BLAS runs on one thread.  The fit's matrices are small to
    middling (the smaller grouping factor's size): there OpenBLAS's threads cost more than
    they bring, six times the wall time of one thread for 1,000 participants x 200 items
    on 2 busy cores."""
    controller = _controller()
    if controller is None:
        return contextlib.nullcontext()
    return controller.limit(limits=1, user_api="blas")


def fit_glmm(
    y,
    X,
    participant,
    item,
    *,
    names=None,
    start: GlmmFit | None = None,
    hessian: bool = True,
) -> GlmmFit:
    """Fit ``y ~ X + (1 | participant) + (1 | item)``, binomial logit, Laplace ML.

    ``participant`` and ``item`` are integer codes 0..n-1 per observation; ``X`` holds the
    fixed effects' columns (an intercept and the condition dummies).  ``start`` warm-starts
    from another fit of the same design (the bootstrap, the power simulation).
    ``hessian=False`` skips the covariance (the bootstrap needs only the estimates).
    """
    with one_blas_thread():
        return _fit(y, X, participant, item, names=names, start=start, hessian=hessian)


def _fit(y, X, participant, item, *, names, start, hessian) -> GlmmFit:
    y = np.asarray(y, dtype=float)
    X = np.asarray(X, dtype=float)
    participant = np.asarray(participant, dtype=np.int64)
    item = np.asarray(item, dtype=np.int64)
    n_p, n_i = int(participant.max()) + 1, int(item.max()) + 1
    prob = _Problem(y, X, participant, item, n_p, n_i)
    names = tuple(names) if names is not None else tuple(f"x{k}" for k in range(X.shape[1]))
    if start is not None:
        sd0 = np.maximum(np.asarray(start.sd, dtype=float), 0.05)
        beta0 = np.asarray(start.beta, dtype=float)
    else:
        sd0 = np.array([0.5, 0.5])
        beta0 = _glm_start(y, X)
    t0 = sd0[::-1] if prob.swapped else sd0
    phi0 = np.r_[t0, beta0]
    warm = [np.zeros(prob.n1), np.zeros(prob.n2)]

    cache: dict = {}

    def fun(phi):
        key = phi.tobytes()
        if key not in cache:
            if len(cache) > 64:
                cache.clear()
            value, grad, _ = _value_and_gradient(prob, np.asarray(phi, dtype=float), warm)
            cache[key] = (value, grad)
        return cache[key]

    bounds = [(0.0, None), (0.0, None)] + [(None, None)] * prob.p
    result = optimize.minimize(
        fun,
        phi0,
        jac=True,
        method="L-BFGS-B",
        bounds=bounds,
        options={"maxiter": 500, "ftol": 1e-13, "gtol": 1e-7, "maxcor": 20},
    )
    phi = np.array(result.x, dtype=float)
    value, grad = fun(phi)
    free = np.ones(len(phi), dtype=bool)
    free[:2] = phi[:2] > BOUNDARY
    phi[:2] = np.where(free[:2], phi[:2], 0.0)
    H = idx = None
    # Newton refinements on the finite-difference Hessian (quadratic convergence where
    # L-BFGS-B stalls on flat variance components)
    for _ in range(POLISH_STEPS):
        value, grad = fun(phi)
        if np.abs(grad[free]).max() < 1e-6:
            break
        H, idx = _hessian(fun, phi, free)
        try:
            step = -np.linalg.solve(H, grad[idx])
        except np.linalg.LinAlgError:
            break
        trial = phi.copy()
        trial[idx] += step
        trial[:2] = np.maximum(trial[:2], 0.0)
        if fun(trial)[0] <= value + 1e-10:
            phi = trial
            H = None
        else:
            break
    value, grad = fun(phi)
    gmax = float(np.abs(grad[free]).max())
    beta = phi[2:]
    converged = bool(np.isfinite(value) and np.abs(beta).max() < DIVERGED and gmax < 1e-3)
    message = "" if converged else _why(result, beta, gmax)
    t = (phi[1], phi[0]) if prob.swapped else (phi[0], phi[1])
    boundary = tuple(bool(v <= BOUNDARY) for v in t)
    cov = np.full((prob.p, prob.p), np.nan)
    cov_cond = None
    sd_se = None
    if hessian and converged:
        if H is None:
            H, idx = _hessian(fun, phi, free)
        try:
            inv = np.linalg.inv(H)
            beta_pos = [list(idx).index(2 + k) for k in range(prob.p)]
            cov = inv[np.ix_(beta_pos, beta_pos)]
            sd_var = [inv[list(idx).index(i), list(idx).index(i)] if free[i] else np.nan
                      for i in (0, 1)]  # fmt: skip
            sd_se_int = tuple(float(np.sqrt(v)) if v > 0 else float("nan") for v in sd_var)
            sd_se = sd_se_int[::-1] if prob.swapped else sd_se_int
            if not np.all(np.linalg.eigvalsh(H) > 0):
                message = "the Hessian is not positive definite: standard errors are unreliable"
        except np.linalg.LinAlgError:
            message = "the Hessian is singular: no standard errors"
        cov_cond = _conditional_cov(prob, phi, warm)
    return GlmmFit(
        names=names,
        beta=beta,
        cov=cov,
        sd=(float(t[0]), float(t[1])),
        loglik=-float(value),
        converged=converged,
        message=message,
        evaluations=prob.evaluations,
        boundary=boundary,
        gradient_max=gmax,
        cov_conditional=cov_cond,
        sd_se=sd_se,
    )


def _why(result, beta, gmax) -> str:
    if np.abs(beta).max() >= DIVERGED:
        return (
            "no finite estimate: some condition's answers are all correct or all wrong "
            "(complete separation)"
        )
    return f"the optimiser did not converge ({result.message}; largest gradient {gmax:.2g})"


def _conditional_cov(prob: _Problem, phi, warm) -> np.ndarray:
    """cov(beta | theta): the inverse of X'WX - X'W Zt A^-1 Zt' W X at the mode (what
    lme4 reports with ``use.hessian = FALSE``)."""
    t1, t2 = float(phi[0]), float(phi[1])
    st = _mode(prob, t1, t2, phi[2:], *warm)
    WX = st.w[:, None] * prob.X
    R1 = t1 * np.stack([prob.sum1(c) for c in WX.T], axis=1)
    R2 = t2 * np.stack([prob.sum2(c) for c in WX.T], axis=1)
    x1, x2 = _solve(st.d1, st.M, st.chol, R1, R2)
    info = prob.X.T @ WX - (R1.T @ x1 + R2.T @ x2)
    return np.linalg.inv(0.5 * (info + info.T))
