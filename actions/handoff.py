"""Handing a conversation over to a person: when the customer asks, and on the automatic triggers
(the bot failing twice, a serious complaint, a VIP's complaint). Strong language is caught earlier,
in the gateway. The rules and the queue live in `bot.crm.handoff`."""

from __future__ import annotations

from rasa_sdk import Tracker
from rasa_sdk.events import ConversationPaused, EventType
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy.orm import Session

from actions.common import conversation_for, in_transaction, settings, sla_policy
from bot.crm import handoff

PASSING_ON = (
    "I'm passing you to a person from our support team. They'll see everything we've talked about, "
    "so there's no need to repeat yourself."
)


async def hand_over(
    dispatcher: CollectingDispatcher, tracker: Tracker, reason: str, lead_in: str = "", detail: str = ""
) -> list[EventType]:
    """Queue the chat for a person, tell the customer what to expect, and pause the bot."""
    config = settings()
    policy = sla_policy()

    def escalate(session: Session) -> str:
        conversation = conversation_for(session, tracker)
        escalation = handoff.escalate(
            session,
            conversation,
            reason,
            policy=policy,
            minutes_per_chat=config.handoff_minutes_per_chat,
            actor="customer" if reason == "customer_asked" else "bot",
            detail=detail or (tracker.latest_message.get("text") or "")[:500],
        )
        return escalation.notice

    notice = await in_transaction(escalate)
    dispatcher.utter_message(text=" ".join(part for part in (lead_in, PASSING_ON, notice) if part))
    # The CRM now holds the mode; Rasa stays paused until an agent hands the chat back.
    return [ConversationPaused()]


def trigger_on(reason: str) -> bool:
    return settings().trigger_on(reason)
