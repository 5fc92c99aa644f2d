"""The first-reply benchmark's reading of replies and its verdicts, and its data files."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from benchmarks import e2e
from knowledge_base.seeds import read_seed_files


def tracker(*actions: str, loop: str | None = None, **slots: Any) -> dict[str, Any]:
    events = [{"event": "user", "text": "hi"}] + [{"event": "action", "name": name} for name in actions]
    return {"events": events, "active_loop": {"name": loop} if loop else {}, "slots": slots}


def body(*messages: dict[str, Any], mode: str = "bot") -> dict[str, Any]:
    return {"mode": mode, "messages": [{"author": "bot", **m} for m in messages]}


def test_articles_choices_flows_and_misses_are_told_apart() -> None:
    article = body({"text": "Returns...", "metadata": {"kb_article": "return-policy"}})
    assert e2e.classify(article, tracker("action_answer_question")).key == "article:return-policy"

    choice = body(
        {
            "text": "I found a few articles",
            "buttons": [
                {"title": "A", "payload": '/choose_article{"kb_article":"return-costs"}'},
                {"title": "B", "payload": '/choose_article{"kb_article": "return-label"}'},
                {"title": "None of these", "payload": "/deny"},
            ],
        }
    )
    outcome = e2e.classify(choice, tracker("action_answer_question"))
    assert (outcome.key, outcome.offered) == ("choice", ["return-costs", "return-label"])

    asked = body({"text": "What's the order number?"})
    started = tracker("action_start_order_request", "order_form", loop="order_form", order_purpose="cancel")
    assert e2e.classify(asked, started).key == "flow:cancel_order"
    assert e2e.classify(asked, tracker("action_start_complaint", "complaint_form")).key == "flow:complaint"
    assert e2e.classify(body({"text": "queued"}, mode="pending_agent"), tracker()).key == "handover"
    # The hand-over action gave a question it was only half taken for to an article: not a hand-over.
    rerouted = tracker("action_request_human", "action_answer_question")
    opening = body({"text": "Opening hours...", "metadata": {"kb_article": "opening-hours"}})
    assert e2e.classify(opening, rerouted).key == "article:opening-hours"
    assert e2e.classify(body({"text": "Passing you on"}), tracker("action_request_human")).key == "handover"
    assert e2e.classify(body({"text": "outside"}), tracker("action_out_of_scope")).key == "out_of_scope"
    assert e2e.classify(body({"text": "no answer"}), tracker("action_answer_question")).key == "no_answer"
    assert e2e.classify(body({"text": "Hi!"}), tracker("utter_greet")).key == "other:utter_greet"
    # A flow's first action handed the message to the knowledge base, which had nothing: no flow started.
    handed = tracker("action_start_complaint", "action_answer_question", "action_listen")
    assert e2e.classify(body({"text": "I don't have an answer"}), handed).key == "no_answer"


def test_the_nlu_reading_of_the_first_message_is_kept() -> None:
    parsed = {
        "events": [
            {
                "event": "user",
                "parse_data": {
                    "intent": {"name": "request_refund", "confidence": 0.41234},
                    "intent_ranking": [{"name": "request_refund"}, {"name": "ask_question"}],
                    "entities": [{"entity": "order_number"}, {"entity": "order_number"}],
                },
            }
        ]
    }
    assert e2e.parse_of(parsed) == {
        "intent": "request_refund",
        "confidence": 0.4123,
        "runner_up": "ask_question",
        "entities": ["order_number"],
    }


def test_only_the_latest_turn_counts() -> None:
    events = tracker("action_out_of_scope")["events"] + [
        {"event": "user"},
        {"event": "action", "name": "utter_greet"},
    ]
    assert e2e.classify(body({"text": "Hi"}), {"events": events}).key == "other:utter_greet"


@pytest.mark.parametrize(
    ("key", "offered", "verdict"),
    [
        ("article:return-policy", [], "right"),
        ("flow:refund", [], "right"),
        ("choice", ["return-costs", "how-to-return"], "right_in_choice"),
        ("choice", ["return-costs", "return-label"], "choice_without"),
        ("article:return-costs", [], "wrong"),
        ("flow:track_order", [], "wrong"),
        ("no_answer", [], "no_answer"),
        ("out_of_scope", [], "no_answer"),
    ],
)
def test_verdicts(key: str, offered: list[str], verdict: str) -> None:
    accepted = ("flow:refund", "article:how-to-return", "article:return-policy")
    assert e2e.judge(e2e.Outcome(key, offered), accepted) == verdict


def test_the_halves_are_stable_and_split_roughly_evenly() -> None:
    texts = [f"where is my order number {n}" for n in range(400)]
    halves = [e2e.half_of(t) for t in texts]
    assert halves == [e2e.half_of(t) for t in texts]
    assert e2e.half_of("Where  is MY order") == e2e.half_of("where is my order")
    assert 150 < halves.count("tune") < 250


def test_the_bitext_map_names_only_real_articles_and_flows() -> None:
    slugs = {article.slug for article in read_seed_files()}
    labels = yaml.safe_load((e2e.DATA / "e2e_bitext_map.yml").read_text(encoding="utf-8"))["labels"]
    flows = {"track_order", "cancel_order", "refund", "complaint", "check_ticket", "list_orders"}
    for label, accepted in labels.items():
        for outcome in accepted:
            kind, _, name = outcome.partition(":")
            assert (
                (kind == "article" and name in slugs)
                or (kind == "flow" and name in flows)
                or (outcome in ("handover", "survey"))
            ), f"{label}: {outcome}"


def test_our_own_sets_load_with_what_they_accept() -> None:
    kb = e2e.kb_cases("both")
    assert kb and all(case.accepted == (f"article:{case.label}",) for case in kb)
    assert {case.accepted for case in e2e.unanswerable_cases("both")} == {("no_answer",)}
    assert {case.accepted for case in e2e.out_of_scope_cases("both")} == {("out_of_scope",)}
    assert len(e2e.kb_cases("tune")) + len(e2e.kb_cases("report")) == len(kb)


def test_an_article_that_describes_a_flow_accepts_the_flow_too() -> None:
    flows = e2e.article_flows()
    assert e2e.widen(("article:cancel-order",), flows) == ("article:cancel-order", "flow:cancel_order")
    assert e2e.widen(("article:return-costs",), flows) == ("article:return-costs",)
    slugs = {article.slug for article in read_seed_files()}
    assert set(flows) <= slugs
