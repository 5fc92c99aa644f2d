"""How fast a customer's message reaches the agent console: from the customer's POST to the live event
on the console's WebSocket (what the console renders), p50/p95 over 200 messages.

The gateway runs as `make run` starts it (uvicorn from the Procfile, on a fresh demo database). The
chats are already waiting for a person, so messages go to the agents, not the bot.
The console is a real WebSocket client logged in with a real session cookie.

`.venv/bin/python -m benchmarks.console_latency` (also part of `make bench`); results go to
benchmarks/results/console_latency.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import websockets

from benchmarks.latency import machine_info, percentile
from benchmarks.results_file import save_results
from bot.demo.seed import DEMO_PASSWORD_AGENT
from bot.settings import PROJECT_ROOT
from tests.support.stack import running_stack, stack_settings
from tests.support.visitors import named_visitor

RESULTS_PATH = PROJECT_ROOT / "benchmarks" / "results" / "console_latency.json"
MESSAGES = 200
CHATS = 10
TARGET_P95_MS = 1000.0
# Strong language puts a chat in the queue without Rasa (bot/crm/sentiment.py).
OPENING = "This is absolutely ridiculous, you useless thieves, I am furious!!"


async def measure(gateway: str, messages: int, chats: int) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=gateway, timeout=30) as http:
        login = await http.post(
            "/api/auth/login", json={"email": "ada@kefu.example", "password": DEMO_PASSWORD_AGENT}
        )
        login.raise_for_status()
        cookie = "; ".join(f"{name}={value}" for name, value in http.cookies.items())
        visitors = [f"bench-{n}" for n in range(chats)]
        for visitor in visitors:
            opened = await http.post(
                "/api/web/messages", json={"session": named_visitor(visitor), "text": OPENING}
            )
            assert opened.json()["mode"] == "pending_agent", opened.text

        url = gateway.replace("http://", "ws://") + "/api/console/live"
        latencies: list[float] = []
        async with websockets.connect(url, additional_headers={"Cookie": cookie}) as socket:
            hello = json.loads(await socket.recv())
            assert hello["type"] == "hello", hello
            for n in range(messages):
                text = f"message {n} from a waiting customer"
                started = time.perf_counter()
                sent = asyncio.create_task(
                    http.post(
                        "/api/web/messages",
                        json={"session": named_visitor(visitors[n % chats]), "text": text},
                    )
                )
                while True:
                    event = json.loads(await asyncio.wait_for(socket.recv(), 10))
                    if event.get("type") == "message" and event["message"]["text"] == text:
                        break
                latencies.append((time.perf_counter() - started) * 1000)
                (await sent).raise_for_status()
    return {
        "messages": len(latencies),
        "chats": chats,
        "p50_ms": round(percentile(latencies, 0.50), 1),
        "p95_ms": round(percentile(latencies, 0.95), 1),
        "max_ms": round(max(latencies), 1),
        "mean_ms": round(statistics.fmean(latencies), 1),
        "target_p95_ms": TARGET_P95_MS,
        "met": percentile(latencies, 0.95) <= TARGET_P95_MS,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=MESSAGES)
    parser.add_argument("--chats", type=int, default=CHATS)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="kefu-console-bench-") as workdir:
        settings = stack_settings(Path(workdir))
        # Rasa runs too (the gateway reports healthy once a model is loaded), but is never asked.
        with running_stack(Path(workdir), "rasa", "gateway", settings=settings) as stack:
            result = asyncio.run(measure(stack.gateway_url, args.messages, args.chats))
    report = {
        "measured_at": datetime.now(UTC).isoformat(),
        "machine": machine_info(),
        "console_latency": result,
    }
    save_results(RESULTS_PATH, report)
    print(
        f"Customer message -> agent console (WebSocket), {result['messages']} messages "
        f"over {result['chats']} chats: "
        f"p50 {result['p50_ms']} ms, p95 {result['p95_ms']} ms, max {result['max_ms']} ms "
        f"(target p95 <= {TARGET_P95_MS:.0f} ms: {'met' if result['met'] else 'NOT met'})"
    )
    print(f"Saved {RESULTS_PATH.relative_to(PROJECT_ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
