"""Ticket status in the chat: only the owner learns anything, and a recent resolution can be reopened."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from actions.tickets import NOT_FOUND, ActionCheckTicket, ActionReopenTicket, ValidateTicketForm
from bot.crm.models import Conversation, Ticket, TicketStatus, utcnow
from tests.support.chats import track, web_conversation
from tests.support.trackers import make_tracker

DOMAIN: dict[str, Any] = {"forms": {"ticket_form": {"required_slots": ["ticket_reference", "contact"]}}}


def tracker(conversation: Conversation, **slots: Any) -> Tracker:
    return make_tracker(
        conversation.sender_id,
        intent="check_ticket",
        slots={"ticket_reference": None, "contact": None, **slots},
    )


async def check(conversation: Conversation, **slots: Any) -> tuple[str, list[dict[str, Any]]]:
    dispatcher = CollectingDispatcher()
    await ActionCheckTicket().run(dispatcher, tracker(conversation, **slots), DOMAIN)
    message = dispatcher.messages[0]
    return message["text"], message.get("buttons") or []


async def test_the_owner_sees_the_status_and_can_reopen_a_recent_resolution(
    crm: sessionmaker[Session],
) -> None:
    conversation = web_conversation(crm)
    text, buttons = await check(conversation, ticket_reference="KF-000001", contact="ana.souza@example.com")
    assert "KF-000001" in text and "was resolved on" in text and "repair kit" in text
    assert buttons[0]["payload"] == '/reopen_ticket{"ticket_reference": "KF-000001"}'

    waiting, _ = await check(conversation, ticket_reference="KF-000002", contact="+44 7700 900123")
    assert "waiting for an answer from you" in waiting and "Last update" in waiting


async def test_someone_elses_ticket_and_a_missing_one_get_the_same_answer(crm: sessionmaker[Session]) -> None:
    conversation = web_conversation(crm)
    others, _ = await check(conversation, ticket_reference="KF-000001", contact="mei.chen@example.com")
    missing, _ = await check(conversation, ticket_reference="KF-000999", contact="mei.chen@example.com")
    assert others == missing == NOT_FOUND


async def test_a_verified_customer_picks_from_their_tickets(crm: sessionmaker[Session]) -> None:
    conversation = web_conversation(crm)
    form = ValidateTicketForm()
    unverified = await form.required_slots(
        ["ticket_reference", "contact"], CollectingDispatcher(), tracker(conversation), DOMAIN
    )
    assert unverified == ["ticket_reference", "contact"]
    await track(conversation, "100002", "ana.souza@example.com")
    verified = await form.required_slots(
        ["ticket_reference", "contact"], CollectingDispatcher(), tracker(conversation), DOMAIN
    )
    assert verified == []
    text, _ = await check(conversation)  # Ana has one ticket: it is shown straight away
    assert "KF-000001" in text


async def test_reopening_works_within_seven_days_only(crm: sessionmaker[Session]) -> None:
    conversation = web_conversation(crm)
    await track(conversation, "100002", "ana.souza@example.com")
    dispatcher = CollectingDispatcher()
    await ActionReopenTicket().run(dispatcher, tracker(conversation, ticket_reference="KF-000001"), DOMAIN)
    assert "I've reopened KF-000001" in dispatcher.messages[0]["text"]
    with crm.begin() as session:
        ticket = session.scalars(select(Ticket).where(Ticket.reference == "KF-000001")).one()
        assert ticket.status is TicketStatus.OPEN
        ticket.status = TicketStatus.RESOLVED
        ticket.resolved_at = utcnow() - timedelta(days=8)
    late = CollectingDispatcher()
    await ActionReopenTicket().run(late, tracker(conversation, ticket_reference="KF-000001"), DOMAIN)
    assert "too long ago to reopen" in late.messages[0]["text"]


async def test_guessing_references_is_rate_limited(crm: sessionmaker[Session]) -> None:
    conversation = web_conversation(crm)
    for n in range(5):
        text, _ = await check(conversation, ticket_reference=f"KF-00010{n}", contact="x@example.com")
        assert text == NOT_FOUND
    text, _ = await check(conversation, ticket_reference="KF-000001", contact="ana.souza@example.com")
    assert "paused" in text
