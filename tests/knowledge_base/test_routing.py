"""The routing rule: when an article answers a message better than the flow its intent starts."""

from __future__ import annotations

import pytest

from knowledge_base.index import Hit
from knowledge_base.routing import Reading, RoutingPolicy, decisive, prefer_article

POLICY = RoutingPolicy(
    article_score=0.74, unsure_below=0.5, sure_score=0.8, margin=0.03, decisive_score=0.9, doubtful_below=0.45
)


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
    for intent in ("greet", "ask_question", "check_ticket", None):
        assert not prefer_article(Reading(intent, 0.2), hits(("opening-hours", 0.95)), POLICY)
    assert not prefer_article(Reading("track_order", 0.2), [], POLICY)


def test_a_decisive_article_wins_over_a_doubted_request_for_a_person_or_the_order_list() -> None:
    # "till what time can I reach someone today?" half-read as a request for a person.
    assert prefer_article(Reading("request_human", 0.27), hits(("opening-hours", 1.02), ("x", 0.6)), POLICY)
    # A clear request for a person, or an article that is merely good, keeps the hand-over...
    assert not prefer_article(Reading("request_human", 0.6), hits(("opening-hours", 1.02)), POLICY)
    assert not prefer_article(Reading("request_human", 0.27), hits(("opening-hours", 0.85)), POLICY)
    # ...and so does the article about talking to a person.
    assert not prefer_article(Reading("request_human", 0.2), hits(("talk-to-a-person", 1.0)), POLICY)
    assert prefer_article(Reading("list_orders", 0.28), hits(("points-missing", 0.93), ("y", 0.7)), POLICY)
    assert not prefer_article(Reading("list_orders", 0.28), hits(("points-missing", 0.85)), POLICY)


def test_a_decisive_article_wins_even_over_a_named_order_or_a_story() -> None:
    named = Reading("request_refund", 0.36, frozenset({"order_number"}))
    assert decisive(named, hits(("charged-twice", 0.92), ("refund-method", 0.7)), POLICY)
    assert prefer_article(named, hits(("charged-twice", 0.92), ("refund-method", 0.7)), POLICY)
    # Not when the classifier was fairly sure, the article is only good, or another is as close.
    assert not decisive(Reading("complaint", 0.5), hits(("fire-pit-rust", 1.04)), POLICY)
    assert not decisive(Reading("complaint", 0.3), hits(("fire-pit-rust", 0.88)), POLICY)
    tied = hits(("fire-pit-rust", 0.95), ("grill-care", 0.94))
    assert not decisive(Reading("complaint", 0.3), tied, POLICY)
    assert decisive(Reading("complaint", 0.3), hits(("fire-pit-rust", 1.04), ("grill-care", 0.7)), POLICY)


def test_the_reading_comes_from_the_latest_message() -> None:
    reading = Reading.of(
        {
            "intent": {"name": "complaint", "confidence": 0.61},
            "entities": [{"entity": "order_number", "value": "100004"}],
        }
    )
    assert reading == Reading("complaint", 0.61, frozenset({"order_number"}))
    assert Reading.of({}) == Reading(None, 0.0)
