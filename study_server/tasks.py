"""The designs that measure whether an explanation helps: forward simulation, distinction
and agreement, each with a no-explanation condition between participants.

The protocol (docs/designs.md gives the sources):

``forward``      (Hase & Bansal 2020, after Doshi-Velez & Kim 2017) a learning phase of
                 ``learn_items`` images, each shown with its explanation (by condition);
                 the participant predicts the model's answer and the next page tells them
                 what the model answered.  Then a test phase of ``test_items`` new images,
                 without explanations (unless ``explain_in_test``) and without feedback:
                 the participant predicts the model's answer, scored against the model's
                 prediction, never the truth.
``distinction``  (HIVE, Kim et al. 2022) four options, the model's top four classes, each
                 with the explanation for that class; the participant picks the one the
                 model predicted.  Chance is 25%.
``agreement``    (HIVE) one prediction with its explanation; the participant says on a
                 4-point scale how confident they are that it is correct.  An answer is
                 correct when "probably/definitely correct" meets a right prediction or
                 "probably/definitely wrong" a wrong one.

The instructions show HIVE's preview: one example the model got right and one it got
wrong, with the answer.  Attention checks are instructed answers in the task's own
widget ("choose 7", "choose option 3", "choose Definitely wrong").

Conditions: "none" shows the image alone; a method shows its map over the image.  A
participant's condition is fixed when they consent (:func:`assign_condition`).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from functools import lru_cache

from sqlalchemy import update

from . import tokens
from .models import Study

__all__ = [
    "TaskDesign",
    "design_of",
    "assign_condition",
    "build_items",
    "score",
    "n_choices",
    "AGREEMENT_SCALE",
]

AGREEMENT_SCALE = ("Definitely wrong", "Probably wrong", "Probably correct",
                   "Definitely correct")  # fmt: skip
DISTINCTION_OPTIONS = 4
S = Study.__table__


@dataclass(frozen=True)
class TaskDesign:
    task: str
    conditions: tuple[str, ...]
    learn_items: int
    test_items: int
    attention_checks: int
    explain_in_test: bool

    @property
    def n_items(self) -> int:
        return self.learn_items + self.test_items + self.attention_checks


@lru_cache(maxsize=256)
def design_of(config_json: str | None) -> TaskDesign | None:
    """The study's help design, or None for the preference design (cached per config)."""
    design = json.loads(config_json or "{}").get("design") or {}
    if design.get("task", "preference") == "preference":
        return None
    return TaskDesign(
        task=design["task"],
        conditions=tuple(design["conditions"]),
        learn_items=int(design["learn_items"]),
        test_items=int(design["test_items"]),
        attention_checks=int(design["attention_checks"]),
        explain_in_test=bool(design["explain_in_test"]),
    )


def assign_condition(conn, study_id: int, secret: str, conditions: tuple[str, ...]) -> str:
    """The next arrival's condition: permuted blocks of the k conditions.

    The study's arrival counter is incremented in the request's transaction (one UPDATE
    .. RETURNING, atomic on PostgreSQL and SQLite), so concurrent arrivals, in any gunicorn
    worker, get distinct numbers; arrival n falls in block n // k, whose order is a
    permutation seeded by the study's secret.  Every complete block holds each condition
    once: the counts never differ by more than one among those who arrived."""
    n = conn.execute(
        update(S).where(S.c.id == study_id).values(arrivals=S.c.arrivals + 1)
        .returning(S.c.arrivals)
    ).scalar_one() - 1  # fmt: skip
    k = len(conditions)
    block = list(conditions)
    random.Random(tokens.keyed(secret, "block", n // k)).shuffle(block)
    return block[n % k]


def n_choices(design: TaskDesign, n_classes: int) -> int:
    """Answers an item of this task offers."""
    return {"forward": n_classes, "distinction": DISTINCTION_OPTIONS,
            "agreement": len(AGREEMENT_SCALE)}[design.task]  # fmt: skip


def _picture(stimuli, item: dict, condition: str, class_index: int, explain: bool) -> str:
    if condition == "none" or not explain:
        return item["image"]
    return item["maps"][condition][str(class_index)]


def build_items(design: TaskDesign, stimuli, condition: str, seed: int) -> list[dict]:
    """The participant's items as rows of the items table (positions from 1).

    ``digit`` holds the item's target: forward, the class the model predicted (or, for a
    check, the class asked); distinction, the option (1-4) the model predicted (or the
    option asked); agreement, 1 if the model is right else 0 (a check: the scale point
    asked, 1-4)."""
    rng = random.Random(seed)
    learn = rng.sample(stimuli.split("learn"), design.learn_items) if design.learn_items else []
    test = rng.sample(stimuli.split("test"), design.test_items)
    rows = [_item(design, stimuli, condition, it, "learn", rng) for it in learn]
    tested = [_item(design, stimuli, condition, it, "test", rng) for it in test]
    # checks show images this participant sees nowhere else (the pools' unused items), so
    # no learning image reappears among the test phase and no image is answered twice
    used = {it["id"] for it in learn + test}
    unused = [it for it in stimuli.items if it["id"] not in used]
    pool = unused if len(unused) >= design.attention_checks else stimuli.items
    for it in rng.sample(pool, design.attention_checks):
        spot = rng.randint(0, len(tested))
        tested.insert(spot, _check(design, stimuli, it, rng))
    rows += tested
    for position, row in enumerate(rows, start=1):
        row["position"] = position
    return rows


def _item(design, stimuli, condition, it, phase, rng) -> dict:
    explain = phase == "learn" or design.explain_in_test or design.task != "forward"
    base = {"is_check": False, "phase": phase, "stimulus": it["id"]}
    if design.task == "distinction":
        classes = list(it["top"][:DISTINCTION_OPTIONS])
        rng.shuffle(classes)
        slots = [[_picture(stimuli, it, condition, c, True), c, _role(it)] for c in classes]
        return base | {"digit": classes.index(it["prediction"]) + 1, "slots": slots}
    picture = _picture(stimuli, it, condition, it["prediction"], explain)
    target = it["prediction"] if design.task == "forward" else int(it["model_correct"])
    return base | {"digit": target, "slots": [[picture, it["prediction"], _role(it)]]}


def _role(it: dict) -> str:
    """Slots record whether the model is right on the item (the export's model_correct)."""
    return "model-right" if it["model_correct"] else "model-wrong"


def _check(design, stimuli, it, rng) -> dict:
    """An instructed answer in the task's own widget."""
    n_classes = len(stimuli.class_names)
    if design.task == "forward":
        asked = rng.randrange(n_classes)
        slots = [[it["image"], asked, "check"]]
    elif design.task == "distinction":
        asked = rng.randint(1, DISTINCTION_OPTIONS)
        classes = list(it["top"][:DISTINCTION_OPTIONS])
        slots = [[it["image"], c, "check"] for c in classes]
    else:
        asked = rng.randint(1, len(AGREEMENT_SCALE))
        slots = [[it["image"], it["prediction"], "check"]]
    return {"is_check": True, "phase": "check", "stimulus": it["id"], "digit": asked,
            "slots": slots}  # fmt: skip


def score(design: TaskDesign, phase: str, target: int, response: int) -> bool:
    """Whether ``response`` meets the item's target (see :func:`build_items`)."""
    if design.task == "forward":
        return response - 1 == target  # buttons are numbered from 1, classes from 0
    if design.task == "agreement" and phase != "check":
        return (response >= 3) == bool(target)
    return response == target
