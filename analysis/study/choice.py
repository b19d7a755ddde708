"""The primary analysis: a conditional logit of the choices themselves.

Each real question is a choice among the options on the screen.  The option in screen
slot ``s`` showing method ``m`` has utility ``beta[m] + gamma[s]`` and the participant
picks it with probability ``exp(utility) / sum(exp(utilities of the options shown))``
(McFadden's conditional logit; one stratum per question).  ``beta`` is fixed to 0 for the
reference method and ``gamma`` to 0 for slot 1, so ``beta[m]`` is the log-odds of
choosing ``m`` over the reference when both are on the screen, whatever the slots.

Uncertainty comes from the participants, not the answers: one person's 20 choices are
not independent.  Confidence intervals are percentiles of a seeded cluster bootstrap
(participants resampled with replacement); Wald tests use the cluster-robust sandwich
covariance.  A marginal model of the chosen method (the estimates of statsmodels'
``NominalGEE``) is fitted beside it as a cross-check.

Speed: a question is summarised by its *type*, (methods in slot order, chosen slot[,
digit]).  With four methods there are 96 types (k! k for k methods), so a study of any
size is an ``n_participants x n_types`` count matrix, a bootstrap replicate is a weighted
sum of its rows, and all replicates are fitted at once by one vectorised Newton
iteration.  The point estimate equals statsmodels' ``ConditionalLogit`` on the long
table (a test checks it), without ever building that table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

__all__ = [
    "DEFAULT_REFERENCE",
    "BOOTSTRAP_DRAWS",
    "ChoiceData",
    "Fit",
    "choice_data",
    "design_matrix",
    "fit_types",
    "robust_covariance",
    "screen_orders",
    "bootstrap_counts",
    "default_reference",
    "fit_choice_model",
    "marginal_cross_check",
    "statsmodels_check",
    "hotelling_f",
]

#: the method whose coefficient is 0: LIME, the method NormLIME builds on, so that the
#: paper's central contrast (NormLIME vs LIME) is one coefficient
DEFAULT_REFERENCE = "lime"
#: cluster-bootstrap replicates of the primary analysis
BOOTSTRAP_DRAWS = 1000
#: Newton iterations (the log-likelihood is concave; 10-15 are needed in practice)
MAX_ITER = 60
#: a replicate whose estimate passes this size has no finite maximum (a method or a slot
#: with no choices in the resample): it is counted as failed, never averaged in
DIVERGED = 25.0


def default_reference(methods: Sequence[str]) -> str:
    """LIME when the study has it; otherwise the last method in the study's order.

    The study's order (``votes.order_methods``) puts the paper's methods first with
    NormLIME leading, so NormLIME, the method under study, is never the default baseline.
    """
    return DEFAULT_REFERENCE if DEFAULT_REFERENCE in methods else methods[-1]


@dataclass(frozen=True)
class ChoiceData:
    """A study's real questions as counts of question types per participant.

    ``shown[t, s]`` is the method index in screen slot ``s`` of type ``t``, ``chosen[t]``
    the slot picked, ``digit[t]`` the digit asked; ``counts[i, t]`` how often participant
    ``i`` answered a question of type ``t``.
    """

    methods: tuple[str, ...]
    participants: np.ndarray
    shown: np.ndarray
    chosen: np.ndarray
    digit: np.ndarray
    counts: np.ndarray

    @property
    def n_options(self) -> int:
        return self.shown.shape[1]

    @property
    def n_questions(self) -> int:
        return int(self.counts.sum())

    def collapse_digits(self) -> ChoiceData:
        """The same data with types that differ only by digit merged (main-effects model)."""
        key = np.column_stack([self.shown, self.chosen])
        unique, inverse = np.unique(key, axis=0, return_inverse=True)
        counts = np.zeros((self.counts.shape[0], len(unique)), dtype=self.counts.dtype)
        np.add.at(counts.T, inverse.ravel(), self.counts.T)
        return ChoiceData(
            self.methods,
            self.participants,
            unique[:, :-1],
            unique[:, -1],
            np.full(len(unique), -1),
            counts,
        )

    def only_digit(self, digit: int) -> np.ndarray:
        """Counts with every type of another digit zeroed (same type layout)."""
        return self.counts * (self.digit == digit)[None, :]


def screen_orders(real: pd.DataFrame, methods: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Each answer's screen order as (code per answer, method indices per distinct order):
    the options column is parsed once per distinct order (24 of them), not per answer."""
    codes, orders = pd.factorize(real["options"])
    lookup = {m: i for i, m in enumerate(methods)}
    return codes, np.array([[lookup[m] for m in text.split("|")] for text in orders])


def choice_data(real: pd.DataFrame, methods: Sequence[str]) -> ChoiceData:
    """Type counts from validated real answers (columns participant_id, options, position,
    digit).  Raises ValueError if a row lacks its screen order."""
    if (real["options"] == "").any():
        raise ValueError("the choice model needs the screen order (options) of every answer")
    methods = tuple(methods)
    order_codes, order_table = screen_orders(real, methods)
    pid_codes, participants = pd.factorize(real["participant_id"], sort=True)
    key = np.column_stack(
        [
            order_codes,
            real["position"].to_numpy(dtype=np.int64) - 1,
            real["digit"].to_numpy(dtype=np.int64),
        ]
    )
    types, inverse = np.unique(key, axis=0, return_inverse=True)
    counts = np.zeros((len(participants), len(types)), dtype=np.int64)
    np.add.at(counts, (pid_codes, inverse.ravel()), 1)
    return ChoiceData(
        methods,
        np.asarray(participants),
        order_table[types[:, 0]],
        types[:, 1],
        types[:, 2],
        counts,
    )


def design_matrix(
    shown: np.ndarray,
    reference: int,
    *,
    positions: bool = True,
    digits: np.ndarray | None = None,
    n_methods: int | None = None,
) -> tuple[np.ndarray, list[str]]:
    """Covariates of every option of every type, (types, slots, parameters), and names.

    Parameters: one per non-reference method ("method:m"), then one per slot after the
    first ("slot:s") if ``positions``; with ``digits``, the method effects are replaced by
    one set per digit ("method:m@digit:d") — the digit-by-method model.
    """
    n_types, k = shown.shape
    n_methods = n_methods or k
    others = [m for m in range(n_methods) if m != reference]
    method_cols = (shown[:, :, None] == np.array(others)[None, None, :]).astype(np.float64)
    names = [f"method:{m}" for m in others]
    blocks = [method_cols]
    if digits is not None:
        levels = np.unique(digits)
        by_digit = (digits[:, None] == levels[None, :]).astype(np.float64)
        blocks = [np.einsum("tsm,td->tsdm", method_cols, by_digit).reshape(n_types, k, -1)]
        names = [f"method:{m}@digit:{d}" for d in levels for m in others]
    if positions:
        blocks.append(np.broadcast_to(np.eye(k)[None, :, 1:], (n_types, k, k - 1)))
        names += [f"slot:{s}" for s in range(2, k + 1)]
    return np.concatenate(blocks, axis=2), names


@dataclass
class Fit:
    """Estimates of R replicates at once: ``theta`` (R, p), ``loglik`` (R,), ``converged``
    (R,) and the observed information ``information`` (R, p, p)."""

    theta: np.ndarray
    loglik: np.ndarray
    converged: np.ndarray
    information: np.ndarray


def _pieces(x: np.ndarray, chosen: np.ndarray, theta: np.ndarray):
    """Per replicate and type: log-probability of the chosen slot, the score of one choice
    (x_chosen - E[x]) and the slot probabilities."""
    t, k, p = x.shape
    utility = (theta @ x.reshape(t * k, p).T).reshape(len(theta), t, k)
    utility -= utility.max(axis=2, keepdims=True)
    log_norm = np.log(np.exp(utility).sum(axis=2, keepdims=True))
    logp = utility - log_norm
    prob = np.exp(logp)
    mean_x = np.einsum("rts,tsp->rtp", prob, x)
    x_chosen = x[np.arange(len(chosen)), chosen]
    chosen_logp = np.take_along_axis(logp, np.broadcast_to(chosen, logp.shape[:2])[..., None], 2)
    return chosen_logp[..., 0], x_chosen[None] - mean_x, prob, mean_x


def fit_types(
    x: np.ndarray, chosen: np.ndarray, weights: np.ndarray, max_iter: int = MAX_ITER
) -> Fit:
    """Maximum likelihood for R weightings of the same types at once.

    ``weights`` (R, types) are type counts (a bootstrap replicate, a leave-one-out sample,
    a simulated study).  Damped Newton: a step that lowers a replicate's log-likelihood
    is halved, so every replicate's likelihood rises monotonically.
    """
    weights = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    r, p = weights.shape[0], x.shape[2]
    theta = np.zeros((r, p))
    loglik = _loglik(x, chosen, weights, theta)
    converged = np.zeros(r, dtype=bool)
    outer_x = _outer_products(x)
    for _ in range(max_iter):
        active = ~converged
        if not active.any():
            break
        grad, info = _score_information(x, chosen, weights[active], theta[active], outer_x)
        step = _solve(info, grad)
        new_theta, new_ll = _line_search(
            x, chosen, weights[active], theta[active], loglik[active], step
        )
        done = np.abs(new_ll - loglik[active]) < 1e-10 * (1 + np.abs(loglik[active]))
        done |= np.abs(step).max(axis=1) < 1e-9
        theta[active], loglik[active] = new_theta, new_ll
        idx = np.flatnonzero(active)
        converged[idx[done]] = True
    finite = np.isfinite(theta).all(axis=1) & (np.abs(theta).max(axis=1) < DIVERGED)
    finite &= ~_separated(x, chosen, weights)
    _, info = _score_information(x, chosen, weights, theta, outer_x)
    return Fit(theta, loglik, converged & finite, info)


def _separated(x, chosen, weights) -> np.ndarray:
    """Replicates with no finite maximum along a covariate: its total over the chosen
    options sits at the smallest or largest value the shown options allow (e.g. a method
    or a slot never chosen).  The likelihood then keeps rising as that coefficient runs
    off to infinity, which Newton cannot show in a bounded number of steps."""
    x_chosen = x[np.arange(len(chosen)), chosen]
    total = weights @ x_chosen
    low, high = weights @ x.min(axis=1), weights @ x.max(axis=1)
    scale = 1e-9 * np.maximum(weights.sum(axis=1, keepdims=True), 1.0)
    return ((total - low < scale) | (high - total < scale)).any(axis=1)


def _loglik(x, chosen, weights, theta) -> np.ndarray:
    chosen_logp, *_ = _pieces(x, chosen, theta)
    return np.einsum("rt,rt->r", weights, chosen_logp)


def _score_information(x, chosen, weights, theta, outer_x=None):
    """Gradient (R, p) and observed information (R, p, p), as matrix products: the
    second moments are one (R, T*S) x (T*S, p*p) product over precomputed outer products
    of the covariates (x is mostly 0/1, the products are cheap to hold)."""
    _, score, prob, mean_x = _pieces(x, chosen, theta)
    t, k, p = x.shape
    grad = np.einsum("rt,rtp->rp", weights, score)
    outer_x = _outer_products(x) if outer_x is None else outer_x
    second = ((weights[:, :, None] * prob).reshape(len(weights), t * k) @ outer_x).reshape(
        len(weights), p, p
    )
    weighted = weights[:, :, None] * mean_x
    outer = np.matmul(weighted.transpose(0, 2, 1), mean_x)
    return grad, second - outer


def _outer_products(x: np.ndarray) -> np.ndarray:
    """x_ts x_ts^T for every type and slot, (T*S, p*p): computed once per fit."""
    t, k, p = x.shape
    flat = x.reshape(t * k, p)
    return (flat[:, :, None] * flat[:, None, :]).reshape(t * k, p * p)


def _solve(info: np.ndarray, grad: np.ndarray) -> np.ndarray:
    """Newton steps, with a tiny ridge where the information is singular (a resample that
    lost a method entirely): that replicate then drifts to DIVERGED and is flagged."""
    p = info.shape[1]
    ridge = 1e-10 * np.maximum(np.trace(info, axis1=1, axis2=2), 1.0)[:, None, None]
    return np.linalg.solve(info + ridge * np.eye(p), grad[..., None])[..., 0]


def _line_search(x, chosen, weights, theta, loglik, step, halvings: int = 30):
    new_theta, new_ll = theta.copy(), loglik.copy()
    pending = np.ones(len(theta), dtype=bool)
    scale = 1.0
    for _ in range(halvings):
        trial = theta[pending] + scale * step[pending]
        ll = _loglik(x, chosen, weights[pending], trial)
        better = ll >= loglik[pending] - 1e-12 * np.abs(loglik[pending])
        idx = np.flatnonzero(pending)[better]
        new_theta[idx], new_ll[idx] = trial[better], ll[better]
        pending[idx] = False
        if not pending.any():
            break
        scale /= 2
    return new_theta, new_ll


def robust_covariance(
    x: np.ndarray, chosen: np.ndarray, counts: np.ndarray, theta: np.ndarray
) -> np.ndarray:
    """Cluster-robust (sandwich) covariance with participants as clusters.

    ``counts`` (R, n, types) and ``theta`` (R, p) for R studies at once (or (n, types)
    and (p,) for one).  Small-sample factor n / (n - 1), as statsmodels' cluster option.
    """
    single = counts.ndim == 2
    counts = np.asarray(counts, dtype=np.float64)
    if single:
        counts, theta = counts[None], np.atleast_2d(theta)
    _, score, _, _ = _pieces(x, chosen, theta)
    per_participant = np.einsum("rnt,rtp->rnp", counts, score)
    meat = np.einsum("rnp,rnq->rpq", per_participant, per_participant)
    n = counts.shape[1]
    _, info = _score_information(x, chosen, counts.sum(axis=1), theta)
    bread = np.linalg.pinv(info)
    cov = bread @ meat @ bread * (n / max(n - 1, 1))
    return cov[0] if single else cov


def bootstrap_counts(counts: np.ndarray, draws: int, seed: int, chunk: int = 100):
    """Type counts of ``draws`` cluster-bootstrap resamples, in chunks (R, types).

    Each resample draws n participants with replacement (a multinomial count per
    participant); the generator is seeded once, so the replicates depend only on
    ``seed`` and ``draws``, not on the chunk size.
    """
    rng = np.random.default_rng(seed)
    n = counts.shape[0]
    weights = rng.multinomial(n, np.full(n, 1.0 / n), size=draws).astype(np.float64)
    dense = counts.astype(np.float64)
    for start in range(0, draws, chunk):
        yield weights[start : start + chunk] @ dense


def hotelling_f(wald: np.ndarray | float, clusters: int, restrictions: int):
    """The cluster-robust Wald statistic W of q restrictions as an F(q, G - q) statistic,
    (G - q) / (q (G - 1)) W, as Hotelling's T^2 is: with few participants (clusters) the
    chi-square reference rejects far too often, this one does not (see power.py)."""
    g, q = clusters, restrictions
    return (g - q) / (q * (g - 1)) * np.asarray(wald) if g > q else np.full_like(wald, np.nan)


@dataclass
class ChoiceModel:
    """The primary analysis, ready for summary.json (see :meth:`as_summary`)."""

    methods: tuple[str, ...]
    reference: str
    coef: dict[str, float]
    ci: dict[str, list[float]]
    se_robust: dict[str, float]
    p_wald: dict[str, float]
    omnibus: dict
    position_coef: dict[str, float]
    position_ci: dict[str, list[float]]
    n_participants: int
    n_questions: int
    bootstrap: dict
    leave_one_out: dict[str, list[float]]
    by_digit: dict = field(default_factory=dict)
    digit_interaction: dict = field(default_factory=dict)
    cross_check: dict = field(default_factory=dict)
    statsmodels_check: dict = field(default_factory=dict)
    #: (resamples, methods) bootstrap log-odds in ``methods`` order (the reference's 0);
    #: not in summary.json: comparisons read it (analysis.evaluate.compare)
    coef_draws: np.ndarray | None = field(default=None, repr=False)

    def as_summary(self) -> dict:
        return {
            "model": "conditional logit (one stratum per question): method + screen slot",
            "reference": self.reference,
            "coef": self.coef,
            "ci": self.ci,
            "se_robust": self.se_robust,
            "p_wald": self.p_wald,
            "omnibus": self.omnibus,
            "position_coef": self.position_coef,
            "position_ci": self.position_ci,
            "n_participants": self.n_participants,
            "n_questions": self.n_questions,
            "bootstrap": self.bootstrap,
            "leave_one_out": self.leave_one_out,
            "statsmodels_check": self.statsmodels_check,
        }


def fit_choice_model(
    data: ChoiceData,
    *,
    reference: str | None = None,
    draws: int = BOOTSTRAP_DRAWS,
    seed: int = 0,
    level: float = 0.95,
) -> ChoiceModel:
    """Fit the primary model, its bootstrap CIs, robust Wald tests and leave-one-out range
    (``reference`` None: :func:`default_reference`)."""
    from scipy import stats

    reference = default_reference(data.methods) if reference is None else reference
    if reference not in data.methods:
        raise ValueError(f"unknown reference method {reference!r}")
    main = data.collapse_digits()
    ref = data.methods.index(reference)
    x, names = design_matrix(main.shown, ref)
    totals = main.counts.sum(axis=0)
    point = fit_types(x, main.chosen, totals[None])
    if not point.converged[0]:
        raise ValueError(
            "the choice model has no finite estimate: some method or screen slot was never chosen"
        )
    theta = point.theta[0]
    cov = robust_covariance(x, main.chosen, main.counts, theta)
    se = np.sqrt(np.diag(cov))

    boot, failed = [], 0
    for weights in bootstrap_counts(main.counts, draws, seed):
        fit = fit_types(x, main.chosen, weights)
        boot.append(fit.theta[fit.converged])
        failed += int((~fit.converged).sum())
    boot = np.concatenate(boot) if boot else np.empty((0, len(theta)))
    alpha = 1 - level
    lo, hi = np.quantile(boot, [alpha / 2, 1 - alpha / 2], axis=0) if len(boot) else (theta, theta)

    loo = _leave_one_out(x, main.chosen, main.counts, totals)

    n_m = len(data.methods) - 1
    method_names = [data.methods[int(n.split(":")[1])] for n in names[:n_m]]
    coef = {reference: 0.0} | dict(zip(method_names, theta[:n_m].tolist(), strict=True))
    ci = {reference: [0.0, 0.0]} | {
        m: [float(lo[i]), float(hi[i])] for i, m in enumerate(method_names)
    }
    g = int(data.counts.shape[0])
    z = theta / np.where(se > 0, se, np.nan)
    p_wald = {m: float(2 * stats.t.sf(abs(z[i]), g - 1)) for i, m in enumerate(method_names)}
    block = cov[:n_m, :n_m]
    chi2 = float(theta[:n_m] @ np.linalg.pinv(block) @ theta[:n_m])
    f_value = float(hotelling_f(chi2, g, n_m))
    slots = [n.split(":")[1] for n in names[n_m:]]
    draws_by_method = np.zeros((len(boot), len(data.methods)))
    for i, m in enumerate(method_names):
        draws_by_method[:, data.methods.index(m)] = boot[:, i]
    return ChoiceModel(
        coef_draws=draws_by_method,
        methods=data.methods,
        reference=reference,
        coef=coef,
        ci=ci,
        se_robust={reference: 0.0} | {m: float(se[i]) for i, m in enumerate(method_names)},
        p_wald=p_wald,
        omnibus={
            "test": "cluster-robust Wald test that every method coefficient is 0, as "
            "F(q, G - q) = (G - q) / (q (G - 1)) W",
            "wald": chi2,
            "F": f_value,
            "df": [n_m, g - n_m],
            "p": float(stats.f.sf(f_value, n_m, g - n_m)) if g > n_m else float("nan"),
        },
        position_coef={"1": 0.0} | {s: float(theta[n_m + i]) for i, s in enumerate(slots)},
        position_ci={"1": [0.0, 0.0]}
        | {s: [float(lo[n_m + i]), float(hi[n_m + i])] for i, s in enumerate(slots)},
        n_participants=int(data.counts.shape[0]),
        n_questions=data.n_questions,
        bootstrap={
            "n": int(draws),
            "seed": int(seed),
            "level": level,
            "method": "percentile, participants resampled with replacement",
            "failed": failed,
        },
        leave_one_out={
            reference: [0.0, 0.0],
            **{
                m: [float(loo[:, i].min()), float(loo[:, i].max())]
                for i, m in enumerate(method_names)
            },
        },
    )


def _leave_one_out(x, chosen, counts, totals, chunk: int = 500) -> np.ndarray:
    """Estimates with each participant left out in turn, (n, p)."""
    out = []
    for start in range(0, counts.shape[0], chunk):
        fit = fit_types(x, chosen, totals[None] - counts[start : start + chunk])
        out.append(np.where(fit.converged[:, None], fit.theta, np.nan))
    return np.concatenate(out)


#: above this many questions the per-run statsmodels check is skipped (ConditionalLogit
#: loops over questions in Python: ~4 s per 4,000); the equality is a test either way
STATSMODELS_CHECK_MAX_QUESTIONS = 5000


def statsmodels_check(real: pd.DataFrame, model: ChoiceModel) -> dict:
    """Refit the primary model with statsmodels' ``ConditionalLogit`` on the long table
    (one row per shown option, outcome chosen, strata = question) and report the largest
    coefficient difference, so each small study's report shows the two fits agree."""
    import warnings

    from statsmodels.discrete.conditional_models import ConditionalLogit

    n = len(real)
    if n > STATSMODELS_CHECK_MAX_QUESTIONS:
        return {
            "fitted": False,
            "reason": f"{n} questions: above {STATSMODELS_CHECK_MAX_QUESTIONS} the per-run "
            "refit is skipped (statsmodels loops over questions); the equality is tested",
        }
    methods = model.methods
    others = [m for m in methods if m != model.reference]
    codes, order_table = screen_orders(real, methods)
    k = order_table.shape[1]
    slot = np.tile(np.arange(k), n)
    shown = np.asarray(methods)[order_table[codes]].ravel()
    chosen = (slot == np.repeat(real["position"].to_numpy(dtype=np.int64) - 1, k)).astype(float)
    exog = np.column_stack(
        [(shown == m).astype(float) for m in others]
        + [(slot == s).astype(float) for s in range(1, k)]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = ConditionalLogit(chosen, exog, groups=np.repeat(np.arange(n), k)).fit(
            method="newton", tol=1e-10, maxiter=100, disp=0
        )
    ours = [model.coef[m] for m in others] + [model.position_coef[str(s)] for s in range(2, k + 1)]
    return {
        "fitted": True,
        "model": "statsmodels ConditionalLogit (Newton) on the long table",
        "max_abs_difference": float(np.max(np.abs(np.asarray(fit.params) - ours))),
    }


def marginal_cross_check(real: pd.DataFrame, methods: Sequence[str], reference: str) -> dict:
    """A marginal model of the chosen method, ignoring the screen: multinomial log-odds
    log(p_m / p_ref) with cluster-robust (sandwich) errors, participants as clusters.

    Its estimates are those of statsmodels' ``NominalGEE`` with intercepts only (a test
    checks it), computed in closed form because NominalGEE loops over participants in
    Python (16 s at 3,000 participants) and its robust standard errors came out 14%
    below both this sandwich and a cluster bootstrap on the same data.  It equals the
    conditional logit's method effects only without position effects: a check, not a
    test.
    """
    from scipy import stats

    others = [m for m in methods if m != reference]
    order = [*others, reference]
    codes = pd.Categorical(real["chosen_method"], categories=order).codes
    pid = pd.factorize(real["participant_id"])[0]
    counts = np.zeros((pid.max() + 1, len(order)))
    np.add.at(counts, (pid, codes), 1)
    total = counts.sum()
    p = counts.sum(axis=0) / total
    k = len(others)
    theta = np.log(p[:k] / p[k])
    score = counts[:, :k] - counts.sum(axis=1, keepdims=True) * p[None, :k]
    information = total * (np.diag(p[:k]) - np.outer(p[:k], p[:k]))
    bread = np.linalg.inv(information)
    se = np.sqrt(np.diag(bread @ score.T @ score @ bread))
    z = stats.norm.ppf(0.975)
    return {
        "model": "marginal multinomial log-odds of the chosen method (NominalGEE's "
        "estimates), cluster-robust errors",
        "reference": reference,
        "coef": {reference: 0.0} | {m: float(theta[i]) for i, m in enumerate(others)},
        "ci": {reference: [0.0, 0.0]}
        | {
            m: [float(theta[i] - z * se[i]), float(theta[i] + z * se[i])]
            for i, m in enumerate(others)
        },
    }
