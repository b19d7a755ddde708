"""The pre-registration of a forward-simulation, distinction or agreement study.

The same sections as the preference study's (``analysis.study.preregister``: AsPredicted's
questions and OSF's Preregistration form), with the hypotheses, dependent variable and
analyses of these designs.  Every number comes from the code that will run the analysis
(its defaults, ``pass_threshold``, the power calculation's model), so the registration
cannot drift from what ``normlime analyze --responses`` does.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from explainers.votes_schema import TASKS, pass_threshold

from .pipeline import LEVEL, TARGET
from .report import _label, render
from .responses import CHANCE

__all__ = ["render_design_preregistration"]


def render_design_preregistration(
    study: str,
    *,
    task: str,
    conditions: Sequence[str],
    power: dict | None = None,
    study_record: dict | None = None,
    maps_manifest: dict | None = None,
    attention_checks: int = 5,
    min_checks: int | None = None,
    speeder_ms: int | None = None,
    alpha: float = 0.05,
    seed: int = 0,
    items_per_participant: int | None = None,
    today: dt.date | None = None,
) -> str:
    """The markdown (prose in ``templates/designs_preregistration.md.j2``).  ``conditions``:
    the baseline first."""
    if task not in TASKS:
        raise ValueError(f"unknown design {task!r}; one of {', '.join(TASKS)}")
    conditions = tuple(conditions)
    model = (power or {}).get("model", {})
    items = items_per_participant or model.get("items_per_participant") or 20
    default = pass_threshold(attention_checks)
    classes = model.get("classes")
    return render(
        "designs_preregistration.md.j2",
        name=_label,
        study=study,
        today=(today or dt.date.today()).isoformat(),
        task=task,
        target=TARGET[task],
        conditions=conditions,
        baseline=conditions[0],
        others=conditions[1:],
        chance=CHANCE.get(task),
        classes=classes,
        items=items,
        attention_checks=attention_checks,
        min_checks=default if min_checks is None else min_checks,
        default_min_checks=default,
        speeder_ms=speeder_ms,
        alpha=alpha,
        seed=seed,
        level=f"{LEVEL:.0%}",
        maps_manifest=maps_manifest,
        study_record=study_record,
        power=power,
        model=model,
    )
