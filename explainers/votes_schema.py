"""The votes and participants CSV exports' columns: the contract between the study
server, which writes them, and ``normlime analyze``, which reads them.

It lives on the ground floor, beside the maps bundle's format (``bundle.py``): both are
files that cross from one part to another, and neither the server nor the analysis
imports the other.  Pure Python with no imports.  The first six vote columns
(:data:`REQUIRED_VOTE_COLUMNS`) are all the analysis needs; the others add to it when
present (an older export may lack them).
"""

from __future__ import annotations

__all__ = [
    "PARTICIPANT_COLUMNS",
    "REQUIRED_RESPONSE_COLUMNS",
    "RESPONSE_COLUMNS",
    "REQUIRED_VOTE_COLUMNS",
    "TASKS",
    "VOTE_COLUMNS",
    "pass_threshold",
]

VOTE_COLUMNS = [
    "participant_id",
    "question_index",
    "is_attention_check",
    "digit",
    "chosen_method",
    "passed",
    "position",
    "options",
    "response_ms",
    "images_ms",
    "shown_at",
    "answered_at",
    "study",
    "mode",
    "adapter",
    "completed",
    "checks_passed",
]
#: what ``normlime analyze`` needs of a votes CSV
REQUIRED_VOTE_COLUMNS = tuple(VOTE_COLUMNS[:6])
PARTICIPANT_COLUMNS = [
    "participant_id",
    "study",
    "mode",
    "adapter",
    "worker_id",
    "worker_key",
    "assignment_id",
    "entry_params",
    "created_at",
    "started_at",
    "completed_at",
    "completed",
    "answered",
    "checks_answered",
    "checks_passed",
    "duration_s",
    "completion_code",
    "seed",
    "survey_version",
    "bundle_sha256",
]


def pass_threshold(attention_checks: int) -> int:
    """Checks a complete survey must pass by default: every check but one (the paper keeps
    surveys passing at least 4 of its 5).  The server's admin figures and the analysis's
    exclusion rule both use it."""
    return max(int(attention_checks) - 1, 0)


#: the study designs that measure whether an explanation helps (besides "preference", the
#: paper's design, exported as votes)
TASKS = ("forward", "distinction", "agreement")
#: ``normlime export-responses``: one row per answer of a forward-simulation, distinction
#: or agreement study, read by ``normlime analyze --responses``.
#:
#: ``condition``   "none" (no explanation: the baseline) or the method shown
#: ``phase``       "learn" (forward simulation's learning phase: the answer is followed by
#:                 the model's answer), "test" (the measured answers) or "check" (attention
#:                 checks)
#: ``item``        the stimulus's id in the stimuli bundle (the same image, whichever
#:                 participant or condition)
#: ``correct``     0/1 against the task's target: forward, the model's prediction (not the
#:                 truth); distinction, the option the model actually predicted; agreement,
#:                 whether the judgement (confidence 3-4 = "correct", 1-2 = "wrong") matches
#:                 whether the model was right; checks, the check's answer
#: ``response``    the answer: a class index (forward), an option 1-4 (distinction), a
#:                 confidence 1-4 (agreement)
#: ``model_correct`` 0/1: whether the model's prediction for the item is the true label
RESPONSE_COLUMNS = [
    "participant",
    "condition",
    "task",
    "phase",
    "item",
    "correct",
    "response",
    "rt_ms",
    "model_correct",
    "position",
    "study",
    "mode",
    "adapter",
    "completed",
    "checks_passed",
]
#: what ``normlime analyze --responses`` needs
REQUIRED_RESPONSE_COLUMNS = tuple(RESPONSE_COLUMNS[:9])
