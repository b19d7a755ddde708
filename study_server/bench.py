"""Reference endpoints for ``benchmarks/load.py`` (``BENCHMARK_ENDPOINTS``, off by default).

``GET /_bench/ping``  the HTTP ceiling: Flask dispatch and nothing else.
``POST /_bench/vote`` the database floor: one INSERT and its commit, nothing else.
The ``bench_votes`` table is created by the benchmark script (never by a request).
"""

from __future__ import annotations

from flask import Blueprint, abort, request
from sqlalchemy import Column, Integer, MetaData, SmallInteger, Table, UniqueConstraint, insert

from .models import db

bp = Blueprint("bench", __name__, url_prefix="/_bench")

metadata = MetaData()
bench_votes = Table(
    "bench_votes",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("client", Integer, nullable=False),
    Column("seq", Integer, nullable=False),
    Column("choice", SmallInteger, nullable=False),
    UniqueConstraint("client", "seq", name="uq_bench_vote"),
)
#: built once, like the real vote path's statements
_INSERT = insert(bench_votes)


@bp.get("/ping")
def ping():
    return "ok"


@bp.post("/vote")
def vote():
    form = request.form
    try:
        row = {k: int(form[k]) for k in ("client", "seq", "choice")}
    except (KeyError, ValueError):
        abort(400, "client, seq and choice must be integers")
    db.session.connection().execute(_INSERT, row)
    db.session.commit()
    return "ok"
