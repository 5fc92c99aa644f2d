"""Handing a conversation over to a person."""

from __future__ import annotations

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ConversationPaused, EventType
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict
from sqlalchemy.orm import Session

from actions.common import conversation_for, in_transaction
from bot.crm.audit import audit
from bot.crm.models import ConversationMode


class ActionRequestHuman(Action):
    """Puts the conversation in the agents' queue and pauses the bot for it."""

    def name(self) -> str:
        return "action_request_human"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        def escalate(session: Session) -> None:
            conversation = conversation_for(session, tracker)
            if conversation.mode is ConversationMode.BOT:
                conversation.mode = ConversationMode.PENDING_AGENT
                audit(
                    session,
                    "customer",
                    "handoff_requested",
                    "conversation",
                    conversation.id,
                    {"reason": "customer_asked"},
                )

        await in_transaction(escalate)
        dispatcher.utter_message(
            text="I'm passing you to a person from our support team. They'll see everything we've "
            "talked about, so there's no need to repeat yourself. They'll answer right here."
        )
        # The CRM now holds the mode; Rasa stays paused until an agent hands the chat back.
        return [ConversationPaused()]
