"""Hand-over rules on a real database: escalation, what the customer is told, the queue, claims."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.crm import handoff, sla
from bot.crm.conversations import get_or_create_conversation
from bot.crm.db import make_engine, make_sessionmaker
from bot.crm.migrate import upgrade_database
from bot.crm.models import (
    Agent,
    AuditLog,
    Conversation,
    ConversationMode,
    Customer,
    Handoff,
    Message,
    Ticket,
    TicketPriority,
    ValueTier,
)
from bot.demo.seed import seed_demo_data
from bot.errors import Conflict, Forbidden
from bot.settings import Settings

POLICY_FILE = Settings(_env_file=None).sla_policy_file  # type: ignore[call-arg]
# A Tuesday at 10:00 in Berlin (business hours), and the Saturday after it.
TUESDAY_10 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
SATURDAY_10 = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)


@pytest.fixture
def crm(db_sessionmaker: sessionmaker[Session]) -> sessionmaker[Session]:
    with db_sessionmaker.begin() as session:
        seed_demo_data(session, date(2026, 11, 20))
    return db_sessionmaker


def _policy() -> sla.SlaPolicy:
    return sla.load_policy(POLICY_FILE)


def _chat(session: Session, visitor: str, customer_email: str | None = None) -> Conversation:
    conversation = get_or_create_conversation(session, "web", visitor)
    if customer_email:
        customer = session.scalars(select(Customer).where(Customer.email == customer_email)).one()
        conversation.customer_id = customer.id
    session.flush()
    return conversation


def _escalate(session: Session, conversation: Conversation, reason: str, now: datetime) -> handoff.Escalation:
    return handoff.escalate(session, conversation, reason, policy=_policy(), minutes_per_chat=4, now=now)


def _online(session: Session, emails: list[str], now: datetime) -> list[Agent]:
    agents = list(session.scalars(select(Agent).where(Agent.email.in_(emails))))
    for agent in agents:
        agent.last_seen_at = now - timedelta(seconds=10)
    return agents


def test_escalating_queues_the_chat_with_a_ticket_and_an_audit_entry(crm: sessionmaker[Session]) -> None:
    with crm.begin() as session:
        chat = _chat(session, "v1", "ana.souza@example.com")
        escalation = _escalate(session, chat, "customer_asked", TUESDAY_10)
        assert escalation.created and chat.mode is ConversationMode.PENDING_AGENT
        assert escalation.ticket is not None and escalation.ticket.conversation_id == chat.id
        again = _escalate(session, chat, "negative_sentiment", TUESDAY_10)
        assert not again.created and again.handoff.id == escalation.handoff.id
    with crm() as session:
        assert len(session.scalars(select(Handoff)).all()) == 1
        actions = session.scalars(select(AuditLog.action)).all()
        assert "handoff_requested" in actions


def test_an_open_ticket_in_the_chat_is_linked_not_duplicated(crm: sessionmaker[Session]) -> None:
    with crm.begin() as session:
        chat = _chat(session, "v2", "ana.souza@example.com")
        complaint = handoff.tickets.open_ticket(
            session,
            kind="complaint",
            category="damaged_item",
            subject="broken",
            actor="bot",
            conversation_id=chat.id,
            customer_id=chat.customer_id,
            policy=sla.load_policy(POLICY_FILE),
        )
        escalation = _escalate(session, chat, "severe_complaint", TUESDAY_10)
        assert escalation.ticket is not None and escalation.ticket.id == complaint.id
        assert session.scalars(select(Ticket).where(Ticket.conversation_id == chat.id)).all() == [complaint]


def test_the_wait_comes_from_the_queue_and_the_agents_online(crm: sessionmaker[Session]) -> None:
    with crm.begin() as session:
        _online(session, ["ada@kefu.example"], TUESDAY_10)
        first = _escalate(session, _chat(session, "a"), "customer_asked", TUESDAY_10)
        assert "Nobody is waiting ahead of you and 1 person from our team is online" in first.notice
        assert "about 4 minutes" in first.notice
        second = _escalate(session, _chat(session, "b"), "customer_asked", TUESDAY_10 + timedelta(seconds=5))
        assert "1 person is waiting ahead of you" in second.notice and "about 8 minutes" in second.notice
        _online(session, ["ada@kefu.example", "sam@kefu.example"], TUESDAY_10)
        third = _escalate(session, _chat(session, "c"), "customer_asked", TUESDAY_10 + timedelta(seconds=9))
        assert (
            "2 people are waiting ahead of you and 2 people" in third.notice
            and "about 6 minutes" in third.notice
        )


def test_a_long_wait_is_given_in_hours_and_repeated_from_the_queue_until_an_agent_claims(
    crm: sessionmaker[Session],
) -> None:
    with crm.begin() as session:
        [ada] = _online(session, ["ada@kefu.example"], TUESDAY_10)
        for n in range(101):
            _escalate(session, _chat(session, f"ahead-{n}"), "customer_asked", TUESDAY_10)
        last = _chat(session, "last")
        joined = _escalate(session, last, "customer_asked", TUESDAY_10 + timedelta(seconds=1))
        assert "101 people are waiting ahead of you" in joined.notice
        assert "about 7 hours" in joined.notice and "minutes" not in joined.notice
        soon = TUESDAY_10 + timedelta(seconds=2)
        later = handoff.still_waiting_notice(session, last.id, _policy(), 4, soon)
        assert later is not None and "101 people are waiting ahead of you" in later
        assert "about 7 hours" in later and "shortly" not in later
        handoff.claim(session, last.id, ada, now=TUESDAY_10 + timedelta(seconds=3))
        assert handoff.still_waiting_notice(session, last.id, _policy(), 4, TUESDAY_10) is None
    assert [handoff.about(m) for m in (1, 59, 60, 89, 408)] == [
        "about 1 minute",
        "about 59 minutes",
        "about an hour",
        "about an hour",
        "about 7 hours",
    ]


def test_outside_hours_the_customer_hears_when_and_how_we_answer(crm: sessionmaker[Session]) -> None:
    with crm.begin() as session:
        _online(session, ["ada@kefu.example"], SATURDAY_10)
        notice = _escalate(session, _chat(session, "w"), "customer_asked", SATURDAY_10).notice
        assert "Nobody from our team is online right now" in notice
        assert "Monday 30 November at 09:00 (Berlin time)" in notice
        assert "type your e-mail address" in notice
    with crm.begin() as session:
        # In hours but nobody connected: the same promise without a time.
        for agent in session.scalars(select(Agent)):
            agent.last_seen_at = None
        notice = _escalate(session, _chat(session, "x"), "customer_asked", TUESDAY_10).notice
        assert "as soon as someone is back at their desk" in notice


def test_the_queue_puts_the_most_urgent_first_then_the_longest_waiting(crm: sessionmaker[Session]) -> None:
    with crm.begin() as session:
        old = _escalate(session, _chat(session, "old"), "customer_asked", TUESDAY_10)
        new = _escalate(session, _chat(session, "new"), "customer_asked", TUESDAY_10 + timedelta(minutes=5))
        vip = _escalate(session, _chat(session, "vip"), "severe_complaint", TUESDAY_10 + timedelta(minutes=9))
        ada = session.scalars(select(Agent).where(Agent.email == "ada@kefu.example")).one()
        order = [
            row["conversation_id"] for row in handoff.queue(session, ada, TUESDAY_10 + timedelta(minutes=10))
        ]
        assert vip.handoff.priority is not TicketPriority.NORMAL
        assert order == [
            vip.handoff.conversation_id,
            old.handoff.conversation_id,
            new.handoff.conversation_id,
        ]


def test_claim_reply_transfer_and_close(crm: sessionmaker[Session]) -> None:
    with crm.begin() as session:
        chat = _chat(session, "flow", "ana.souza@example.com")
        _escalate(session, chat, "customer_asked", TUESDAY_10)
        ada = session.scalars(select(Agent).where(Agent.email == "ada@kefu.example")).one()
        sam = session.scalars(select(Agent).where(Agent.email == "sam@kefu.example")).one()
        with pytest.raises(Forbidden):
            handoff.agent_reply(session, chat.id, ada, "hello")
        handoff.claim(session, chat.id, ada)
        with pytest.raises(Conflict, match="Ada Agent has already taken"):
            handoff.claim(session, chat.id, sam)
        handoff.agent_reply(session, chat.id, ada, "Hi Ana, I'm looking at it now.")
        taken = handoff.open_handoff(session, chat.id)
        assert taken is not None and taken.first_agent_reply_at is not None
        assert taken.ticket is not None and taken.ticket.first_responded_at is not None
        handoff.transfer(session, chat.id, ada, sam.id)
        with pytest.raises(Forbidden):
            handoff.agent_reply(session, chat.id, ada, "still me?")
        handoff.agent_reply(session, chat.id, sam, "Sam here, taking over.")
        handoff.close(session, chat.id, sam)
        with pytest.raises(Conflict, match="closed"):
            handoff.claim(session, chat.id, ada)
        texts = [m.text for m in session.scalars(select(Message).where(Message.conversation_id == chat.id))]
        assert texts[0].startswith("Ada from our support team has joined")
        assert texts[1:3] == ["Hi Ana, I'm looking at it now.", "Sam here, taking over."]
        assert texts[-1] == handoff.CLOSED_TEXT


def test_hand_back_returns_the_chat_to_the_bot_and_queues_a_survey(crm: sessionmaker[Session]) -> None:
    with crm.begin() as session:
        chat = _chat(session, "back", "ana.souza@example.com")
        _escalate(session, chat, "customer_asked", TUESDAY_10)
        ada = session.scalars(select(Agent).where(Agent.email == "ada@kefu.example")).one()
        handoff.claim(session, chat.id, ada)
        conversation, survey = handoff.hand_back(session, chat.id, ada)
        assert conversation.mode is ConversationMode.BOT and conversation.assigned_agent_id is None
        assert survey is not None and survey.trigger == "agent_handback"
        ended = session.scalars(select(Handoff).where(Handoff.conversation_id == chat.id)).one()
        assert ended.outcome == "handed_back" and ended.ended_at is not None


def test_a_waiting_customers_email_is_kept_for_the_agent(crm: sessionmaker[Session]) -> None:
    with crm.begin() as session:
        chat = _chat(session, "mail")
        _escalate(session, chat, "customer_asked", SATURDAY_10)
        assert handoff.record_contact(session, chat.id, "pat@example.com") is not None
        waiting = handoff.open_handoff(session, chat.id)
        assert waiting is not None and waiting.contact == "pat@example.com"
        assert waiting.ticket is not None and waiting.ticket.contact == "pat@example.com"


def _race(factory: sessionmaker[Session], conversation_id: int, agent_ids: list[int]) -> list[str]:
    barrier = threading.Barrier(len(agent_ids))
    outcomes: list[str] = []

    def attempt(agent_id: int) -> None:
        barrier.wait()
        try:
            with factory.begin() as session:
                handoff.claim(session, conversation_id, session.get_one(Agent, agent_id))
            outcomes.append("won")
        except Conflict:
            outcomes.append("409")

    threads = [threading.Thread(target=attempt, args=(agent_id,)) for agent_id in agent_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_two_agents_claiming_at_once_exactly_one_wins(
    backend: str, crm: sessionmaker[Session], request: pytest.FixtureRequest
) -> None:
    if backend == "sqlite":
        factory = crm
    else:
        pg: Settings = request.getfixturevalue("postgres_settings")
        upgrade_database(pg)
        factory = make_sessionmaker(make_engine(pg))
        with factory.begin() as session:
            seed_demo_data(session, date(2026, 11, 20))
    with factory.begin() as session:
        agent_ids = list(session.scalars(select(Agent.id)))
    for round_number in range(5):
        with factory.begin() as session:
            chat = _chat(session, f"race-{round_number}")
            _escalate(session, chat, "customer_asked", TUESDAY_10)
            conversation_id = chat.id
        outcomes = _race(factory, conversation_id, agent_ids)
        assert sorted(outcomes) == ["409"] * (len(agent_ids) - 1) + ["won"]
        with factory() as session:
            claimed = session.get_one(Conversation, conversation_id)
            assert claimed.mode is ConversationMode.AGENT and claimed.assigned_agent_id in agent_ids
            joined = session.scalars(select(Message).where(Message.conversation_id == conversation_id)).all()
            assert len(joined) == 1  # one "has joined" notice: the loser changed nothing
    if backend == "postgresql":
        factory.kw["bind"].dispose()


def test_vip_tier_is_visible_to_the_queue(crm: sessionmaker[Session]) -> None:
    with crm.begin() as session:
        vip = session.scalars(select(Customer).where(Customer.value_tier == ValueTier.VIP)).first()
        assert vip is not None
        chat = _chat(session, "vip-q", vip.email)
        _escalate(session, chat, "vip_complaint", TUESDAY_10)
        ada = session.scalars(select(Agent).where(Agent.email == "ada@kefu.example")).one()
        row = handoff.queue(session, ada, TUESDAY_10)[0]
        assert row["tier"] == "vip" and row["reason_text"] == "complaint from a VIP customer"
