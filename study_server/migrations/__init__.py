"""Alembic migrations of the study database (``normlime db upgrade``).

Revision 0001 is the schema that ``normlime init-db`` created before migrations existed;
a database made then has no ``alembic_version`` table and is stamped 0001 on its first
upgrade.  See :mod:`study_server.schema`.
"""
