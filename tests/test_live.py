"""Live events between gateways through Redis: an agent on one gateway sees chats on another."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bot.live import LiveHub
from tests.support.services import REDIS_URL, private_redis, redis_namespace, require_redis


async def _next(queue: asyncio.Queue, timeout: float = 5.0) -> dict:
    return await asyncio.wait_for(queue.get(), timeout)


async def _until(condition, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.05)


def test_an_event_published_on_one_gateway_reaches_the_others_once() -> None:
    require_redis(REDIS_URL)
    channel = f"{redis_namespace()}:live"

    async def run() -> None:
        first, second = LiveHub(REDIS_URL, channel), LiveHub(REDIS_URL, channel)
        loop = asyncio.get_running_loop()
        first.bind(loop)
        second.bind(loop)
        mine, theirs = first.subscribe(), second.subscribe()
        await _until(lambda: first.relay_ok and second.relay_ok)
        await asyncio.sleep(0.2)  # both subscribed
        first.publish({"type": "queue", "conversation_id": 7, "mode": "pending_agent"})
        assert (await _next(mine))["conversation_id"] == 7  # at once, locally
        assert (await _next(theirs))["conversation_id"] == 7  # through Redis
        await asyncio.sleep(0.5)
        assert mine.empty(), "the publishing gateway must not get its own event twice"
        assert theirs.empty()
        await first.aclose()
        await second.aclose()

    asyncio.run(run())


def test_events_from_a_redis_outage_arrive_when_it_returns(tmp_path: Path) -> None:
    with private_redis(tmp_path) as server:
        channel = f"{redis_namespace()}:live"

        async def run() -> None:
            first, second = LiveHub(server.url, channel), LiveHub(server.url, channel)
            loop = asyncio.get_running_loop()
            first.bind(loop)
            second.bind(loop)
            theirs = second.subscribe()
            await _until(lambda: first.relay_ok and second.relay_ok)
            await asyncio.sleep(0.2)

            await asyncio.to_thread(server.stop)
            await _until(lambda: not first.relay_ok or not second.relay_ok)
            # Published from a worker thread, as the routes do, while Redis is away.
            await asyncio.to_thread(first.publish, {"type": "message", "conversation_id": 42})
            await asyncio.sleep(0.5)
            assert theirs.empty()

            await asyncio.to_thread(server.start)
            await _until(lambda: first.relay_ok and second.relay_ok, timeout=20)
            got = [await _next(theirs, 10.0), await _next(theirs, 10.0)]
            kinds = {(event["type"], event.get("conversation_id"), event.get("mode")) for event in got}
            assert ("message", 42, None) in kinds  # the event from the outage, late but there
            assert ("queue", None, "resync") in kinds  # and consoles told to re-read their queue
            await first.aclose()
            await second.aclose()

        asyncio.run(run())
