"""Shared fixtures: settings for a temporary database, migrated session factories, throwaway PostgreSQL."""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, pool, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from bot.crm.db import make_engine, make_sessionmaker, normalise_database_url, redact_database_url
from bot.crm.migrate import upgrade_database
from bot.settings import Settings

POSTGRES_ADMIN_URL = os.environ.get(
    "KEFU_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


def sqlite_settings(path: Path) -> Settings:
    """Settings for a SQLite file; nothing is read from a developer's .env."""
    return Settings(database_url=f"sqlite:///{path}", _env_file=None)  # type: ignore[call-arg]


@pytest.fixture(scope="session")
def _migrated_sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Migrating takes a moment; each test gets a copy of one database migrated once per run.
    path = tmp_path_factory.mktemp("template") / "kefu.db"
    upgrade_database(sqlite_settings(path))
    return path


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings for this test alone, pointing at a new (empty, unmigrated) SQLite file."""
    return sqlite_settings(tmp_path / "kefu.db")


@pytest.fixture
def db_sessionmaker(settings: Settings, _migrated_sqlite_template: Path) -> Iterator[sessionmaker[Session]]:
    """A session factory on the test's own database, migrated to the newest schema."""
    if settings.is_sqlite:
        shutil.copyfile(_migrated_sqlite_template, make_url(settings.database_url).database or "")
    else:
        upgrade_database(settings)
    engine = make_engine(settings)
    yield make_sessionmaker(engine)
    engine.dispose()


@pytest.fixture
def db_session(db_sessionmaker: sessionmaker[Session]) -> Iterator[Session]:
    """One session on the test's database; the test commits if it wants to."""
    with db_sessionmaker() as session:
        yield session


@pytest.fixture
def postgres_settings() -> Iterator[Settings]:
    """Settings for a new, empty PostgreSQL database, dropped after the test. Fails without a server."""
    admin_url = normalise_database_url(POSTGRES_ADMIN_URL)
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=pool.NullPool)
    name = f"kefu_test_{secrets.token_hex(6)}"
    reason = None
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as error:
        reason = str(error.orig).strip().splitlines()[0]
    if reason is not None:  # reported outside the except block, so without the driver's traceback
        admin.dispose()
        pytest.fail(
            f"this test needs a PostgreSQL server where it may create databases; connecting to "
            f"{redact_database_url(admin_url)} failed: {reason}. Start one, or point KEFU_TEST_POSTGRES_URL "
            "at an admin connection (for example postgresql://postgres@127.0.0.1:5432/postgres).",
            pytrace=False,
        )
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    try:
        yield Settings(database_url=url, _env_file=None)  # type: ignore[call-arg]
    finally:
        with admin.connect() as connection:
            # FORCE: a connection the test forgot to close must not keep the database alive.
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
