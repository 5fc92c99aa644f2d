"""Engines and session factories built from the settings they are given, and database URL helpers."""

from __future__ import annotations

import os
import re
import sqlite3
import stat
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


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL; None for other databases and for an in-memory SQLite."""
    parsed = make_url(normalise_database_url(url))
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def keep_sqlite_file_private(url: str) -> None:
    """Make a SQLite database's directory (0700, when it is new) and file (0600) readable by us alone.

    The file holds customers' messages, e-mail addresses and the agents' password hashes. SQLite
    creates its -wal and -shm files with the database file's permissions, so those follow.
    """
    path = sqlite_path(url)
    if path is None:
        return
    missing = [parent for parent in (path.parent, *path.parent.parents) if not parent.exists()]
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    for created in missing:
        created.chmod(0o700)  # mkdir's mode is cut by the umask; only the directories we made
    if not path.exists():
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    elif stat.S_IMODE(path.stat().st_mode) & 0o077:
        path.chmod(0o600)


def make_engine(settings: Settings) -> Engine:
    """Build an engine; SQLite files get WAL mode so readers never block the writer."""
    url = normalise_database_url(settings.database_url)
    if settings.is_sqlite:
        keep_sqlite_file_private(url)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            # The pysqlite driver begins transactions itself, only before INSERT/UPDATE/DELETE, and
            # ignores SAVEPOINT: a `begin_nested()` block's RELEASE then committed everything before
            # it. Turned off here; `_begin` below emits BEGIN (SQLAlchemy's pysqlite recipe).
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA busy_timeout=30000")
            use_wal(cursor)
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _begin(connection: Any) -> None:
            # IMMEDIATE takes the write lock up front (waiting for it up to the busy timeout). A plain
            # BEGIN would read first and ask for the lock at the first write; if another connection
            # wrote in between, SQLite refuses at once ("database is locked"), whatever the timeout.
            connection.exec_driver_sql("BEGIN IMMEDIATE")

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
