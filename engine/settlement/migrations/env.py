"""Alembic environment of the settlement store: migrations run on the connection the store hands over.

The store (``panen.engine.settlement.store``) opens the database, takes its write lock and
calls ``alembic.command.upgrade`` with that connection in ``config.attributes["connection"]``;
nothing here opens a connection or reads an ``alembic.ini``. The version table is
``panen_settlement_version`` (not ``alembic_version``), so a store kept in a database that
another application also migrates with Alembic never mistakes that application's version for its own.
"""

from alembic import context

VERSION_TABLE = "panen_settlement_version"

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only the store runs these migrations
    raise RuntimeError("the settlement store's migrations run through panen.engine.settlement.store.open_store")

context.configure(connection=connection, target_metadata=None, version_table=VERSION_TABLE,
                  render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
                  transactional_ddl=True)
with context.begin_transaction():  # inside the store's transaction: a no-op, the store commits
    context.run_migrations()
