"""Complaints: apologise, collect what happened and what the customer wants, file a ticket, promise a time."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import EventType, FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict
from sqlalchemy import select
from sqlalchemy.orm import Session

from actions.common import conversation_for, in_transaction, latest_message_id, settings, sla_policy
from actions.forms import (
    DONT_KNOW,
    DONT_KNOW_BUTTON,
    FIND_ORDER_NUMBER,
    STOP,
    WHERE_TO_FIND,
    CustomerProofForm,
    fitted,
    latest_text,
    order_buttons,
    recent_orders_of_chat,
    wont_fit,
)
from actions.handoff import hand_over, trigger_on
from actions.knowledge import article_instead, security_worry
from actions.orders import LOCKED_OUT, WENT_WRONG, describe_order, prove_order
from bot.crm import complaints, priority, proof, sentiment, sla, tickets
from bot.crm import orders as crm
from bot.crm.models import Customer, Severity, Ticket, utcnow
from knowledge_base import answers

FORM_SLOTS = ("complaint_category", "complaint_details", "complaint_outcome")
RESET = [
    SlotSet("order_number", None),
    SlotSet("contact", None),
    *(SlotSet(name, None) for name in FORM_SLOTS),
    SlotSet("complaint_cancelled", None),
    SlotSet("complaint_opening", None),
    SlotSet("form_misfits", None),
]
NO_ORDER = "none"
CATEGORY_BUTTONS = [
    {"title": label[0].upper() + label[1:], "payload": f'/inform{{"complaint_category": "{key}"}}'}
    for key, label in complaints.CATEGORIES.items()
]
OUTCOME_BUTTONS = [
    {"title": label[0].upper() + label[1:], "payload": f'/inform{{"complaint_outcome": "{key}"}}'}
    for key, label in complaints.OUTCOMES.items()
]


def _text(tracker: Tracker) -> str:
    return str(tracker.latest_message.get("text") or "")


def promised(moment: datetime | None, policy: sla.SlaPolicy) -> str:
    """A due time as the customer reads it, in the shop's time zone."""
    if moment is None:
        return "as soon as we can"
    local = moment.astimezone(policy.zone)
    return f"{local:%A %-d %B, %H:%M} ({policy.timezone} time)"


class ActionStartComplaint(Action):
    """Apologises first, then notes what the opening message already says (category, story, wish)."""

    def name(self) -> str:
        return "action_start_complaint"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        text = _text(tracker)
        if text.startswith("/"):  # a button ("Report a fault") carries no story
            text = ""
        if text and (
            (answers.is_followup(text) and not complaints.is_descriptive(text)) or security_worry(text, None)
        ):
            # "and the return?" after an order was discussed is a question, not a complaint; someone
            # else in the customer's account gets the security answer and a person.
            return [FollowupAction("action_answer_question")]
        story = complaints.infer_category(text) in WENT_WRONG or sentiment.is_frustrated(text)
        if text and await article_instead(tracker, decisive_only=story):
            # "the payment step keeps failing": an article answers it. Something that arrived broken,
            # wrong or not at all, or an angry customer, is taken down as a complaint, unless an
            # article fits it almost word for word and the classifier doubted the complaint.
            return [FollowupAction("action_answer_question")]
        if text and complaints.assess(text).severity is Severity.HIGH:
            # Fire, injury, a child at risk: a person at once, every time; the details can wait.
            dispatcher.utter_message(
                text="I'm so sorry, that sounds serious. I can put you through to a person from our team "
                "right now, or take the details here and file it as urgent.",
                buttons=[{"title": "Talk to a person now", "payload": "/request_human"}],
            )
        else:
            dispatcher.utter_message(
                text="I'm sorry this happened. I'll take down the details so the right person can put "
                "it right, and you'll get a reference number."
            )
        descriptive = complaints.is_descriptive(text)
        entity_order = next(
            (
                e.get("value")
                for e in tracker.latest_message.get("entities", [])
                if e.get("entity") == "order_number"
            ),
            None,
        )
        # Started from another request ("it arrived smashed, I want a refund"): no rule follows this
        # action for that intent, so the form is started here.
        started_here = (tracker.latest_message.get("intent") or {}).get("name") not in ("complaint", None)
        return [
            *RESET,
            SlotSet("order_number", crm.parse_order_number(str(entity_order)) if entity_order else None),
            SlotSet("complaint_opening", text[:2000] or None),
            SlotSet("complaint_category", complaints.infer_category(text) if descriptive else None),
            SlotSet("complaint_details", text[:2000] if descriptive else None),
            SlotSet("complaint_outcome", complaints.infer_outcome(text)),
            *([FollowupAction("complaint_form")] if started_here else []),
        ]


def add_to_story(tracker: Tracker, text: str) -> dict[str, Any]:
    """The customer's own words added to what they told us so far: nothing they say is lost."""
    so_far = str(tracker.get_slot("complaint_details") or "")
    if not text or text in so_far:
        return {}
    story = f"{so_far}\n{text}".strip()[:2000]
    kept: dict[str, Any] = {"complaint_details": story}
    # What the story already says is not asked again.
    if not tracker.get_slot("complaint_category") and (category := complaints.infer_category(story)):
        kept["complaint_category"] = category
    if not tracker.get_slot("complaint_outcome") and (outcome := complaints.infer_outcome(story)):
        kept["complaint_outcome"] = outcome
    return kept


# "just send it again", "I'd like ...": an answer to "what would put this right?", whatever its words.
WISH = re.compile(
    r"^\W*(?:just |please |pls |honestly |well )*(?:send|give|get|make|fix|replace|refund|i want|i'?d like|"
    r"i would like|i need|i expect|can you|could you|you should|you need to)\b",
    re.IGNORECASE,
)
# "it took three weeks and the tracking never updated" tells what happened; "where is it now?" asks.
QUESTION = re.compile(
    r"\?|^\W*(?:where|when|what|how|has|have|is|did|does|can|could|will|any|status|track)\b", re.IGNORECASE
)


class ValidateComplaintForm(CustomerProofForm, FormValidationAction):
    """Checks each answer in the complaint form; the order (if any) must be proven to be the customer's.

    A verified chat needs no contact: we know who it is and answer here."""

    contact_retry = (
        "I need an e-mail address or phone number, for example name@example.com or +44 7700 900123."
    )
    # "No" to the order question means "not about an order", so stopping is said in words.
    stop_button = {"title": "Never mind, don't file it", "payload": "never mind"}

    def name(self) -> str:
        return "validate_complaint_form"

    async def required_slots(
        self,
        domain_slots: list[str],
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> list[str]:
        if tracker.get_slot("complaint_cancelled"):
            return []
        return await super().required_slots(domain_slots, dispatcher, tracker, domain)

    def _cancelled(self, tracker: Tracker, dispatcher: CollectingDispatcher) -> dict[str, Any] | None:
        """Whether the customer's latest message stops the complaint (whatever was asked)."""
        if STOP.match(latest_text(tracker)):
            dispatcher.utter_message(
                text="Alright, I haven't filed anything. If you change your mind, just tell me."
            )
            return {"complaint_cancelled": True, "order_number": None, "contact": None}
        return None

    def _story(self, tracker: Tracker, text: str) -> dict[str, Any]:
        return add_to_story(tracker, text)

    def _told_more(
        self, tracker: Tracker, text: str, dispatcher: CollectingDispatcher
    ) -> dict[str, Any] | None:
        """An answer that tells what happened instead of answering the question: kept as the story,
        and the question comes again."""
        if not complaints.is_descriptive(text) and not sentiment.is_frustrated(text):
            return None
        dispatcher.utter_message(text="Thank you, I've noted that for your complaint.")
        return {**self._story(tracker, text), **fitted()}

    async def validate_order_number(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        if (stop := self._cancelled(tracker, dispatcher)) is not None:
            return stop
        if value == NO_ORDER:
            return {"order_number": NO_ORDER, **fitted()}
        given = latest_text(tracker) or str(value)
        number = crm.parse_order_number(str(value))
        if number is None:
            if DONT_KNOW.search(given):
                dispatcher.utter_message(
                    text="That's fine: I'll file it without the order number, and our team will find "
                    "the order from your details."
                )
                return {"order_number": NO_ORDER, **self._story(tracker, given), **fitted()}
            if WHERE_TO_FIND.search(given):
                dispatcher.utter_message(text=FIND_ORDER_NUMBER)
                return {"order_number": None, **fitted()}
            if (told := self._told_more(tracker, given, dispatcher)) is not None:
                return {"order_number": None, **told}
            return {
                "order_number": None,
                **wont_fit(
                    dispatcher,
                    tracker,
                    "Which order is it about? " + FIND_ORDER_NUMBER + " If your complaint isn't about "
                    "an order, just say so.",
                    self.stop_button,
                ),
            }

        def check(session: Session) -> str:
            conversation = conversation_for(session, tracker)
            if conversation.customer_id is None:
                # Proven together with the contact details; a number no order has is said at once.
                return "later" if crm.order_exists(session, number) else "no_such_order"
            outcome, _ = prove_order(session, tracker, conversation, number, None)
            return outcome

        outcome = await in_transaction(check)
        if outcome == "locked":
            dispatcher.utter_message(text=LOCKED_OUT + " I'll file your complaint without the order.")
            return {"order_number": NO_ORDER}
        if outcome in ("not_found", "no_such_order"):
            where = " on your account" if outcome == "not_found" else ""
            dispatcher.utter_message(
                text=f"I can't find order #{number}{where}. Please check the number, or say if the "
                "complaint isn't about an order.",
                buttons=[DONT_KNOW_BUTTON, {"title": "It's not about an order", "payload": "/deny"}],
            )
            return {"order_number": None, **fitted()}
        # "order is 101165. honestly the stitching looks cheap too": the rest is more of the story.
        rest = re.sub(r"#?\s*" + number, " ", given).strip()
        more = self._story(tracker, given) if len(re.findall(r"[^\W\d_]+", rest)) >= 5 else {}
        return {"order_number": number, **more, **fitted()}

    async def validate_contact(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        if (stop := self._cancelled(tracker, dispatcher)) is not None:
            return stop
        return await super().validate_contact(value, dispatcher, tracker, domain)

    async def not_a_contact(
        self, given: str, dispatcher: CollectingDispatcher, tracker: Tracker
    ) -> dict[str, Any]:
        if (
            crm.parse_order_number(given) is None
            and (told := self._told_more(tracker, given, dispatcher)) is not None
        ):
            return told
        return await super().not_a_contact(given, dispatcher, tracker)

    async def contact_given(
        self, given: str, contact: crm.Contact, dispatcher: CollectingDispatcher, tracker: Tracker
    ) -> dict[str, Any]:
        """Proves the order named earlier, if any, with the contact."""
        number = tracker.get_slot("order_number")
        if number in (None, NO_ORDER):
            return {"contact": given}

        def check(session: Session) -> str:
            conversation = conversation_for(session, tracker)
            outcome, _ = prove_order(session, tracker, conversation, str(number), contact)
            return outcome

        outcome = await in_transaction(check)
        # A complaint needs no more than the order's own proof, even while its e-mail is being guessed
        # at ("needs_code"): it shows nothing, and a person reads it.
        if outcome in ("found", "needs_code"):
            return {"contact": given}
        if outcome == "locked":
            dispatcher.utter_message(text=LOCKED_OUT + " I'll file your complaint without the order.")
            return {"order_number": NO_ORDER, "contact": given}
        # The number stays: a corrected e-mail is enough, and a different number replaces it.
        dispatcher.utter_message(
            text=f"Those details don't match order #{number}. Please check them, or give me a different "
            "order number; if the complaint isn't about an order, just say so.",
            buttons=[{"title": "It's not about an order", "payload": "/deny"}],
        )
        return {"contact": None}

    async def validate_complaint_category(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        if (stop := self._cancelled(tracker, dispatcher)) is not None:
            return stop
        given = latest_text(tracker)
        category = complaints.parse_category(str(value))
        wish: dict[str, Any] = {}
        if (
            given
            and not tracker.get_slot("complaint_outcome")
            and (outcome := complaints.infer_outcome(given))
        ):
            wish = {"complaint_outcome": outcome}  # "a refund please", said when asked what it's about
        if given and (category is None or complaints.CATEGORIES.get(category, "") != given.lower()):
            # Words, not a button: what they say is the story too ("it's just late").
            story = self._story(tracker, given) if len(re.findall(r"\w+", given)) >= 3 else {}
            if category is None and story:
                category = "other"
            if category is not None:
                return {"complaint_category": category, **story, **wish, **fitted()}
        if category is None and wish:
            return {"complaint_category": None, **wish, **fitted()}
        if category is None:
            return {
                "complaint_category": None,
                **wont_fit(
                    dispatcher,
                    tracker,
                    "Which of these is closest? Or tell me in a sentence what went wrong.",
                    self.stop_button,
                ),
            }
        return {"complaint_category": category, **fitted()}

    async def validate_complaint_details(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        if (stop := self._cancelled(tracker, dispatcher)) is not None:
            return stop
        text = str(value).strip()
        if len(re.findall(r"\w+", text)) < 2:
            return {
                "complaint_details": None,
                **wont_fit(
                    dispatcher,
                    tracker,
                    "Could you tell me a bit more? A sentence or two about what happened is enough.",
                    self.stop_button,
                ),
            }
        return {"complaint_details": text[:2000], **fitted()}

    async def validate_complaint_outcome(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        if (stop := self._cancelled(tracker, dispatcher)) is not None:
            return stop
        text = str(value).strip()
        outcome = complaints.parse_outcome(text)
        if (
            outcome is None
            and not WISH.match(text)
            and complaints.is_descriptive(text)
            and complaints.infer_category(text) is not None
        ):
            # More about what happened ("the parcel was left in the rain"): kept, and asked again.
            dispatcher.utter_message(text="Thank you, I've noted that for your complaint.")
            return {"complaint_outcome": None, **self._story(tracker, text), **fitted()}
        # Anything else the customer asks for is kept in their words and read by a person.
        return {"complaint_outcome": outcome or f"other: {text[:200]}", **fitted()}


class ActionAskComplaintOrderNumber(Action):
    """Asks which order the complaint is about, with the customer's recent orders when we know them."""

    def name(self) -> str:
        return "action_ask_complaint_form_order_number"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        buttons = order_buttons(await recent_orders_of_chat(tracker) or [], "inform")
        buttons.append({"title": "It's not about an order", "payload": "/deny"})
        dispatcher.utter_message(
            text="Which order is it about? The number has 6 digits, like #100123, and it's in your "
            "confirmation e-mail.",
            buttons=buttons,
        )
        return []


class ActionAskComplaintContact(Action):
    """Asks for an e-mail or phone: to prove the order, or to reach the customer when there is none."""

    def name(self) -> str:
        return "action_ask_complaint_form_contact"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        if tracker.get_slot("requested_slot") == "contact":
            # Asked again: the reply to the last answer said why.
            dispatcher.utter_message(text="What's the e-mail address or phone number, then?")
        elif tracker.get_slot("order_number") in (None, NO_ORDER):
            dispatcher.utter_message(
                text="What e-mail address or phone number can our team reach you on about this?"
            )
        else:
            dispatcher.utter_message(
                text="To make sure the order is yours, what's the e-mail address or phone number you "
                "ordered with?"
            )
        return []


class ActionAskComplaintCategory(Action):
    """Asks what kind of problem it is, as buttons."""

    def name(self) -> str:
        return "action_ask_complaint_category"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        dispatcher.utter_message(text="What is the complaint about?", buttons=CATEGORY_BUTTONS)
        return []


class ActionAskComplaintOutcome(Action):
    """Asks what would put it right for the customer, as buttons."""

    def name(self) -> str:
        return "action_ask_complaint_outcome"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        dispatcher.utter_message(
            text="What would put this right for you? Pick one, or tell me in your own words.",
            buttons=OUTCOME_BUTTONS,
        )
        return []


class ActionSubmitComplaint(Action):
    """Files the complaint as a ticket (or adds to the open one about the same order) and promises a time."""

    def name(self) -> str:
        return "action_submit_complaint"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        if tracker.get_slot("complaint_cancelled"):
            return list(RESET)
        config = settings()
        policy = sla_policy()
        number = tracker.get_slot("order_number")
        category = str(tracker.get_slot("complaint_category") or "other")
        details = str(tracker.get_slot("complaint_details") or "")
        opening = str(tracker.get_slot("complaint_opening") or "")
        outcome = str(tracker.get_slot("complaint_outcome") or "") or None
        contact = tracker.get_slot("contact")
        message_id = latest_message_id(tracker)

        def file(session: Session) -> tuple[str, Ticket, str | None]:
            conversation = conversation_for(session, tracker)
            order = None
            if number not in (None, NO_ORDER) and conversation.customer_id is not None:
                order = crm.customer_order(session, conversation.customer_id, str(number))
            story = details if opening in details else f"{opening}\n{details}".strip()
            if order is not None:
                # The same problem joins its ticket (and is reassessed there); another one gets its own.
                existing = tickets.complaint_target(
                    session, order.id, category, config.ticket_reopen_days, story
                )
                if existing is not None:
                    happened = tickets.add_complaint(session, existing, story, config.ticket_reopen_days)
                    if happened != "closed":
                        return happened, existing, order.number
            assessment = complaints.assess(story, order, utcnow().date())
            subject = complaints.CATEGORIES.get(category, category)
            subject = subject[0].upper() + subject[1:]
            if order is not None:
                subject += f" (order #{order.number})"
            ticket = tickets.open_ticket(
                session,
                kind="complaint",
                category=category,
                subject=subject,
                description=story,
                desired_outcome=(outcome or "")[:32] or None,
                policy=policy,
                severity=assessment.severity,
                contact=None if conversation.customer_id is not None else contact,
                actor="bot",
                customer_id=conversation.customer_id,
                conversation_id=conversation.id,
                order_id=order.id if order is not None else None,
                source_message_id=message_id,
                data={"severity_reasons": assessment.reasons, "outcome": outcome},
            )
            if order is not None:
                tickets.add_event(session, ticket, "bot", "order_status", {"status": describe_order(order)})
            return "created", ticket, order.number if order is not None else None

        happened, ticket, order_number = await in_transaction(file)
        if happened == "created":
            dispatcher.utter_message(
                text=f"Thank you for telling us. Your complaint is filed as {ticket.reference}. A person "
                f"from our team will reply here by {promised(ticket.sla_first_response_due, policy)}, and "
                f"we aim to have it sorted by {promised(ticket.sla_resolution_due, policy)}."
            )
        elif happened == "reopened":
            dispatcher.utter_message(
                text=f"You told us about this problem with order #{order_number} recently, so I've reopened "
                f"{ticket.reference} and added what you told me, rather than starting again. Our team will "
                "pick it up from there and reply here."
            )
        else:
            dispatcher.utter_message(
                text=f"You already have an open ticket about this problem with order #{order_number}, "
                f"{ticket.reference}, so I've added what you told me to it rather than opening a second "
                "one. The team handling it will see it straight away."
            )
        done: list[EventType] = [*RESET, SlotSet("last_ticket", ticket.reference)]
        if ticket.severity is Severity.HIGH and trigger_on("severe_complaint"):
            return done + await hand_over(
                dispatcher, tracker, "severe_complaint", lead_in="Because this sounds serious,"
            )
        # The vip_complaint trigger switches both value rules (bot/crm/priority.py) on and off.
        reason = (
            await _value_reason(ticket.customer_id)
            if ticket.customer_id is not None and trigger_on("vip_complaint")
            else None
        )
        if reason is not None:
            return done + await hand_over(dispatcher, tracker, reason, lead_in="Let me get this moving now:")
        if ticket.severity is Severity.HIGH:
            dispatcher.utter_message(
                text="Because this sounds serious, I can put you through to a person right now.",
                buttons=[
                    {"title": "Talk to a person now", "payload": "/request_human"},
                    {"title": "No, a reply later is fine", "payload": "/deny"},
                ],
            )
        return [*RESET, SlotSet("last_ticket", ticket.reference)]


async def _value_reason(customer_id: int) -> str | None:
    """Why this customer's complaint goes to a person at once (VIP, or valuable and at risk), if it does."""

    def judge(session: Session) -> str | None:
        customer = session.get(Customer, customer_id)
        if customer is None:
            return None
        valued = session.scalars(select(Customer.clv_future).where(Customer.clv_future > 0)).all()
        floor = priority.high_value_floor([v for v in valued if v is not None])
        return priority.complaint_goes_to_a_person(
            customer.value_tier, customer.clv_future, floor, customer.churn_risk, customer.lifecycle_stage
        )

    return await in_transaction(judge)


class ActionOrderStatusInComplaint(Action):
    """Answers "where is my order?" in the middle of a complaint, then the complaint carries on."""

    def name(self) -> str:
        return "action_order_status_in_complaint"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        text = latest_text(tracker)
        if WHERE_TO_FIND.search(text):
            # "where do I find the order number?" is not "where is my order?"
            dispatcher.utter_message(text=FIND_ORDER_NUMBER)
            return []
        if not QUESTION.search(text) and complaints.is_descriptive(text):
            # "it took three weeks and the tracking never updated": more of the story, not a question.
            dispatcher.utter_message(text="Thank you, I've noted that for your complaint.")
            return [SlotSet(name, value) for name, value in add_to_story(tracker, text).items()]
        number = crm.parse_order_number(str(tracker.get_slot("order_number") or ""))

        def look_up(session: Session) -> str | None:
            conversation = conversation_for(session, tracker)
            if number is None or conversation.customer_id is None:
                return None
            # Its status is shown to a chat proven by code, or that proved this very order.
            window = timedelta(hours=settings().verification_valid_hours)
            if not proof.trusted(conversation, settings()) and not crm.recently_proven(
                session, conversation, number, window
            ):
                return None
            order = crm.customer_order(session, conversation.customer_id, number)
            return describe_order(order) if order is not None else None

        status = await in_transaction(look_up)
        if status is None:
            dispatcher.utter_message(
                text="I'll check where it is as soon as we've identified the order together. Let's finish "
                "the complaint first."
            )
        else:
            dispatcher.utter_message(text=status + " Now, back to your complaint.")
        return []
