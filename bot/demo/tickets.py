"""Demo tickets for the showcase customers, so ticket status, reopening and SLAs can be tried at once.

They are made through the same life-cycle functions the product uses, with times set in the past:
KF-000001 resolved three days ago (Ana, order 100002: it can still be reopened), KF-000002 waiting
for the customer (Mei, order 100008), KF-000003 open and past its first-response time (Jonas,
order 100004), which the scheduler marks as breached when the gateway starts.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.crm import sla, tickets
from bot.crm.models import Agent, Order, Severity, TicketStatus


def seed_showcase_tickets(session: Session, midnight: datetime, policy: sla.SlaPolicy) -> int:
    """Create the three demo tickets; returns how many were made."""
    wanted = select(Order).where(Order.number.in_(["100002", "100004", "100008"]))
    orders = {order.number: order for order in session.scalars(wanted)}
    agent = session.scalars(select(Agent).where(Agent.email == "ada@kefu.example")).first()
    by = f"agent:{agent.id}" if agent is not None else "system"

    def at(days_ago: int, hour: int) -> datetime:
        return midnight - timedelta(days=days_ago) + timedelta(hours=hour)

    chairs = tickets.open_ticket(
        session,
        policy=policy,
        kind="complaint",
        category="product_defect",
        subject="A faulty or damaged product (order #100002)",
        description="One of the two folding chairs wobbles: a rivet on the left leg is loose.",
        desired_outcome="repair",
        severity=Severity.LOW,
        actor="bot",
        customer_id=orders["100002"].customer_id,
        order_id=orders["100002"].id,
        now=at(6, 10),
    )
    tickets.change_status(session, chairs, TicketStatus.OPEN, by, now=at(6, 14))
    tickets.change_status(
        session,
        chairs,
        TicketStatus.RESOLVED,
        by,
        resolution="We sent a free repair kit with a new rivet and instructions; it was delivered yesterday.",
        now=at(3, 11),
    )

    candles = tickets.open_ticket(
        session,
        policy=policy,
        kind="complaint",
        category="wrong_or_missing_item",
        subject="A wrong or missing item (order #100008)",
        description="Only two of the three candle lanterns were in the parcel.",
        desired_outcome="replacement",
        severity=Severity.LOW,
        actor="bot",
        customer_id=orders["100008"].customer_id,
        order_id=orders["100008"].id,
        now=at(2, 9),
    )
    tickets.change_status(
        session,
        candles,
        TicketStatus.PENDING_CUSTOMER,
        by,
        note="Asked the customer for a photo of the packing slip.",
        now=at(1, 15),
    )

    tickets.open_ticket(
        session,
        policy=policy,
        kind="delivery",
        category="delivery_problem",
        subject="Order #100004 is delayed",
        description="Customer asked for a follow-up after seeing the delay in chat.",
        severity=Severity.MEDIUM,
        actor="bot",
        customer_id=orders["100004"].customer_id,
        order_id=orders["100004"].id,
        now=at(2, 16),
    )
    session.flush()
    return 3
