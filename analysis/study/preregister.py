"""A pre-registration of the study, in the sections pre-registration forms ask for.

The sections follow the questions of the common templates (AsPredicted's nine questions
and OSF's "Preregistration" form): hypotheses, dependent variable, conditions, analyses,
exclusions, sample size, other.  Every number in it comes from the code that will run
the analysis (the same defaults, the same seeds), so the registration cannot drift from
what ``normlime analyze`` does.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from ..templating import render
from .attention import pass_threshold
from .choice import BOOTSTRAP_DRAWS, default_reference
from .report import display_name
from .votes import METHODS, SurveyCounts, is_replication

__all__ = ["render_preregistration"]


def render_preregistration(
    study: str,
    *,
    power: dict | None = None,
    study_record: dict | None = None,
    maps_manifest: dict | None = None,
    methods: Sequence[str] = METHODS,
    min_checks: int | None = None,
    speeder_ms: int | None = None,
    alpha: float = 0.05,
    seed: int = 0,
    real_questions: int = 20,
    attention_checks: int = 5,
    today: dt.date | None = None,
) -> str:
    """The pre-registration's markdown (the prose in
    ``analysis/templates/preregistration.md.j2``).  ``methods``: the study's (the paper's
    four by default); ``min_checks`` None is the survey's pass threshold (all checks but
    one)."""
    methods = tuple(methods)
    default = pass_threshold(SurveyCounts(real_questions, attention_checks))
    needed = omnibus = None
    model: dict = {}
    if power is not None:
        model = power.get("model", {})
        needed = power.get("participants_needed")
        omnibus = power.get("omnibus", {}).get("participants_needed")
    numbers = [v for v in (needed, omnibus) if v is not None]
    return render(
        "preregistration.md.j2",
        display=display_name,
        word=_word,
        fmt=format,
        study=study,
        today=(today or dt.date.today()).isoformat(),
        methods=methods,
        replication=is_replication(methods),
        reference=default_reference(methods),
        real_questions=real_questions,
        attention_checks=attention_checks,
        default_design=SurveyCounts(real_questions, attention_checks) == SurveyCounts(),
        min_checks=default if min_checks is None else min_checks,
        default_min_checks=default,
        speeder_ms=speeder_ms,
        alpha=alpha,
        seed=seed,
        bootstrap_draws=BOOTSTRAP_DRAWS,
        maps_manifest=maps_manifest,
        study_record=study_record,
        power=power,
        planned=max(numbers) if (needed or omnibus) else None,
        needed=needed,
        omnibus_needed=omnibus,
        assumed_shares=list(zip(model.get("methods", []), model.get("shares", []), strict=False)),
    )


_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")


def _word(n: int) -> str:
    return _WORDS[n] if 0 <= n < len(_WORDS) else str(n)
