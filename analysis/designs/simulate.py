"""Seeded simulation of a responses export (forward simulation, distinction, agreement).

This is *not* study data: it writes tables in the study server's responses format
(``explainers.votes_schema.RESPONSE_COLUMNS``) from a stated model, so that the analysis,
its tests, the power calculation and a worked example can run against known ground truth.

Model.  Participants are assigned between subjects to the conditions in turn (a random
permutation, so the groups differ in size by at most one).  The item pool has ``items``
stimuli; item ``i`` has a random effect ``b_i ~ N(0, item_sd^2)``, a model prediction (a
class) and whether that prediction is right (``model_accuracy`` of the pool, rounded).
Participant ``p`` has ``a_p ~ N(0, participant_sd^2)`` and answers ``items_per_participant``
test items drawn without replacement from the pool, in a random order; an attentive
participant answers item ``i`` correctly with probability

    expit(logit(baseline_accuracy) + effect[condition] + a_p + b_i)

which is the model ``glmer(correct ~ condition + (1|participant) + (1|item))`` fits:
``baseline_accuracy`` is the baseline condition's accuracy for a typical participant on a
typical item (not the marginal share correct), ``effect[c] = log(odds_ratios[c])``.  With
``odds_ratios_model_wrong`` the effect differs on items the model gets wrong (the
over-reliance pattern of Bansal et al. 2021: an explanation that raises agreement with
right and wrong predictions alike).

An inattentive participant (``p_inattentive``) answers at random: correct with the
task's chance probability, and passes each attention check with that probability too;
an attentive one passes a check with ``p_check_attentive``.  A share ``p_incomplete``
stops early (``completed`` false).  Forward simulation adds a learning phase of
``learn_items`` items (phase "learn") before the test.

What each task's ``response`` holds (votes_schema): forward, a class index (the model's
prediction when correct, another class otherwise); distinction, the option 1-4 chosen
(the model's true pair sits at a random option); agreement, a confidence 1-4 (3-4 = "the
model is right"), and ``correct`` = (confidence >= 3) == model_correct.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from explainers.votes_schema import RESPONSE_COLUMNS, TASKS

__all__ = ["simulate_responses"]

OPTIONS = 4  # distinction: four prediction-explanation pairs; agreement: a 4-point scale


def simulate_responses(
    n_participants: int,
    *,
    task: str = "forward",
    conditions: Sequence[str] = ("none", "normlime"),
    odds_ratios: Mapping[str, float] | None = None,
    odds_ratios_model_wrong: Mapping[str, float] | None = None,
    baseline_accuracy: float = 0.6,
    participant_sd: float = 0.8,
    item_sd: float = 1.0,
    items: int = 40,
    items_per_participant: int = 20,
    learn_items: int = 10,
    attention_checks: int = 3,
    classes: int = 10,
    model_accuracy: float = 0.75,
    p_inattentive: float = 0.05,
    p_check_attentive: float = 0.97,
    p_incomplete: float = 0.03,
    study: str = "simulated",
    mode: str = "live",
    random_state: int = 0,
) -> pd.DataFrame:
    """One row per answer, columns ``RESPONSE_COLUMNS``; the first condition is the
    baseline (its odds ratio is 1).  Values are typed (ints, bools); ``model_correct`` is
    missing on check rows.  Vectorised over participants."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    conditions = tuple(conditions)
    if len(conditions) < 2 or len(set(conditions)) != len(conditions):
        raise ValueError("give two or more distinct conditions, the baseline first")
    if not 0 < baseline_accuracy < 1:
        raise ValueError("baseline_accuracy must be between 0 and 1")
    if items_per_participant > items:
        raise ValueError("items_per_participant cannot exceed the item pool")
    rng = np.random.default_rng(random_state)
    n, k = n_participants, len(conditions)
    ratios = {c: 1.0 for c in conditions} | dict(odds_ratios or {})
    wrong = ratios | dict(odds_ratios_model_wrong or {})
    effect = np.log([ratios[c] for c in conditions])
    effect_wrong = np.log([wrong[c] for c in conditions])
    chance = 1.0 / classes if task == "forward" else 0.25 if task == "distinction" else 0.5

    # items: random effect, the model's prediction and whether it is right
    item_effect = rng.normal(0.0, item_sd, size=items)
    model_right = np.zeros(items, dtype=bool)
    model_right[rng.permutation(items)[: int(round(model_accuracy * items))]] = True
    prediction = rng.integers(0, classes, size=items)

    condition = np.empty(n, dtype=np.int64)
    condition[rng.permutation(n)] = np.arange(n) % k
    person = rng.normal(0.0, participant_sd, size=n)
    inattentive = rng.random(n) < p_inattentive

    m = items_per_participant
    shown = np.argsort(rng.random((n, items)), axis=1)[:, :m]  # test items, in order
    logit = np.log(baseline_accuracy / (1 - baseline_accuracy))
    eff = np.where(model_right[shown], effect[condition][:, None], effect_wrong[condition][:, None])
    eta = logit + eff + person[:, None] + item_effect[shown]
    p_correct = np.where(inattentive[:, None], chance, 1.0 / (1.0 + np.exp(-eta)))
    correct = rng.random((n, m)) < p_correct
    response = _responses(task, correct, prediction[shown], model_right[shown], classes, rng)

    n_learn = learn_items if task == "forward" else 0
    learn = np.argsort(rng.random((n, items)), axis=1)[:, :n_learn]
    learn_correct = rng.random((n, n_learn)) < np.where(inattentive[:, None], chance, 0.5)
    learn_response = _responses(
        task, learn_correct, prediction[learn], model_right[learn], classes, rng
    )

    c = attention_checks
    passed = rng.random((n, max(c, 1))) < np.where(inattentive, chance, p_check_attentive)[:, None]
    check_response = np.where(passed, 1, 2)

    # the survey: learning block first, then the test items and the checks shuffled
    q_main = m + c
    order = np.argsort(rng.random((n, q_main)), axis=1)  # slot -> (test j | check j - m)
    total = n_learn + q_main
    incomplete = rng.random(n) < p_incomplete
    answered = np.where(incomplete, rng.integers(1, total, size=n), total)

    pid = np.char.add("p", np.char.zfill(np.arange(1, n + 1).astype(str), 5))
    item_names = np.char.add("i", np.char.zfill(np.arange(items).astype(str), 4))
    check_names = np.char.add("check-", np.arange(1, max(c, 1) + 1).astype(str))
    is_check = order >= m
    idx = np.where(is_check, 0, order)
    cidx = np.where(is_check, order - m, 0)
    rows = np.arange(n)[:, None]
    main = {
        "phase": np.where(is_check, "check", "test"),
        "item": np.where(is_check, check_names[cidx], item_names[shown[rows, idx]]),
        "correct": np.where(is_check, passed[rows, cidx], correct[rows, idx]).astype(int),
        "response": np.where(is_check, check_response[rows, cidx], response[rows, idx]),
        "model_correct": np.where(is_check, -1, model_right[shown[rows, idx]].astype(int)),
    }
    if n_learn:
        main = {
            "phase": np.column_stack([np.full((n, n_learn), "learn"), main["phase"]]),
            "item": np.column_stack([item_names[learn], main["item"]]),
            "correct": np.column_stack([learn_correct.astype(int), main["correct"]]),
            "response": np.column_stack([learn_response, main["response"]]),
            "model_correct": np.column_stack(
                [model_right[learn].astype(int), main["model_correct"]]
            ),
        }
    keep = (np.arange(total)[None, :] < answered[:, None]).ravel()
    # checks passed among the checks actually answered
    check_slots = main["phase"] == "check"
    done = np.arange(total)[None, :] < answered[:, None]
    checks_passed = np.sum(check_slots & done & (main["correct"] == 1), axis=1)
    frame = pd.DataFrame(
        {
            "participant": np.repeat(pid, total)[keep],
            "condition": np.repeat(np.array(conditions)[condition], total)[keep],
            "task": task,
            "phase": main["phase"].ravel()[keep],
            "item": main["item"].ravel()[keep],
            "correct": main["correct"].ravel()[keep],
            "response": main["response"].ravel()[keep],
            "rt_ms": rng.integers(1500, 12000, size=n * total)[keep],
            "model_correct": pd.array(main["model_correct"].ravel()[keep], dtype="Int64"),
            "position": np.tile(np.arange(1, total + 1), n)[keep],
            "study": study,
            "mode": mode,
            "adapter": "plain",
            "completed": np.repeat(~incomplete, total)[keep],
            "checks_passed": np.repeat(checks_passed, total)[keep],
        }
    )
    frame.loc[frame["model_correct"] < 0, "model_correct"] = pd.NA
    return frame[RESPONSE_COLUMNS]


def _responses(task, correct, prediction, model_right, classes, rng) -> np.ndarray:
    """The ``response`` column that goes with ``correct`` (see the module docstring)."""
    if task == "forward":
        other = (prediction + rng.integers(1, classes, size=prediction.shape)) % classes
        return np.where(correct, prediction, other)
    if task == "distinction":
        target = rng.integers(1, OPTIONS + 1, size=correct.shape)
        other = (target - 1 + rng.integers(1, OPTIONS, size=correct.shape)) % OPTIONS + 1
        return np.where(correct, target, other)
    says_right = np.where(correct, model_right, ~model_right)
    strength = rng.integers(0, 2, size=correct.shape)  # 3 or 4 / 2 or 1
    return np.where(says_right, 3 + strength, 2 - strength)
