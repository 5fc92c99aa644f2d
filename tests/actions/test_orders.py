"""Order-tracking actions against a seeded CRM: Tracker from a dict, CollectingDispatcher."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from rasa_sdk.events import FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from actions.knowledge import ActionRequestHuman
from actions.orders import (
    LOCKED_OUT,
    NOT_FOUND,
    ActionAskOrderNumber,
    ActionConfirmCancel,
    ActionListOrders,
    ActionOpenDelayTicket,
    ActionOrderRequest,
    ActionStartOrderRequest,
    ValidateOrderForm,
    offer_cancellation,
    tell_status,
)
from bot.crm.conversations import store_inbound
from bot.crm.models import (
    AuditLog,
    Conversation,
    ConversationMode,
    CustomerIdentity,
    Order,
    OrderStatus,
    Ticket,
    TicketEvent,
    TicketStatus,
    VerificationAttempt,
    utcnow,
)
from tests.support.chats import DOMAIN, enter_code, prove_by_code, track, tracker_for, web_conversation
from tests.support.mail import MailSink


async def test_owner_gets_status_carrier_tracking_and_date(crm: sessionmaker[Session]) -> None:
    conversation = web_conversation(crm)
    events, text = await track(conversation, "100001", "Ana.Souza@example.com")
    assert "#100001" in text and "DHL" in text
    assert "tracking number" in text and "Latest update" in text and "Expected delivery" in text
    assert SlotSet("order_number", None) in events
    with crm() as session:
        linked = session.get(Conversation, conversation.id)
        assert linked is not None and linked.customer_id is not None
        identity = session.scalars(
            select(CustomerIdentity).where(CustomerIdentity.external_id == "visitor-1")
        ).one()
        assert identity.customer_id == linked.customer_id
        assert (
            session.scalar(
                select(func.count()).select_from(AuditLog).where(AuditLog.action == "conversation_verified")
            )
            == 1
        )


async def test_phone_number_in_another_format_proves_ownership(crm: sessionmaker[Session]) -> None:
    _, text = await track(web_conversation(crm), "100004", "0151 2345 6789")
    assert "delayed" in text and "sorry" in text.lower()
    # Its promised date has passed: no stale "expected delivery" is promised again.
    assert "It was due on" in text and "Expected delivery" not in text


async def test_a_corrected_email_alone_is_enough_to_retry(crm: sessionmaker[Session]) -> None:
    events, _ = await track(web_conversation(crm), "100001", "ana@wrong.example")
    assert events == [SlotSet("contact", None)]  # the order number is kept for the retry


@pytest.mark.parametrize(
    ("number", "contact"),
    [
        ("100001", "jonas.becker@example.com"),  # someone else's order
        ("100001", "nobody@example.com"),  # wrong e-mail
        ("199999", "ana.souza@example.com"),  # no such order
    ],
)
async def test_every_failed_proof_gets_the_same_reply(
    crm: sessionmaker[Session], number: str, contact: str
) -> None:
    conversation = web_conversation(crm)
    _, text = await track(conversation, number, contact)
    assert text == NOT_FOUND
    with crm() as session:
        assert session.get(Conversation, conversation.id).customer_id is None  # type: ignore[union-attr]
        attempts = session.scalars(select(VerificationAttempt)).all()
        assert [a.succeeded for a in attempts] == [False]


async def test_five_failures_lock_the_conversation_and_are_logged(crm: sessionmaker[Session]) -> None:
    conversation = web_conversation(crm)
    replies = [(await track(conversation, "100001", f"guess{i}@example.com"))[1] for i in range(5)]
    assert replies[:4] == [NOT_FOUND] * 4
    assert replies[4] == LOCKED_OUT
    # Even the right details are refused now, without being checked.
    _, text = await track(conversation, "100001", "ana.souza@example.com")
    assert text == LOCKED_OUT
    with crm() as session:
        assert session.get(Conversation, conversation.id).customer_id is None  # type: ignore[union-attr]
        assert (
            session.scalar(
                select(func.count()).select_from(AuditLog).where(AuditLog.action == "verification_locked")
            )
            == 1
        )


async def test_guesses_at_one_order_cost_its_owner_a_code_not_a_lock_out(
    crm: sessionmaker[Session], mail_sink: MailSink
) -> None:
    for i in range(5):
        await track(web_conversation(crm, f"attacker-{i}"), "100002", f"x{i}@example.com")
    owner = web_conversation(crm, "real-owner")
    events, text = await track(owner, "100002", "ana.souza@example.com")
    assert text != LOCKED_OUT
    assert "e-mailed a 6-digit code to a•••@example.com" in text and "delivered" not in text
    assert [str(mail["To"]) for mail in mail_sink.mails()] == ["ana.souza@example.com"]
    said, _ = await enter_code(owner, mail_sink, events)
    assert "#100002" in said and "delivered" in said


async def test_an_order_proof_shows_that_order_only(crm: sessionmaker[Session]) -> None:
    conversation = web_conversation(crm)
    await track(conversation, "100001", "ana.souza@example.com")
    # The same order again needs nothing more ("and now?") ...
    slots = await ValidateOrderForm().required_slots(
        ["order_number", "contact"],
        CollectingDispatcher(),
        tracker_for(conversation, {"order_number": "100001"}),
        DOMAIN,
    )
    assert slots == ["order_number"]
    # ... but another of her orders needs its own proof: its number alone shows nothing.
    slots = await ValidateOrderForm().required_slots(
        ["order_number", "contact"],
        CollectingDispatcher(),
        tracker_for(conversation, {"order_number": "100003"}),
        DOMAIN,
    )
    assert slots == ["order_number", "contact"]
    _, text = await track(conversation, "100003", None)
    assert text == NOT_FOUND


async def test_a_chat_proven_by_code_needs_only_the_number(crm: sessionmaker[Session]) -> None:
    conversation = web_conversation(crm)
    prove_by_code(crm, conversation, "ana.souza@example.com")
    slots = await ValidateOrderForm().required_slots(
        ["order_number", "contact"], CollectingDispatcher(), tracker_for(conversation), DOMAIN
    )
    assert slots == ["order_number"]
    _, text = await track(conversation, "100003", None)
    assert "#100003" in text and "hasn't shipped" in text
    # Another customer's order stays hidden even from a proven chat, whatever the client sends.
    _, text = await track(conversation, "100004", None)
    assert text == NOT_FOUND


async def test_other_orders_are_listed_after_the_code(
    crm: sessionmaker[Session], mail_sink: MailSink
) -> None:
    conversation = web_conversation(crm)
    dispatcher = CollectingDispatcher()
    events = await ActionListOrders().run(dispatcher, tracker_for(conversation), DOMAIN)
    assert events == [SlotSet("order_purpose", "list"), FollowupAction("order_form")]

    await track(conversation, "100001", "ana.souza@example.com")
    dispatcher = CollectingDispatcher()
    events = await ActionListOrders().run(dispatcher, tracker_for(conversation), DOMAIN)
    (message,) = dispatcher.messages
    assert "e-mailed a 6-digit code" in message["text"] and not message.get("buttons")
    assert FollowupAction("code_form") in events

    _, _ = await enter_code(conversation, mail_sink, events)
    dispatcher = CollectingDispatcher()
    await ActionListOrders().run(dispatcher, tracker_for(conversation), DOMAIN)
    (message,) = dispatcher.messages
    titles = [b["title"] for b in message["buttons"]]
    assert any("#100001" in t for t in titles) and any("#100003" in t for t in titles)
    assert not any("#100004" in t for t in titles)


async def test_without_the_code_nothing_is_cancelled_and_the_owner_is_mailed(
    crm: sessionmaker[Session], mail_sink: MailSink
) -> None:
    conversation = web_conversation(crm)
    text, events = await request(conversation, "cancel", "100003", "ana.souza@example.com")
    assert "e-mailed a 6-digit code to a•••@example.com" in text and "Shall I cancel" not in text
    assert not any(e.get("name") == "pending_cancel" and e.get("value") for e in events)
    (mail,) = mail_sink.mails("ana.souza@example.com")
    assert "Your code" in str(mail["Subject"])
    # A "yes" sent by a client that skipped the code cancels nothing either.
    assert "couldn't find" in await confirm(conversation, "affirm", "100003")
    assert order_status(crm, "100003") is OrderStatus.PROCESSING


async def test_ask_order_number_offers_recent_orders_once_verified(crm: sessionmaker[Session]) -> None:
    conversation = web_conversation(crm)
    dispatcher = CollectingDispatcher()
    await ActionAskOrderNumber().run(dispatcher, tracker_for(conversation), DOMAIN)
    assert "6 digits" in dispatcher.messages[0]["text"]
    # Not verified yet: no orders offered, only the way out for a customer without the number.
    assert [b["title"] for b in dispatcher.messages[0]["buttons"]] == ["I don't know it"]

    # One order proven with its e-mail offers no list of the others; a code does.
    await track(conversation, "100001", "ana.souza@example.com")
    dispatcher = CollectingDispatcher()
    await ActionAskOrderNumber().run(dispatcher, tracker_for(conversation), DOMAIN)
    assert not any("#100003" in b["title"] for b in dispatcher.messages[0]["buttons"])
    prove_by_code(crm, conversation, "ana.souza@example.com")
    dispatcher = CollectingDispatcher()
    await ActionAskOrderNumber().run(dispatcher, tracker_for(conversation), DOMAIN)
    assert any("#100003" in b["title"] for b in dispatcher.messages[0]["buttons"])


@pytest.mark.parametrize(
    ("value", "expected", "said"),
    [
        ("#100045", "100045", None),
        ("it's 100045 i think", "100045", None),
        ("12345", None, "I need the order number"),
        # Well formed, but no order has it: not "malformed", just not found.
        ("999999", None, "can't find order #999999"),
        ("no idea", None, "only look one up here with its number"),
        ("where do i find the order number?", None, "confirmation e-mail"),
        ("can you look it up by my name?", None, "a person from our team can help"),
    ],
)
async def test_order_number_validation(
    value: str, expected: str | None, said: str | None, crm: sessionmaker[Session]
) -> None:
    dispatcher = CollectingDispatcher()
    conversation = web_conversation(crm)
    # The customer's answer to "what's the order number?".
    tracker = tracker_for(conversation, {"requested_slot": "order_number"}, text=value)
    result = await ValidateOrderForm().validate_order_number(value, dispatcher, tracker, DOMAIN)
    assert result["order_number"] == expected
    if said is None:
        assert not dispatcher.messages
    else:
        assert said in dispatcher.messages[0]["text"]


async def test_two_answers_that_dont_fit_offer_a_person_and_a_way_out(crm: sessionmaker[Session]) -> None:
    conversation = web_conversation(crm)
    form = ValidateOrderForm()
    first = CollectingDispatcher()
    result = await form.validate_order_number("blue", first, tracker_for(conversation, text="blue"), DOMAIN)
    assert result["form_misfits"] == 1 and not first.messages[0].get("buttons")
    second = CollectingDispatcher()
    await form.validate_order_number(
        "the blue one", second, tracker_for(conversation, {"form_misfits": 1.0}, text="the blue one"), DOMAIN
    )
    payloads = [b["payload"] for b in second.messages[0]["buttons"]]
    assert payloads == ["/request_human", "/deny"] and "Sorry" in second.messages[0]["text"]


async def test_delay_ticket_is_created_once_per_message(crm: sessionmaker[Session]) -> None:
    conversation = web_conversation(crm)
    await track(conversation, "100004", "jonas.becker@example.com")
    with crm.begin() as session:
        # The demo's delay ticket for 100004 (KF-000003) is done, so a new delay gets a new ticket.
        seeded = session.scalars(select(Ticket).where(Ticket.reference == "KF-000003")).one()
        seeded.status = TicketStatus.RESOLVED
        message = store_inbound(session, session.get(Conversation, conversation.id), "Open a ticket")  # type: ignore[arg-type]
        message_id = message.id
    tracker = tracker_for(conversation, {"order_number": "100004"}, metadata={"message_id": message_id})
    texts = []
    for _ in range(2):  # a retried delivery of the same customer message
        dispatcher = CollectingDispatcher()
        await ActionOpenDelayTicket().run(dispatcher, tracker, DOMAIN)
        texts.append(dispatcher.messages[0]["text"])
    with crm() as session:
        tickets = session.scalars(select(Ticket).where(Ticket.conversation_id == conversation.id)).all()
    assert len(tickets) == 1
    assert tickets[0].source_message_id == message_id
    assert (
        tickets[0].reference.startswith("KF-") and tickets[0].reference in texts[0] and texts[0] == texts[1]
    )
    assert tickets[0].category == "delivery_problem"


async def test_a_delay_already_ticketed_gets_that_ticket_not_a_second_one(crm: sessionmaker[Session]) -> None:
    conversation = web_conversation(crm)
    await track(conversation, "100004", "jonas.becker@example.com")  # KF-000003 is open for it
    dispatcher = CollectingDispatcher()
    await ActionOpenDelayTicket().run(
        dispatcher, tracker_for(conversation, {"order_number": "100004"}), DOMAIN
    )
    assert [m["text"] for m in dispatcher.messages] == [
        "You already have a ticket about the delivery of order #100004, KF-000003, and it's received, "
        "and waiting for a person from our team to pick it up, so I haven't opened a second one."
    ]
    with crm() as session:
        order = session.scalars(select(Order).where(Order.number == "100004")).one()
        on_order = session.scalars(select(Ticket).where(Ticket.order_id == order.id)).all()
        assert [t.reference for t in on_order] == ["KF-000003"]
        events = session.scalars(select(TicketEvent.kind).where(TicketEvent.ticket_id == on_order[0].id))
        assert list(events) == ["created"]


async def test_delay_ticket_refused_for_an_unverified_chat(crm: sessionmaker[Session]) -> None:
    conversation = web_conversation(crm)
    dispatcher = CollectingDispatcher()
    await ActionOpenDelayTicket().run(
        dispatcher, tracker_for(conversation, {"order_number": "100004"}), DOMAIN
    )
    with crm() as session:
        assert (
            session.scalar(
                select(func.count()).select_from(Ticket).where(Ticket.conversation_id == conversation.id)
            )
            == 0
        )


async def test_request_human_puts_the_chat_in_the_queue(crm: sessionmaker[Session]) -> None:
    conversation = web_conversation(crm)
    dispatcher = CollectingDispatcher()
    events = await ActionRequestHuman().run(dispatcher, tracker_for(conversation), DOMAIN)
    assert events and events[0]["event"] == "pause"
    with crm() as session:
        assert session.get(Conversation, conversation.id).mode is ConversationMode.PENDING_AGENT  # type: ignore[union-attr]


# --- cancelling and refunds ---------------------------------------------------------------------


async def request(
    conversation: Conversation, purpose: str, number: str, contact: str, sink: MailSink | None = None
) -> tuple[str, list[Any]]:
    """The order form's end for `purpose`; with `sink`, the one-time code it asks for is typed in from
    the mail, and what the customer gets after it is returned."""
    dispatcher = CollectingDispatcher()
    slots = {"order_number": number, "contact": contact, "order_purpose": purpose}
    events = await ActionOrderRequest().run(dispatcher, tracker_for(conversation, slots), DOMAIN)
    text = "\n".join(m.get("text") or "" for m in dispatcher.messages)
    if sink is None:
        return text, events
    assert "e-mailed a 6-digit code" in text, text
    return await enter_code(conversation, sink, events)


async def confirm(conversation: Conversation, intent: str, number: str) -> str:
    tracker = tracker_for(conversation, {"pending_cancel": number})
    tracker.latest_message["intent"] = {"name": intent}
    dispatcher = CollectingDispatcher()
    await ActionConfirmCancel().run(dispatcher, tracker, DOMAIN)
    return dispatcher.messages[0]["text"]


def order_status(crm: sessionmaker[Session], number: str) -> OrderStatus:
    with crm() as session:
        return session.scalars(select(Order.status).where(Order.number == number)).one()


async def test_an_order_not_yet_shipped_is_cancelled_after_a_yes(
    crm: sessionmaker[Session], mail_sink: MailSink
) -> None:
    conversation = web_conversation(crm)
    text, events = await request(conversation, "cancel", "100003", "ana.souza@example.com", mail_sink)
    assert "Shall I cancel it?" in text and SlotSet("pending_cancel", "100003") in events
    assert order_status(crm, "100003") is OrderStatus.PROCESSING  # nothing happens before the yes
    assert "stays as it is" in await confirm(conversation, "deny", "100003")
    assert order_status(crm, "100003") is OrderStatus.PROCESSING
    assert "is cancelled" in await confirm(conversation, "affirm", "100003")
    assert order_status(crm, "100003") is OrderStatus.CANCELLED
    with crm() as session:
        assert session.scalars(select(AuditLog).where(AuditLog.action == "order_cancelled")).one()


@pytest.mark.parametrize(
    ("number", "contact", "says"),
    [
        ("100005", "jonas.becker@example.com", "handed to the carrier"),
        ("100002", "ana.souza@example.com", "already been delivered"),
        ("100007", "mei.chen@example.com", "already cancelled"),
    ],
)
async def test_an_order_that_left_cannot_be_cancelled_and_the_reply_says_what_to_do(
    crm: sessionmaker[Session], mail_sink: MailSink, number: str, contact: str, says: str
) -> None:
    text, events = await request(web_conversation(crm), "cancel", number, contact, mail_sink)
    assert says in text and not any(e.get("name") == "pending_cancel" and e.get("value") for e in events)


async def test_a_refund_inside_the_window_opens_one_ticket(
    crm: sessionmaker[Session], mail_sink: MailSink
) -> None:
    conversation = web_conversation(crm)
    text, _ = await request(conversation, "refund", "100008", "mei.chen@example.com", mail_sink)
    with crm() as session:
        refund = session.scalars(select(Ticket).where(Ticket.kind == "refund")).one()
        assert refund.reference in text and "send the items back by" in text
    again, _ = await request(conversation, "refund", "100008", "mei.chen@example.com")
    assert "already a refund request" in again and refund.reference in again
    with crm() as session:
        assert len(session.scalars(select(Ticket).where(Ticket.kind == "refund")).all()) == 1


async def test_a_refund_outside_the_window_explains_the_policy(
    crm: sessionmaker[Session], mail_sink: MailSink
) -> None:
    with crm.begin() as session:
        order = session.scalars(select(Order).where(Order.number == "100002")).one()
        order.shipments[-1].delivered_at = utcnow() - timedelta(days=45)
    text, _ = await request(web_conversation(crm), "refund", "100002", "ana.souza@example.com", mail_sink)
    assert "within 30 days of delivery" in text and "2-year legal guarantee" in text
    with crm() as session:
        assert session.scalars(select(Ticket).where(Ticket.kind == "refund")).all() == []


@pytest.mark.parametrize(
    ("number", "contact", "says"),
    [
        ("100003", "ana.souza@example.com", "cancel it"),
        ("100006", "mei.chen@example.com", "within 5 business days"),
        ("100001", "ana.souza@example.com", "still on its way"),
    ],
)
async def test_refunds_for_orders_not_delivered_point_the_right_way(
    crm: sessionmaker[Session], mail_sink: MailSink, number: str, contact: str, says: str
) -> None:
    text, _ = await request(web_conversation(crm), "refund", number, contact, mail_sink)
    assert says in text


async def test_a_delayed_order_with_a_ticket_names_it_instead_of_offering_another(
    crm: sessionmaker[Session],
) -> None:
    conversation = web_conversation(crm)
    _, said = await track(conversation, "100004", "jonas.becker@example.com")
    assert "KF-000003" in said and "no need to open another" in said


async def test_yes_cancel_it_read_as_a_cancel_request_confirms_the_waiting_cancellation(
    crm: sessionmaker[Session],
) -> None:
    conversation = web_conversation(crm)
    start = tracker_for(
        conversation, {"pending_cancel": "100003"}, text="yes cancel it", intent="cancel_order"
    )
    events = await ActionStartOrderRequest().run(CollectingDispatcher(), start, DOMAIN)
    assert events == [FollowupAction("action_confirm_cancel")]


async def test_a_contact_given_before_the_number_is_thanked_and_still_needs_the_number(
    crm: sessionmaker[Session],
) -> None:
    conversation = web_conversation(crm)
    dispatcher = CollectingDispatcher()
    tracker = tracker_for(conversation, {"contact": "ana.souza@example.com"}, text="ana.souza@example.com")
    await ActionAskOrderNumber().run(dispatcher, tracker, DOMAIN)
    said = dispatcher.messages[0]
    # An address finds nothing on its own (anyone may know it): the number, or a person.
    assert "can't look orders up by e-mail or phone alone" in said["text"]
    assert "100001" not in said["text"] and [b["payload"] for b in said["buttons"]] == ["/request_human"]


async def test_a_shipped_order_that_cant_be_cancelled_leaves_next_steps(
    crm: sessionmaker[Session], mail_sink: MailSink
) -> None:
    _, events = await request(
        web_conversation(crm), "cancel", "100005", "jonas.becker@example.com", mail_sink
    )
    steps = next(e["value"] for e in events if e.get("name") == "next_steps")
    assert "refuse the delivery" in steps and "#100005" in steps


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("order 101172 came a week late AND the mug inside was smashed. i want a refund", True),
        ("i want my money back for 101175", False),
        ("refund for order 101030 please, i changed my mind about the colour", False),
    ],
)
async def test_a_refund_asked_for_something_that_went_wrong_is_a_complaint(
    crm: sessionmaker[Session], text: str, complaint: bool
) -> None:
    start = tracker_for(web_conversation(crm), text=text, intent="request_refund")
    events = await ActionStartOrderRequest().run(CollectingDispatcher(), start, DOMAIN)
    assert (FollowupAction("action_start_complaint") in events) is complaint


async def test_a_proof_older_than_a_day_is_asked_for_again(crm: sessionmaker[Session]) -> None:
    conversation = web_conversation(crm)
    prove_by_code(crm, conversation, "ana.souza@example.com")
    with crm.begin() as session:
        session.get_one(Conversation, conversation.id).verified_at = utcnow() - timedelta(hours=25)
    dispatcher = CollectingDispatcher()
    events = await ActionListOrders().run(dispatcher, tracker_for(conversation), DOMAIN)
    assert "look up one of them" in dispatcher.messages[0]["text"]  # not her orders: proof first
    assert FollowupAction("order_form") in events
    with crm() as session:
        chat = session.get_one(Conversation, conversation.id)
        assert chat.customer_id is None and chat.proof is None


async def test_a_status_given_and_a_cancellation_are_tagged_as_completed_flows(
    crm: sessionmaker[Session], mail_sink: MailSink
) -> None:
    # bot/crm/resolution.py counts a chat with these replies as resolved (confirmed).
    with crm() as session:
        order = session.scalars(select(Order).where(Order.number == "100001")).one()
        dispatcher = CollectingDispatcher()
        tell_status(dispatcher, order)
    assert dispatcher.messages[0]["custom"] == {"metadata": {"outcome": "order_status"}}

    conversation = web_conversation(crm)
    await request(conversation, "cancel", "100003", "ana.souza@example.com", mail_sink)
    tracker = tracker_for(conversation, {"pending_cancel": "100003"})
    tracker.latest_message["intent"] = {"name": "affirm"}
    dispatcher = CollectingDispatcher()
    await ActionConfirmCancel().run(dispatcher, tracker, DOMAIN)
    assert "is cancelled" in dispatcher.messages[0]["text"]
    assert dispatcher.messages[0]["custom"] == {"metadata": {"outcome": "order_cancelled"}}


async def test_a_policy_explained_is_tagged_as_an_answer(crm: sessionmaker[Session]) -> None:
    # Delivered orders can't be cancelled: the reply says what to do instead, an answer (assumed
    # resolved after 24 quiet hours), not a completed flow.
    with crm() as session:
        order = session.scalars(select(Order).where(Order.number == "100002")).one()
        dispatcher = CollectingDispatcher()
        offer_cancellation(dispatcher, order)
    assert "can't be cancelled" in dispatcher.messages[0]["text"]
    assert dispatcher.messages[0]["custom"] == {"metadata": {"outcome": "answered"}}
