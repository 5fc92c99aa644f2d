"""How long the support lead's dashboard takes over a year of service history, on SQLite and PostgreSQL.

`bash scripts/bench.sh dashboard` runs it; by hand: `.venv/bin/python -m benchmarks.dashboard`. Each
database is new and thrown away afterwards: a SQLite file in a temporary directory, and (when a
server answers at --postgres, default KEFU_TEST_POSTGRES_URL as in tests/support/services.py) a PostgreSQL
database created for the run and dropped after it. Both are migrated with bot.crm.migrate, seeded
with the demo data and --days (365) days of history (bot/demo/history.py), then
metrics.dashboard is timed over the whole history and over its last 30 days: one warm-up run, then
--runs (20) timed runs, each in a new session as a web request would have. Results go to
benchmarks/results/dashboard.json.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, func, pool, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from benchmarks.latency import machine_info
from benchmarks.results_file import save_results
from bot.crm import metrics
from bot.crm.db import make_engine, make_sessionmaker, normalise_database_url, redact_database_url
from bot.crm.migrate import upgrade_database
from bot.crm.models import Conversation, CsatSurvey, Customer, Handoff, Message, Ticket, TicketEvent
from bot.demo.history import seed_history
from bot.demo.seed import seed_demo_data
from bot.settings import PROJECT_ROOT, Settings
from tests.support.services import POSTGRES_ADMIN_URL  # the server the tests and the load benchmark use

RESULTS_PATH = PROJECT_ROOT / "benchmarks" / "results" / "dashboard.json"
HISTORY_DAYS = 365
RUNS = 20
TARGET_P95_MS = 500.0  # the whole dashboard over a year, SQLite, two cores
# The demo data is generated for this day; the history covers the days before it.
TODAY = date(2026, 11, 20)
_COUNTED = (Conversation, Message, Handoff, Ticket, TicketEvent, CsatSurvey, Customer)


def _settings(url: str) -> Settings:
    return Settings(database_url=url, _env_file=None)  # type: ignore[call-arg]


@contextmanager
def sqlite_database() -> Iterator[Settings]:
    with tempfile.TemporaryDirectory(prefix="kefu-bench-dashboard-") as directory:
        yield _settings(f"sqlite:///{Path(directory) / 'kefu.db'}")


def measure_postgres(admin_url: str, days: int, runs: int) -> dict[str, Any]:
    """`measure` on a new database on the server at `admin_url`, dropped afterwards; a "skipped"
    entry saying why when the server cannot be reached or refuses to create a database."""
    url = make_url(normalise_database_url(admin_url))
    admin = create_engine(url, isolation_level="AUTOCOMMIT", poolclass=pool.NullPool)
    name = f"kefu_bench_{secrets.token_hex(6)}"
    try:
        try:
            with admin.connect() as connection:
                connection.execute(text(f'CREATE DATABASE "{name}"'))
        except OperationalError as error:
            reason = str(error.orig or error).strip().splitlines()[0]
            where = redact_database_url(url.render_as_string(hide_password=False))
            return {
                "dialect": "postgresql",
                "database": where,
                "skipped": f"cannot create a database: {reason}",
            }
        try:
            return measure(
                _settings(url.set(database=name).render_as_string(hide_password=False)), days, runs
            )
        finally:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def _timings(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": round(statistics.median(ordered), 1),
        # Nearest rank, as the dashboard's own p90.
        "p95_ms": round(ordered[max(0, -(-95 * len(ordered) // 100) - 1)], 1),
        "min_ms": round(ordered[0], 1),
        "max_ms": round(ordered[-1], 1),
    }


def measure(settings: Settings, days: int, runs: int) -> dict[str, Any]:
    """Migrate, seed and time the dashboard on the database in `settings`."""
    started = time.perf_counter()
    upgrade_database(settings)
    migrate_seconds = time.perf_counter() - started
    engine = make_engine(settings)
    factory = make_sessionmaker(engine)
    now = datetime.combine(TODAY, dtime(0), tzinfo=UTC)
    try:
        started = time.perf_counter()
        with factory.begin() as session:
            seed_demo_data(session, TODAY)
        demo_seconds = time.perf_counter() - started
        started = time.perf_counter()
        with factory.begin() as session:
            summary = seed_history(session, days=days, now=now)
        history_seconds = time.perf_counter() - started
        with factory() as session:
            rows = {
                model.__tablename__: session.scalar(select(func.count()).select_from(model))
                for model in _COUNTED
            }
        last = TODAY - timedelta(days=1)
        ranges = {
            "full_history": (TODAY - timedelta(days=days), last),
            "last_30_days": (last - timedelta(days=29), last),
        }
        timings: dict[str, Any] = {}
        for label, (start, end) in ranges.items():
            samples = []
            for run in range(runs + 1):
                with factory() as session:
                    began = time.perf_counter()
                    board = metrics.dashboard(session, start, end, now)
                    elapsed = (time.perf_counter() - began) * 1000
                if run:  # the first run warms caches and the connection pool
                    samples.append(elapsed)
            containment = board.chart("containment").headline
            timings[label] = {
                "from": start.isoformat(),
                "to": end.isoformat(),
                "days": (end - start).days + 1,
                "conversations": containment["conversations"],
                **_timings(samples),
                "resolution": resolution_figures(board),
            }
        return {
            "database": redact_database_url(settings.database_url),
            "dialect": engine.dialect.name,
            "seconds": {
                "migrate": round(migrate_seconds, 1),
                "demo_data": round(demo_seconds, 1),
                "history": round(history_seconds, 1),
            },
            "history": summary.describe(),
            "rows": rows,
            "dashboard": timings,
        }
    finally:
        engine.dispose()


def resolution_figures(board: metrics.Dashboard) -> dict[str, Any]:
    """The resolution figures next to the old containment, on the same conversations: the old one
    counted every conversation that was not handed to a person as resolved by the bot."""
    volume = board.chart("volume").headline
    total, handed = volume["conversations"], volume["handed_to_person"]
    chart = board.chart("containment")
    return {
        "old_containment_percent": metrics.percent(total - handed, total),
        "containment_percent": chart.headline["containment_percent"],
        "confirmed_percent": chart.headline["confirmed_percent"],
        "escalation_rate_percent": chart.headline["escalation_rate_percent"],
        "conversations": {row[0]: row[1] for row in chart.rows} | {"pending": chart.headline["pending"]},
    }


def print_report(results: dict[str, Any]) -> None:
    machine, config = results["machine"], results["config"]
    print()
    print(
        f"Kefu dashboard  {machine['timestamp']}  {machine['nproc']} CPUs ({machine['cpu_model']}), "
        f"load {machine['load_average_at_start'][0]:.1f}; {config['history_days']} days of history, "
        f"{config['runs']} timed runs after one warm-up"
    )
    for entry in results["databases"]:
        print()
        print(f"{entry['dialect']}: {entry['database']}")
        if "skipped" in entry:
            print(f"  NOT MEASURED: {entry['skipped']}")
            continue
        seconds = entry["seconds"]
        print(
            f"  seeded in {seconds['demo_data']} s (demo data) + {seconds['history']} s (history); "
            f"migrated in {seconds['migrate']} s"
        )
        print("  rows: " + ", ".join(f"{table} {count:,}" for table, count in entry["rows"].items()))
        for label, timing in entry["dashboard"].items():
            print(
                f"  {label:<13} {timing['from']}..{timing['to']} ({timing['days']} days, "
                f"{timing['conversations']:,} conversations): p50 {timing['p50_ms']} ms, "
                f"p95 {timing['p95_ms']} ms (min {timing['min_ms']}, max {timing['max_ms']})"
            )
            figures = timing["resolution"]
            counts = ", ".join(f"{name} {n:,}" for name, n in figures["conversations"].items())
            print(
                f"  {'':<13} containment {figures['containment_percent']}% (old definition "
                f"{figures['old_containment_percent']}%): {counts}"
            )
    print()
    print("Targets")
    for target in results["targets"]:
        verdict = "PASS" if target["pass"] else "FAIL"
        print(f"  {target['name']:<48}  {target['target']:>9}  {target['value']:>10}  {verdict}")


def evaluate_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    sqlite = next((e for e in results["databases"] if e["dialect"] == "sqlite" and "dashboard" in e), None)
    value = sqlite["dashboard"]["full_history"]["p95_ms"] if sqlite else None
    return [
        {
            "name": "p95 whole dashboard over the history, SQLite",
            "target": f"<= {TARGET_P95_MS:.0f} ms",
            "value": f"{value} ms" if value is not None else "n/a",
            "pass": value is not None and value <= TARGET_P95_MS,
        }
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.dashboard", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--days", type=int, default=HISTORY_DAYS, help=f"days of history (default {HISTORY_DAYS})"
    )
    parser.add_argument("--runs", type=int, default=RUNS, help=f"timed runs per range (default {RUNS})")
    parser.add_argument(
        "--postgres", default=POSTGRES_ADMIN_URL, help="admin URL of a PostgreSQL server; 'none' to skip it"
    )
    parser.add_argument("--output", type=Path, default=RESULTS_PATH, help="where the JSON goes")
    parser.add_argument("--strict", action="store_true", help="exit with status 1 when a target is missed")
    args = parser.parse_args(argv)

    results: dict[str, Any] = {
        "machine": machine_info(),
        "config": {"history_days": args.days, "runs": args.runs, "today": TODAY.isoformat()},
        "databases": [],
    }
    print(f"SQLite: seeding {args.days} days of history and timing the dashboard ...", flush=True)
    with sqlite_database() as settings:
        results["databases"].append(measure(settings, args.days, args.runs))
    if args.postgres.lower() != "none":
        where = redact_database_url(normalise_database_url(args.postgres))
        print(f"PostgreSQL at {where}: the same ...", flush=True)
        results["databases"].append(measure_postgres(args.postgres, args.days, args.runs))
    results["targets"] = evaluate_targets(results)
    results["load_average_at_end"] = os.getloadavg()
    save_results(args.output, results)
    print_report(results)
    print(f"\nResults: {args.output}")
    failed = [target for target in results["targets"] if not target["pass"]]
    return 1 if args.strict and failed else 0


if __name__ == "__main__":
    sys.exit(main())
