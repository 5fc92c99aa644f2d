"""Faults: customers keep chatting while each process is killed in turn; does everything come back?

`make bench-faults` starts the stack as `make run` does (supervisord and the watchdog, demo data),
once with one process of each kind on SQLite and once with two of each on PostgreSQL and Redis.
`--customers` customers chat through the widget's API, each sending a message again when its
request failed, as the widget does (same client_message_id; with replicas, to the other gateway,
as a proxy would). Then, one after the other, it kills with SIGKILL: the gateway, the action
server's worker process (its manager lives on), the action server, and Rasa (with replicas, the
first of each). For each kill: the seconds until every gateway's `/healthz` is 200 again and until
a customer next gets a real answer (live, or a late answer to a saved message). At the end: the
customer messages lost (never stored, or never answered nor handed to a person) and those answered
twice. Printed, and saved to benchmarks/results/faults.json.
"""

from __future__ import annotations

import argparse
import os
import signal
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from benchmarks.latency import descendants, machine_info, parent_pids
from benchmarks.results_file import save_results
from bot.channels.pipeline import FALLBACK_TEXT
from bot.crm.db import make_engine, make_sessionmaker
from bot.crm.models import Direction, Message, MessageStatus
from bot.processes import replicas_procfile
from bot.settings import PROJECT_ROOT
from tests.support.cluster import cluster_settings
from tests.support.services import REDIS_URL, postgres_database, redis_namespace
from tests.support.stack import Stack, running_stack, stack_settings
from tests.support.visitors import named_visitor

RESULTS = PROJECT_ROOT / "benchmarks" / "results" / "faults.json"
KILLS = ("gateway", "actions worker", "actions", "rasa")
# On the replica layout, one replica of each kind: the first.
REPLICA_KILLS = ("gateway1", "actions1 worker", "actions1", "rasa1")
TARGETS = {"gateway": 10.0, "actions worker": 10.0, "actions": 10.0, "rasa": 60.0}


def target_of(kill: str) -> float:
    return TARGETS[kill.replace("1", "")]


# Questions the knowledge-base action answers, and small talk: every turn needs Rasa, most the actions.
QUESTIONS = (
    "how do I return something?",
    "hello",
    "what payment methods can I use",
    "how long does delivery take to Germany",
    "can I change the delivery address of my order",
    "do you ship to Austria?",
    "thanks!",
)
THINK_SECONDS = 3.0  # a fast typist; the widget's own limit is 20 messages a minute per visitor
HEALTHY_TIMEOUT = 240.0


@dataclass
class Sent:
    visitor: str
    client_id: str
    text: str
    sent_at: float
    answered_at: float | None = None  # a real answer came back with the request
    fallback: bool = False  # "saved, I'll answer as soon as I can"
    gave_up: bool = False  # no 2xx after retrying for a minute


@dataclass
class Customers:
    gateway_urls: list[str]
    count: int
    stop: threading.Event = field(default_factory=threading.Event)
    sent: list[Sent] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self) -> list[threading.Thread]:
        threads = [threading.Thread(target=self._chat, args=(n,), daemon=True) for n in range(self.count)]
        for thread in threads:
            thread.start()
        return threads

    def _chat(self, number: int) -> None:
        visitor = f"faults-{number}-{uuid.uuid4().hex[:12]}"
        with httpx.Client(timeout=60) as client:
            turn = 0
            while not self.stop.is_set():
                text = QUESTIONS[(number + turn) % len(QUESTIONS)]
                turn += 1
                sent = Sent(visitor, uuid.uuid4().hex, text, time.time())
                with self.lock:
                    self.sent.append(sent)
                self._send(client, sent, number)
                self.stop.wait(THINK_SECONDS)

    def _send(self, client: httpx.Client, sent: Sent, number: int) -> None:
        """POST until a gateway takes it, as the widget does: the same client_message_id each time.

        With several gateways, a refused connection moves on to the next one, as a proxy would."""
        body = {
            "session": named_visitor(sent.visitor),
            "text": sent.text,
            "client_message_id": sent.client_id,
        }
        deadline = time.monotonic() + 60
        attempt = 0
        while time.monotonic() < deadline:
            url = self.gateway_urls[(number + attempt) % len(self.gateway_urls)]
            try:
                response = client.post(f"{url}/api/web/messages", json=body)
            except httpx.HTTPError:
                attempt += 1
                time.sleep(0.5)
                continue
            if response.status_code >= 500:
                time.sleep(0.5)
                continue
            if response.status_code == 429:  # nothing stored; the widget sends it again when told
                time.sleep(float(response.json().get("retry_after", 1)))
                continue
            texts = [m["text"] for m in response.json().get("messages", [])]
            if any(FALLBACK_TEXT in t for t in texts):
                sent.fallback = True
            elif texts:
                sent.answered_at = time.time()
            return
        sent.gave_up = True


def program_pid(stack: Stack, name: str) -> int:
    return int(stack.control("pid", name).strip())


def listening_sockets(port: int) -> set[str]:
    """The socket inodes listening on `port` (IPv4 and IPv6)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":
                found.add(fields[9])
    return found


def holds_socket(pid: int, inodes: set[str]) -> bool:
    try:
        links = [os.readlink(entry) for entry in Path(f"/proc/{pid}/fd").iterdir()]
    except OSError:
        return False
    return any(link.startswith("socket:[") and link[8:-1] in inodes for link in links)


def target_pid(stack: Stack, kill: str) -> int:
    """The process to kill: a supervised program, or the action server's worker (the child of its
    manager that holds the listening socket)."""
    if not kill.endswith(" worker"):
        return program_pid(stack, kill)
    program = kill.removesuffix(" worker")
    manager = program_pid(stack, program)
    url = stack.settings.action_server_urls[int(program.removeprefix("actions") or 1) - 1]
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    inodes = listening_sockets(port)
    workers = [pid for pid in descendants(manager, parent_pids()) if holds_socket(pid, inodes)]
    if not workers:
        raise RuntimeError("the action server runs no separate worker process")
    return workers[0]


def wait_healthy(urls: Sequence[str], timeout: float = HEALTHY_TIMEOUT) -> float | None:
    """Seconds until every gateway's /healthz says 200 (every part of every replica is up), or None."""
    start = time.time()
    with httpx.Client(timeout=5) as client:
        while time.time() - start < timeout:
            try:
                if all(client.get(f"{url}/healthz").status_code == 200 for url in urls):
                    return time.time() - start
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
    return None


@contextmanager
def crm(stack: Stack) -> Iterator[Session]:
    """A session on the stack's CRM database, for reading what the customers' chats left."""
    engine = make_engine(stack.settings)
    try:
        with make_sessionmaker(engine)() as session:
            yield session
    finally:
        engine.dispose()


def late_answers(stack: Stack) -> list[tuple[int, float]]:
    """(message id, when) of every late answer: a saved message answered after a part came back."""
    with crm(stack) as session:
        notices = session.scalars(select(Message).where(Message.direction == Direction.OUTBOUND)).all()
        return [
            (int(m.payload["metadata"]["message_id"]), m.created_at.replace(tzinfo=UTC).timestamp())
            for m in notices
            if (m.payload or {}).get("metadata", {}).get("notice") == "late_answer"
        ]


def unsettled(stack: Stack) -> dict[str, str]:
    """client_message_id -> status of every stored customer message not yet answered or handed over."""
    with crm(stack) as session:
        rows = session.execute(
            select(Message.channel_message_id, Message.status).where(
                Message.direction == Direction.INBOUND,
                Message.status.in_([MessageStatus.RECEIVED, MessageStatus.FAILED]),
            )
        ).all()
        return {str(cid): status.value for cid, status in rows}


def superseded(stack: Stack) -> int:
    """Saved messages not replayed because the customer sent the same again and got an answer."""
    with crm(stack) as session:
        errors = session.scalars(select(Message.error).where(Message.direction == Direction.INBOUND))
        return sum(1 for error in errors if error and "not replayed" in error)


def stored_ids(stack: Stack) -> set[str]:
    with crm(stack) as session:
        ids = session.scalars(
            select(Message.channel_message_id).where(Message.direction == Direction.INBOUND)
        )
        return {str(cid) for cid in ids if cid}


def measure(
    stack: Stack, customers: int, kills: Sequence[str] = KILLS, settle_seconds: float = 10.0
) -> dict[str, Any]:
    """Kill each process in turn while `customers` chat; per kill: healthy and next-reply seconds."""
    port = stack.settings.gateway_port
    urls = [f"http://127.0.0.1:{port + index}" for index in range(stack.settings.gateway_replicas)]
    crowd = Customers(urls, customers)
    threads = crowd.run()
    rows = []
    try:
        time.sleep(settle_seconds)
        for kill in kills:
            pid = target_pid(stack, kill)
            killed_at = time.time()
            os.kill(pid, signal.SIGKILL)
            print(f"  killed {kill} (pid {pid})", flush=True)
            healthy = wait_healthy(urls)
            time.sleep(settle_seconds)
            with crowd.lock:
                live = [s.answered_at for s in crowd.sent if s.answered_at and s.answered_at > killed_at]
            late = [at for _id, at in late_answers(stack) if at > killed_at]
            first = min([*live, *late], default=None)
            row = {
                "killed": kill,
                "healthy_seconds": round(healthy, 1) if healthy is not None else None,
                "next_reply_seconds": round(first - killed_at, 1) if first is not None else None,
                "target_seconds": target_of(kill),
            }
            healthy_s, answer_s = row["healthy_seconds"], row["next_reply_seconds"]
            print(f"    back healthy in {healthy_s} s, next answer in {answer_s} s", flush=True)
            rows.append(row)
    finally:
        crowd.stop.set()
        for thread in threads:
            thread.join(timeout=90)
    # Saved messages are answered once everything is back; a minute is more than the promise needs.
    deadline = time.time() + 60
    while unsettled(stack) and time.time() < deadline:
        time.sleep(1)
    stored = stored_ids(stack)
    left = unsettled(stack)
    sent = crowd.sent
    gave_up = [s.client_id for s in sent if s.gave_up]
    never_stored = [s.client_id for s in sent if not s.gave_up and s.client_id not in stored]
    unanswered = [s.client_id for s in sent if s.client_id in left]
    lost = {*gave_up, *never_stored, *unanswered}
    answers: dict[int, int] = {}
    for message_id, _at in late_answers(stack):
        answers[message_id] = answers.get(message_id, 0) + 1
    return {
        "customers": customers,
        "messages_sent": len(sent),
        "saved_for_later": sum(1 for s in sent if s.fallback),
        "lost": len(lost),
        "lost_because": {
            "no_request_got_through": len(gave_up),
            "never_stored": len(never_stored),
            "still_unanswered": len(unanswered),
        },
        "not_replayed_customer_moved_on": superseded(stack),
        "answered_twice": sum(1 for count in answers.values() if count > 1),
        "kills": rows,
    }


# The per-address limit is for the public; here every customer is 127.0.0.1.
UNLIMITED = {"web_rate_per_address_per_minute": 100_000}


def run(customers: int, workdir: Path) -> dict[str, Any]:
    """One of each process on SQLite, as `make run` starts them."""
    settings = stack_settings(workdir).model_copy(update=UNLIMITED)
    with running_stack(workdir, settings=settings) as stack:
        return measure(stack, customers)


def run_replicas(customers: int, workdir: Path) -> dict[str, Any]:
    """Two of each process on PostgreSQL and Redis, from the replicas' Procfile `make run` writes."""
    with postgres_database("faults") as database_url, postgres_database("faults_tracker") as tracker_url:
        settings = cluster_settings(
            workdir,
            replicas=2,
            database_url=database_url,
            tracker_store_url=tracker_url,
            redis_url=REDIS_URL,
            namespace=redis_namespace(),
            **UNLIMITED,
        )
        procfile = workdir / "Procfile.replicas"
        procfile.write_text(replicas_procfile(settings))
        with running_stack(workdir, settings=settings, procfile=procfile) as stack:
            return measure(stack, customers, kills=REPLICA_KILLS)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.faults", description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=10)
    parser.add_argument(
        "--layouts",
        default="single,replicas",
        help="single (SQLite), replicas (2 of each, PostgreSQL + Redis)",
    )
    args = parser.parse_args(argv)
    runners = {"single": run, "replicas": run_replicas}
    results: dict[str, Any] = {
        "machine": machine_info(),
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    for layout in args.layouts.split(","):
        with tempfile.TemporaryDirectory(prefix="kefu-faults-") as workdir:
            print(f"Faults, {layout}: {args.customers} customers chatting; killing in turn", flush=True)
            results[layout] = runners[layout](args.customers, Path(workdir))
        report(layout, results[layout])
    print(f"Saved to {save_results(RESULTS, results)}")


def report(layout: str, results: dict[str, Any]) -> None:
    print(f"\n{layout}: {'killed':<16}{'healthy s':>11}{'next answer s':>15}{'target s':>10}")
    for row in results["kills"]:
        print(
            f"{'':<{len(layout) + 2}}{row['killed']:<16}{row['healthy_seconds']!s:>11}"
            f"{row['next_reply_seconds']!s:>15}{row['target_seconds']!s:>10}"
        )
    print(
        f"{results['messages_sent']} messages sent, {results['saved_for_later']} saved for later; "
        f"lost {results['lost']} {results['lost_because']}, answered twice {results['answered_twice']}; "
        f"not replayed (the customer asked the same again and got an answer): "
        f"{results['not_replayed_customer_moved_on']}\n",
        flush=True,
    )


if __name__ == "__main__":
    main()
