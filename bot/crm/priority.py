"""Ticket priority: the order of the levels, a new ticket's priority, and one step up."""

from __future__ import annotations

from bot.crm.models import Severity, TicketPriority, ValueTier

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
