"""How much of the conclusion hangs on a few people: reversal counts and per-digit effects.

Reversal counts work on the kept participants' vote counts.  The ordering "A above B" is
A's total exceeding B's; with the method-only conditional logit this is also the order
of the coefficients (its estimate is log(votes A / votes B)), so it is the ordering the
choice model reports up to the small position adjustment.

* votes: the fewest single answers that, changed from A to B, put B strictly above A
  (each such change closes the gap by 2): floor(gap / 2) + 1;
* participants: the fewest participants whose answers, rewritten in the most damaging
  way (every A vote to B, every other vote to B), put B strictly above A.  Participant i
  can close the gap by at most n_i + a_i - b_i, so taking the largest first is optimal.

The top rank is reversed when any other method overtakes the leader; the smallest count
over the challengers is reported.
"""

from __future__ import annotations

from itertools import permutations

import numpy as np
import pandas as pd

__all__ = ["reversal_counts", "top_rank_reversal", "digit_effects", "interaction_test"]

#: permutations of the digit-by-method test (p resolution 1 / 200)
INTERACTION_PERMUTATIONS = 199


def _reversal(counts: np.ndarray, a: int, b: int) -> dict:
    gap = int(counts[:, a].sum() - counts[:, b].sum())
    if gap < 0:
        return {"gap": gap, "votes": 0, "participants": 0}
    per_person = counts.sum(axis=1) + counts[:, a] - counts[:, b]
    needed = gap + 1
    closed = np.cumsum(np.sort(per_person)[::-1])
    reachable = np.flatnonzero(closed >= needed)
    return {
        "gap": gap,
        "votes": gap // 2 + 1,
        "participants": int(reachable[0] + 1) if reachable.size else None,
    }


def reversal_counts(counts: pd.DataFrame) -> list[dict]:
    """For every pair with A ahead of B: the votes and the participants needed to put B
    strictly ahead (``participants`` is None when even everyone cannot)."""
    values = counts.to_numpy(dtype=np.int64)
    names = [str(c) for c in counts.columns]
    totals = values.sum(axis=0)
    rows = []
    for a, b in permutations(range(len(names)), 2):
        if totals[a] > totals[b] or (totals[a] == totals[b] and a < b):
            rows.append({"ahead": names[a], "behind": names[b], **_reversal(values, a, b)})
    rows.sort(key=lambda r: (names.index(r["ahead"]), names.index(r["behind"])))
    return rows


def top_rank_reversal(counts: pd.DataFrame) -> dict:
    """The leader by votes and the fewest votes / participants that dethrone it."""
    values = counts.to_numpy(dtype=np.int64)
    names = [str(c) for c in counts.columns]
    leader = int(np.argmax(values.sum(axis=0)))
    options = [(_reversal(values, leader, b), names[b]) for b in range(len(names)) if b != leader]
    by_votes = min(options, key=lambda o: o[0]["votes"])
    by_people = min(
        options, key=lambda o: np.inf if o[0]["participants"] is None else o[0]["participants"]
    )
    return {
        "leader": names[leader],
        "votes": by_votes[0]["votes"],
        "votes_challenger": by_votes[1],
        "participants": by_people[0]["participants"],
        "participants_challenger": by_people[1],
    }


def digit_effects(data, reference: str, level: float = 0.95) -> dict:
    """The choice model fitted on each digit's questions alone, with cluster-robust Wald
    intervals (a descriptive breakdown; :func:`interaction_test` is the test)."""
    from scipy import stats

    from .choice import design_matrix, fit_types, robust_covariance

    ref = data.methods.index(reference)
    others = [m for i, m in enumerate(data.methods) if i != ref]
    x, _ = design_matrix(data.shown, ref)
    digits = np.unique(data.digit)
    z = stats.norm.ppf(0.5 + level / 2)
    per_digit = {}
    for d in digits:
        counts = data.only_digit(int(d))
        fit = fit_types(x, data.chosen, counts.sum(axis=0)[None])
        row = {"n_questions": int(counts.sum())}
        if fit.converged[0]:
            cov = robust_covariance(x, data.chosen, counts, fit.theta[0])
            se = np.sqrt(np.diag(cov))
            for i, m in enumerate(others):
                b = float(fit.theta[0, i])
                row[m] = {"coef": b, "ci": [b - z * float(se[i]), b + z * float(se[i])]}
        else:
            row["note"] = "no finite estimate (a method was never chosen for this digit)"
        per_digit[str(int(d))] = row
    return {
        "reference": reference,
        "interval": "cluster-robust Wald",
        "digits": per_digit,
    }


def interaction_test(
    real: pd.DataFrame,
    methods: tuple[str, ...],
    reference: str,
    permutations: int = INTERACTION_PERMUTATIONS,
    seed: int = 0,
) -> dict:
    """Do the method effects differ between digits?  A permutation test.

    Statistic: the likelihood ratio of the digit-by-method model (method effects per
    digit, shared slot effects) against the main model.  Its chi-square reference is too
    liberal here (participants differ, and a cluster-robust Wald test with 27 restrictions
    rejected 15% of true nulls at alpha 0.05 in simulation), so the null distribution is
    built by shuffling the digit labels among each participant's own questions, which is
    exact when choices do not depend on the digit.  p = (1 + #{LR* >= LR}) / (1 + B).
    """
    from .choice import design_matrix, fit_types, screen_orders

    k = len(methods)
    order_codes, order_table = screen_orders(real, methods)
    pid = pd.factorize(real["participant_id"])[0]
    slot = real["position"].to_numpy(dtype=np.int64) - 1
    digit = real["digit"].to_numpy(dtype=np.int64)
    levels = np.unique(digit)
    dcode = np.searchsorted(levels, digit)
    n_d = len(levels)
    cells = np.zeros((n_d, k))
    np.add.at(cells, (dcode, order_table[order_codes, slot]), 1)
    if n_d < 2 or cells.min() < 5:
        return {
            "tested": False,
            "reason": "fewer than 5 votes for some digit and method: the data do not "
            "support a digit-by-method model",
        }
    # types over the (screen order, chosen slot) pairs some question has: shuffling
    # digits never makes another, and with six methods most of the k! k pairs are unseen
    pairs, pair_code = np.unique(order_codes * k + slot, return_inverse=True)
    types = np.arange(len(pairs) * n_d)
    shown = order_table[pairs[types // n_d] // k]
    chosen = pairs[types // n_d] % k
    type_digit = levels[types % n_d]
    ref = methods.index(reference)
    x0, _ = design_matrix(shown, ref)
    x1, _ = design_matrix(shown, ref, digits=type_digit, n_methods=k)
    base_key = pair_code.ravel() * n_d

    def counts(codes):
        return np.bincount(base_key + codes, minlength=len(types)).astype(np.float64)

    observed = counts(dcode)[None]
    rng = np.random.default_rng(seed)
    grouped = np.argsort(pid, kind="stable")
    shuffled = np.empty((permutations, len(types)))
    for b in range(permutations):
        within = np.lexsort((rng.random(len(pid)), pid))
        codes = np.empty_like(dcode)
        codes[grouped] = dcode[within]
        shuffled[b] = counts(codes)
    null = fit_types(x0, chosen, observed)  # the main model ignores digits: one fit
    full = fit_types(x1, chosen, np.vstack([observed, shuffled]))
    if not (null.converged[0] and full.converged[0]):
        return {"tested": False, "reason": "the digit-by-method model did not converge"}
    lr = 2 * (full.loglik - null.loglik[0])
    lr[1:][~full.converged[1:]] = np.inf  # no finite fit: counted against the data
    exceed = int(np.sum(lr[1:] >= lr[0] - 1e-9 * abs(lr[0])))
    return {
        "tested": True,
        "test": "permutation test (digits shuffled within participants) of the likelihood "
        "ratio, digit-by-method model vs main model",
        "lr": float(lr[0]),
        "df": (n_d - 1) * (k - 1),
        "permutations": permutations,
        "seed": seed,
        "p": (1 + exceed) / (1 + permutations),
    }
