"""SLA policy: business-hours arithmetic across weekends, holidays, time zones and DST; breaches."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.crm import sla
from bot.crm.models import Ticket, TicketEvent, TicketPriority, TicketStatus, ValueTier
from bot.settings import PROJECT_ROOT

BERLIN = ZoneInfo("Europe/Berlin")
POLICY_YAML = """
timezone: Europe/Berlin
business_hours: {days: [mon, tue, wed, thu, fri], start: "09:00", end: "18:00"}
holidays: [2026-12-25]
targets:
  urgent: {first_response: 1, resolution: 8, clock: always}
  high: {first_response: 4, resolution: 24, clock: always}
  normal: {first_response: 2, resolution: 27, clock: business}
  low: {first_response: 18, resolution: 45, clock: business}
vip: {factor: 0.5}
"""


@pytest.fixture
def policy(tmp_path: Path) -> sla.SlaPolicy:
    path = tmp_path / "sla.yml"
    path.write_text(POLICY_YAML)
    return sla.load_policy(path)


def berlin(*args: int) -> datetime:
    return datetime(*args, tzinfo=BERLIN)  # type: ignore[misc]


def test_the_shipped_policy_loads() -> None:
    shipped = sla.load_policy(PROJECT_ROOT / "bot" / "crm" / "sla_policy.yml")
    assert set(shipped.targets) == set(TicketPriority)
    assert shipped.timezone == "Europe/Berlin"


def test_friday_evening_rolls_over_the_weekend(policy: sla.SlaPolicy) -> None:
    start = berlin(2026, 11, 27, 17, 0)  # a Friday, one business hour left
    due = sla.add_business_time(start.astimezone(UTC), timedelta(hours=2), policy)
    assert due.astimezone(BERLIN) == berlin(2026, 11, 30, 10, 0)  # Monday 10:00
    assert due.tzinfo is UTC


def test_a_saturday_night_ticket_starts_counting_on_monday_morning(policy: sla.SlaPolicy) -> None:
    start = datetime(2026, 11, 28, 3, 0, tzinfo=UTC)
    due = sla.add_business_time(start, timedelta(hours=2), policy)
    assert due.astimezone(BERLIN) == berlin(2026, 11, 30, 11, 0)


def test_holidays_are_skipped(policy: sla.SlaPolicy) -> None:
    start = berlin(2026, 12, 24, 17, 0)  # Thursday; Friday the 25th is a holiday
    due = sla.add_business_time(start, timedelta(hours=2), policy)
    assert due.astimezone(BERLIN) == berlin(2026, 12, 28, 10, 0)


def test_daylight_saving_changes_do_not_add_or_lose_business_hours(policy: sla.SlaPolicy) -> None:
    # Clocks go back on Sunday 25 Oct 2026 and forward on Sunday 29 Mar 2026.
    autumn = sla.add_business_time(berlin(2026, 10, 23, 17, 0), timedelta(hours=3), policy)
    assert autumn.astimezone(BERLIN) == berlin(2026, 10, 26, 11, 0)
    assert autumn.astimezone(UTC).hour == 10  # CET (UTC+1) after the change
    spring = sla.add_business_time(berlin(2026, 3, 27, 17, 0), timedelta(hours=3), policy)
    assert spring.astimezone(BERLIN) == berlin(2026, 3, 30, 11, 0)
    assert spring.astimezone(UTC).hour == 9  # CEST (UTC+2)


def test_the_policy_time_zone_decides_what_business_hours_mean(tmp_path: Path) -> None:
    path = tmp_path / "ny.yml"
    path.write_text(POLICY_YAML.replace("Europe/Berlin", "America/New_York"))
    new_york = sla.load_policy(path)
    # 15:00 UTC on a Monday is 10:00 in New York (EST): due 12:00 there, 17:00 UTC.
    due = sla.add_business_time(datetime(2026, 11, 30, 15, 0, tzinfo=UTC), timedelta(hours=2), new_york)
    assert due == datetime(2026, 11, 30, 17, 0, tzinfo=UTC)


def test_long_targets_span_several_working_days(policy: sla.SlaPolicy) -> None:
    due = sla.add_business_time(berlin(2026, 11, 30, 9, 0), timedelta(hours=27), policy)
    assert due.astimezone(BERLIN) == berlin(2026, 12, 2, 18, 0)  # three 9-hour days


def test_vip_targets_are_tighter_and_always_clock_ignores_business_hours(policy: sla.SlaPolicy) -> None:
    regular = sla.targets(policy, TicketPriority.HIGH, ValueTier.REGULAR)
    vip = sla.targets(policy, TicketPriority.HIGH, ValueTier.VIP)
    assert vip.first_response == regular.first_response / 2 == timedelta(hours=2)
    saturday = berlin(2026, 11, 28, 23, 0)
    assert sla.due(saturday, timedelta(hours=4), "always", policy) == saturday + timedelta(hours=4)


def test_apply_sla_sets_both_due_times(policy: sla.SlaPolicy) -> None:
    ticket = Ticket(priority=TicketPriority.NORMAL)
    now = berlin(2026, 11, 30, 9, 0)
    sla.apply_sla(ticket, ValueTier.REGULAR, policy, now)
    assert ticket.sla_first_response_due == berlin(2026, 11, 30, 11, 0)
    assert ticket.sla_resolution_due == berlin(2026, 12, 2, 18, 0)
    sla.apply_sla(ticket, ValueTier.VIP, policy, now)
    assert ticket.sla_first_response_due == berlin(2026, 11, 30, 10, 0)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("Europe/Berlin", "Mars/Olympus"), "timezone"),
        (("normal: {first_response: 2", "normal: {first_response: -2"), "targets.normal.first_response"),
        (("urgent:", "critical:"), "targets.critical"),
        (('end: "18:00"', 'end: "08:00"'), "end must be later than start"),
        (("fri]", "fry]"), "business_hours.days"),
        (("clock: business}", "clock: sometimes}"), "clock"),
        (("factor: 0.5", "factor: 2"), "vip.factor"),
    ],
)
def test_a_bad_policy_file_names_the_field(tmp_path: Path, change: tuple[str, str], message: str) -> None:
    path = tmp_path / "bad.yml"
    path.write_text(POLICY_YAML.replace(*change, 1))
    with pytest.raises(sla.PolicyError) as raised:
        sla.load_policy(path)
    assert message in str(raised.value) and str(path) in str(raised.value)


def test_a_missing_policy_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(sla.PolicyError, match="cannot read it"):
        sla.load_policy(tmp_path / "nope.yml")


def _ticket(session: Session, reference: str, **fields: object) -> Ticket:
    ticket = Ticket(reference=reference, kind="complaint", category="other", subject="s", **fields)
    session.add(ticket)
    session.flush()
    return ticket


def test_breaches_are_marked_once_with_a_priority_step_and_an_event(
    db_sessionmaker: sessionmaker[Session], policy: sla.SlaPolicy
) -> None:
    now = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    with db_sessionmaker.begin() as session:
        _ticket(
            session,
            "KF-000101",
            priority=TicketPriority.NORMAL,
            sla_first_response_due=now - timedelta(hours=1),
            sla_resolution_due=now + timedelta(hours=5),
        )
        _ticket(  # answered in time: only its resolution can breach, and it is not due yet
            session,
            "KF-000102",
            priority=TicketPriority.LOW,
            sla_first_response_due=now - timedelta(hours=1),
            first_responded_at=now - timedelta(hours=2),
            sla_resolution_due=now + timedelta(hours=5),
        )
        _ticket(  # resolved tickets are never breached afterwards
            session,
            "KF-000103",
            status=TicketStatus.RESOLVED,
            priority=TicketPriority.LOW,
            sla_first_response_due=now - timedelta(hours=9),
            sla_resolution_due=now - timedelta(hours=1),
        )
        _ticket(
            session,
            "KF-000104",
            priority=TicketPriority.URGENT,
            sla_first_response_due=now - timedelta(hours=3),
            sla_resolution_due=now - timedelta(hours=1),
        )
    with db_sessionmaker.begin() as session:
        breaches = sla.check_breaches(session, policy, now)
    assert sorted((b.reference, b.measure) for b in breaches) == [
        ("KF-000101", "first_response"),
        ("KF-000104", "first_response"),
        ("KF-000104", "resolution"),
    ]
    with db_sessionmaker.begin() as session:
        assert sla.check_breaches(session, policy, now + timedelta(minutes=1)) == []  # nothing twice
    with db_sessionmaker() as session:
        first = session.scalars(select(Ticket).where(Ticket.reference == "KF-000101")).one()
        assert first.priority is TicketPriority.HIGH and first.sla_first_response_breached_at is not None
        urgent = session.scalars(select(Ticket).where(Ticket.reference == "KF-000104")).one()
        assert urgent.priority is TicketPriority.URGENT  # already at the top
        events = session.scalars(select(TicketEvent).where(TicketEvent.ticket_id == first.id)).all()
        assert [(e.kind, e.data["measure"], e.data["priority_to"]) for e in events] == [
            ("sla_breached", "first_response", "high")
        ]
        state = sla.sla_state(first, now)
        assert state["first_response"]["state"] == "breached" and state["resolution"]["state"] == "running"
