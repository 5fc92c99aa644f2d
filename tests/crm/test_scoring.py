"""Customer value and life cycle: hand-computed RFM cases, the edges, and rescoring on change."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.crm import scoring
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
    utcnow,
)
from bot.crm.scoring import OrderFact, SurveyFact, TicketFact, score

TODAY = date(2026, 11, 24)
S = OrderStatus


def bought(days_ago: int, total: str, status: OrderStatus = S.DELIVERED) -> OrderFact:
    return OrderFact(TODAY - timedelta(days=days_ago), Decimal(total), status)


def test_no_orders_is_a_prospect_with_zero_scores() -> None:
    result = score([], today=TODAY)
    assert (result.recency, result.frequency, result.monetary) == (0, 0, 0)
    assert result.tier is ValueTier.REGULAR and result.stage is LifecycleStage.PROSPECT
    assert result.churn_risk is False and result.days_since_last_purchase is None


def test_one_order_last_week() -> None:
    result = score([bought(7, "89.00")], today=TODAY)
    # R: 7 days -> 5; F: 1 purchase -> 1; M: EUR 89 (< 120) -> 1.
    assert (result.recency, result.frequency, result.monetary) == (5, 1, 1)
    assert result.tier is ValueTier.REGULAR and result.stage is LifecycleStage.NEW


@pytest.mark.parametrize("status", [S.RETURNED, S.CANCELLED])
def test_orders_all_returned_or_cancelled_count_as_no_purchase(status: OrderStatus) -> None:
    result = score([bought(10, "900.00", status), bought(40, "300.00", status)], today=TODAY)
    assert (result.recency, result.frequency, result.monetary) == (0, 0, 0)
    assert result.stage is LifecycleStage.PROSPECT and result.tier is ValueTier.REGULAR


def test_recency_band_edges() -> None:
    assert score([bought(30, "10")], today=TODAY).recency == 5
    assert score([bought(31, "10")], today=TODAY).recency == 4
    assert score([bought(365, "10")], today=TODAY).recency == 2
    assert score([bought(366, "10")], today=TODAY).recency == 1


def test_hand_computed_vip_and_key() -> None:
    # Six purchases over the year, EUR 1,260 in all: R 5 (12 days), F 4 (6-9), M 5 (>= 1,100) -> VIP.
    vip = [bought(d, "210.00") for d in (12, 60, 120, 180, 240, 300)]
    result = score(vip, today=TODAY)
    assert (result.recency, result.frequency, result.monetary) == (5, 4, 5)
    assert result.spend_365 == Decimal("1260.00") and result.tier is ValueTier.VIP
    # Three purchases, EUR 450: F 3, M 3 -> key.
    key = [bought(d, "150.00") for d in (20, 100, 200)]
    assert score(key, today=TODAY).tier is ValueTier.KEY


def test_only_the_last_year_counts_for_frequency_and_spend() -> None:
    old_big_spender = [bought(400, "3000.00"), bought(420, "2500.00")]
    result = score(old_big_spender, today=TODAY)
    assert (result.recency, result.frequency, result.monetary) == (1, 0, 0)
    assert result.tier is ValueTier.REGULAR and result.stage is LifecycleStage.CHURNED
    assert result.churn_risk is False  # already gone: a matter for win-back, not retention


def test_falling_frequency_makes_a_customer_declining_and_at_risk() -> None:
    # Four purchases 7-12 months ago, one in the last six months.
    orders = [bought(d, "60.00") for d in (200, 230, 260, 300)] + [bought(100, "60.00")]
    result = score(orders, today=TODAY)
    assert "falling_frequency" in result.reasons
    assert result.stage is LifecycleStage.DECLINING and result.churn_risk is True


def test_mature_and_growing() -> None:
    steady = [bought(d, "40.00") for d in (10, 50, 90, 130, 170, 210)]
    assert score(steady, today=TODAY).stage is LifecycleStage.MATURE
    two_recent = [bought(20, "40.00"), bought(150, "40.00")]
    assert score(two_recent, today=TODAY).stage is LifecycleStage.GROWING


def test_complaints_and_low_satisfaction_are_reasons_for_risk() -> None:
    orders = [bought(d, "40.00") for d in (10, 50, 90)]
    complaints = [
        TicketFact(TODAY - timedelta(days=5), "complaint", Severity.LOW),
        TicketFact(TODAY - timedelta(days=30), "complaint", Severity.MEDIUM),
    ]
    unhappy = [SurveyFact(TODAY - timedelta(days=4), 2)]
    result = score(orders, complaints, unhappy, today=TODAY)
    assert set(result.reasons) == {"recent_complaints", "low_satisfaction"}
    assert result.stage is LifecycleStage.DECLINING and result.churn_risk is True

    one_severe = [TicketFact(TODAY - timedelta(days=5), "complaint", Severity.HIGH)]
    assert score(orders, one_severe, today=TODAY).reasons == ["recent_complaints"]
    refunds_are_not_complaints = [TicketFact(TODAY - timedelta(days=5), "refund", Severity.MEDIUM)] * 3
    assert score(orders, refunds_are_not_complaints, today=TODAY).reasons == []
    happy_again = [SurveyFact(TODAY - timedelta(days=40), 2), SurveyFact(TODAY - timedelta(days=3), 5)]
    assert score(orders, [], happy_again, today=TODAY).reasons == []  # latest 5, mean 3.5


# --- stored scores ----------------------------------------------------------------------------


def _customer(session: Session) -> Customer:
    customer = Customer(name="Test Person", email="test.person@example.com")
    session.add(customer)
    session.flush()
    return customer


def test_a_new_order_rescores_the_customer_on_commit(db_sessionmaker: sessionmaker[Session]) -> None:
    with db_sessionmaker.begin() as session:
        customer_id = _customer(session).id
    with db_sessionmaker.begin() as session:
        session.add(
            Order(
                number="190001",
                customer_id=customer_id,
                status=S.DELIVERED,
                placed_at=utcnow() - timedelta(days=3),
                total=Decimal("1500.00"),
            )
        )
    with db_sessionmaker() as session:
        customer = session.get_one(Customer, customer_id)
        assert customer.value_tier is ValueTier.VIP  # M 5 from one large purchase
        assert customer.lifecycle_stage is LifecycleStage.NEW
        assert (customer.rfm_recency, customer.rfm_frequency, customer.rfm_monetary) == (5, 1, 5)
        assert customer.scored_at is not None


def test_complaints_and_a_bad_score_flag_the_customer_without_an_explicit_call(
    db_sessionmaker: sessionmaker[Session],
) -> None:
    with db_sessionmaker.begin() as session:
        customer_id = _customer(session).id
        for n, days in enumerate((10, 40, 80)):
            session.add(
                Order(
                    number=f"19010{n}",
                    customer_id=customer_id,
                    status=S.DELIVERED,
                    placed_at=utcnow() - timedelta(days=days),
                    total=Decimal("50.00"),
                )
            )
    with db_sessionmaker.begin() as session:
        session.add(
            Ticket(
                reference="KF-900001",
                customer_id=customer_id,
                kind="complaint",
                category="product_defect",
                subject="broken",
                severity=Severity.HIGH,
            )
        )
        session.add(
            CsatSurvey(
                customer_id=customer_id,
                trigger="ticket_resolved",
                status=SurveyStatus.ANSWERED,
                score=1,
                answered_at=utcnow(),
            )
        )
    with db_sessionmaker() as session:
        customer = session.get_one(Customer, customer_id)
        assert customer.churn_risk is True
        assert set(customer.churn_reasons) == {"recent_complaints", "low_satisfaction"}
        assert customer.lifecycle_stage is LifecycleStage.DECLINING


def test_rescore_all_summarises_the_base(db_sessionmaker: sessionmaker[Session]) -> None:
    with db_sessionmaker.begin() as session:
        customer_id = _customer(session).id
        session.add(Customer(name="No Orders", email="none@example.com"))
        session.add(
            Order(
                number="190200",
                customer_id=customer_id,
                status=S.DELIVERED,
                placed_at=utcnow() - timedelta(days=3),
                total=Decimal("20.00"),
            )
        )
    with db_sessionmaker.begin() as session:
        summary = scoring.rescore_all(session)
    assert summary.customers == 2
    assert summary.tiers["regular"] == 2 and summary.stages == {
        "prospect": 1,
        "new": 1,
        "growing": 0,
        "mature": 0,
        "declining": 0,
        "churned": 0,
    }
    assert "2 customers scored" in summary.describe()
    with db_sessionmaker() as session:
        emails = session.scalars(select(Customer.email).where(Customer.scored_at.is_not(None))).all()
        assert sorted(emails) == ["none@example.com", "test.person@example.com"]


def test_rescore_all_agrees_with_the_one_customer_rule_on_the_demo_shop(
    db_sessionmaker: sessionmaker[Session],
) -> None:
    """The aggregate query path (the whole base) and the per-customer path give the same scores."""
    from datetime import UTC, datetime, time

    from bot.demo.history import seed_history
    from bot.demo.seed import seed_demo_data

    today = date(2026, 11, 20)
    with db_sessionmaker.begin() as session:
        seed_demo_data(session, today)
        seed_history(session, days=120, now=datetime.combine(today, time(0), tzinfo=UTC))
    with db_sessionmaker.begin() as session:
        scoring.rescore_all(session, today)
    with db_sessionmaker() as session:
        stored = {
            c.id: (c.rfm_recency, c.rfm_frequency, c.rfm_monetary, c.value_tier, c.lifecycle_stage,
                   c.churn_risk, c.churn_reasons)
            for c in session.scalars(select(Customer))
        }  # fmt: skip
        valued = session.scalars(select(Customer).where(Customer.clv_future > 0)).all()
    with db_sessionmaker() as session:
        for customer_id, scores in stored.items():
            one = scoring.rescore_customer(session, customer_id, today)
            assert one is not None
            expected = (one.recency, one.frequency, one.monetary, one.tier, one.stage, one.churn_risk,
                        one.reasons)  # fmt: skip
            assert scores == expected, (customer_id, scores[6], expected[6])
        session.rollback()
    stages = {s[4] for s in stored.values()}
    assert {LifecycleStage.CHURNED, LifecycleStage.DECLINING, LifecycleStage.MATURE} <= stages
    assert any(s[6] for s in stored.values())  # some reasons, so the comparison covers them
    assert len(valued) > 100 and all(c.clv_to_date is not None and c.clv_to_date > 0 for c in valued)
