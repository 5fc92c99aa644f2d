"""The outside services some tests need: PostgreSQL (a database of their own) and Redis.

This machine runs both on loopback. Elsewhere, point the tests at yours with
KEFU_TEST_POSTGRES_URL (an admin connection that may create databases, default
postgresql://postgres@127.0.0.1:5432/postgres) and KEFU_TEST_REDIS_URL (default
redis://127.0.0.1:6379/0). A test that needs one fails, saying so, when it does not answer.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis
from sqlalchemy import create_engine, pool, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from bot.crm.db import normalise_database_url, redact_database_url

POSTGRES_ADMIN_URL = os.environ.get(
    "KEFU_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("KEFU_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@contextmanager
def postgres_database(label: str = "db") -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database, dropped afterwards. Fails without a server."""
    admin_url = normalise_database_url(POSTGRES_ADMIN_URL)
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=pool.NullPool)
    name = f"kefu_test_{label}_{secrets.token_hex(5)}"
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
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            # FORCE: a connection the test forgot to close must not keep the database alive.
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def require_redis(url: str = REDIS_URL) -> None:
    """Fail the test, saying what it needs, when Redis does not answer at `url`."""
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as error:
        pytest.fail(
            f"this test needs Redis at {url} ({type(error).__name__}: {error}). Start one, or point "
            "KEFU_TEST_REDIS_URL at yours (for example redis://127.0.0.1:6379/0).",
            pytrace=False,
        )


def redis_namespace() -> str:
    """A key prefix and channel name of the test's own, so tests never see each other's events."""
    return f"kefutest{secrets.token_hex(4)}"


@contextmanager
def private_redis(workdir: Path) -> Iterator[PrivateRedis]:
    """A redis-server of the test's own on a free port, which the test may stop and start."""
    if shutil.which("redis-server") is None:
        pytest.fail(
            "this test stops and starts a Redis of its own and needs the redis-server program "
            "(Debian: apt install redis-server)",
            pytrace=False,
        )
    server = PrivateRedis(workdir)
    server.start()
    try:
        yield server
    finally:
        server.stop()


class PrivateRedis:
    def __init__(self, workdir: Path) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                redis.Redis.from_url(self.url, socket_connect_timeout=0.5).ping()
                return
            except redis.RedisError:
                time.sleep(0.1)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None
