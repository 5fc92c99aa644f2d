"""Rate limits on the widget's API (bot/channels/widget_ratelimit.py): per visitor and per client address, in
memory and in Redis, shared by two gateways, and open (never locking customers out) while Redis is down.

Redis is the one on this machine (KEFU_TEST_REDIS_URL, default redis://127.0.0.1:6379/0; the tests
fail, saying so, when it does not answer) with a key prefix of each test's own, or a redis-server
of the test's own that it stops and starts (tests/support/services.py).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from bot.channels import widget_ratelimit
from bot.channels.widget_ratelimit import Limit, MemoryBackend, RedisBackend
from bot.crm.models import Direction, Message
from bot.settings import Settings
from bot.web.app import create_app
from tests.support.services import REDIS_URL, private_redis, redis_namespace, require_redis
from tests.support.visitors import named_visitor


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def customer_messages(db: sessionmaker[Session]) -> int:
    with db() as session:
        return (
            session.scalar(
                select(func.count()).select_from(Message).where(Message.direction == Direction.INBOUND)
            )
            or 0
        )


@asynccontextmanager
async def gateway(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The real app (Rasa on a dead port: every message gets the polite fallback) and a client."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http


async def say(http: httpx.AsyncClient, visitor: str, text: str = "where is my order?") -> httpx.Response:
    return await http.post("/api/web/messages", json={"session": named_visitor(visitor), "text": text})


# --- the sliding window -------------------------------------------------------------------------------


async def test_the_window_slides_and_refusals_are_not_counted() -> None:
    clock = Clock()
    backend = MemoryBackend(window=60, clock=clock)
    limit = [Limit("v", 3, "this chat")]
    for second in (0, 10, 20):
        clock.now = 1000 + second
        assert await backend.acquire(limit) is None
    clock.now = 1030
    refused = await backend.acquire(limit)
    assert refused is not None and refused.retry_after == pytest.approx(30)  # the first leaves at 1060
    clock.now = 1059
    assert await backend.acquire(limit) is not None  # still refused, and that try counted nothing
    clock.now = 1060
    assert await backend.acquire(limit) is None  # the oldest left: one more fits
    refused = await backend.acquire(limit)
    assert refused is not None and refused.retry_after == pytest.approx(10)  # the one of 1010 leaves at 1070


async def test_a_request_refused_by_one_limit_counts_against_neither() -> None:
    backend = MemoryBackend(window=60, clock=Clock())
    visitor, address = Limit("visitor", 5, "this chat"), Limit("address", 2, "your network address")
    assert await backend.acquire([visitor, address]) is None
    assert await backend.acquire([visitor, address]) is None
    refused = await backend.acquire([visitor, address])
    assert refused is not None and refused.limit == address
    # The visitor used 2 of 5: three more from another address still fit.
    other = Limit("address-2", 2, "your network address")
    assert await backend.acquire([visitor, other]) is None
    assert await backend.acquire([visitor, other]) is None
    assert await backend.acquire([visitor, Limit("address-3", 2, "x")]) is None
    assert (await backend.acquire([visitor, Limit("address-4", 2, "x")])).limit == visitor  # type: ignore[union-attr]


# --- through the gateway, in memory -------------------------------------------------------------------


async def test_a_visitor_over_the_limit_gets_429_and_the_message_is_not_stored(
    web_settings: Settings, db: sessionmaker[Session]
) -> None:
    settings = web_settings.model_copy(
        update={"web_rate_per_minute": 3, "web_rate_per_address_per_minute": 50}
    )
    async with gateway(settings) as http:
        for n in range(3):
            assert (await say(http, "eager-visitor", f"message {n}")).status_code == 200
        refused = await say(http, "eager-visitor", "one too many")
        assert refused.status_code == 429
        seconds = int(refused.headers["Retry-After"])
        assert 55 <= seconds <= 60
        body = refused.json()
        assert body["retry_after"] == seconds
        assert body["error"] == (
            "too many messages from this chat in a minute (the limit is 3); this one was not saved: "
            f"send it again in {seconds} seconds"
        )
        assert customer_messages(db) == 3
        history = (
            await http.get("/api/web/history", params={"session": named_visitor("eager-visitor")})
        ).json()
        assert "one too many" not in [m["text"] for m in history["messages"]]
        # Somebody else is not held up by it.
        assert (await say(http, "patient-visitor")).status_code == 200


async def test_one_address_over_its_limit_gets_429_whatever_visitor_id_it_sends(
    web_settings: Settings, db: sessionmaker[Session]
) -> None:
    settings = web_settings.model_copy(
        update={"web_rate_per_minute": 30, "web_rate_per_address_per_minute": 4}
    )
    async with gateway(settings) as http:
        for n in range(4):
            assert (await say(http, f"visitor-{n}")).status_code == 200
        refused = await say(http, "visitor-new")
        assert refused.status_code == 429 and "your network address" in refused.json()["error"]
        assert customer_messages(db) == 4


async def test_a_limit_of_zero_is_no_limit(web_settings: Settings) -> None:
    settings = web_settings.model_copy(
        update={"web_rate_per_minute": 0, "web_rate_per_address_per_minute": 0}
    )
    async with gateway(settings) as http:
        for n in range(40):
            assert (await say(http, "no-limits", f"message {n}")).status_code == 200


def test_too_many_new_live_sockets_are_closed_with_4429(web_settings: Settings) -> None:
    settings = web_settings.model_copy(
        update={"web_rate_per_minute": 2, "web_rate_per_address_per_minute": 50}
    )
    app = create_app(settings)
    offer = ["kefu.live", f"kefu.visitor.{named_visitor('socket-visitor')}"]
    with TestClient(app) as client:
        for _ in range(2):
            with client.websocket_connect("/api/web/live", subprotocols=offer) as socket:
                socket.send_json({"type": "ping"})
                assert socket.receive_json() == {"type": "pong"}
        with (
            pytest.raises(WebSocketDisconnect) as refused,
            client.websocket_connect("/api/web/live", subprotocols=offer) as socket,
        ):
            socket.receive_json()
        assert refused.value.code == 4429 and "try again in" in refused.value.reason
        # Messages are counted apart from sockets.
        assert (
            client.post(
                "/api/web/messages", json={"session": named_visitor("socket-visitor"), "text": "hi"}
            ).status_code
            == 200
        )


# --- in Redis -----------------------------------------------------------------------------------------


@pytest.fixture
def redis_settings(web_settings: Settings) -> Iterator[Settings]:
    """Settings with Redis and a key prefix of this test's own; its keys are deleted afterwards."""
    require_redis(REDIS_URL)
    namespace = redis_namespace()
    yield web_settings.model_copy(
        update={
            "redis_url": REDIS_URL,
            "redis_namespace": namespace,
            "web_rate_per_minute": 3,
            "web_rate_per_address_per_minute": 50,
        }
    )
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(f"{namespace}:*"):
        client.delete(key)
    client.close()


async def test_two_gateways_share_the_counts_in_redis(
    redis_settings: Settings, db: sessionmaker[Session]
) -> None:
    async with gateway(redis_settings) as first, gateway(redis_settings) as second:
        assert (await say(first, "shared-visitor", "one")).status_code == 200
        assert (await say(second, "shared-visitor", "two")).status_code == 200
        assert (await say(first, "shared-visitor", "three")).status_code == 200
        refused = await say(second, "shared-visitor", "four")
        assert refused.status_code == 429 and 55 <= int(refused.headers["Retry-After"]) <= 60
        assert (await say(first, "another-visitor")).status_code == 200
    assert customer_messages(db) == 4

    keys = list(redis.Redis.from_url(REDIS_URL).scan_iter(f"{redis_settings.redis_namespace}:ratelimit:*"))
    assert len(keys) == 3  # two visitors and the one address
    # The visitor id is the key to a chat: it is not written into Redis's key space.
    assert not any(b"shared-visitor" in key for key in keys)
    assert all(0 < redis.Redis.from_url(REDIS_URL).pttl(key) <= 60_000 for key in keys)


async def test_while_redis_is_down_customers_get_through_and_one_warning_says_so(
    redis_settings: Settings,
    db: sessionmaker[Session],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(widget_ratelimit, "REDIS_RETRY_SECONDS", 0.0)  # try Redis again on every request
    caplog.set_level(logging.WARNING, logger=widget_ratelimit.__name__)
    with private_redis(tmp_path) as server:
        settings = redis_settings.model_copy(update={"redis_url": server.url})
        async with gateway(settings) as http:
            for n in range(3):
                assert (await say(http, "during-outage", f"before {n}")).status_code == 200
            assert (await say(http, "during-outage", "refused")).status_code == 429

            server.stop()
            for n in range(6):
                assert (await say(http, "during-outage", f"while down {n}")).status_code == 200
            warnings = [r.getMessage() for r in caplog.records if "not enforced" in r.getMessage()]
            assert len(warnings) == 1, warnings
            assert server.url.split("//")[1].split("/")[0] in warnings[0]

            server.start()  # an empty Redis: counting starts again from nothing
            for n in range(3):
                assert (await say(http, "during-outage", f"after {n}")).status_code == 200
            assert (await say(http, "during-outage", "refused again")).status_code == 429
            assert any("enforced again" in r.getMessage() for r in caplog.records)
    assert customer_messages(db) == 12


async def test_an_unreachable_redis_is_not_asked_again_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    backend = RedisBackend("redis://127.0.0.1:1/0", prefix="kefutest:unreachable", clock=clock)
    calls: list[Any] = []
    original = backend._script

    async def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return await original(*args, **kwargs)

    monkeypatch.setattr(backend, "_script", counting)
    limit = [Limit("k", 1, "this chat")]
    for _ in range(5):
        assert await backend.acquire(limit) is None
    assert len(calls) == 1  # then Redis is left alone for REDIS_RETRY_SECONDS
    clock.now += widget_ratelimit.REDIS_RETRY_SECONDS
    assert await backend.acquire(limit) is None
    assert len(calls) == 2
    await backend.aclose()
