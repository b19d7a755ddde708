"""The pages and answers of forward-simulation, distinction and agreement studies
(:mod:`study_server.tasks` holds the protocol; this module turns it into HTML and rows)."""

from __future__ import annotations

from flask import render_template, request
from sqlalchemy import and_, select

from . import fields, flow, tasks, tokens
from .models import Item, Response

__all__ = ["instructions", "item_page", "record", "preview_items", "QUESTIONS"]

I, R = Item.__table__, Response.__table__

QUESTIONS = {
    "forward": "What will the model answer for this image?",
    "distinction": "Which of these four did the model predict? Each shows the explanation "
    "for its label.",
    "agreement": "The model says this is a {predicted}. How sure are you that it is right?",
}
CHECK_QUESTIONS = {
    "forward": "To show that you are reading carefully, choose {answer} for this image.",
    "distinction": "To show that you are reading carefully, choose option {answer}.",
    "agreement": "To show that you are reading carefully, choose \u201c{answer}\u201d.",
}


def preview_items(stimuli) -> list[dict]:
    """HIVE's preview: one example the model got right and one it got wrong (the first of
    each in the learning pool, else the test pool, by id)."""
    pool = sorted(stimuli.split("learn") or stimuli.split("test"), key=lambda it: it["id"])
    right = next((it for it in pool if it["model_correct"]), None)
    wrong = next((it for it in pool if not it["model_correct"]), None)
    return [it for it in (right, wrong) if it is not None]


def preview_picture(stimuli, condition: str | None, example: dict) -> str:
    if not condition or condition == "none":
        return example["image"]
    return example["maps"][condition][str(example["prediction"])]


def instructions(p: flow.ParticipantRow, design: tasks.TaskDesign) -> dict:
    """The instructions page's task words and its two worked examples."""
    from flask import current_app

    stimuli = current_app.extensions["normlime_stimuli"].stimuli
    names = stimuli.class_names
    base = f"{request.script_root}/p/{p.token}"
    examples = [
        {
            "src": f"{base}/example/{k}",
            "predicted": names[it["prediction"]],
            "label": names[it["label"]],
            "right": it["model_correct"],
        }
        for k, it in enumerate(preview_items(stimuli), start=1)
    ]
    return {
        "design": design,
        "explained": p.condition not in (None, "none"),
        "examples": examples,
        "scale": tasks.AGREEMENT_SCALE,
        "n_classes": len(names),
    }


def _feedback(p: flow.ParticipantRow, position: int, names) -> dict | None:
    """After a learning item: what the model answered and what the participant said."""
    if position <= 1:
        return None
    row = flow._db().execute(
        select(I.c.phase, I.c.digit, R.c.choice)
        .select_from(I.join(R, and_(R.c.participant_id == I.c.participant_id,
                                    R.c.position == I.c.position)))  # fmt: skip
        .where(I.c.participant_id == p.id, I.c.position == position - 1)
    ).first()
    if row is None or row.phase != "learn":
        return None
    return {"model": names[row.digit], "yours": names[row.choice - 1],
            "same": row.digit == row.choice - 1}  # fmt: skip


def item_page(p: flow.ParticipantRow, design: tasks.TaskDesign, item: flow.ItemRow, store):
    names = store.stimuli.class_names
    base = f"{request.script_root}/p/{p.token}"
    images = [
        f"{base}/img/{item.position}/{tokens.image_id(p.secret, p.token, item.position, k)}"
        for k in range(1, len(item.slots) + 1)
    ]
    predicted = names[item.slots[0][1]]
    if item.phase == "check":
        answer = (
            names[item.digit] if design.task == "forward"
            else item.digit if design.task == "distinction"
            else tasks.AGREEMENT_SCALE[item.digit - 1]
        )  # fmt: skip
        question = CHECK_QUESTIONS[design.task].format(answer=answer)
    else:
        question = QUESTIONS[design.task].format(predicted=predicted)
    explained = p.condition != "none" and item.phase != "check" and (
        design.task != "forward" or item.phase == "learn" or design.explain_in_test
    )
    return render_template(
        "task_item.html",
        mode=p.mode,
        task=design.task,
        phase=item.phase,
        position=item.position,
        n_items=design.n_items,
        answered=item.position - 1,
        question=question,
        feedback=_feedback(p, item.position, names),
        images=images,
        options=[
            {"src": src, "label": names[slot[1]]}
            for src, slot in zip(images, item.slots, strict=True)
        ],
        choices=names if design.task == "forward" else tasks.AGREEMENT_SCALE,
        predicted=predicted,
        explained=explained,
        signature=tokens.form_signature(p.secret, p.token, item.position),
        action=f"{base}/answer",
        home=base,
    )


def record(ctx: flow.AnswerContext, design: tasks.TaskDesign, choice: int, store, *,
           images_ms=None) -> bool:  # fmt: skip
    """Store a help item's answer: the response, the condition, and whether it met the
    item's target (``chosen_role`` "correct"/"wrong")."""
    fields.within("c", choice, tasks.n_choices(design, len(store.stimuli.class_names)))
    item = ctx.item
    right = tasks.score(design, item.phase, item.digit, choice)
    return flow.store_answer(
        ctx, choice, ctx.participant.condition or "none", "correct" if right else "wrong",
        n_items=design.n_items, images_ms=images_ms,
    )  # fmt: skip
