"""The one-time code: sent when a chat wants more than one order's status, asked for and checked in
the code form, then the thing it was sent for is done (actions/orders.py, action_code_checked).

The rules of proof are in bot/crm/proof.py."""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import EventType, FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict
from sqlalchemy.orm import Session

from actions.common import conversation_for, in_transaction, settings
from actions.forms import PERSON_BUTTON, STOP, latest_text, wont_fit
from bot import mail
from bot.crm import proof
from bot.crm.models import Conversation, Customer

logger = logging.getLogger(__name__)

CODE_SLOT = "one_time_code"
FOR_SLOT = "code_for"
# Slot values of one_time_code once the form is done: the chat proved itself, or gave up.
PROVED, FAILED, STOPPED = "proved", "failed", "stopped"
RESEND = re.compile(
    r"\b(?:resend|send (?:it |me )?(?:again|another|a new)|new code|didn'?t (?:get|receive)|"
    r"no (?:code|e-?mail)|not (?:got|received|arrived)|nothing (?:came|arrived))\b",
    re.IGNORECASE,
)
STOP_BUTTON = {"title": "Never mind", "payload": "/deny"}
CANT_SEND = (
    "I'm sorry, I couldn't send you a code just now, so I can't do that here yet. A person from our "
    "team can help you, or try again in a few minutes."
)
TOO_MANY_CODES = (
    "I've already sent you several codes in the last hour, so I won't send another yet. Please use the "
    "newest one, try again in an hour, or ask a person from our team."
)


def client_address(tracker: Tracker) -> str | None:
    """The client address the gateway saw for the message being answered (None on Telegram)."""
    value = (tracker.latest_message.get("metadata") or {}).get("address")
    return str(value)[:64] if value else None


def attempt(tracker: Tracker, conversation: Conversation, **given: Any) -> proof.Attempt:
    return proof.Attempt(conversation=conversation, address=client_address(tracker), **given)


async def deliver_code(tracker: Tracker, customer_id: int) -> tuple[bool, str]:
    """Issue a new code for the customer and e-mail it: (sent, what to tell the customer)."""
    config = settings()

    def issue(session: Session) -> proof.IssuedCode | None:
        conversation = conversation_for(session, tracker)
        customer = session.get(Customer, customer_id)
        assert customer is not None
        return proof.issue_code(session, conversation, customer, config)

    issued = await in_transaction(issue)
    if issued is None:
        return False, TOO_MANY_CODES
    try:
        await asyncio.to_thread(mail.send_code, config, issued.email, issued.code, issued.minutes)
    except mail.MailError:
        return False, CANT_SEND
    return True, (
        f"To keep your account safe I've e-mailed a 6-digit code to {proof.masked(issued.email)}. "
        f"Please type it here (it works for {issued.minutes} minutes)."
    )


async def send_code(
    dispatcher: CollectingDispatcher, tracker: Tracker, customer_id: int, purpose: str, intro: str = ""
) -> list[EventType]:
    """Send a new code to the customer's e-mail on file and start the code form; `purpose` says what
    to do once the code is right ("list", "track:100004", "cancel:100003", "refund:100008")."""
    sent, said = await deliver_code(tracker, customer_id)
    if not sent:
        dispatcher.utter_message(text=intro + said, buttons=[PERSON_BUTTON])
        return [SlotSet(FOR_SLOT, None)]
    dispatcher.utter_message(text=intro + said)
    return [SlotSet(FOR_SLOT, purpose), SlotSet(CODE_SLOT, None), FollowupAction("code_form")]


class ActionAskOneTimeCode(Action):
    """The code form's question. The code was e-mailed when the form started (send_code said so) and a
    wrong answer is told why, so the question is only put again after a question about the bot."""

    def name(self) -> str:
        return "action_ask_one_time_code"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        intent = (tracker.latest_message.get("intent") or {}).get("name")
        if tracker.get_slot("requested_slot") == CODE_SLOT and intent == "bot_challenge":
            dispatcher.utter_message(text="Please type the 6-digit code from the e-mail I sent you.")
        return []


class ValidateCodeForm(FormValidationAction):
    """Checks the code typed; "send it again" sends a new one."""

    def name(self) -> str:
        return "validate_code_form"

    async def validate_one_time_code(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        if tracker.get_slot("requested_slot") != CODE_SLOT:
            # The form has just started, on the message that asked for something else ("and my other
            # orders?"): that message is not an answer to a question not yet put.
            return {CODE_SLOT: None}
        config = settings()
        typed = latest_text(tracker) or str(value or "")
        code = proof.code_in(typed)
        if code is None:
            if STOP.search(typed):
                return {CODE_SLOT: STOPPED}
            if RESEND.search(typed):
                return await self.resend(dispatcher, tracker)
            return {
                CODE_SLOT: None,
                **wont_fit(
                    dispatcher,
                    tracker,
                    "I need the 6-digit code from the e-mail I sent you. If it hasn't arrived, check your "
                    'spam folder, or say "send it again".',
                    STOP_BUTTON,
                ),
            }

        def check(session: Session) -> tuple[str, int]:
            conversation = conversation_for(session, tracker)
            outcome = proof.check_code(session, conversation, code, config)
            return outcome, proof.tries_left(session, conversation, config)

        outcome, left = await in_transaction(check)
        if outcome == "ok":
            return {CODE_SLOT: PROVED, "form_misfits": None}
        if outcome == "wrong":
            dispatcher.utter_message(
                text=f"That code isn't right. You can try {left} more time{'s' if left != 1 else ''}, "
                'or say "send it again" for a new one.'
            )
            return {CODE_SLOT: None}
        dispatcher.utter_message(
            text="That code can't be used any more (it was wrong too often, or it's too old), so I "
            'haven\'t done anything. Say "send it again" for a new code, or a person from our team can '
            "help you.",
            buttons=[{"title": "Send a new code", "payload": "send it again"}, PERSON_BUTTON],
        )
        return {CODE_SLOT: None}

    async def resend(self, dispatcher: CollectingDispatcher, tracker: Tracker) -> dict[str, Any]:
        def customer_of_code(session: Session) -> int | None:
            conversation = conversation_for(session, tracker)
            return proof.pending_customer(session, conversation)

        customer_id = await in_transaction(customer_of_code)
        if customer_id is None:
            return {CODE_SLOT: FAILED}
        sent, said = await deliver_code(tracker, customer_id)
        if not sent:
            dispatcher.utter_message(text=said, buttons=[PERSON_BUTTON])
            return {CODE_SLOT: FAILED}
        dispatcher.utter_message(text=said)
        return {CODE_SLOT: None}
