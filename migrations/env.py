"""Alembic environment: migrates the database named by Kefu's settings, on SQLite or PostgreSQL."""

from __future__ import annotations

from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy import Connection, create_engine, pool, text
from sqlalchemy.types import TypeDecorator

from bot.crm.db import normalise_database_url
from bot.crm.models import Base
from bot.settings import get_settings

config = context.config
target_metadata = Base.metadata


def _database_url() -> str:
    # bot.crm.migrate.alembic_config() sets the URL; a bare `alembic` run falls back to the environment.
    return normalise_database_url(config.get_main_option("sqlalchemy.url") or get_settings().database_url)


def _render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    # Our column types (UTCDateTime) are rendered as the plain type they store, so migrations never
    # import application code that may change or disappear later.
    if type_ == "type" and isinstance(obj, TypeDecorator):
        return f"sa.{obj.impl!r}"
    return False


def _ours(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """Autogenerate leaves alone tables it finds but Kefu does not define: Rasa's tracker store keeps
    its `events` table in the CRM's database on PostgreSQL."""
    return not (type_ == "table" and reflected and compare_to is None)


def _configure(**kwargs: Any) -> None:
    context.configure(
        target_metadata=target_metadata,
        include_object=_ours,
        # Batch operations let one migration ALTER tables on SQLite (by copying) and on PostgreSQL.
        render_as_batch=True,
        compare_type=True,
        render_item=_render_item,
        **kwargs,
    )


def run_migrations_offline() -> None:
    """Print the SQL instead of running it (`alembic upgrade --sql`)."""
    _configure(url=_database_url(), literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def _run_on(connection: Connection) -> None:
    if connection.dialect.name == "sqlite":
        # Batch migrations drop and re-create tables; with foreign keys enforced, dropping a parent
        # would cascade-delete its children. The pragma is ignored inside a transaction, hence here.
        connection.execute(text("PRAGMA foreign_keys=OFF"))
        connection.commit()
    _configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = create_engine(_database_url(), poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            _run_on(connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
