"""The survey design: 25 items from a seed, as the paper's "Experimental Design" says."""

from __future__ import annotations

from collections import Counter

import pytest

from study_server.survey import (
    CHECK_METHODS,
    LOOKALIKE,
    N_CHECKS,
    N_ITEMS,
    STUDY_METHODS,
    Slot,
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
