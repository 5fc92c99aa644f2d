"""Win-back: churned and declining customers, ranked by what winning them back is worth, with why they left.

CRM practice answers the decline stage with retention and win-back: find out why, fix it, offer
something. This lists the customers whose life-cycle stage (bot/crm/scoring.py) is churned or
declining, each with:

- **value if won back**: the retention formula of bot/crm/value.py applied to the customer as they
  were while active: margin (`CLV_MARGIN`) on their spend per active year (first to last purchase,
  at least one year), kept each year with the base's retention (the share of the previous year's
  buyers who bought again in the last 365 days), over `CLV_HORIZON_MONTHS`, discounted at
  `CLV_DISCOUNT_RATE`. A lapsed customer's own predicted future value is close to nothing: this
  says what they would be worth if they came back and behaved as before.
- **defection reasons** from our own records over the whole relationship: complaints (with their
  categories), low ratings (satisfaction 1 or 2), delivery problems (a shipment reported delayed, or
  a delivery ticket), and long silence (no purchase for more than 180 days).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.crm.models import (
    CsatSurvey,
    Customer,
    LifecycleStage,
    Order,
    OrderStatus,
    Shipment,
    ShipmentEvent,
    SurveyStatus,
    Ticket,
)
from bot.crm.scoring import NOT_A_PURCHASE
from bot.crm.value import ValueConfig, retention_value

STAGES = (LifecycleStage.CHURNED, LifecycleStage.DECLINING)
REASONS = ("complaints", "low_ratings", "delivery_problems", "long_silence")
SILENCE_DAYS = 180
LOW_RATING = 2


@dataclass
class Defection:
    """Why a customer may have left, counted from stored tickets, surveys, shipments and orders."""

    complaints: int = 0
    complaint_categories: dict[str, int] = field(default_factory=dict)
    low_ratings: int = 0
    delivery_problems: int = 0
    days_silent: int | None = None

    @property
    def reasons(self) -> list[str]:
        found = [
            name
            for name, count in (
                ("complaints", self.complaints),
                ("low_ratings", self.low_ratings),
                ("delivery_problems", self.delivery_problems),
            )
            if count
        ]
        if self.days_silent is not None and self.days_silent > SILENCE_DAYS:
            found.append("long_silence")
        return found

    def describe(self) -> str:
        parts = []
        if self.complaints:
            kinds = ", ".join(f"{name} {n}" for name, n in sorted(self.complaint_categories.items()))
            parts.append(f"{self.complaints} complaint{'s' * (self.complaints != 1)} ({kinds})")
        if self.low_ratings:
            parts.append(f"{self.low_ratings} low rating{'s' * (self.low_ratings != 1)}")
        if self.delivery_problems:
            parts.append(f"{self.delivery_problems} delivery problem{'s' * (self.delivery_problems != 1)}")
        if "long_silence" in self.reasons:
            parts.append(f"no purchase for {self.days_silent} days")
        return "; ".join(parts) or "nothing on record"


@dataclass(frozen=True)
class Candidate:
    customer_id: int
    name: str
    email: str
    stage: str
    tier: str
    value_to_date: float
    future_value: float
    value_if_won_back: float
    defection: Defection


def defections(session: Session, customer_ids: list[int], today: date) -> dict[int, Defection]:
    """Each customer's defection record (customers with none get an empty one)."""
    found: dict[int, Defection] = {cid: Defection() for cid in customer_ids}
    categories: dict[int, Counter[str]] = defaultdict(Counter)
    for chunk_start in range(0, len(customer_ids), 900):
        chunk = customer_ids[chunk_start : chunk_start + 900]
        for cid, kind, category in session.execute(
            select(Ticket.customer_id, Ticket.kind, Ticket.category).where(Ticket.customer_id.in_(chunk))
        ):
            if kind == "complaint":
                found[cid].complaints += 1
                categories[cid][category] += 1
            elif kind == "delivery":
                found[cid].delivery_problems += 1
        for (cid,) in session.execute(
            select(CsatSurvey.customer_id).where(
                CsatSurvey.customer_id.in_(chunk),
                CsatSurvey.status == SurveyStatus.ANSWERED,
                CsatSurvey.score <= LOW_RATING,
            )
        ):
            found[cid].low_ratings += 1
        for (cid,) in session.execute(
            select(Order.customer_id)
            .where(Order.customer_id.in_(chunk))
            .where(
                Order.id.in_(
                    select(Shipment.order_id)
                    .join(ShipmentEvent, ShipmentEvent.shipment_id == Shipment.id)
                    .where(ShipmentEvent.status == OrderStatus.DELAYED)
                )
            )
        ):
            found[cid].delivery_problems += 1
        for cid, last in session.execute(
            select(Order.customer_id, Order.placed_at)
            .where(Order.customer_id.in_(chunk), Order.status.not_in(NOT_A_PURCHASE))
            .order_by(Order.placed_at)
        ):
            found[cid].days_silent = (today - last.date()).days
    for cid, counts in categories.items():
        found[cid].complaint_categories = dict(counts)
    return found


def _base_retention(session: Session, today: date) -> float:
    """Share of the customers who bought 365-730 days ago who bought again in the last 365 days."""
    year_ago, two_years_ago = today - timedelta(days=365), today - timedelta(days=730)
    earlier: set[int] = set()
    recent: set[int] = set()
    for cid, placed in session.execute(
        select(Order.customer_id, Order.placed_at).where(Order.status.not_in(NOT_A_PURCHASE))
    ):
        day = placed.date()
        if two_years_ago < day <= year_ago:
            earlier.add(cid)
        elif day > year_ago:
            recent.add(cid)
    return len(earlier & recent) / len(earlier) if earlier else 0.0


def candidates(
    session: Session,
    today: date,
    config: ValueConfig,
    stage: str | None = None,
    reason: str | None = None,
) -> list[Candidate]:
    """Churned and declining customers (or one of the two stages, or only those with `reason`),
    the most valuable to win back first."""
    stages = [s for s in STAGES if stage in (None, s.value)]
    customers = session.execute(
        select(
            Customer.id,
            Customer.name,
            Customer.email,
            Customer.lifecycle_stage,
            Customer.value_tier,
            Customer.clv_to_date,
            Customer.clv_future,
        ).where(Customer.lifecycle_stage.in_(stages))
    ).all()
    ids = [row[0] for row in customers]
    spans: dict[int, tuple[date, date, Decimal]] = {}
    for chunk_start in range(0, len(ids), 900):
        chunk = ids[chunk_start : chunk_start + 900]
        for cid, placed, total in session.execute(
            select(Order.customer_id, Order.placed_at, Order.total).where(
                Order.customer_id.in_(chunk), Order.status.not_in(NOT_A_PURCHASE)
            )
        ):
            first, last, spend = spans.get(cid, (placed.date(), placed.date(), Decimal(0)))
            spans[cid] = (min(first, placed.date()), max(last, placed.date()), spend + total)
    records = defections(session, ids, today)
    retention = _base_retention(session, today)
    result: list[Candidate] = []
    for cid, name, email, stage_now, tier, to_date, future in customers:
        record = records[cid]
        if reason is not None and reason not in record.reasons:
            continue
        first, last, spend = spans.get(cid, (today, today, Decimal(0)))
        years = max((last - first).days / 365, 1.0)
        annual_margin = config.margin * float(spend) / years
        won_back = float(
            retention_value(annual_margin, retention, config.discount_rate, config.horizon_months / 12)
        )
        result.append(
            Candidate(
                cid,
                name,
                email,
                stage_now.value,
                tier.value,
                float(to_date or 0),
                float(future or 0),
                round(won_back, 2),
                record,
            )
        )
    result.sort(key=lambda c: (-c.value_if_won_back, c.customer_id))
    return result
