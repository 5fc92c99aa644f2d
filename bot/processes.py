"""The environment the Procfile's processes need, derived from Kefu's settings in one place."""

from __future__ import annotations

import shlex
from pathlib import Path
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


def lock_store_env(settings: Settings) -> dict[str, str]:
    """Rasa's lock store (endpoints.yml): Redis when REDIS_URL is set, else in Rasa's memory."""
    if not settings.redis_url:
        return {
            "KEFU_LOCK_STORE_TYPE": "in_memory",
            "KEFU_LOCK_STORE_HOST": "",
            "KEFU_LOCK_STORE_PORT": "6379",
            "KEFU_LOCK_STORE_DB": "0",
            "KEFU_LOCK_STORE_PASSWORD": "",
            "KEFU_LOCK_STORE_PREFIX": settings.redis_namespace,
        }
    url = urlsplit(settings.redis_url)
    return {
        "KEFU_LOCK_STORE_TYPE": "redis",
        "KEFU_LOCK_STORE_HOST": url.hostname or "127.0.0.1",
        "KEFU_LOCK_STORE_PORT": str(url.port or 6379),
        "KEFU_LOCK_STORE_DB": url.path.lstrip("/") or "0",
        "KEFU_LOCK_STORE_PASSWORD": url.password or "",
        "KEFU_LOCK_STORE_PREFIX": settings.redis_namespace,
    }


def rasa_env(settings: Settings, index: int) -> dict[str, str]:
    """Where Rasa number `index` (0-based) listens, and the action server it calls."""
    rasa = urlsplit(settings.rasa_urls[index])
    actions = settings.action_server_urls
    return {
        "KEFU_RASA_HOST": rasa.hostname or "127.0.0.1",
        "KEFU_RASA_PORT": str(rasa.port or 5005),
        "KEFU_ACTION_ENDPOINT": f"{actions[index % len(actions)]}/webhook",
    }


def actions_env(settings: Settings, index: int) -> dict[str, str]:
    actions = urlsplit(settings.action_server_urls[index])
    return {
        "KEFU_ACTIONS_PORT": str(actions.port or 5055),
        # The action server binds to loopback only; rasa-sdk reads its host from this variable.
        "SANIC_HOST": actions.hostname or "127.0.0.1",
    }


def process_env(settings: Settings) -> dict[str, str]:
    return {
        **rasa_env(settings, 0),
        **actions_env(settings, 0),
        "KEFU_GATEWAY_HOST": settings.gateway_host,
        "KEFU_GATEWAY_PORT": str(settings.gateway_port),
        "KEFU_MODEL_DIR": str(PROJECT_ROOT / "models"),
        # The tokens as the settings resolved them (set, or derived from SECRET_KEY): Rasa's launcher
        # reads both from its environment, having no access to Kefu's settings in its own Python.
        "RASA_TOKEN": settings.rasa_token,
        "ACTION_SERVER_TOKEN": settings.action_server_token,
        **tracker_store_env(settings),
        **lock_store_env(settings),
    }


def replicated(settings: Settings) -> bool:
    return (
        len(settings.rasa_urls) > 1 or len(settings.action_server_urls) > 1 or settings.gateway_replicas > 1
    )


def replicas_procfile(settings: Settings, procfile: Path = PROJECT_ROOT / "Procfile") -> str:
    """The Procfile's three processes repeated for every Rasa, action server and gateway configured.

    Names are numbered (rasa1, rasa2, actions1, gateway1 ...): one machine of a multi-machine set-up
    starts its own with `python -m bot.supervise --procfile var/Procfile.replicas gateway1 rasa1 actions1`.
    """
    commands = {}
    for line in procfile.read_text().splitlines():
        name, _, command = line.partition(":")
        if command.strip():
            commands[name.strip()] = command.strip()
    polling = bool(settings.telegram_bot_token) and settings.telegram_mode == "polling"
    lines = []

    def add(name: str, env: dict[str, str], command: str) -> None:
        # Exported first: the command reads them as "$KEFU_..." arguments.
        assignments = " ".join(f"{key}={shlex.quote(value)}" for key, value in env.items())
        lines.append(f"{name}: export {assignments}; {command}")

    for index in range(len(settings.rasa_urls)):
        add(f"rasa{index + 1}", rasa_env(settings, index), commands["rasa"])
    for index in range(len(settings.action_server_urls)):
        add(f"actions{index + 1}", actions_env(settings, index), commands["actions"])
    for index in range(settings.gateway_replicas):
        env = {"KEFU_GATEWAY_PORT": str(settings.gateway_port + index)}
        if polling and index > 0:
            env["TELEGRAM_RECEIVE"] = "false"  # one reader per bot; the first gateway polls
        add(f"gateway{index + 1}", env, commands["gateway"])
    if "mail" in commands:
        lines.append(f"mail: {commands['mail']}")  # one local mail sink serves every replica
    return "\n".join(lines) + "\n"


def procfile_path(settings: Settings) -> Path:
    """The Procfile `make run` starts: the project's, or one written for the replicas configured."""
    if not replicated(settings):
        return PROJECT_ROOT / "Procfile"
    path = PROJECT_ROOT / "var" / "Procfile.replicas"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(replicas_procfile(settings))
    return path


def telegram_status(settings: Settings) -> str:
    """One line for `make run`'s banner: whether the gateway talks to Telegram, and how."""
    if not settings.telegram_bot_token:
        return "off (set TELEGRAM_BOT_TOKEN in .env to connect a bot; see README)"
    if settings.telegram_mode == "webhook":
        return f"on, webhook at {settings.telegram_webhook_url}"
    return "on, polling Telegram for updates"


def replicas_status(settings: Settings) -> str:
    """One line for `make run`'s banner: what runs, and where live events and locks are shared."""
    gateways = settings.gateway_replicas
    ports = (
        str(settings.gateway_port)
        if gateways == 1
        else f"{settings.gateway_port}-{settings.gateway_port + gateways - 1}"
    )
    shared = "Redis " + settings.redis_url.split("@")[-1] if settings.redis_url else "no Redis (one replica)"
    return (
        f"{gateways} gateway(s) on port(s) {ports}, {len(settings.rasa_urls)} Rasa, "
        f"{len(settings.action_server_urls)} action server(s); {shared}"
    )


def main() -> None:
    settings = get_settings()
    for name, value in process_env(settings).items():
        print(f"export {name}={shlex.quote(value)}")
    print(f"export KEFU_PROCFILE={shlex.quote(str(procfile_path(settings)))}")
    print(f"export KEFU_TELEGRAM_STATUS={shlex.quote(telegram_status(settings))}")
    print(f"export KEFU_REPLICAS_STATUS={shlex.quote(replicas_status(settings))}")
    print(f"export KEFU_DEMO_DATA={0 if settings.kefu_env == 'production' else 1}")


if __name__ == "__main__":
    main()
