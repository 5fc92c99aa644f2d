"""The demo's saved replies: valid by the leads' rules, and filled without gaps in the showcase chat
they are written for (Jonas asking about his delayed order)."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.crm import replies, sla
from bot.crm.models import Agent, Conversation, Customer, Order, SavedReply, Ticket
from bot.demo.seed import seed_demo_data


def test_the_demo_replies_fill_from_the_crm_in_a_chat_about_a_delayed_order(db_session: Session) -> None:
    summary = seed_demo_data(db_session, date(2026, 11, 20))
    saved = db_session.scalars(select(SavedReply).order_by(SavedReply.id)).all()
    assert 6 <= len(saved) == summary.saved_replies <= 10
    assert all(not r.archived and r.language == "en" and r.created_by_id for r in saved)
    assert "8 saved replies" in summary.describe()

    jonas = db_session.scalars(select(Customer).where(Customer.email == "jonas.becker@example.com")).one()
    chat = Conversation(channel="web", external_id="jonas", sender_id="s-jonas", customer_id=jonas.id)
    db_session.add(chat)
    db_session.flush()
    ticket = db_session.scalars(select(Ticket).where(Ticket.reference == "KF-000003")).one()
    ticket.conversation_id = chat.id
    ticket.order_id = db_session.scalars(select(Order.id).where(Order.number == "100004")).one()
    db_session.flush()
    ada = db_session.scalars(select(Agent).where(Agent.email == "ada@kefu.example")).one()
    facts = replies.chat_facts(db_session, chat, ada, sla.default_policy())

    by_shortcut = {r.shortcut: replies.fill(r.body, facts) for r in replies.for_chat(db_session, chat)}
    assert set(by_shortcut) == {r.shortcut for r in saved}
    delayed = by_shortcut["order-delayed"]
    assert delayed.missing == [] and delayed.text.startswith("I'm sorry order 100004 is taking longer")
    assert "with DPD (tracking number" in delayed.text and "ticket KF-000003." in delayed.text
    assert by_shortcut["hello"].text.startswith("Hi Jonas, this is Ada from the support team.")
    assert "https://tracking.dpd.de/status/en_US/parcel/" in by_shortcut["where-is-order"].text
