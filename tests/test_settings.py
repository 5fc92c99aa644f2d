"""Settings refuse to start with a misspelt KEFU_ENV or an unusable secret, and make development's own."""

from __future__ import annotations

import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from bot.processes import process_env
from bot.service_auth import installation_key
from bot.settings import INSTALLATION_KEY_FILE, Settings

GOOD = "0123456789abcdef" * 4  # 64 characters, as `openssl rand -hex 32` gives
PRODUCTION = {"kefu_env": "production", "secret_key": GOOD}


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def refusal(**values: Any) -> str:
    with pytest.raises(ValidationError) as raised:
        settings(**values)
    return str(raised.value)


@pytest.mark.parametrize(
    "spelling", ["Production", "PRODUCTION", "prod", "production ", "test", "staging", ""]
)
def test_kefu_env_is_development_or_production_spelt_exactly(spelling: str) -> None:
    assert "KEFU_ENV" in refusal(kefu_env=spelling, secret_key=GOOD)


def test_production_needs_a_secret_key() -> None:
    assert "SECRET_KEY is not set" in refusal(
        kefu_env="production", rasa_token=GOOD, action_server_token=GOOD
    )


@pytest.mark.parametrize("name", ["secret_key", "rasa_token", "action_server_token"])
@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (" ", "is empty"),
        ("change-me", "is the placeholder"),
        ("CHANGEME", "is the placeholder"),
        ("secret", "is the placeholder"),
        ("x" * 31, "has 31 characters"),
    ],
)
def test_production_refuses_a_weak_secret(name: str, value: str, reason: str) -> None:
    message = refusal(**{**PRODUCTION, name: value})
    assert f"{name.upper()} {reason}" in message


def test_production_refuses_a_weak_telegram_webhook_secret() -> None:
    telegram = {
        "telegram_bot_token": "123:abc",
        "telegram_mode": "webhook",
        "telegram_webhook_url": "https://shop.example/telegram/webhook",
    }
    for weak in ("secret", "x" * 31):
        message = refusal(**PRODUCTION, **telegram, telegram_webhook_secret=weak)
        assert "TELEGRAM_WEBHOOK_SECRET" in message
    assert settings(**PRODUCTION, **telegram, telegram_webhook_secret=GOOD).telegram_webhook_secret == GOOD
    # Polling needs no webhook secret.
    assert (
        settings(**PRODUCTION, telegram_bot_token="123:abc", telegram_mode="polling").telegram_mode
        == "polling"
    )


@pytest.mark.parametrize("name", ["secret_key", "rasa_token", "action_server_token"])
def test_development_refuses_a_placeholder_too(name: str) -> None:
    assert f"{name.upper()} is the placeholder" in refusal(**{name: "change-me"})


def test_production_derives_the_tokens_from_the_secret_key() -> None:
    one = settings(**PRODUCTION)
    assert len(one.rasa_token) >= 32 and len(one.action_server_token) >= 32
    assert len({one.secret_key, one.rasa_token, one.action_server_token}) == 3
    # Every machine with the same SECRET_KEY has the same tokens; another key, others.
    assert settings(**PRODUCTION).rasa_token == one.rasa_token
    other = settings(kefu_env="production", secret_key=GOOD[::-1])
    assert other.rasa_token != one.rasa_token and other.action_server_token != one.action_server_token
    # A token that is set is used as given.
    assert settings(**PRODUCTION, rasa_token="r" * 40).rasa_token == "r" * 40


def test_development_runs_with_nothing_set_and_keeps_its_key() -> None:
    first, second = settings(), settings()
    assert first.secret_key == second.secret_key == INSTALLATION_KEY_FILE.read_text().strip()
    assert first.rasa_token == second.rasa_token and first.action_server_token == second.action_server_token
    # `make run` hands both tokens to the processes, Rasa's launcher included.
    env = process_env(first)
    assert env["RASA_TOKEN"] == first.rasa_token and env["ACTION_SERVER_TOKEN"] == first.action_server_token


def test_the_installation_key_is_random_owner_only_and_made_once(tmp_path: Path) -> None:
    path = tmp_path / "var" / "secret_key"
    with ThreadPoolExecutor(8) as pool:
        keys = set(pool.map(lambda _: installation_key(path), range(16)))
    assert len(keys) == 1 and len(keys.pop()) == 64
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["secret_key"]  # no drafts left behind
    assert installation_key(tmp_path / "other") != installation_key(path)
