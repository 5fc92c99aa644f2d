"""Service-level agreements: targets per priority from a policy file, business-hours arithmetic,
due times on tickets, and the scheduled job that marks breaches.

The policy (YAML, default `bot/crm/sla_policy.yml`, setting `SLA_POLICY_FILE`) gives, per ticket
priority, the first-response and resolution targets in hours and the clock they run on:
`always` (around the clock) or `business` (only inside business hours, in the policy's time zone,
skipping weekends and holidays). VIP customers get the targets multiplied by `vip.factor`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from bot.crm.models import Ticket, TicketEvent, TicketPriority, TicketStatus, ValueTier
from bot.crm.priority import raise_priority
from bot.errors import KefuError

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
CLOCKS = ("always", "business")
_OPEN = (TicketStatus.NEW, TicketStatus.OPEN, TicketStatus.PENDING_CUSTOMER)
# Business time is walked day by day; a target this many days away means the hours make no sense.
_MAX_DAYS = 3660


class PolicyError(KefuError):
    """The SLA policy file is missing a field or has a wrong value."""

    status_code = 500


@dataclass(frozen=True)
class Target:
    first_response: timedelta
    resolution: timedelta
    clock: str


@dataclass(frozen=True)
class SlaPolicy:
    timezone: str
    targets: dict[TicketPriority, Target]
    vip_factor: float = 1.0
    days: frozenset[int] = frozenset(range(5))
    opens: time = time(9)
    closes: time = time(18)
    holidays: frozenset[date] = field(default_factory=frozenset)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def _fail(path: Path, where: str, problem: str) -> PolicyError:
    return PolicyError(f"SLA policy {path}: {where}: {problem}")


def _hours(path: Path, where: str, value: Any) -> timedelta:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise _fail(path, where, f"must be a positive number of hours, not {value!r}")
    return timedelta(hours=float(value))


def _clock_time(path: Path, where: str, value: Any) -> time:
    try:
        return time.fromisoformat(str(value))
    except ValueError:
        raise _fail(path, where, f'must be a time like "09:00", not {value!r}') from None


def parse_policy(raw: Any, path: Path) -> SlaPolicy:
    """Build a policy from the parsed YAML, with an error naming the field for anything wrong."""
    if not isinstance(raw, dict):
        raise _fail(path, "top level", "must be a mapping with timezone and targets")
    zone = str(raw.get("timezone", "UTC"))
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise _fail(path, "timezone", f"{zone!r} is not an IANA time zone such as Europe/Berlin") from None
    raw_targets = raw.get("targets")
    if not isinstance(raw_targets, dict):
        raise _fail(path, "targets", "must map each priority (low, normal, high, urgent) to its targets")
    targets: dict[TicketPriority, Target] = {}
    for name, spec in raw_targets.items():
        try:
            priority = TicketPriority(str(name))
        except ValueError:
            known = ", ".join(p.value for p in TicketPriority)
            raise _fail(path, f"targets.{name}", f"unknown priority; use {known}") from None
        if not isinstance(spec, dict):
            raise _fail(path, f"targets.{name}", "must have first_response, resolution and clock")
        clock = str(spec.get("clock", "always"))
        if clock not in CLOCKS:
            raise _fail(path, f"targets.{name}.clock", f"must be always or business, not {clock!r}")
        first = _hours(path, f"targets.{name}.first_response", spec.get("first_response"))
        resolution = _hours(path, f"targets.{name}.resolution", spec.get("resolution"))
        if resolution < first:
            raise _fail(path, f"targets.{name}", "resolution must not be shorter than first_response")
        targets[priority] = Target(first, resolution, clock)
    missing = [p.value for p in TicketPriority if p not in targets]
    if missing:
        raise _fail(path, "targets", f"missing {', '.join(missing)}")
    factor = (raw.get("vip") or {}).get("factor", 1.0)
    if isinstance(factor, bool) or not isinstance(factor, int | float) or not 0 < factor <= 1:
        raise _fail(path, "vip.factor", f"must be a number above 0 and at most 1, not {factor!r}")
    policy = SlaPolicy(timezone=zone, targets=targets, vip_factor=float(factor))
    hours = raw.get("business_hours")
    if hours is not None:
        if not isinstance(hours, dict):
            raise _fail(path, "business_hours", "must have days, start and end")
        days = hours.get("days", list(DAY_NAMES[:5]))
        unknown = [d for d in days if str(d).lower()[:3] not in DAY_NAMES]
        if unknown or not days:
            raise _fail(path, "business_hours.days", f"use mon, tue, wed, thu, fri, sat, sun (got {days!r})")
        opens = _clock_time(path, "business_hours.start", hours.get("start", "09:00"))
        closes = _clock_time(path, "business_hours.end", hours.get("end", "18:00"))
        if closes <= opens:
            raise _fail(path, "business_hours", "end must be later than start")
        policy = SlaPolicy(
            timezone=zone,
            targets=targets,
            vip_factor=float(factor),
            days=frozenset(DAY_NAMES.index(str(d).lower()[:3]) for d in days),
            opens=opens,
            closes=closes,
        )
    holidays = raw.get("holidays") or []
    try:
        parsed = frozenset(d if isinstance(d, date) else date.fromisoformat(str(d)) for d in holidays)
    except ValueError:
        raise _fail(path, "holidays", "must be dates like 2026-12-25") from None
    return SlaPolicy(
        timezone=policy.timezone,
        targets=policy.targets,
        vip_factor=policy.vip_factor,
        days=policy.days,
        opens=policy.opens,
        closes=policy.closes,
        holidays=parsed,
    )


@lru_cache(maxsize=8)
def _load(path: Path, _mtime: float) -> SlaPolicy:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PolicyError(f"SLA policy {path}: cannot read it ({exc.strerror})") from exc
    except yaml.YAMLError as exc:
        raise PolicyError(f"SLA policy {path}: not valid YAML ({exc})") from exc
    return parse_policy(raw, path)


DEFAULT_POLICY_FILE = Path(__file__).with_name("sla_policy.yml")


def default_policy() -> SlaPolicy:
    """The policy a new install starts with (bot/crm/sla_policy.yml): for demo data and tests."""
    return load_policy(DEFAULT_POLICY_FILE)


def load_policy(path: Path | str) -> SlaPolicy:
    """The policy in `path`, read again only when the file changes."""
    path = Path(path)
    try:
        mtime = os.stat(path).st_mtime
    except OSError as exc:
        raise PolicyError(f"SLA policy {path}: cannot read it ({exc.strerror})") from exc
    return _load(path, mtime)


def targets(policy: SlaPolicy, priority: TicketPriority, tier: ValueTier) -> Target:
    """The targets for a ticket of this priority from a customer of this tier."""
    base = policy.targets[priority]
    if tier is not ValueTier.VIP:
        return base
    return Target(base.first_response * policy.vip_factor, base.resolution * policy.vip_factor, base.clock)


def add_business_time(start: datetime, duration: timedelta, policy: SlaPolicy) -> datetime:
    """`start` plus `duration` counted only inside business hours, in the policy's time zone.

    Works on local wall-clock times and converts back at the end, so a DST change never adds or
    loses an hour of business time.
    """
    zone = policy.zone
    local = start.astimezone(zone)
    remaining = duration
    day = local.date()
    for _ in range(_MAX_DAYS):
        if day.weekday() in policy.days and day not in policy.holidays:
            opens = datetime.combine(day, policy.opens, zone)
            closes = datetime.combine(day, policy.closes, zone)
            begin = max(opens, local) if day == local.date() else opens
            if begin < closes:
                available = closes.replace(tzinfo=None) - begin.replace(tzinfo=None)
                if remaining <= available:
                    due = begin.replace(tzinfo=None) + remaining
                    return due.replace(tzinfo=zone).astimezone(start.tzinfo)
                remaining -= available
        day += timedelta(days=1)
    raise PolicyError("the SLA business hours leave no time to count in (check days and holidays)")


def due(start: datetime, duration: timedelta, clock: str, policy: SlaPolicy) -> datetime:
    return start + duration if clock == "always" else add_business_time(start, duration, policy)


def apply_sla(ticket: Ticket, tier: ValueTier, policy: SlaPolicy, now: datetime) -> None:
    """Set the ticket's first-response and resolution due times from its priority and the tier."""
    target = targets(policy, ticket.priority, tier)
    ticket.sla_first_response_due = due(now, target.first_response, target.clock, policy)
    ticket.sla_resolution_due = due(now, target.resolution, target.clock, policy)


@dataclass(frozen=True)
class Breach:
    reference: str
    measure: str
    due: datetime
    priority_from: str
    priority_to: str

    def __str__(self) -> str:
        return (
            f"{self.reference}: {self.measure.replace('_', ' ')} was due {self.due:%Y-%m-%d %H:%M} UTC; "
            f"priority {self.priority_from} -> {self.priority_to}"
        )


def check_breaches(session: Session, policy: SlaPolicy, now: datetime) -> list[Breach]:
    """Mark overdue tickets once per measure, raise their priority a step, and record an event."""
    overdue = session.scalars(
        select(Ticket)
        .where(
            Ticket.status.in_(_OPEN),
            or_(
                (Ticket.sla_first_response_due < now)
                & Ticket.first_responded_at.is_(None)
                & Ticket.sla_first_response_breached_at.is_(None),
                (Ticket.sla_resolution_due < now)
                & Ticket.resolved_at.is_(None)
                & Ticket.sla_resolution_breached_at.is_(None),
            ),
        )
        .order_by(Ticket.id)
    ).all()
    breaches: list[Breach] = []
    for ticket in overdue:
        for measure in ("first_response", "resolution"):
            due_at: datetime | None = getattr(ticket, f"sla_{measure}_due")
            done = ticket.first_responded_at if measure == "first_response" else ticket.resolved_at
            if due_at is None or due_at >= now or done is not None:
                continue
            if getattr(ticket, f"sla_{measure}_breached_at") is not None:
                continue
            before = ticket.priority
            setattr(ticket, f"sla_{measure}_breached_at", now)
            ticket.priority = raise_priority(before)
            breach = Breach(ticket.reference, measure, due_at, before.value, ticket.priority.value)
            session.add(
                TicketEvent(
                    ticket_id=ticket.id,
                    actor="system",
                    kind="sla_breached",
                    data={
                        "measure": measure,
                        "due": due_at.isoformat(),
                        "priority_from": breach.priority_from,
                        "priority_to": breach.priority_to,
                    },
                    created_at=now,
                )
            )
            breaches.append(breach)
    return breaches


def sla_state(ticket: Ticket, now: datetime) -> dict[str, Any]:
    """For each measure: its due time, and whether it was met, is breached or is still running."""
    state: dict[str, Any] = {}
    for measure, done in (("first_response", ticket.first_responded_at), ("resolution", ticket.resolved_at)):
        due_at: datetime | None = getattr(ticket, f"sla_{measure}_due")
        if due_at is None:
            state[measure] = {"due": None, "state": "none"}
            continue
        if done is not None:
            label = "met" if done <= due_at else "breached"
        elif getattr(ticket, f"sla_{measure}_breached_at") is not None or now > due_at:
            label = "breached"
        else:
            label = "running"
        left = None if done is not None else int((due_at - now).total_seconds())
        state[measure] = {"due": due_at.isoformat(), "state": label, "seconds_left": left}
    return state
