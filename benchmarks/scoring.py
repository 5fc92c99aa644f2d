"""How long rescoring the whole base takes (RFM, stage, risk, lifetime value), on SQLite and PostgreSQL.

`make bench-scoring` runs it; by hand: `.venv/bin/python -m benchmarks.scoring`. Each database is new
and thrown away afterwards: a SQLite file in a temporary directory, and (when a server answers at
--postgres, default KEFU_TEST_POSTGRES_URL as in tests/support/services.py) a PostgreSQL database
created for the run and dropped after it. Both are migrated, then filled with --customers (100,000)
customers and about --orders (1,000,000) orders over three years from benchmarks/purchase_history.py,
plus complaints (one customer in ten, the last 120 days) and answered surveys (one in five, the last
200 days), so every part of the rule has work. Then `scoring.rescore_all` runs --runs (3) times,
each in its own transaction as the nightly job does, and each run is timed to its commit. The target
is 60 s. Results: benchmarks/results/scoring.json.
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import create_engine, insert, pool, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from benchmarks.latency import machine_info
from benchmarks.purchase_history import Orders, generate
from benchmarks.results_file import save_results
from bot.crm import scoring
from bot.crm.db import make_engine, make_sessionmaker, normalise_database_url, redact_database_url
from bot.crm.migrate import upgrade_database
from bot.crm.models import (
    CsatSurvey,
    Customer,
    Order,
    OrderStatus,
    Severity,
    SurveyStatus,
    Ticket,
    TicketPriority,
    TicketStatus,
)
from bot.crm.value import ValueConfig
from bot.settings import PROJECT_ROOT, Settings
from tests.support.services import POSTGRES_ADMIN_URL

RESULTS_PATH = PROJECT_ROOT / "benchmarks" / "results" / "scoring.json"
TARGET_SECONDS = 60.0
TODAY = date(2026, 11, 20)
HISTORY_DAYS = 3 * 365
CHUNK = 20_000


def _settings(url: str) -> Settings:
    return Settings(database_url=url, _env_file=None)  # type: ignore[call-arg]


def base(customers: int, orders: int, seed: int) -> Orders:
    """A synthetic base with about `orders` orders: the purchase rate is scaled from a first draw."""
    first = generate(customers, HISTORY_DAYS, seed=seed, rate_per_month=0.5)
    rate = 0.5 * max(orders - customers, 1) / max(len(first.day) - customers, 1)
    return generate(customers, HISTORY_DAYS, seed=seed, rate_per_month=rate)


def _fill(settings: Settings, data: Orders, seed: int) -> dict[str, int]:
    """Insert the customers, orders, complaints and surveys with plain multi-row INSERTs."""
    rng = np.random.default_rng(seed)
    start = datetime.combine(TODAY - timedelta(days=HISTORY_DAYS), datetime.min.time(), tzinfo=UTC)
    joined = start - timedelta(days=1)
    engine = make_engine(settings)
    try:
        with engine.begin() as connection:
            for first in range(0, data.customers, CHUNK):
                connection.execute(
                    insert(Customer),
                    [
                        {
                            "id": i + 1,
                            "name": f"Customer {i + 1}",
                            "email": f"c{i + 1}@example.com",
                            "created_at": joined,
                        }
                        for i in range(first, min(first + CHUNK, data.customers))
                    ],
                )
            minutes = rng.integers(6 * 60, 23 * 60, len(data.day))
            failed = rng.choice([OrderStatus.CANCELLED, OrderStatus.RETURNED], len(data.day))
            for first in range(0, len(data.day), CHUNK):
                connection.execute(
                    insert(Order),
                    [
                        {
                            "id": j + 1,
                            "number": str(200_000 + j),
                            "customer_id": int(data.customer[j]) + 1,
                            "status": OrderStatus.DELIVERED if data.purchase[j] else failed[j],
                            "placed_at": start + timedelta(days=int(data.day[j]), minutes=int(minutes[j])),
                            "total": f"{data.amount[j]:.2f}",
                        }
                        for j in range(first, min(first + CHUNK, len(data.day)))
                    ],
                )
            now = datetime.combine(TODAY, datetime.min.time(), tzinfo=UTC)
            complainers = rng.choice(data.customers, data.customers // 10, replace=False)
            severities = rng.choice(list(Severity), len(complainers), p=[0.5, 0.35, 0.15])
            connection.execute(
                insert(Ticket),
                [
                    {
                        "reference": f"B{k:09d}",
                        "customer_id": int(c) + 1,
                        "kind": "complaint",
                        "category": "delivery_problem",
                        "subject": "Parcel late",
                        "severity": severities[k],
                        "priority": TicketPriority.NORMAL,
                        "status": TicketStatus.RESOLVED,
                        "created_at": now - timedelta(days=int(rng.integers(1, 120))),
                    }
                    for k, c in enumerate(complainers)
                ],
            )
            answering = rng.choice(data.customers, data.customers // 5, replace=False)
            scores = rng.choice([1, 2, 3, 4, 5], len(answering), p=[0.08, 0.07, 0.15, 0.3, 0.4])
            connection.execute(
                insert(CsatSurvey),
                [
                    {
                        "customer_id": int(c) + 1,
                        "trigger": "ticket_resolved",
                        "status": SurveyStatus.ANSWERED,
                        "score": int(scores[k]),
                        "answered_at": now - timedelta(days=int(rng.integers(1, 200))),
                    }
                    for k, c in enumerate(answering)
                ],
            )
    finally:
        engine.dispose()
    return {
        "customers": data.customers,
        "orders": len(data.day),
        "purchases": int(data.purchase.sum()),
        "complaints": len(complainers),
        "answered_surveys": len(answering),
    }


def measure(settings: Settings, data: Orders, runs: int, seed: int) -> dict[str, Any]:
    started = time.perf_counter()
    upgrade_database(settings)
    rows = _fill(settings, data, seed)
    fill_seconds = time.perf_counter() - started
    engine = make_engine(settings)
    factory = make_sessionmaker(engine)
    samples: list[float] = []
    summary = None
    try:
        for _ in range(runs):
            started = time.perf_counter()
            with factory.begin() as session:
                summary = scoring.rescore_all(session, TODAY, value=ValueConfig())
            samples.append(time.perf_counter() - started)
    finally:
        engine.dispose()
    assert summary is not None
    return {
        "dialect": make_url(settings.database_url).get_backend_name(),
        "rows": rows,
        "setup_seconds": round(fill_seconds, 1),
        "rescore_seconds": [round(s, 2) for s in samples],
        "rescore_median_seconds": round(statistics.median(samples), 2),
        "within_target": max(samples) <= TARGET_SECONDS,
        "summary": summary.describe(),
    }


@contextmanager
def _postgres_database(admin_url: str) -> Iterator[str | dict[str, Any]]:
    url = make_url(normalise_database_url(admin_url))
    admin = create_engine(url, isolation_level="AUTOCOMMIT", poolclass=pool.NullPool)
    name = f"kefu_bench_scoring_{secrets.token_hex(6)}"
    try:
        try:
            with admin.connect() as connection:
                connection.execute(text(f'CREATE DATABASE "{name}"'))
        except OperationalError as error:
            reason = str(error.orig or error).strip().splitlines()[0]
            where = redact_database_url(url.render_as_string(hide_password=False))
            yield {
                "dialect": "postgresql",
                "database": where,
                "skipped": f"cannot create a database: {reason}",
            }
            return
        try:
            yield url.set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def _report(result: dict[str, Any]) -> None:
    if "skipped" in result:
        print(f"{result['dialect']}: skipped ({result['skipped']})")
        return
    rows = result["rows"]
    print(
        f"{result['dialect']}: {rows['customers']:,} customers, {rows['orders']:,} orders -> rescoring "
        f"{result['rescore_median_seconds']} s median of {result['rescore_seconds']} "
        f"(target {TARGET_SECONDS:.0f} s; setup {result['setup_seconds']} s)\n  {result['summary']}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--postgres", default=POSTGRES_ADMIN_URL, help='admin URL, or "none" to skip')
    parser.add_argument("--output", type=Path, default=RESULTS_PATH)
    args = parser.parse_args(argv)

    data = base(args.customers, args.orders, args.seed)
    results: dict[str, Any] = {"machine": machine_info(), "target_seconds": TARGET_SECONDS, "databases": []}
    with tempfile.TemporaryDirectory(prefix="kefu-bench-scoring-") as directory:
        result = measure(_settings(f"sqlite:///{Path(directory) / 'kefu.db'}"), data, args.runs, args.seed)
    results["databases"].append(result)
    _report(result)
    if args.postgres != "none":
        with _postgres_database(args.postgres) as url:
            result = url if isinstance(url, dict) else measure(_settings(url), data, args.runs, args.seed)
        results["databases"].append(result)
        _report(result)
    print(f"saved to {save_results(args.output, results)}")
    return 0 if all(r.get("within_target", True) for r in results["databases"]) else 1


if __name__ == "__main__":
    sys.exit(main())
