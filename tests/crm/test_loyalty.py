"""Equity and loyalty figures on a small base worked out by hand."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from decimal import Decimal

from sqlalchemy.orm import Session, sessionmaker

from bot.crm import loyalty, scoring
from bot.crm.models import Customer, LifecycleStage, Order, OrderStatus, ValueTier
from bot.crm.value import ValueConfig

TODAY = date(2026, 11, 20)


def _order(
    customer: Customer, number: str, day: date, total: str, status: OrderStatus = OrderStatus.DELIVERED
) -> Order:
    placed = datetime.combine(day, time(12, 0), tzinfo=UTC)
    return Order(number=number, customer=customer, status=status, placed_at=placed, total=Decimal(total))


def _seed(session: Session) -> None:
    # Ann: first bought in January 2026, again in February and November -> repeat buyer, month 1 kept.
    ann = Customer(
        name="Ann",
        email="ann@example.com",
        value_tier=ValueTier.KEY,
        lifecycle_stage=LifecycleStage.GROWING,
        clv_to_date=Decimal("90"),
        clv_future=Decimal("200"),
    )
    # Bob: one purchase in January 2026 -> not kept; a returned order does not count.
    bob = Customer(
        name="Bob",
        email="bob@example.com",
        value_tier=ValueTier.REGULAR,
        lifecycle_stage=LifecycleStage.NEW,
        clv_to_date=Decimal("30"),
        clv_future=Decimal("50"),
    )
    # Cy: bought in 2024 only (the year before last) -> churned.
    cy = Customer(
        name="Cy",
        email="cy@example.com",
        value_tier=ValueTier.REGULAR,
        lifecycle_stage=LifecycleStage.CHURNED,
        clv_to_date=Decimal("60"),
        clv_future=Decimal("0"),
    )
    session.add_all([ann, bob, cy, Customer(name="Dee", email="dee@example.com")])
    session.add_all([
        _order(ann, "1", date(2026, 1, 10), "100.00"),
        _order(ann, "2", date(2026, 2, 3), "100.00"),
        _order(ann, "3", date(2026, 11, 1), "100.00"),
        _order(bob, "4", date(2026, 1, 20), "100.00"),
        _order(bob, "5", date(2026, 2, 20), "500.00", OrderStatus.RETURNED),
        _order(cy, "6", date(2025, 3, 1), "200.00"),
    ])  # fmt: skip


def test_equity_and_loyalty_by_hand(db_sessionmaker: sessionmaker[Session]) -> None:
    with db_sessionmaker.begin() as session:
        _seed(session)
    with db_sessionmaker() as session:
        charts = {chart.id: chart for chart in loyalty.charts(session, TODAY)}
    tiers = {row[0]: row for row in charts["equity_tiers"].rows}
    assert tiers["key"] == ["key", 1, 90.0, 200.0] and tiers["regular"] == ["regular", 3, 90.0, 50.0]
    assert charts["equity_tiers"].headline == {"equity_eur": 250.0, "value_to_date_eur": 180.0}
    cohorts = {row[0]: row for row in charts["equity_cohorts"].rows}
    assert cohorts["2026-01"][:2] == ["2026-01", 2] and cohorts["2025-03"][1] == 1

    retention = {row[0]: row for row in charts["cohort_retention"].rows}
    # January 2026: Ann bought in February (month 1), Bob's February order was returned: 1 of 2.
    # Month 12 (January 2027) has not ended yet: no figure rather than 0.
    assert retention["2026-01"] == ["2026-01", 2, 50.0, 0.0, 0.0, None]
    assert retention["2025-03"] == ["2025-03", 1, 0.0, 0.0, 0.0, 0.0]

    figures = charts["loyalty"].headline
    # Buyers: Ann (3 purchases), Bob (1), Cy (1): one repeat buyer of three.
    assert figures["repeat_purchase_rate"] == 33.3
    # Bought 2024-11-20..2025-11-19: Cy only, who did not buy since: churn 100%.
    assert figures["churn_rate"] == 100.0
    # Last 365 days: Ann 300, Bob 100 -> the top customer (10% and 20% of two round to one) has 75%.
    assert figures["top_10_percent_revenue_share"] == 75.0 and figures["top_20_percent_revenue_share"] == 75.0


def test_equity_trend_has_one_point_per_rescoring_day(db_sessionmaker: sessionmaker[Session]) -> None:
    with db_sessionmaker.begin() as session:
        _seed(session)
    for day in (date(2026, 11, 18), date(2026, 11, 19), date(2026, 11, 19)):  # twice on the 19th
        with db_sessionmaker.begin() as session:
            scoring.rescore_all(session, day, value=ValueConfig(model="retention"))
    with db_sessionmaker() as session:
        trend = loyalty.charts(session, TODAY, only="equity_trend")[0]
    assert [row[0] for row in trend.rows] == ["2026-11-18", "2026-11-19"]
    # Value to date is the margin (0.3) on every purchase: Ann 300, Bob 100, Cy 200 -> 180.
    assert [row[2] for row in trend.rows] == [180.0, 180.0]
    assert trend.headline["points"] == 2
