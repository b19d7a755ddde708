"""Study configuration, image-load times, and a journal of calls to recruitment platforms.

- ``studies.config``: JSON of the study's configuration file (``create-study --config``):
  the consent page's facts and the Prolific study's settings.
- ``responses.images_ms``: milliseconds from the question being shown until all of its
  images had loaded, as the page reported with the vote (NULL: the page did not report,
  e.g. without JavaScript, or an answer stored before this revision).
- ``platform_calls``: one row per call that moves state or money on a recruitment platform
  (``normlime prolific``), written as an intent before the call and completed after it, so
  a crash or retry between the two is seen and never repeats a payment.
- ``platform_submissions``: the platform's submissions as last synced (its submission id,
  the keyed hash of the worker id, status, the code it received), so that approval reads
  the database instead of a downloaded CSV.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("studies") as batch:
        batch.add_column(sa.Column("config", sa.Text(), nullable=False, server_default="{}"))
    with op.batch_alter_table("responses") as batch:
        batch.add_column(sa.Column("images_ms", sa.Integer(), nullable=True))
    op.create_table(
        "platform_calls",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("study_id", sa.Integer(), sa.ForeignKey("studies.id"), nullable=False),
        sa.Column("platform", sa.String(32), nullable=False),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("remote_id", sa.String(128)),
        sa.Column("request", sa.Text(), nullable=False, server_default="{}"),
        sa.Column("outcome", sa.Text(), nullable=False, server_default="{}"),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.UniqueConstraint("platform", "key", name="uq_platform_call_key"),
    )
    op.create_table(
        "platform_submissions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("study_id", sa.Integer(), sa.ForeignKey("studies.id"), nullable=False),
        sa.Column("platform", sa.String(32), nullable=False),
        sa.Column("submission_id", sa.String(128), nullable=False),
        sa.Column("worker_key", sa.String(64), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("entered_code", sa.String(128)),
        sa.Column("synced_at", TZ, nullable=False),
        sa.UniqueConstraint("platform", "submission_id", name="uq_platform_submission"),
    )


def downgrade() -> None:
    op.drop_table("platform_submissions")
    op.drop_table("platform_calls")
    with op.batch_alter_table("responses") as batch:
        batch.drop_column("images_ms")
    with op.batch_alter_table("studies") as batch:
        batch.drop_column("config")
