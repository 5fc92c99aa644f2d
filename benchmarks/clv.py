"""Which lifetime-value model predicts better: fit on a calibration period, predict the holdout period.

`make bench-clv` runs it; by hand: `.venv/bin/python -m benchmarks.clv`. Two order histories:

- **synthetic**: --customers (20,000) over three years from benchmarks/purchase_history.py's stated
  process; calibration the first two years, holdout the third;
- **demo shop**: the 240 customers and two years of orders of bot/demo/seed.py (seeded into a
  temporary SQLite file and read back); calibration the first year, holdout the second. The
  retention model needs a year before the calibration year to estimate retention, which the demo
  shop does not have, so it is not scored there.

Scored are the customers who bought in the calibration period. For each model: holdout spend per
customer, its mean absolute error and root mean squared error, Spearman's rank correlation with the
actual spend (who is worth most, the question the win-back list and priority ask), predicted total
over actual total, holdout purchases' MAE where the model predicts purchases, and fit time. The
baselines: "the same spend as in the last calibration year" and "the same spend per day as over
the customer's calibration days". Results: benchmarks/results/clv.json.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import stats
from sqlalchemy import select

from benchmarks.latency import machine_info
from benchmarks.purchase_history import Orders, generate, history, holdout
from benchmarks.results_file import save_results
from bot.crm.db import make_engine, make_sessionmaker
from bot.crm.migrate import upgrade_database
from bot.crm.models import Order
from bot.crm.scoring import NOT_A_PURCHASE
from bot.crm.value import BgNbd, GammaGamma, History, bgnbd_inputs, segment_retention
from bot.demo.seed import HISTORY_DAYS, seed_demo_data
from bot.settings import PROJECT_ROOT, Settings

RESULTS_PATH = PROJECT_ROOT / "benchmarks" / "results" / "clv.json"
DEMO_TODAY = date(2026, 11, 20)
Array = NDArray[np.float64]
Prediction = tuple[Array, Array | None]  # (spend, purchases or None) per customer


def _naive_last_year(h: History, length: int) -> Prediction:
    return h.spend_365 * length / 365, None


def _naive_rate(h: History, length: int) -> Prediction:
    observed = np.maximum(h.first_days_ago + 1, 30)
    rate = h.purchases / observed
    return h.spend / observed * length, rate * length


def _retention(h: History, length: int) -> Prediction:
    rates = segment_retention(h.tier_prior, h.bought_prior_365, h.bought_365, 3)
    return h.spend_365 * rates[h.tier_now] * length / 365, None


def _bgnbd(h: History, length: int) -> Prediction:
    x, t_x, T, mean = bgnbd_inputs(h)
    purchases = BgNbd.fit(x, t_x, T)
    spend = GammaGamma.fit(x, mean)
    expected = purchases.expected_purchases(length / 7, x, t_x, T)
    return expected * spend.expected_spend(x, mean), expected


MODELS: dict[str, Callable[[History, int], Prediction]] = {
    "naive: last calibration year again": _naive_last_year,
    "naive: calibration spend per day": _naive_rate,
    "retention formula (r per tier)": _retention,
    "BG/NBD + Gamma-Gamma": _bgnbd,
}


def _subset(h: History, keep: NDArray[np.bool_]) -> History:
    return History(**{name: getattr(h, name)[keep] for name in History.__dataclass_fields__})


def evaluate(orders: Orders, cutoff: int, length: int, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """Every model fitted on the days before `cutoff`, judged on the `length` days after it."""
    calibration = history(orders, cutoff)
    buyers = calibration.purchases > 0
    h = _subset(calibration, buyers)
    actual_purchases, actual_spend = (values[buyers] for values in holdout(orders, cutoff, length))
    results: dict[str, Any] = {
        "customers_scored": int(buyers.sum()),
        "calibration_purchases": int(h.purchases.sum()),
        "holdout_purchases": int(actual_purchases.sum()),
        "holdout_spend_eur": round(float(actual_spend.sum()), 2),
        "buyers_in_holdout": round(float((actual_purchases > 0).mean()), 3),
        "models": {},
    }
    for name, model in MODELS.items():
        if name in skip:
            results["models"][name] = {"skipped": "no year before the calibration year to estimate retention"}
            continue
        started = time.perf_counter()
        spend, purchases = model(h, length)
        seconds = time.perf_counter() - started
        error = spend - actual_spend
        results["models"][name] = {
            "spend_mae_eur": round(float(np.mean(np.abs(error))), 2),
            "spend_rmse_eur": round(float(np.sqrt(np.mean(error**2))), 2),
            "spend_spearman": round(float(stats.spearmanr(spend, actual_spend).statistic), 3),
            "predicted_over_actual_total": round(float(spend.sum() / max(actual_spend.sum(), 1e-9)), 3),
            "purchases_mae": None
            if purchases is None
            else round(float(np.mean(np.abs(purchases - actual_purchases))), 3),
            "fit_seconds": round(seconds, 3),
        }
    return results


def demo_orders() -> Orders:
    """The demo shop's orders as arrays, day 0 = HISTORY_DAYS before the demo's today."""
    with tempfile.TemporaryDirectory(prefix="kefu-bench-clv-") as directory:
        settings = Settings(database_url=f"sqlite:///{Path(directory) / 'kefu.db'}", _env_file=None)  # type: ignore[call-arg]
        upgrade_database(settings)
        engine = make_engine(settings)
        try:
            with make_sessionmaker(engine).begin() as session:
                seed_demo_data(session, DEMO_TODAY)
                rows = session.execute(
                    select(Order.customer_id, Order.placed_at, Order.total, Order.status)
                ).all()
        finally:
            engine.dispose()
    start = DEMO_TODAY - timedelta(days=HISTORY_DAYS)
    ids = sorted({row[0] for row in rows})
    index = {customer_id: i for i, customer_id in enumerate(ids)}
    return Orders(
        customer=np.array([index[row[0]] for row in rows], dtype=np.int64),
        day=np.array([(row[1].date() - start).days for row in rows], dtype=np.int64),
        amount=np.array([float(row[2]) for row in rows]),
        purchase=np.array([row[3] not in NOT_A_PURCHASE for row in rows]),
        customers=len(ids),
        days=HISTORY_DAYS,
    )


def _print(title: str, result: dict[str, Any]) -> None:
    print(
        f"\n{title}: {result['customers_scored']} customers, {result['calibration_purchases']} purchases in "
        f"calibration, {result['holdout_purchases']} in holdout (EUR {result['holdout_spend_eur']:,.0f})"
    )
    print(f"  {'model':38} {'MAE':>8} {'RMSE':>8} {'rho':>6} {'total':>6} {'purch.MAE':>9} {'fit s':>7}")
    for name, row in result["models"].items():
        if "skipped" in row:
            print(f"  {name:38} skipped: {row['skipped']}")
            continue
        purchases = "-" if row["purchases_mae"] is None else f"{row['purchases_mae']:.3f}"
        print(
            f"  {name:38} {row['spend_mae_eur']:8.2f} {row['spend_rmse_eur']:8.2f} "
            f"{row['spend_spearman']:6.3f} {row['predicted_over_actual_total']:6.2f} {purchases:>9} "
            f"{row['fit_seconds']:7.3f}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=20_000, help="size of the synthetic base")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--output", type=Path, default=RESULTS_PATH)
    args = parser.parse_args(argv)

    synthetic = generate(args.customers, 3 * 365, seed=args.seed)
    results: dict[str, Any] = {
        "machine": machine_info(),
        "synthetic": {
            "customers": args.customers,
            "orders": len(synthetic.day),
            "seed": args.seed,
            "calibration_days": 730,
            "holdout_days": 365,
            **evaluate(synthetic, 730, 365),
        },
        "demo_shop": {
            "calibration_days": 365,
            "holdout_days": 365,
            **evaluate(demo_orders(), 365, 365, skip=("retention formula (r per tier)",)),
        },
    }
    _print(f"Synthetic base ({args.customers:,} customers, seed {args.seed})", results["synthetic"])
    _print("Demo shop", results["demo_shop"])
    print(f"\nsaved to {save_results(args.output, results)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
