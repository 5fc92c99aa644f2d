"""`kefu customers export|erase` as installed, in a subprocess, on a real database and tracker store."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from bot.crm.db import make_engine, make_sessionmaker
from bot.crm.migrate import upgrade_database
from bot.settings import Settings
from tests.support.privacy_shop import ANA_EMAIL, ANA_SECRET, SENDERS, Shop, build_shop, write_rasa_trackers

KEFU = Path(sys.executable).with_name("kefu")


@pytest.fixture
def world(tmp_path: Path) -> tuple[Shop, dict[str, str]]:
    """A migrated CRM with the privacy tests' shop, a tracker store written by Rasa, and the
    environment that points `kefu` at both."""
    database, tracker = tmp_path / "kefu.db", tmp_path / "rasa-tracker.db"
    settings = Settings(database_url=f"sqlite:///{database}", _env_file=None)  # type: ignore[call-arg]
    upgrade_database(settings)
    engine = make_engine(settings)
    with make_sessionmaker(engine).begin() as session:
        shop = build_shop(session)
    engine.dispose()
    write_rasa_trackers(tracker)
    environment = {key: value for key, value in os.environ.items() if not key.startswith("KEFU_")}
    environment.update(DATABASE_URL=f"sqlite:///{database}", TRACKER_STORE_URL=f"sqlite:///{tracker}")
    return shop, environment


def kefu(*args: str, env: dict[str, str], cwd: Path, stdin: str = "") -> subprocess.CompletedProcess[str]:
    if not KEFU.exists():
        pytest.fail(f"{KEFU} is missing: install the project into this environment (pip install -e .)")
    return subprocess.run(
        [str(KEFU), *args], env=env, cwd=cwd, input=stdin, capture_output=True, text=True, timeout=120
    )


def tracker_senders(env: dict[str, str]) -> set[str]:
    with sqlite3.connect(env["TRACKER_STORE_URL"].removeprefix("sqlite:///")) as connection:
        return {row[0] for row in connection.execute("SELECT DISTINCT sender_id FROM events")}


def customer_email(env: dict[str, str], customer_id: int) -> str:
    with sqlite3.connect(env["DATABASE_URL"].removeprefix("sqlite:///")) as connection:
        return str(
            connection.execute("SELECT email FROM customers WHERE id = ?", (customer_id,)).fetchone()[0]
        )


def test_export_prints_one_json_document_or_writes_a_private_file(
    world: tuple[Shop, dict[str, str]], tmp_path: Path
) -> None:
    shop, env = world
    printed = kefu("customers", "export", str(shop.ana_id), env=env, cwd=tmp_path)
    assert printed.returncode == 0, printed.stderr
    document = json.loads(printed.stdout)
    assert document["customer"]["email"] == ANA_EMAIL
    assert {order["number"] for order in document["orders"]} == {"100001", "100002", "100003"}
    assert any(t["events"] for t in document["rasa_trackers"])

    out = tmp_path / "ana.json"
    written = kefu("customers", "export", str(shop.ana_id), "--out", str(out), env=env, cwd=tmp_path)
    assert written.returncode == 0, written.stderr
    assert f"to {out}" in written.stdout and "3 order(s)" in written.stdout
    assert json.loads(out.read_text())["customer"]["email"] == ANA_EMAIL
    assert out.stat().st_mode & 0o077 == 0  # personal data: nobody else may read it


def test_an_unknown_customer_gives_a_message_and_exit_code_1(
    world: tuple[Shop, dict[str, str]], tmp_path: Path
) -> None:
    _shop, env = world
    for args in (("export", "999999"), ("erase", "999999", "--yes"), ("erase", "999999")):
        result = kefu("customers", *args, env=env, cwd=tmp_path)
        assert result.returncode == 1
        assert "there is no customer 999999" in result.stderr
        assert result.stdout == ""


def test_erase_asks_first_then_erases_once(world: tuple[Shop, dict[str, str]], tmp_path: Path) -> None:
    shop, env = world

    refused = kefu("customers", "erase", str(shop.ana_id), env=env, cwd=tmp_path, stdin="no\n")
    assert refused.returncode == 1 and "Nothing erased" in refused.stderr
    assert "Type yes" in refused.stderr
    assert customer_email(env, shop.ana_id) == ANA_EMAIL
    assert SENDERS["ana_web"] in tracker_senders(env)

    confirmed = kefu("customers", "erase", str(shop.ana_id), env=env, cwd=tmp_path, stdin="yes\n")
    assert confirmed.returncode == 0, confirmed.stderr
    assert (
        f"Erased customer {shop.ana_id}" in confirmed.stdout and "6 Rasa tracker event(s)" in confirmed.stdout
    )
    assert customer_email(env, shop.ana_id) == f"erased-{shop.ana_id}@erased.invalid"
    assert tracker_senders(env) == {SENDERS["jonas"]}

    again = kefu("customers", "erase", str(shop.ana_id), "--yes", env=env, cwd=tmp_path)
    assert again.returncode == 0 and "already erased" in again.stdout
    exported = kefu("customers", "export", str(shop.ana_id), env=env, cwd=tmp_path)
    assert ANA_SECRET not in exported.stdout and json.loads(exported.stdout)["erased"] is True
