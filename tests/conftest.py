"""Shared fixtures: settings for a temporary database, migrated session factories, throwaway PostgreSQL."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from bot.crm.db import make_engine, make_sessionmaker
from bot.crm.migrate import upgrade_database
from bot.settings import Settings
from tests.support.services import postgres_database

# Fixtures several test folders share (the seeded knowledge-base database).
pytest_plugins = ["tests.support.knowledge", "tests.support.mail"]


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
    with postgres_database() as url:
        yield Settings(database_url=url, _env_file=None)  # type: ignore[call-arg]
