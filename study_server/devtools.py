"""A stand-in for MTurk's ``externalSubmit`` (``FAKE_MTURK``; on for ``normlime up``).

Debug links printed by ``normlime up`` use ``turkSubmitTo={server}/_debug/mturk`` so the
whole MTurk flow can be tried locally.  Nothing is stored: the page only echoes what MTurk
would have received.
"""

from __future__ import annotations

from flask import Blueprint, render_template, request

bp = Blueprint("devtools", __name__, url_prefix="/_debug")


@bp.route("/mturk/mturk/externalSubmit", methods=["GET", "POST"])
def mturk_external_submit():
    fields = dict(request.values.items())
    return render_template("fake_mturk.html", fields=fields)
