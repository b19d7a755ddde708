"""The item page, pre-rendered.

Every item page is the same HTML except for a handful of values (question number, digit,
image URLs, form signature, paths).  Rendering ``item.html`` through Jinja on every vote
costs more CPU than the vote's database work, so the template is rendered once per study
mode with marker values, split at the markers, and each request only joins the pieces
with its values.  ``tests/test_server_privacy.py`` checks the result is byte-identical to
a Jinja rendering.
"""

from __future__ import annotations

import html
import re
import threading

from flask import render_template

__all__ = ["render_item_page", "FIELDS"]

FIELDS = ("position", "answered", "digit", "img1", "img2", "img3", "img4", "signature",
          "action", "home")  # fmt: skip
_MARK = "\x1e{}\x1e"
_SPLIT = re.compile("\x1e([a-z0-9]+)\x1e")
_lock = threading.Lock()


def _compile(mode: str, n_items: int) -> list:
    marked = render_template(
        "item.html",
        position=_MARK.format("position"),
        answered=_MARK.format("answered"),
        n_items=n_items,
        digit=_MARK.format("digit"),
        images=[_MARK.format(f"img{i}") for i in range(1, 5)],
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


def render_item_page(cache: dict, mode: str, n_items: int, values: dict) -> str:
    """The item page for ``values`` (every field of FIELDS), HTML-escaped like Jinja."""
    parts = cache.get(mode)
    if parts is None:
        with _lock:
            parts = cache.setdefault(mode, _compile(mode, n_items))
    out = []
    for i, part in enumerate(parts):
        out.append(html.escape(str(values[part]), quote=True) if i % 2 else part)
    return "".join(out)
