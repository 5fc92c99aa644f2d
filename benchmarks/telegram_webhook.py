"""Telegram webhook throughput: how fast the gateway takes updates, and how fast it answers them.

The real stack runs (Rasa, the action server, the gateway in webhook mode, as `make run` starts
them); Telegram's servers are the fake Bot API from tests/support/fakes on loopback, answering each call
after a delay like a real network's (--api-latency-ms). Many customers write at once, each a few
messages in a row, posted to the webhook as Telegram would (with the secret header).

Two figures:
- acknowledgement: from POST to the webhook's 200 (the update is stored, not yet answered);
- end to end: updates handled and replies delivered per second until every update is answered,
  with a check that no reply was lost or sent twice.

`.venv/bin/python -m benchmarks.telegram_webhook` (also part of `make bench` and
`make bench-channels`); results go to benchmarks/results/telegram_webhook.json.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

from benchmarks.latency import machine_info, percentile
from benchmarks.results_file import save_results
from bot.crm.db import make_engine, make_sessionmaker
from bot.crm.models import Conversation, Direction, Message, MessageStatus, TelegramUpdate
from bot.settings import PROJECT_ROOT, Settings
from tests.support.fakes.telegram_api import SECRET_HEADER, FakeTelegram, command_update, text_update
from tests.support.stack import running_stack, stack_settings

RESULTS_PATH = PROJECT_ROOT / "benchmarks" / "results" / "telegram_webhook.json"
CUSTOMERS = 50
TURNS = ("/start", "how long do I have to return something?", "can I pay with klarna?", "thanks, bye")
FIRST_CHAT = 990_000_001


def updates_for(chat: int) -> list[dict[str, Any]]:
    return [command_update(chat, "start") if t == "/start" else text_update(chat, t) for t in TURNS]


async def post_all(url: str, secret: str, customers: int) -> tuple[list[float], float]:
    """Every customer's messages, one after another per customer, all customers at once."""
    acks: list[float] = []

    async def customer(client: httpx.AsyncClient, chat: int) -> None:
        for update in updates_for(chat):
            started = time.perf_counter()
            response = await client.post(url, json=update, headers={SECRET_HEADER: secret})
            response.raise_for_status()
            acks.append((time.perf_counter() - started) * 1000)
            # A person takes a moment between messages; Telegram posts each as it comes.
            await asyncio.sleep(0.2)

    started = time.perf_counter()
    limits = httpx.Limits(max_connections=customers)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        await asyncio.gather(*(customer(client, FIRST_CHAT + n) for n in range(customers)))
    return acks, time.perf_counter() - started


def progress(settings: Settings) -> tuple[int, int]:
    """(updates handled, replies still waiting to be delivered; the demo history's are all sent)."""
    with make_sessionmaker(make_engine(settings))() as session:
        handled = session.scalar(
            select(func.count()).select_from(TelegramUpdate).where(TelegramUpdate.handled_at.is_not(None))
        )
        waiting = session.scalar(
            select(func.count())
            .select_from(Message)
            .where(
                Message.channel == "telegram",
                Message.status.in_([MessageStatus.QUEUED, MessageStatus.SENDING]),
            )
        )
        return int(handled or 0), int(waiting or 0)


def stored_replies(settings: Settings, customers: int) -> Counter[str]:
    """Replies stored per benchmark chat (the demo history has Telegram chats of its own)."""
    chats = [str(FIRST_CHAT + n) for n in range(customers)]
    with make_sessionmaker(make_engine(settings))() as session:
        rows = session.execute(
            select(Conversation.external_id, func.count(Message.id))
            .join(Message, Message.conversation_id == Conversation.id)
            .where(
                Conversation.channel == "telegram",
                Conversation.external_id.in_(chats),
                Message.direction == Direction.OUTBOUND,
            )
            .group_by(Conversation.external_id)
        ).all()
        return Counter({chat: n for chat, n in rows})


def run(customers: int, api_latency_ms: float) -> dict[str, Any]:
    secret = uuid.uuid4().hex
    with (
        tempfile.TemporaryDirectory(prefix="kefu-telegram-bench-") as workdir,
        FakeTelegram(latency=api_latency_ms / 1000) as fake,
    ):
        settings = stack_settings(Path(workdir))
        url = f"http://127.0.0.1:{settings.gateway_port}/telegram/webhook"
        settings = settings.model_copy(
            update={
                "telegram_bot_token": fake.token,
                "telegram_mode": "webhook",
                "telegram_webhook_url": url,
                "telegram_webhook_secret": secret,
                "telegram_api_url": fake.base_url,
            }
        )
        with running_stack(Path(workdir), settings=settings):
            started = time.perf_counter()
            acks, posting_seconds = asyncio.run(post_all(url, secret, customers))
            total = customers * len(TURNS)
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                handled, waiting = progress(settings)
                if handled >= total and waiting == 0:
                    break
                time.sleep(0.2)
            elapsed = time.perf_counter() - started
            handled, waiting = progress(settings)
            stored = stored_replies(settings, customers)
            delivered = Counter(str(m["chat"]["id"]) for m in fake.sent_messages())
            refused = len(fake.calls("sendMessage", ok=False))
    mismatched = {
        chat: {"stored": stored[chat], "delivered": delivered[chat]}
        for chat in set(stored) | set(delivered)
        if stored[chat] != delivered[chat]
    }
    exact = not mismatched
    return {
        "customers": customers,
        "messages_per_customer": len(TURNS),
        "updates": total,
        "api_latency_ms": api_latency_ms,
        "acknowledgement": {
            "p50_ms": round(percentile(acks, 0.50), 1),
            "p95_ms": round(percentile(acks, 0.95), 1),
            "p99_ms": round(percentile(acks, 0.99), 1),
            "max_ms": round(max(acks), 1),
            "posting_seconds": round(posting_seconds, 2),
        },
        "end_to_end": {
            "seconds": round(elapsed, 2),
            "updates_handled": handled,
            "updates_per_second": round(handled / elapsed, 1),
            "replies_delivered": sum(delivered.values()),
            "replies_per_second": round(sum(delivered.values()) / elapsed, 1),
            "replies_still_waiting": waiting,
            "refused_sends": refused,
            "each_reply_sent_exactly_once": exact,
            "mismatched_chats": mismatched,
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=CUSTOMERS)
    parser.add_argument(
        "--api-latency-ms", type=float, default=40.0, help="the fake Bot API's delay per call"
    )
    args = parser.parse_args(argv)
    result = run(args.customers, args.api_latency_ms)
    report = {
        "measured_at": datetime.now(UTC).isoformat(),
        "machine": machine_info(),
        "telegram_webhook": result,
    }
    save_results(RESULTS_PATH, report)
    ack, e2e = result["acknowledgement"], result["end_to_end"]
    print(
        f"Telegram webhook, {result['customers']} customers x {result['messages_per_customer']} messages "
        f"(fake Bot API answering in {result['api_latency_ms']:.0f} ms):\n"
        f"  acknowledged: p50 {ack['p50_ms']} ms, p95 {ack['p95_ms']} ms, p99 {ack['p99_ms']} ms\n"
        f"  answered: {e2e['updates_handled']}/{result['updates']} updates in {e2e['seconds']} s "
        f"({e2e['updates_per_second']} updates/s), {e2e['replies_delivered']} replies "
        f"({e2e['replies_per_second']} replies/s); each reply sent exactly once: "
        f"{'yes' if e2e['each_reply_sent_exactly_once'] else 'NO'}"
    )
    print(f"Saved {RESULTS_PATH.relative_to(PROJECT_ROOT)}")
    return 0 if e2e["each_reply_sent_exactly_once"] and e2e["updates_handled"] == result["updates"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
