"""Survey design: a pure function of a seed.

Each participant answers 25 items (paper, "Experimental Design"): 20 real questions —
every digit 0-9 twice — each showing the four study methods' class-level maps for that
digit in an independently shuffled order, and 5 attention checks at random positions.

An attention check follows the paper's Figure 4: one option is the map of the asked digit,
the other three are the *same* map of a look-alike digit (Figure 4 pairs 3 with 8), which
cannot separate the two digits.  All four options come from one method, so the method's
rendering style is no cue; the duplicates are.  The check's method is drawn from
CHECK_METHODS (NormLIME and LIME), whose maps show digit shapes; the paper itself notes
that SmoothGrad and VarGrad maps "do not appear to resemble anything semantically
meaningful", which would make a check built from them unfair rather than obvious.

Randomness comes only from ``random.Random(seed).random()``, whose output Python
guarantees to keep stable across versions, so a stored seed reproduces a survey exactly
(shuffles and draws are implemented here on top of it for the same reason).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = [
    "SURVEY_VERSION",
    "N_ITEMS",
    "N_CHECKS",
    "N_OPTIONS",
    "STUDY_METHODS",
    "CHECK_METHODS",
    "LOOKALIKE",
    "Slot",
    "SurveyItem",
    "design_survey",
    "new_seed",
]

#: bump when the design rules below change; stored with every participant
SURVEY_VERSION = 1
STUDY_METHODS = ("normlime", "lime", "smoothgrad", "vargrad")
CHECK_METHODS = ("normlime", "lime")
DIGITS = tuple(range(10))
REPEATS = 2
N_CHECKS = 5
N_ITEMS = len(DIGITS) * REPEATS + N_CHECKS
N_OPTIONS = len(STUDY_METHODS)
#: the attention-check distractor digit: a look-alike of the asked digit (Figure 4: 3 / 8)
LOOKALIKE = {0: 6, 1: 7, 2: 7, 3: 8, 4: 9, 5: 6, 6: 5, 7: 1, 8: 3, 9: 4}

ROLE_OPTION = "option"  # a real question's method map
ROLE_CORRECT = "correct"  # the attention check's map of the asked digit
ROLE_DISTRACTOR = "distractor"  # the attention check's duplicated look-alike map


@dataclass(frozen=True)
class Slot:
    """What one on-screen option shows: ``method``'s map of ``digit``."""

    method: str
    digit: int
    role: str

    def as_list(self) -> list:
        return [self.method, self.digit, self.role]


@dataclass(frozen=True)
class SurveyItem:
    position: int  # 1-based order of appearance
    is_check: bool
    digit: int  # the asked digit
    slots: tuple[Slot, ...]  # left to right

    @property
    def correct_choice(self) -> int | None:
        """1-based screen position of an attention check's correct option."""
        for i, slot in enumerate(self.slots, start=1):
            if slot.role == ROLE_CORRECT:
                return i
        return None


class _StableRng:
    """Shuffles and draws built only on ``random.Random.random`` (stable across Pythons)."""

    def __init__(self, seed: int):
        self._random = random.Random(int(seed)).random

    def below(self, n: int) -> int:
        return min(int(self._random() * n), n - 1)

    def shuffled(self, values) -> list:
        out = list(values)
        for i in range(len(out) - 1, 0, -1):  # Fisher-Yates
            j = self.below(i + 1)
            out[i], out[j] = out[j], out[i]
        return out

    def choice(self, values):
        values = tuple(values)
        return values[self.below(len(values))]


def design_survey(seed: int, methods: tuple[str, ...] = STUDY_METHODS) -> list[SurveyItem]:
    """The 25 items for ``seed`` (deterministic; the same seed gives the same survey)."""
    if len(methods) != N_OPTIONS or len(set(methods)) != N_OPTIONS:
        raise ValueError(f"a survey needs {N_OPTIONS} distinct methods, got {methods!r}")
    rng = _StableRng(seed)
    check_positions = set(rng.shuffled(range(1, N_ITEMS + 1))[:N_CHECKS])
    real_digits = rng.shuffled([d for d in DIGITS for _ in range(REPEATS)])
    check_digits = rng.shuffled(DIGITS)[:N_CHECKS]
    check_methods = [m for m in methods if m in CHECK_METHODS] or list(methods)
    items: list[SurveyItem] = []
    real_iter, check_iter = iter(real_digits), iter(check_digits)
    for position in range(1, N_ITEMS + 1):
        if position in check_positions:
            digit = next(check_iter)
            method = rng.choice(check_methods)
            correct = rng.below(N_OPTIONS)
            slots = tuple(
                Slot(method, digit, ROLE_CORRECT)
                if i == correct
                else Slot(method, LOOKALIKE[digit], ROLE_DISTRACTOR)
                for i in range(N_OPTIONS)
            )
            items.append(SurveyItem(position, True, digit, slots))
        else:
            digit = next(real_iter)
            slots = tuple(Slot(m, digit, ROLE_OPTION) for m in rng.shuffled(methods))
            items.append(SurveyItem(position, False, digit, slots))
    return items


def new_seed() -> int:
    """A fresh per-participant seed (fits a signed 64-bit column)."""
    import secrets

    return secrets.randbits(62)
