"""Survey design: a pure function of a seed and a :class:`SurveyDesign`.

The MNIST study (:data:`MNIST_DESIGN`, the paper's "Experimental Design"): each
participant answers 25 items, 20 real questions — every digit 0-9 twice — each showing the
four study methods' class-level maps for that digit in an independently shuffled order,
and 5 attention checks at random positions.  Other studies (issue 13) ask any subset of
their bundle's classes, ``repeats`` times each, with 2-6 methods as the options and their
own number of checks; the rules below are the same for every design.

An attention check follows the paper's Figure 4 ("Options 1 and 4 are duplicates and
cannot distinguish well between labels 3 and 8").  Two versions of the rule exist; every
participant's version is stored with them and their items are stored at creation, so a
survey keeps the rule it started under:

* version 2 (bundles with class pictures, docs/stimuli-protocol.md part two): the options
  are *pictures* of classes (each class's mean image, drawn by the maps' rendering rule),
  never a method's map, so no method is seen more often or is "the right answer" because
  of the checks.  One option is the asked class's picture; with four or more options two
  are the *same* picture of its look-alike (Figure 4's duplicates), with three or two
  options one is; every other option is the picture of a further class drawn at random.
  At least two options always differ from all the others, so picking the odd one out
  does not find the answer;
* version 1 (bundles without pictures): one option is the map of the asked class and all
  the others the *same* map of its look-alike, all from one of the design's
  ``check_methods`` -- which the odd one out always answers.

Randomness comes only from ``random.Random(seed).random()``, whose output Python
guarantees to keep stable across versions, so a stored seed reproduces a survey exactly
(shuffles and draws are implemented here on top of it for the same reason).  The MNIST
design draws exactly as it did before designs existed, so stored MNIST seeds still
reproduce their surveys (tests/test_survey_design.py pins one).
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace

from explainers.bundle import STUDY_METHODS

__all__ = [
    "SURVEY_VERSION",
    "CHECK_PICTURE",
    "CHECK_KINDS",
    "N_ITEMS",
    "N_CHECKS",
    "N_OPTIONS",
    "MIN_OPTIONS",
    "MAX_OPTIONS",
    "MAX_ITEMS",
    "STUDY_METHODS",
    "CHECK_METHODS",
    "LOOKALIKE",
    "SurveyDesign",
    "MNIST_DESIGN",
    "MNIST_DESIGN_V2",
    "Slot",
    "SurveyItem",
    "design_survey",
    "new_seed",
]

#: the newest design rules (version 2: checks built from class pictures); every
#: participant stores the version of the design they were given (SurveyDesign.version)
SURVEY_VERSION = 2
#: the slot "method" of a class picture (explainers.bundle.PICTURE; never a method's name)
CHECK_PICTURE = "picture"
#: how a design's checks are built: "maps" (version 1) or "pictures" (version 2)
CHECK_KINDS = ("maps", "pictures")
#: the MNIST study's values, kept for callers written before designs existed (the
#: methods' one home is explainers.bundle.STUDY_METHODS, the bundle contract)
CHECK_METHODS = ("normlime", "lime")
DIGITS = tuple(range(10))
REPEATS = 2
N_CHECKS = 5
N_ITEMS = len(DIGITS) * REPEATS + N_CHECKS
N_OPTIONS = len(STUDY_METHODS)
#: the attention-check distractor digit: a look-alike of the asked digit (Figure 4: 3 / 8)
LOOKALIKE = {0: 6, 1: 7, 2: 7, 3: 8, 4: 9, 5: 6, 6: 5, 7: 1, 8: 3, 9: 4}

#: fewer than two options is no choice; more than six no longer fit one screen
MIN_OPTIONS, MAX_OPTIONS = 2, 6
#: far beyond what one sitting can answer; bounds the answer form's question number
MAX_ITEMS = 500
CLASS_PLACEHOLDER = "{class}"
#: defaults of a bundle's survey block (see SurveyDesign.from_bundle)
DEFAULT_REPEATS = REPEATS
DEFAULT_CHECKS = N_CHECKS

ROLE_OPTION = "option"  # a real question's method map
ROLE_CORRECT = "correct"  # the attention check's map of the asked class
ROLE_DISTRACTOR = "distractor"  # the attention check's duplicated look-alike map

_NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight",
                 "nine", "ten")  # fmt: skip
# a newline is how the MNIST wording is laid out in the page; any other control
# character would corrupt the pre-rendered item page (see pages.py)
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f]")


def _count_word(n: int) -> str:
    return _NUMBER_WORDS[n] if n < len(_NUMBER_WORDS) else str(n)


def default_question(n_options: int, n_classes: int) -> str:
    """The MNIST question's wording for any study: the class name instead of a digit."""
    return (
        f"From the following set of {_count_word(n_options)} images, please select the image "
        f"that best highlights the pixels that distinguish {CLASS_PLACEHOLDER} from the other "
        f"{_count_word(n_classes - 1)} possible classes."
    )


@dataclass(frozen=True)
class SurveyDesign:
    """What one study asks: which methods are the options, which classes, how often.

    ``lookalike`` maps a class to the class whose map is the check's distractor; it is
    stored as sorted pairs so the design stays hashable (pass a dict or pairs).
    """

    methods: tuple[str, ...]  # the options, in canonical order (the shuffles start here)
    classes: tuple[int, ...]  # the class indices asked
    class_names: tuple[str, ...]  # every bundle class, index = class id
    repeats: int
    attention_checks: int
    check_methods: tuple[str, ...]
    lookalike: tuple[tuple[int, int], ...]
    question: str  # contains CLASS_PLACEHOLDER once
    check_kind: str = "maps"  # "pictures": version 2's checks, from class pictures

    def __post_init__(self):
        pairs = self.lookalike.items() if isinstance(self.lookalike, Mapping) else self.lookalike
        normal = {
            "methods": tuple(self.methods),
            "classes": tuple(self.classes),
            "class_names": tuple(self.class_names),
            "check_methods": tuple(self.check_methods),
            "lookalike": tuple(sorted(pairs)),
        }
        for name, value in normal.items():
            object.__setattr__(self, name, value)
        problem = self._problem()
        if problem:
            raise ValueError(f"survey design: {problem}")

    @property
    def n_options(self) -> int:
        return len(self.methods)

    @property
    def version(self) -> int:
        """The survey version of these rules (stored with every participant)."""
        return 2 if self.check_kind == "pictures" else 1

    def at_version(self, version: int) -> SurveyDesign:
        """This design under the check rules of survey ``version`` (a stored participant's
        version reproduces their survey from their seed)."""
        if version not in (1, 2):
            raise ValueError(f"survey version must be 1 or 2, got {version!r}")
        return replace(self, check_kind="pictures" if version == 2 else "maps")

    @property
    def check_lookalike_copies(self) -> int:
        """Version 2: how many options show the look-alike's picture (two with four or
        more options, as in Figure 4; one with fewer, or the asked class would be the
        odd one out)."""
        return 2 if self.n_options >= 4 else 1

    @property
    def n_real(self) -> int:
        return len(self.classes) * self.repeats

    @property
    def n_items(self) -> int:
        return self.n_real + self.attention_checks

    @property
    def lookalikes(self) -> dict[int, int]:
        return dict(self.lookalike)

    @property
    def shown_classes(self) -> tuple[int, ...]:
        """Every class whose maps a participant can see: the asked ones and, when there
        are checks, their look-alikes."""
        shown = set(self.classes)
        if self.attention_checks:
            shown |= {self.lookalikes[c] for c in self.classes}
        return tuple(sorted(shown))

    def class_name(self, class_index: int) -> str:
        return self.class_names[class_index]

    def question_parts(self) -> tuple[str, str]:
        """The question's text before and after the asked class's name."""
        before, after = self.question.split(CLASS_PLACEHOLDER)
        return before, after

    def _problem(self) -> str | None:
        for check in (self._methods_problem, self._classes_problem, self._counts_problem,
                      self._lookalike_problem, self._question_problem,
                      self._checks_problem):  # fmt: skip
            problem = check()
            if problem:
                return problem
        return None

    def _methods_problem(self) -> str | None:
        m = self.methods
        if not MIN_OPTIONS <= len(m) <= MAX_OPTIONS or len(set(m)) != len(m):
            return (
                f"methods must be {MIN_OPTIONS}-{MAX_OPTIONS} distinct methods "
                f"(one option each), got {list(m)}"
            )
        if not all(isinstance(x, str) and x for x in m):
            return f"methods must be non-empty names, got {list(m)}"
        stray = [x for x in self.check_methods if x not in m]
        if stray:
            return f"check_methods {stray} are not among the methods {list(m)}"
        if self.attention_checks and not self.check_methods:
            return "check_methods must name at least one method when there are checks"
        return None

    def _classes_problem(self) -> str | None:
        names, asked = self.class_names, self.classes
        if len(names) < 2 or not all(isinstance(n, str) and n.strip() for n in names):
            return f"class_names must be at least two non-empty names, got {list(names)}"
        if not asked or len(set(asked)) != len(asked):
            return f"classes must be distinct class indices, at least one, got {list(asked)}"
        outside = [c for c in asked if not _is_index(c, len(names))]
        if outside:
            return f"classes {outside} are outside 0..{len(names) - 1}"
        return None

    def _counts_problem(self) -> str | None:
        if not _is_int(self.repeats) or self.repeats < 1:
            return f"repeats must be a whole number >= 1, got {self.repeats!r}"
        if not _is_int(self.attention_checks) or not 0 <= self.attention_checks <= self.n_real:
            return (
                f"attention_checks must be a whole number from 0 to the {self.n_real} real "
                f"questions, got {self.attention_checks!r}"
            )
        if self.n_items > MAX_ITEMS:
            return f"{self.n_items} items are more than the {MAX_ITEMS} a survey may have"
        return None

    def _lookalike_problem(self) -> str | None:
        n = len(self.class_names)
        for c, other in self.lookalike:
            if not (_is_index(c, n) and _is_index(other, n)) or c == other:
                return f"lookalike {c!r} -> {other!r} must pair two different classes of 0..{n - 1}"
        if len(dict(self.lookalike)) != len(self.lookalike):
            return "lookalike names a class twice"
        missing = [c for c in self.classes if c not in self.lookalikes]
        if self.attention_checks and missing:
            return f"lookalike must name a look-alike for every asked class; {missing} lack one"
        return None

    def _checks_problem(self) -> str | None:
        if self.check_kind not in CHECK_KINDS:
            return f"check_kind must be one of {', '.join(CHECK_KINDS)}, got {self.check_kind!r}"
        if self.check_kind != "pictures" or not self.attention_checks:
            return None
        needed = 2 + self.n_options - 1 - self.check_lookalike_copies
        if len(self.class_names) < needed:
            return (
                f"attention checks with {self.n_options} options need pictures of {needed} "
                f"classes (the asked one, its look-alike and further ones, so that the odd "
                f"one out is not the answer); the study has {len(self.class_names)}: set "
                "attention_checks = 0 or show fewer options"
            )
        return None

    def _question_problem(self) -> str | None:
        q = self.question
        if not isinstance(q, str) or q.count(CLASS_PLACEHOLDER) != 1 or _CONTROL.search(q):
            return f"question must be text with {CLASS_PLACEHOLDER} exactly once, got {q!r}"
        return None

    @classmethod
    def from_bundle(cls, bundle) -> SurveyDesign:
        """The design a maps bundle asks for (its manifest's ``survey`` block).

        A bundle without a survey block whose classes are the ten digits (every version-1
        bundle, and a version-2 MNIST bundle) is the MNIST study.  Raises ValueError.
        """
        names = _class_names(bundle)
        block = getattr(bundle, "survey", None)
        if block is None:
            block = bundle.manifest.get("survey")
        kind = "pictures" if _has_pictures(bundle) else "maps"
        if block is None and names == MNIST_DESIGN.class_names:
            return MNIST_DESIGN_V2 if kind == "pictures" else MNIST_DESIGN
        if not isinstance(block, Mapping | None):
            raise ValueError("survey design: the manifest's survey block must be an object")
        return cls._from_block(block or {}, names, _study_methods(bundle), kind)

    @classmethod
    def _from_block(
        cls, block: Mapping, names: tuple[str, ...], study_methods, check_kind: str = "maps"
    ) -> SurveyDesign:
        def get(key, default):
            value = block.get(key)
            return default if value is None else value

        methods = tuple(get("methods", study_methods))
        default_checks = tuple(m for m in methods if m in CHECK_METHODS) or methods
        return cls(
            methods=methods,
            classes=tuple(get("classes", range(len(names)))),
            class_names=names,
            repeats=get("repeats", DEFAULT_REPEATS),
            attention_checks=get("attention_checks", DEFAULT_CHECKS),
            check_methods=tuple(get("check_methods", default_checks)),
            lookalike=_lookalike_pairs(get("lookalike", {})),
            question=get("question", default_question(len(methods), len(names))),
            check_kind=check_kind,
        )


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_index(value, n: int) -> bool:
    return _is_int(value) and 0 <= value < n


def _lookalike_pairs(raw) -> dict:
    """A manifest's lookalike object as class -> class (JSON keys are always strings;
    the values are checked by the design)."""
    try:
        return {int(k): v for k, v in raw.items()}
    except (AttributeError, TypeError, ValueError):
        raise ValueError("survey design: lookalike must map class indices to classes") from None


def _class_names(bundle) -> tuple[str, ...]:
    names = getattr(bundle, "classes", None)
    if names is None:
        names = [c.get("name") for c in bundle.manifest.get("classes", [])]
    return tuple(str(n) for n in names) or MNIST_DESIGN.class_names


def _has_pictures(bundle) -> bool:
    has = getattr(bundle, "has_pictures", None)
    return bool(has) if has is not None else isinstance(bundle.manifest.get("pictures"), dict)


def _study_methods(bundle) -> tuple[str, ...]:
    listed = getattr(bundle, "study_methods", None) or bundle.manifest.get("study_methods")
    return tuple(listed or STUDY_METHODS)


#: the paper's MNIST study, exactly as it ran before designs existed
MNIST_DESIGN = SurveyDesign(
    methods=STUDY_METHODS,
    classes=DIGITS,
    class_names=tuple(str(d) for d in DIGITS),
    repeats=REPEATS,
    attention_checks=N_CHECKS,
    check_methods=CHECK_METHODS,
    lookalike=LOOKALIKE,
    # laid out on three lines as the item page always showed it
    question="From the following set of four images, please select the image that best\n"
    "highlights the pixels that distinguish the number {class}\n"
    "from the other nine possible digits.",
)


#: the MNIST study with version 2's checks (a bundle that draws class pictures)
MNIST_DESIGN_V2 = replace(MNIST_DESIGN, check_kind="pictures")


@dataclass(frozen=True)
class Slot:
    """What one on-screen option shows: ``method``'s map of class ``digit``."""

    method: str
    digit: int  # the class index (the name dates from the MNIST-only study)
    role: str

    def as_list(self) -> list:
        return [self.method, self.digit, self.role]


@dataclass(frozen=True)
class SurveyItem:
    position: int  # 1-based order of appearance
    is_check: bool
    digit: int  # the asked class index
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


def _check_classes(rng: _StableRng, classes: tuple[int, ...], n: int) -> list[int]:
    """``n`` check classes: distinct while the asked classes suffice (one shuffle, as the
    MNIST design always drew), else further shuffled rounds of every class."""
    drawn: list[int] = []
    while len(drawn) < n:
        drawn += rng.shuffled(classes)
    return drawn[:n]


def design_survey(
    seed: int, methods: tuple[str, ...] | None = None, design: SurveyDesign = MNIST_DESIGN
) -> list[SurveyItem]:
    """The items for ``seed`` (deterministic; the same seed gives the same survey).

    ``methods`` replaces the design's options (same count), for callers that only reorder
    or rename the MNIST study's methods.
    """
    if methods is None:
        methods = design.methods
    elif len(methods) != design.n_options or len(set(methods)) != design.n_options:
        raise ValueError(f"a survey needs {design.n_options} distinct methods, got {methods!r}")
    methods = tuple(methods)
    rng = _StableRng(seed)
    n_items, n_options = design.n_items, design.n_options
    check_positions = set(rng.shuffled(range(1, n_items + 1))[: design.attention_checks])
    real_classes = rng.shuffled([c for c in design.classes for _ in range(design.repeats)])
    check_classes = _check_classes(rng, design.classes, design.attention_checks)
    check_methods = [m for m in methods if m in design.check_methods] or list(methods)
    lookalikes = design.lookalikes
    items: list[SurveyItem] = []
    real_iter, check_iter = iter(real_classes), iter(check_classes)
    for position in range(1, n_items + 1):
        if position in check_positions:
            asked = next(check_iter)
            if design.check_kind == "pictures":
                slots = _picture_check(rng, design, asked)
            else:
                method = rng.choice(check_methods)
                correct = rng.below(n_options)
                slots = tuple(
                    Slot(method, asked, ROLE_CORRECT)
                    if i == correct
                    else Slot(method, lookalikes[asked], ROLE_DISTRACTOR)
                    for i in range(n_options)
                )
            items.append(SurveyItem(position, True, asked, slots))
        else:
            asked = next(real_iter)
            slots = tuple(Slot(m, asked, ROLE_OPTION) for m in rng.shuffled(methods))
            items.append(SurveyItem(position, False, asked, slots))
    return items


def _picture_check(rng: _StableRng, design: SurveyDesign, asked: int) -> tuple[Slot, ...]:
    """Version 2's check: the asked class's picture, its look-alike's picture once or twice,
    pictures of further random classes; in a uniformly random order."""
    look = design.lookalikes[asked]
    copies = design.check_lookalike_copies
    others = [c for c in range(len(design.class_names)) if c not in (asked, look)]
    further = rng.shuffled(others)[: design.n_options - 1 - copies]
    slots = [Slot(CHECK_PICTURE, asked, ROLE_CORRECT)]
    slots += [Slot(CHECK_PICTURE, look, ROLE_DISTRACTOR)] * copies
    slots += [Slot(CHECK_PICTURE, c, ROLE_DISTRACTOR) for c in further]
    return tuple(rng.shuffled(slots))


def new_seed() -> int:
    """A fresh per-participant seed (fits a signed 64-bit column)."""
    import secrets

    return secrets.randbits(62)
