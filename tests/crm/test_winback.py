"""The win-back list: who is on it, in which order, and the reasons read from our own records."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from sqlalchemy.orm import Session, sessionmaker

from bot.crm import winback
from bot.crm.models import (
    CsatSurvey,
    Customer,
    LifecycleStage,
    Order,
    OrderStatus,
    Severity,
    SurveyStatus,
    Ticket,
    ValueTier,
)
from bot.crm.value import ValueConfig

TODAY = date(2026, 11, 20)
CONFIG = ValueConfig(margin=0.5, horizon_months=12, discount_rate=0.0, model="retention")


def _at(days_ago: int) -> datetime:
    return datetime.combine(TODAY - timedelta(days=days_ago), time(12), tzinfo=UTC)


def _customer(name: str, stage: LifecycleStage) -> Customer:
    return Customer(
        name=name, email=f"{name.lower()}@example.com", lifecycle_stage=stage, value_tier=ValueTier.KEY
    )


def test_ranked_by_value_if_won_back_with_reasons(db_sessionmaker: sessionmaker[Session]) -> None:
    with db_sessionmaker.begin() as session:
        big = _customer("Big", LifecycleStage.CHURNED)  # EUR 1,000 a year for two years, then silence
        small = _customer("Small", LifecycleStage.DECLINING)  # EUR 100 in two purchases, slowing down
        loyal = _customer("Loyal", LifecycleStage.MATURE)  # not on the list
        session.add_all([big, small, loyal])
        session.flush()
        orders = [
            (big, 1065, "1000.00"), (big, 900, "500.00"), (big, 700, "500.00"),
            (small, 300, "60.00"), (small, 200, "40.00"), (loyal, 400, "50.00"), (loyal, 20, "50.00"),
        ]  # fmt: skip
        for number, (who, days_ago, total) in enumerate(orders):
            session.add(Order(number=f"9{number}", customer=who, status=OrderStatus.DELIVERED,
                              placed_at=_at(days_ago), total=Decimal(total)))  # fmt: skip
        session.add(Ticket(reference="T1", customer=big, kind="complaint", category="product_defect",
                           subject="Broken", severity=Severity.HIGH, created_at=_at(760)))  # fmt: skip
        session.add(CsatSurvey(customer_id=small.id, trigger="ticket_resolved", status=SurveyStatus.ANSWERED,
                               score=1, answered_at=_at(190)))  # fmt: skip
    with db_sessionmaker.begin() as session:
        found = winback.candidates(session, TODAY, CONFIG)
    assert [c.name for c in found] == ["Big", "Small"]
    # Base retention: of those who bought 365-730 days ago (Big, Loyal), one bought since (Loyal): 0.5.
    # (Stages are the rescoring's: Big churned, Small declining, Loyal growing.)
    # Big: EUR 2,000 over 365 days of activity = 2,000 a year, margin 0.5 -> 1,000; one year kept with
    # r = 0.5 and no discount: 1,000 * 0.5 = 500. Small: 100 in 100 days, counted as a year -> 50 * 0.5 = 25.
    assert [c.value_if_won_back for c in found] == [500.0, 25.0]
    assert found[0].defection.reasons == ["complaints", "long_silence"]
    assert found[0].defection.describe() == "1 complaint (product_defect 1); no purchase for 700 days"
    assert found[1].defection.reasons == ["low_ratings", "long_silence"]

    with db_sessionmaker.begin() as session:
        assert [c.name for c in winback.candidates(session, TODAY, CONFIG, stage="declining")] == ["Small"]
        assert [c.name for c in winback.candidates(session, TODAY, CONFIG, reason="complaints")] == ["Big"]
