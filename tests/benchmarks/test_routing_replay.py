"""The threshold replay: which replies change when the router or the answer bar would decide otherwise."""

from __future__ import annotations

from benchmarks import routing
from knowledge_base.index import Hit
from knowledge_base.routing import RoutingPolicy


def hits(*scored: tuple[str, float]) -> list[Hit]:
    return [Hit(n, n, slug, slug, score, score, 0.0) for n, (slug, score) in enumerate(scored, 1)]


def row(intent: str, outcome: str, verdict: str, accepted: list[str]) -> dict[str, object]:
    parse = {"intent": intent, "confidence": 0.3, "entities": []}
    return {"text": "t", "outcome": outcome, "verdict": verdict, "accepted": accepted, "parse": parse}


ROUTE = routing.Thresholds(RoutingPolicy(0.7, 0.5, 0.8, 0.03), answer_score=0.66, suggest_score=0.55)
NEVER = routing.Thresholds(RoutingPolicy(9.0, 0.0, 9.0, 0.03), answer_score=0.66, suggest_score=0.55)


def test_a_rerouted_flow_reply_is_judged_as_the_answer_it_would_become() -> None:
    refund = row("request_refund", "flow:refund", "wrong", ["article:refund-timing"])
    found = hits(("refund-timing", 0.8), ("refund-method", 0.6))
    assert routing.replay(refund, found, NEVER) == "wrong"
    assert routing.replay(refund, found, ROUTE) == "right"


def test_knowledge_base_replies_follow_the_answer_bar() -> None:
    asked = row("ask_question", "choice", "right_in_choice", ["article:a"])
    assert routing.replay(asked, hits(("a", 0.7), ("b", 0.5)), ROUTE) == "right"
    assert routing.replay(asked, hits(("a", 0.6), ("b", 0.59)), ROUTE) == "right_in_choice"
    assert routing.replay(asked, hits(("a", 0.4)), ROUTE) == "no_answer"


def test_the_score_punishes_a_wrong_answer_more_than_it_rewards_a_right_one() -> None:
    fine = {
        "bitext": {
            "right": 0.9,
            "right_in_choice": 0.0,
            "choice_without": 0.0,
            "wrong": 0.0,
            "no_answer": 0.1,
        }
    }
    rash = {
        "bitext": {
            "right": 0.95,
            "right_in_choice": 0.0,
            "choice_without": 0.0,
            "wrong": 0.05,
            "no_answer": 0.0,
        }
    }
    assert routing.score(fine) > routing.score(rash)
