"""Ticket status in the chat: only the owner learns anything, and a recent resolution can be reopened."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.events import FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from actions.tickets import (
    NOT_FOUND,
    ActionAskTicketReference,
    ActionCheckTicket,
    ActionReopenTicket,
    ValidateTicketForm,
)
from bot.crm import sla, tickets
from bot.crm.models import Conversation, Customer, Ticket, TicketStatus, utcnow
from tests.support.chats import enter_code, prove_by_code, web_conversation
from tests.support.mail import MailSink
from tests.support.trackers import make_tracker

DOMAIN: dict[str, Any] = {"forms": {"ticket_form": {"required_slots": ["ticket_reference", "contact"]}}}


def tracker(conversation: Conversation, **slots: Any) -> Tracker:
    return make_tracker(
        conversation.sender_id,
        intent="check_ticket",
        slots={"ticket_reference": None, "contact": None, **slots},
    )


async def check(
    conversation: Conversation, sink: MailSink | None = None, **slots: Any
) -> tuple[str, list[dict[str, Any]]]:
    """Ask about a ticket; with `sink`, the one-time code asked for is typed in from the mail and the
    look-up runs again after it, as the rules do: the text and buttons the customer gets last."""
    dispatcher = CollectingDispatcher()
    events = await ActionCheckTicket().run(dispatcher, tracker(conversation, **slots), DOMAIN)
    message = dispatcher.messages[0]
    if sink is None:
        return message["text"], message.get("buttons") or []
    assert "e-mailed a 6-digit code" in message["text"], message["text"]
    assert "resolved" not in message["text"] and "waiting" not in message["text"]
    _, after = await enter_code(conversation, sink, events)
    assert FollowupAction("action_check_ticket") in after
    again = {e["name"]: e["value"] for e in after if e.get("event") == "slot"}
    dispatcher = CollectingDispatcher()
    await ActionCheckTicket().run(
        dispatcher,
        tracker(conversation, **{k: again.get(k) for k in ("ticket_reference", "ticket_purpose")}),
        DOMAIN,
    )
    message = dispatcher.messages[0]
    return message["text"], message.get("buttons") or []


async def test_the_owner_sees_the_status_and_can_reopen_a_recent_resolution(
    crm: sessionmaker[Session], mail_sink: MailSink
) -> None:
    conversation = web_conversation(crm)
    text, buttons = await check(
        conversation, mail_sink, ticket_reference="KF-000001", contact="ana.souza@example.com"
    )
    assert "KF-000001" in text and "was resolved on" in text and "repair kit" in text
    assert buttons[0]["payload"] == '/reopen_ticket{"ticket_reference": "KF-000001"}'

    meis_chat = web_conversation(crm, "visitor-2")
    waiting, _ = await check(meis_chat, mail_sink, ticket_reference="KF-000002", contact="+44 7700 900123")
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
    prove_by_code(crm, conversation, "ana.souza@example.com")
    verified = await form.required_slots(
        ["ticket_reference", "contact"], CollectingDispatcher(), tracker(conversation), DOMAIN
    )
    assert verified == []
    text, _ = await check(conversation)  # Ana has one ticket: it is shown straight away
    assert "KF-000001" in text


async def test_the_ticket_list_names_each_ticket_and_leaves_out_hand_overs(
    crm: sessionmaker[Session],
) -> None:
    conversation = web_conversation(crm)
    prove_by_code(crm, conversation, "ana.souza@example.com")
    with crm.begin() as session:
        ana = session.scalars(select(Customer).where(Customer.email == "ana.souza@example.com")).one()
        for kind, subject in (
            ("complaint", "The tent pole arrived   bent and the bag was torn open by the carrier on the way"),
            ("conversation", "Chat handed to a person: the customer asked for one"),
        ):
            tickets.open_ticket(
                session,
                kind=kind,
                category="damaged_item" if kind == "complaint" else "handoff",
                subject=subject,
                actor="test",
                customer_id=ana.id,
                policy=sla.default_policy(),
            )
        first = session.scalars(select(Ticket).where(Ticket.reference == "KF-000001")).one()
        first.status = TicketStatus.PENDING_CUSTOMER
        first.subject = "Where is my refund?"
    text, buttons = await check(conversation)
    assert text == "Which ticket is it? Here are your most recent ones."
    titles = [button["title"] for button in buttons]
    assert len(titles) == 2, titles  # the hand-over ticket is the team's, not hers
    assert titles[0].endswith(" · The tent pole arrived bent and the bag was torn open by the… · received")
    assert titles[1] == "KF-000001 · Where is my refund? · waiting for your answer"


async def test_reopening_works_within_seven_days_only(crm: sessionmaker[Session]) -> None:
    conversation = web_conversation(crm)
    prove_by_code(crm, conversation, "ana.souza@example.com")
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


async def reopen(conversation: Conversation, **slots: Any) -> tuple[str, list[Any]]:
    """Press "It's not solved: reopen it" (or type "reopen KF-..."): the text and the events."""
    dispatcher = CollectingDispatcher()
    events = await ActionReopenTicket().run(
        dispatcher,
        make_tracker(
            conversation.sender_id,
            intent="reopen_ticket",
            slots={"ticket_reference": None, "contact": None, "ticket_purpose": None, **slots},
        ),
        DOMAIN,
    )
    return "\n".join(m.get("text") or "" for m in dispatcher.messages), events


def status_of(crm: sessionmaker[Session], reference: str) -> tuple[TicketStatus, list[str]]:
    with crm() as session:
        ticket = session.scalars(select(Ticket).where(Ticket.reference == reference)).one()
        return ticket.status, [e.kind for e in ticket.events]


async def test_a_ticket_shown_to_its_owner_is_reopened_by_the_button(
    crm: sessionmaker[Session], mail_sink: MailSink
) -> None:
    conversation = web_conversation(crm)
    text, buttons = await check(
        conversation, mail_sink, ticket_reference="KF-000001", contact="ana.souza@example.com"
    )
    assert "was resolved on" in text and buttons[0]["payload"].startswith("/reopen_ticket")
    said, _ = await reopen(conversation, ticket_reference="KF-000001")  # the contact slot was reset
    assert said.startswith("I've reopened KF-000001.") and "reply here" in said
    status, kinds = status_of(crm, "KF-000001")
    assert status is TicketStatus.OPEN and kinds[-1] == "reopened"
    # The code from her mailbox proved the chat is Ana's.
    with crm() as session:
        assert session.get_one(Conversation, conversation.id).proof == "code"


async def test_reopen_right_after_seeing_the_ticket_needs_no_reference(crm: sessionmaker[Session]) -> None:
    conversation = web_conversation(crm)
    prove_by_code(crm, conversation, "ana.souza@example.com")
    dispatcher = CollectingDispatcher()
    events = await ActionCheckTicket().run(
        dispatcher, tracker(conversation, ticket_reference="KF-000001"), DOMAIN
    )
    assert SlotSet("last_ticket", "KF-000001") in events
    # The turn ends here, whatever brought the look-up (the ticket form or an e-mailed code): a
    # guessed next action must not take back the turn and with it which ticket "it" is.
    assert events[-1] == FollowupAction("action_listen")
    said, _ = await reopen(conversation, last_ticket="KF-000001")  # "it's not fixed, reopen it"
    assert said.startswith("I've reopened KF-000001.")


async def test_reopen_without_proof_asks_for_it_and_then_reopens(
    crm: sessionmaker[Session], mail_sink: MailSink
) -> None:
    conversation = web_conversation(crm)
    said, events = await reopen(conversation, ticket_reference="KF-000001")  # "please reopen KF-000001"
    assert NOT_FOUND not in said and "once I know it's yours" in said
    assert FollowupAction("ticket_form") in events and SlotSet("ticket_purpose", "reopen") in events
    assert status_of(crm, "KF-000001")[0] is TicketStatus.RESOLVED
    asked = await ValidateTicketForm().required_slots(
        ["ticket_reference", "contact"],
        CollectingDispatcher(),
        tracker(conversation, ticket_reference="KF-000001", ticket_purpose="reopen"),
        DOMAIN,
    )
    assert asked == ["contact"]  # the same proof as for checking it

    wrong, _ = await check(
        conversation, ticket_reference="KF-000001", contact="mei.chen@example.com", ticket_purpose="reopen"
    )
    assert wrong == NOT_FOUND and status_of(crm, "KF-000001")[0] is TicketStatus.RESOLVED
    done, buttons = await check(
        conversation,
        mail_sink,
        ticket_reference="KF-000001",
        contact="ana.souza@example.com",
        ticket_purpose="reopen",
    )
    assert done.startswith("I've reopened KF-000001.") and buttons == []
    assert status_of(crm, "KF-000001")[0] is TicketStatus.OPEN


async def test_a_ticket_resolved_too_long_ago_points_to_a_new_one(
    crm: sessionmaker[Session], mail_sink: MailSink
) -> None:
    conversation = web_conversation(crm)
    with crm.begin() as session:
        ticket = session.scalars(select(Ticket).where(Ticket.reference == "KF-000001")).one()
        ticket.resolved_at = utcnow() - timedelta(days=8)
    text, buttons = await check(
        conversation,
        mail_sink,
        ticket_reference="KF-000001",
        contact="+351 912 345 678",
        ticket_purpose="reopen",
    )
    assert "KF-000001 was resolved too long ago to reopen" in text and "open a new ticket" in text
    assert buttons == [{"title": "Report the problem", "payload": "/complaint"}]
    assert status_of(crm, "KF-000001")[0] is TicketStatus.RESOLVED


async def test_a_reopen_left_half_way_does_not_make_a_check_reopen(crm: sessionmaker[Session]) -> None:
    conversation = web_conversation(crm)
    checking = tracker(conversation, ticket_reference="KF-000001", ticket_purpose="reopen")
    events = await ValidateTicketForm().get_validation_events(CollectingDispatcher(), checking, DOMAIN)
    assert SlotSet("ticket_purpose", None) in events


async def test_a_customer_without_the_reference_is_told_where_it_is_and_offered_a_person(
    crm: sessionmaker[Session],
) -> None:
    conversation = web_conversation(crm)
    form = ValidateTicketForm()

    def answer(text: str, **slots: Any) -> Tracker:
        return make_tracker(
            conversation.sender_id,
            text=text,
            slots={"ticket_reference": None, "contact": None, "requested_slot": "ticket_reference", **slots},
        )

    lost = CollectingDispatcher()
    text = "i dont have it, deleted the email"
    result = await form.validate_ticket_reference(text, lost, answer(text), DOMAIN)
    assert result["ticket_reference"] is None
    assert "KF-000123" in lost.messages[0]["text"]
    assert [b["payload"] for b in lost.messages[0]["buttons"]] == ["/request_human", "/deny"]

    # Asked again after that, the question is short: where to find it was just said.
    again = CollectingDispatcher()
    await ActionAskTicketReference().run(again, answer("", form_misfits=None), DOMAIN)
    assert again.messages[0]["text"] == "Which ticket reference should I look up?"

    # Gibberish twice in a row: an apology, a person and a way out.
    first, second = CollectingDispatcher(), CollectingDispatcher()
    misfit = await form.validate_ticket_reference("blue", first, answer("blue"), DOMAIN)
    assert "doesn't look like a ticket reference" in first.messages[0]["text"]
    await form.validate_ticket_reference("bluer", second, answer("bluer", **misfit), DOMAIN)
    assert second.messages[0]["text"].startswith("Sorry, I'm not getting this right")
    assert "/request_human" in [b["payload"] for b in second.messages[0]["buttons"]]

    found = await form.validate_ticket_reference(
        "kf-000001", CollectingDispatcher(), answer("kf-000001"), DOMAIN
    )
    assert found["ticket_reference"] == "KF-000001"
