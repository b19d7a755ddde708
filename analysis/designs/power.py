"""Power of a forward-simulation, distinction or agreement study, by simulation through the
primary analysis.

A simulated study has ``n`` kept participants assigned in turn to the conditions (the
baseline first; group sizes differ by at most one).  Each answers
``items_per_participant`` test items drawn from a pool of ``items`` (all of them when the
pool is that size), correctly with probability

    expit(logit(baseline_accuracy) + log(odds_ratio[condition]) + a_p + b_i),
    a_p ~ N(0, participant_sd^2), b_i ~ N(0, item_sd^2)

(:func:`analysis.designs.simulate.simulate_responses`' model, without inattentive or
incomplete participants: ``keep_rate`` turns kept participants into recruits).  Each study
is analysed by the code that analyses a real one: :func:`analysis.designs.glmm.fit_glmm`
(the Laplace fit of ``glmer(correct ~ condition + (1|participant) + (1|item))``) and its
Wald z test of each condition against the baseline, two-sided at ``alpha``.  A condition's
power is the share of studies whose test rejects *in the direction of the assumed effect*;
a study without a finite fit counts as not rejecting, so power is never overstated by a
numerical accident.  For a condition assumed equal to the baseline (odds ratio 1) the same
share is the test's size, reported beside.

Every n gets its own generator, seeded by (seed, n), so a point of the curve does not
depend on which other points were evaluated.  The fit of each simulated study starts from
the true values, which changes how fast it converges, not where.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy import stats

from explainers.votes_schema import TASKS

from . import glmm
from .responses import CHANCE

__all__ = [
    "DEFAULT_BASELINE_ACCURACY",
    "DesignPowerModel",
    "GRID_PER_CONDITION",
    "design_power_search",
    "plot_design_power",
    "simulate_design_power",
]

#: the baseline (no explanation) accuracy assumed when none is given, for a typical
#: participant on a typical item: forward simulation and agreement above their chance
#: (10%, 50%) as in Hase & Bansal (2020) and Kim et al. (HIVE, 2022), distinction at 45%
DEFAULT_BASELINE_ACCURACY = {"forward": 0.6, "distinction": 0.45, "agreement": 0.6}
#: participants per condition tried first; the answer is then refined by bisection
GRID_PER_CONDITION = (5, 8, 10, 12, 15, 20, 25, 30, 40, 50, 60, 80, 100, 125, 150, 200, 250,
                      300, 400, 500, 600, 800, 1000)  # fmt: skip
#: bisection stops when the bracket is this narrow relative to n per condition
BISECT_RESOLUTION = 0.05


@dataclass(frozen=True)
class DesignPowerModel:
    """The assumed truth a planned study is simulated from."""

    task: str
    conditions: tuple[str, ...]  # the baseline first
    odds_ratios: tuple[float, ...]  # one per condition after the baseline
    baseline_accuracy: float | None = None
    item_sd: float = 1.0
    participant_sd: float = 0.8
    items_per_participant: int = 20
    items: int = 20
    classes: int = 10

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f"--design must be one of {', '.join(TASKS)}, got {self.task!r}")
        if len(self.conditions) < 2 or len(self.odds_ratios) != len(self.conditions) - 1:
            raise ValueError("need a baseline and one odds ratio per other condition")
        if self.baseline_accuracy is None:
            object.__setattr__(self, "baseline_accuracy", DEFAULT_BASELINE_ACCURACY[self.task])
        if not 0 < self.baseline_accuracy < 1:
            raise ValueError(
                f"--baseline-accuracy must be between 0 and 1, got {self.baseline_accuracy}"
            )
        if self.items_per_participant < 2:
            raise ValueError("--items-per-participant must be at least 2")
        if self.items < self.items_per_participant:
            raise ValueError(
                f"the item pool ({self.items}) is smaller than --items-per-participant "
                f"({self.items_per_participant})"
            )
        if all(r == 1 for r in self.odds_ratios):
            raise ValueError("every --odds-ratio is 1: there is no effect to power")

    @property
    def chance(self) -> float:
        return CHANCE.get(self.task, 1.0 / self.classes)

    @property
    def effects(self) -> np.ndarray:
        """True fixed effects: intercept, then the log-odds ratios."""
        logit = np.log(self.baseline_accuracy / (1 - self.baseline_accuracy))
        return np.r_[logit, np.log(self.odds_ratios)]

    def as_dict(self) -> dict:
        return asdict(self)


def simulate_study(model: DesignPowerModel, n: int, rng):
    """(y, X, participant, item) of one simulated study with ``n`` kept participants."""
    k = len(model.conditions)
    m, pool = model.items_per_participant, model.items
    condition = np.empty(n, dtype=np.int64)
    condition[rng.permutation(n)] = np.arange(n) % k
    person = rng.normal(0.0, model.participant_sd, size=n)
    item_effect = rng.normal(0.0, model.item_sd, size=pool)
    if m == pool:
        shown = np.broadcast_to(np.arange(pool), (n, m))
    else:
        shown = np.argsort(rng.random((n, pool)), axis=1)[:, :m]
    beta = model.effects
    eta = beta[0] + np.r_[0.0, beta[1:]][condition][:, None] + person[:, None] + item_effect[shown]
    y = (rng.random((n, m)) < 1.0 / (1.0 + np.exp(-eta))).ravel().astype(float)
    participant = np.repeat(np.arange(n), m)
    cond = np.repeat(condition, m)
    X = np.column_stack([np.ones(n * m)] + [cond == j for j in range(1, k)]).astype(float)
    _, item = np.unique(shown.ravel(), return_inverse=True)
    return y, X, participant, item.ravel()


def simulate_design_power(
    model: DesignPowerModel,
    n: int,
    *,
    simulations: int = 500,
    alpha: float = 0.05,
    seed: int = 0,
) -> dict:
    """Power of each condition's Wald test against the baseline with ``n`` kept
    participants in all: {n, power {condition: share}, failed_fits, simulations}."""
    k = len(model.conditions)
    if n < 2 * k:
        raise ValueError(f"need at least 2 participants per condition ({2 * k}), got {n}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, n]))
    truth = glmm.GlmmFit(
        names=(), beta=model.effects, cov=np.empty((0, 0)),
        sd=(max(model.participant_sd, 0.05), max(model.item_sd, 0.05)), loglik=0.0,
        converged=True,
    )  # fmt: skip
    z = stats.norm.isf(alpha / 2)
    sign = np.sign(np.log(model.odds_ratios))
    hits = np.zeros(k - 1)
    failed = 0
    for _ in range(simulations):
        y, X, participant, item = simulate_study(model, n, rng)
        fit = glmm.fit_glmm(y, X, participant, item, start=truth)
        se = fit.se[1:] if fit.converged else np.full(k - 1, np.nan)
        if not (fit.converged and np.all(np.isfinite(se))):
            failed += 1
            continue
        stat = fit.beta[1:] / se
        direction = np.where(sign == 0, np.sign(stat), sign)
        hits += (np.abs(stat) > z) & (np.sign(stat) == direction)
    power = {c: float(h / simulations) for c, h in zip(model.conditions[1:], hits, strict=True)}
    return {"n": n, "power": power, "failed_fits": failed, "simulations": simulations}


def design_power_search(
    model: DesignPowerModel,
    *,
    target: float = 0.8,
    alpha: float = 0.05,
    simulations: int = 500,
    seed: int = 0,
    max_participants: int = 3000,
    progress=None,
) -> dict:
    """Walk the grid (participants per condition) until every condition with an effect
    reaches ``target``, then bisect to the smallest n.  "Needed" is the smallest evaluated
    n (all conditions together) whose power and every larger evaluated n's reach the
    target for every condition with an effect (odds ratio not 1)."""
    k = len(model.conditions)
    powered = [c for c, r in zip(model.conditions[1:], model.odds_ratios, strict=True) if r != 1]
    cache: dict[int, dict] = {}

    def point(per: int) -> dict:
        n = per * k
        if n not in cache:
            cache[n] = simulate_design_power(
                model, n, simulations=simulations, alpha=alpha, seed=seed
            )
            if progress:
                progress(cache[n])
        return cache[n]

    def reached(per: int) -> bool:
        return min(point(per)["power"][c] for c in powered) >= target

    grid = [p for p in GRID_PER_CONDITION if p * k <= max_participants]
    if not grid or grid[-1] * k < max_participants:
        grid.append(max(max_participants // k, 2))
    hi = None
    for per in grid:
        if reached(per):
            hi = per
            break
    if hi is not None:
        below = [n // k for n in sorted(cache) if n // k < hi]
        lo = below[-1] if below else 1
        while hi - lo > max(1, BISECT_RESOLUTION * hi):
            mid = (lo + hi) // 2
            if mid < 2:
                break
            if reached(mid):
                hi = mid
            else:
                lo = mid
    points = [cache[n] for n in sorted(cache)]
    return {
        "curve": [
            {
                "n": p["n"],
                "per_condition": p["n"] // k,
                "power": p["power"],
                "failed_fits": p["failed_fits"],
            }  # fmt: skip
            for p in points
        ],
        "needed": _needed(points, powered, target),
        "needed_by_condition": {c: _needed(points, [c], target) for c in powered},
    }


def _needed(points: Sequence[dict], conditions, target: float) -> int | None:
    values = [(p["n"], min(p["power"][c] for c in conditions)) for p in points]
    for i, (n, _) in enumerate(values):
        if all(v >= target for _, v in values[i:]):
            return n
    return None


def plot_design_power(result: dict, path: Path) -> None:
    """Power against kept participants (all conditions together), one line per condition."""
    from analysis.study.report import method_colours, power_axis

    from .report import _figure

    conditions = list(result["model"]["conditions"][1:])
    colours = method_colours(conditions)
    fig = _figure(5.4, 3.4)
    ax = fig.add_subplot()
    ns = [c["n"] for c in result["curve"]]
    for c in conditions:
        ax.plot(ns, [p["power"][c] for p in result["curve"]], "o-", ms=3, color=colours[c],
                label=f"{c} vs {result['model']['conditions'][0]}")  # fmt: skip
    ax.axhline(result["power"], color="0.5", ls="--", lw=0.8)
    ax.axhline(result["alpha"], color="0.7", ls=":", lw=0.8)
    power_axis(ax, ns)
    ax.set_xlabel("kept participants (all conditions)")
    ax.set_ylabel("power")
    ax.set_title(
        f"{result['design']} design: power by simulation ({result['simulations']} studies per "
        f"point, seed {result['seed']})",
        fontsize=9,
    )
    ax.legend(fontsize=8, frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    fig.savefig(path, metadata={"Software": None})
