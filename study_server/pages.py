"""The item page, pre-rendered.

Every item page is the same HTML except for a handful of values (question number, class
name, image URLs, form signature, paths).  Rendering ``item.html`` through Jinja on every
vote costs more CPU than the vote's database work, so the template is rendered once per
study mode and survey shape (items, options, question wording) with marker values, split
at the markers, and each request only joins the pieces with its values.
``tests/test_server_privacy.py`` checks the result is byte-identical to a Jinja rendering.
"""

from __future__ import annotations

import html
import re
import threading

from flask import render_template

from .survey import MAX_OPTIONS

__all__ = ["render_item_page", "FIELDS"]

IMAGE_FIELDS = tuple(f"img{i}" for i in range(1, MAX_OPTIONS + 1))
FIELDS = ("position", "answered", "class_name", *IMAGE_FIELDS, "signature", "action", "home")
_MARK = "\x1e{}\x1e"
_SPLIT = re.compile("\x1e([a-z0-9_]+)\x1e")
_lock = threading.Lock()


def _compile(mode: str, n_items: int, n_options: int, question: str) -> list:
    marked = render_template(
        "item.html",
        position=_MARK.format("position"),
        answered=_MARK.format("answered"),
        n_items=n_items,
        class_name=_MARK.format("class_name"),
        question=question,
        images=[_MARK.format(name) for name in IMAGE_FIELDS[:n_options]],
        signature=_MARK.format("signature"),
        action=_MARK.format("action"),
        home=_MARK.format("home"),
        mode=mode,
    )
    parts = _SPLIT.split(marked)
    # even indexes: literal HTML; odd indexes: field names
    unknown = set(parts[1::2]) - set(FIELDS)
    if unknown:  # pragma: no cover - a template edit the splitter does not know
        raise RuntimeError(f"item.html uses unknown fields {unknown}")
    return parts


def render_item_page(
    cache: dict, mode: str, values: dict, *, n_items: int, n_options: int, question: str
) -> str:
    """The item page for ``values`` (the fields of FIELDS the page shows: ``img1`` up to
    ``img{n_options}``), HTML-escaped like Jinja; ``question`` is the design's wording."""
    key = (mode, n_items, n_options, question)
    parts = cache.get(key)
    if parts is None:
        with _lock:
            parts = cache.setdefault(key, _compile(*key))
    out = []
    for i, part in enumerate(parts):
        out.append(html.escape(str(values[part]), quote=True) if i % 2 else part)
    return "".join(out)
