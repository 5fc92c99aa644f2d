"""Send texts through the trained model on a running Rasa server (`/model/parse`), for the NLU
benchmarks: intents with their confidence, and entities.

`running_rasa()` starts Rasa (and the gateway, whose /healthz says when the model is loaded) from the
Procfile on free loopback ports with a fresh demo database, as `make run` would; `parse_all()` parses
many texts concurrently (a few at a time: one Rasa process on two cores gains little from more).
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.support.stack import running_stack, stack_settings

CONCURRENCY = 4


@dataclass(frozen=True)
class RasaServer:
    url: str
    token: str


@dataclass
class Parsed:
    """What the model made of one text."""

    text: str
    intent: str
    confidence: float
    entities: list[dict[str, Any]] = field(default_factory=list)


@contextmanager
def running_rasa() -> Iterator[RasaServer]:
    """Rasa with the trained model (models/kefu.tar.gz), for as long as the block runs."""
    with tempfile.TemporaryDirectory(prefix="kefu-nlu-bench-") as workdir:
        settings = stack_settings(Path(workdir))
        with running_stack(Path(workdir), "rasa", "gateway", settings=settings):
            yield RasaServer(settings.rasa_url, settings.rasa_token)


async def _parse_all(server: RasaServer, texts: list[str], concurrency: int) -> list[Parsed]:
    gate = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:

        async def parse(text: str) -> Parsed:
            async with gate:
                response = await client.post(
                    "/model/parse", params={"token": server.token}, json={"text": text}
                )
            response.raise_for_status()
            body = response.json()
            intent = body.get("intent") or {}
            return Parsed(
                text=text,
                intent=str(intent.get("name") or "nlu_fallback"),
                confidence=float(intent.get("confidence") or 0.0),
                entities=list(body.get("entities") or []),
            )

        return list(await asyncio.gather(*(parse(text) for text in texts)))


def parse_all(server: RasaServer, texts: list[str], concurrency: int = CONCURRENCY) -> list[Parsed]:
    """Every text through `/model/parse`, in the order given."""
    return asyncio.run(_parse_all(server, texts, concurrency))
