"""The knowledge-base actions against the seeded database: what the customer sees, what is stored."""

from __future__ import annotations

from typing import Any

import pytest
from rasa_sdk import Tracker
from rasa_sdk.events import FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

import actions.common
from actions import knowledge
from actions.knowledge import ActionAnswerQuestion, ActionKbFollowup
from bot.crm.conversations import get_or_create_conversation
from bot.crm.models import Conversation, ConversationMode, Handoff, KbArticle, KbFeedback, KbGap
from bot.settings import Settings
from knowledge_base.live import LiveIndex
from tests.support.trackers import make_tracker

DOMAIN: dict[str, Any] = {}


@pytest.fixture
def sender(kb: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch) -> str:
    live = LiveIndex(kb)
    live.refresh()
    monkeypatch.setattr(knowledge, "kb_index", lambda: live)
    with kb.begin() as session:
        return get_or_create_conversation(session, "web", "visitor-kb").sender_id


async def run(action: Any, track: Tracker) -> tuple[list[dict[str, Any]], dict[str, Any], list[Any]]:
    dispatcher = CollectingDispatcher()
    events = await action.run(dispatcher, track, DOMAIN)
    slots = {event["name"]: event["value"] for event in events if event.get("event") == "slot"}
    return dispatcher.messages, slots, events


def feedback(kb: sessionmaker[Session]) -> list[tuple[str, str, bool | None]]:
    with kb.begin() as session:
        rows = session.execute(
            select(KbArticle.slug, KbFeedback.shown_as, KbFeedback.helpful)
            .join(KbArticle, KbArticle.id == KbFeedback.article_id)
            .order_by(KbFeedback.id)
        )
        return [tuple(row) for row in rows]  # type: ignore[misc]


async def test_a_clear_question_gets_the_article_and_is_asked_if_it_helped(
    kb: sessionmaker[Session], sender: str
) -> None:
    messages, slots, _ = await run(
        ActionAnswerQuestion(), make_tracker(sender, "how long does delivery to austria take", "ask_question")
    )

    article, question = messages
    assert article["text"].startswith("How long does delivery take?\n") and "Austria" in article["text"]
    assert "\n\n" not in article["text"]  # Rasa would cut the article into separate messages there
    assert article["custom"] == {"metadata": {"kb_article": "delivery-times"}}
    assert question["text"] == "Did this solve it?" and [b["payload"] for b in question["buttons"]] == [
        "/affirm",
        "/deny",
    ]
    assert slots["kb_state"] == "answered" and slots["kb_article"] == "delivery-times"
    assert feedback(kb) == [("delivery-times", "answer", None)]


async def test_yes_marks_the_answer_helpful(kb: sessionmaker[Session], sender: str) -> None:
    await run(
        ActionAnswerQuestion(), make_tracker(sender, "how long does delivery to austria take", "ask_question")
    )
    messages, slots, _ = await run(
        ActionKbFollowup(),
        make_tracker(
            sender, "yes thanks", "affirm", {"kb_state": "answered", "kb_article": "delivery-times"}
        ),
    )

    assert "glad that helped" in messages[0]["text"]
    assert slots["kb_state"] is None
    assert feedback(kb) == [("delivery-times", "answer", True)]


async def test_no_offers_the_next_article_then_a_person_and_records_a_gap(
    kb: sessionmaker[Session], sender: str
) -> None:
    state = {
        "kb_state": "answered",
        "kb_article": "delivery-times",
        "kb_candidates": ["express-delivery"],
        "kb_query": "how long does delivery to austria take",
    }
    await run(ActionAnswerQuestion(), make_tracker(sender, state["kb_query"], "ask_question"))

    messages, slots, _ = await run(ActionKbFollowup(), make_tracker(sender, "no", "deny", state))
    assert any(m.get("custom") == {"metadata": {"kb_article": "express-delivery"}} for m in messages)
    assert slots == {"kb_state": "answered", "kb_article": "express-delivery", "kb_candidates": []}

    messages, slots, _ = await run(
        ActionKbFollowup(), make_tracker(sender, "nope", "deny", {**state, **slots})
    )
    assert "talk to a person" in messages[0]["text"]
    assert [b["payload"] for b in messages[0]["buttons"]] == ["/request_human", "/deny"]
    assert slots["kb_state"] == "offered_person"
    assert feedback(kb) == [("delivery-times", "answer", False), ("express-delivery", "next", False)]
    with kb.begin() as session:
        assert session.scalars(select(KbGap.reason)).all() == ["unhelpful"]


async def test_yes_to_the_offer_of_a_person_hands_over(sender: str) -> None:
    _, _, events = await run(
        ActionKbFollowup(), make_tracker(sender, "yes please", "affirm", {"kb_state": "offered_person"})
    )

    assert FollowupAction("action_request_human") in events


async def test_nothing_relevant_says_so_offers_a_person_and_records_a_gap(
    kb: sessionmaker[Session], sender: str
) -> None:
    messages, slots, _ = await run(
        ActionAnswerQuestion(),
        make_tracker(sender, "do you sell spare parts for vintage motorbikes", "ask_question"),
    )

    assert messages[0]["text"].startswith("I'm sorry, I don't have an answer to that yet")
    assert slots["kb_state"] == "offered_person"
    with kb.begin() as session:
        gap = session.scalars(select(KbGap)).one()
        assert (gap.question, gap.reason) == ("do you sell spare parts for vintage motorbikes", "no_match")


async def test_a_vague_question_offers_a_choice_and_a_typed_pick_shows_it(
    kb: sessionmaker[Session], sender: str, settings: Settings
) -> None:
    # Make the answer band unreachable so this question lands in the middle band.
    actions.common.configure(settings.model_copy(update={"kb_answer_score": 2.0}))
    messages, slots, _ = await run(
        ActionAnswerQuestion(), make_tracker(sender, "problem with my payment", "ask_question")
    )

    buttons = messages[0]["buttons"]
    assert 2 <= len(buttons) - 1 <= 3 and buttons[-1]["payload"] == "/deny"
    assert buttons[0]["payload"] == f'/choose_article{{"kb_article":"{slots["kb_candidates"][0]}"}}'
    assert slots["kb_state"] == "offered_choices"

    messages, chosen, _ = await run(
        ActionAnswerQuestion(), make_tracker(sender, "the second one", "choose_article", slots)
    )
    assert messages[0]["custom"] == {"metadata": {"kb_article": slots["kb_candidates"][1]}}
    assert chosen["kb_article"] == slots["kb_candidates"][1]
    assert feedback(kb) == [(slots["kb_candidates"][1], "chosen", None)]


async def test_a_button_pick_of_an_archived_article_is_explained(
    kb: sessionmaker[Session], sender: str
) -> None:
    with kb.begin() as session:
        session.scalars(select(KbArticle).where(KbArticle.slug == "cookies")).one().status = "archived"  # type: ignore[assignment]
    pick = make_tracker(
        sender,
        '/choose_article{"kb_article":"cookies"}',
        "choose_article",
        entities=[{"entity": "kb_article", "value": "cookies"}],
    )

    messages, _, _ = await run(ActionAnswerQuestion(), pick)

    assert "isn't available any more" in messages[0]["text"]


async def test_in_the_middle_of_the_order_form_the_answer_comes_without_questions(sender: str) -> None:
    messages, slots, events = await run(
        ActionAnswerQuestion(),
        make_tracker(
            sender, "which payment methods do you accept", "ask_question", active_loop={"name": "order_form"}
        ),
    )

    assert len(messages) == 1 and messages[0]["custom"] == {"metadata": {"kb_article": "payment-methods"}}
    assert events == [] and not any(isinstance(e, SlotSet) for e in events)


async def test_punctuation_alone_asks_for_words(sender: str) -> None:
    messages, _, _ = await run(ActionAnswerQuestion(), make_tracker(sender, "???", "nlu_fallback"))

    assert messages[0]["text"] == knowledge.EMPTY_QUESTION


async def test_when_search_fails_the_customer_is_offered_a_person(
    sender: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken() -> LiveIndex:
        raise RuntimeError("database is down")

    monkeypatch.setattr(knowledge, "kb_index", broken)
    messages, slots, _ = await run(
        ActionAnswerQuestion(), make_tracker(sender, "how do refunds work", "ask_question")
    )

    assert messages[0]["text"] == knowledge.SEARCH_DOWN and slots["kb_state"] == "offered_person"


async def test_a_second_unanswerable_question_in_a_row_goes_to_a_person(
    kb: sessionmaker[Session], sender: str
) -> None:
    first, _, _ = await run(
        ActionAnswerQuestion(),
        make_tracker(sender, "do you sell spare parts for vintage motorbikes", "ask_question"),
    )
    second = make_tracker(sender, "what about sidecars for a 1962 motorbike", "ask_question")
    second.events = [
        {"event": "user", "text": "do you sell spare parts for vintage motorbikes"},
        {"event": "bot", "text": first[0]["text"]},
        {"event": "user", "text": "what about sidecars for a 1962 motorbike"},
    ]
    messages, _, events = await run(ActionAnswerQuestion(), second)

    assert messages[0]["text"].startswith("I'm sorry, I can't find an answer to that either.")
    assert "passing you to a person" in messages[0]["text"]
    assert events[-1]["event"] == "pause"
    with kb.begin() as session:
        conversation = session.scalars(select(Conversation).where(Conversation.sender_id == sender)).one()
        assert conversation.mode is ConversationMode.PENDING_AGENT
        assert session.scalars(select(Handoff.reason)).all() == ["repeated_fallback"]


def after(sender: str, bot_said: str, text: str, intent: str, **slots: Any) -> Tracker:
    """A tracker whose latest message `text` follows the bot's reply `bot_said`."""
    track = make_tracker(sender, text, intent, slots=slots or None)
    track.events = [
        {"event": "user", "text": "earlier"},
        {"event": "bot", "text": bot_said},
        {"event": "user", "text": text},
    ]
    return track


async def test_out_of_scope_twice_in_a_row_apologises_and_offers_a_person(sender: str) -> None:
    first, _, _ = await run(
        knowledge.ActionOutOfScope(), make_tracker(sender, "who won the match", "out_of_scope")
    )
    assert first[0]["text"] == knowledge.OUT_OF_SCOPE and not first[0].get("buttons")
    second, slots, _ = await run(
        knowledge.ActionOutOfScope(),
        after(sender, first[0]["text"], "what's the weather then", "out_of_scope"),
    )
    assert second[0]["text"].startswith("I'm sorry")
    assert [b["payload"] for b in second[0]["buttons"]] == ["/request_human", "/deny"]
    assert slots["kb_state"] == "offered_person"


async def test_frustration_gets_an_apology_and_a_person_not_a_shrug(
    kb: sessionmaker[Session], sender: str
) -> None:
    messages, _, _ = await run(
        knowledge.ActionOutOfScope(),
        make_tracker(sender, "its been days, this is ridiculous", "out_of_scope"),
    )
    assert messages[0]["text"].startswith("I'm really sorry")
    assert messages[0]["buttons"][0]["payload"] == "/request_human"
    with kb.begin() as session:
        assert session.scalars(select(KbGap)).all() == []  # venting is not a missing article


async def test_an_account_security_worry_gets_the_article_and_a_person(sender: str) -> None:
    messages, slots, _ = await run(
        ActionAnswerQuestion(), make_tracker(sender, "someone ordered stuff with my account", "track_order")
    )
    assert messages[0]["text"].startswith("Someone else is using my account")
    assert "safety of your account" in messages[1]["text"]
    assert slots["kb_state"] == "offered_person"
    other, _, _ = await run(
        knowledge.ActionOutOfScope(), make_tracker(sender, "my instagram got hacked", "out_of_scope")
    )
    assert other[0]["text"] == knowledge.OUT_OF_SCOPE  # another service's account is not ours to fix


async def test_a_follow_up_about_the_order_in_hand_is_read_in_context_not_noted_as_a_gap(
    kb: sessionmaker[Session], sender: str
) -> None:
    _, _, events = await run(
        ActionAnswerQuestion(),
        make_tracker(
            sender, "ok so whats happening with it now?", "ask_question", slots={"last_order": "100001"}
        ),
    )
    assert SlotSet("order_number", "100001") in events and FollowupAction("order_form") in events
    messages, _, _ = await run(
        ActionAnswerQuestion(),
        make_tracker(sender, "and the other thing?", "nlu_fallback", slots={"last_order": "100001"}),
    )
    assert "order #100001" in messages[0]["text"]
    with kb.begin() as session:
        assert session.scalars(select(KbGap)).all() == []


async def test_after_two_articles_that_did_not_help_a_person_is_offered(sender: str) -> None:
    track = after(
        sender,
        knowledge.ASK_NEXT_HELPED,
        "no",
        "deny",
        kb_state="answered",
        kb_article="how-to-return",
        kb_candidates=["return-costs", "refund-timing"],
        kb_query="return",
    )
    messages, slots, _ = await run(ActionKbFollowup(), track)
    assert messages[0]["text"] == knowledge.NOT_HELPED_NO_MORE
    assert slots["kb_state"] == "offered_person"


async def test_a_message_asking_two_things_answers_the_first_and_offers_the_second(sender: str) -> None:
    messages, _, _ = await run(
        ActionAnswerQuestion(),
        make_tracker(
            sender, "how long does delivery to austria take? also do you take paypal", "ask_question"
        ),
    )
    assert "Austria" in messages[0]["text"]
    offer = messages[-1]
    assert "do you take paypal" in offer["text"] and offer["buttons"][0]["payload"] == "do you take paypal"


async def test_what_now_after_steps_repeats_them_and_offers_a_person(sender: str) -> None:
    steps = "You can refuse the delivery of order #100005 when it arrives, or return it."
    messages, slots, _ = await run(
        knowledge.ActionOutOfScope(),
        make_tracker(sender, "ugh ok what can i do then", "out_of_scope", slots={"next_steps": steps}),
    )
    assert messages[0]["text"].startswith(steps)
    assert messages[0]["buttons"][0]["payload"] == "/request_human"
    assert slots["kb_state"] == "offered_person"
    # A longer question is a question of its own, even with steps in hand.
    messages, _, _ = await run(
        ActionAnswerQuestion(),
        make_tracker(
            sender,
            "what can i do if the parcel arrives damaged and the box is wet",
            "ask_question",
            slots={"next_steps": steps},
        ),
    )
    assert not messages[0]["text"].startswith(steps)


async def test_why_about_the_order_in_hand_is_honest_and_offers_a_person(sender: str) -> None:
    messages, slots, _ = await run(
        knowledge.ActionOutOfScope(),
        make_tracker(sender, "why was it cancelled??", "out_of_scope", slots={"last_order": "100007"}),
    )
    assert "can't see the reason" in messages[0]["text"] and "order #100007" in messages[0]["text"]
    assert [b["payload"] for b in messages[0]["buttons"]] == ["/request_human", "/deny"]
    assert slots["kb_state"] == "offered_person"
    # Without an order or ticket in hand there is nothing to be honest about: the usual answer.
    messages, _, _ = await run(
        knowledge.ActionOutOfScope(), make_tracker(sender, "why is the sky blue", "out_of_scope")
    )
    assert messages[0]["text"] == knowledge.OUT_OF_SCOPE


async def test_the_security_answer_leaves_steps_for_what_now(sender: str) -> None:
    _, slots, _ = await run(
        ActionAnswerQuestion(),
        make_tracker(sender, "my card got stolen and someone bought stuff on your site", "account_security"),
    )
    assert "bank" in slots["next_steps"]


async def test_a_short_follow_up_takes_up_the_second_request_offered(sender: str) -> None:
    offer = "You also asked: \u201chow long does delivery to austria take\u201d. Shall we look at that now?"
    messages, _, _ = await run(
        ActionAnswerQuestion(), after(sender, offer, "and the delivery time?", "ask_question")
    )
    assert "Austria" in messages[0]["text"]


def with_confidence(track: Tracker, confidence: float) -> Tracker:
    track.latest_message["intent"]["confidence"] = confidence
    return track


async def test_a_question_read_as_a_refund_request_is_answered_from_the_knowledge_base(
    sender: str,
) -> None:
    from actions.orders import ActionStartOrderRequest

    question = with_confidence(
        make_tracker(sender, "how many days until the refund reaches my card?", "request_refund"), 0.4
    )
    _, _, events = await run(ActionStartOrderRequest(), question)
    assert events == [FollowupAction("action_answer_question")]

    messages, slots, _ = await run(ActionAnswerQuestion(), question)
    assert messages[0]["custom"] == {"metadata": {"kb_article": "refund-timing"}}


async def test_a_refund_request_naming_its_order_starts_the_refund(sender: str) -> None:
    from actions.orders import ActionStartOrderRequest

    request = make_tracker(
        sender,
        "how many days until the refund for 100002 reaches my card?",
        "request_refund",
        entities=[{"entity": "order_number", "value": "100002"}],
    )
    _, slots, events = await run(ActionStartOrderRequest(), with_confidence(request, 0.6))
    assert slots["order_purpose"] == "refund" and FollowupAction("action_answer_question") not in events


async def test_where_is_my_order_is_tracked_not_explained(sender: str) -> None:
    from actions.orders import ActionStartOrderRequest

    _, slots, _ = await run(
        ActionStartOrderRequest(),
        with_confidence(make_tracker(sender, "where is my order?", "track_order"), 0.5),
    )
    assert slots["order_purpose"] == "track"


async def test_a_shop_question_the_classifier_called_out_of_scope_gets_its_article(sender: str) -> None:
    question = make_tracker(sender, "you took the money from my card twice for one order", "out_of_scope")
    _, _, events = await run(knowledge.ActionOutOfScope(), with_confidence(question, 0.3))
    assert events == [FollowupAction("action_answer_question")]
    messages, _, _ = await run(ActionAnswerQuestion(), question)
    assert messages[0]["custom"] == {"metadata": {"kb_article": "charged-twice"}}


async def test_a_locked_account_read_as_a_security_worry_gets_the_locked_account_article(sender: str) -> None:
    locked = with_confidence(make_tracker(sender, "my account is locked", "account_security"), 0.4)
    messages, _, _ = await run(ActionAnswerQuestion(), locked)
    assert messages[0]["custom"] == {"metadata": {"kb_article": "account-locked"}}
    assert knowledge.SECURITY_OFFER not in [m.get("text") for m in messages]
