"""Power and cost of a planned study, by simulation through the primary analysis.

A simulated participant has their own preference weights over the methods, drawn from a
Dirichlet distribution with mean ``shares`` and precision ``concentration`` (None: every
participant identical), and answers ``questions`` real questions.  Each question shows
every method once in a random screen order; the option in slot s showing method m is
chosen with probability proportional to ``weight[m] * exp(position_logits[s])`` — the
conditional logit the analysis fits, with between-participant heterogeneity on top.

Each simulated study is analysed by the same code as a real one (:mod:`.choice`: the
conditional-logit fit and its cluster-robust Wald tests), and power is the share of
studies that reject:

* the contrast ``a:b``: two-sided Wald test of beta_a - beta_b = 0, against t(n - 1);
* the omnibus test: Wald test that every method coefficient is 0, as the Hotelling-type
  F(q, n - q) of :func:`.choice.hotelling_f`.

These small-sample references are what keeps the size honest: with the plain normal and
chi-square references the omnibus test rejected 44% of true nulls with 5 participants,
18% with 10 and 10% with 20 (4,000 simulated null studies each); with them, 4.1-5.2% at
every n from 5 to 100 (``docs/analysis.md``).

A simulated study whose fit has no finite estimate (a method never chosen) counts as not
rejecting, so power is never overstated by a numerical accident.  Simulated studies are
of *kept* participants; ``keep_rate`` turns that into participants to recruit.

Every n gets its own generator, seeded by (seed, n), so a curve point does not depend on
which other points were evaluated.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from itertools import permutations

import numpy as np

from .choice import design_matrix, fit_types, hotelling_f, robust_covariance

__all__ = [
    "DEFAULT_CONCENTRATION",
    "GRID",
    "PowerModel",
    "PowerPoint",
    "estimate_concentration",
    "simulate_power",
    "power_search",
    "study_cost",
]

#: Dirichlet precision assumed when --shares is given without --concentration: an
#: intra-class correlation of 1 / (1 + 10) = 0.09 between one participant's answers
DEFAULT_CONCENTRATION = 10.0
#: participant counts tried first; the answer is then refined by bisection
GRID = (
    5,
    6,
    8,
    10,
    12,
    15,
    20,
    25,
    30,
    40,
    50,
    60,
    80,
    100,
    125,
    150,
    200,
    250,
    300,
    400,
    500,
    600,
    800,
    1000,
    1250,
    1500,
    2000,
    2500,
    3000,
    4000,
    5000,
)
#: fewest participants a simulated (or pilot) study may have: with fewer clusters the
#: cluster-robust covariance of the primary analysis is degenerate
MIN_PARTICIPANTS = 5
#: participants simulated per chunk (memory stays flat whatever n and simulations are)
CHUNK_PARTICIPANTS = 100_000
#: bisection stops when the bracket is this narrow relative to n (Monte Carlo noise in
#: the power at 1,000 simulations is larger than a 2% change of n)
BISECT_RESOLUTION = 0.02


@dataclass(frozen=True)
class PowerModel:
    """The assumed truth a planned study is simulated from."""

    methods: tuple[str, ...]
    shares: tuple[float, ...]
    concentration: float | None = DEFAULT_CONCENTRATION
    position_logits: tuple[float, ...] | None = None
    questions: int = 20
    fit_positions: bool = True
    source: str = "assumed shares"

    def __post_init__(self):
        shares = np.asarray(self.shares, dtype=float)
        if len(shares) != len(self.methods) or len(self.methods) < 2:
            raise ValueError(f"need one share per method ({len(self.methods)}), got {len(shares)}")
        if (shares < 0).any() or not np.isfinite(shares).all():
            raise ValueError("shares must be non-negative numbers")
        if abs(shares.sum() - 1) > 1e-6:
            raise ValueError(f"shares must sum to 1, they sum to {shares.sum():.6g}")
        if (shares == 0).any():
            raise ValueError(
                "every share must be above 0: a method nobody ever chooses "
                "has no finite log-odds to test"
            )
        if self.concentration is not None and not self.concentration > 0:
            raise ValueError(f"concentration must be above 0, got {self.concentration}")
        if self.questions < 1:
            raise ValueError("a participant answers at least one question")

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class PowerPoint:
    n: int
    contrast_power: float | None
    omnibus_power: float
    failed_fits: int
    simulations: int


def estimate_concentration(counts: np.ndarray) -> float | None:
    """Dirichlet precision from per-participant vote counts (participants x methods).

    Method of moments on Pearson's statistic: for a Dirichlet-multinomial with m votes
    each, E[sum_j (x_j - m p_j)^2 / (m p_j)] = (k - 1)(1 + (m - 1) rho) with
    rho = 1 / (1 + concentration).  None when the counts show no excess variation
    (rho <= 0: as homogeneous as a multinomial).
    """
    counts = np.asarray(counts, dtype=float)
    n, k = counts.shape
    m = counts.sum(axis=1)
    p = counts.sum(axis=0) / m.sum()
    if n < 2 or (p == 0).any() or m.mean() <= 1:
        return None
    pearson = (((counts - m[:, None] * p) ** 2) / (m[:, None] * p)).sum(axis=1).mean()
    rho = (pearson * n / (n - 1) / (k - 1) - 1) / (m.mean() - 1)
    if rho <= 0:
        return None
    rho = min(rho, 0.999)
    return float((1 - rho) / rho)


def _types(k: int):
    """Every (screen order, chosen slot) of k options, order-major: shown (T, k), chosen
    (T,) and the orders themselves."""
    orders = np.array(list(permutations(range(k))))
    shown = np.repeat(orders, k, axis=0)
    chosen = np.tile(np.arange(k), len(orders))
    return shown, chosen, orders


def _simulate_counts(model: PowerModel, n: int, sims: int, rng, orders) -> np.ndarray:
    """Type counts (sims, n, T) of simulated studies, question by question.

    Each question draws a screen order uniformly, then the chosen slot with probability
    w[o_s] e^gamma_s / sum_j w[o_j] e^gamma_j; type = order x slots + slot.  (One draw per
    question is 5x cheaper than a 96-category multinomial per participant.)
    """
    k = len(model.methods)
    n_orders = len(orders)
    shares = np.asarray(model.shares, dtype=float)
    people = sims * n
    if model.concentration is None:
        weights = np.broadcast_to(shares, (people, k))
    else:
        weights = rng.dirichlet(shares * model.concentration, size=people)
    slot_odds = np.exp(np.asarray(model.position_logits or np.zeros(k), dtype=float))
    order = rng.integers(n_orders, size=(people, model.questions))
    odds = weights[np.arange(people)[:, None, None], orders[order]] * slot_odds
    cdf = np.cumsum(odds, axis=2)
    u = rng.random((people, model.questions, 1)) * cdf[:, :, -1:]
    slot = np.minimum((u > cdf).sum(axis=2), k - 1)
    types = order * k + slot
    flat = (np.arange(people)[:, None] * (n_orders * k) + types).ravel()
    counts = np.bincount(flat, minlength=people * n_orders * k)
    return counts.reshape(sims, n, n_orders * k)


def simulate_power(
    model: PowerModel,
    n: int,
    *,
    contrast: tuple[str, str] | None = None,
    simulations: int = 1000,
    alpha: float = 0.05,
    reference: str | None = None,
    seed: int = 0,
) -> PowerPoint:
    """Power of the contrast and omnibus tests with ``n`` kept participants."""
    from scipy import stats

    if n < MIN_PARTICIPANTS:
        raise ValueError(
            f"the cluster-robust tests need at least {MIN_PARTICIPANTS} participants, got {n}"
        )
    methods = model.methods
    ref = methods.index(reference) if reference else 0
    shown, chosen, orders = _types(len(methods))
    x, names = design_matrix(shown, ref, positions=model.fit_positions)
    n_m = len(methods) - 1
    others = [i for i in range(len(methods)) if i != ref]
    c = np.zeros(x.shape[2])
    if contrast is not None:
        a, b = (methods.index(m) for m in contrast)
        if a != ref:
            c[others.index(a)] += 1
        if b != ref:
            c[others.index(b)] -= 1
    t_crit = stats.t.isf(alpha / 2, n - 1)
    f_crit = stats.f.isf(alpha, n_m, n - n_m) if n > n_m else np.inf

    rng = np.random.default_rng(np.random.SeedSequence([seed, n]))
    per_chunk = max(1, CHUNK_PARTICIPANTS // n)
    contrast_hits = omnibus_hits = failed = 0
    for start in range(0, simulations, per_chunk):
        sims = min(per_chunk, simulations - start)
        counts = _simulate_counts(model, n, sims, rng, orders)
        fit = fit_types(x, chosen, counts.sum(axis=1))
        ok = fit.converged
        failed += int((~ok).sum())
        if not ok.any():
            continue
        cov = robust_covariance(x, chosen, counts[ok], fit.theta[ok])
        theta = fit.theta[ok]
        if contrast is not None:
            var = np.einsum("p,rpq,q->r", c, cov, c)
            z = (theta @ c) / np.sqrt(np.where(var > 0, var, np.nan))
            contrast_hits += int(np.sum(np.abs(z) > t_crit))
        block, beta = cov[:, :n_m, :n_m], theta[:, :n_m]
        eig = np.linalg.eigvalsh(block)
        usable = eig[:, 0] > 1e-12 * np.maximum(eig[:, -1], 1e-300)  # a full-rank covariance
        chi2 = np.einsum("rp,rpq,rq->r", beta, np.linalg.pinv(block), beta)
        omnibus_hits += int(np.sum(usable & (hotelling_f(chi2, n, n_m) > f_crit)))
    return PowerPoint(
        n=n,
        contrast_power=contrast_hits / simulations if contrast is not None else None,
        omnibus_power=omnibus_hits / simulations,
        failed_fits=failed,
        simulations=simulations,
    )


@dataclass
class PowerSearch:
    """Participants needed for each test and every evaluated point of the curve."""

    points: list[PowerPoint] = field(default_factory=list)
    needed_contrast: int | None = None
    needed_omnibus: int | None = None


def power_search(
    model: PowerModel,
    *,
    contrast: tuple[str, str] | None = None,
    target: float = 0.8,
    simulations: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
    max_participants: int = GRID[-1],
    progress=None,
) -> PowerSearch:
    """Walk the grid until both tests reach ``target``, then bisect to the smallest n.

    Bisection stops at a bracket of 1 participant or 2% of n, whichever is wider.
    "Needed" is the smallest evaluated n whose power reaches the target, with every
    larger evaluated n reaching it too (so Monte Carlo noise around the target cannot
    report a lucky small n).
    """
    cache: dict[int, PowerPoint] = {}

    def point(n: int) -> PowerPoint:
        if n not in cache:
            cache[n] = simulate_power(
                model, n, contrast=contrast, simulations=simulations, alpha=alpha, seed=seed
            )
            if progress:
                progress(cache[n])
        return cache[n]

    def powers(n):
        p = point(n)
        return [v for v in (p.contrast_power, p.omnibus_power) if v is not None]

    grid = [n for n in GRID if n <= max_participants]
    if not grid or grid[-1] != max_participants:
        grid.append(max_participants)
    for n in grid:
        if min(powers(n)) >= target:
            break
    for which in ("contrast_power", "omnibus_power"):
        if which == "contrast_power" and contrast is None:
            continue
        reached = [n for n in sorted(cache) if getattr(cache[n], which) >= target]
        if not reached:
            continue
        hi = reached[0]
        below = [n for n in sorted(cache) if n < hi]
        lo = below[-1] if below else MIN_PARTICIPANTS - 1
        while hi - lo > max(1, BISECT_RESOLUTION * hi):
            mid = (lo + hi) // 2
            if getattr(point(mid), which) >= target:
                hi = mid
            else:
                lo = mid
    result = PowerSearch(points=[cache[n] for n in sorted(cache)])
    result.needed_contrast = _needed(result.points, "contrast_power", target) if contrast else None
    result.needed_omnibus = _needed(result.points, "omnibus_power", target)
    return result


def _needed(points: Sequence[PowerPoint], which: str, target: float) -> int | None:
    values = [(p.n, getattr(p, which)) for p in points]
    for i, (n, _) in enumerate(values):
        if all(v >= target for _, v in values[i:]):
            return n
    return None


def study_cost(
    participants: int,
    *,
    keep_rate: float,
    pay_per_hour: float,
    minutes_per_survey: float,
    platform_fee: float = 0.0,
) -> dict:
    """What recruiting enough participants costs: recruited = ceil(needed / keep_rate),
    payments = recruited x minutes / 60 x pay, fee = payments x platform_fee (a fraction,
    as the platform states it), total = payments + fee.  Nothing about any platform is
    assumed; every number is the caller's."""
    recruited = math.ceil(participants / keep_rate - 1e-9)
    per_person = minutes_per_survey / 60 * pay_per_hour
    payments = recruited * per_person
    fee = payments * platform_fee
    return {
        "participants_kept": participants,
        "keep_rate": keep_rate,
        "participants_to_recruit": recruited,
        "pay_per_participant": round(per_person, 4),
        "payments": round(payments, 2),
        "platform_fee_rate": platform_fee,
        "platform_fee": round(fee, 2),
        "total": round(payments + fee, 2),
    }
