"""Secret values never reach a log line (bot/logsafe.py): the redaction itself, and that the gateway and
the action server switch it on. The whole stack's log is searched in tests/security/test_stack.py."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from bot import logsafe
from bot.settings import PROJECT_ROOT, Settings
from bot.web.app import create_app

TOKEN = "4815162342:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
RASA_TOKEN = "rasa-token-7f3a9c21e"
DB_PASSWORD = "p@ss:w/rd%42"  # characters a URL must percent-encode


@pytest.fixture
def secret_settings(web_settings: Settings) -> Settings:
    return web_settings.model_copy(
        update={
            "secret_key": "session-signing-key-5d1e",
            "rasa_token": RASA_TOKEN,
            "telegram_bot_token": TOKEN,
            "telegram_webhook_secret": "webhook-secret-0b7c",
            "database_url": "postgresql+psycopg://kefu:p%40ss%3Aw%2Frd%2542@db.internal:5432/kefu",
            "tracker_store_url": "postgresql://rasa:tracker-pass-91@db.internal/rasa",
            "redis_url": "redis://:redis-pass-3e8@cache.internal:6380/2",
        }
    )


@pytest.fixture
def log_output() -> Iterator[io.StringIO]:
    """What a handler on the root logger writes, with tracebacks, while the test runs."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield stream
    root.removeHandler(handler)
    root.setLevel(level)


def test_every_configured_secret_is_known_in_every_spelling(secret_settings: Settings) -> None:
    values = logsafe.secret_values(secret_settings)
    for secret in (
        "session-signing-key-5d1e",
        RASA_TOKEN,
        TOKEN,
        TOKEN.split(":")[1],
        "webhook-secret-0b7c",
        DB_PASSWORD,
        "p%40ss%3Aw%2Frd%2542",  # as written in DATABASE_URL
        "tracker-pass-91",
        "redis-pass-3e8",
    ):
        assert secret in values, secret
    # The development placeholder is no secret, and blanking it out would hide nothing.
    assert "change-me" not in logsafe.secret_values(Settings(_env_file=None))  # type: ignore[call-arg]


def test_the_gateway_redacts_the_bot_token_and_rasas_token_from_its_logs(
    secret_settings: Settings, log_output: io.StringIO
) -> None:
    create_app(secret_settings)  # installs the redaction, first thing
    # How httpx logs each request, and how an error travels with its traceback.
    logging.getLogger("httpx").info(
        'HTTP Request: %s %s "%s"',
        "POST",
        f"https://api.telegram.org/bot{TOKEN}/sendMessage",
        "HTTP/1.1 200 OK",
    )
    logging.getLogger("httpx").info("HTTP Request: GET http://127.0.0.1:5005/status?token=%s", RASA_TOKEN)
    try:
        raise ConnectionError(f"cannot connect to postgresql://kefu:{DB_PASSWORD}@db.internal/kefu")
    except ConnectionError:
        logging.getLogger("bot.test").exception("database down")
    logging.getLogger("bot.test").warning("Redis at %s", "redis://:redis-pass-3e8@cache.internal:6380/2")
    logging.getLogger("bot.test").warning("where the token %s was used", RASA_TOKEN, stack_info=True)

    written = log_output.getvalue()
    for secret in logsafe.secret_values(secret_settings):
        assert secret not in written, secret
    assert "https://api.telegram.org/bot[redacted]/sendMessage" in written
    assert "status?token=[redacted]" in written
    assert "ConnectionError: cannot connect to postgresql://kefu:[redacted]@db.internal/kefu" in written
    assert "redis://:[redacted]@cache.internal:6380/2" in written


def test_lines_without_secrets_are_left_as_they_are(
    secret_settings: Settings, log_output: io.StringIO
) -> None:
    redactor = logsafe.install(secret_settings)
    logging.getLogger("bot.test").info("order %s for %s", "100001", "ana.souza@example.com")
    assert log_output.getvalue() == "INFO bot.test order 100001 for ana.souza@example.com\n"
    assert redactor.redact("nothing secret here") == "nothing secret here"


def test_the_action_server_redacts_its_logs_too() -> None:
    # rasa_sdk imports the `actions` package; a process of its own, configured from its environment.
    script = (
        "import logging, actions; logging.basicConfig(format='%(message)s'); "
        f"logging.getLogger('rasa_sdk').warning('calling http://127.0.0.1:5005/x?token={RASA_TOKEN}')"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KEFU_", "TELEGRAM_"))}
    env.update(RASA_TOKEN=RASA_TOKEN, TELEGRAM_BOT_TOKEN=TOKEN)
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, check=True
    )
    assert done.stderr.strip() == "calling http://127.0.0.1:5005/x?token=[redacted]"
