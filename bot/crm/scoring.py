"""Customer value and life cycle: RFM scores, value tier, life-cycle stage and churn risk.

The whole rule lives here, so agents, routing and the SLA read one definition.

- A *purchase* is an order that was neither cancelled nor returned.
- **R**ecency, days since the last purchase: <=30 -> 5, <=90 -> 4, <=180 -> 3, <=365 -> 2, older -> 1.
- **F**requency, purchases in the last 365 days: >=10 -> 5, 6-9 -> 4, 3-5 -> 3, 2 -> 2, 1 -> 1.
- **M**onetary, spend on those purchases (EUR): >=1100 -> 5, >=700 -> 4, >=400 -> 3, >=120 -> 2, >0 -> 1.
  The bands suit the demo shop's prices (most orders are EUR 20-200) and put about the top 5-10%
  of the demo base in VIP; a shop with other prices changes `MONETARY_BANDS`.
  A score of 0 means "none": no purchase ever (R) or none in the last year (F, M).
- **Tier**: VIP when M = 5, or M = 4 and F = 5; key when M >= 3 or F >= 4; otherwise regular.
- **Churn-risk reasons**:
  - `falling_frequency`: fewer purchases in the last 180 days than half of those in the 180
    days before (when there were at least 2), or no purchase for over 180 days (R <= 2) from
    someone who bought at least twice;
  - `recent_complaints`: 2 or more complaints in 90 days, or one of high severity;
  - `low_satisfaction`: the latest satisfaction score within 180 days is 1 or 2, or their mean is
    2.5 or less.
- **Stage**, the first that applies: prospect (no purchase ever, including "all returned");
  churned (last purchase over 365 days ago); declining (falling frequency, or complaints together
  with low satisfaction); new (one purchase, or the first less than 90 days ago); mature (5 or
  more purchases, the first at least 180 days ago); growing otherwise.
- **At risk** = some reason applies and the customer is neither a prospect nor already churned.

Scores are recomputed whenever an order, ticket or survey of the customer changes (session hook,
`install_rescoring`), every night by the gateway's scheduler (recency moves with the calendar),
and for the whole base by `kefu customers rescore`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.orm import Session, sessionmaker

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

RECENCY_BANDS = ((30, 5), (90, 4), (180, 3), (365, 2))  # (at most this many days, score)
FREQUENCY_BANDS = ((10, 5), (6, 4), (3, 3), (2, 2), (1, 1))  # (at least this many purchases, score)
MONETARY_BANDS = ((Decimal(1100), 5), (Decimal(700), 4), (Decimal(400), 3), (Decimal(120), 2))
YEAR = timedelta(days=365)
HALF_YEAR = timedelta(days=180)
COMPLAINT_WINDOW = timedelta(days=90)
NEW_CUSTOMER_WINDOW = timedelta(days=90)
NOT_A_PURCHASE = (OrderStatus.CANCELLED, OrderStatus.RETURNED)


@dataclass(frozen=True)
class OrderFact:
    placed_on: date
    total: Decimal
    status: OrderStatus


@dataclass(frozen=True)
class TicketFact:
    created_on: date
    kind: str
    severity: Severity


@dataclass(frozen=True)
class SurveyFact:
    answered_on: date
    score: int


@dataclass(frozen=True)
class CustomerScore:
    recency: int
    frequency: int
    monetary: int
    tier: ValueTier
    stage: LifecycleStage
    churn_risk: bool
    reasons: list[str] = field(default_factory=list)
    days_since_last_purchase: int | None = None
    purchases_365: int = 0
    spend_365: Decimal = Decimal(0)


def _recency(days: int | None) -> int:
    if days is None:
        return 0
    return next((score for limit, score in RECENCY_BANDS if days <= limit), 1)


def _frequency(count: int) -> int:
    return next((score for floor, score in FREQUENCY_BANDS if count >= floor), 0)


def _monetary(spend: Decimal) -> int:
    if spend <= 0:
        return 0
    return next((score for floor, score in MONETARY_BANDS if spend >= floor), 1)


def tier_for(frequency: int, monetary: int) -> ValueTier:
    if monetary == 5 or (monetary == 4 and frequency == 5):
        return ValueTier.VIP
    if monetary >= 3 or frequency >= 4:
        return ValueTier.KEY
    return ValueTier.REGULAR


def score(
    orders: Iterable[OrderFact],
    tickets: Iterable[TicketFact] = (),
    surveys: Iterable[SurveyFact] = (),
    today: date | None = None,
) -> CustomerScore:
    """Score one customer from plain facts (no database): the rule described in the module docstring."""
    today = today or utcnow().date()
    purchases = sorted((o for o in orders if o.status not in NOT_A_PURCHASE), key=lambda o: o.placed_on)
    last_year = [o for o in purchases if today - o.placed_on <= YEAR]
    spend = sum((o.total for o in last_year), Decimal(0))
    days = (today - purchases[-1].placed_on).days if purchases else None
    recency, frequency, monetary = _recency(days), _frequency(len(last_year)), _monetary(spend)

    reasons: list[str] = []
    recent = sum(1 for o in purchases if today - o.placed_on <= HALF_YEAR)
    before = sum(1 for o in purchases if HALF_YEAR < today - o.placed_on <= 2 * HALF_YEAR)
    if (before >= 2 and recent < before / 2) or (recency <= 2 and len(purchases) >= 2):
        reasons.append("falling_frequency")
    complaints = [t for t in tickets if t.kind == "complaint" and today - t.created_on <= COMPLAINT_WINDOW]
    if len(complaints) >= 2 or any(t.severity is Severity.HIGH for t in complaints):
        reasons.append("recent_complaints")
    answered = sorted((s for s in surveys if today - s.answered_on <= HALF_YEAR), key=lambda s: s.answered_on)
    if answered and (answered[-1].score <= 2 or sum(s.score for s in answered) / len(answered) <= 2.5):
        reasons.append("low_satisfaction")

    if not purchases:
        stage = LifecycleStage.PROSPECT
    elif days is not None and days > YEAR.days:
        stage = LifecycleStage.CHURNED
    elif "falling_frequency" in reasons or {"recent_complaints", "low_satisfaction"} <= set(reasons):
        stage = LifecycleStage.DECLINING
    elif len(purchases) == 1 or today - purchases[0].placed_on < NEW_CUSTOMER_WINDOW:
        stage = LifecycleStage.NEW
    elif len(purchases) >= 5 and today - purchases[0].placed_on >= HALF_YEAR:
        stage = LifecycleStage.MATURE
    else:
        stage = LifecycleStage.GROWING
    at_risk = bool(reasons) and stage not in (LifecycleStage.PROSPECT, LifecycleStage.CHURNED)
    return CustomerScore(
        recency=recency,
        frequency=frequency,
        monetary=monetary,
        tier=tier_for(frequency, monetary),
        stage=stage,
        churn_risk=at_risk,
        reasons=reasons,
        days_since_last_purchase=days,
        purchases_365=len(last_year),
        spend_365=spend,
    )


def _apply(customer: Customer, result: CustomerScore) -> None:
    customer.rfm_recency = result.recency
    customer.rfm_frequency = result.frequency
    customer.rfm_monetary = result.monetary
    customer.value_tier = result.tier
    customer.lifecycle_stage = result.stage
    customer.churn_risk = result.churn_risk
    customer.churn_reasons = list(result.reasons)
    customer.scored_at = utcnow()


def _facts(
    session: Session, customer_ids: Sequence[int]
) -> tuple[dict[int, list[OrderFact]], dict[int, list[TicketFact]], dict[int, list[SurveyFact]]]:
    """Orders, complaints and answered surveys of these customers, three queries for any number."""
    orders: dict[int, list[OrderFact]] = defaultdict(list)
    tickets: dict[int, list[TicketFact]] = defaultdict(list)
    surveys: dict[int, list[SurveyFact]] = defaultdict(list)
    for chunk_start in range(0, len(customer_ids), 900):  # SQLite allows ~1000 bound parameters
        chunk = customer_ids[chunk_start : chunk_start + 900]
        for cid, placed, total, status in session.execute(
            select(Order.customer_id, Order.placed_at, Order.total, Order.status).where(
                Order.customer_id.in_(chunk)
            )
        ):
            orders[cid].append(OrderFact(placed.date(), total, status))
        for cid, created, kind, severity in session.execute(
            select(Ticket.customer_id, Ticket.created_at, Ticket.kind, Ticket.severity).where(
                Ticket.customer_id.in_(chunk)
            )
        ):
            tickets[cid].append(TicketFact(created.date(), kind, severity))
        for cid, answered, value in session.execute(
            select(CsatSurvey.customer_id, CsatSurvey.answered_at, CsatSurvey.score).where(
                CsatSurvey.customer_id.in_(chunk), CsatSurvey.status == SurveyStatus.ANSWERED
            )
        ):
            if answered is not None and value is not None:
                surveys[cid].append(SurveyFact(answered.date(), value))
    return orders, tickets, surveys


def rescore_customer(session: Session, customer_id: int, today: date | None = None) -> CustomerScore | None:
    """Recompute and store one customer's scores; None if the customer does not exist."""
    customer = session.get(Customer, customer_id)
    if customer is None:
        return None
    orders, tickets, surveys = _facts(session, [customer_id])
    result = score(orders[customer_id], tickets[customer_id], surveys[customer_id], today)
    _apply(customer, result)
    return result


@dataclass
class RescoreSummary:
    customers: int = 0
    tiers: dict[str, int] = field(default_factory=dict)
    stages: dict[str, int] = field(default_factory=dict)
    at_risk: int = 0

    def describe(self) -> str:
        tiers = ", ".join(f"{n} {t}" for t, n in self.tiers.items())
        stages = ", ".join(f"{n} {s}" for s, n in self.stages.items())
        return f"{self.customers} customers scored: {tiers}; {stages}; {self.at_risk} at risk of leaving"


def rescore_all(session: Session, today: date | None = None, batch: int = 2000) -> RescoreSummary:
    """Recompute every customer, in batches (a few queries per batch, not per customer)."""
    summary = RescoreSummary()
    tiers: dict[str, int] = {t.value: 0 for t in ValueTier}
    stages: dict[str, int] = {s.value: 0 for s in LifecycleStage}
    last_id = 0
    while True:
        customers = session.scalars(
            select(Customer).where(Customer.id > last_id).order_by(Customer.id).limit(batch)
        ).all()
        if not customers:
            break
        ids = [c.id for c in customers]
        orders, tickets, surveys = _facts(session, ids)
        for customer in customers:
            result = score(orders[customer.id], tickets[customer.id], surveys[customer.id], today)
            _apply(customer, result)
            tiers[result.tier.value] += 1
            stages[result.stage.value] += 1
            summary.at_risk += result.churn_risk
        summary.customers += len(customers)
        last_id = ids[-1]
        session.flush()
    summary.tiers, summary.stages = tiers, stages
    return summary


# --- recomputing on change ----------------------------------------------------------------------

_PENDING = "kefu_rescore_customers"
_BUSY = "kefu_rescoring"


def _customer_ids(objects: Iterable[Any]) -> set[int]:
    ids: set[int] = set()
    for obj in objects:
        if isinstance(obj, Order | Ticket | CsatSurvey) and obj.customer_id is not None:
            ids.add(obj.customer_id)
    return ids


def _collect(session: Session, _context: Any, _instances: Any) -> None:
    if session.info.get(_BUSY):
        return
    changed = _customer_ids(session.new) | _customer_ids(session.dirty) | _customer_ids(session.deleted)
    if changed:
        session.info.setdefault(_PENDING, set()).update(changed)


def _rescore_pending(session: Session) -> None:
    # before_commit runs before commit's own flush: changes not flushed yet are collected here.
    _collect(session, None, None)
    pending: set[int] = session.info.pop(_PENDING, set())
    if not pending or session.info.get(_BUSY):
        return
    session.info[_BUSY] = True
    try:
        session.flush()  # make the change that triggered this visible to the queries
        for customer_id in sorted(pending):
            rescore_customer(session, customer_id)
        session.flush()
    finally:
        session.info.pop(_BUSY, None)


def install_rescoring(factory: sessionmaker[Session]) -> None:
    """Recompute a customer's scores in the same transaction whenever their orders, tickets or
    surveys change, however the change was made (bot, console, CLI)."""
    event.listen(factory, "before_flush", _collect)
    event.listen(factory, "before_commit", _rescore_pending)
