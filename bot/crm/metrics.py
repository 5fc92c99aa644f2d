"""The support lead's dashboard: service measures over a date range, computed from stored rows.

Nothing here is a stored counter: every figure is read from conversations, handoffs, tickets,
surveys and customers when asked for. A range [start, end] covers start 00:00 UTC up to (not
including) end + 1 day 00:00 UTC; a conversation belongs to the day it started, a ticket to the
day it was opened, a hand-over to the day it was asked for and a survey answer to the day it came.

- Resolution (bot/crm/resolution.py): each conversation in the range is confirmed, assumed, not
  resolved, handed to a person or still pending. Containment = (confirmed + assumed) / the
  conversations classified (pending ones are left out); escalation rate = handed / classified.
  Shown in total, per day (per week for ranges over 31 days), per topic, and as the topics most
  often unanswered or unhelpful, each with an example of what the customer said.
- Response times in minutes: chat first response (first agent reply - hand-over requested), ticket
  first response (first_responded_at - created_at) and resolution (resolved_at - created_at).
  The median is the middle value (the mean of the two middle ones for an even count); p90 is the
  nearest-rank percentile: the smallest value with at least 90% of the values at or below it.
  Only finished intervals count; None when there are none.
- SLA compliance per target, over tickets opened in the range that have that due time and were
  either done (answered / resolved) or are past due by `now`: met = done at or before the due
  time and never marked breached; missed = the others. Tickets still inside their time are left
  out, so a fresh range does not look worse or better than it is.
- CSAT: answered surveys (1-5) that rate a service episode (bot/crm/csat.py); satisfied = 4 or 5.
- Value tiers and life-cycle stages are the customers as they stand now, whatever the range.

Counting happens in SQL (GROUP BY); only the two timestamps of each finished interval are fetched
for the percentiles.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property
from typing import Any

from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.orm import Session

from bot.crm import resolution
from bot.crm.models import (
    Conversation,
    CsatSurvey,
    Customer,
    Handoff,
    LifecycleStage,
    SurveyStatus,
    Ticket,
    ValueTier,
)

CHART_IDS: tuple[str, ...] = (
    "volume",
    "containment",
    "resolution_over_time",
    "resolution_topics",
    "unresolved_topics",
    "response_times",
    "sla",
    "csat",
    "complaint_categories",
    "channels",
    "value_tiers",
    "lifecycle",
)
# Ranges longer than this are shown per week (weeks start on Monday) rather than per day.
DAILY_UP_TO_DAYS = 31
TOP_TOPICS = 12
TOP_UNRESOLVED = 10


@dataclass(frozen=True)
class Chart:
    """One chart: `rows` are [label, number, ...] in the order of `columns`."""

    id: str
    title: str
    kind: str  # "bar" or "line"
    unit: str
    columns: list[str]
    rows: list[list[Any]]
    headline: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Dashboard:
    start: date
    end: date
    generated_at: datetime
    charts: list[Chart]

    def chart(self, chart_id: str) -> Chart:
        for chart in self.charts:
            if chart.id == chart_id:
                return chart
        raise KeyError(chart_id)

    def as_dict(self) -> dict[str, Any]:
        return {
            "range": {"from": self.start.isoformat(), "to": self.end.isoformat()},
            "generated_at": self.generated_at.isoformat(),
            "charts": [chart.as_dict() for chart in self.charts],
        }


def dashboard(
    session: Session, start: date, end: date, now: datetime, only: Iterable[str] | None = None
) -> Dashboard:
    """Every chart (or those in `only`, in the usual order) for the days start..end inclusive."""
    if end < start:
        raise ValueError(f"the range ends ({end}) before it starts ({start})")
    wanted = set(CHART_IDS if only is None else only)
    unknown = wanted - set(CHART_IDS)
    if unknown:
        raise KeyError(", ".join(sorted(unknown)))
    facts = _Facts(session, start, end, now)
    charts = [_BUILDERS[chart_id](facts) for chart_id in CHART_IDS if chart_id in wanted]
    return Dashboard(start, end, now, charts)


# --- arithmetic ---------------------------------------------------------------------------------


def percent(part: int, whole: int) -> float | None:
    return round(100 * part / whole, 1) if whole else None


def median(values: Sequence[float]) -> float | None:
    return round(statistics.median(values), 1) if values else None


def nearest_rank(values: Sequence[float], pct: float) -> float | None:
    """The smallest value with at least `pct`% of the values at or below it."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return round(ordered[rank - 1], 1)


# --- reading the rows ---------------------------------------------------------------------------


class _Facts:
    """The queries behind the charts, each run once and only when a chart needs it."""

    def __init__(self, session: Session, start: date, end: date, now: datetime) -> None:
        self.session, self.start, self.end, self.now = session, start, end, now
        self.lower = datetime.combine(start, time(0), tzinfo=UTC)
        self.upper = datetime.combine(end + timedelta(days=1), time(0), tzinfo=UTC)
        self.dialect = session.get_bind().dialect.name

    def _within(self, column: Any) -> ColumnElement[bool]:
        return (column >= self.lower) & (column < self.upper)

    def _utc_day(self, column: Any) -> ColumnElement[str]:
        """The UTC calendar day of a timestamp as 'YYYY-MM-DD', computed by the database."""
        if self.dialect == "postgresql":
            return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD")
        # SQLite keeps UTC timestamps as 'YYYY-MM-DD HH:MM:SS...' text (see models.UTCDateTime).
        return func.substr(column, 1, 10)

    @cached_property
    def conversations(self) -> list[tuple[str, str, int, int]]:
        """(day, channel, conversations, of which handed to a person) for the range."""
        handed = select(Handoff.id).where(Handoff.conversation_id == Conversation.id).exists()
        day = self._utc_day(Conversation.created_at).label("day")
        rows = self.session.execute(
            select(day, Conversation.channel, func.count(), func.sum(case((handed, 1), else_=0)))
            .where(self._within(Conversation.created_at))
            .group_by(day, Conversation.channel)
        )
        return [(d, channel, int(total), int(escalated or 0)) for d, channel, total, escalated in rows]

    @cached_property
    def chat_first_responses(self) -> list[float]:
        rows = self.session.execute(
            select(Handoff.requested_at, Handoff.first_agent_reply_at).where(
                self._within(Handoff.requested_at), Handoff.first_agent_reply_at.is_not(None)
            )
        ).tuples()
        return [(replied - requested).total_seconds() / 60 for requested, replied in rows if replied]

    @cached_property
    def ticket_times(self) -> tuple[list[float], list[float]]:
        """Minutes to the first response and to resolution, for tickets opened in the range."""
        rows = self.session.execute(
            select(Ticket.created_at, Ticket.first_responded_at, Ticket.resolved_at).where(
                self._within(Ticket.created_at),
                Ticket.first_responded_at.is_not(None) | Ticket.resolved_at.is_not(None),
            )
        ).tuples()
        first, resolution = [], []
        for created, responded, resolved in rows:
            if responded is not None:
                first.append((responded - created).total_seconds() / 60)
            if resolved is not None:
                resolution.append((resolved - created).total_seconds() / 60)
        return first, resolution

    @cached_property
    def sla(self) -> dict[str, tuple[int, int]]:
        """(met, missed) per target."""
        columns: list[Any] = []
        targets = (
            (
                "first response",
                Ticket.first_responded_at,
                Ticket.sla_first_response_due,
                Ticket.sla_first_response_breached_at,
            ),
            ("resolution", Ticket.resolved_at, Ticket.sla_resolution_due, Ticket.sla_resolution_breached_at),
        )
        for _name, done, due, breached in targets:
            counted = due.is_not(None) & (done.is_not(None) | (due < self.now) | breached.is_not(None))
            met = done.is_not(None) & (done <= due) & breached.is_(None)
            # Spelled out rather than `~met`: NOT of a NULL comparison is NULL, not true.
            missed = done.is_(None) | (done > due) | breached.is_not(None)
            columns += [
                func.sum(case((counted & met, 1), else_=0)),
                func.sum(case((counted & missed, 1), else_=0)),
            ]
        row = self.session.execute(select(*columns).where(self._within(Ticket.created_at))).one()
        return {
            name: (int(row[2 * i] or 0), int(row[2 * i + 1] or 0)) for i, (name, *_cols) in enumerate(targets)
        }

    @cached_property
    def csat(self) -> dict[int, int]:
        rows = self.session.execute(
            select(CsatSurvey.score, func.count())
            .where(
                CsatSurvey.status == SurveyStatus.ANSWERED,
                CsatSurvey.score.is_not(None),
                # Only ratings of a real service episode: not a chat's repeated "let me rate you".
                CsatSurvey.episode.is_not(None),
                self._within(CsatSurvey.answered_at),
            )
            .group_by(CsatSurvey.score)
        )
        return {int(score): int(count) for score, count in rows}

    @cached_property
    def complaint_categories(self) -> list[tuple[str, int]]:
        count = func.count().label("complaints")
        rows = self.session.execute(
            select(Ticket.category, count)
            .where(Ticket.kind == "complaint", self._within(Ticket.created_at))
            .group_by(Ticket.category)
            .order_by(count.desc(), Ticket.category)
        )
        return [(category, int(n)) for category, n in rows]

    @cached_property
    def verdicts(self) -> list[tuple[date, resolution.Verdict]]:
        """(day started, verdict) for each conversation that started in the range."""
        within, day = self._within(Conversation.created_at), self._utc_day(Conversation.created_at)
        days: dict[str, date] = {}
        verdicts = []
        for chat in resolution.load_chats(self.session, within, self.now, day):
            started = days.get(chat.day) or days.setdefault(chat.day, date.fromisoformat(chat.day))
            verdicts.append((started, resolution.classify(chat, self.now)))
        return verdicts

    def customers_by(self, column: Any) -> dict[Any, int]:
        return {
            value: int(n) for value, n in self.session.execute(select(column, func.count()).group_by(column))
        }


# --- the charts ---------------------------------------------------------------------------------


def _volume(facts: _Facts) -> Chart:
    per_day: dict[str, list[int]] = {}
    for label, _channel, total, handed in facts.conversations:
        counts = per_day.setdefault(label, [0, 0])
        counts[0] += total
        counts[1] += handed
    rows: list[list[Any]] = []
    day = facts.start
    while day <= facts.end:
        total, handed = per_day.get(day.isoformat(), (0, 0))
        rows.append([day.isoformat(), total, handed])
        day += timedelta(days=1)
    busiest = max(rows, key=lambda row: row[1]) if rows else None
    return Chart(
        "volume",
        "Conversations per day",
        "line",
        "conversations",
        ["date", "conversations", "handed_to_person"],
        rows,
        {
            "conversations": sum(row[1] for row in rows),
            "handed_to_person": sum(row[2] for row in rows),
            "average_per_day": round(sum(row[1] for row in rows) / len(rows), 1),
            "busiest_day": busiest[0] if busiest and busiest[1] else None,
        },
    )


def _counts(verdicts: Iterable[resolution.Verdict]) -> dict[str, int]:
    counts = dict.fromkeys((*resolution.CATEGORIES, resolution.PENDING), 0)
    for verdict in verdicts:
        counts[verdict.category] += 1
    return counts


def _containment_of(counts: dict[str, int]) -> float | None:
    classified = sum(counts[category] for category in resolution.CATEGORIES)
    return percent(counts[resolution.CONFIRMED] + counts[resolution.ASSUMED], classified)


def _containment(facts: _Facts) -> Chart:
    counts = _counts(verdict for _day, verdict in facts.verdicts)
    classified = sum(counts[category] for category in resolution.CATEGORIES)
    return Chart(
        "containment",
        "How conversations ended",
        "bar",
        "conversations",
        ["outcome", "conversations", "percent"],
        [
            [resolution.LABELS[category], counts[category], percent(counts[category], classified)]
            for category in resolution.CATEGORIES
        ],
        {
            "containment_percent": _containment_of(counts),
            "confirmed_percent": percent(counts[resolution.CONFIRMED], classified),
            "escalation_rate_percent": percent(counts[resolution.HANDED], classified),
            "classified": classified,
            "pending": counts[resolution.PENDING],
            "conversations": classified + counts[resolution.PENDING],
        },
    )


def _periods(facts: _Facts) -> tuple[str, list[date]]:
    """("date", every day) for short ranges; ("week", each Monday) for long ones."""
    if (facts.end - facts.start).days + 1 <= DAILY_UP_TO_DAYS:
        return "date", [facts.start + timedelta(days=n) for n in range((facts.end - facts.start).days + 1)]
    first = facts.start - timedelta(days=facts.start.weekday())
    return "week", [first + timedelta(weeks=n) for n in range((facts.end - first).days // 7 + 1)]


def _resolution_over_time(facts: _Facts) -> Chart:
    unit, periods = _periods(facts)
    per: dict[date, list[resolution.Verdict]] = {period: [] for period in periods}
    for day, verdict in facts.verdicts:
        per[day - timedelta(days=day.weekday()) if unit == "week" else day].append(verdict)
    rows: list[list[Any]] = []
    for period in periods:
        counts = _counts(per[period])
        rows.append(
            [
                period.isoformat(),
                *(counts[category] for category in resolution.CATEGORIES),
                counts[resolution.PENDING],
                _containment_of(counts),
            ]
        )
    return Chart(
        "resolution_over_time",
        f"How conversations ended, per {'day' if unit == 'date' else 'week'}",
        "line",
        "conversations",
        [unit, *resolution.CATEGORIES, resolution.PENDING, "containment_percent"],
        rows,
        {"periods": len(rows), "per": "day" if unit == "date" else "week"},
    )


def _resolution_topics(facts: _Facts) -> Chart:
    per_topic: dict[str, list[resolution.Verdict]] = {}
    for _day, verdict in facts.verdicts:
        if verdict.category != resolution.PENDING:
            per_topic.setdefault(verdict.topic, []).append(verdict)
    ranked = sorted(per_topic.items(), key=lambda item: (-len(item[1]), item[0]))
    shown, rest = ranked[:TOP_TOPICS], [v for _topic, vs in ranked[TOP_TOPICS:] for v in vs]
    if rest:
        shown.append(("all other topics", rest))
    rows: list[list[Any]] = []
    for topic, verdicts in shown:
        counts = _counts(verdicts)
        rows.append(
            [topic, *(counts[category] for category in resolution.CATEGORIES), _containment_of(counts)]
        )
    return Chart(
        "resolution_topics",
        "How conversations ended, per topic",
        "bar",
        "conversations",
        ["topic", *resolution.CATEGORIES, "containment_percent"],
        rows,
        {"topics": len(per_topic)},
    )


def _unresolved_topics(facts: _Facts) -> Chart:
    groups: dict[tuple[str, str], list[resolution.Verdict]] = {}
    for _day, verdict in facts.verdicts:
        if verdict.category != resolution.NOT_RESOLVED or verdict.reason is None:
            continue
        why = "unanswered" if verdict.reason in resolution.UNANSWERED_REASONS else "unhelpful"
        groups.setdefault((verdict.topic, why), []).append(verdict)
    ranked = sorted(groups.items(), key=lambda item: (-len(item[1]), item[0]))[:TOP_UNRESOLVED]
    rows: list[list[Any]] = [
        # The latest example: what customers say about it now.
        [topic, why, len(verdicts), resolution.example_for(facts.session, verdicts[-1])]
        for (topic, why), verdicts in ranked
    ]
    return Chart(
        "unresolved_topics",
        "Topics most often unanswered or unhelpful",
        "bar",
        "conversations",
        ["topic", "why", "conversations", "example"],
        rows,
        {
            "unanswered": sum(len(v) for (_t, why), v in groups.items() if why == "unanswered"),
            "unhelpful": sum(len(v) for (_t, why), v in groups.items() if why == "unhelpful"),
        },
    )


def _response_times(facts: _Facts) -> Chart:
    first, resolution = facts.ticket_times
    measures = (
        ("chat first response", facts.chat_first_responses),
        ("ticket first response", first),
        ("ticket resolution", resolution),
    )
    rows: list[list[Any]] = [
        [name, median(values), nearest_rank(values, 90), len(values)] for name, values in measures
    ]
    return Chart(
        "response_times",
        "Response and resolution times",
        "bar",
        "minutes",
        ["measure", "median_minutes", "p90_minutes", "count"],
        rows,
        {
            "chat_first_response_median_minutes": rows[0][1],
            "ticket_first_response_median_minutes": rows[1][1],
            "ticket_resolution_median_minutes": rows[2][1],
        },
    )


def _sla(facts: _Facts) -> Chart:
    rows: list[list[Any]] = [
        [name, met, missed, percent(met, met + missed)] for name, (met, missed) in facts.sla.items()
    ]
    return Chart(
        "sla",
        "SLA compliance",
        "bar",
        "tickets",
        ["target", "met", "missed", "compliance_percent"],
        rows,
        {
            "first_response_compliance_percent": rows[0][3],
            "resolution_compliance_percent": rows[1][3],
            "missed": rows[0][2] + rows[1][2],
        },
    )


def _csat(facts: _Facts) -> Chart:
    counts = facts.csat
    answers = sum(counts.values())
    total = sum(score * n for score, n in counts.items())
    satisfied = counts.get(4, 0) + counts.get(5, 0)
    return Chart(
        "csat",
        "Satisfaction answers",
        "bar",
        "answers",
        ["score", "answers"],
        [[str(score), counts.get(score, 0)] for score in range(1, 6)],
        {
            "average": round(total / answers, 2) if answers else None,
            "satisfied_percent": percent(satisfied, answers),
            "answers": answers,
        },
    )


def _complaint_categories(facts: _Facts) -> Chart:
    rows: list[list[Any]] = [[category, n] for category, n in facts.complaint_categories]
    return Chart(
        "complaint_categories",
        "Complaints by category",
        "bar",
        "tickets",
        ["category", "complaints"],
        rows,
        {"complaints": sum(row[1] for row in rows), "top_category": rows[0][0] if rows else None},
    )


def _channels(facts: _Facts) -> Chart:
    per_channel: dict[str, int] = {}
    for _day, channel, total, _handed in facts.conversations:
        per_channel[channel] = per_channel.get(channel, 0) + total
    rows: list[list[Any]] = [
        [channel, n] for channel, n in sorted(per_channel.items(), key=lambda item: (-item[1], item[0]))
    ]
    return Chart(
        "channels",
        "Conversations by channel",
        "bar",
        "conversations",
        ["channel", "conversations"],
        rows,
        {"conversations": sum(per_channel.values()), "channels": len(rows)},
    )


def _value_tiers(facts: _Facts) -> Chart:
    counts = facts.customers_by(Customer.value_tier)
    rows: list[list[Any]] = [[tier.value, counts.get(tier, 0)] for tier in ValueTier]
    return Chart(
        "value_tiers",
        "Customers by value tier (now)",
        "bar",
        "customers",
        ["tier", "customers"],
        rows,
        {"customers": sum(counts.values()), "vip": counts.get(ValueTier.VIP, 0)},
    )


def _lifecycle(facts: _Facts) -> Chart:
    counts = facts.customers_by(Customer.lifecycle_stage)
    rows: list[list[Any]] = [[stage.value, counts.get(stage, 0)] for stage in LifecycleStage]
    return Chart(
        "lifecycle",
        "Customers by life-cycle stage (now)",
        "bar",
        "customers",
        ["stage", "customers"],
        rows,
        {"customers": sum(counts.values()), "declining": counts.get(LifecycleStage.DECLINING, 0)},
    )


_BUILDERS: dict[str, Callable[[_Facts], Chart]] = {
    "volume": _volume,
    "containment": _containment,
    "resolution_over_time": _resolution_over_time,
    "resolution_topics": _resolution_topics,
    "unresolved_topics": _unresolved_topics,
    "response_times": _response_times,
    "sla": _sla,
    "csat": _csat,
    "complaint_categories": _complaint_categories,
    "channels": _channels,
    "value_tiers": _value_tiers,
    "lifecycle": _lifecycle,
}
assert tuple(_BUILDERS) == CHART_IDS
