"""Engines and session factories built from the settings they are given, and database URL helpers."""

from __future__ import annotations

import re
import sqlite3
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker

from bot.crm.scoring import install_rescoring
from bot.settings import Settings

# Hosting platforms hand out "postgres://" and "postgresql://" URLs; SQLAlchemy would pick psycopg2 for
# those, which is not installed. psycopg 3 is.
_POSTGRES_PREFIXES = ("postgresql://", "postgres://")
_PSYCOPG3_PREFIX = "postgresql+psycopg://"


def normalise_database_url(url: str) -> str:
    """The URL with PostgreSQL pointed at the psycopg 3 driver; any other URL comes back unchanged."""
    for prefix in _POSTGRES_PREFIXES:
        if url.startswith(prefix):
            return _PSYCOPG3_PREFIX + url.removeprefix(prefix)
    return url


def redact_database_url(url: str) -> str:
    """The URL with its password replaced by ***, safe for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        # Not a URL SQLAlchemy understands; still never show what looks like user:password@.
        return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)


def make_engine(settings: Settings) -> Engine:
    """Build an engine; SQLite files get WAL mode so readers never block the writer."""
    url = normalise_database_url(settings.database_url)
    if settings.is_sqlite:
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA busy_timeout=30000")
            use_wal(cursor)
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


def use_wal(cursor: Any, attempts: int = 50) -> None:
    """Put the SQLite file in WAL mode, so readers never block the writer.

    WAL is a property of the file: it is switched once and kept. The switch needs the file to itself
    and SQLite does not wait for that (the busy timeout does not apply), so when two connections
    open a new file at the same moment one of them is refused; it looks again, and usually finds
    the other has switched already.
    """
    for attempt in range(attempts):
        try:
            if cursor.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal":
                return
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or attempt == attempts - 1:
                raise
            time.sleep(0.02 * (attempt + 1))


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    factory = sessionmaker(engine, expire_on_commit=False)
    install_rescoring(factory)
    return factory


def database_ok(factory: sessionmaker[Session]) -> bool:
    try:
        with factory() as session:
            session.execute(text("SELECT 1"))
        return True
    except Exception:
        return False
