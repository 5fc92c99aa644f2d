"""The production shape under load and under faults: 2 gateways, 2 Rasa servers and 2 action servers
on PostgreSQL and Redis, every process real and started from the replicas' Procfile.

Needs PostgreSQL (KEFU_TEST_POSTGRES_URL, default postgresql://postgres@127.0.0.1:5432/postgres)
and the redis-server program (the tests run a Redis of their own so they can stop it); see
tests/support/services.py. The database is reached through a TCP proxy so a test can make it refuse
connections for a while.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url
from websockets.sync.client import connect as websocket_connect

from bot.channels.pipeline import FALLBACK_TEXT
from bot.demo.seed import DEMO_PASSWORD_AGENT
from bot.errors import DATABASE_DOWN_TEXT
from tests.support.cluster import Cluster, cluster_settings, start_cluster
from tests.support.fakes.tcp_proxy import TcpProxy
from tests.support.services import PrivateRedis, postgres_database, private_redis, redis_namespace
from tests.support.visitors import named_visitor

pytestmark = [pytest.mark.rasa, pytest.mark.postgres]

CONVERSATIONS = 200
TURNS = ("hi", "do you ship to switzerland", "thanks, that's all")
RECOVERY_TIMEOUT = 240.0


class Production:
    def __init__(self, cluster: Cluster, database: TcpProxy, redis: PrivateRedis) -> None:
        self.cluster = cluster
        self.database = database
        self.redis = redis


def _through(proxy: TcpProxy, url: str) -> str:
    return make_url(url).set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)


@pytest.fixture(scope="module")
def production(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Production]:
    workdir = tmp_path_factory.mktemp("production")
    with (
        postgres_database("crm") as crm_url,
        postgres_database("tracker") as tracker_url,
        private_redis(workdir) as redis,
    ):
        target = make_url(crm_url)
        proxy = TcpProxy(target.host or "127.0.0.1", target.port or 5432)
        proxy.accept()
        settings = cluster_settings(
            workdir,
            replicas=2,
            database_url=_through(proxy, crm_url),
            tracker_store_url=_through(proxy, tracker_url),
            redis_url=redis.url,
            namespace=redis_namespace(),
        )
        # The scheduler (and so the retry of unanswered messages) runs every second here. Two cores
        # answer 200 customers who all write at once in turn, some after more than the default 10 s:
        # the gateway waits for Rasa up to a minute rather than give them the fallback.
        cluster = start_cluster(
            settings, workdir, {"SCHEDULER_INTERVAL_SECONDS": "1", "RASA_TIMEOUT_SECONDS": "60"}
        )
        try:
            cluster.wait_healthy()
            yield Production(cluster, proxy, redis)
        finally:
            cluster.stop_all()
            proxy.refuse()


def say(gateway: str, visitor: str, text: str, client_message_id: str | None = None) -> httpx.Response:
    body = {
        "session": named_visitor(visitor),
        "text": text,
        "client_message_id": client_message_id or uuid.uuid4().hex,
    }
    return httpx.post(f"{gateway}/api/web/messages", json=body, timeout=60)


def history(gateway: str, visitor: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{gateway}/api/web/history", params={"session": named_visitor(visitor)}, timeout=30)
    response.raise_for_status()
    return list(response.json()["messages"])


def wait_for(what: str, check: Callable[[], Any], timeout: float = RECOVERY_TIMEOUT) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(1)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def answered_late(gateway: str, visitor: str, text: str) -> bool:
    """The customer's message got a late answer: the notice quoting it, then the bot's reply."""
    messages = history(gateway, visitor)
    texts = [m["text"] for m in messages]
    notice = f"Sorry for the wait. About your message \u201c{text}\u201d:"
    return notice in texts and texts.index(notice) + 1 < len(texts)


def test_200_concurrent_conversations_over_two_of_everything(production: Production) -> None:
    gateways = production.cluster.gateway_urls

    async def conversation(client: httpx.AsyncClient, number: int) -> list[dict[str, Any]]:
        visitor = f"load-{number}-{uuid.uuid4().hex[:6]}"
        answers = []
        for turn, text in enumerate(TURNS):
            # A load balancer without stickiness: turns alternate between the gateways.
            gateway = gateways[(number + turn) % len(gateways)]
            response = await client.post(
                f"{gateway}/api/web/messages",
                json={
                    "session": named_visitor(visitor),
                    "text": text,
                    "client_message_id": f"{visitor}-{turn}",
                },
            )
            assert response.status_code == 200, response.text
            answers.append({"visitor": visitor, **response.json()})
        return answers

    async def everyone() -> list[list[dict[str, Any]]]:
        limits = httpx.Limits(max_connections=CONVERSATIONS + 10)
        async with httpx.AsyncClient(timeout=120, limits=limits) as client:
            return await asyncio.gather(*(conversation(client, n) for n in range(CONVERSATIONS)))

    results = asyncio.run(everyone())
    fallbacks = [
        answer["visitor"]
        for answers in results
        for answer in answers
        if any(m["metadata"].get("notice") == "bot_unavailable" for m in answer["messages"])
        or not answer["messages"]
    ]
    assert fallbacks == [], f"{len(fallbacks)} turns got no real answer, e.g. {fallbacks[:3]}"

    for answers in results:
        visitor = answers[0]["visitor"]
        stored = history(gateways[1], visitor)
        customer = [m["text"] for m in stored if m["author"] == "customer"]
        assert customer == list(TURNS), f"{visitor}: messages lost, doubled or out of order: {customer}"
        # Each customer message is followed by the bot's answer before the next one.
        authors = [m["author"] for m in stored]
        for index in (i for i, author in enumerate(authors) if author == "customer"):
            assert index + 1 < len(authors) and authors[index + 1] in ("bot", "system"), (visitor, authors)
        replies = [m["id"] for m in stored]
        assert len(replies) == len(set(replies))


def test_a_handoff_on_one_gateway_is_seen_live_and_claimed_on_the_other(production: Production) -> None:
    first, second = production.cluster.gateway_urls
    visitor = f"handoff-{uuid.uuid4().hex[:8]}"
    with httpx.Client(base_url=second, timeout=60) as agent:
        login = agent.post(
            "/api/auth/login", json={"email": "ada@kefu.example", "password": DEMO_PASSWORD_AGENT}
        )
        assert login.status_code == 200, login.text
        agent.headers["X-CSRF-Token"] = login.json()["csrf_token"]
        cookie = "; ".join(f"{name}={value}" for name, value in agent.cookies.items())
        live_url = second.replace("http://", "ws://") + "/api/console/live"
        with websocket_connect(live_url, additional_headers={"Cookie": cookie}, open_timeout=30) as socket:
            assert '"hello"' in str(socket.recv(timeout=30))
            assert say(first, visitor, "hi").status_code == 200
            asked = say(first, visitor, "I want to talk to a person")
            assert asked.status_code == 200 and asked.json()["mode"] == "pending_agent", asked.text
            conversation_id = asked.json()["conversation_id"]

            # The request was stored by the first gateway; the second one's console hears of it.
            deadline = time.monotonic() + 30
            heard = False
            while not heard and time.monotonic() < deadline:
                event = socket.recv(timeout=max(0.1, deadline - time.monotonic()))
                heard = f'"conversation_id": {conversation_id}' in str(event) or (
                    f'"conversation_id":{conversation_id}' in str(event)
                )
            assert heard, "the agent on the other gateway never heard of the waiting chat"

        queue = agent.get("/api/console/queue").json()["queue"]
        assert conversation_id in [item["conversation_id"] for item in queue]
        assert agent.post(f"/api/console/conversations/{conversation_id}/claim").status_code == 200
        sent = agent.post(
            f"/api/console/conversations/{conversation_id}/messages",
            json={"text": "Hello, this is Ada. How can I help?"},
        )
        assert sent.status_code == 200, sent.text
    wait_for(
        "the agent's reply on the customer's gateway",
        lambda: "Hello, this is Ada. How can I help?" in [m["text"] for m in history(first, visitor)],
        timeout=30,
    )


def _fallback_then_late_answer(production: Production, visitor: str, text: str) -> None:
    gateway = production.cluster.gateway_urls[0]
    reply = say(gateway, visitor, text)
    assert reply.status_code == 200, reply.text
    assert [m["text"] for m in reply.json()["messages"]] == [FALLBACK_TEXT]


def test_action_servers_killed_mid_conversation(production: Production) -> None:
    gateway = production.cluster.gateway_urls[0]
    visitor = f"actions-{uuid.uuid4().hex[:8]}"
    first = say(gateway, visitor, "where is my order 100001")
    assert first.status_code == 200
    assert "e-mail" in first.json()["messages"][-1]["text"]

    for process in production.cluster.group("actions"):
        process.kill()
    _fallback_then_late_answer(production, visitor, "ana.souza@example.com")
    assert history(gateway, visitor)[-2]["text"] == "ana.souza@example.com"  # stored, not lost

    for process in production.cluster.group("actions"):
        process.start()
    wait_for("the late answer", lambda: answered_late(gateway, visitor, "ana.souza@example.com"))
    texts = [m["text"] for m in history(gateway, visitor)]
    assert any("100001" in text for text in texts[texts.index(texts[-1]) :]), texts
    production.cluster.wait_healthy()


def test_rasa_stopped_and_restarted(production: Production) -> None:
    gateway = production.cluster.gateway_urls[0]
    rasas = production.cluster.group("rasa")

    # One Rasa down: every conversation is still answered by the other one.
    rasas[0].stop()
    for n in range(6):
        reply = say(gateway, f"one-down-{n}-{uuid.uuid4().hex[:6]}", "hi")
        assert reply.status_code == 200
        assert reply.json()["messages"][0]["text"] != FALLBACK_TEXT

    rasas[1].stop()
    visitor = f"rasa-{uuid.uuid4().hex[:8]}"
    _fallback_then_late_answer(production, visitor, "do you ship to switzerland")
    for process in rasas:
        process.start()
    wait_for("the late answer", lambda: answered_late(gateway, visitor, "do you ship to switzerland"))
    production.cluster.wait_healthy()


def test_database_refusing_connections_for_a_while(production: Production) -> None:
    gateway = production.cluster.gateway_urls[0]
    visitor = f"db-{uuid.uuid4().hex[:8]}"
    message_id = uuid.uuid4().hex
    production.database.refuse()
    try:
        refused = say(gateway, visitor, "do you ship to switzerland", message_id)
        assert refused.status_code == 503
        assert refused.json()["error"] == DATABASE_DOWN_TEXT
        assert refused.headers.get("Retry-After")
        health = httpx.get(f"{gateway}/healthz", timeout=30).json()
        assert health["database"]["ok"] is False
    finally:
        production.database.accept()

    wait_for("the database back in /healthz", lambda: production.cluster.health()["database"]["ok"], 60)
    # The chat widget sends the message again with the same id, as it does after a 503.
    again = say(gateway, visitor, "do you ship to switzerland", message_id)
    assert again.status_code == 200, again.text
    wait_for(
        "an answer to the message",
        lambda: any(m["author"] == "bot" for m in history(gateway, visitor)),
    )
    customer = [m["text"] for m in history(gateway, visitor) if m["author"] == "customer"]
    assert customer == ["do you ship to switzerland"]  # stored once
    production.cluster.wait_healthy()


def test_redis_stopped_and_started(production: Production) -> None:
    gateway = production.cluster.gateway_urls[0]
    visitor = f"redis-{uuid.uuid4().hex[:8]}"
    production.redis.stop()
    try:
        wait_for("/healthz to notice", lambda: production.cluster.health()["redis"]["ok"] is False, 30)
        _fallback_then_late_answer(production, visitor, "do you ship to switzerland")
    finally:
        production.redis.start()
    wait_for("the late answer", lambda: answered_late(gateway, visitor, "do you ship to switzerland"))
    wait_for("/healthz to recover", lambda: production.cluster.health()["redis"]["ok"], 60)
    production.cluster.wait_healthy()
