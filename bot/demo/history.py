"""Past service activity for the demo: days of chats, hand-overs to people, tickets and satisfaction
answers, so the support lead's dashboard has a history to show.

Run after `seed_demo_data` (it needs the demo customers, orders and agents). Per day 25-45
conversations (web ~70%, Telegram ~30%), 2-8 messages each; about 20% go to a person (a `handoffs`
row, claimed 1-20 minutes later, first agent reply 1-10 minutes after that), about 10% open a
ticket (complaint, refund or delivery) whose SLA due times come from the SLA policy and which miss
a target about one time in ten; satisfaction is answered for ~60% of resolved tickets and ~25% of
chats. Everything is drawn from `random.Random(seed)`, so the same database, `days`, `now` and
`seed` give the same rows.

Rows go in as bulk INSERTs with ids chosen here (after the current largest id): the ORM would
take minutes for a year of history. That bypasses the rescoring session hooks, so customers are
rescored once at the end, as the nightly job would. Chats happen between 07:00 and 22:00 UTC on
the days before `now`'s day and end the same evening: none is left waiting for an agent. Ticket
work that would fall after `now` has not happened yet (the ticket is still open). Low scores do
not open the follow-up tickets the live product opens, so ticket counts stay those of the chats.
The showcase customers (bot/demo/seed.py) are left out so their walk-through stays as documented.
"""

from __future__ import annotations

import random
import secrets
from bisect import bisect_right
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from itertools import accumulate
from typing import Any, cast

from sqlalchemy import Table, func, insert, select, text
from sqlalchemy.orm import Session

from bot.crm import sla
from bot.crm.complaints import CATEGORIES, OUTCOMES
from bot.crm.csat import ANSWER_WINDOW
from bot.crm.models import (
    Agent,
    AgentRole,
    AuthorKind,
    Base,
    Conversation,
    ConversationMode,
    CsatSurvey,
    Customer,
    Direction,
    Handoff,
    Message,
    MessageStatus,
    Order,
    Severity,
    SurveyStatus,
    Ticket,
    TicketEvent,
    TicketPriority,
    TicketStatus,
    ValueTier,
)
from bot.crm.priority import priority_for, raise_priority
from bot.crm.scoring import rescore_all
from bot.crm.tickets import reference_for
from bot.demo.seed import SHOWCASE

DEFAULT_SEED = 7
DEFAULT_REOPEN_DAYS = 7  # the default of TICKET_REOPEN_DAYS
HANDOFF_SHARE = 0.20
TICKET_SHARE = 0.10
# A missed target per measure, roughly; late first responses also make some resolutions late.
MISS_SHARE = 0.10
CONVERSATION_SURVEY_ASKED = 0.40  # of chats; 5 in 8 of those answer, so ~25% of all chats
CONVERSATION_SURVEY_ANSWERED = 0.625
TICKET_SURVEY_ANSWERED = 0.60
# The scheduler checks for breaches every 30 s: a breach is recorded shortly after the due time.
BREACH_NOTICED_AFTER = timedelta(seconds=30)

_SCORES = (1, 2, 3, 4, 5)
_SCORE_WEIGHTS = (5, 5, 12, 31, 47)  # chats and tickets that went well
_UNHAPPY_WEIGHTS = (16, 13, 21, 27, 23)  # late tickets, severe complaints, angry chats
_REASONS = ("customer_asked", "repeated_fallback", "negative_sentiment")
_REASON_WEIGHTS = (60, 25, 15)
_COMPLAINT_WEIGHTS = {
    "product_defect": 30,
    "delivery_problem": 20,
    "wrong_or_missing_item": 17,
    "billing": 11,
    "website_app": 9,
    "staff_attitude": 5,
    "other": 8,
}
_SEVERITY_WEIGHTS = {
    "complaint": (50, 35, 15),
    "refund": (60, 40, 0),
    "delivery": (40, 55, 5),
}

# --- what people say ------------------------------------------------------------------------------
# Topics are lists of (customer, bot) exchanges; a chat takes the first few. {order} is an order
# number of the customer's (or a plausible one for a visitor who never said who they are).
_TOPICS: dict[str, list[tuple[str, str]]] = {
    "order_status": [
        (
            "where is my order {order}?",
            "Let me check order {order}. Which e-mail address did you order with?",
        ),
        (
            "it's the one on my account",
            "Thanks, that matches. Your parcel is in transit and should arrive within two working days.",
        ),
        (
            "can I have the tracking number?",
            "Of course: it is in your shipping e-mail, and the latest scan "
            "was at the sorting centre this morning.",
        ),
        ("great, thanks", "You're welcome! Is there anything else I can help with?"),
    ],
    "returns": [
        ("I want to return something", "You can return unused items within 30 days. Which order is it?"),
        (
            "order {order}, the chair doesn't fit on my balcony",
            "Got it. I've sent a free return label to your e-mail; hand the parcel in at any parcel shop.",
        ),
        (
            "when do I get my money back?",
            "Refunds reach your account 3-5 working days after the return arrives at our warehouse.",
        ),
        ("ok thank you", "Happy to help!"),
    ],
    "payment": [
        (
            "my card payment failed but the money is gone",
            "Sorry about that. A failed payment is only reserved; your bank releases it within 5 days.",
        ),
        (
            "can I pay by invoice instead?",
            "Yes, invoice is available for orders up to 500 EUR after a quick check at checkout.",
        ),
        ("do you take PayPal?", "We take Visa, Mastercard, PayPal and bank transfer."),
        ("thanks", "You're welcome!"),
    ],
    "delivery_delay": [
        (
            "my parcel {order} is late",
            "I'm sorry it's late. The carrier reports a delay at the sorting "
            "centre and expects to deliver tomorrow.",
        ),
        (
            "it was promised for Monday",
            "You're right, it is past the promised day. I've asked the carrier to prioritise it.",
        ),
        (
            "will I get a discount?",
            "If it doesn't arrive by tomorrow, write to us and we'll refund the shipping.",
        ),
        ("ok", "Thank you for your patience."),
    ],
    "product": [
        (
            "is the fire pit safe on a wooden deck?",
            "Please put it on a stone base or the heat-protection mat, never straight on wood.",
        ),
        (
            "does the 2-person tent fit three?",
            "It sleeps two comfortably; for three we'd suggest a larger tent.",
        ),
        (
            "when is the hammock back in stock?",
            "We expect new stock in about two weeks; the product page can e-mail you when it's back.",
        ),
        ("thanks!", "Enjoy your garden!"),
    ],
    "account": [
        ("I forgot my password", "Use 'Forgot password' on the login page and we'll send you a reset link."),
        (
            "I didn't get the e-mail",
            "Please check your spam folder: the link comes from our no-reply address and works for one hour.",
        ),
        ("found it, thanks", "Great, glad it worked!"),
        ("bye", "Goodbye!"),
    ],
    "voucher": [
        (
            "my voucher code doesn't work",
            "Sorry about that. Vouchers need a minimum order of 30 EUR and "
            "can't be combined with other discounts.",
        ),
        ("my basket is 45 EUR", "Then it should work: please check the code has no spaces in it."),
        ("now it works", "Good to hear! Anything else?"),
        ("no, thanks", "Have a nice day!"),
    ],
}
# What each scripted reply was, stored in its metadata as the live actions tag theirs
# (bot/crm/resolution.py): an article, a completed flow, or None for small talk and questions.
_ORDER_STATUS = {"outcome": "order_status"}
_REPLY_TAGS: dict[str, list[dict[str, str] | None]] = {
    "order_status": [None, _ORDER_STATUS, {"kb_article": "track-my-order"}, None],
    "returns": [
        {"kb_article": "how-to-return"},
        {"kb_article": "return-label"},
        {"kb_article": "refund-timing"},
        None,
    ],
    "payment": [
        {"kb_article": "payment-failed"},
        {"kb_article": "payment-methods"},
        {"kb_article": "payment-methods"},
        None,
    ],
    "delivery_delay": [_ORDER_STATUS, {"kb_article": "order-delayed"}, {"kb_article": "order-delayed"}, None],
    "product": [
        {"kb_article": "fire-pit-rust"},
        {"kb_article": "tent-care"},
        {"kb_article": "back-in-stock"},
        None,
    ],
    "account": [{"kb_article": "forgot-password"}, {"kb_article": "reset-link-not-working"}, None, None],
    "voucher": [{"kb_article": "voucher-not-working"}, {"kb_article": "voucher-not-working"}, None, None],
}
# Some chats end on a question the bot could not answer: their last exchange is one of these. The
# replies open as the live fallbacks do (actions/knowledge.py) and carry the same tags.
UNANSWERED_SHARE = 0.12
_NO_ANSWER = (
    "I'm sorry, I don't have an answer to that yet. I've noted your question so our team can add one. "
    "Would you like to talk to a person?"
)
_OUT_OF_SCOPE = (
    "That's outside what I can help with, sorry. I can answer questions about our shop, track orders "
    "and connect you with our support team."
)
_UNANSWERED: tuple[tuple[str, str, str], ...] = (
    ("do you sell replacement zips for the tent?", _NO_ANSWER, "no_answer"),
    ("can I pick up my order at your warehouse?", _NO_ANSWER, "no_answer"),
    ("do you do gift wrapping?", _NO_ANSWER, "no_answer"),
    ("is the hammock stand sold separately?", _NO_ANSWER, "no_answer"),
    ("can you recommend a good campsite?", _OUT_OF_SCOPE, "out_of_scope"),
    ("what's the weather like this weekend?", _OUT_OF_SCOPE, "out_of_scope"),
)
_UNANSWERED_WEIGHTS = (30, 20, 15, 15, 12, 8)
_TOPIC_WEIGHTS = {
    "order_status": 34,
    "returns": 16,
    "payment": 10,
    "delivery_delay": 14,
    "product": 12,
    "account": 7,
    "voucher": 7,
}
_COMPLAINT_TEXTS = {
    "product_defect": "the grill from order {order} arrived with a cracked lid",
    "delivery_problem": "my parcel {order} arrived crushed and soaking wet",
    "wrong_or_missing_item": "one of the items from order {order} is missing",
    "billing": "I was charged twice for order {order}",
    "staff_attitude": "the person on the phone yesterday was really rude to me",
    "website_app": "your checkout keeps crashing when I try to pay",
    "other": "I'm not happy with how order {order} was handled",
}
_TICKET_TEXTS = {
    "refund": "I returned order {order} two weeks ago and still have no refund",
    "delivery": "order {order} still hasn't arrived, can someone look into it?",
}
_TICKET_REPLY = "I'm sorry about that. I've recorded it for our team; your reference is {reference}."
_HANDOVER = {
    "customer_asked": ("can I talk to a person please?", "Of course, I'm passing you to a colleague."),
    "repeated_fallback": (
        "that's not what I asked",
        "Sorry, I'm not getting it. Let me bring in a colleague.",
    ),
    "negative_sentiment": ("this is ridiculous, nothing works", "I'm sorry. A colleague will take over."),
    "severe_complaint": ("this is really not ok", "I'm sorry. I'm passing this to a colleague right away."),
    "vip_complaint": ("this is really not ok", "I'm sorry. I'm passing this to a colleague right away."),
}
_AGENT_LINES = (
    "Hi, this is {name} from the support team. I've read the chat and I'm looking into it now.",
    "Hello, {name} here. Sorry for the trouble, let me sort this out for you.",
    "Hi! {name} from customer service. Give me a moment to check your order.",
)
_RESOLUTIONS = {
    "refund": "Refunded the order total to the original payment method.",
    "replacement": "Sent a replacement; it ships today.",
    "repair": "Sent a free repair kit with instructions.",
    "apology": "Apologised and passed the feedback on to the team concerned.",
    "information": "Explained what happened and what we changed.",
}
_COMMENTS = {
    1: ("nobody got back to me for days", "still waiting, very disappointed"),
    2: ("took far too long", "the answer didn't help"),
    5: ("quick and friendly, thank you!", "great service"),
}


@dataclass(frozen=True)
class HistorySummary:
    days: int
    conversations: int
    messages: int
    handoffs: int
    tickets: int
    ticket_events: int
    surveys: int
    answered_surveys: int
    tickets_by_kind: dict[str, int] = field(default_factory=dict)

    def describe(self) -> str:
        """One line for the command line."""
        kinds = ", ".join(f"{count} {kind}" for kind, count in self.tickets_by_kind.items())
        return (
            f"{self.days} days: {self.conversations} conversations with {self.messages} messages, "
            f"{self.handoffs} hand-overs to a person, {self.tickets} tickets ({kinds}), "
            f"{self.surveys} satisfaction surveys ({self.answered_surveys} answered)"
        )


@dataclass(frozen=True)
class _Person:
    customer_id: int
    tier: ValueTier
    orders: list[tuple[datetime, int, str]]  # (placed_at, id, number), oldest first

    def order_before(self, moment: datetime) -> tuple[datetime, int, str] | None:
        index = bisect_right(self.orders, (moment, 1 << 62, ""))
        return self.orders[index - 1] if index else None


def seed_history(
    session: Session,
    *,
    days: int,
    now: datetime,
    seed: int = DEFAULT_SEED,
    policy: sla.SlaPolicy | None = None,
    reopen_days: int = DEFAULT_REOPEN_DAYS,
) -> HistorySummary:
    """Add `days` days of service history ending before `now`'s day (UTC); the caller commits.

    Due times follow `policy` (the shipped default when None) and resolved tickets close after
    `reopen_days`, as the running service would have done."""
    if days < 0:
        raise ValueError(f"days must be 0 or more, not {days}")
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware (UTC)")
    policy = policy or sla.default_policy()
    builder = _History(session, random.Random(seed), now.astimezone(UTC), policy, reopen_days)
    # A second generator for the unanswered questions: drawing them from the first would change
    # every chat, ticket and hand-over of the seed.
    builder.unanswered = random.Random(f"misses-{seed}")
    for offset in range(days, 0, -1):
        builder.day(builder.midnight - timedelta(days=offset))
    return builder.write(days)


class _History:
    """Builds the rows in memory, ids included; `write` inserts them in foreign-key order."""

    def __init__(
        self, session: Session, rng: random.Random, now: datetime, policy: sla.SlaPolicy, reopen_days: int
    ) -> None:
        self.session, self.rng, self.now = session, rng, now
        self.midnight = datetime.combine(now.date(), time(0), tzinfo=UTC)
        self.policy = policy
        self.reopen_days = timedelta(days=reopen_days)
        self.unanswered = random.Random(0)

        agents = session.execute(
            select(Agent.id, Agent.name, Agent.role).where(Agent.active).order_by(Agent.id)
        ).all()
        showcase = [person.email for person in SHOWCASE]
        customers = session.execute(
            select(Customer.id, Customer.value_tier)
            .where(Customer.email.not_in(showcase))
            .order_by(Customer.id)
        ).all()
        if not agents or not customers:
            raise ValueError(
                "seed the demo data first (kefu db seed): the history needs its customers and agents"
            )
        # Leads take the odd chat; the agents most of them.
        self.agents = [(agent_id, name.split()[0]) for agent_id, name, _role in agents]
        self.agent_weights = [1 if role is AgentRole.LEAD else 4 for _id, _name, role in agents]
        orders: dict[int, list[tuple[datetime, int, str]]] = {}
        for customer_id, placed_at, order_id, number in session.execute(
            select(Order.customer_id, Order.placed_at, Order.id, Order.number).order_by(Order.placed_at)
        ):
            orders.setdefault(customer_id, []).append((placed_at, order_id, number))
        self.people = [_Person(cid, tier, orders.get(cid, [])) for cid, tier in customers]
        # People with orders write in far more often than those without.
        self.person_weights = list(accumulate(3 if person.orders else 1 for person in self.people))
        self.used_senders: set[str] = set(session.scalars(select(Conversation.sender_id)))

        self.next_id = {
            model: (session.scalar(select(func.max(model.__table__.c.id))) or 0) + 1 for model in _MODELS
        }
        self.rows: dict[type[Base], list[dict[str, Any]]] = {model: [] for model in _MODELS}
        self.tickets_by_kind: Counter[str] = Counter()

    def _id(self, model: type[Base]) -> int:
        value = self.next_id[model]
        self.next_id[model] = value + 1
        return value

    # --- one day, one chat ------------------------------------------------------------------------

    def day(self, start: datetime) -> None:
        weekend = start.weekday() >= 5
        count = self.rng.randint(25, 36) if weekend else self.rng.randint(30, 45)
        # Busiest around midday; nobody is still chatting at midnight.
        minutes = sorted(self.rng.triangular(7 * 60, 22 * 60, 13 * 60) for _ in range(count))
        for minute in minutes:
            self.conversation(start + timedelta(minutes=minute))

    def conversation(self, started: datetime) -> None:
        rng = self.rng
        conversation_id = self._id(Conversation)
        channel = "web" if rng.random() < 0.7 else "telegram"
        ticket: dict[str, Any] | None = None
        if rng.random() < TICKET_SHARE:
            kind = rng.choices(("complaint", "refund", "delivery"), weights=(60, 20, 20))[0]
            category, severity = self._classify(kind)
            ticket = {"id": self._id(Ticket), "kind": kind, "category": category, "severity": severity}
        linked = rng.random() < (0.85 if ticket else 0.4)
        person = rng.choices(self.people, cum_weights=self.person_weights)[0] if linked else None
        order = person.order_before(started) if person else None
        order_number = order[2] if order else str(rng.randint(100_020, 101_199))
        reason = self._handoff_reason(ticket, person)

        # At most four customer/bot exchanges: the topic, then the ticket and the hand-over if any.
        room = 4 - (ticket is not None) - (reason is not None)
        topic = rng.choices(list(_TOPIC_WEIGHTS), weights=list(_TOPIC_WEIGHTS.values()))[0]
        script = _TOPICS[topic][: rng.randint(0 if ticket else 1, room)]
        exchanges: list[tuple[str, str, str, dict[str, str] | None]] = [
            (said, answer, "topic", _REPLY_TAGS[topic][n]) for n, (said, answer) in enumerate(script)
        ]
        # Drawn from its own generator, so the chats, tickets and hand-overs stay those of the seed.
        if self.unanswered.random() < UNANSWERED_SHARE and ticket is None and reason is None and exchanges:
            said, answer, tag = self.unanswered.choices(_UNANSWERED, weights=_UNANSWERED_WEIGHTS)[0]
            exchanges[-1] = (said, answer, "miss", {"outcome": tag})
        if ticket is not None:
            kind = ticket["kind"]
            said = _COMPLAINT_TEXTS[ticket["category"]] if kind == "complaint" else _TICKET_TEXTS[kind]
            reply = _TICKET_REPLY.format(reference=reference_for(ticket["id"]))
            exchanges.append((said, reply, "ticket", None))
        if reason is not None:
            exchanges.append((*_HANDOVER[reason], "handover", None))

        moment = started
        source_message_id = None
        for customer_text, bot_text, role, tags in exchanges:
            message_id = self._message(
                conversation_id, channel, AuthorKind.CUSTOMER, customer_text, moment, order_number
            )
            if ticket is not None and role == "ticket":
                source_message_id = message_id
                ticket["created_at"] = moment + timedelta(seconds=1)
            moment += timedelta(seconds=rng.randint(1, 3))
            self._message(
                conversation_id, channel, AuthorKind.BOT, bot_text, moment, order_number, metadata=tags
            )
            moment += timedelta(seconds=rng.randint(15, 150))

        conversation: dict[str, Any] = {
            "id": conversation_id,
            "channel": channel,
            # Not from the seeded generator: its seed is public, and a web chat's id is its only key.
            "external_id": f"history-{secrets.token_urlsafe(24)}",
            "sender_id": self._sender_id(),
            "customer_id": person.customer_id if person else None,
            "mode": ConversationMode.BOT,
            "assigned_agent_id": None,
            "created_at": started,
            "updated_at": moment,
            "verified_at": started + timedelta(seconds=rng.randint(20, 90)) if person else None,
            "closed_at": None,
        }
        self.rows[Conversation].append(conversation)
        if ticket is not None:
            self._ticket(ticket, conversation, source_message_id, person, order)
        handoff, ended = None, moment
        if reason is not None:
            handoff = self._handoff(conversation, reason, ticket, moment)
            ended = conversation["updated_at"] = handoff["ended_at"]
        self._conversation_survey(conversation, handoff, ended)

    def _sender_id(self) -> str:
        # 32 hex digits like the live ones, and unique like them.
        while True:
            sender = f"{self.rng.getrandbits(128):032x}"
            if sender not in self.used_senders:
                self.used_senders.add(sender)
                return sender

    def _message(
        self,
        conversation_id: int,
        channel: str,
        author: AuthorKind,
        words: str,
        at: datetime,
        order: str,
        agent_id: int | None = None,
        metadata: dict[str, str] | None = None,
    ) -> int:
        message_id = self._id(Message)
        inbound = author is AuthorKind.CUSTOMER
        self.rows[Message].append(
            {
                "id": message_id,
                "conversation_id": conversation_id,
                "channel": channel,
                "channel_message_id": None,
                "direction": Direction.INBOUND if inbound else Direction.OUTBOUND,
                "author_kind": author,
                "author_agent_id": agent_id,
                "text": words.format(order=order),
                "payload": {"buttons": [], "metadata": metadata} if metadata else {},
                "status": MessageStatus.PROCESSED if inbound else MessageStatus.SENT,
                "error": None,
                "created_at": at,
            }
        )
        return message_id

    def _classify(self, kind: str) -> tuple[str, Severity]:
        if kind == "complaint":
            weights = list(_COMPLAINT_WEIGHTS.values())
            category = self.rng.choices(list(_COMPLAINT_WEIGHTS), weights=weights)[0]
        else:
            category = "billing" if kind == "refund" else "delivery_problem"
        assert category in CATEGORIES
        severity = self.rng.choices(list(Severity), weights=_SEVERITY_WEIGHTS[kind])[0]
        return category, severity

    def _handoff_reason(self, ticket: dict[str, Any] | None, person: _Person | None) -> str | None:
        rng = self.rng
        if ticket is not None and ticket["kind"] == "complaint" and ticket["severity"] is Severity.HIGH:
            if rng.random() < 0.85:
                vip = person is not None and person.tier is ValueTier.VIP
                return "vip_complaint" if vip else "severe_complaint"
            return None
        if rng.random() < HANDOFF_SHARE - 0.01:  # the severe complaints above add about one point
            return rng.choices(_REASONS, weights=_REASON_WEIGHTS)[0]
        return None

    # --- a person takes over ------------------------------------------------------------------------

    def _handoff(
        self, conversation: dict[str, Any], reason: str, ticket: dict[str, Any] | None, requested: datetime
    ) -> dict[str, Any]:
        rng = self.rng
        agent_id, agent_name = rng.choices(self.agents, weights=self.agent_weights)[0]
        claimed = requested + timedelta(seconds=rng.randint(60, 20 * 60))
        replied = claimed + timedelta(seconds=rng.randint(60, 10 * 60))
        channel, conversation_id = conversation["channel"], conversation["id"]
        line = rng.choice(_AGENT_LINES).format(name=agent_name)
        self._message(conversation_id, channel, AuthorKind.AGENT, line, replied, "", agent_id)
        ended = replied + timedelta(seconds=rng.randint(60, 15 * 60))
        outcome = "handed_back" if rng.random() < 0.6 else "closed"
        if outcome == "closed":
            conversation["mode"] = ConversationMode.CLOSED
            conversation["closed_at"] = ended
        handoff = {
            "id": self._id(Handoff),
            "conversation_id": conversation_id,
            "ticket_id": ticket["id"] if ticket else None,
            "reason": reason,
            "priority": ticket["priority"] if ticket else TicketPriority.NORMAL,
            "requested_at": requested,
            "agent_id": agent_id,
            "claimed_at": claimed,
            "first_agent_reply_at": replied,
            "ended_at": ended,
            "outcome": outcome,
            "contact": None,
        }
        self.rows[Handoff].append(handoff)
        return handoff

    # --- tickets ------------------------------------------------------------------------------------

    def _ticket(
        self,
        ticket: dict[str, Any],
        conversation: dict[str, Any],
        source_message_id: int | None,
        person: _Person | None,
        order: tuple[datetime, int, str] | None,
    ) -> None:
        rng, now = self.rng, self.now
        kind, category, severity = ticket["kind"], ticket["category"], ticket["severity"]
        created: datetime = ticket["created_at"]
        tier = person.tier if person else ValueTier.REGULAR
        priority = priority_for(severity, tier)
        ticket["priority"] = priority  # what the chat's hand-over had, before any breach raised it
        target = sla.targets(self.policy, priority, tier)
        first_due = sla.due(created, target.first_response, target.clock, self.policy)
        resolution_due = sla.due(created, target.resolution, target.clock, self.policy)

        # When the work would happen: mostly in time, about one in ten late.
        def planned(due: datetime, after: datetime) -> datetime:
            span = max(due - after, timedelta(minutes=20))
            if rng.random() < MISS_SHARE:
                return due + span * rng.uniform(0.05, 1.2)
            return after + span * rng.uniform(0.05, 0.9)

        first = planned(first_due, created)
        resolved = max(planned(resolution_due, created), first + timedelta(minutes=rng.randint(5, 180)))
        first_at = first if first <= now else None
        resolved_at = resolved if first_at and resolved <= now else None
        closed_at = resolved_at + self.reopen_days if resolved_at else None
        if closed_at and closed_at > now:
            closed_at = None

        agent_id = rng.choices(self.agents, weights=self.agent_weights)[0][0] if first_at else None
        actor = f"agent:{agent_id}"
        outcome = {"refund": "refund", "delivery": "information"}.get(kind) or rng.choice(list(OUTCOMES))
        events: list[tuple[datetime, str, str, dict[str, Any]]] = [
            (
                created,
                "bot",
                "created",
                {
                    "kind": kind,
                    "category": category,
                    "severity": severity.value,
                    "priority": priority.value,
                    "tier": tier.value,
                },
            ),
        ]
        breaches: dict[str, datetime | None] = {}
        for measure, due, done in (
            ("first_response", first_due, first_at),
            ("resolution", resolution_due, resolved_at),
        ):
            noticed = due + BREACH_NOTICED_AFTER
            late = (done is None or done > noticed) and noticed <= now
            breaches[measure] = noticed if late else None
            if late:
                raised = raise_priority(priority)
                events.append(
                    (
                        noticed,
                        "system",
                        "sla_breached",
                        {
                            "measure": measure,
                            "due": due.isoformat(),
                            "priority_from": priority.value,
                            "priority_to": raised.value,
                        },
                    )
                )
                priority = raised
        status = TicketStatus.NEW
        if first_at:
            status = TicketStatus.PENDING_CUSTOMER if rng.random() < 0.2 else TicketStatus.OPEN
            events.append((first_at, actor, "status_changed", {"from": "new", "to": status.value}))
        resolution = _RESOLUTIONS[outcome] if resolved_at else None
        if resolved_at:
            events.append(
                (
                    resolved_at,
                    actor,
                    "status_changed",
                    {"from": status.value, "to": "resolved", "resolution": resolution},
                )
            )
            status = TicketStatus.RESOLVED
        if closed_at:
            events.append(
                (
                    closed_at,
                    "system",
                    "status_changed",
                    {"from": "resolved", "to": "closed", "note": "no reply after resolution"},
                )
            )
            status = TicketStatus.CLOSED

        row = {
            "id": ticket["id"],
            "reference": reference_for(ticket["id"]),
            "customer_id": person.customer_id if person else None,
            "conversation_id": conversation["id"],
            "order_id": order[1] if order else None,
            "source_message_id": source_message_id,
            "parent_ticket_id": None,
            "kind": kind,
            "category": category,
            "subject": self._subject(kind, category, order),
            "description": (
                _COMPLAINT_TEXTS[category] if kind == "complaint" else _TICKET_TEXTS[kind]
            ).format(order=order[2] if order else "(no order given)"),
            "desired_outcome": outcome,
            "severity": severity,
            "contact": None if person else f"visitor{conversation['id']}@example.net",
            "priority": priority,
            "status": status,
            "sla_first_response_due": first_due,
            "sla_resolution_due": resolution_due,
            "sla_first_response_breached_at": breaches["first_response"],
            "sla_resolution_breached_at": breaches["resolution"],
            "first_responded_at": first_at,
            "resolved_at": resolved_at,
            "closed_at": closed_at,
            "assigned_agent_id": agent_id,
            "resolution": resolution,
            "csat_score": None,
            "csat_comment": None,
            "created_at": created,
            "updated_at": created,
        }
        if resolved_at:
            unhappy = severity is Severity.HIGH or any(breaches.values())
            answer = self._survey(
                "ticket_resolved",
                conversation,
                row["customer_id"],
                resolved_at,
                TICKET_SURVEY_ANSWERED,
                unhappy,
                ticket_id=ticket["id"],
            )
            if answer is not None:
                row["csat_score"], row["csat_comment"], answered_at = answer
                events.append(
                    (
                        answered_at,
                        "customer",
                        "csat_answered",
                        {"score": row["csat_score"], "comment": row["csat_comment"]},
                    )
                )
        events.sort(key=lambda event: event[0])
        for at, who, event_kind, data in events:
            self.rows[TicketEvent].append(
                {
                    "id": self._id(TicketEvent),
                    "ticket_id": ticket["id"],
                    "actor": who,
                    "kind": event_kind,
                    "data": data,
                    "created_at": at,
                }
            )
        row["updated_at"] = events[-1][0]
        self.rows[Ticket].append(row)
        self.tickets_by_kind[kind] += 1

    @staticmethod
    def _subject(kind: str, category: str, order: tuple[datetime, int, str] | None) -> str:
        about = f" (order #{order[2]})" if order else ""
        if kind == "refund":
            return f"Refund not received{about}"
        if kind == "delivery":
            return f"Order #{order[2]} is delayed" if order else "A delivery is delayed"
        label = CATEGORIES[category]
        return f"{label[0].upper()}{label[1:]}{about}"

    # --- satisfaction -------------------------------------------------------------------------------

    def _conversation_survey(
        self, conversation: dict[str, Any], handoff: dict[str, Any] | None, ended: datetime
    ) -> None:
        if self.rng.random() >= CONVERSATION_SURVEY_ASKED:
            return
        handed_back = handoff is not None and handoff["outcome"] == "handed_back"
        unhappy = handoff is not None and handoff["reason"] == "negative_sentiment"
        self._survey(
            "agent_handback" if handed_back else "conversation_end",
            conversation,
            conversation["customer_id"],
            ended + timedelta(seconds=5),
            CONVERSATION_SURVEY_ANSWERED,
            unhappy,
        )

    def _survey(
        self,
        trigger: str,
        conversation: dict[str, Any],
        customer_id: int | None,
        requested: datetime,
        answer_share: float,
        unhappy: bool,
        ticket_id: int | None = None,
    ) -> tuple[int, str | None, datetime] | None:
        """Record a survey asked at `requested`; returns (score, comment, answered at) when answered."""
        rng, now = self.rng, self.now
        if requested > now:
            return None
        asked = requested + timedelta(seconds=rng.randint(5, 240))
        if asked > now:
            return None  # the scheduler has not sent it yet; left out rather than sent to nobody
        answers = rng.random() < answer_share
        # Chats are rated within minutes; a resolved ticket's question may wait for the next visit.
        delay = rng.randint(20, 600) if ticket_id is None else rng.randint(120, 20 * 3600)
        answered = asked + timedelta(seconds=delay)
        score = rng.choices(_SCORES, weights=_UNHAPPY_WEIGHTS if unhappy else _SCORE_WEIGHTS)[0]
        comment = rng.choice(_COMMENTS[score]) if score in _COMMENTS and rng.random() < 0.4 else None
        if answers and answered <= now:
            status = SurveyStatus.ANSWERED
        else:
            status = SurveyStatus.SKIPPED if asked + ANSWER_WINDOW <= now else SurveyStatus.ASKED
        done = status is SurveyStatus.ANSWERED
        self.rows[CsatSurvey].append(
            {
                "id": self._id(CsatSurvey),
                "conversation_id": conversation["id"],
                "ticket_id": ticket_id,
                "customer_id": customer_id,
                "trigger": trigger,
                # A scripted chat always served the customer; keys as bot/crm/csat.py makes them.
                "episode": f"chat:{conversation['id']}:history:{len(self.rows[CsatSurvey])}"
                if ticket_id is None
                else f"ticket:{ticket_id}@{int(requested.timestamp())}",
                "channel": conversation["channel"],
                "status": status,
                "score": score if done else None,
                "comment": comment if done else None,
                "follow_up_ticket_id": None,
                "delivery_attempts": 1,
                "requested_at": requested,
                "asked_at": asked,
                "answered_at": answered if done else None,
            }
        )
        return (score, comment, answered) if done else None

    # --- writing ------------------------------------------------------------------------------------

    def write(self, days: int) -> HistorySummary:
        session = self.session
        for model in _MODELS:
            rows = self.rows[model]
            if rows:
                # A Core INSERT on the table: one executemany per table. (The ORM's bulk INSERT
                # checks every row against the mapping first, which costs a third more here.)
                session.execute(insert(cast(Table, model.__table__)), rows)
        if session.get_bind().dialect.name == "postgresql":
            # The ids were chosen here: move each table's sequence past them, or the next ordinary
            # INSERT would be given an id that is already taken.
            for model in _MODELS:
                table = model.__tablename__
                sequence = f"pg_get_serial_sequence('{table}', 'id')"
                session.execute(text(f"SELECT setval({sequence}, (SELECT max(id) FROM {table}))"))
        if self.rows[Conversation]:
            rescore_all(session, self.now.date())
        surveys = self.rows[CsatSurvey]
        return HistorySummary(
            days=days,
            conversations=len(self.rows[Conversation]),
            messages=len(self.rows[Message]),
            handoffs=len(self.rows[Handoff]),
            tickets=len(self.rows[Ticket]),
            ticket_events=len(self.rows[TicketEvent]),
            surveys=len(surveys),
            answered_surveys=sum(1 for s in surveys if s["status"] is SurveyStatus.ANSWERED),
            tickets_by_kind=dict(self.tickets_by_kind.most_common()),
        )


# Foreign-key order: a ticket names its source message, a handoff its ticket, a survey both.
_MODELS: tuple[type[Base], ...] = (Conversation, Message, Ticket, Handoff, TicketEvent, CsatSurvey)
