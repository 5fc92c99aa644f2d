"""Live events for the agents' consoles: a new customer message, the queue changed.

Each gateway keeps the consoles connected to it (WebSockets) and pushes to them whatever happens in
this process. Publishing is safe from worker threads (the routes store messages in a thread pool).

With several gateways (REDIS_URL set), every event is also published on a Redis channel, and each
gateway hands what the others published to its own consoles and widgets: an agent connected to one
gateway sees chats arriving on another. While Redis is away, events wait in a bounded buffer and are
sent when it returns; the consoles are then told to re-read their queue.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import uuid
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

# A console that stops reading gets dropped events rather than holding the gateway's memory; it
# re-reads the queue and the open chat on reconnect.
QUEUE_LIMIT = 1000
# Events kept for the other gateways while Redis is unreachable; the oldest go first beyond it.
RELAY_BUFFER = 1000
RELAY_CHANNEL = "kefu:live"
RELAY_RETRY_SECONDS = (0.5, 1.0, 2.0, 5.0)


class LiveHub:
    def __init__(self, redis_url: str = "", channel: str = RELAY_CHANNEL) -> None:
        self._subscribers: set[asyncio.Queue[dict[str, Any]]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._redis_url = redis_url
        self._channel = channel
        self._origin = uuid.uuid4().hex
        self._outgoing: collections.deque[str] = collections.deque(maxlen=RELAY_BUFFER)
        self._wake_sender = asyncio.Event()
        self._relay_task: asyncio.Task[None] | None = None
        # Whether events reach the other gateways now (always true with no Redis configured).
        self.relay_ok = not redis_url

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Called at start-up on the gateway's event loop; starts the Redis relay if configured."""
        self._loop = loop
        if self._redis_url and self._relay_task is None:
            self._relay_task = loop.create_task(self._relay(), name="live-relay")

    async def aclose(self) -> None:
        if self._relay_task is not None:
            self._relay_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._relay_task
            self._relay_task = None

    def subscribe(self) -> asyncio.Queue[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_LIMIT)
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        self._subscribers.discard(queue)

    @property
    def listeners(self) -> int:
        return len(self._subscribers)

    def publish(self, event: dict[str, Any]) -> None:
        """Send an event to every connected console; callable from any thread."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._publish_here(event)
        else:
            with contextlib.suppress(RuntimeError):  # the loop is shutting down
                loop.call_soon_threadsafe(self._publish_here, event)

    def _publish_here(self, event: dict[str, Any]) -> None:
        self._deliver(event)
        if self._redis_url:
            self._outgoing.append(json.dumps({"origin": self._origin, "event": event}))
            self._wake_sender.set()

    async def _relay(self) -> None:
        """Keep a Redis connection: send our events, deliver the other gateways' ones; reconnect."""
        failures = 0
        while True:
            client = aioredis.from_url(self._redis_url, socket_connect_timeout=2, health_check_interval=10)
            try:
                async with client.pubsub() as pubsub:
                    await pubsub.subscribe(self._channel)
                    if failures:
                        logger.info("live events: Redis is back; relaying again")
                        # Events from the other gateways were missed: consoles re-read their queue.
                        self._deliver({"type": "queue", "conversation_id": None, "mode": "resync"})
                    failures = 0
                    self.relay_ok = True
                    sender = asyncio.create_task(self._send(client))
                    try:
                        await self._receive(pubsub, sender)
                    finally:
                        sender.cancel()
                        with contextlib.suppress(asyncio.CancelledError, RedisError, OSError):
                            await sender
            except (RedisError, OSError) as exc:
                self.relay_ok = False
                if failures == 0:
                    logger.warning(
                        "live events: Redis at %s is unreachable (%s); other gateways will see this "
                        "gateway's events when it returns",
                        _without_password(self._redis_url),
                        type(exc).__name__,
                    )
                await asyncio.sleep(RELAY_RETRY_SECONDS[min(failures, len(RELAY_RETRY_SECONDS) - 1)])
                failures += 1
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await client.aclose()

    async def _send(self, client: aioredis.Redis) -> None:
        while True:
            while self._outgoing:
                # Sent first, removed after: an event is lost only if Redis takes it and then fails.
                await client.publish(self._channel, self._outgoing[0])
                self._outgoing.popleft()
            self._wake_sender.clear()
            await self._wake_sender.wait()

    async def _receive(self, pubsub: Any, sender: asyncio.Task[None]) -> None:
        while not sender.done():
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if message is None:
                continue
            try:
                envelope = json.loads(message["data"])
            except (TypeError, ValueError):
                continue
            if envelope.get("origin") != self._origin and isinstance(envelope.get("event"), dict):
                self._deliver(envelope["event"])
        sender.result()  # the sender failed: raise its error so the relay reconnects

    def _deliver(self, event: dict[str, Any]) -> None:
        for queue in list(self._subscribers):
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:
                logger.warning("a console is not reading its live events; dropping one")


def _without_password(url: str) -> str:
    if "@" not in url:
        return url
    scheme, _, rest = url.partition("://")
    return f"{scheme}://***@{rest.rpartition('@')[2]}"
