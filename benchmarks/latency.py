"""Latency, throughput, memory and start-up time of Kefu's real stack, via the gateway and straight to Rasa.

`make bench` runs it after setting up and training; by hand: `.venv/bin/python -m benchmarks.latency`
(`--quick` for a short run).
Simulated customers track the demo showcase orders, always with the right e-mail (wrong details count as
failed verifications and would lock the order numbers). Results go to benchmarks/results/latency.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from benchmarks.results_file import save_results
from bot.settings import PROJECT_ROOT
from tests.support.stack import Stack, prepare_database, running_stack, settings_env, stack_settings, stop
from tests.support.visitors import named_visitor

RESULTS_PATH = PROJECT_ROOT / "benchmarks" / "results" / "latency.json"

# The demo data's showcase orders with the e-mail each was placed with (bot/demo/seed.py).
SHOWCASE_ORDERS = (
    ("100001", "ana.souza@example.com"),
    ("100002", "ana.souza@example.com"),
    ("100003", "ana.souza@example.com"),
    ("100004", "jonas.becker@example.com"),
    ("100005", "jonas.becker@example.com"),
    ("100006", "mei.chen@example.com"),
    ("100007", "mei.chen@example.com"),
    ("100008", "mei.chen@example.com"),
)
LEVELS = (1, 10, 50)
FULL_TURNS = 300
QUICK_TURNS = 40
PATHS = ("gateway", "rasa")

TARGET_P95_MS = 150.0
TARGET_P95_LEVEL = 10
TARGET_OVERHEAD_RATIO = 1.30
TARGET_STARTUP_SECONDS = 60.0

REQUEST_TIMEOUT_SECONDS = 60.0
STARTUP_TIMEOUT_SECONDS = 300.0
# What the bot says when it asks for the proof of ownership (domain.yml, utter_ask_contact).
ASKS_FOR_CONTACT = "e-mail"


class WrongAnswer(Exception):
    """The bot answered, but not with what a customer tracking an order should get."""


# --- one turn on each path --------------------------------------------------------------------------------

Send = Callable[[httpx.AsyncClient, str, str], Awaitable[str]]


async def post_web_message(
    client: httpx.AsyncClient, gateway_url: str, session: str, text: str, client_message_id: str | None = None
) -> dict[str, Any]:
    """POST one customer message to a gateway's web channel; the JSON answer (WrongAnswer unless HTTP 200)."""
    message: dict[str, str] = {"session": named_visitor(session), "text": text}
    if client_message_id is not None:
        message["client_message_id"] = client_message_id
    response = await client.post(f"{gateway_url}/api/web/messages", json=message)
    if response.status_code != 200:
        raise WrongAnswer(f"HTTP {response.status_code}: {response.text[:200]}")
    body: dict[str, Any] = response.json()
    return body


def web_reply_text(body: dict[str, Any]) -> str:
    """The text of every message in a web channel answer, one per line."""
    return "\n".join(str(message.get("text") or "") for message in body.get("messages", []))


def gateway_sender(stack: Stack) -> Send:
    """A turn through the gateway's web channel: the way a customer on the chat widget talks."""

    async def send(client: httpx.AsyncClient, sender: str, text: str) -> str:
        body = await post_web_message(client, stack.gateway_url, sender, text)
        if body.get("mode") != "bot":
            raise WrongAnswer(f"the conversation left the bot (mode {body.get('mode')!r})")
        return web_reply_text(body)

    return send


def rasa_sender(stack: Stack) -> Send:
    """A turn straight to Rasa's REST channel, as the gateway itself makes it (the baseline)."""
    url = f"{stack.settings.rasa_url.rstrip('/')}/webhooks/rest/webhook"

    async def send(client: httpx.AsyncClient, sender: str, text: str) -> str:
        response = await client.post(
            url, params={"token": stack.settings.rasa_token}, json={"sender": sender, "message": text}
        )
        if response.status_code != 200:
            raise WrongAnswer(f"HTTP {response.status_code}: {response.text[:200]}")
        body = response.json()
        if not isinstance(body, list):
            raise WrongAnswer(f"expected a list of messages, got {type(body).__name__}")
        return "\n".join(str(message.get("text") or "") for message in body if isinstance(message, dict))

    return send


# --- load -------------------------------------------------------------------------------------------------


@dataclass
class LoadRecord:
    """Latencies (seconds) per turn kind, and what went wrong.

    A turn that failed counts in the latencies too: a customer who waited ten seconds for an apology waited.
    """

    latencies: dict[str, list[float]] = field(default_factory=lambda: {"question": [], "contact": []})
    turns_sent: int = 0
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)

    def fail(self, message: str) -> None:
        self.errors += 1
        if len(self.error_samples) < 5:
            self.error_samples.append(message)

    def all_latencies(self) -> list[float]:
        return [value for values in self.latencies.values() for value in values]


def tracking_turns(number: str, email: str) -> tuple[tuple[str, str, str], ...]:
    """Tracking an order: (kind, what the customer types, what the answer must contain) per turn.

    The question with the order number is answered with a request for the proof of ownership; the
    right e-mail then runs the order look-up action and is answered with the order's status.
    """
    return (
        ("question", f"where is my order {number}", ASKS_FOR_CONTACT),
        ("contact", email, f"#{number}"),
    )


async def track_order(
    send: Send, client: httpx.AsyncClient, sender: str, number: str, email: str, record: LoadRecord
) -> None:
    """One order-tracking exchange in a new conversation: the question, then the right e-mail."""
    for kind, text, expected in tracking_turns(number, email):
        record.turns_sent += 1
        started = time.perf_counter()
        try:
            answer = await send(client, sender, text)
        except (httpx.HTTPError, ValueError, WrongAnswer) as error:
            record.latencies[kind].append(time.perf_counter() - started)
            record.fail(f"{kind} turn of order {number}: {type(error).__name__}: {error}")
            return
        record.latencies[kind].append(time.perf_counter() - started)
        if expected not in answer:
            # The rest of this exchange would make no sense: the next customer starts a new one.
            record.fail(f"{kind} turn of order {number}: no {expected!r} in the answer {answer[:200]!r}")
            return


async def run_load(send: Send, label: str, customers: int, turns: int) -> tuple[LoadRecord, float]:
    """`customers` concurrent customers share `turns` turns (2 per exchange); returns record and wall time."""
    exchanges = max(turns // 2, customers)
    tag = uuid.uuid4().hex[:8]
    jobs: Iterator[int] = iter(range(exchanges))
    record = LoadRecord()
    limits = httpx.Limits(max_connections=customers + 10, max_keepalive_connections=customers + 10)

    async with httpx.AsyncClient(timeout=REQUEST_TIMEOUT_SECONDS, limits=limits) as client:

        async def customer() -> None:
            # The iterator is shared: each customer takes the next exchange as soon as it is free.
            for index in jobs:
                number, email = SHOWCASE_ORDERS[index % len(SHOWCASE_ORDERS)]
                await track_order(
                    send, client, f"bench-{label}-{customers}-{tag}-{index}", number, email, record
                )

        started = time.perf_counter()
        await asyncio.gather(*(customer() for _ in range(customers)))
        wall = time.perf_counter() - started
    return record, wall


def percentile(values: list[float], fraction: float) -> float:
    """Linear interpolation between the closest ranks (numpy's default)."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summarise(values: list[float]) -> dict[str, float | int | None]:
    """Count and p50/p95/p99/mean/min/max in milliseconds (None when nothing succeeded)."""
    if not values:
        return {"count": 0, "p50_ms": None, "p95_ms": None, "p99_ms": None, "mean_ms": None}
    ms = [value * 1000 for value in values]
    return {
        "count": len(ms),
        "p50_ms": round(percentile(ms, 0.50), 1),
        "p95_ms": round(percentile(ms, 0.95), 1),
        "p99_ms": round(percentile(ms, 0.99), 1),
        "mean_ms": round(statistics.fmean(ms), 1),
        "min_ms": round(min(ms), 1),
        "max_ms": round(max(ms), 1),
    }


def level_result(record: LoadRecord, wall: float) -> dict[str, Any]:
    return {
        **summarise(record.all_latencies()),
        "turns_sent": record.turns_sent,
        "errors": record.errors,
        "wall_seconds": round(wall, 2),
        "throughput_turns_per_s": round(record.turns_sent / wall, 1) if wall else None,
        "by_turn": {kind: summarise(values) for kind, values in record.latencies.items()},
        "error_samples": record.error_samples,
    }


async def nlu_parse_latency(stack: Stack, count: int) -> dict[str, Any]:
    """Rasa's NLU alone (`/model/parse`), one request at a time: the intent classification part of a turn."""
    url = f"{stack.settings.rasa_url.rstrip('/')}/model/parse"
    latencies = []
    async with httpx.AsyncClient(timeout=REQUEST_TIMEOUT_SECONDS) as client:
        for index in range(count):
            number, email = SHOWCASE_ORDERS[index % len(SHOWCASE_ORDERS)]
            text = f"where is my order {number}" if index % 2 == 0 else email
            started = time.perf_counter()
            response = await client.post(
                url, params={"token": stack.settings.rasa_token}, json={"text": text}
            )
            latencies.append(time.perf_counter() - started)
            response.raise_for_status()
    return summarise(latencies)


async def benchmark_load(stack: Stack, levels: tuple[int, ...], turns: int) -> dict[str, Any]:
    """Warm up, then each level through both paths; stops early (and says so) if the stack exits."""
    senders = {"gateway": gateway_sender(stack), "rasa": rasa_sender(stack)}

    # Warm-up: first exchanges load lazily imported code, open database connections, fill caches.
    warmup: dict[str, Any] = {}
    for name, send in senders.items():
        sequential, _ = await run_load(send, f"warm-{name}", 1, 8)
        concurrent, _ = await run_load(send, f"warm-{name}", 5, 20)
        warmup[name] = {
            "errors": sequential.errors + concurrent.errors,
            "error_samples": sequential.error_samples + concurrent.error_samples,
        }
        print(
            f"  warm-up {name}: {sequential.turns_sent + concurrent.turns_sent} turns, "
            f"{warmup[name]['errors']} errors",
            flush=True,
        )

    nlu = await nlu_parse_latency(stack, 40)
    print(
        f"  Rasa NLU alone (/model/parse, 1 client): p50 {nlu['p50_ms']} ms, p95 {nlu['p95_ms']} ms",
        flush=True,
    )

    groups = stack_processes(stack.process.pid)
    results: dict[str, Any] = {}
    for level in levels:
        level_turns = max(turns, 2 * level)
        by_path: dict[str, Any] = {}
        for name in PATHS:
            cpu_before = cpu_snapshot(groups)
            record, wall = await run_load(senders[name], name, level, level_turns)
            cpu_after = cpu_snapshot(groups)
            by_path[name] = level_result(record, wall)
            # Where the time goes: CPU milliseconds each process spent per turn.
            by_path[name]["cpu_ms_per_turn"] = {
                kind: round((cpu_after[kind] - cpu_before[kind]) * 1000 / max(record.turns_sent, 1), 1)
                for kind in sorted(groups)
            }
            summary = by_path[name]
            print(
                f"  {level:>2} customers, {name:<7}: {record.turns_sent} turns in {wall:.1f} s, "
                f"p50 {summary['p50_ms']} ms, p95 {summary['p95_ms']} ms, {record.errors} errors",
                flush=True,
            )
            if stack.process.poll() is not None:
                where = f"{level} customers, {name}"
                print(f"  THE STACK EXITED during {where}; log tail:\n{stack.log()[-3000:]}", flush=True)
                return {
                    "warmup": warmup,
                    "nlu_parse_1_client": nlu,
                    "levels": results,
                    "stack_exited_during": where,
                    "unfinished_level": {"customers": level, **by_path},
                }
        gateway_p50, rasa_p50 = by_path["gateway"]["p50_ms"], by_path["rasa"]["p50_ms"]
        ratio = round(gateway_p50 / rasa_p50, 2) if gateway_p50 and rasa_p50 else None
        results[str(level)] = {
            "customers": level,
            "turns": level_turns,
            **by_path,
            "overhead_ratio_p50": ratio,
        }
    return {"warmup": warmup, "nlu_parse_1_client": nlu, "levels": results}


# --- memory -----------------------------------------------------------------------------------------------


def parent_pids() -> dict[int, int]:
    parents = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name in field 2 may hold spaces and parentheses: the fields after the last ')' are safe.
        parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    return parents


def descendants(root: int, parents: dict[int, int]) -> list[int]:
    children: dict[int, list[int]] = {}
    for pid, parent in parents.items():
        children.setdefault(parent, []).append(pid)
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def process_cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def status_kb(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _process_kind(cmdline: str) -> str | None:
    # A shell that launched a process without exec is not the process itself.
    if Path(cmdline.split(" ", 1)[0]).name in ("sh", "bash", "dash"):
        return None
    # rasa_sdk's command line contains "rasa" too, so it is checked first.
    if "rasa_sdk" in cmdline or "bot.launch.action_server" in cmdline:
        return "actions"
    if "uvicorn" in cmdline:
        return "gateway"
    if "rasa" in cmdline:
        return "rasa"
    return None


def stack_processes(supervisor_pid: int) -> dict[str, list[int]]:
    """The rasa, action server and gateway processes supervisord started, each with its own children."""
    parents = parent_pids()
    groups: dict[str, list[int]] = {}
    for pid in descendants(supervisor_pid, parents):
        kind = _process_kind(process_cmdline(pid))
        if kind is None or kind in groups or _process_kind(process_cmdline(parents.get(pid, 0))) == kind:
            continue
        groups[kind] = [pid, *descendants(pid, parents)]
    return groups


def _cpu_seconds(pids: list[int]) -> float:
    ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime and stime
    return ticks / os.sysconf("SC_CLK_TCK")


def cpu_snapshot(groups: dict[str, list[int]]) -> dict[str, float]:
    return {kind: _cpu_seconds(pids) for kind, pids in groups.items()}


def memory_report(supervisor_pid: int) -> dict[str, Any]:
    """RSS and peak RSS (MB) of the rasa, action server and gateway processes that supervisord started."""
    report: dict[str, Any] = {}
    for kind, subtree in stack_processes(supervisor_pid).items():
        pid = subtree[0]
        report[kind] = {
            "pid": pid,
            "rss_mb": round(status_kb(pid, "VmRSS") / 1024, 1),
            "peak_rss_mb": round(status_kb(pid, "VmHWM") / 1024, 1),
            "processes": len(subtree),
            "tree_rss_mb": round(sum(status_kb(p, "VmRSS") for p in subtree) / 1024, 1),
            "cmdline": process_cmdline(pid)[:200],
            "children": [
                {
                    "pid": p,
                    "rss_mb": round(status_kb(p, "VmRSS") / 1024, 1),
                    "cmdline": process_cmdline(p)[:120],
                }
                for p in subtree[1:]
            ],
        }
    return report


# --- start-up ---------------------------------------------------------------------------------------------


def measure_startup(workdir: Path, runs: int) -> dict[str, Any]:
    """Seconds from `bash scripts/run.sh` (what `make run` runs) to /healthz 200, `runs` times."""
    measurements = []
    for run in range(runs):
        # Same database files every run (already migrated and seeded), fresh ports.
        settings = stack_settings(workdir)
        if run == 0:
            prepare_database(settings)
        log_path = workdir / f"run-sh-{run}.log"
        with log_path.open("wb") as log:
            started = time.monotonic()
            process = subprocess.Popen(
                ["bash", "scripts/run.sh"],
                cwd=PROJECT_ROOT,
                env=settings_env(settings),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            measurement = _wait_healthy(
                process, f"http://127.0.0.1:{settings.gateway_port}", log_path, started
            )
        finally:
            stop(process)
        measurements.append(measurement)
        print(
            f"  start-up run {run + 1}: {measurement['seconds']} s "
            f"(processes launched after {measurement['processes_launched_after_s']} s)",
            flush=True,
        )
    seconds = [m["seconds"] for m in measurements]
    return {"runs": measurements, "median_seconds": round(statistics.median(seconds), 1)}


def _wait_healthy(
    process: subprocess.Popen[bytes], gateway_url: str, log_path: Path, started: float
) -> dict[str, Any]:
    """Poll /healthz until 200; note when each component first answered and supervisord took over."""
    ready: dict[str, float] = {}
    launched: float | None = None
    deadline = started + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log = log_path.read_text(errors="replace")
            raise RuntimeError(f"scripts/run.sh exited early:\n{log[-4000:]}")
        if launched is None and "Kefu is starting" in log_path.read_text(errors="replace"):
            launched = time.monotonic() - started
        try:
            response = httpx.get(f"{gateway_url}/healthz", timeout=2)
        except httpx.HTTPError:
            response = None
        if response is not None:
            elapsed = time.monotonic() - started
            ready.setdefault("gateway", elapsed)
            body = response.json()
            for component in ("database", "rasa", "action_server"):
                if body.get(component, {}).get("ok"):
                    ready.setdefault(component, elapsed)
            if response.status_code == 200:
                return {
                    "seconds": round(elapsed, 1),
                    "processes_launched_after_s": round(launched, 1) if launched is not None else None,
                    "component_ready_after_s": {name: round(value, 1) for name, value in ready.items()},
                }
        time.sleep(0.2)
    raise RuntimeError(
        f"/healthz not 200 after {STARTUP_TIMEOUT_SECONDS:.0f} s:\n"
        f"{log_path.read_text(errors='replace')[-4000:]}"
    )


# --- report -----------------------------------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    cpu_model = ""
    with contextlib.suppress(OSError, StopIteration):
        cpu_model = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model,
        "memory_total_mb": round(_meminfo_kb("MemTotal") / 1024),
        "load_average_at_start": os.getloadavg(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _meminfo_kb(key: str) -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1])
    return 0


def evaluate_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target with its measured value and PASS/FAIL (FAIL also when there is nothing to measure)."""
    targets = []
    levels = results["load"]["levels"]
    if str(TARGET_P95_LEVEL) in levels:
        p95 = levels[str(TARGET_P95_LEVEL)]["gateway"]["p95_ms"]
        targets.append(
            {
                "name": f"p95 via gateway, {TARGET_P95_LEVEL} customers",
                "target": f"<= {TARGET_P95_MS:.0f} ms",
                "value": f"{p95} ms",
                "pass": p95 is not None and p95 <= TARGET_P95_MS,
            }
        )
    for level, result in levels.items():
        ratio = result["overhead_ratio_p50"]
        targets.append(
            {
                "name": f"gateway p50 / rasa p50, {level} customers",
                "target": f"<= {TARGET_OVERHEAD_RATIO:.2f}",
                "value": f"{ratio}",
                "pass": ratio is not None and ratio <= TARGET_OVERHEAD_RATIO,
            }
        )
    for level, result in levels.items():
        errors = sum(result[name]["errors"] for name in PATHS)
        targets.append(
            {
                "name": f"errors, {level} customers (both paths)",
                "target": "0",
                "value": str(errors),
                "pass": errors == 0,
            }
        )
    if results.get("startup"):
        median = results["startup"]["median_seconds"]
        targets.append(
            {
                "name": "start-up median (run.sh -> /healthz 200)",
                "target": f"<= {TARGET_STARTUP_SECONDS:.0f} s",
                "value": f"{median} s",
                "pass": median <= TARGET_STARTUP_SECONDS,
            }
        )
    return targets


def _loads(values: Any) -> str:
    return "/".join(f"{value:.2f}" for value in values)


def _cell(value: Any) -> str:
    return "-" if value is None else str(value)


def print_report(results: dict[str, Any]) -> None:
    machine = results["machine"]
    print()
    print(
        f"Kefu latency benchmark  {machine['timestamp']}  {machine['nproc']} CPUs ({machine['cpu_model']}),"
        f" {machine['memory_total_mb']} MB, Python {machine['python']}, "
        f"{'quick' if results['config']['quick'] else 'full'} run"
    )
    print()
    print("Round-trip latency per turn (ms; order tracking: question + e-mail, a new conversation each)")
    header = (
        f"{'customers':>9}  {'path':<8}{'turns':>6}{'errors':>7}{'p50':>8}{'p95':>8}{'p99':>8}"
        f"{'mean':>8}{'turns/s':>9}{'p50 q/e':>15}{'CPU ms/turn r/a/g':>20}"
    )
    print(header)
    print("-" * len(header))
    for level, result in results["load"]["levels"].items():
        for name in PATHS:
            r = result[name]
            turn = r["by_turn"]
            by_turn = f"{_cell(turn['question']['p50_ms'])}/{_cell(turn['contact']['p50_ms'])}"
            cpu = r.get("cpu_ms_per_turn", {})
            cpu_cell = "/".join(_cell(cpu.get(kind)) for kind in ("rasa", "actions", "gateway"))
            print(
                f"{level:>9}  {name:<8}{r['turns_sent']:>6}{r['errors']:>7}{_cell(r['p50_ms']):>8}"
                f"{_cell(r['p95_ms']):>8}{_cell(r['p99_ms']):>8}{_cell(r['mean_ms']):>8}"
                f"{_cell(r['throughput_turns_per_s']):>9}{by_turn:>15}{cpu_cell:>20}"
            )
        print(f"{'':>9}  overhead gateway p50 / rasa p50 = {_cell(result['overhead_ratio_p50'])}")
    print("  (p50 q/e: p50 of the question turn / of the e-mail turn, which runs the order look-up action;")
    print("   CPU ms per turn: rasa/actions/gateway processes, children included;")
    print("   every turn sent counts in the latencies, failed ones included)")
    nlu = results["load"]["nlu_parse_1_client"]
    print(f"  Rasa NLU alone (/model/parse, 1 client): p50 {nlu['p50_ms']} ms, p95 {nlu['p95_ms']} ms")
    print(
        f"  Load average (1/5/15 min) at start {_loads(machine['load_average_at_start'])}, "
        f"at end {_loads(results['load_average_at_end'])}: other work on the machine skews the figures"
    )
    if results["load"].get("stack_exited_during"):
        print(
            f"  THE STACK EXITED during {results['load']['stack_exited_during']}: later levels were not run"
        )
    print()
    print("Memory after the load (MB)")
    for kind in ("rasa", "actions", "gateway"):
        memory = results["memory"].get(kind)
        if memory is None:
            print(f"  {kind:<8} not found")
            continue
        print(
            f"  {kind:<8} RSS {memory['rss_mb']:>7}   peak {memory['peak_rss_mb']:>7}   "
            f"with children {memory['tree_rss_mb']:>7} ({memory['processes']} processes)"
        )
    if results.get("startup"):
        print()
        print("Start-up: `bash scripts/run.sh` until /healthz answers 200 (environments, DB and model ready)")
        for number, run in enumerate(results["startup"]["runs"], 1):
            print(
                f"  run {number}: {run['seconds']} s   (supervisord launched after "
                f"{run['processes_launched_after_s']} s; first OK after: {run['component_ready_after_s']})"
            )
        print(f"  median: {results['startup']['median_seconds']} s")
    print()
    print("Targets")
    width = max(len(t["name"]) for t in results["targets"])
    for target in results["targets"]:
        verdict = "PASS" if target["pass"] else "FAIL"
        print(f"  {target['name']:<{width}}  {target['target']:>9}  {target['value']:>10}  {verdict}")
    errors = [
        (level, name, sample)
        for level, result in results["load"]["levels"].items()
        for name in PATHS
        for sample in result[name]["error_samples"]
    ]
    if errors:
        print()
        print("Error samples")
        for level, name, sample in errors:
            print(f"  [{level} customers, {name}] {sample}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.latency", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"{QUICK_TURNS} turns per level instead of "
        f"{FULL_TURNS} (at least 2 per customer), one start-up run",
    )
    parser.add_argument("--turns", type=int, help="turns per level and path (overrides --quick's figure)")
    parser.add_argument("--startup-runs", type=int, help="start-up measurements (default 2; 1 with --quick)")
    parser.add_argument("--output", type=Path, default=RESULTS_PATH, help="where the JSON goes")
    parser.add_argument(
        "--levels",
        type=lambda text: tuple(int(part) for part in text.split(",")),
        default=LEVELS,
        help="concurrent customers per level, comma-separated (default 1,10,50)",
    )
    parser.add_argument("--strict", action="store_true", help="exit with status 1 when a target fails")
    args = parser.parse_args(argv)

    turns = args.turns or (QUICK_TURNS if args.quick else FULL_TURNS)
    startup_runs = args.startup_runs if args.startup_runs is not None else (1 if args.quick else 2)
    began = time.monotonic()
    results: dict[str, Any] = {
        "machine": machine_info(),
        "config": {
            "quick": args.quick,
            "turns_per_level": turns,
            "levels": list(args.levels),
            "startup_runs": startup_runs,
            "orders": [number for number, _ in SHOWCASE_ORDERS],
        },
    }

    with tempfile.TemporaryDirectory(prefix="kefu-bench-") as tmp:
        workdir = Path(tmp)
        print("Starting the stack (supervisord, Procfile) ...", flush=True)
        stack_started = time.monotonic()
        load_dir = workdir / "load"
        load_dir.mkdir()
        # Every simulated customer comes from 127.0.0.1; real ones come from many addresses, so the
        # per-address limit (300 messages a minute) is off for the run, as in benchmarks/load.py.
        settings = stack_settings(load_dir).model_copy(update={"web_rate_per_address_per_minute": 0})
        with running_stack(load_dir, settings=settings) as stack:
            results["stack_ready_seconds"] = round(time.monotonic() - stack_started, 1)
            print(f"  healthy after {results['stack_ready_seconds']} s", flush=True)
            results["load"] = asyncio.run(benchmark_load(stack, args.levels, turns))
            results["memory"] = memory_report(stack.process.pid)
        try:
            if startup_runs:
                print("Measuring start-up through scripts/run.sh ...", flush=True)
                startup_dir = workdir / "startup"
                startup_dir.mkdir()
                results["startup"] = measure_startup(startup_dir, startup_runs)
        finally:
            # The processes' own logs, for whoever reads the figures (the temporary directory goes away).
            logs_dir = args.output.parent / "latency-logs"
            logs_dir.mkdir(parents=True, exist_ok=True)
            for log in workdir.rglob("*.log"):
                shutil.copy(log, logs_dir / f"{log.parent.name}-{log.name}")

    results["load_average_at_end"] = os.getloadavg()
    results["targets"] = evaluate_targets(results)
    results["wall_seconds"] = round(time.monotonic() - began, 1)
    print_report(results)
    save_results(args.output, results)
    print(f"\nResults: {args.output}   (benchmark wall time {results['wall_seconds']} s)")
    failed = [t for t in results["targets"] if not t["pass"]]
    return 1 if args.strict and failed else 0


if __name__ == "__main__":
    sys.exit(main())
