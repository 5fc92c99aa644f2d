"""Schema migrations (Alembic), configured from Kefu's settings instead of an alembic.ini file."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import Script, ScriptDirectory
from sqlalchemy import Engine, MetaData, create_engine, pool, text
from sqlalchemy.engine import make_url

from bot.crm.db import normalise_database_url, use_wal
from bot.settings import PROJECT_ROOT, Settings

MIGRATIONS_DIR = PROJECT_ROOT / "migrations"


def alembic_config(settings: Settings) -> Config:
    """An Alembic configuration for the database in `settings` (there is no alembic.ini)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Config values go through ConfigParser interpolation: a %-encoded password needs %%.
    config.set_main_option("sqlalchemy.url", normalise_database_url(settings.database_url).replace("%", "%%"))
    return config


# Any fixed number: the key of the PostgreSQL advisory lock that serialises migrations.
MIGRATION_LOCK_KEY = 0x4B454655  # "KEFU"


def upgrade_database(settings: Settings, revision: str = "head") -> None:
    """Bring the schema up to `revision` (the newest by default); a no-op when it is already there.

    On PostgreSQL an advisory lock makes machines that start at the same moment migrate one after
    the other: the second finds the schema up to date.
    """
    _create_sqlite_directory(settings.database_url)
    with _migration_lock(settings):
        command.upgrade(alembic_config(settings), revision)
    if settings.is_sqlite:
        _switch_sqlite_to_wal(settings)


def _switch_sqlite_to_wal(settings: Settings) -> None:
    # Done here, before any server opens the file, so the processes that start next find it in WAL
    # mode already and none of them has to switch it while the others connect.
    engine = _plain_engine(settings)
    try:
        with engine.connect() as connection:
            use_wal(connection.connection.cursor())
    finally:
        engine.dispose()


@contextlib.contextmanager
def _migration_lock(settings: Settings) -> Iterator[None]:
    if settings.is_sqlite:
        yield  # SQLite locks the file for the migration's transaction already
        return
    engine = _plain_engine(settings)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            try:
                yield
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})
    finally:
        engine.dispose()


def new_revision(settings: Settings, message: str) -> Path:
    """Write a migration for what the models have and the database (at head) lacks; returns its path.

    Revisions are numbered 0001, 0002 ... so that the files sort in the order they apply.
    """
    config = alembic_config(settings)
    head = ScriptDirectory.from_config(config).get_current_head()
    rev_id = f"{int(head) + 1:04d}" if head and head.isdigit() else None
    script = command.revision(config, message=message, autogenerate=True, rev_id=rev_id)
    if not isinstance(script, Script):
        raise RuntimeError(f"Alembic wrote {script!r} instead of one revision")
    return Path(script.path)


def head_revision(settings: Settings) -> str | None:
    """The newest revision in migrations/versions."""
    return ScriptDirectory.from_config(alembic_config(settings)).get_current_head()


def database_revision(settings: Settings) -> str | None:
    """The revision the database is at; None when it has never been migrated."""
    engine = _plain_engine(settings)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def reset_database(settings: Settings) -> list[str]:
    """Drop every table in the database (ours or not), then migrate to head; returns the dropped names."""
    engine = _plain_engine(settings)
    try:
        # Reflected rather than taken from our models, so tables of removed features go too.
        metadata = MetaData()
        metadata.reflect(engine)
        with engine.begin() as connection:
            metadata.drop_all(connection)
        dropped = sorted(metadata.tables)
    finally:
        engine.dispose()
    upgrade_database(settings)
    return dropped


def _plain_engine(settings: Settings) -> Engine:
    # A short-lived engine without the app's SQLite pragmas: foreign keys stay off, so dropping tables
    # in any order works.
    _create_sqlite_directory(settings.database_url)
    return create_engine(normalise_database_url(settings.database_url), poolclass=pool.NullPool)


def _create_sqlite_directory(url: str) -> None:
    parsed = make_url(normalise_database_url(url))
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        # Best effort: when the directory cannot be made, connecting fails with a message naming the URL.
        with contextlib.suppress(OSError):
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
