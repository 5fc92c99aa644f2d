"""Rasa and the action server trust only Kefu's own processes, and no secret is on a command line.

Against the real processes started from the Procfile under supervisord (as `make run` does), with
distinctive secret values: every process's `/proc/<pid>/cmdline` is searched for them; Rasa's
conversation routes and its REST webhook are called without the token, with an empty one and with a
wrong one; the action server is sent a forged action call for a verified chat without the shared
secret. Then the same things with the right secrets, and a real chat through the gateway, show that
the refusals come from the secrets and that Kefu itself still works. The launchers' refusals to
start without usable secrets are checked without a stack.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from bot.crm.db import make_engine, make_sessionmaker
from bot.crm.models import Conversation
from bot.settings import PROJECT_ROOT, Settings
from tests.support.fakes.telegram_api import FakeTelegram
from tests.support.stack import Stack, running_stack, stack_settings
from tests.support.visitors import named_visitor

pytestmark = pytest.mark.rasa

_RUN = uuid.uuid4().hex[:10]
SECRET_KEY = f"SecretKey{_RUN}Sk"
RASA_TOKEN = f"RasaToken{_RUN}Rt"
ACTION_SERVER_TOKEN = f"ActionToken{_RUN}At"
TELEGRAM_TOKEN = f"4815162342:TgBotToken{_RUN}Tg"
WEBHOOK_SECRET = f"WebhookSecret{_RUN}Ws"
SECRETS = {
    "SECRET_KEY": SECRET_KEY,
    "RASA_TOKEN": RASA_TOKEN,
    "ACTION_SERVER_TOKEN": ACTION_SERVER_TOKEN,
    "the secret part of TELEGRAM_BOT_TOKEN": TELEGRAM_TOKEN.split(":")[1],
    "TELEGRAM_WEBHOOK_SECRET": WEBHOOK_SECRET,
}
ANA_ORDER, ANA_EMAIL = "100001", "ana.souza@example.com"
# What any of Ana's orders would show: numbers, carriers, her name.
ANA_DETAILS = ("100001", "100002", "100003", "DHL", "Ana")


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeTelegram]:
    with FakeTelegram(token=TELEGRAM_TOKEN) as telegram:
        yield telegram


@pytest.fixture(scope="module")
def stack(fake: FakeTelegram, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("internal")
    settings = stack_settings(workdir)
    settings = settings.model_copy(
        update={
            "secret_key": SECRET_KEY,
            "rasa_token": RASA_TOKEN,
            "action_server_token": ACTION_SERVER_TOKEN,
            "telegram_bot_token": fake.token,
            "telegram_mode": "webhook",
            "telegram_webhook_url": f"http://127.0.0.1:{settings.gateway_port}/telegram/webhook",
            "telegram_webhook_secret": WEBHOOK_SECRET,
            "telegram_api_url": fake.base_url,
        }
    )
    with running_stack(workdir, settings=settings) as running:
        yield running


def say(stack: Stack, visitor: str, text: str) -> str:
    response = httpx.post(
        f"{stack.gateway_url}/api/web/messages",
        json={"session": named_visitor(visitor, SECRET_KEY), "text": text},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    return "\n".join(message["text"] for message in response.json()["messages"])


@pytest.fixture(scope="module")
def verified_sender(stack: Stack) -> str:
    """Rasa's sender id of a web chat in which Ana proved order 100001 is hers, through the gateway."""
    visitor = f"internal-{uuid.uuid4().hex[:8]}"
    assert "e-mail" in say(stack, visitor, f"where is my order {ANA_ORDER}?")
    assert f"#{ANA_ORDER}" in say(stack, visitor, ANA_EMAIL)
    engine = make_engine(Settings(database_url=stack.settings.database_url, _env_file=None))  # type: ignore[call-arg]
    try:
        with make_sessionmaker(engine)() as session:
            chat = session.scalars(
                select(Conversation).where(
                    Conversation.channel == "web",
                    Conversation.external_id == named_visitor(visitor, SECRET_KEY),
                )
            ).one()
            assert chat.customer_id is not None
            return chat.sender_id
    finally:
        engine.dispose()


def stack_pids(stack: Stack) -> dict[int, str]:
    """Every process of the stack (supervisord's session: it was started in a session of its own)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            session = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[3])
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError, ValueError):
            continue  # ended meanwhile
        if session == stack.process.pid:
            found[int(entry.name)] = cmdline
    return found


# --- command lines ---------------------------------------------------------------------------------------


def test_no_process_of_the_stack_shows_a_secret_on_its_command_line(
    stack: Stack, verified_sender: str
) -> None:
    processes = stack_pids(stack)
    shown = {
        f"{name} in pid {pid}": cmdline
        for pid, cmdline in processes.items()
        for name, value in SECRETS.items()
        if value in cmdline
    }
    assert shown == {}
    # The search covered every kind of process: supervisord, Rasa, the action server, the gateway
    # (which runs Telegram too), the watchdog.
    commands = "\n".join(processes.values())
    for kind in (
        "supervisord",
        "bot.launch.rasa_server",
        "bot.launch.action_server",
        "uvicorn",
        "bot.watchdog",
    ):
        assert kind in commands, f"no {kind} among the stack's processes:\n{commands}"


# --- Rasa ------------------------------------------------------------------------------------------------


def rasa(stack: Stack, method: str, path: str, token: str | None, **kwargs: Any) -> httpx.Response:
    params = {} if token is None else {"token": token}
    return httpx.request(method, f"{stack.settings.rasa_url}{path}", params=params, timeout=60, **kwargs)


def rasa_routes(sender: str) -> list[tuple[str, str, Any]]:
    """Routes that read or write a conversation (or the model answering it), with a plausible body."""
    return [
        ("GET", f"/conversations/{sender}/tracker", None),
        ("GET", f"/conversations/{sender}/story", None),
        ("POST", f"/conversations/{sender}/tracker/events", [{"event": "pause"}]),
        ("PUT", f"/conversations/{sender}/tracker/events", []),
        ("POST", f"/conversations/{sender}/messages", {"text": "hello", "sender": "user"}),
        ("POST", f"/conversations/{sender}/trigger_intent", {"name": "greet"}),
        ("POST", f"/conversations/{sender}/predict", None),
        ("POST", "/webhooks/rest/webhook", {"sender": sender, "message": "my orders please"}),
        ("POST", "/model/parse", {"text": "where is my order"}),
        ("GET", "/status", None),
        ("GET", "/domain", None),
    ]


@pytest.mark.parametrize(
    "token", [None, "", "wrong-token", RASA_TOKEN[:-1]], ids=["none", "empty", "wrong", "near"]
)
def test_rasa_refuses_every_conversation_route_without_the_token(
    stack: Stack, verified_sender: str, token: str | None
) -> None:
    for method, path, body in rasa_routes(verified_sender):
        response = rasa(stack, method, path, token, json=body)
        assert response.status_code in (401, 403), (method, path, response.status_code, response.text[:300])
        assert ANA_EMAIL not in response.text and ANA_ORDER not in response.text, (method, path)


def test_rasa_serves_the_gateway_holding_the_token(stack: Stack, verified_sender: str) -> None:
    tracker = rasa(stack, "GET", f"/conversations/{verified_sender}/tracker", RASA_TOKEN)
    assert tracker.status_code == 200
    assert ANA_EMAIL in [event.get("text") for event in tracker.json()["events"]]


def test_the_rest_webhook_without_the_token_reaches_no_conversation(stack: Stack) -> None:
    sender = f"forged-{uuid.uuid4().hex[:8]}"
    for token in (None, "", "wrong-token"):
        refused = rasa(
            stack, "POST", "/webhooks/rest/webhook", token, json={"sender": sender, "message": "hi"}
        )
        assert refused.status_code == 401, refused.text
    # Nothing was recorded for that sender: the message never reached the dialogue.
    tracker = rasa(stack, "GET", f"/conversations/{sender}/tracker", RASA_TOKEN).json()
    assert [event for event in tracker["events"] if event["event"] == "user"] == []
    # With the token the same request is answered: the refusal came from the token alone.
    answered = rasa(
        stack, "POST", "/webhooks/rest/webhook", RASA_TOKEN, json={"sender": sender, "message": "hi"}
    )
    assert answered.status_code == 200 and answered.json(), answered.text


# --- the action server ------------------------------------------------------------------------------------


def action_call(sender: str) -> dict[str, Any]:
    """What Rasa would post to run `action_list_orders` in the chat of `sender`."""
    return {
        "next_action": "action_list_orders",
        "sender_id": sender,
        "version": "3.6.21",
        "domain": {},
        "tracker": {
            "sender_id": sender,
            "slots": {},
            "latest_message": {
                "text": "show me my orders",
                "intent": {"name": "track_order"},
                "entities": [],
            },
            "events": [],
            "paused": False,
            "followup_action": None,
            "active_loop": {},
            "latest_action_name": "action_listen",
        },
    }


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": ACTION_SERVER_TOKEN},
    ],
    ids=["none", "empty", "wrong", "not-bearer"],
)
def test_a_forged_action_call_without_the_secret_runs_no_action(
    stack: Stack, verified_sender: str, headers: dict[str, str]
) -> None:
    actions = stack.settings.action_server_url
    forged = httpx.post(f"{actions}/webhook", json=action_call(verified_sender), headers=headers, timeout=60)
    assert forged.status_code == 401, forged.text
    assert not any(detail in forged.text for detail in ANA_DETAILS), forged.text
    listed = httpx.get(f"{actions}/actions", headers=headers, timeout=60)
    assert listed.status_code == 401, listed.text


def test_the_action_server_serves_the_holder_of_the_secret(stack: Stack, verified_sender: str) -> None:
    actions = stack.settings.action_server_url
    assert httpx.get(f"{actions}/health", timeout=10).status_code == 200  # the watchdog's check stays open
    answered = httpx.post(
        f"{actions}/webhook",
        json=action_call(verified_sender),
        headers={"Authorization": f"Bearer {ACTION_SERVER_TOKEN}"},
        timeout=60,
    )
    assert answered.status_code == 200, answered.text
    assert "responses" in answered.json()


def test_a_chat_through_the_gateway_still_runs_actions(stack: Stack) -> None:
    # Verifying an order runs custom actions: Rasa called the action server with the secret.
    visitor = f"internal-chat-{uuid.uuid4().hex[:8]}"
    assert "e-mail" in say(stack, visitor, "where is my order 100004?")
    assert "#100004" in say(stack, visitor, "jonas.becker@example.com")


# --- the launchers refuse to start without usable secrets (no stack) ----------------------------------------


def launch(python: str, module: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp")}
    return subprocess.run(
        [str(PROJECT_ROOT / python / "bin" / "python"), "-m", module, "--port", "9"],
        env={**base, **env},
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


GOOD = "g" * 40


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"ACTION_SERVER_TOKEN": GOOD}, "RASA_TOKEN is empty"),
        ({"RASA_TOKEN": "", "ACTION_SERVER_TOKEN": GOOD}, "RASA_TOKEN is empty"),
        ({"RASA_TOKEN": "change-me", "ACTION_SERVER_TOKEN": GOOD}, "RASA_TOKEN is the placeholder"),
        ({"RASA_TOKEN": GOOD}, "ACTION_SERVER_TOKEN is empty"),
        ({"RASA_TOKEN": "short", "ACTION_SERVER_TOKEN": GOOD, "KEFU_ENV": "production"}, "RASA_TOKEN has 5"),
    ],
)
def test_rasa_refuses_to_start_without_usable_tokens(env: dict[str, str], named: str) -> None:
    result = launch(".venv-rasa", "bot.launch.rasa_server", env)
    assert result.returncode != 0
    assert named in result.stderr, result.stderr[-2000:]


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"ACTION_SERVER_TOKEN": "change-me"}, "ACTION_SERVER_TOKEN is the placeholder"),
        ({"SECRET_KEY": "change-me"}, "SECRET_KEY is the placeholder"),
        (
            {"KEFU_ENV": "production", "SECRET_KEY": GOOD, "ACTION_SERVER_TOKEN": "short"},
            "ACTION_SERVER_TOKEN has 5",
        ),
    ],
)
def test_the_action_server_refuses_to_start_without_a_usable_secret(env: dict[str, str], named: str) -> None:
    result = launch(".venv", "bot.launch.action_server", env)
    assert result.returncode != 0
    assert named in result.stderr, result.stderr[-2000:]
