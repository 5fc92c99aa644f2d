"""Rate limits for the web widget's API: messages and live sockets per visitor id and per client address.

Each limit is a sliding window of WINDOW_SECONDS: a request is allowed when fewer than `limit`
requests with the same key were allowed in the window before it, and only allowed requests are
counted, so a client that keeps retrying is let in again as soon as its oldest request leaves the
window (the Retry-After it is told). Both limits of a request are checked and counted together.

With REDIS_URL the windows are sorted sets in Redis, checked and updated by one Lua script on
Redis's clock, so every gateway shares them. When Redis cannot be reached the limiter fails open:
requests are allowed (and not counted), a warning is logged once per outage, and Redis is tried
again after REDIS_RETRY_SECONDS. Without Redis the windows live in this process's memory.
"""

from __future__ import annotations

import hashlib
import logging
import math
import secrets
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from bot.settings import Settings

logger = logging.getLogger(__name__)

WINDOW_SECONDS = 60.0
# After Redis failed, requests are let through this long before it is tried again, so a dead Redis
# costs customers nothing, not even a connection attempt per message.
REDIS_RETRY_SECONDS = 5.0
REDIS_TIMEOUT_SECONDS = 0.5
# The memory limiter forgets visitors who went quiet once it holds this many keys.
MEMORY_SWEEP_KEYS = 10_000


@dataclass(frozen=True)
class Limit:
    """At most `limit` requests per window for `key`; `subject` names it for the refusal message."""

    key: str
    limit: int
    subject: str


@dataclass(frozen=True)
class Refusal:
    """A request over a limit: which one, and how long until it would be allowed."""

    limit: Limit
    retry_after: float

    @property
    def retry_after_seconds(self) -> int:
        return max(1, math.ceil(self.retry_after))


class Backend(Protocol):
    async def acquire(self, limits: Sequence[Limit]) -> Refusal | None:
        """Count one request against every limit and return None, or count nothing and say why not."""
        ...

    async def aclose(self) -> None: ...


class MemoryBackend:
    """Sliding windows in this process's memory (one gateway, or each gateway on its own)."""

    def __init__(self, window: float = WINDOW_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self.window = window
        self._clock = clock
        self._hits: dict[str, deque[float]] = {}

    def _recent(self, key: str, now: float) -> deque[float]:
        hits = self._hits.setdefault(key, deque())
        while hits and hits[0] <= now - self.window:
            hits.popleft()
        return hits

    async def acquire(self, limits: Sequence[Limit]) -> Refusal | None:
        # No await in here: on the event loop, checking and counting cannot interleave.
        now = self._clock()
        worst: Refusal | None = None
        for limit in limits:
            hits = self._recent(limit.key, now)
            if len(hits) >= limit.limit:
                # Allowed again once the request that made the window full leaves it.
                wait = hits[len(hits) - limit.limit] + self.window - now
                if worst is None or wait > worst.retry_after:
                    worst = Refusal(limit, wait)
        if worst is not None:
            return worst
        for limit in limits:
            self._hits[limit.key].append(now)
        if len(self._hits) > MEMORY_SWEEP_KEYS:
            self._sweep(now)
        return None

    def _sweep(self, now: float) -> None:
        for key in [k for k, hits in self._hits.items() if not hits or hits[-1] <= now - self.window]:
            del self._hits[key]

    async def aclose(self) -> None:
        self._hits.clear()


# KEYS: one sorted set per limit. ARGV: window (ms), a unique id for this request, then each limit.
# Members are "<request id>" scored with Redis's own clock in ms; the TIME call makes every gateway
# agree on "now" whatever their clocks say.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
local worst, wait = 0, 0
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  local limit = tonumber(ARGV[i + 2])
  local count = redis.call('ZCARD', key)
  if count >= limit then
    local full = redis.call('ZRANGE', key, count - limit, count - limit, 'WITHSCORES')
    local left = tonumber(full[2]) + window - now
    if left > wait then worst, wait = i, left end
  end
end
if worst > 0 then return {worst, wait} end
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, now, ARGV[2])
  redis.call('PEXPIRE', key, window)
end
return {0, 0}
"""


class RedisBackend:
    """Sliding windows in Redis, shared by every gateway; allows everything while Redis is away."""

    def __init__(
        self,
        url: str,
        prefix: str,
        window: float = WINDOW_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.window = window
        self.prefix = prefix
        self._clock = clock
        parts = urlsplit(url)
        # For log lines: never the password.
        self.where = f"{parts.hostname or '127.0.0.1'}:{parts.port or 6379}"
        self._redis = aioredis.Redis.from_url(
            url,
            socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
            socket_timeout=REDIS_TIMEOUT_SECONDS,
            retry_on_timeout=False,
        )
        self._script = self._redis.register_script(_ACQUIRE)
        self._down_until = 0.0
        self._down = False

    async def acquire(self, limits: Sequence[Limit]) -> Refusal | None:
        if self._clock() < self._down_until:
            return None
        try:
            worst, wait = await self._script(
                keys=[f"{self.prefix}:{limit.key}" for limit in limits],
                args=[int(self.window * 1000), secrets.token_hex(8), *(limit.limit for limit in limits)],
            )
        except (RedisError, OSError, TimeoutError) as error:
            self._down_until = self._clock() + REDIS_RETRY_SECONDS
            if not self._down:
                self._down = True
                logger.warning(
                    "rate limits are not enforced: Redis at %s cannot be reached (%s); "
                    "allowing every web request until it is back",
                    self.where,
                    type(error).__name__,
                )
            return None
        if self._down:
            self._down = False
            logger.warning("rate limits are enforced again: Redis at %s is back", self.where)
        if int(worst) == 0:
            return None
        return Refusal(limits[int(worst) - 1], int(wait) / 1000)

    async def aclose(self) -> None:
        await self._redis.aclose()


def _visitor_key(visitor: str) -> str:
    # The visitor id is the only key to a chat: keep it out of Redis's key space (and its SCAN).
    return hashlib.sha256(visitor.encode()).hexdigest()[:32]


class WebRateLimits:
    """The widget API's limits: `per_visitor` and `per_address` requests a minute (0: no limit)."""

    def __init__(self, backend: Backend, per_visitor: int, per_address: int) -> None:
        self.backend = backend
        self.per_visitor = per_visitor
        self.per_address = per_address

    async def check(self, kind: str, visitor: str, address: str | None) -> Refusal | None:
        """Count one `kind` request ("messages", "live") of this visitor from this address, or refuse it."""
        limits = []
        if self.per_visitor > 0:
            limits.append(Limit(f"{kind}:visitor:{_visitor_key(visitor)}", self.per_visitor, "this chat"))
        if self.per_address > 0 and address:
            limits.append(Limit(f"{kind}:address:{address}", self.per_address, "your network address"))
        if not limits:
            return None
        return await self.backend.acquire(limits)

    async def aclose(self) -> None:
        await self.backend.aclose()


def web_rate_limits(settings: Settings, prefix: str | None = None) -> WebRateLimits:
    """The limits the settings ask for, counted in Redis when REDIS_URL is set, else in memory."""
    return WebRateLimits(
        _backend(settings, prefix), settings.web_rate_per_minute, settings.web_rate_per_address_per_minute
    )


def history_rate_limits(settings: Settings, prefix: str | None = None) -> WebRateLimits:
    """The limits on reading a chat's history (GET /api/web/history), counted like the others."""
    return WebRateLimits(
        _backend(settings, prefix),
        settings.web_history_per_minute,
        settings.web_history_per_address_per_minute,
    )


def _backend(settings: Settings, prefix: str | None) -> Backend:
    backend: Backend
    if settings.redis_url:
        backend = RedisBackend(
            settings.redis_url, prefix or f"{settings.redis_namespace}:ratelimit", window=WINDOW_SECONDS
        )
    else:
        backend = MemoryBackend(window=WINDOW_SECONDS)
    return backend
