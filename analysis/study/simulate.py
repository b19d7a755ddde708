"""Seeded simulation of a study export, for tests, benchmarks and power checks.

This is *not* study data: it produces tables in the study server's export format from a
stated model of participants, so the analysis can be exercised end to end and its
behaviour compared with known ground truth.

Model: an attentive participant has their own method preferences drawn from a Dirichlet
distribution centred on ``preferences`` (``concentration`` sets how much participants
differ; ``None`` = everyone identical) and passes each attention check with probability
``p_check_attentive``; an inattentive participant ("random clicker") picks uniformly and
passes a check with probability 1/k for k methods.  Each question shows every method
once in a random screen order and the choice follows the conditional logit of
:mod:`analysis.study.choice`: ``position_logits`` (one log-odds per screen slot)
optionally makes some slots more attractive.  A fraction of participants stop early (an
incomplete survey).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from .votes import METHODS

__all__ = ["PAPER_PREFERENCES", "PAPER_VOTES", "simulate_export"]

#: the paper's vote totals over 83 kept participants (Ahern et al. 2020)
PAPER_VOTES = {"normlime": 939, "lime": 438, "smoothgrad": 132, "vargrad": 151}
PAPER_PREFERENCES = tuple(PAPER_VOTES[m] / sum(PAPER_VOTES.values()) for m in METHODS)


def simulate_export(
    n_participants: int,
    *,
    methods: Sequence[str] = METHODS,
    preferences: tuple[float, ...] | None = None,
    concentration: float | None = 20.0,
    p_inattentive: float = 0.1,
    p_check_attentive: float = 0.97,
    p_incomplete: float = 0.05,
    position_logits: tuple[float, ...] | None = None,
    real_questions: int = 20,
    attention_checks: int = 5,
    classes: int = 10,
    random_state: int = 0,
) -> pd.DataFrame:
    """Return an export table (one row per answer) drawn from the model above.

    ``methods`` are the study's (the paper's four by default), ``preferences`` one weight
    per method (default: the paper's vote shares for its four methods, else equal);
    real question i asks class i mod ``classes``.

    Columns as the study server's ``export-votes`` writes them: participant_id,
    question_index (1-based), is_attention_check, digit (class index), chosen_method,
    passed, position (screen slot 1-k), options (the screen order), response_ms, study,
    mode, completed, checks_passed.  Fully vectorised (no per-participant loop): 10,000
    participants take well under a second.
    """
    rng = np.random.default_rng(random_state)
    n, q = n_participants, real_questions + attention_checks
    methods = tuple(methods)
    k = len(methods)
    pref = np.asarray(_preferences(methods, preferences), dtype=float)
    pref = pref / pref.sum()

    inattentive = rng.random(n) < p_inattentive
    if concentration is None:
        probs = np.broadcast_to(pref, (n, k)).copy()
    else:
        probs = rng.dirichlet(pref * concentration, size=n)
    probs[inattentive] = 1.0 / k

    # which questions are checks: a random subset per participant (argsort of noise)
    order = np.argsort(rng.random((n, q)), axis=1)
    is_check = order < attention_checks

    # screen order: slot s shows method perm[s].  The choice follows the conditional
    # logit the analysis fits: P(slot s) is proportional to the participant's preference
    # for the method in s times exp(position_logits[s]).
    perm = np.argsort(rng.random((n, q, k)), axis=2)
    weight = np.take_along_axis(probs[:, None, :], perm, axis=2)
    if position_logits is not None:
        weight = weight * np.exp(np.asarray(position_logits, dtype=float))
    cdf = np.cumsum(weight / weight.sum(axis=2, keepdims=True), axis=2)
    u = rng.random((n, q))
    position = np.minimum((u[:, :, None] > cdf).sum(axis=2), k - 1)
    method = np.take_along_axis(perm, position[:, :, None], axis=2)[:, :, 0]
    options = _screen_orders(perm.reshape(n * q, k), methods)

    p_pass = np.where(inattentive, 1.0 / k, p_check_attentive)
    passed = rng.random((n, q)) < p_pass[:, None]

    # real questions show each class equally often; checks use random classes
    digit = np.where(is_check, rng.integers(0, classes, size=(n, q)), 0)
    real_rank = np.cumsum(~is_check, axis=1) - 1
    digit = np.where(is_check, digit, real_rank % classes)

    incomplete = rng.random(n) < p_incomplete
    stop = np.where(incomplete, rng.integers(1, q, size=n), q)  # answers given
    answered = np.arange(q)[None, :] < stop[:, None]

    ids = np.char.add("p", np.char.zfill(np.arange(1, n + 1).astype(str), 5))
    rows = answered.ravel()
    check_flat = is_check.ravel()[rows]
    checks_passed = np.sum(is_check & passed & answered, axis=1)
    frame = pd.DataFrame(
        {
            "participant_id": np.repeat(ids, q)[rows],
            "question_index": np.tile(np.arange(1, q + 1), n)[rows],
            "is_attention_check": check_flat,
            "digit": digit.ravel()[rows],
            "chosen_method": np.where(check_flat, "", np.array(methods)[method.ravel()[rows]]),
            "passed": pd.array(np.where(check_flat, passed.ravel()[rows], False), dtype="boolean"),
            "position": position.ravel()[rows] + 1,
            "options": np.where(check_flat, "", options[rows]),
            "response_ms": rng.integers(800, 9000, size=n * q)[rows],
            "study": "simulated",
            "mode": "live",
            "completed": np.repeat(~incomplete, q)[rows],
            "checks_passed": np.repeat(checks_passed, q)[rows],
        }
    )
    frame.loc[~frame["is_attention_check"], "passed"] = pd.NA
    return frame


def _preferences(methods: tuple[str, ...], preferences) -> tuple[float, ...]:
    if preferences is None:
        return PAPER_PREFERENCES if methods == METHODS else (1.0,) * len(methods)
    if len(preferences) != len(methods):
        raise ValueError(f"need one preference per method ({len(methods)}), got {len(preferences)}")
    return tuple(preferences)


def _screen_orders(perm: np.ndarray, methods: tuple[str, ...]) -> np.ndarray:
    """Rows of method indices as ``a|b|c|d`` strings (one join per distinct order)."""
    orders, inverse = np.unique(perm, axis=0, return_inverse=True)
    names = np.array(["|".join(methods[i] for i in order) for order in orders], dtype=object)
    return names[inverse.ravel()]
