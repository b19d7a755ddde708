"""Between-participant conditions and the items of the designs that measure help.

- ``studies.arrivals``: a counter incremented atomically for every new participation of
  the study; the n-th arrival's condition is the (n mod k)-th of a seeded permutation of
  the k conditions for its block, so assignment is balanced whatever the concurrency.
- ``participants.condition``: the condition a participant was assigned ("none" or a
  method); NULL in preference studies.
- ``items.phase`` (learn, test, check) and ``items.stimulus`` (the stimuli bundle's item
  id) for forward-simulation, distinction and agreement studies; NULL in preference ones.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("studies") as batch:
        batch.add_column(sa.Column("arrivals", sa.Integer(), nullable=False, server_default="0"))
    with op.batch_alter_table("participants") as batch:
        batch.add_column(sa.Column("condition", sa.String(32), nullable=True))
    with op.batch_alter_table("items") as batch:
        batch.add_column(sa.Column("phase", sa.String(8), nullable=True))
        batch.add_column(sa.Column("stimulus", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("items") as batch:
        batch.drop_column("stimulus")
        batch.drop_column("phase")
    with op.batch_alter_table("participants") as batch:
        batch.drop_column("condition")
    with op.batch_alter_table("studies") as batch:
        batch.drop_column("arrivals")
