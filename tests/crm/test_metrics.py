"""The dashboard's measures on a small scenario built by hand, where every figure is known exactly.

The range is 2026-03-02 .. 2026-03-04 (3 days, the 3rd empty). Rows just outside it (23:59:59 the
day before, 00:00 the day after) must not count; rows at its edges must.
"""

from __future__ import annotations

import secrets
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy.orm import Session

from bot.crm import metrics
from bot.crm.db import make_engine, make_sessionmaker
from bot.crm.migrate import upgrade_database
from bot.crm.models import (
    AuthorKind,
    Conversation,
    CsatSurvey,
    Customer,
    Direction,
    Handoff,
    LifecycleStage,
    Message,
    MessageStatus,
    SurveyStatus,
    Ticket,
    ValueTier,
)
from bot.settings import Settings

START, END = date(2026, 3, 2), date(2026, 3, 4)
NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def at(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, second, tzinfo=UTC)


def conversation(session: Session, channel: str, created_at: datetime) -> Conversation:
    made = Conversation(
        channel=channel,
        external_id=f"visitor-{created_at.isoformat()}",
        sender_id=f"sender-{channel}-{created_at.timestamp()}",
        created_at=created_at,
        updated_at=created_at,
    )
    session.add(made)
    session.flush()
    return made


def handoff(
    session: Session, chat: Conversation, requested_at: datetime, reply_after_minutes: float | None
) -> None:
    reply = None if reply_after_minutes is None else requested_at + timedelta(minutes=reply_after_minutes)
    session.add(
        Handoff(
            conversation_id=chat.id,
            reason="customer_asked",
            requested_at=requested_at,
            claimed_at=reply,
            first_agent_reply_at=reply,
        )
    )


def ticket(
    session: Session,
    created_at: datetime,
    *,
    kind: str = "complaint",
    category: str = "product_defect",
    first_due: timedelta | None = None,
    first_after: timedelta | None = None,
    first_breached: bool = False,
    resolution_due: timedelta | None = None,
    resolved_after: timedelta | None = None,
    resolution_breached: bool = False,
) -> None:
    # No customer on these tickets, so the rescoring hooks leave the customers below alone.
    def plus(delta: timedelta | None) -> datetime | None:
        return None if delta is None else created_at + delta

    first_due_at, resolution_due_at = plus(first_due), plus(resolution_due)
    session.add(
        Ticket(
            reference=f"T-{secrets.token_hex(4)}",
            kind=kind,
            category=category,
            subject="test",
            created_at=created_at,
            updated_at=created_at,
            sla_first_response_due=first_due_at,
            sla_resolution_due=resolution_due_at,
            first_responded_at=plus(first_after),
            resolved_at=plus(resolved_after),
            sla_first_response_breached_at=first_due_at + timedelta(minutes=1)
            if first_breached and first_due_at
            else None,
            sla_resolution_breached_at=resolution_due_at + timedelta(minutes=1)
            if resolution_breached and resolution_due_at
            else None,
        )
    )
    session.flush()


def survey(
    session: Session,
    answered_at: datetime | None,
    score: int | None,
    status: SurveyStatus,
    episode: str | None = "",
) -> None:
    """A survey of a service episode (a fresh one unless given; None: a survey about nothing)."""
    session.add(
        CsatSurvey(
            episode=f"handoff:{secrets.token_hex(4)}" if episode == "" else episode,
            trigger="conversation_end",
            status=status,
            score=score,
            requested_at=(answered_at or NOW) - timedelta(minutes=5),
            answered_at=answered_at,
        )
    )


def customer(session: Session, n: int, tier: ValueTier, stage: LifecycleStage) -> None:
    session.add(Customer(name=f"C{n}", email=f"c{n}@example.com", value_tier=tier, lifecycle_stage=stage))


H, M = timedelta(hours=1), timedelta(minutes=1)


def build_scenario(s: Session) -> None:
    conversation(s, "web", at(2, 0, 0, 0))  # first instant of the range: counts
    c2 = conversation(s, "web", at(2, 10))
    handoff(s, c2, at(2, 10, 5), 12)
    conversation(s, "telegram", at(2, 23, 59, 59))
    c4 = conversation(s, "web", at(4, 8))
    handoff(s, c4, at(4, 8, 1), 4)
    handoff(s, c4, at(4, 9), 30)  # a second hand-over: still one conversation handed to a person
    handoff(s, c4, at(4, 10), None)  # nobody answered yet: no chat response time
    c5 = conversation(s, "telegram", at(4, 23, 59))
    handoff(s, c5, at(5, 0, 2), 8)  # asked for after the range: handed, but its time is not counted
    c6 = conversation(s, "web", at(1, 23, 59, 59))  # the day before
    handoff(s, c6, at(1, 23, 59, 59), 3)
    conversation(s, "web", at(5, 0, 0, 0))  # the day after

    # Tickets: minutes to first response 60, 120, 10, 30; to resolution 360, 1380, 30, 1500.
    ticket(s, at(2, 10), first_due=2 * H, first_after=60 * M, resolution_due=24 * H, resolved_after=6 * H)
    ticket(
        s, at(3, 9), first_due=H, first_after=2 * H, first_breached=True,
        resolution_due=24 * H, resolved_after=23 * H,
    )  # fmt: skip
    ticket(s, at(3, 10), first_due=H, first_after=10 * M, resolution_due=20 * M, resolved_after=30 * M)
    # Never answered; both targets past due by NOW.
    ticket(
        s, at(4, 12), category="billing", first_due=H, first_breached=True, resolution_due=48 * H,
        resolution_breached=True,
    )  # fmt: skip
    # Still inside both targets at NOW: not counted for the SLA.
    ticket(s, at(4, 13), kind="refund", category="billing", first_due=7 * 24 * H, resolution_due=8 * 24 * H)
    ticket(
        s, at(4, 14), kind="delivery", category="delivery_problem", first_due=H, first_after=30 * M,
        resolution_due=24 * H, resolved_after=25 * H, resolution_breached=True,
    )  # fmt: skip
    ticket(s, at(4, 15), category="website_app")  # no SLA at all
    ticket(s, at(1, 23, 59, 59), category="staff_attitude", first_due=H, first_after=M)  # before
    ticket(s, at(5, 0), category="other", first_due=H, first_after=M)  # after

    for when, score in (
        (at(2, 12), 5), (at(3, 9), 4), (at(3, 18), 5), (at(4, 23, 59, 59), 1), (at(4, 7), 3),
        (at(5, 0), 1), (at(1, 23, 59), 2),
    ):  # fmt: skip
        survey(s, when, score, SurveyStatus.ANSWERED)
    survey(s, None, None, SurveyStatus.ASKED)

    for n, (tier, stage) in enumerate(
        [
            (ValueTier.VIP, LifecycleStage.MATURE),
            (ValueTier.VIP, LifecycleStage.DECLINING),
            (ValueTier.KEY, LifecycleStage.MATURE),
            (ValueTier.REGULAR, LifecycleStage.NEW),
            (ValueTier.REGULAR, LifecycleStage.GROWING),
            (ValueTier.REGULAR, LifecycleStage.CHURNED),
        ]
    ):
        customer(s, n, tier, stage)
    s.flush()


@pytest.fixture
def scenario(db_session: Session) -> Session:
    build_scenario(db_session)
    return db_session


def _board(session: Session, start: date = START, end: date = END) -> metrics.Dashboard:
    return metrics.dashboard(session, start, end, NOW)


def test_every_chart_is_there_in_a_fixed_order_with_rows_matching_its_columns(scenario: Session) -> None:
    board = _board(scenario)
    assert [chart.id for chart in board.charts] == list(metrics.CHART_IDS)
    for chart in board.charts:
        assert chart.kind in ("bar", "line") and chart.title and chart.unit
        assert all(len(row) == len(chart.columns) for row in chart.rows), chart.id
    assert board.chart("volume").kind == "line"
    assert board.as_dict()["range"] == {"from": "2026-03-02", "to": "2026-03-04"}


def test_volume_has_every_day_with_zeros_and_respects_the_boundaries(scenario: Session) -> None:
    volume = _board(scenario).chart("volume")
    assert volume.columns == ["date", "conversations", "handed_to_person"]
    assert volume.rows == [["2026-03-02", 3, 1], ["2026-03-03", 0, 0], ["2026-03-04", 2, 2]]
    assert volume.headline["conversations"] == 5
    assert volume.headline["busiest_day"] == "2026-03-02"


def test_containment_counts_only_resolutions_and_a_handoff_once(scenario: Session) -> None:
    chart = _board(scenario).chart("containment")
    # The two chats not handed over never got an answer: the old figure called them contained (40%).
    assert chart.rows == [
        ["confirmed", 0, 0.0],
        ["assumed", 0, 0.0],
        ["not resolved", 2, 40.0],
        ["handed to a person", 3, 60.0],
    ]
    assert chart.headline == {
        "containment_percent": 0.0,
        "confirmed_percent": 0.0,
        "escalation_rate_percent": 60.0,
        "classified": 5,
        "pending": 0,
        "conversations": 5,
    }


def _say(
    session: Session, chat: Conversation, author: AuthorKind, text: str, when: datetime, **meta: str
) -> None:
    customer = author is AuthorKind.CUSTOMER
    session.add(
        Message(
            conversation_id=chat.id,
            channel=chat.channel,
            direction=Direction.INBOUND if customer else Direction.OUTBOUND,
            author_kind=author,
            text=text,
            payload={"buttons": [], "metadata": meta},
            status=MessageStatus.PROCESSED if customer else MessageStatus.SENT,
            created_at=when,
        )
    )
    session.flush()


def test_resolution_per_day_per_topic_and_the_unresolved_topics(db_session: Session) -> None:
    s, now = db_session, at(4, 12)
    for n, day in enumerate((2, 2, 3)):  # order status given: confirmed
        chat = conversation(s, "web", at(day, 9, n))
        _say(s, chat, AuthorKind.CUSTOMER, "where is my order?", at(day, 9, n))
        _say(s, chat, AuthorKind.BOT, "Order #1 is in transit.", at(day, 9, n), outcome="order_status")
    quiet = conversation(s, "web", at(2, 11))  # an article, then silence for two days: assumed
    _say(s, quiet, AuthorKind.CUSTOMER, "how do returns work?", at(2, 11))
    _say(s, quiet, AuthorKind.BOT, "You have 30 days.", at(2, 11), kb_article="return-policy")
    fresh = conversation(s, "web", at(4, 2))  # the same, 10 hours before now: pending
    _say(s, fresh, AuthorKind.CUSTOMER, "how do returns work?", at(4, 2))
    _say(s, fresh, AuthorKind.BOT, "You have 30 days.", at(4, 2), kb_article="return-policy")
    for n, question in enumerate(("do you sell zips?", "do you sell buttons?")):
        gap = conversation(s, "telegram", at(3, 14, n))
        _say(s, gap, AuthorKind.CUSTOMER, question, at(3, 14, n))
        _say(s, gap, AuthorKind.BOT, "I'm sorry, I don't have an answer to that yet. Noted.", at(3, 14, n))
    handed = conversation(s, "web", at(3, 15))
    handoff(s, handed, at(3, 15), 5)
    s.flush()

    board = metrics.dashboard(s, START, END, now)
    assert board.chart("containment").rows == [
        ["confirmed", 3, 42.9],
        ["assumed", 1, 14.3],
        ["not resolved", 2, 28.6],
        ["handed to a person", 1, 14.3],
    ]
    assert board.chart("containment").headline["containment_percent"] == 57.1
    assert board.chart("containment").headline["pending"] == 1

    over_time = board.chart("resolution_over_time")
    assert over_time.columns == [
        "date",
        "confirmed",
        "assumed",
        "not_resolved",
        "handed",
        "pending",
        "containment_percent",
    ]
    assert over_time.rows == [
        ["2026-03-02", 2, 1, 0, 0, 0, 100.0],
        ["2026-03-03", 1, 0, 2, 1, 0, 25.0],
        ["2026-03-04", 0, 0, 0, 0, 1, None],
    ]

    topics = board.chart("resolution_topics")
    assert topics.rows == [
        ["order status", 3, 0, 0, 0, 100.0],
        ["no answer", 0, 0, 2, 0, 0.0],
        ["other", 0, 0, 0, 1, 0.0],
        ["return-policy", 0, 1, 0, 0, 100.0],
    ]
    assert board.chart("unresolved_topics").rows == [["no answer", "unanswered", 2, "do you sell buttons?"]]


def test_long_ranges_are_shown_per_week(db_session: Session) -> None:
    chat = conversation(db_session, "web", at(4, 9))  # a Wednesday
    _say(db_session, chat, AuthorKind.CUSTOMER, "where is it?", at(4, 9))
    _say(db_session, chat, AuthorKind.BOT, "In transit.", at(4, 9), outcome="order_status")
    chart = metrics.dashboard(db_session, date(2026, 2, 1), date(2026, 3, 31), NOW).chart(
        "resolution_over_time"
    )
    assert chart.columns[0] == "week" and chart.headline["per"] == "week"
    assert chart.rows[0][0] == "2026-01-26"  # the Monday of the week of 1 February
    assert ["2026-03-02", 1, 0, 0, 0, 0, 100.0] in chart.rows
    assert sum(row[1] for row in chart.rows) == 1


def test_response_times_give_median_and_nearest_rank_p90(scenario: Session) -> None:
    chart = _board(scenario).chart("response_times")
    assert chart.columns == ["measure", "median_minutes", "p90_minutes", "count"]
    assert chart.rows == [
        ["chat first response", 12.0, 30.0, 3],  # 4, 12, 30
        ["ticket first response", 45.0, 120.0, 4],  # 10, 30, 60, 120
        ["ticket resolution", 870.0, 1500.0, 4],  # 30, 360, 1380, 1500
    ]
    assert chart.headline["ticket_resolution_median_minutes"] == 870.0


def test_sla_counts_only_done_or_overdue_tickets(scenario: Session) -> None:
    chart = _board(scenario).chart("sla")
    assert chart.rows == [
        # met: answered in time (3); missed: answered late and breached, never answered (2)
        ["first response", 3, 2, 60.0],
        # met: 2; missed: resolved late (not marked), never resolved, resolved late and breached
        ["resolution", 2, 3, 40.0],
    ]


def test_sla_waits_for_a_ticket_still_inside_its_time(db_session: Session) -> None:
    ticket(db_session, at(4, 12), first_due=H, resolution_due=48 * H)  # nothing done yet

    waiting = metrics.dashboard(db_session, START, END, at(4, 12, 59)).chart("sla")
    overdue = metrics.dashboard(db_session, START, END, at(4, 13, 1)).chart("sla")

    assert waiting.rows == [["first response", 0, 0, None], ["resolution", 0, 0, None]]
    assert overdue.rows == [["first response", 0, 1, 0.0], ["resolution", 0, 0, None]]


def test_a_ticket_marked_breached_counts_as_missed_whatever_its_times(db_session: Session) -> None:
    # E.g. answered on time by the clock but the scheduler had flagged it first: the flag wins.
    ticket(db_session, at(2, 9), first_due=H, first_after=30 * M, first_breached=True)

    chart = metrics.dashboard(db_session, START, END, NOW).chart("sla")

    assert chart.rows[0] == ["first response", 0, 1, 0.0]


def test_csat_distribution_average_and_satisfied_share(scenario: Session) -> None:
    chart = _board(scenario).chart("csat")
    assert chart.rows == [["1", 1], ["2", 0], ["3", 1], ["4", 1], ["5", 2]]
    assert chart.headline == {"average": 3.6, "satisfied_percent": 60.0, "answers": 5}


def test_csat_leaves_out_ratings_of_no_service_episode(scenario: Session) -> None:
    # An anonymous chat that said "I'd like to rate your service" over and over, before episodes.
    for _ in range(3):
        survey(scenario, at(2, 10), 1, SurveyStatus.ANSWERED, episode=None)
    scenario.flush()
    chart = _board(scenario).chart("csat")
    assert chart.rows == [["1", 1], ["2", 0], ["3", 1], ["4", 1], ["5", 2]]
    assert chart.headline["answers"] == 5


def test_complaint_categories_most_first_and_only_complaints(scenario: Session) -> None:
    chart = _board(scenario).chart("complaint_categories")
    assert chart.rows == [["product_defect", 3], ["billing", 1], ["website_app", 1]]
    assert chart.headline == {"complaints": 5, "top_category": "product_defect"}


def test_channels_and_customers(scenario: Session) -> None:
    board = _board(scenario)
    assert board.chart("channels").rows == [["web", 3], ["telegram", 2]]
    assert board.chart("value_tiers").rows == [["vip", 2], ["key", 1], ["regular", 3]]
    assert board.chart("lifecycle").rows == [
        ["prospect", 0], ["new", 1], ["growing", 1], ["mature", 2], ["declining", 1], ["churned", 1],
    ]  # fmt: skip


def test_a_single_day_range(scenario: Session) -> None:
    board = _board(scenario, date(2026, 3, 4), date(2026, 3, 4))
    assert board.chart("volume").rows == [["2026-03-04", 2, 2]]
    assert board.chart("channels").rows == [["telegram", 1], ["web", 1]]
    assert board.chart("response_times").rows[0] == ["chat first response", 17.0, 30.0, 2]


def test_an_empty_range_has_zeros_and_no_made_up_figures(db_session: Session) -> None:
    board = _board(db_session)
    assert board.chart("volume").rows == [[d, 0, 0] for d in ("2026-03-02", "2026-03-03", "2026-03-04")]
    assert board.chart("containment").headline["containment_percent"] is None
    assert all(row[1:] == [None, None, 0] for row in board.chart("response_times").rows)
    assert board.chart("sla").rows == [["first response", 0, 0, None], ["resolution", 0, 0, None]]
    assert board.chart("csat").headline == {"average": None, "satisfied_percent": None, "answers": 0}
    assert board.chart("complaint_categories").rows == []


def test_a_range_that_ends_before_it_starts_is_refused(db_session: Session) -> None:
    with pytest.raises(ValueError, match="before it starts"):
        metrics.dashboard(db_session, END, START, NOW)


def test_only_some_charts(scenario: Session) -> None:
    board = metrics.dashboard(scenario, START, END, NOW, only=["csat", "volume"])
    assert [chart.id for chart in board.charts] == ["volume", "csat"]
    with pytest.raises(KeyError):
        metrics.dashboard(scenario, START, END, NOW, only=["nope"])


def test_nearest_rank_percentile() -> None:
    assert metrics.nearest_rank([], 90) is None
    assert metrics.nearest_rank([5.0], 90) == 5.0
    assert metrics.nearest_rank([float(n) for n in range(1, 11)], 90) == 9.0
    assert metrics.nearest_rank([float(n) for n in range(1, 12)], 90) == 10.0
    assert metrics.median([1.0, 2.0, 3.0, 10.0]) == 2.5


@pytest.mark.postgres
def test_postgresql_gives_the_same_figures(scenario: Session, postgres_settings: Settings) -> None:
    # Days are cut in SQL, differently per database: a time zone slip would move the edge rows.
    upgrade_database(postgres_settings)
    engine = make_engine(postgres_settings)
    try:
        with make_sessionmaker(engine).begin() as session:
            build_scenario(session)
            on_postgres = metrics.dashboard(session, START, END, NOW).as_dict()
    finally:
        engine.dispose()
    assert on_postgres == _board(scenario).as_dict()
