"""Ticket priority: the order of the levels, a new ticket's priority, and one step up; and the one
rule by which lifetime value brings a person in sooner."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from bot.crm.models import LifecycleStage, Severity, TicketPriority, ValueTier

PRIORITY_ORDER = (TicketPriority.LOW, TicketPriority.NORMAL, TicketPriority.HIGH, TicketPriority.URGENT)
_BASE_PRIORITY = {Severity.LOW: 0, Severity.MEDIUM: 1, Severity.HIGH: 2}


def priority_for(severity: Severity, tier: ValueTier) -> TicketPriority:
    """Severity sets the base (low/normal/high); a VIP goes one step up, a key customer too unless
    the case is minor. So a severe VIP complaint is urgent and a minor one from a regular is low."""
    level = _BASE_PRIORITY[severity]
    if tier is ValueTier.VIP or (tier is ValueTier.KEY and severity is not Severity.LOW):
        level += 1
    return PRIORITY_ORDER[min(level, len(PRIORITY_ORDER) - 1)]


def raise_priority(priority: TicketPriority) -> TicketPriority:
    """One step up, at most urgent."""
    return PRIORITY_ORDER[min(PRIORITY_ORDER.index(priority) + 1, len(PRIORITY_ORDER) - 1)]


# The top fifth of the base by predicted future value (bot/crm/value.py) counts as high value.
HIGH_VALUE_SHARE = 0.2


def high_value_floor(future_values: Sequence[Decimal]) -> Decimal | None:
    """The smallest future value in the top HIGH_VALUE_SHARE of the valued customers (None: none valued)."""
    ranked = sorted((v for v in future_values if v > 0), reverse=True)
    if not ranked:
        return None
    return ranked[max(1, round(len(ranked) * HIGH_VALUE_SHARE)) - 1]


def complaint_goes_to_a_person(
    tier: ValueTier,
    future_value: Decimal | None,
    floor: Decimal | None,
    at_risk: bool,
    stage: LifecycleStage,
) -> str | None:
    """Service follows value: whether a complaint, by itself, brings a person in at once, and why.

    A complaint is the first sign of trouble. From a VIP it always does ("vip_complaint"). From a
    customer whose predicted future value is in the top fifth of the base it does when they already
    show a sign of leaving (at risk, or declining): they are the most costly to lose and the
    practice says to find out why and fix it now ("valuable_at_risk"). Otherwise None: the bot files
    the ticket and the SLA decides when a person answers."""
    if tier is ValueTier.VIP:
        return "vip_complaint"
    valuable = future_value is not None and floor is not None and future_value >= floor
    if valuable and (at_risk or stage is LifecycleStage.DECLINING):
        return "valuable_at_risk"
    return None
