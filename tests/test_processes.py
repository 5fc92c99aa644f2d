"""Replicas chosen by settings alone: the Procfile `make run` writes, Rasa's lock store, routing."""

from __future__ import annotations

import asyncio
import shlex
from collections import Counter

import httpx
import pytest

from bot.processes import lock_store_env, procfile_path, replicas_procfile, replicated
from bot.rasa_client import RasaClient, RasaUnavailable
from bot.settings import Settings

TWO = {
    "rasa_url": "http://127.0.0.1:5005,http://127.0.0.1:5006",
    "action_server_url": "http://127.0.0.1:5055, http://127.0.0.1:5056/",
    "gateway_replicas": 2,
    "gateway_port": 8100,
}


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def test_one_of_each_keeps_the_projects_procfile() -> None:
    one = settings()
    assert not replicated(one)
    assert procfile_path(one).name == "Procfile"


def test_the_replicas_procfile_starts_every_configured_process_on_its_own_port() -> None:
    lines = dict(line.split(": ", 1) for line in replicas_procfile(settings(**TWO)).splitlines())
    assert sorted(lines) == ["actions1", "actions2", "gateway1", "gateway2", "mail", "rasa1", "rasa2"]

    def exported(name: str) -> dict[str, str]:
        first = lines[name].split(";", 1)[0]
        return dict(pair.split("=", 1) for pair in shlex.split(first)[1:])

    assert exported("rasa1")["KEFU_RASA_PORT"] == "5005"
    assert exported("rasa2")["KEFU_RASA_PORT"] == "5006"
    # Each Rasa has an action server of its own: calls are spread over both.
    assert exported("rasa1")["KEFU_ACTION_ENDPOINT"] == "http://127.0.0.1:5055/webhook"
    assert exported("rasa2")["KEFU_ACTION_ENDPOINT"] == "http://127.0.0.1:5056/webhook"
    assert exported("actions2")["KEFU_ACTIONS_PORT"] == "5056"
    assert [exported(f"gateway{i}")["KEFU_GATEWAY_PORT"] for i in (1, 2)] == ["8100", "8101"]
    assert '--port "$KEFU_RASA_PORT"' in lines["rasa2"]


def test_only_the_first_gateway_polls_telegram() -> None:
    polling = settings(**TWO, telegram_bot_token="123:abc", telegram_mode="polling")
    text = replicas_procfile(polling)
    gateway_lines = [line for line in text.splitlines() if line.startswith("gateway")]
    assert "TELEGRAM_RECEIVE" not in gateway_lines[0]
    assert "TELEGRAM_RECEIVE=false" in gateway_lines[1]


def test_redis_url_turns_rasas_lock_store_to_redis() -> None:
    assert lock_store_env(settings())["KEFU_LOCK_STORE_TYPE"] == "in_memory"
    env = lock_store_env(settings(redis_url="redis://:s3cret@cache.internal:6380/2", redis_namespace="shop1"))
    assert env == {
        "KEFU_LOCK_STORE_TYPE": "redis",
        "KEFU_LOCK_STORE_HOST": "cache.internal",
        "KEFU_LOCK_STORE_PORT": "6380",
        "KEFU_LOCK_STORE_DB": "2",
        "KEFU_LOCK_STORE_PASSWORD": "s3cret",
        "KEFU_LOCK_STORE_PREFIX": "shop1",
    }


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"redis_url": "http://cache:6379"}, "REDIS_URL"),
        ({"redis_namespace": "kefu:prod"}, "REDIS_NAMESPACE"),
        ({"rasa_url": " , "}, "RASA_URL is empty"),
        ({"gateway_replicas": 0}, "GATEWAY_REPLICAS"),
    ],
)
def test_bad_replica_settings_are_refused_with_the_setting_named(values: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        s = settings(**values)
        s.rasa_urls  # noqa: B018  # the list is checked when read


def _recording_transport(refusing: set[str], seen: list[str]) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        base = f"{request.url.scheme}://{request.url.host}:{request.url.port}"
        seen.append(base)
        if base in refusing:
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(200, json=[{"text": f"from {base}"}])

    return httpx.MockTransport(handler)


def test_each_conversation_keeps_to_one_rasa_and_conversations_spread_over_all() -> None:
    seen: list[str] = []
    client = RasaClient(settings(**TWO), transport=_recording_transport(set(), seen))

    async def run() -> None:
        for sender in (f"sender-{n}" for n in range(200)):
            for _turn in range(3):
                await client.send(sender, "hi", {})
        await client.aclose()

    asyncio.run(run())
    by_conversation = [seen[i : i + 3] for i in range(0, len(seen), 3)]
    assert all(len(set(turns)) == 1 for turns in by_conversation)
    share = Counter(turns[0] for turns in by_conversation)
    assert set(share) == {"http://127.0.0.1:5005", "http://127.0.0.1:5006"}
    assert min(share.values()) > 60  # roughly half each


def test_a_rasa_that_refuses_connections_is_passed_over_and_all_down_is_unavailable() -> None:
    seen: list[str] = []
    refusing = {"http://127.0.0.1:5005"}
    client = RasaClient(settings(**TWO), transport=_recording_transport(refusing, seen))

    async def run() -> list[str]:
        texts = [(await client.send(f"s{n}", "hi", {}))[0].text for n in range(20)]
        refusing.add("http://127.0.0.1:5006")
        with pytest.raises(RasaUnavailable, match="cannot reach Rasa"):
            await client.send("s1", "hi", {})
        await client.aclose()
        return texts

    texts = asyncio.run(run())
    assert set(texts) == {"from http://127.0.0.1:5006"}
