"""The reports' rendering: Markdown from Jinja2 templates, HTML from that Markdown.

Python computes the numbers and formats them (``analysis.study.report`` and friends); the
templates under ``analysis/templates/`` hold the prose and the layout.  HTML is the
Markdown rendered by the ``markdown`` library (tables, lists, emphasis), with every image
embedded as a data URI so that ``report.html`` stands alone.
"""

from __future__ import annotations

import base64
import html
import re
from functools import cache
from pathlib import Path

import jinja2

from .words import count

__all__ = ["count", "environment", "markdown_table", "render", "to_html"]


def markdown_table(header, rows, align=None) -> str:
    """A Markdown table; ``align`` gives each column's "left", "right" or None."""
    rule = {"left": ":---", "right": "---:", None: "---"}
    align = list(align or [None] * len(header))
    lines = ["| " + " | ".join(map(str, header)) + " |"]
    lines.append("|" + "|".join(rule[a] for a in align) + "|")
    lines += ["| " + " | ".join(map(str, r)) + " |" for r in rows]
    return "\n".join(lines)


def environment(package: str = "analysis") -> jinja2.Environment:
    """The reports' Jinja2 settings on ``package``'s ``templates`` folder (one per
    package)."""
    return _environment(package)


@cache
def _environment(package: str) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader(package, "templates"),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=jinja2.select_autoescape(enabled_extensions=("html", "html.j2"), default=False),
    )
    env.filters["table"] = lambda rows, header, align=None: markdown_table(header, rows, align)
    env.globals["count"] = count
    return env


def render(name: str, /, **context) -> str:
    """Template ``name`` of ``analysis/templates`` with ``context``."""
    return environment().get_template(name).render(**context)


_IMG = re.compile(r'<img alt="([^"]*)" src="([^"]+)"\s*/?>')


def to_html(markdown_text: str, base: Path, title: str) -> str:
    """``markdown_text`` as one standalone HTML page; images under ``base`` inlined, and an
    image whose file is missing left out (a step that was not run draws nothing)."""
    import markdown

    body = markdown.markdown(markdown_text, extensions=["tables", "sane_lists"])

    def inline(match: re.Match) -> str:
        path = Path(base) / html.unescape(match.group(2))
        if not path.is_file():
            return ""
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        return f'<img alt="{match.group(1)}" src="data:image/png;base64,{data}">'

    return render("report.html.j2", title=title, body=_IMG.sub(inline, body))
