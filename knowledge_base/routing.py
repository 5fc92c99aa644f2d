"""One decision per message: start the flow the intent names, or answer from the knowledge base.

The intent classifier and the knowledge base each know half the story. The classifier knows what
kind of thing the customer asks for (track an order, complain), the knowledge base knows whether we
have written an answer to exactly this. "How long do refunds take?" reads like a refund request to
the classifier, but it is a question with an article that answers it; starting the refund form
would ask for an order number the customer never meant to give.

So a message whose intent starts a flow (or says "out of scope") still gets the knowledge base's
opinion, and the article wins when all of these hold:

- the message names no order, ticket or contact: a detail means "do it for this one";
- the best article clears the answer bar by itself (it would be the answer, not a choice);
- the classifier is not sure of its flow, or the article is an exceptionally close match;
- the article is not the flow's own how-to: "how do I track my order?" is best served by tracking
  it, and "my lamp arrived broken" by taking the complaint, not by explaining how to.

A decisive article (a near-exact match, far above the answer bar) against a reading the classifier
itself doubts wins even where the rules above keep the flow: when the message names an order, tells
what went wrong, or reads like a request for a person or for the order list ("till what time can I
reach someone today?" is a question about opening hours; "my points for my last order aren't
showing" is not a request to list the orders).

The thresholds are chosen on one half of the benchmark sets (`benchmarks/routing.py`) and
reported on the other.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from knowledge_base.index import Hit

# Intents that start a flow or decline; the knowledge base may take a message from them.
FLOW_INTENTS = frozenset(
    {
        "track_order",
        "cancel_order",
        "request_refund",
        "complaint",
        "inform",
        "account_security",
        "out_of_scope",
    }
)
# Intents whose flow only a decisive article overrules (see above).
FIRM_INTENTS = frozenset({"request_human", "list_orders"})
# Articles that explain what a flow does for the customer: when the intent starts that flow, the
# flow serves the same need better (it looks up the order, files the complaint).
FLOW_HOW_TOS: dict[str, frozenset[str]] = {
    "track_order": frozenset(
        {
            "track-my-order",
            "tracking-not-updating",
            "order-delayed",
            "delivered-not-received",
            "no-shipping-confirmation",
        }
    ),
    "cancel_order": frozenset({"cancel-order", "cancel-after-shipping"}),
    "request_refund": frozenset({"how-to-return"}),
    "account_security": frozenset({"account-hacked"}),
    "request_human": frozenset({"talk-to-a-person", "contact-customer-service"}),
    "complaint": frozenset(
        {
            "make-a-complaint",
            "defective-on-arrival",
            "parcel-damaged",
            "wrong-item-received",
            "missing-item",
            "warranty-claim",
        }
    ),
}
# Entities that make a message about one particular order or ticket.
DETAILS = frozenset({"order_number", "ticket_reference", "email", "phone"})


@dataclass(frozen=True)
class Reading:
    """What the NLU made of a message."""

    intent: str | None
    confidence: float
    entities: frozenset[str] = frozenset()

    @classmethod
    def of(cls, latest_message: dict[str, object]) -> Reading:
        intent = latest_message.get("intent") or {}
        entities: Iterable[dict[str, object]] = latest_message.get("entities") or []  # type: ignore[assignment]
        return cls(
            intent=str(intent.get("name")) if isinstance(intent, dict) and intent.get("name") else None,
            confidence=float(intent.get("confidence") or 0.0) if isinstance(intent, dict) else 0.0,
            entities=frozenset(str(entity.get("entity")) for entity in entities),
        )


@dataclass(frozen=True)
class RoutingPolicy:
    # The article must score at least this (and be the answer, not one of a close pair)...
    article_score: float = 0.74
    # ...and the classifier be below this confidence in its flow, unless the article scores `sure_score`.
    unsure_below: float = 0.6
    sure_score: float = 0.8
    # The runner-up article must be this far behind for the best one to count as the answer.
    margin: float = 0.03
    # An article this close, against an intent below `doubtful_below`, wins over any flow (see above).
    decisive_score: float = 0.9
    doubtful_below: float = 0.45


def prefer_article(reading: Reading, hits: Sequence[Hit], policy: RoutingPolicy) -> bool:
    """Whether the knowledge base's best article should answer instead of the flow the intent starts."""
    if not _clear_answer(reading, hits, policy):
        return False
    if decisive(reading, hits, policy):
        return True
    best = hits[0]
    if reading.intent in FIRM_INTENTS or reading.entities & DETAILS or best.score < policy.article_score:
        return False
    return reading.confidence < policy.unsure_below or best.score >= policy.sure_score


def decisive(reading: Reading, hits: Sequence[Hit], policy: RoutingPolicy) -> bool:
    """Whether the best article fits so closely, and the classifier doubts its flow so much, that the
    article wins even over an order number, a story of what went wrong or a request for a person."""
    return (
        _clear_answer(reading, hits, policy)
        and hits[0].score >= policy.decisive_score
        and reading.confidence < policy.doubtful_below
    )


def _clear_answer(reading: Reading, hits: Sequence[Hit], policy: RoutingPolicy) -> bool:
    """A rerouteable intent, and a best article that is not the flow's own how-to and has a clear lead."""
    if reading.intent not in FLOW_INTENTS | FIRM_INTENTS or not hits:
        return False
    if hits[0].slug in FLOW_HOW_TOS.get(reading.intent, frozenset()):
        return False
    return len(hits) == 1 or hits[0].score - hits[1].score >= policy.margin
