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
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
from sqlalchemy import Numeric, case, delete, event, func, select, type_coerce, update
from sqlalchemy.orm import Session, sessionmaker

from bot.crm.models import (
    CsatSurvey,
    Customer,
    EquitySnapshot,
    LifecycleStage,
    Order,
    OrderStatus,
    Severity,
    SurveyStatus,
    Ticket,
    ValueTier,
    utcnow,
)
from bot.crm.value import History, ValueConfig, lifetime_values

RECENCY_BANDS = ((30, 5), (90, 4), (180, 3), (365, 2))  # (at most this many days, score)
FREQUENCY_BANDS = ((10, 5), (6, 4), (3, 3), (2, 2), (1, 1))  # (at least this many purchases, score)
MONETARY_BANDS = ((Decimal(1100), 5), (Decimal(700), 4), (Decimal(400), 3), (Decimal(120), 2))
YEAR = timedelta(days=365)
HALF_YEAR = timedelta(days=180)
COMPLAINT_WINDOW = timedelta(days=90)
NEW_CUSTOMER_WINDOW = timedelta(days=90)
NOT_A_PURCHASE = (OrderStatus.CANCELLED, OrderStatus.RETURNED)
_MONEY = Numeric(14, 2)


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


@dataclass(frozen=True)
class PurchaseSummary:
    """What the rule needs from a customer's purchases: counts and dates, not the orders themselves.

    `rescore_all` gets it from one aggregate query for the whole base; `score` from the orders."""

    count: int = 0
    first: date | None = None
    last: date | None = None
    count_365: int = 0
    spend_365: Decimal = Decimal(0)
    count_180: int = 0  # within the last 180 days
    count_180_360: int = 0  # more than 180 and at most 360 days ago


def summarise(orders: Iterable[OrderFact], today: date) -> PurchaseSummary:
    purchases = sorted((o for o in orders if o.status not in NOT_A_PURCHASE), key=lambda o: o.placed_on)
    if not purchases:
        return PurchaseSummary()
    last_year = [o for o in purchases if today - o.placed_on <= YEAR]
    return PurchaseSummary(
        count=len(purchases),
        first=purchases[0].placed_on,
        last=purchases[-1].placed_on,
        count_365=len(last_year),
        spend_365=sum((o.total for o in last_year), Decimal(0)),
        count_180=sum(1 for o in purchases if today - o.placed_on <= HALF_YEAR),
        count_180_360=sum(1 for o in purchases if HALF_YEAR < today - o.placed_on <= 2 * HALF_YEAR),
    )


def tier_of(purchases_365: int, spend_365: Decimal) -> ValueTier:
    """The tier a year with these purchases earns (the value models read it for past years too)."""
    return tier_for(_frequency(purchases_365), _monetary(spend_365))


def score(
    orders: Iterable[OrderFact],
    tickets: Iterable[TicketFact] = (),
    surveys: Iterable[SurveyFact] = (),
    today: date | None = None,
) -> CustomerScore:
    """Score one customer from plain facts (no database): the rule described in the module docstring."""
    today = today or utcnow().date()
    return score_summary(summarise(orders, today), tickets, surveys, today)


def score_summary(
    purchases: PurchaseSummary,
    tickets: Iterable[TicketFact] = (),
    surveys: Iterable[SurveyFact] = (),
    today: date | None = None,
) -> CustomerScore:
    """The rule itself, on a customer's purchase summary and their tickets and surveys."""
    today = today or utcnow().date()
    days = (today - purchases.last).days if purchases.last is not None else None
    recency = _recency(days)
    frequency, monetary = _frequency(purchases.count_365), _monetary(purchases.spend_365)

    reasons: list[str] = []
    recent, before = purchases.count_180, purchases.count_180_360
    if (before >= 2 and recent < before / 2) or (recency <= 2 and purchases.count >= 2):
        reasons.append("falling_frequency")
    complaints = [t for t in tickets if t.kind == "complaint" and today - t.created_on <= COMPLAINT_WINDOW]
    if len(complaints) >= 2 or any(t.severity is Severity.HIGH for t in complaints):
        reasons.append("recent_complaints")
    answered = sorted((s for s in surveys if today - s.answered_on <= HALF_YEAR), key=lambda s: s.answered_on)
    if answered and (answered[-1].score <= 2 or sum(s.score for s in answered) / len(answered) <= 2.5):
        reasons.append("low_satisfaction")

    if purchases.count == 0 or purchases.first is None:
        stage = LifecycleStage.PROSPECT
    elif days is not None and days > YEAR.days:
        stage = LifecycleStage.CHURNED
    elif "falling_frequency" in reasons or {"recent_complaints", "low_satisfaction"} <= set(reasons):
        stage = LifecycleStage.DECLINING
    elif purchases.count == 1 or today - purchases.first < NEW_CUSTOMER_WINDOW:
        stage = LifecycleStage.NEW
    elif purchases.count >= 5 and today - purchases.first >= HALF_YEAR:
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
        purchases_365=purchases.count_365,
        spend_365=purchases.spend_365,
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
            select(CsatSurvey.customer_id, CsatSurvey.answered_at, CsatSurvey.score)
            .where(CsatSurvey.customer_id.in_(chunk), CsatSurvey.status == SurveyStatus.ANSWERED)
            # In time order, so "the latest" of two answers on one day is the later one.
            .order_by(CsatSurvey.answered_at, CsatSurvey.id)
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


def rescore_all(
    session: Session, today: date | None = None, batch: int = 5000, value: ValueConfig | None = None
) -> RescoreSummary:
    """Recompute every customer's scores and lifetime value.

    One aggregate query over the orders gives each customer's `PurchaseSummary` (the database does
    the counting), two small ones the complaints and surveys still inside their windows; the rule
    then runs on those summaries, and the value models on arrays of the whole base. Rows are written
    back `batch` at a time by primary key. 100,000 customers with 1,000,000 orders take 25-35 s on
    two cores (benchmarks/scoring.py)."""
    today = today or utcnow().date()
    value = value or ValueConfig()
    session.flush()
    ids = list(session.scalars(select(Customer.id).order_by(Customer.id)))
    facts = _base_facts(session, today)
    complaints, surveys = _recent_tickets_and_surveys(session, today)

    summary = RescoreSummary(customers=len(ids))
    tiers: dict[str, int] = {t.value: 0 for t in ValueTier}
    stages: dict[str, int] = {s.value: 0 for s in LifecycleStage}
    results: list[CustomerScore] = []
    empty = _BaseFacts(PurchaseSummary())
    for customer_id in ids:
        fact = facts.get(customer_id, empty)
        result = score_summary(
            fact.purchases, complaints.get(customer_id, ()), surveys.get(customer_id, ()), today
        )
        results.append(result)
        tiers[result.tier.value] += 1
        stages[result.stage.value] += 1
        summary.at_risk += result.churn_risk
    values = lifetime_values(_history(ids, facts, results, today), value)

    now = utcnow()
    rows = [
        {
            "id": customer_id,
            "rfm_recency": result.recency,
            "rfm_frequency": result.frequency,
            "rfm_monetary": result.monetary,
            "value_tier": result.tier,
            "lifecycle_stage": result.stage,
            "churn_risk": result.churn_risk,
            "churn_reasons": list(result.reasons),
            "scored_at": now,
            "clv_to_date": _money(to_date),
            "clv_future": _money(future),
        }
        for customer_id, result, to_date, future in zip(
            ids, results, values.to_date.tolist(), values.future.tolist(), strict=True
        )
    ]
    for start in range(0, len(rows), batch):
        session.execute(update(Customer), rows[start : start + batch])
    # One point of the equity trend per day: a later rescoring on the same day replaces it.
    session.execute(delete(EquitySnapshot).where(EquitySnapshot.taken_on == today))
    session.add(
        EquitySnapshot(
            taken_on=today,
            customers=len(ids),
            value_to_date=_money(float(values.to_date.sum())),
            equity=_money(float(values.future.sum())),
            model=value.model,
        )
    )
    # The bulk UPDATE bypasses the identity map: customers already loaded must read the new values.
    for obj in list(session.identity_map.values()):
        if isinstance(obj, Customer):
            session.expire(obj)
    summary.tiers, summary.stages = tiers, stages
    return summary


@dataclass(frozen=True)
class _BaseFacts:
    purchases: PurchaseSummary
    spend: Decimal = Decimal(0)  # on every purchase so far
    count_prior: int = 0  # purchases more than 365 and at most 730 days ago
    spend_prior: Decimal = Decimal(0)


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0, 0), tzinfo=UTC)


def _money(amount: float) -> Decimal:
    return Decimal(f"{amount:.2f}")


def _base_facts(session: Session, today: date) -> dict[int, _BaseFacts]:
    """Every customer's purchase summary from one GROUP BY (windows as in `summarise`)."""

    def since(days: int) -> Any:
        return Order.placed_at >= _midnight(today - timedelta(days=days))

    def before(days: int) -> Any:
        return Order.placed_at < _midnight(today - timedelta(days=days))

    def count_if(condition: Any) -> Any:
        return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

    def spend_if(condition: Any) -> Any:
        return type_coerce(func.coalesce(func.sum(case((condition, Order.total), else_=0)), 0), _MONEY)

    statement = (
        select(
            Order.customer_id,
            func.count(),
            func.min(Order.placed_at),
            func.max(Order.placed_at),
            count_if(since(365)),
            spend_if(since(365)),
            count_if(since(180)),
            count_if(since(360) & before(180)),
            type_coerce(func.sum(Order.total), _MONEY),
            count_if(since(730) & before(365)),
            spend_if(since(730) & before(365)),
        )
        .where(Order.status.not_in(NOT_A_PURCHASE), Order.customer_id.is_not(None))
        .group_by(Order.customer_id)
    )
    facts: dict[int, _BaseFacts] = {}
    for cid, count, first, last, n365, s365, n180, n180_360, spend, n_prior, s_prior in session.execute(
        statement
    ):
        purchases = PurchaseSummary(
            int(count), first.date(), last.date(), int(n365), Decimal(s365), int(n180), int(n180_360)
        )
        facts[cid] = _BaseFacts(purchases, Decimal(spend), int(n_prior), Decimal(s_prior))
    return facts


def _recent_tickets_and_surveys(
    session: Session, today: date
) -> tuple[dict[int, list[TicketFact]], dict[int, list[SurveyFact]]]:
    """Complaints and answered surveys still inside the rule's windows: the only ones it reads."""
    complaints: dict[int, list[TicketFact]] = defaultdict(list)
    surveys: dict[int, list[SurveyFact]] = defaultdict(list)
    for cid, created, kind, severity in session.execute(
        select(Ticket.customer_id, Ticket.created_at, Ticket.kind, Ticket.severity).where(
            Ticket.customer_id.is_not(None),
            Ticket.kind == "complaint",
            Ticket.created_at >= _midnight(today - COMPLAINT_WINDOW),
        )
    ):
        complaints[cid].append(TicketFact(created.date(), kind, severity))
    for cid, answered, value in session.execute(
        select(CsatSurvey.customer_id, CsatSurvey.answered_at, CsatSurvey.score)
        .where(
            CsatSurvey.customer_id.is_not(None),
            CsatSurvey.status == SurveyStatus.ANSWERED,
            CsatSurvey.answered_at >= _midnight(today - HALF_YEAR),
            CsatSurvey.score.is_not(None),
        )
        .order_by(CsatSurvey.answered_at, CsatSurvey.id)
    ):
        surveys[cid].append(SurveyFact(answered.date(), value))
    return complaints, surveys


TIER_INDEX = {ValueTier.REGULAR: 0, ValueTier.KEY: 1, ValueTier.VIP: 2}


def _history(
    ids: Sequence[int], facts: dict[int, _BaseFacts], results: Sequence[CustomerScore], today: date
) -> History:
    """The arrays bot/crm/value.py reads, in the order of `ids`."""
    n = len(ids)
    purchases = np.zeros(n, dtype=np.int64)
    spend, spend_365 = np.zeros(n), np.zeros(n)
    first, last = np.zeros(n), np.zeros(n)
    bought_prior = np.zeros(n, dtype=bool)
    tier_prior = np.zeros(n, dtype=np.int64)
    for i, customer_id in enumerate(ids):
        fact = facts.get(customer_id)
        if fact is None or fact.purchases.first is None or fact.purchases.last is None:
            continue
        purchases[i] = fact.purchases.count
        spend[i], spend_365[i] = float(fact.spend), float(fact.purchases.spend_365)
        first[i] = max((today - fact.purchases.first).days, 0)
        last[i] = max((today - fact.purchases.last).days, 0)
        bought_prior[i] = fact.count_prior > 0
        tier_prior[i] = TIER_INDEX[tier_of(fact.count_prior, fact.spend_prior)]
    tier_now = np.array([TIER_INDEX[r.tier] for r in results], dtype=np.int64)
    return History(
        purchases=purchases,
        spend=spend,
        first_days_ago=first,
        last_days_ago=last,
        spend_365=spend_365,
        bought_365=np.array([r.purchases_365 > 0 for r in results], dtype=bool),
        bought_prior_365=bought_prior,
        tier_prior=tier_prior,
        tier_now=tier_now,
    )


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
