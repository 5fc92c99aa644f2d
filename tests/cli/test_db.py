"""The `kefu` command as installed, run in a subprocess against a temporary database."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from bot.settings import PROJECT_ROOT

KEFU = Path(sys.executable).with_name("kefu")


def kefu(*args: str, database_url: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run `kefu` from `cwd` (a temporary directory, so a developer's .env cannot interfere)."""
    if not KEFU.exists():
        pytest.fail(f"{KEFU} is missing: install the project into this environment (pip install -e .)")
    environment = {key: value for key, value in os.environ.items() if not key.startswith("KEFU_")}
    environment.update(DATABASE_URL=database_url, **env)
    return subprocess.run(
        [str(KEFU), *args], env=environment, cwd=cwd, capture_output=True, text=True, timeout=120
    )


def count(database: Path, table: str) -> int:
    with sqlite3.connect(database) as connection:
        return int(connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def test_upgrade_then_seed_twice_seeds_once(tmp_path: Path) -> None:
    database = tmp_path / "var" / "kefu.db"
    url = f"sqlite:///{database}"

    upgraded = kefu("db", "upgrade", database_url=url, cwd=tmp_path)
    assert upgraded.returncode == 0, upgraded.stderr
    versions = (PROJECT_ROOT / "migrations" / "versions").glob("[0-9]*.py")
    newest = sorted(path.name[:4] for path in versions)[-1]
    assert "upgraded" in upgraded.stdout and f"revision {newest}" in upgraded.stdout

    first = kefu("db", "seed", "--today", "2025-06-15", database_url=url, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("Seeded ") and "1200 orders" in first.stdout
    orders = count(database, "orders")

    second = kefu("db", "seed", database_url=url, cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert "already seeded" in second.stdout
    assert count(database, "orders") == orders


def test_seed_before_upgrade_says_what_to_do(tmp_path: Path) -> None:
    result = kefu("db", "seed", database_url=f"sqlite:///{tmp_path / 'kefu.db'}", cwd=tmp_path)

    assert result.returncode == 1
    assert "kefu db upgrade" in result.stderr


def test_reset_needs_yes_and_then_empties_the_database(tmp_path: Path) -> None:
    database = tmp_path / "kefu.db"
    url = f"sqlite:///{database}"
    assert kefu("db", "upgrade", database_url=url, cwd=tmp_path).returncode == 0
    with sqlite3.connect(database) as connection:
        connection.execute(
            "INSERT INTO customers (name, email, created_at, value_tier, lifecycle_stage)"
            " VALUES ('Kim', 'kim@example.com', '2025-01-01 00:00:00', 'regular', 'new')"
        )

    refused = kefu("db", "reset", database_url=url, cwd=tmp_path)
    assert refused.returncode != 0
    assert "--yes" in refused.stderr
    assert count(database, "customers") == 1

    reset = kefu("db", "reset", "--yes", database_url=url, cwd=tmp_path)
    assert reset.returncode == 0, reset.stderr
    assert count(database, "customers") == 0
    assert count(database, "alembic_version") == 1


def test_unreachable_database_is_named_without_its_password(tmp_path: Path) -> None:
    result = kefu("db", "upgrade", database_url="postgresql://kefu:s3cret@127.0.0.1:1/kefu", cwd=tmp_path)

    assert result.returncode == 1
    assert "cannot use the database at postgresql://kefu:***@127.0.0.1:1/kefu" in result.stderr
    assert "s3cret" not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


def test_demo_data_is_refused_in_production(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'kefu.db'}"
    production = {"KEFU_ENV": "production", "SECRET_KEY": "x" * 40, "RASA_TOKEN": "y" * 40}

    result = kefu("db", "seed", database_url=url, cwd=tmp_path, **production)

    assert result.returncode == 1
    assert "production" in result.stderr


def test_demo_logins_lists_every_console_account(tmp_path: Path) -> None:
    result = kefu("demo-logins", database_url=f"sqlite:///{tmp_path / 'kefu.db'}", cwd=tmp_path)

    assert result.returncode == 0
    for email in ("lead@kefu.example", "ada@kefu.example", "sam@kefu.example"):
        assert email in result.stdout
    assert "kefu-lead-demo" in result.stdout and "kefu-agent-demo" in result.stdout
