"""The Alembic migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

import shutil
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, pool, text
from sqlalchemy.engine import make_url

from bot.crm import migrate
from bot.crm.db import normalise_database_url, redact_database_url, use_wal
from bot.crm.migrate import (
    alembic_config,
    database_revision,
    head_revision,
    new_revision,
    reset_database,
    upgrade_database,
)
from bot.crm.models import Base
from bot.settings import Settings


def _table_names(settings: Settings) -> set[str]:
    engine = create_engine(normalise_database_url(settings.database_url), poolclass=pool.NullPool)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def _schema_differences(settings: Settings) -> list[object]:
    """What autogenerate would put in a new migration: empty when the models and database agree."""
    engine = create_engine(normalise_database_url(settings.database_url), poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return list(compare_metadata(context, Base.metadata))
    finally:
        engine.dispose()


def test_upgrade_head_creates_every_model_table(settings: Settings) -> None:
    upgrade_database(settings)

    assert _table_names(settings) == set(Base.metadata.tables) | {"alembic_version"}
    assert database_revision(settings) == head_revision(settings)


def test_models_have_no_changes_missing_from_the_migrations(settings: Settings) -> None:
    # Fails when someone edits bot/crm/models.py without adding a migration.
    upgrade_database(settings)

    assert _schema_differences(settings) == []


def test_upgrade_twice_is_harmless(settings: Settings) -> None:
    upgrade_database(settings)
    upgrade_database(settings)

    assert database_revision(settings) == head_revision(settings)


def test_downgrade_to_base_removes_the_schema_and_upgrade_restores_it(settings: Settings) -> None:
    upgrade_database(settings)

    command.downgrade(alembic_config(settings), "base")
    assert _table_names(settings) == {"alembic_version"}
    assert database_revision(settings) is None

    upgrade_database(settings)
    assert _table_names(settings) == set(Base.metadata.tables) | {"alembic_version"}


def test_reset_drops_every_table_including_unknown_ones_and_migrates_again(settings: Settings) -> None:
    upgrade_database(settings)
    engine = create_engine(settings.database_url, poolclass=pool.NullPool)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE leftover_feature (id INTEGER PRIMARY KEY)"))
        connection.execute(
            text(
                "INSERT INTO agents (name, email, password_hash, role, active, created_at) "
                "VALUES ('A', 'a@kefu.example', 'x', 'agent', 1, '2025-01-01 00:00:00')"
            )
        )
    engine.dispose()

    dropped = reset_database(settings)

    assert "leftover_feature" in dropped and "agents" in dropped
    assert _table_names(settings) == set(Base.metadata.tables) | {"alembic_version"}
    assert database_revision(settings) == head_revision(settings)


def test_new_revision_is_numbered_after_the_head(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Written into a copy of migrations/, never into the real one.
    migrations = tmp_path / "migrations"
    shutil.copytree(migrate.MIGRATIONS_DIR, migrations, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(migrate, "MIGRATIONS_DIR", migrations)
    upgrade_database(settings)

    head = int(head_revision(settings))
    path = new_revision(settings, "add nothing yet")

    assert path == migrations / "versions" / f"{head + 1:04d}_add_nothing_yet.py"
    source = path.read_text()
    assert f"revision: str = '{head + 1:04d}'" in source
    assert f"down_revision: str | Sequence[str] | None = '{head:04d}'" in source


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql://kefu@db:5432/kefu", "postgresql+psycopg://kefu@db:5432/kefu"),
        ("postgres://kefu@db/kefu", "postgresql+psycopg://kefu@db/kefu"),
        ("postgresql+psycopg://kefu@db/kefu", "postgresql+psycopg://kefu@db/kefu"),
        ("sqlite:///var/kefu.db", "sqlite:///var/kefu.db"),
    ],
)
def test_postgres_urls_get_the_psycopg_3_driver(given: str, expected: str) -> None:
    assert normalise_database_url(given) == expected


def test_passwords_are_redacted_from_urls() -> None:
    redacted = redact_database_url("postgresql://kefu:s3cret@db:5432/kefu")

    assert "s3cret" not in redacted
    assert redacted == "postgresql://kefu:***@db:5432/kefu"


def test_percent_encoded_passwords_survive_the_alembic_config() -> None:
    # Alembic's config is a ConfigParser, where a bare % would start an interpolation.
    settings = Settings(database_url="postgresql://kefu:p%40ss@db/kefu", _env_file=None)  # type: ignore[call-arg]

    assert (
        alembic_config(settings).get_main_option("sqlalchemy.url")
        == "postgresql+psycopg://kefu:p%40ss@db/kefu"
    )


@pytest.mark.postgres
def test_upgrade_head_on_postgres(postgres_settings: Settings) -> None:
    # Given as postgresql://, the way hosting platforms hand it out: the driver is chosen for us.
    plain_url = postgres_settings.database_url.replace("postgresql+psycopg://", "postgresql://")
    settings = Settings(database_url=plain_url, _env_file=None)  # type: ignore[call-arg]

    upgrade_database(settings)

    assert _table_names(settings) == set(Base.metadata.tables) | {"alembic_version"}
    assert database_revision(settings) == head_revision(settings)
    assert _schema_differences(settings) == []

    command.downgrade(alembic_config(settings), "base")
    assert _table_names(settings) == {"alembic_version"}

    reset_database(settings)
    assert _table_names(settings) == set(Base.metadata.tables) | {"alembic_version"}


@pytest.mark.postgres
def test_machines_starting_together_migrate_one_after_the_other(postgres_settings: Settings) -> None:
    # Two machines run `kefu db upgrade` at the same moment on an empty database. Without the lock
    # their DDL transactions wait on each other (seen: a deadlock that hangs), hence the timeout.
    pool_ = ThreadPoolExecutor(max_workers=2)
    outcomes = [pool_.submit(upgrade_database, postgres_settings) for _ in range(2)]
    try:
        for outcome in outcomes:
            outcome.result(timeout=120)  # raises if either failed or hangs
    finally:
        pool_.shutdown(wait=False)

    assert database_revision(postgres_settings) == head_revision(postgres_settings)
    assert _schema_differences(postgres_settings) == []


def _journal_mode(path: Path) -> str:
    connection = sqlite3.connect(path)
    try:
        return str(connection.execute("PRAGMA journal_mode").fetchone()[0]).lower()
    finally:
        connection.close()


def test_a_migrated_sqlite_file_is_left_in_wal_mode(settings: Settings) -> None:
    upgrade_database(settings)

    assert _journal_mode(Path(make_url(settings.database_url).database or "")) == "wal"


def test_connections_opening_a_new_sqlite_file_together_all_get_in(tmp_path: Path) -> None:
    # A file still in rollback-journal mode (copied from a backup, or made by an older version): the
    # first connections switch it to WAL. Four at once lose that race about once in fifty tries
    # ("database is locked", not retried by SQLite's busy timeout); 300 tries all but always catch it.
    for round_ in range(300):
        path = tmp_path / f"kefu-{round_}.db"
        plain = sqlite3.connect(path)
        plain.execute("CREATE TABLE visits (id INTEGER PRIMARY KEY)")
        plain.commit()
        plain.close()
        start = threading.Barrier(4)

        def connect(_: int, path: Path = path, start: threading.Barrier = start) -> str:
            connection = sqlite3.connect(path, timeout=30, check_same_thread=False)
            try:
                start.wait()
                use_wal(connection.cursor())
                connection.execute("INSERT INTO visits DEFAULT VALUES")
                connection.commit()
                return "in"
            finally:
                connection.close()

        with ThreadPoolExecutor(4) as pool_:
            assert list(pool_.map(connect, range(4))) == ["in"] * 4
        assert _journal_mode(path) == "wal"
