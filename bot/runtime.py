"""The environment the Procfile's processes need, derived from Kefu's settings in one place."""

from __future__ import annotations

import shlex
from urllib.parse import urlsplit

from bot.settings import PROJECT_ROOT, Settings, get_settings


def tracker_store_env(settings: Settings) -> dict[str, str]:
    """Rasa's SQL tracker store: a SQLite file beside the CRM's by default, else the given URL."""
    url = settings.tracker_store_url
    if url.startswith("sqlite"):
        return {
            "KEFU_TRACKER_DIALECT": "sqlite",
            "KEFU_TRACKER_HOST": "",
            "KEFU_TRACKER_DB": url.split("///", 1)[-1],
        }
    # Rasa's SQLAlchemy 1.4 wants the plain postgresql:// scheme (psycopg2), not our psycopg 3 one.
    return {
        "KEFU_TRACKER_DIALECT": urlsplit(url).scheme.split("+")[0],
        "KEFU_TRACKER_HOST": url.replace("postgresql+psycopg://", "postgresql://", 1),
        "KEFU_TRACKER_DB": urlsplit(url).path.lstrip("/"),
    }


def process_env(settings: Settings) -> dict[str, str]:
    rasa = urlsplit(settings.rasa_url)
    actions = urlsplit(settings.action_server_url)
    return {
        "KEFU_RASA_HOST": rasa.hostname or "127.0.0.1",
        "KEFU_RASA_PORT": str(rasa.port or 5005),
        "KEFU_ACTIONS_PORT": str(actions.port or 5055),
        "KEFU_ACTION_ENDPOINT": f"{settings.action_server_url.rstrip('/')}/webhook",
        "KEFU_GATEWAY_HOST": settings.gateway_host,
        "KEFU_GATEWAY_PORT": str(settings.gateway_port),
        "KEFU_MODEL_DIR": str(PROJECT_ROOT / "models"),
        "RASA_TOKEN": settings.rasa_token,
        # The action server binds to loopback only; rasa-sdk reads its host from this variable.
        "SANIC_HOST": actions.hostname or "127.0.0.1",
        **tracker_store_env(settings),
    }


def telegram_status(settings: Settings) -> str:
    """One line for `make run`'s banner: whether the gateway talks to Telegram, and how."""
    if not settings.telegram_bot_token:
        return "off (set TELEGRAM_BOT_TOKEN in .env to connect a bot; see README)"
    if settings.telegram_mode == "webhook":
        return f"on, webhook at {settings.telegram_webhook_url}"
    return "on, polling Telegram for updates"


def main() -> None:
    settings = get_settings()
    for name, value in process_env(settings).items():
        print(f"export {name}={shlex.quote(value)}")
    print(f"export KEFU_TELEGRAM_STATUS={shlex.quote(telegram_status(settings))}")


if __name__ == "__main__":
    main()
