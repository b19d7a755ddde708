"""One identity per worker across adapters, revocable admin sessions, withdrawal.

- ``participants.withdrawn_at``: ``normlime withdraw`` deletes a participant's answers
  and marks the row (which keeps the keyed worker hash, so the person is not enrolled again).
- ``admin_sessions``: one row per admin login; logout revokes it server-side.
- Worker keys made from now on no longer include the adapter name.  Older rows cannot be
  re-keyed (the hash is one-way, raw ids are usually not stored), so lookups also try the
  old form; nothing in the data changes here.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("participants") as batch:
        batch.add_column(sa.Column("withdrawn_at", TZ, nullable=True))
    op.create_table(
        "admin_sessions",
        sa.Column("id_hash", sa.String(64), primary_key=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("expires_at", TZ, nullable=False),
        sa.Column("revoked_at", TZ),
    )


def downgrade() -> None:
    op.drop_table("admin_sessions")
    with op.batch_alter_table("participants") as batch:
        batch.drop_column("withdrawn_at")
