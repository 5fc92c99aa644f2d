"""The routing rule: when an article answers a message better than the flow its intent starts."""

from __future__ import annotations

import pytest

from knowledge_base.index import Hit
from knowledge_base.routing import Reading, RoutingPolicy, prefer_article

POLICY = RoutingPolicy(article_score=0.74, unsure_below=0.5, sure_score=0.8, margin=0.03)


def hits(*scored: tuple[str, float]) -> list[Hit]:
    return [Hit(n, n, slug, slug, score, score, 0.0) for n, (slug, score) in enumerate(scored, 1)]


def test_a_question_the_flow_intent_was_unsure_of_goes_to_its_article() -> None:
    # "how long does a refund take once you have the parcel?" read as a refund request.
    reading = Reading("request_refund", 0.45)
    assert prefer_article(reading, hits(("refund-timing", 0.76), ("refund-method", 0.61)), POLICY)
    assert not prefer_article(Reading("request_refund", 0.55), hits(("refund-timing", 0.76)), POLICY)


def test_a_sure_intent_keeps_its_flow_unless_the_article_is_a_near_exact_match() -> None:
    reading = Reading("cancel_order", 0.95)
    assert not prefer_article(reading, hits(("cancellation-fee", 0.72), ("change-order", 0.6)), POLICY)
    assert prefer_article(reading, hits(("cancellation-fee", 0.86), ("change-order", 0.6)), POLICY)


def test_a_message_naming_an_order_or_a_contact_keeps_its_flow() -> None:
    for entity in ("order_number", "ticket_reference", "email", "phone"):
        reading = Reading("track_order", 0.5, frozenset({entity}))
        assert not prefer_article(reading, hits(("delivery-times", 0.9)), POLICY)


def test_the_flows_own_how_to_never_takes_the_message_from_the_flow() -> None:
    # "how do I track my order?": tracking it is better than explaining how to.
    assert not prefer_article(Reading("track_order", 0.4), hits(("track-my-order", 0.95)), POLICY)
    assert not prefer_article(Reading("complaint", 0.4), hits(("defective-on-arrival", 0.9)), POLICY)
    # "my account is locked" read as a security worry gets the locked-account article; one that
    # matches the security article itself stays with the security answer.
    assert not prefer_article(Reading("account_security", 0.4), hits(("account-hacked", 0.9)), POLICY)
    assert prefer_article(Reading("account_security", 0.4), hits(("account-locked", 0.9)), POLICY)
    # ...but the same article may answer a message the classifier put elsewhere.
    assert prefer_article(Reading("out_of_scope", 0.4), hits(("track-my-order", 0.9)), POLICY)


@pytest.mark.parametrize(
    "best, runner_up",
    [(0.64, 0.5), (0.70, 0.69)],  # not good enough; two articles nearly tied (that would be a choice)
)
def test_only_an_article_that_would_be_the_answer_takes_the_message(best: float, runner_up: float) -> None:
    assert not prefer_article(Reading("track_order", 0.3), hits(("a", best), ("b", runner_up)), POLICY)


def test_intents_that_start_no_flow_are_not_rerouted() -> None:
    for intent in ("greet", "request_human", "ask_question", "check_ticket", None):
        assert not prefer_article(Reading(intent, 0.2), hits(("opening-hours", 0.95)), POLICY)
    assert not prefer_article(Reading("track_order", 0.2), [], POLICY)


def test_the_reading_comes_from_the_latest_message() -> None:
    reading = Reading.of(
        {
            "intent": {"name": "complaint", "confidence": 0.61},
            "entities": [{"entity": "order_number", "value": "100004"}],
        }
    )
    assert reading == Reading("complaint", 0.61, frozenset({"order_number"}))
    assert Reading.of({}) == Reading(None, 0.0)
