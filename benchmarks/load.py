"""Sustained load: replies per second and latency with many customers, one replica or two.

`make bench-load` (also part of `make bench`); by hand `.venv/bin/python -m benchmarks.load`
(`--quick` for short windows, `--configs sqlite,postgres,replicas`, `--levels 10,50,200`).

Three configurations, each started as `make run` starts replicas (tests/support/cluster.py: every process
of the replicas' Procfile on its own, on free loopback ports, demo data seeded):

- sqlite: one gateway, one Rasa server and one action server; CRM and tracker store in SQLite files;
- postgres: the same on PostgreSQL (needs a server at KEFU_TEST_POSTGRES_URL, tests/support/services.py);
- replicas: two of each on PostgreSQL, Rasa's lock store and the gateways' events in Redis (needs
  Redis at KEFU_TEST_REDIS_URL). Customers are spread over both gateways, round-robin by customer,
  as a load balancer would.

Each simulated customer holds a conversation over the web API (benchmarks/latency.py's turns): a
greeting, tracking a demo showcase order (the number, then the right e-mail), a knowledge-base
question, thanks and bye; then a new conversation with a fresh session id, until the window ends.
Every customer waits for its reply before sending the next message (a closed loop), so the number of
customers is the concurrency. After a warm-up at that concurrency the window is measured: a reply
counts when the HTTP answer arrives with the bot's messages inside the window; an error is any
non-200 answer, a timeout or a fallback reply (notice "bot_unavailable"). CPU seconds and memory
of every process (children included), of PostgreSQL and Redis, and of the load generator itself are
read from /proc. Results go to benchmarks/results/load.json, the processes' logs beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from benchmarks.latency import (
    SHOWCASE_ORDERS,
    WrongAnswer,
    descendants,
    machine_info,
    parent_pids,
    post_web_message,
    process_cmdline,
    status_kb,
    summarise,
    tracking_turns,
    web_reply_text,
)
from benchmarks.results_file import save_results
from bot.settings import PROJECT_ROOT

RESULTS_PATH = PROJECT_ROOT / "benchmarks" / "results" / "load.json"

LEVELS = (10, 50, 200)
FULL_WINDOW_SECONDS = 60.0
FULL_WARMUP_SECONDS = 15.0
QUICK_WINDOW_SECONDS = 15.0
QUICK_WARMUP_SECONDS = 5.0
# Customers do not all start in the same millisecond: each starts within this many seconds.
RAMP_SECONDS = 2.0
REQUEST_TIMEOUT_SECONDS = 30.0
THROUGHPUT_BUCKET_SECONDS = 10.0

# Two ways customers send. Back to back ("closed"): each sends its next message the moment its reply
# arrives, so the figures are the most the stack can answer and the wait that many customers queue
# for. At a reading and typing pace ("paced"): each sends a message PACE_SECONDS after its previous
# one, or as soon as the reply arrives when that takes longer; 50 such customers offer 31 messages a
# second, a busy shop's support chat, and the targets are measured there.
CLOSED = "closed"
PACED = "paced"
MODES = (CLOSED, PACED)
LEVELS_KEY = {CLOSED: "levels", PACED: "paced_levels"}  # where each mode's levels go in the results
PACE_SECONDS = 1.6

TARGET_LEVEL = 50
TARGET_REPLIES_PER_SECOND = 30.0
TARGET_P95_MS = 400.0

# What each turn's answer must contain for the conversation to go on (the rest would make no sense).
KB_QUESTION = "do you ship to switzerland?"
KB_ARTICLE = "shipping-countries"
FALLBACK_NOTICE = "bot_unavailable"

# Outcomes of a turn. A reply is an HTTP 200 with the bot's messages; errors are what the issue counts.
OK = "ok"
UNEXPECTED = "unexpected"  # answered by the bot, but not what this script expects (counted as a reply)
REPLY_OUTCOMES = (OK, UNEXPECTED)
ERROR_OUTCOMES = ("http_error", "timeout", "fallback", "transport_error")


@dataclass(frozen=True)
class Configuration:
    key: str
    label: str
    replicas: int
    postgres: bool
    redis: bool


CONFIGURATIONS = {
    "sqlite": Configuration("sqlite", "1 replica, SQLite", replicas=1, postgres=False, redis=False),
    "postgres": Configuration("postgres", "1 replica, PostgreSQL", replicas=1, postgres=True, redis=False),
    "replicas": Configuration(
        "replicas", "2 replicas, PostgreSQL + Redis", replicas=2, postgres=True, redis=True
    ),
}


# --- the customers ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Turn:
    """One customer message and what the bot's answer must show for the conversation to go on."""

    kind: str
    text: str
    expect_text: str | None = None
    expect_article: str | None = None


def conversation_turns(index: int) -> list[Turn]:
    """Conversation number `index`: greet, track a showcase order, ask the knowledge base, say bye."""
    number, email = SHOWCASE_ORDERS[index % len(SHOWCASE_ORDERS)]
    tracking = [Turn(kind, text, expected) for kind, text, expected in tracking_turns(number, email)]
    return [
        Turn("greeting", "hello there"),
        *tracking,
        Turn("kb_question", KB_QUESTION, expect_article=KB_ARTICLE),
        Turn("goodbye", "thanks, bye"),
    ]


@dataclass(frozen=True)
class TurnRecord:
    """One message sent and how it ended; times are time.monotonic() seconds."""

    kind: str
    started: float
    ended: float
    outcome: str
    gateway: int
    detail: str = ""

    @property
    def latency(self) -> float:
        return self.ended - self.started


def judge(turn: Turn, body: dict[str, Any]) -> tuple[str, str]:
    """The outcome of an HTTP 200 answer to `turn`, and why when it is not OK."""
    messages = body.get("messages") or []
    if any((m.get("metadata") or {}).get("notice") == FALLBACK_NOTICE for m in messages):
        return "fallback", "the gateway answered with its fallback (Rasa or the action server failed)"
    if body.get("mode") != "bot":
        return UNEXPECTED, f"the conversation left the bot (mode {body.get('mode')!r})"
    if not messages:
        return UNEXPECTED, "no bot message in the answer"
    text = web_reply_text(body)
    if turn.expect_text is not None and turn.expect_text not in text:
        return UNEXPECTED, f"no {turn.expect_text!r} in {text[:160]!r}"
    if turn.expect_article is not None:
        articles = [(m.get("metadata") or {}).get("kb_article") for m in messages]
        if turn.expect_article not in articles:
            return UNEXPECTED, f"not answered with article {turn.expect_article} ({articles}): {text[:120]!r}"
    return OK, ""


async def take_turn(
    client: httpx.AsyncClient, gateway_url: str, gateway: int, session: str, number: int, turn: Turn
) -> TurnRecord:
    """Send one message; how it ended (a reply, an unexpected answer or an error) and when."""
    started = time.monotonic()
    try:
        body = await post_web_message(client, gateway_url, session, turn.text, f"{session}-{number}")
    except httpx.TimeoutException as error:
        outcome, detail = (
            "timeout",
            f"no answer within {REQUEST_TIMEOUT_SECONDS:.0f} s ({type(error).__name__})",
        )
    except WrongAnswer as error:  # post_web_message raises it for any status but 200
        outcome, detail = "http_error", str(error)
    except (httpx.HTTPError, ValueError) as error:
        outcome, detail = "transport_error", f"{type(error).__name__}: {error}"
    else:
        outcome, detail = judge(turn, body)
    return TurnRecord(turn.kind, started, time.monotonic(), outcome, gateway, detail)


async def run_customers(
    gateway_urls: list[str],
    customers: int,
    warmup_seconds: float,
    window_seconds: float,
    label: str,
    on_window_start: Callable[[], None] = lambda: None,
    on_window_end: Callable[[], None] = lambda: None,
    pace_seconds: float | None = None,
) -> tuple[list[TurnRecord], float, float]:
    """`customers` customers for warm-up plus window; every turn's record and the window's ends.

    Without `pace_seconds` each customer sends its next message as soon as its reply arrives; with it,
    `pace_seconds` after its previous message was sent (at once if the reply came later than that),
    and the customers' first messages are spread over one pace. The callbacks run at the window's
    start and end (CPU snapshots). Customers send nothing after the window; the turns in flight then
    are waited for and fall outside it.
    """
    tag = uuid.uuid4().hex[:8]
    conversations: Iterator[int] = itertools.count()
    records: list[TurnRecord] = []
    stop = asyncio.Event()
    limits = httpx.Limits(max_connections=customers + 10, max_keepalive_connections=customers + 10)

    async with httpx.AsyncClient(timeout=REQUEST_TIMEOUT_SECONDS, limits=limits) as client:

        async def customer(number: int) -> None:
            gateway = number % len(gateway_urls)  # round-robin by customer, as a load balancer would
            await asyncio.sleep((pace_seconds or RAMP_SECONDS) * number / customers)
            next_send = time.monotonic()
            while not stop.is_set():
                index = next(conversations)
                session = f"load-{label}-{customers}-{tag}-{index}"  # a fresh session per conversation
                for position, turn in enumerate(conversation_turns(index)):
                    pause = next_send - time.monotonic()
                    if pause > 0:
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(stop.wait(), pause)
                    if stop.is_set():
                        return
                    record = await take_turn(client, gateway_urls[gateway], gateway, session, position, turn)
                    records.append(record)
                    next_send = record.started + (pace_seconds or 0.0)
                    if record.outcome != OK:
                        break  # the rest of this conversation would make no sense: start a new one

        tasks = [asyncio.create_task(customer(number)) for number in range(customers)]
        await asyncio.sleep(warmup_seconds)
        on_window_start()
        window_start = time.monotonic()
        await asyncio.sleep(window_seconds)
        window_end = time.monotonic()
        on_window_end()
        stop.set()
        await asyncio.gather(*tasks)
    return records, window_start, window_end


# --- arithmetic -------------------------------------------------------------------------------------------


def window_stats(records: list[TurnRecord], start: float, end: float) -> dict[str, Any]:
    """Replies per second, latency percentiles and errors of the turns that ended inside [start, end).

    Failed turns count in the latencies too: a customer who waited ten seconds for an apology waited.
    """
    seconds = end - start
    inside = [r for r in records if start <= r.ended < end]
    outcomes = Counter(r.outcome for r in inside)
    replies = sum(outcomes[o] for o in REPLY_OUTCOMES)
    errors = sum(outcomes[o] for o in ERROR_OUTCOMES)
    kinds = sorted({r.kind for r in inside}, key=[t.kind for t in conversation_turns(0)].index)
    buckets = max(1, round(seconds / THROUGHPUT_BUCKET_SECONDS))
    bucket_seconds = seconds / buckets
    per_bucket = [0] * buckets
    for r in inside:
        if r.outcome in REPLY_OUTCOMES:
            per_bucket[min(int((r.ended - start) / bucket_seconds), buckets - 1)] += 1
    samples: list[str] = []
    for r in inside:
        if r.outcome != OK and len(samples) < 8:
            samples.append(f"{r.outcome} ({r.kind} turn, gateway {r.gateway + 1}): {r.detail}")
    return {
        "window_seconds": round(seconds, 2),
        "turns_answered_or_failed": len(inside),
        "replies": replies,
        "replies_per_s": round(replies / seconds, 2) if seconds > 0 else None,
        "conversations_completed": sum(1 for r in inside if r.kind == "goodbye" and r.outcome == OK),
        "errors": errors,
        "errors_by_kind": {o: outcomes[o] for o in ERROR_OUTCOMES if outcomes[o]},
        "unexpected_answers": outcomes[UNEXPECTED],
        "latency": summarise([r.latency for r in inside]),
        "by_turn": {kind: summarise([r.latency for r in inside if r.kind == kind]) for kind in kinds},
        "replies_per_s_by_bucket": [round(count / bucket_seconds, 1) for count in per_bucket],
        "issue_samples": samples,
    }


# --- processes: CPU and memory from /proc -----------------------------------------------------------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float:
    """CPU seconds (user and system) of a process and of its children that exited and were waited for."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # utime, stime, cutime, cstime: fields 14-17 of proc(5), 11-14 after the command name.
    return sum(int(value) for value in fields[11:15]) / CLOCK_TICKS


def pids_named(name: str) -> list[int]:
    """Every process whose command name (/proc/<pid>/comm) is `name`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == name:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def watched_processes(roots: dict[str, int], with_postgres: bool, with_redis: bool) -> dict[str, list[int]]:
    """What to measure: each cluster process with its children, the load generator, the servers."""
    parents = parent_pids()
    groups = {name: [pid, *descendants(pid, parents)] for name, pid in roots.items()}
    groups["load generator"] = [os.getpid()]
    if with_postgres:
        groups["postgres (server)"] = pids_named("postgres")
    if with_redis:
        groups["redis (server)"] = pids_named("redis-server")
    return groups


def machine_busy_seconds() -> tuple[float, float]:
    """CPU seconds the whole machine has been busy and idle since boot, all cores together (/proc/stat)."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle and iowait
    return (sum(fields[:8]) - idle) / CLOCK_TICKS, idle / CLOCK_TICKS


@dataclass
class CpuSnapshot:
    at: float
    per_group: dict[str, float]
    machine_busy: float
    machine_idle: float


def cpu_snapshot(groups: dict[str, list[int]]) -> CpuSnapshot:
    busy, idle = machine_busy_seconds()
    return CpuSnapshot(
        at=time.monotonic(),
        per_group={name: sum(process_cpu_seconds(pid) for pid in pids) for name, pids in groups.items()},
        machine_busy=busy,
        machine_idle=idle,
    )


def cpu_usage(before: CpuSnapshot, after: CpuSnapshot, replies: int) -> dict[str, Any]:
    """CPU seconds each group used between two snapshots, as % of one core, and per reply (ms).

    "other work" is the machine's busy time that none of the measured processes account for.
    """
    seconds = after.at - before.at
    groups: dict[str, dict[str, float | None]] = {}
    for name, spent_after in after.per_group.items():
        spent = max(0.0, spent_after - before.per_group.get(name, 0.0))
        groups[name] = {
            "cpu_seconds": round(spent, 2),
            "percent_of_one_core": round(100 * spent / seconds, 1) if seconds > 0 else None,
            "cpu_ms_per_reply": round(1000 * spent / replies, 1) if replies else None,
        }
    machine = after.machine_busy - before.machine_busy
    idle = after.machine_idle - before.machine_idle
    other = max(0.0, machine - sum(g["cpu_seconds"] or 0.0 for g in groups.values()))
    return {
        "seconds": round(seconds, 2),
        "processes": groups,
        "machine_busy_cpu_seconds": round(machine, 2),
        "machine_busy_percent": round(100 * machine / (machine + idle), 1) if machine + idle > 0 else None,
        "other_work_cpu_seconds": round(other, 2),
    }


def memory_usage(groups: dict[str, list[int]]) -> dict[str, dict[str, Any]]:
    """RSS now and the peak each process reached (VmHWM), MB, summed over a process and its children.

    PostgreSQL's processes share their buffers, so summing their RSS would count them many times:
    its memory is left out.
    """
    report: dict[str, dict[str, Any]] = {}
    for name, pids in groups.items():
        if name.startswith("postgres"):
            continue
        report[name] = {
            "rss_mb": round(sum(status_kb(pid, "VmRSS") for pid in pids) / 1024, 1),
            "peak_rss_mb": round(sum(status_kb(pid, "VmHWM") for pid in pids) / 1024, 1),
            "processes": sum(1 for pid in pids if status_kb(pid, "VmRSS")),
        }
    return report


# --- one configuration ------------------------------------------------------------------------------------


def service_problem(config: Configuration) -> str | None:
    """What the configuration needs and cannot reach (PostgreSQL, Redis), in words; None when all is there."""
    # Imported here: tests.support.services needs pytest, which only this path uses.
    from sqlalchemy import create_engine, pool, text
    from sqlalchemy.exc import SQLAlchemyError

    from bot.crm.db import normalise_database_url, redact_database_url
    from tests.support.services import POSTGRES_ADMIN_URL, REDIS_URL

    problems = []
    if config.postgres:
        url = normalise_database_url(POSTGRES_ADMIN_URL)
        engine = create_engine(url, poolclass=pool.NullPool, connect_args={"connect_timeout": 5})
        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except SQLAlchemyError as error:
            reason = str(getattr(error, "orig", error)).strip().splitlines()[0]
            problems.append(
                f"PostgreSQL at KEFU_TEST_POSTGRES_URL ({redact_database_url(url)}: {reason}); "
                "it needs a role that may create databases"
            )
        finally:
            engine.dispose()
    if config.redis:
        import redis

        try:
            redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
        except redis.RedisError as error:
            problems.append(f"Redis at KEFU_TEST_REDIS_URL ({REDIS_URL}: {error})")
    return "needs " + " and ".join(problems) if problems else None


def run_configuration(
    config: Configuration,
    levels: tuple[int, ...],
    warmup_seconds: float,
    window_seconds: float,
    logs_dir: Path,
    process_env: dict[str, str] | None = None,
    modes: tuple[str, ...] = MODES,
) -> dict[str, Any]:
    """Start the configuration's cluster, warm it up, measure every level, stop it; its results.

    `process_env` is added to every process's environment (an experiment such as OMP_NUM_THREADS=1).
    The processes' logs are copied to `logs_dir`/<configuration>.
    """
    import pytest

    from tests.support.cluster import running_cluster

    result: dict[str, Any] = {"config": asdict(config), "load_average_before": os.getloadavg()}
    problem = service_problem(config)
    if problem is not None:
        print(f"  SKIPPED {config.label}: {problem}", flush=True)
        return {**result, "skipped": problem}

    with tempfile.TemporaryDirectory(prefix=f"kefu-load-{config.key}-") as tmp:
        workdir = Path(tmp)
        started = time.monotonic()
        try:
            with running_cluster(
                workdir,
                replicas=config.replicas,
                postgres=config.postgres,
                redis_url=None if config.redis else "",
                # Every simulated customer comes from 127.0.0.1; real ones come from many addresses.
                extra_env={"WEB_RATE_PER_ADDRESS_PER_MINUTE": "0", **(process_env or {})},
            ) as cluster:
                result["healthy_after_seconds"] = round(time.monotonic() - started, 1)
                print(f"  healthy after {result['healthy_after_seconds']} s", flush=True)
                result.update(
                    asyncio.run(
                        measure_levels(cluster, config, levels, warmup_seconds, window_seconds, modes)
                    )
                )
        except pytest.fail.Exception as failure:  # how tests/support/services.py says a service is missing
            print(f"  SKIPPED {config.label}: {failure}", flush=True)
            result["skipped"] = str(failure)
        except (RuntimeError, subprocess.CalledProcessError) as error:  # did not start, or a process exited
            print(f"  FAILED {config.label}: {str(error)[:3000]}", flush=True)
            result["failed"] = str(error)[:6000]
        finally:
            target = logs_dir / config.key
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir(parents=True, exist_ok=True)
            for log in workdir.glob("*.log"):
                shutil.copy(log, target / log.name)
    result["load_average_after"] = os.getloadavg()
    return result


async def measure_levels(
    cluster: Any,
    config: Configuration,
    levels: tuple[int, ...],
    warmup_seconds: float,
    window_seconds: float,
    modes: tuple[str, ...] = MODES,
) -> dict[str, Any]:
    urls = cluster.gateway_urls
    roots = {name: process.popen.pid for name, process in cluster.processes.items()}

    # First turns load lazily imported code and the sentence encoder (the cluster starts without the
    # knowledge base's warm-up), open database connections: two conversations per gateway, one at a time.
    first: list[TurnRecord] = []
    async with httpx.AsyncClient(timeout=120) as client:
        for gateway, url in enumerate(urls):
            for index in range(2):
                session = f"load-first-{config.key}-{uuid.uuid4().hex[:8]}"
                for position, turn in enumerate(conversation_turns(index)):
                    first.append(await take_turn(client, url, gateway, session, position, turn))
    first_issues = [f"{r.outcome} ({r.kind}): {r.detail}" for r in first if r.outcome != OK]
    print(
        f"  first conversations: {len(first)} turns, slowest {max(r.latency for r in first):.1f} s, "
        f"{len(first_issues)} not OK",
        flush=True,
    )

    results: dict[str, Any] = {
        "first_conversations": {
            "turns": len(first),
            "slowest_turn_seconds": round(max(r.latency for r in first), 2),
            "issues": first_issues[:8],
        },
        "levels": {},
        "paced_levels": {},
    }
    runs = [(mode, level) for mode in modes for level in levels]
    for mode, level in runs:
        groups = watched_processes(roots, config.postgres, config.redis)
        snapshots: list[CpuSnapshot] = []

        def snapshot(groups: dict[str, list[int]] = groups, into: list[CpuSnapshot] = snapshots) -> None:
            into.append(cpu_snapshot(groups))

        load_before = os.getloadavg()
        records, start, end = await run_customers(
            urls,
            level,
            warmup_seconds,
            window_seconds,
            f"{config.key}-{mode}",
            snapshot,
            snapshot,
            pace_seconds=PACE_SECONDS if mode == PACED else None,
        )
        stats = window_stats(records, start, end)
        level_result = {
            "customers": level,
            "mode": mode,
            "offered_messages_per_s": round(level / PACE_SECONDS, 2) if mode == PACED else None,
            **stats,
            "warmup_seconds": warmup_seconds,
            "cpu": cpu_usage(snapshots[0], snapshots[1], stats["replies"]),
            "memory": memory_usage(groups),
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
        }
        results[LEVELS_KEY[mode]][str(level)] = level_result
        latency = stats["latency"]
        print(
            f"  {level:>3} customers, {mode}: {stats['replies']} replies in "
            f"{stats['window_seconds']:.0f} s = "
            f"{stats['replies_per_s']} /s, p50 {latency['p50_ms']} ms, p95 {latency['p95_ms']} ms, "
            f"p99 {latency['p99_ms']} ms, {stats['errors']} errors, {stats['unexpected_answers']} unexpected",
            flush=True,
        )
        exited = [name for name, process in cluster.processes.items() if not process.running]
        if exited:
            print(f"  EXITED during {level} customers, {mode}: {', '.join(exited)}", flush=True)
            results["exited_during"] = {
                "customers": level,
                "mode": mode,
                "processes": exited,
                "logs": cluster.logs()[-6000:],
            }
            break
    results["processes"] = {
        name: {"pid": pid, "cmdline": process_cmdline(pid)[:200]} for name, pid in roots.items()
    }
    return results


# --- report -----------------------------------------------------------------------------------------------


def evaluate_targets(configs: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target with its measured value and whether it is met (not met when nothing was measured).

    At 50 customers at a reading pace: at least 30 replies/s, p95 at most 400 ms, no errors; at 50
    customers back to back: still at least 30 replies/s and no errors (what the stack can take). Two
    replicas against one on the same database (PostgreSQL), level by level in each mode: as many
    replies or more, a p95 as low or lower, no more errors.
    """
    targets = []
    level = str(TARGET_LEVEL)
    checks = {
        PACED: ("replies_per_s", "p95", "errors"),
        CLOSED: ("replies_per_s", "errors"),
    }
    for key, result in configs.items():
        label = CONFIGURATIONS[key].label
        for mode, names in checks.items():
            measured = result.get(LEVELS_KEY[mode], {}).get(level)
            name = f"{label}, {TARGET_LEVEL} customers {mode}"
            if measured is None:
                why = result.get("skipped") or result.get("failed") or "level not run"
                targets.append({"name": name, "target": "measured", "value": why[:80], "pass": False})
                continue
            rate, p95 = measured["replies_per_s"], measured["latency"]["p95_ms"]
            every = {
                "replies_per_s": {
                    "name": f"{name}: replies/s",
                    "target": f">= {TARGET_REPLIES_PER_SECOND:.0f}",
                    "value": f"{rate}",
                    "pass": rate is not None and rate >= TARGET_REPLIES_PER_SECOND,
                },
                "p95": {
                    "name": f"{name}: p95",
                    "target": f"<= {TARGET_P95_MS:.0f} ms",
                    "value": f"{p95} ms",
                    "pass": p95 is not None and p95 <= TARGET_P95_MS,
                },
                "errors": {
                    "name": f"{name}: errors",
                    "target": "0",
                    "value": str(measured["errors"]),
                    "pass": measured["errors"] == 0,
                },
            }
            targets += [every[check] for check in names]
    for mode in MODES:
        two = configs.get("replicas", {}).get(LEVELS_KEY[mode], {})
        one = configs.get("postgres", {}).get(LEVELS_KEY[mode], {})
        for customers in sorted(set(two) & set(one), key=int):
            a, b = two[customers], one[customers]
            better_rate = (a["replies_per_s"] or 0) >= (b["replies_per_s"] or 0)
            a_p95, b_p95 = a["latency"]["p95_ms"], b["latency"]["p95_ms"]
            better_p95 = a_p95 is not None and (b_p95 is None or a_p95 <= b_p95)
            targets.append(
                {
                    "name": f"2 replicas >= 1 (PostgreSQL), {customers} customers {mode}: replies/s and p95",
                    "target": ">= and <=",
                    "value": f"{a['replies_per_s']} vs {b['replies_per_s']}/s, {a_p95} vs {b_p95} ms",
                    "pass": better_rate and better_p95 and a["errors"] <= b["errors"],
                }
            )
    return targets


def _cell(value: Any) -> str:
    return "-" if value is None else str(value)


def _other_work(cpu: dict[str, Any]) -> str:
    """The machine's CPU that none of the measured processes used, in cores: how busy the neighbours were."""
    return f"{cpu['other_work_cpu_seconds'] / cpu['seconds']:.2f} cores" if cpu["seconds"] else "-"


def _loads(values: Any) -> str:
    return "/".join(f"{value:.2f}" for value in values)


def _measured(result: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(customers, mode, figures) of every level a configuration measured, mode by mode."""
    for mode in MODES:
        for level, figures in result.get(LEVELS_KEY[mode], {}).items():
            yield level, mode, figures


def print_report(results: dict[str, Any]) -> None:
    machine, settings = results["machine"], results["settings"]
    print()
    print(
        f"Kefu load benchmark  {machine['timestamp']}  {machine['nproc']} CPUs ({machine['cpu_model']}), "
        f"{machine['memory_total_mb']} MB, {'quick' if settings['quick'] else 'full'} run: "
        f"{settings['warmup_seconds']:.0f} s warm-up, {settings['window_seconds']:.0f} s measured per level"
    )
    pace = settings.get("pace_seconds", PACE_SECONDS)
    print("Conversation = greet, order question, e-mail, knowledge-base question, bye; a fresh session per")
    print(f"conversation. closed: each customer sends as soon as its reply arrives; paced: every {pace} s")
    print("(or when the reply arrives, if later). Latency in ms, every turn counted; other work: the")
    print("machine's CPU outside the measured processes during the window, in cores.")
    print()
    header = (
        f"{'configuration':<32}{'customers':>9}{'mode':>8}{'replies/s':>11}{'p50':>8}{'p95':>8}{'p99':>8}"
        f"{'errors':>8}{'unexp.':>8}{'replies':>9}{'other work':>12}{'load avg':>17}"
    )
    print(header)
    print("-" * len(header))
    for key, result in results["configs"].items():
        label = CONFIGURATIONS[key].label
        if "levels" not in result:
            print(f"{label:<32}  {result.get('skipped') or result.get('failed', '')[:200]}")
            continue
        for level, mode, m in _measured(result):
            latency = m["latency"]
            print(
                f"{label:<32}{level:>9}{mode:>8}{_cell(m['replies_per_s']):>11}{_cell(latency['p50_ms']):>8}"
                f"{_cell(latency['p95_ms']):>8}{_cell(latency['p99_ms']):>8}{m['errors']:>8}"
                f"{m['unexpected_answers']:>8}{m['replies']:>9}{_other_work(m['cpu']):>12}"
                f"{_loads(m['load_average_after']):>17}"
            )
    print()
    print("CPU in each measured window: % of one core (CPU ms per reply); memory RSS at the end / peak, MB")
    for key, result in results["configs"].items():
        for level, mode, m in _measured(result):
            cpu = m["cpu"]
            print(
                f"  {CONFIGURATIONS[key].label}, {level} customers {mode}: machine busy "
                f"{cpu['machine_busy_percent']}% of {machine['nproc']} cores; "
                f"other work {cpu['other_work_cpu_seconds']} CPU s"
            )
            for name, usage in cpu["processes"].items():
                memory = m["memory"].get(name)
                memory_cell = f"{memory['rss_mb']:>7} / {memory['peak_rss_mb']:>7}" if memory else "(shared)"
                print(
                    f"    {name:<18}{_cell(usage['percent_of_one_core']):>7}%  "
                    f"({_cell(usage['cpu_ms_per_reply']):>6} ms/reply, {usage['cpu_seconds']:>6} s)   "
                    f"{memory_cell}"
                )
    print()
    print("Targets")
    width = max((len(t["name"]) for t in results["targets"]), default=10)
    for target in results["targets"]:
        verdict = "met" if target["pass"] else "NOT MET"
        print(f"  {target['name']:<{width}}  {target['target']:>11}  {target['value']:>24}  {verdict}")
    issues = [
        (CONFIGURATIONS[key].label, level, sample)
        for key, result in results["configs"].items()
        for level, _mode, m in _measured(result)
        for sample in m["issue_samples"]
    ]
    if issues:
        print()
        print("Errors and unexpected answers (samples)")
        for label, level, sample in issues:
            print(f"  [{label}, {level}] {sample[:300]}")
    print(
        f"\nLoad average (1/5/15 min) at start {_loads(machine['load_average_at_start'])}, "
        f"at end {_loads(results['load_average_at_end'])}: other work on the machine skews the figures"
    )


def _csv(cast: Callable[[str], Any]) -> Callable[[str], tuple[Any, ...]]:
    return lambda text: tuple(cast(part.strip()) for part in text.split(",") if part.strip())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.load", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"{QUICK_WARMUP_SECONDS:.0f} s warm-up and {QUICK_WINDOW_SECONDS:.0f} s window per level "
        f"instead of {FULL_WARMUP_SECONDS:.0f} s and {FULL_WINDOW_SECONDS:.0f} s",
    )
    parser.add_argument(
        "--configs",
        type=_csv(str),
        default=tuple(CONFIGURATIONS),
        help="which configurations, comma-separated (default sqlite,postgres,replicas)",
    )
    parser.add_argument(
        "--levels",
        type=_csv(int),
        default=LEVELS,
        help="concurrent customers, comma-separated (default 10,50,200)",
    )
    parser.add_argument(
        "--modes",
        type=_csv(str),
        default=MODES,
        help=f"how customers send, comma-separated (default {','.join(MODES)}): {CLOSED} = back to back, "
        f"{PACED} = a message every {PACE_SECONDS} s each",
    )
    parser.add_argument("--window", type=float, help="measured seconds per level (overrides --quick's)")
    parser.add_argument("--warmup", type=float, help="warm-up seconds per level (overrides --quick's)")
    parser.add_argument(
        "--process-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an environment variable for every started process, for experiments (repeatable), "
        "e.g. --process-env OMP_NUM_THREADS=1",
    )
    parser.add_argument("--output", type=Path, default=RESULTS_PATH, help="where the JSON goes")
    parser.add_argument("--strict", action="store_true", help="exit with status 1 when a target is not met")
    args = parser.parse_args(argv)
    unknown = [key for key in args.configs if key not in CONFIGURATIONS]
    if unknown:
        parser.error(f"unknown configuration {', '.join(unknown)}; choose from {', '.join(CONFIGURATIONS)}")
    if not args.modes or any(mode not in MODES for mode in args.modes):
        parser.error(f"--modes takes {' and/or '.join(MODES)}, not {','.join(args.modes)}")
    malformed = [item for item in args.process_env if "=" not in item]
    if malformed:
        parser.error(f"--process-env takes NAME=VALUE, not {', '.join(malformed)}")
    process_env = dict(item.split("=", 1) for item in args.process_env)

    window = args.window or (QUICK_WINDOW_SECONDS if args.quick else FULL_WINDOW_SECONDS)
    warmup = (
        args.warmup
        if args.warmup is not None
        else (QUICK_WARMUP_SECONDS if args.quick else FULL_WARMUP_SECONDS)
    )
    # The processes' logs go beside the JSON: benchmarks/results/load-logs by default.
    logs_dir = args.output.parent / f"{args.output.stem}-logs"
    began = time.monotonic()
    results: dict[str, Any] = {
        "machine": machine_info(),
        "settings": {
            "quick": args.quick,
            "configs": list(args.configs),
            "levels": list(args.levels),
            "modes": list(args.modes),
            "pace_seconds": PACE_SECONDS,
            "warmup_seconds": warmup,
            "window_seconds": window,
            "request_timeout_seconds": REQUEST_TIMEOUT_SECONDS,
            "process_env": process_env,
            "conversation": [asdict(turn) for turn in conversation_turns(0)],
            "orders": [number for number, _ in SHOWCASE_ORDERS],
        },
        "configs": {},
    }
    for key in args.configs:
        config = CONFIGURATIONS[key]
        print(f"{config.label}: starting the cluster ...", flush=True)
        results["configs"][key] = run_configuration(
            config, args.levels, warmup, window, logs_dir, process_env, args.modes
        )

    results["load_average_at_end"] = os.getloadavg()
    results["targets"] = evaluate_targets(results["configs"])
    results["wall_seconds"] = round(time.monotonic() - began, 1)
    print_report(results)
    save_results(args.output, results)
    print(f"\nResults: {args.output}   logs: {logs_dir}   (benchmark wall time {results['wall_seconds']} s)")
    return 1 if args.strict and not all(t["pass"] for t in results["targets"]) else 0


if __name__ == "__main__":
    sys.exit(main())
