"""Customer equity and loyalty for the support lead: what the base is worth and how well it is kept.

CRM practice says a business should manage customer equity, the sum of its customers' lifetime
values, and watch loyalty as repeat purchase and retention over time. Each figure is a `Chart` (as
on the service dashboard, so it renders and exports the same way), computed from the stored
lifetime values (bot/crm/value.py, refreshed by rescoring) and from the orders, as they stand on
`today`. A purchase is an order neither cancelled nor returned (bot/crm/scoring.py).

- **Equity** by value tier, life-cycle stage and acquisition cohort (the month of the first
  purchase): customers, value to date and future value (the equity), EUR; and its trend, one point
  per day the whole base was rescored (`equity_snapshots`, written by `scoring.rescore_all`).
- **Cohort retention**: customers whose first purchase fell in a month form a cohort; a cohort's
  month-k retention is the share of it that bought in the k-th calendar month after that month.
  Only months that have ended by `today` count, so young cohorts show no figure rather than 0.
- **Loyalty figures**: repeat-purchase rate = buyers with two or more purchases ÷ all buyers; churn
  rate = customers who bought in the 365 days before the last 365 but not in the last 365 ÷ those
  who bought in the earlier year; top 10% / 20% share = the share of the last 365 days' revenue that
  came from the 10% / 20% of that year's buyers who spent most.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.crm.metrics import Chart, percent
from bot.crm.models import Customer, EquitySnapshot, LifecycleStage, Order, ValueTier
from bot.crm.scoring import NOT_A_PURCHASE

CHART_IDS: tuple[str, ...] = (
    "equity_tiers",
    "equity_stages",
    "equity_cohorts",
    "equity_trend",
    "cohort_retention",
    "retention_curve",
    "loyalty",
)
RETENTION_MONTHS = (1, 3, 6, 12)
CURVE_MONTHS = 12


@dataclass(frozen=True)
class _Buyer:
    tier: ValueTier
    stage: LifecycleStage
    to_date: Decimal
    future: Decimal
    purchases: list[tuple[date, Decimal]]


def _month(day: date) -> tuple[int, int]:
    return day.year, day.month


def _months_between(first: tuple[int, int], later: tuple[int, int]) -> int:
    return (later[0] - first[0]) * 12 + later[1] - first[1]


def _label(month: tuple[int, int]) -> str:
    return f"{month[0]:04d}-{month[1]:02d}"


class _Base:
    """The customers and their purchases, read once for all the charts."""

    def __init__(self, session: Session, today: date) -> None:
        self.today = today
        purchases: dict[int, list[tuple[date, Decimal]]] = defaultdict(list)
        for cid, placed, total in session.execute(
            select(Order.customer_id, Order.placed_at, Order.total).where(Order.status.not_in(NOT_A_PURCHASE))
        ):
            purchases[cid].append((placed.date(), total))
        self.customers = [
            _Buyer(tier, stage, to_date or Decimal(0), future or Decimal(0), sorted(purchases.get(cid, [])))
            for cid, tier, stage, to_date, future in session.execute(
                select(
                    Customer.id,
                    Customer.value_tier,
                    Customer.lifecycle_stage,
                    Customer.clv_to_date,
                    Customer.clv_future,
                )
            )
        ]
        self.snapshots = list(
            session.scalars(
                select(EquitySnapshot)
                .where(EquitySnapshot.taken_on <= today)
                .order_by(EquitySnapshot.taken_on)
            )
        )

    def cohorts(self) -> dict[tuple[int, int], list[_Buyer]]:
        groups: dict[tuple[int, int], list[_Buyer]] = defaultdict(list)
        for customer in self.customers:
            if customer.purchases:
                groups[_month(customer.purchases[0][0])].append(customer)
        return dict(sorted(groups.items()))

    def months_ended(self, cohort: tuple[int, int]) -> int:
        """Whole calendar months after the cohort's month that have ended by today."""
        return _months_between(cohort, _month(self.today)) - 1


def _equity_rows(groups: dict[str, list[_Buyer]]) -> list[list[Any]]:
    return [
        [
            name,
            len(members),
            float(sum((c.to_date for c in members), Decimal(0))),
            float(sum((c.future for c in members), Decimal(0))),
        ]
        for name, members in groups.items()
    ]


def _equity_chart(chart_id: str, title: str, label: str, groups: dict[str, list[_Buyer]]) -> Chart:
    rows = _equity_rows(groups)
    return Chart(
        chart_id,
        title,
        "bar",
        "EUR",
        [label, "customer_count", "value_to_date_eur", "equity_eur"],
        [[r[0], r[1], round(r[2], 2), round(r[3], 2)] for r in rows],
        {
            "equity_eur": round(sum(r[3] for r in rows), 2),
            "value_to_date_eur": round(sum(r[2] for r in rows), 2),
        },
    )


def _equity_tiers(base: _Base) -> Chart:
    groups = {tier.value: [c for c in base.customers if c.tier is tier] for tier in ValueTier}
    return _equity_chart("equity_tiers", "Customer equity by value tier (now)", "tier", groups)


def _equity_stages(base: _Base) -> Chart:
    groups = {stage.value: [c for c in base.customers if c.stage is stage] for stage in LifecycleStage}
    return _equity_chart("equity_stages", "Customer equity by life-cycle stage (now)", "stage", groups)


def _equity_cohorts(base: _Base) -> Chart:
    groups = {_label(month): members for month, members in base.cohorts().items()}
    return _equity_chart("equity_cohorts", "Customer equity by acquisition month (now)", "cohort", groups)


def _equity_trend(base: _Base) -> Chart:
    rows: list[list[Any]] = [
        [r.taken_on.isoformat(), float(r.equity), float(r.value_to_date)] for r in base.snapshots
    ]
    return Chart(
        "equity_trend",
        "Customer equity over time (one point per nightly rescoring)",
        "line",
        "EUR",
        ["day", "equity_eur", "value_to_date_eur"],
        rows,
        {"points": len(rows), "change_eur": round(rows[-1][1] - rows[0][1], 2) if len(rows) > 1 else None},
    )


def _retained(base: _Base, cohort: tuple[int, int], members: list[_Buyer], k: int) -> float | None:
    if base.months_ended(cohort) < k:
        return None
    kept = sum(1 for c in members if any(_months_between(cohort, _month(day)) == k for day, _ in c.purchases))
    return percent(kept, len(members))


def _cohort_retention(base: _Base) -> Chart:
    rows: list[list[Any]] = []
    for cohort, members in base.cohorts().items():
        rows.append(
            [_label(cohort), len(members), *(_retained(base, cohort, members, k) for k in RETENTION_MONTHS)]
        )
    return Chart(
        "cohort_retention",
        "Retention by acquisition month: % of the cohort buying k months later",
        "bar",
        "%",
        ["cohort", "customer_count", *(f"month_{k}" for k in RETENTION_MONTHS)],
        rows,
        {"cohorts": len(rows)},
    )


def _retention_curve(base: _Base) -> Chart:
    """All cohorts together: of customers whose month k has ended, the share buying in it."""
    rows: list[list[Any]] = []
    cohorts = base.cohorts()
    for k in range(1, CURVE_MONTHS + 1):
        eligible = [
            (cohort, c)
            for cohort, members in cohorts.items()
            if base.months_ended(cohort) >= k
            for c in members
        ]
        kept = sum(
            1
            for cohort, c in eligible
            if any(_months_between(cohort, _month(d)) == k for d, _ in c.purchases)
        )
        rows.append([k, percent(kept, len(eligible))])
    return Chart(
        "retention_curve",
        "Retention curve: % of customers buying k months after their first purchase",
        "line",
        "%",
        ["months_after_first_purchase", "retained_percent"],
        rows,
        {"month_1": rows[0][1] if rows else None, "month_12": rows[-1][1] if rows else None},
    )


def loyalty_figures(base: _Base) -> dict[str, float | None]:
    today = base.today
    year_ago, two_years_ago = today - timedelta(days=365), today - timedelta(days=730)
    buyers = [c for c in base.customers if c.purchases]
    repeat = sum(1 for c in buyers if len(c.purchases) >= 2)
    earlier = [c for c in buyers if any(two_years_ago <= d < year_ago for d, _ in c.purchases)]
    lost = sum(1 for c in earlier if not any(d >= year_ago for d, _ in c.purchases))
    spend = sorted(
        (sum((t for d, t in c.purchases if d >= year_ago), Decimal(0)) for c in buyers), reverse=True
    )
    spend = [s for s in spend if s > 0]
    total = sum(spend, Decimal(0))

    def top(share: float) -> float | None:
        if not spend:
            return None
        count = max(1, round(len(spend) * share))
        return round(float(sum(spend[:count], Decimal(0)) / total * 100), 1)

    return {
        "repeat_purchase_rate": percent(repeat, len(buyers)),
        "churn_rate": percent(lost, len(earlier)),
        "top_10_percent_revenue_share": top(0.1),
        "top_20_percent_revenue_share": top(0.2),
    }


def _loyalty(base: _Base) -> Chart:
    figures = loyalty_figures(base)
    return Chart(
        "loyalty",
        "Loyalty: repeat purchase, churn and concentration of revenue (%)",
        "bar",
        "%",
        ["figure", "value"],
        [[name, value] for name, value in figures.items()],
        figures,
    )


_BUILDERS: dict[str, Callable[[_Base], Chart]] = {
    "equity_tiers": _equity_tiers,
    "equity_stages": _equity_stages,
    "equity_cohorts": _equity_cohorts,
    "equity_trend": _equity_trend,
    "cohort_retention": _cohort_retention,
    "retention_curve": _retention_curve,
    "loyalty": _loyalty,
}
assert tuple(_BUILDERS) == CHART_IDS


def charts(session: Session, today: date, only: str | None = None) -> list[Chart]:
    """Every equity and loyalty chart (or only the one named), as the base stands on `today`."""
    if only is not None and only not in _BUILDERS:
        raise KeyError(only)
    base = _Base(session, today)
    return [build(base) for chart_id, build in _BUILDERS.items() if only in (None, chart_id)]
