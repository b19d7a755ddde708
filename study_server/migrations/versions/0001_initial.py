"""The schema before migrations existed (what ``normlime init-db`` made until 2026-12).

Revision ID: 0001
Revises:
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)

SQLITE_TRIGGERS = [
    "CREATE TRIGGER IF NOT EXISTS events_no_update BEFORE UPDATE ON events "
    "BEGIN SELECT RAISE(ABORT, 'events are append-only'); END",
    "CREATE TRIGGER IF NOT EXISTS events_no_delete BEFORE DELETE ON events "
    "BEGIN SELECT RAISE(ABORT, 'events are append-only'); END",
    "CREATE TRIGGER IF NOT EXISTS responses_no_update BEFORE UPDATE ON responses "
    "BEGIN SELECT RAISE(ABORT, 'responses are written once'); END",
]
PG_TRIGGERS = [
    """CREATE OR REPLACE FUNCTION normlime_refuse_change() RETURNS trigger AS $$
       BEGIN RAISE EXCEPTION USING MESSAGE = TG_TABLE_NAME || ' rows are append-only'; END $$
       LANGUAGE plpgsql""",
    "DROP TRIGGER IF EXISTS events_append_only ON events",
    "CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events "
    "FOR EACH ROW EXECUTE FUNCTION normlime_refuse_change()",
    "DROP TRIGGER IF EXISTS responses_write_once ON responses",
    "CREATE TRIGGER responses_write_once BEFORE UPDATE ON responses "
    "FOR EACH ROW EXECUTE FUNCTION normlime_refuse_change()",
]


def upgrade() -> None:
    op.create_table(
        "settings",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text(), nullable=False),
    )
    op.create_table(
        "studies",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False, unique=True),
        sa.Column("public_key", sa.String(32), nullable=False, unique=True),
        sa.Column("mode", sa.String(10), nullable=False),
        sa.Column("secret", sa.String(64), nullable=False),
        sa.Column("raw_worker_ids", sa.Boolean(), nullable=False),
        sa.Column("adapters", sa.Text(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
    )
    op.create_table(
        "participants",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("study_id", sa.Integer(), sa.ForeignKey("studies.id"), nullable=False),
        sa.Column("public_id", sa.String(16), nullable=False, unique=True),
        sa.Column("token", sa.String(64), nullable=False, unique=True),
        sa.Column("worker_key", sa.String(64)),
        sa.Column("raw_worker_id", sa.String(128)),
        sa.Column("adapter", sa.String(32), nullable=False),
        sa.Column("entry_nonce", sa.String(32), nullable=False),
        sa.Column("assignment_id", sa.String(128)),
        sa.Column("submit_to", sa.String(200)),
        sa.Column("entry_params", sa.Text(), nullable=False),
        sa.Column("mode", sa.String(10), nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=False),
        sa.Column("survey_version", sa.SmallInteger(), nullable=False),
        sa.Column("bundle_sha256", sa.String(64)),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("started_at", TZ),
        sa.Column("completed_at", TZ),
        sa.Column("completion_code", sa.String(64)),
        sa.UniqueConstraint("study_id", "worker_key", name="uq_participant_worker"),
        sa.UniqueConstraint("study_id", "entry_nonce", name="uq_participant_entry"),
    )
    op.create_index("ix_participants_study_id", "participants", ["study_id"])
    op.create_table(
        "items",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "participant_id", sa.Integer(), sa.ForeignKey("participants.id"), nullable=False
        ),
        sa.Column("position", sa.SmallInteger(), nullable=False),
        sa.Column("is_check", sa.Boolean(), nullable=False),
        sa.Column("digit", sa.SmallInteger(), nullable=False),
        sa.Column("slots", sa.Text(), nullable=False),
        sa.UniqueConstraint("participant_id", "position", name="uq_item_position"),
    )
    op.create_table(
        "responses",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "participant_id", sa.Integer(), sa.ForeignKey("participants.id"), nullable=False
        ),
        sa.Column("position", sa.SmallInteger(), nullable=False),
        sa.Column("choice", sa.SmallInteger(), nullable=False),
        sa.Column("chosen_method", sa.String(32), nullable=False),
        sa.Column("chosen_role", sa.String(16), nullable=False),
        sa.Column("shown_at", TZ),
        sa.Column("answered_at", TZ, nullable=False),
        sa.Column("response_ms", sa.Integer()),
        sa.UniqueConstraint("participant_id", "position", name="uq_response_item"),
    )
    op.create_table(
        "events",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("at", TZ, nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("study_id", sa.Integer()),
        sa.Column("participant_id", sa.Integer()),
        sa.Column("ip", sa.String(64)),
        sa.Column("detail", sa.Text(), nullable=False),
    )
    op.create_index("ix_events_kind_at", "events", ["kind", "at"])
    dialect = op.get_bind().dialect.name
    for ddl in {"sqlite": SQLITE_TRIGGERS, "postgresql": PG_TRIGGERS}.get(dialect, []):
        op.execute(ddl)


def downgrade() -> None:
    raise NotImplementedError("the first revision cannot be downgraded; drop the database")
