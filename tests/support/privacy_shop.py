"""A small shop for the GDPR tests: two customers with chats, tickets, a survey, feedback and Rasa
trackers written by Rasa itself, full of details that erasure must remove."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.crm import csat, handoff, sla, tickets
from bot.crm.audit import audit
from bot.crm.conversations import get_or_create_conversation, store_inbound, store_outbound
from bot.crm.models import (
    AuthorKind,
    Customer,
    KbArticle,
    KbFeedback,
    KbGap,
    Order,
    TelegramUpdate,
    TicketStatus,
)
from bot.crm.orders import link_conversation
from bot.demo.seed import seed_demo_data
from bot.settings import PROJECT_ROOT, Settings

RASA_PYTHON = PROJECT_ROOT / ".venv-rasa" / "bin" / "python"
POLICY_FILE = Settings(_env_file=None).sla_policy_file  # type: ignore[call-arg]
TODAY = date(2026, 11, 20)

ANA_EMAIL, ANA_PHONE, ANA_NAME = "ana.souza@example.com", "+351912345678", "Ana Souza"
ANA_ADDRESS = "Rua das Flores 28"
ANA_CHAT = "777000111"  # her Telegram chat id
ANA_SECRET = "my purple flamingo lantern arrived cracked"
JONAS_SECRET = "the walrus-shaped doorstop never came"
SENDERS = {"ana_web": "sender-ana-web", "ana_telegram": "sender-ana-telegram", "jonas": "sender-jonas-web"}

# Run by Rasa's own Python: saves a tracker per sender id through rasa's SQLTrackerStore.
_WRITE_TRACKERS = """
import asyncio, sys
from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, BotUttered, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

store = SQLTrackerStore(domain=Domain.empty(), dialect="sqlite", db=sys.argv[1])

async def main():
    for sender in sys.argv[2:]:
        tracker = DialogueStateTracker(sender, slots=[])
        tracker.update(ActionExecuted("action_listen"))
        tracker.update(UserUttered(f"rasa heard {sender}", intent={"name": "complaint", "confidence": 0.9}))
        tracker.update(BotUttered(f"rasa answered {sender}"))
        await store.save(tracker)

asyncio.run(main())
"""


def write_rasa_trackers(path: Path) -> None:
    """Have Rasa (its SQLTrackerStore, in .venv-rasa) save a tracker for each of SENDERS at `path`."""
    if not RASA_PYTHON.exists():
        pytest.fail(
            f"{RASA_PYTHON} is missing: run scripts/bootstrap.sh (these tests let Rasa write trackers)"
        )
    done = subprocess.run(
        [str(RASA_PYTHON), "-c", _WRITE_TRACKERS, str(path), *SENDERS.values()],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr


@dataclass
class Shop:
    ana_id: int
    jonas_id: int
    ana_telegram_conversation_id: int


def build_shop(session: Session) -> Shop:
    """The demo shop, plus chats, a complaint, a hand-over and a survey for Ana and a chat for Jonas."""
    seed_demo_data(session, TODAY)
    session.flush()
    ana = session.scalars(select(Customer).where(Customer.email == ANA_EMAIL)).one()
    jonas = session.scalars(select(Customer).where(Customer.email == "jonas.becker@example.com")).one()
    lantern = session.scalars(select(Order).where(Order.number == "100002")).one()

    # Her web chat: she proves an order, complains, asks for a person, rates the answer.
    web = get_or_create_conversation(session, "web", "visitor-ana-browser")
    web.sender_id = SENDERS["ana_web"]
    store_inbound(session, web, f"order 100002, {ANA_EMAIL}")
    link_conversation(session, web, ana)
    complaint_message = store_inbound(session, web, ANA_SECRET)
    store_outbound(session, web, AuthorKind.BOT, f"I am sorry, {ANA_NAME}. Filed as a ticket.")
    complaint = tickets.open_ticket(
        session, kind="complaint", category="product_defect", subject="A faulty product (order #100002)",
        description=ANA_SECRET, actor="bot", customer_id=ana.id, conversation_id=web.id,
        order_id=lantern.id, source_message_id=complaint_message.id, policy=sla.load_policy(POLICY_FILE),
    )  # fmt: skip
    tickets.customer_replied(session, complaint, f"{ANA_SECRET}, call me on {ANA_PHONE}", 7)
    tickets.add_event(session, complaint, "agent:1", "note", {"text": f"{ANA_NAME} sounded upset"})
    handoff.escalate(session, web, "customer_asked", policy=sla.load_policy(POLICY_FILE), minutes_per_chat=4)
    handoff.record_contact(session, web.id, ANA_EMAIL)
    # Audit details are free-form: one that names her must lose the name, the row must stay.
    audit(session, "agent:1", "contact_noted", "conversation", web.id, {"contact": ANA_EMAIL, "by": "Ada"})
    tickets.change_status(session, complaint, TicketStatus.OPEN, "agent:1")
    tickets.change_status(
        session, complaint, TicketStatus.RESOLVED, "agent:1", resolution=f"Sent {ANA_NAME} a new lantern."
    )
    # Resolving it queued the survey about that resolution.
    survey = csat.survey_of_episode(session, csat.ticket_episode(complaint))
    assert survey is not None
    tickets.record_survey_answer(
        session, survey, 4, f"thanks, {ANA_SECRET} is fixed", policy=sla.load_policy(POLICY_FILE)
    )
    article = KbArticle(slug="returns")
    session.add(article)
    session.flush()
    session.add(
        KbFeedback(
            article_id=article.id, conversation_id=web.id, query=ANA_SECRET, shown_as="answer", score=0.7
        )
    )
    session.add(KbGap(question=f"{ANA_SECRET}?", reason="no_match", conversation_id=web.id))

    # Her Telegram chat, linked by proving the same order; a reply still waits in the outbox.
    telegram = get_or_create_conversation(session, "telegram", ANA_CHAT)
    telegram.sender_id = SENDERS["ana_telegram"]
    store_inbound(session, telegram, f"hi, it's {ANA_NAME} again", channel_message_id="5001")
    link_conversation(session, telegram, ana)
    store_outbound(session, telegram, AuthorKind.BOT, f"Welcome back, {ANA_NAME}!")
    handoff.escalate(
        session, telegram, "customer_asked", policy=sla.load_policy(POLICY_FILE), minutes_per_chat=4
    )
    session.add(
        TelegramUpdate(
            update_id=5001,
            payload={
                "update_id": 5001,
                "message": {
                    "message_id": 12,
                    "chat": {"id": int(ANA_CHAT), "type": "private", "first_name": "Ana"},
                    "from": {"id": int(ANA_CHAT), "first_name": "Ana", "last_name": "Souza"},
                    "text": f"hi, it's {ANA_NAME} again",
                },
            },
        )
    )

    # An anonymous chat in which she typed her e-mail but never proved an order.
    anonymous = get_or_create_conversation(session, "web", "visitor-ana-phone")
    store_inbound(session, anonymous, f"where is my parcel? I am {ANA_EMAIL.upper()}")

    # Jonas: a chat of his own, with a complaint.
    jonas_chat = get_or_create_conversation(session, "web", "visitor-jonas")
    jonas_chat.sender_id = SENDERS["jonas"]
    link_conversation(session, jonas_chat, jonas)
    store_inbound(session, jonas_chat, JONAS_SECRET)
    tickets.open_ticket(
        session, kind="complaint", category="delivery_problem", subject="Doorstop missing",
        description=JONAS_SECRET, actor="bot", customer_id=jonas.id, conversation_id=jonas_chat.id,
        policy=sla.load_policy(POLICY_FILE),
    )  # fmt: skip
    session.flush()
    return Shop(ana.id, jonas.id, telegram.id)
