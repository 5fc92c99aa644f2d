"""The demo shop's saved replies: what agents of a small online shop send most, with placeholders
the console fills from the chat's customer, order and ticket."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from bot.crm import replies
from bot.crm.models import Agent, SavedReply

# (shortcut, title, body), all in English.
DEMO_REPLIES: tuple[tuple[str, str, str], ...] = (
    (
        "hello",
        "Say hello and take the chat",
        "Hi {customer.first_name}, this is {agent.first_name} from the support team. I've read what "
        "you wrote to our assistant, so there's no need to repeat it. Give me a moment to look into it.",
    ),
    (
        "where-is-order",
        "Where the order is now",
        "Order {order.number} is {order.status}. It travels with {order.carrier}, and you can follow "
        "it here: {order.tracking_url}\nThe carrier expects to deliver it on {order.expected_date}.",
    ),
    (
        "order-delayed",
        "Apologise for a late parcel",
        "I'm sorry order {order.number} is taking longer than it should, {customer.first_name}. It is "
        "with {order.carrier} (tracking number {order.tracking_number}). I've asked them for a new "
        "delivery date and will add their answer to your ticket {ticket.reference}.",
    ),
    (
        "ticket-promise",
        "Confirm the ticket and when it will be solved",
        "I've written everything down on ticket {ticket.reference}. We'll have it solved by "
        "{ticket.due} at the latest, and you'll hear from us sooner if we need anything from you.",
    ),
    (
        "return-steps",
        "How to send an order back",
        "Here's how to return order {order.number}: open the return page from your order e-mail, pick "
        "the items and a reason, and download the label. Pack the items unused, stick the label on, "
        "and drop the parcel with the carrier named on the label. Keep the receipt until your refund "
        "arrives.",
    ),
    (
        "refund-timing",
        "When the refund arrives",
        "As soon as your return reaches our warehouse in Kassel, we refund it to the way you paid "
        "within 5 business days. Your bank may need a few more days to show it, {customer.first_name}.",
    ),
    (
        "need-photos",
        "Ask for photos of a damaged item",
        "To sort this out quickly, could you send us a photo of the item and one of the box it came "
        "in? Just reply to the e-mail about ticket {ticket.reference} and attach them.",
    ),
    (
        "anything-else",
        "Ask if there is anything else, before handing back",
        "Is there anything else I can help you with, {customer.first_name}? If not, I'll hand you back "
        "to our assistant, which will ask you in one question how this chat went. Thanks for your "
        "patience!",
    ),
)


def seed_saved_replies(session: Session, author: Agent, at: datetime) -> int:
    """Add the demo saved replies, written by `author`; each is checked by the same rules as a
    lead's, so a typo in a placeholder fails the seed instead of reaching a customer."""
    for shortcut, title, body in DEMO_REPLIES:
        replies.check_content(shortcut, title, body, replies.FALLBACK_LANGUAGE)
        session.add(
            SavedReply(
                shortcut=shortcut,
                title=title,
                body=body,
                language=replies.FALLBACK_LANGUAGE,
                archived=False,
                created_by_id=author.id,
                updated_by_id=author.id,
                created_at=at,
                updated_at=at,
            )
        )
    session.flush()
    return len(DEMO_REPLIES)
