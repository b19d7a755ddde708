"""Alembic environment: always run on the connection handed over by study_server.schema."""

from alembic import context

from study_server.models import db

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=db.metadata,
    # SQLite cannot ALTER most things: let Alembic copy-and-move tables when it must.
    render_as_batch=connection.dialect.name == "sqlite",
    transaction_per_migration=True,
)
with context.begin_transaction():
    context.run_migrations()
