"""The survey design: 25 items from a seed, as the paper's "Experimental Design" says."""

from __future__ import annotations

import dataclasses
from collections import Counter
from types import SimpleNamespace

import pytest

from study_server.survey import (
    CHECK_METHODS,
    LOOKALIKE,
    MNIST_DESIGN,
    N_CHECKS,
    N_ITEMS,
    N_OPTIONS,
    STUDY_METHODS,
    Slot,
    SurveyDesign,
    SurveyItem,
    design_survey,
    new_seed,
)


@pytest.mark.parametrize("seed", [0, 1, 7, 2**40 + 3, 2**62 - 1])
def test_every_survey_has_the_papers_structure(seed):
    items = design_survey(seed)
    assert len(items) == N_ITEMS == 25
    assert [it.position for it in items] == list(range(1, 26))
    real = [it for it in items if not it.is_check]
    checks = [it for it in items if it.is_check]
    assert len(real) == 20 and len(checks) == N_CHECKS == 5
    # every digit 0-9 exactly twice among the real questions
    assert Counter(it.digit for it in real) == {d: 2 for d in range(10)}
    for it in real:
        # the four study methods, each once, all showing the asked digit
        assert sorted(s.method for s in it.slots) == sorted(STUDY_METHODS)
        assert {s.digit for s in it.slots} == {it.digit}
        assert {s.role for s in it.slots} == {"option"}
        assert it.correct_choice is None
    for it in checks:
        correct = [s for s in it.slots if s.role == "correct"]
        distractors = [s for s in it.slots if s.role == "distractor"]
        assert len(correct) == 1 and len(distractors) == 3
        # Figure 4: the asked digit's map among duplicates of a look-alike digit's map
        assert correct[0].digit == it.digit
        assert len(set(distractors)) == 1
        assert distractors[0].digit == LOOKALIKE[it.digit] != it.digit
        # one method for all four options, so rendering style is no cue
        assert {s.method for s in it.slots} == {correct[0].method}
        assert correct[0].method in CHECK_METHODS
        assert it.slots[it.correct_choice - 1] == correct[0]
    assert len({it.digit for it in checks}) == 5


def test_a_seed_reproduces_its_survey_exactly():
    seed = new_seed()
    assert design_survey(seed) == design_survey(seed)
    assert 0 <= seed < 2**62
    assert design_survey(seed) != design_survey(seed + 1)


def test_design_is_frozen_for_stored_seeds():
    """Stored seeds must keep reproducing the same surveys: pin one design exactly."""
    items = design_survey(20200101)
    fingerprint = [
        (it.position, it.is_check, it.digit, tuple((s.method, s.digit) for s in it.slots))
        for it in items
    ]
    assert [p for p, check, *_ in fingerprint if check] == PINNED_CHECK_POSITIONS
    assert [d for _, _, d, _ in fingerprint] == PINNED_DIGITS
    assert [tuple(m for m, _ in slots) for *_, slots in fingerprint][:3] == PINNED_FIRST_ORDERS


PINNED_CHECK_POSITIONS = [3, 13, 19, 20, 24]
PINNED_DIGITS = [4, 3, 1, 6, 9, 1, 0, 5, 8, 5, 8, 7, 7, 3, 6, 9, 4, 7, 8, 6, 2, 1, 0, 4, 2]
PINNED_FIRST_ORDERS = [
    ("lime", "vargrad", "normlime", "smoothgrad"),
    ("normlime", "lime", "smoothgrad", "vargrad"),
    ("normlime", "normlime", "normlime", "normlime"),  # an attention check
]


def test_orders_and_positions_are_balanced_over_many_participants():
    """Method order is independent of slot; checks and correct slots spread evenly."""
    n = 1200
    slot_method = Counter()
    check_pos = Counter()
    correct_slot = Counter()
    for seed in range(n):
        for it in design_survey(seed):
            if it.is_check:
                check_pos[it.position] += 1
                correct_slot[it.correct_choice] += 1
            else:
                for slot, s in enumerate(it.slots, start=1):
                    slot_method[(slot, s.method)] += 1
    # each (slot, method) cell expects n*20/4 = 6000; a 5% band is > 6 standard deviations
    expected = n * 20 / 4
    for slot in range(1, 5):
        for method in STUDY_METHODS:
            assert abs(slot_method[(slot, method)] - expected) < 0.05 * expected
    assert set(check_pos) == set(range(1, 26))
    expected_pos = n * 5 / 25
    assert all(abs(c - expected_pos) < 0.25 * expected_pos for c in check_pos.values())
    expected_slot = n * 5 / 4
    assert all(abs(c - expected_slot) < 0.1 * expected_slot for c in correct_slot.values())


def test_bad_method_lists_are_refused():
    with pytest.raises(ValueError, match="4 distinct methods"):
        design_survey(1, ("a", "b", "c"))
    with pytest.raises(ValueError, match="4 distinct methods"):
        design_survey(1, ("a", "a", "b", "c"))


def _expand(pinned) -> list:
    """Full items from the compact literal: a real question lists its methods left to
    right; a check gives its method, its correct slot and the look-alike digit."""
    items = []
    for position, is_check, digit, spec in pinned:
        if is_check:
            method, correct, lookalike = spec
            slots = tuple(
                Slot(method, digit, "correct")
                if i == correct
                else Slot(method, lookalike, "distractor")
                for i in range(1, 5)
            )
        else:
            slots = tuple(Slot(m, digit, "option") for m in spec)
        items.append(SurveyItem(position, is_check, digit, slots))
    return items


def test_the_mnist_design_of_one_seed_is_pinned_item_by_item():
    """Generalising the design must not change one stored MNIST survey (seed 12345)."""
    assert design_survey(12345) == _expand(PINNED_12345)


#: design_survey(12345) as computed before the survey was generalised beyond MNIST
PINNED_12345 = [
    (1, False, 7, ("smoothgrad", "lime", "vargrad", "normlime")),
    (2, True, 4, ("lime", 1, 9)),
    (3, False, 9, ("smoothgrad", "vargrad", "lime", "normlime")),
    (4, False, 1, ("smoothgrad", "vargrad", "normlime", "lime")),
    (5, False, 4, ("vargrad", "lime", "smoothgrad", "normlime")),
    (6, True, 6, ("lime", 4, 5)),
    (7, False, 5, ("normlime", "vargrad", "smoothgrad", "lime")),
    (8, False, 6, ("smoothgrad", "vargrad", "normlime", "lime")),
    (9, False, 2, ("smoothgrad", "normlime", "vargrad", "lime")),
    (10, False, 4, ("smoothgrad", "lime", "normlime", "vargrad")),
    (11, False, 3, ("vargrad", "normlime", "lime", "smoothgrad")),
    (12, True, 8, ("normlime", 4, 3)),
    (13, False, 2, ("lime", "smoothgrad", "vargrad", "normlime")),
    (14, True, 9, ("lime", 3, 4)),
    (15, False, 0, ("lime", "smoothgrad", "vargrad", "normlime")),
    (16, True, 0, ("normlime", 3, 6)),
    (17, False, 1, ("smoothgrad", "lime", "normlime", "vargrad")),
    (18, False, 5, ("normlime", "vargrad", "smoothgrad", "lime")),
    (19, False, 8, ("smoothgrad", "vargrad", "normlime", "lime")),
    (20, False, 7, ("lime", "smoothgrad", "vargrad", "normlime")),
    (21, False, 0, ("vargrad", "lime", "smoothgrad", "normlime")),
    (22, False, 6, ("vargrad", "smoothgrad", "lime", "normlime")),
    (23, False, 8, ("vargrad", "smoothgrad", "normlime", "lime")),
    (24, False, 9, ("smoothgrad", "vargrad", "lime", "normlime")),
    (25, False, 3, ("lime", "vargrad", "smoothgrad", "normlime")),
]


# ----------------------------------------------------------------------------- designs

PETS = ("cat", "dog", "fox", "owl", "eel")


def pets_design(**changes) -> SurveyDesign:
    """Three methods, three of five classes asked twice, two checks."""
    base = SurveyDesign(
        methods=("normlime", "lime", "smoothgrad"),
        classes=(0, 2, 4),
        class_names=PETS,
        repeats=2,
        attention_checks=2,
        check_methods=("normlime", "lime"),
        lookalike={0: 1, 2: 1, 4: 3},
        question="Which map best shows what the model looks for in {class}?",
    )
    return dataclasses.replace(base, **changes)


def test_the_mnist_design_is_the_old_constants():
    d = MNIST_DESIGN
    assert (d.n_items, d.attention_checks, d.n_options) == (N_ITEMS, N_CHECKS, N_OPTIONS)
    assert d.methods == STUDY_METHODS and d.check_methods == CHECK_METHODS
    assert d.classes == tuple(range(10)) and d.class_names == tuple("0123456789")
    assert d.lookalikes == LOOKALIKE and d.repeats == 2
    assert design_survey(99) == design_survey(99, STUDY_METHODS) == design_survey(99, design=d)
    before, after = d.question_parts()
    assert before.endswith("distinguish the number ") and after.startswith("\nfrom the other")


def test_a_design_counts_its_items_and_options():
    d = pets_design()
    assert (d.n_options, d.n_real, d.n_items) == (3, 6, 8)
    assert d.shown_classes == (0, 1, 2, 3, 4)
    assert pets_design(attention_checks=0, lookalike={}).shown_classes == (0, 2, 4)
    assert pets_design(repeats=3, attention_checks=9).n_items == 18
    # a dict and the equivalent pairs are one (hashable) design
    assert pets_design() == pets_design(lookalike=((4, 3), (0, 1), (2, 1)))
    assert hash(pets_design()) == hash(pets_design(lookalike=[(0, 1), (2, 1), (4, 3)]))


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"methods": ("lime",), "check_methods": ("lime",)}, "2-6 distinct methods"),
        ({"methods": tuple("abcdefg"), "check_methods": ("a",)}, "2-6 distinct methods"),
        ({"methods": ("lime", "lime", "normlime")}, "2-6 distinct methods"),
        ({"check_methods": ("vargrad",)}, r"check_methods \['vargrad'\] are not among"),
        ({"check_methods": ()}, "at least one method"),
        ({"classes": (0, 5)}, r"classes \[5\] are outside 0..4"),
        ({"classes": (0, 0, 2)}, "distinct class indices"),
        ({"classes": ()}, "at least one"),
        ({"class_names": ("cat",)}, "at least two non-empty names"),
        ({"repeats": 0}, "repeats must be a whole number >= 1"),
        ({"repeats": 1.5}, "repeats must be a whole number >= 1"),
        ({"attention_checks": -1}, "from 0 to the 6 real questions"),
        ({"attention_checks": 7}, "from 0 to the 6 real questions"),
        ({"lookalike": {0: 1, 2: 1}}, r"for every asked class; \[4\] lack one"),
        ({"lookalike": {0: 0, 2: 1, 4: 3}}, "lookalike 0 -> 0 must pair two different"),
        ({"lookalike": {0: 5, 2: 1, 4: 3}}, "lookalike 0 -> 5 must pair"),
        ({"question": "Which map is best?"}, "with {class} exactly once"),
        ({"question": "{class} or {class}?"}, "with {class} exactly once"),
        ({"classes": (0,), "repeats": 500, "lookalike": {0: 1}}, "more than the 500"),
    ],
)
def test_a_bad_design_is_refused_in_one_line(changes, message):
    with pytest.raises(ValueError, match=message) as info:
        pets_design(**changes)
    assert "\n" not in str(info.value) and str(info.value).startswith("survey design: ")


DESIGNS = {
    "pets": pets_design(),
    "two options": pets_design(methods=("lime", "vargrad"), check_methods=("lime",)),
    "six options": pets_design(methods=tuple("abcdef"), check_methods=("b", "e")),
    "more checks than classes": pets_design(repeats=3, attention_checks=7),
    "no checks": pets_design(attention_checks=0, lookalike={}),
}


@pytest.mark.parametrize("name", sorted(DESIGNS))
@pytest.mark.parametrize("seed", [0, 5, 2**61 + 17])
def test_any_design_follows_the_papers_rules(name, seed):
    d = DESIGNS[name]
    items = design_survey(seed, design=d)
    assert [it.position for it in items] == list(range(1, d.n_items + 1))
    real = [it for it in items if not it.is_check]
    checks = [it for it in items if it.is_check]
    assert len(checks) == d.attention_checks
    assert Counter(it.digit for it in real) == {c: d.repeats for c in d.classes}
    for it in real:
        assert sorted(s.method for s in it.slots) == sorted(d.methods)
        assert {(s.digit, s.role) for s in it.slots} == {(it.digit, "option")}
    for it in checks:
        assert len(it.slots) == d.n_options and it.digit in d.classes
        correct = it.slots[it.correct_choice - 1]
        assert correct == Slot(correct.method, it.digit, "correct")
        assert correct.method in d.check_methods
        # every other slot is one and the same map: the look-alike's, by the same method
        others = {s for k, s in enumerate(it.slots, start=1) if k != it.correct_choice}
        assert others == {Slot(correct.method, d.lookalikes[it.digit], "distractor")}
    # checks draw distinct classes while the asked classes suffice, then whole rounds
    drawn = Counter(it.digit for it in checks)
    rounds, rest = divmod(d.attention_checks, len(d.classes))
    assert all(rounds <= drawn[c] <= rounds + (rest > 0) for c in d.classes)
    assert design_survey(seed, design=d) == items
    assert design_survey(seed + 1, design=d) != items


def test_methods_given_with_a_design_must_match_its_option_count():
    with pytest.raises(ValueError, match="3 distinct methods"):
        design_survey(1, ("a", "b"), pets_design())
    renamed = design_survey(3, ("x", "y", "z"), pets_design())
    assert {s.method for it in renamed for s in it.slots} == {"x", "y", "z"}


def manifest_bundle(manifest: dict):
    """A bundle as far as the design reads one: its manifest (a version-1 reader's
    MapsBundle has no class or survey attributes)."""
    return SimpleNamespace(manifest=manifest)


V2_SURVEY = {
    "methods": ["smoothgrad", "lime", "normlime"],
    "classes": [4, 0, 2],
    "repeats": 2,
    "attention_checks": 2,
    "check_methods": ["lime"],
    "lookalike": {"0": 1, "2": 1, "4": 3},
    "question": "Which map best shows what the model looks for in {class}?",
}


def v2_manifest(survey: dict | None) -> dict:
    manifest = {
        "version": 2,
        "classes": [{"index": i, "name": n} for i, n in enumerate(PETS)],
        "study_methods": ["normlime", "lime", "smoothgrad", "vargrad"],
    }
    return manifest if survey is None else {**manifest, "survey": survey}


def test_a_bundle_without_a_survey_block_of_the_ten_digits_is_the_mnist_study():
    assert SurveyDesign.from_bundle(manifest_bundle({"version": 1})) is MNIST_DESIGN
    digits = {"version": 2, "classes": [{"index": d, "name": str(d)} for d in range(10)]}
    assert SurveyDesign.from_bundle(manifest_bundle(digits)) is MNIST_DESIGN


def test_a_bundles_survey_block_is_its_design():
    d = SurveyDesign.from_bundle(manifest_bundle(v2_manifest(V2_SURVEY)))
    assert d == SurveyDesign(
        methods=("smoothgrad", "lime", "normlime"),
        classes=(4, 0, 2),
        class_names=PETS,
        repeats=2,
        attention_checks=2,
        check_methods=("lime",),
        lookalike={0: 1, 2: 1, 4: 3},
        question=V2_SURVEY["question"],
    )
    # the reader's own attributes win over the manifest (a version-2 MapsBundle)
    bundle = SimpleNamespace(
        manifest={}, classes=list(PETS), study_methods=["lime", "vargrad"], survey=V2_SURVEY
    )
    assert SurveyDesign.from_bundle(bundle) == d


def test_missing_survey_keys_fall_back_to_the_defaults():
    lookalike = {"0": 1, "1": 0, "2": 3, "3": 2, "4": 0}
    d = SurveyDesign.from_bundle(manifest_bundle(v2_manifest({"lookalike": lookalike})))
    assert d.methods == STUDY_METHODS and d.check_methods == CHECK_METHODS
    assert d.classes == (0, 1, 2, 3, 4) and (d.repeats, d.attention_checks) == (2, 5)
    assert d.question == (
        "From the following set of four images, please select the image that best highlights "
        "the pixels that distinguish {class} from the other four possible classes."
    )
    no_checks = SurveyDesign.from_bundle(
        manifest_bundle(v2_manifest({"methods": ["smoothgrad", "vargrad"], "attention_checks": 0}))
    )
    # neither method shows shapes: a check (if there were one) would draw from both
    assert no_checks.check_methods == ("smoothgrad", "vargrad") and no_checks.n_items == 10


@pytest.mark.parametrize(
    "survey, message",
    [
        (None, "for every asked class"),  # five pets are not the MNIST study
        ({"attention_checks": 3}, "for every asked class"),
        ({**V2_SURVEY, "lookalike": ["0", 1]}, "lookalike must map class indices"),
        ({**V2_SURVEY, "lookalike": {"zero": 1}}, "lookalike must map class indices"),
        ({**V2_SURVEY, "classes": ["0", "2"]}, "outside 0..4"),
        ({**V2_SURVEY, "methods": ["lime"]}, "2-6 distinct methods"),
        ([1, 2], "survey block must be an object"),
    ],
)
def test_a_bad_survey_block_is_refused(survey, message):
    with pytest.raises(ValueError, match=message):
        SurveyDesign.from_bundle(manifest_bundle(v2_manifest(survey)))


# ----------------------------------------------------------------------------- version 2 checks


from study_server.survey import CHECK_PICTURE, MNIST_DESIGN_V2  # noqa: E402


def _odd_ones_out(slots) -> list:
    counts = Counter((s.method, s.digit) for s in slots)
    return [s for s in slots if counts[(s.method, s.digit)] == 1]


@pytest.mark.parametrize("seed", range(300))
def test_version_2_checks_are_pictures_that_the_odd_one_out_does_not_answer(seed):
    items = design_survey(seed, design=MNIST_DESIGN_V2)
    real = [it for it in items if not it.is_check]
    assert len(real) == 20 and Counter(it.digit for it in real) == {d: 2 for d in range(10)}
    for it in items:
        if not it.is_check:
            assert sorted(s.method for s in it.slots) == sorted(STUDY_METHODS)
            continue
        # no method's map in a check: pictures of classes only
        assert {s.method for s in it.slots} == {CHECK_PICTURE}
        # at least two options differ from all the others
        assert len(_odd_ones_out(it.slots)) >= 2
        correct = it.slots[it.correct_choice - 1]
        assert correct.role == "correct" and correct.digit == it.digit
        digits = [s.digit for s in it.slots]
        # Figure 4: two duplicates of the look-alike; one further class
        assert digits.count(LOOKALIKE[it.digit]) == 2
        assert len(set(digits)) == 3 and digits.count(it.digit) == 1


def test_version_2_puts_the_right_answer_anywhere_and_shows_every_method_equally():
    positions, further = Counter(), Counter()
    exposure = Counter()
    for seed in range(4000):
        for it in design_survey(seed, design=MNIST_DESIGN_V2):
            if it.is_check:
                positions[it.correct_choice] += 1
                further.update(s.digit for s in it.slots
                               if s.digit not in (it.digit, LOOKALIKE[it.digit]))  # fmt: skip
            else:
                exposure.update(s.method for s in it.slots)
    total = sum(positions.values())
    assert all(abs(positions[p] / total - 0.25) < 0.02 for p in range(1, 5)), positions
    assert len(further) == 10
    # the methods are seen equally often: the checks add views of none
    assert len(set(exposure.values())) == 1 and set(exposure) == set(STUDY_METHODS)


def test_version_1_stays_as_it_was_and_versions_are_recorded():
    assert MNIST_DESIGN.version == 1 and MNIST_DESIGN_V2.version == 2
    old = design_survey(20200101)  # the pinned version-1 survey above
    new = design_survey(20200101, design=MNIST_DESIGN_V2)
    # the same check positions and asked digits (drawn first); the checks' options differ
    assert [(it.position, it.is_check, it.digit) for it in old] == [
        (it.position, it.is_check, it.digit) for it in new
    ]
    assert all(it.slots != jt.slots for it, jt in zip(old, new, strict=True) if it.is_check)


def test_version_2_is_pinned_for_a_stored_seed():
    checks = [
        (it.position, tuple(s.digit for s in it.slots), it.correct_choice)
        for it in design_survey(20200101, design=MNIST_DESIGN_V2)
        if it.is_check
    ]
    assert checks == PINNED_V2_CHECKS


PINNED_V2_CHECKS = [
    (3, (1, 0, 7, 7), 1),
    (13, (1, 7, 1, 6), 2),
    (19, (3, 3, 9, 8), 4),
    (20, (5, 2, 5, 6), 4),
    (24, (9, 9, 4, 8), 3),
]


@pytest.mark.parametrize("n_options, n_classes", [(2, 2), (3, 3), (4, 3), (6, 5)])
def test_version_2_checks_fit_any_option_count_that_has_classes_enough(n_options, n_classes):
    design = SurveyDesign(
        methods=tuple(f"m{i}" for i in range(n_options)),
        classes=tuple(range(n_classes)),
        class_names=tuple(f"c{i}" for i in range(n_classes)),
        repeats=2,
        attention_checks=3,
        check_methods=("m0",),
        lookalike={c: (c + 1) % n_classes for c in range(n_classes)},
        question="Which one shows {class}?",
        check_kind="pictures",
    )
    for seed in range(50):
        for it in design_survey(seed, design=design):
            if it.is_check:
                assert len(it.slots) == n_options
                assert len(_odd_ones_out(it.slots)) >= 2


def test_version_2_checks_refuse_a_study_without_classes_enough():
    with pytest.raises(ValueError, match="need pictures of 3 classes"):
        SurveyDesign(
            methods=("a", "b", "c", "d"), classes=(0, 1), class_names=("cat", "dog"),
            repeats=2, attention_checks=2, check_methods=("a",), lookalike={0: 1, 1: 0},
            question="{class}?", check_kind="pictures",
        )  # fmt: skip
