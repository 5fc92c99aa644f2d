"""The resolution verdict on hand-computed chats, and the same chats read back from stored rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from bot.crm import resolution as r
from bot.crm.models import (
    AuthorKind,
    Conversation,
    CsatSurvey,
    Direction,
    Handoff,
    KbArticle,
    KbFeedback,
    Message,
    MessageStatus,
    SurveyStatus,
    Ticket,
)

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
H = timedelta(hours=1)


def chat(*replies: r.Reply, **facts: object) -> r.ChatRecord:
    """A chat whose last message came at T0 unless told otherwise."""
    record = r.ChatRecord(1, T0, **({"last_message_at": T0} | facts))  # type: ignore[arg-type]
    for reply in replies:
        record.add(reply)
    return record


ARTICLE = r.Reply(10, r.REPLY_ANSWER, "returns")
FALLBACK = r.Reply(10, r.REPLY_FALLBACK, r.NO_ANSWER)
STATUS = r.Reply(10, r.REPLY_COMPLETED, r.ORDER_STATUS)


def test_a_chat_with_only_a_fallback_is_not_resolved_at_once() -> None:
    verdict = r.classify(chat(FALLBACK), T0 + timedelta(minutes=5))
    assert verdict == r.Verdict(1, r.NOT_RESOLVED, "no answer", r.REASON_NO_ANSWER, 10)


def test_out_of_scope_and_silence_are_not_resolved() -> None:
    outside = r.Reply(10, r.REPLY_FALLBACK, r.OUT_OF_SCOPE)
    assert r.classify(chat(outside), T0 + 30 * H).reason == r.REASON_OUT_OF_SCOPE
    assert r.classify(chat(), T0 + 30 * H) == r.Verdict(1, r.NOT_RESOLVED, "other", r.REASON_SILENT)


def test_an_article_then_25_hours_of_silence_is_assumed_23_is_pending() -> None:
    assert r.classify(chat(ARTICLE), T0 + 25 * H).category == r.ASSUMED
    assert r.classify(chat(ARTICLE), T0 + 23 * H).category == r.PENDING
    # No message in the last 24 hours at all (the loader leaves the time out then): assumed.
    assert r.classify(chat(ARTICLE, last_message_at=None), T0 + H).category == r.ASSUMED


def test_the_quiet_period_runs_from_the_chats_last_message() -> None:
    # "thanks" an hour after the article, answered with "you're welcome" (not substantive).
    record = chat(ARTICLE, last_message_at=T0 + H)
    assert r.classify(record, T0 + 24 * H + timedelta(minutes=30)).category == r.PENDING
    assert r.classify(record, T0 + 25 * H).category == r.ASSUMED


def test_an_answer_after_a_fallback_counts_and_a_fallback_after_an_answer_does_not() -> None:
    later = r.Reply(12, r.REPLY_ANSWER, "returns")
    assert r.classify(chat(FALLBACK, later), T0 + 30 * H).category == r.ASSUMED
    late_fallback = r.Reply(12, r.REPLY_FALLBACK, r.NO_ANSWER)
    assert r.classify(chat(ARTICLE, late_fallback), T0 + 30 * H).category == r.NOT_RESOLVED


def test_order_status_given_is_confirmed_at_once() -> None:
    assert r.classify(chat(STATUS), T0 + timedelta(minutes=1)) == r.Verdict(1, r.CONFIRMED, "order status")


def test_a_ticket_opened_or_an_article_that_helped_is_confirmed() -> None:
    assert r.classify(chat(flow_ticket="product defect"), T0).category == r.CONFIRMED
    helped = chat(ARTICLE, helped=True)
    assert r.classify(helped, T0 + 2 * H).category == r.CONFIRMED


def test_an_article_the_customer_said_did_not_help_is_not_resolved() -> None:
    verdict = r.classify(chat(ARTICLE, unhelpful=(10,)), T0 + 30 * H)
    assert (verdict.category, verdict.reason) == (r.NOT_RESOLVED, r.REASON_UNHELPFUL)
    # The next article after a "no" is a new answer: that "no" was about the first one.
    second = r.Reply(12, r.REPLY_ANSWER, "returns")
    assert r.classify(chat(ARTICLE, second, unhelpful=(10,)), T0 + 30 * H).category == r.ASSUMED


def test_ratings_of_the_chat_decide_before_the_bots_own_signals() -> None:
    rated_2 = r.classify(chat(STATUS, rating=2), T0 + 2 * H)
    assert (rated_2.category, rated_2.reason) == (r.NOT_RESOLVED, r.REASON_BAD_RATING)
    assert r.classify(chat(FALLBACK, rating=5), T0 + 2 * H).category == r.CONFIRMED
    # A 3 says nothing either way.
    assert r.classify(chat(ARTICLE, rating=3), T0 + 30 * H).category == r.ASSUMED


def test_a_hand_over_wins_over_everything() -> None:
    record = chat(STATUS, handed=True, rating=5, flow_ticket="billing")
    assert r.classify(record, T0 + 30 * H).category == r.HANDED


def test_the_topic_is_the_ticket_else_what_the_bot_first_did() -> None:
    assert r.classify(chat(ARTICLE, flow_ticket="billing"), T0).topic == "billing"
    assert r.classify(chat(FALLBACK, r.Reply(12, r.REPLY_ANSWER, "returns")), T0).topic == "returns"
    assert r.classify(chat(r.Reply(12, r.REPLY_ANSWER, "returns"), STATUS), T0).topic == "order status"


def test_reply_kinds_from_tags_and_from_the_openings_of_untagged_fallbacks() -> None:
    assert r.reply_kind({"kb_article": "return-policy"}, "You can...") == (r.REPLY_ANSWER, "return-policy")
    assert r.reply_kind({"outcome": "order_status"}, "Order...") == (r.REPLY_COMPLETED, "order_status")
    assert r.reply_kind({"outcome": "no_answer"}, "") == (r.REPLY_FALLBACK, "no_answer")
    assert r.reply_kind({}, "That's outside what I can help with, sorry.") == (
        r.REPLY_FALLBACK,
        "out_of_scope",
    )
    assert r.reply_kind({}, "You're welcome!") is None


def test_the_openings_match_what_the_actions_say() -> None:
    from actions import knowledge

    for text in (
        knowledge.OUT_OF_SCOPE,
        knowledge.NO_ANSWER,
        knowledge.NO_ANSWER_IN_FORM,
        knowledge.MISSED_AGAIN,
    ):
        kind = r.reply_kind({}, text)
        assert kind is not None and kind[0] == r.REPLY_FALLBACK, text
    assert r.reply_kind({}, knowledge.NOT_HELPED_NO_MORE) == (r.REPLY_FALLBACK, r.NOT_HELPED)


# --- from stored rows ---------------------------------------------------------------------------


def _conversation(session: Session, name: str) -> Conversation:
    made = Conversation(channel="web", external_id=name, sender_id=f"s-{name}", created_at=T0, updated_at=T0)
    session.add(made)
    session.flush()
    return made


def _say(
    session: Session, chat: Conversation, author: AuthorKind, text: str, at: datetime, **metadata: str
) -> Message:
    inbound = author is AuthorKind.CUSTOMER
    message = Message(
        conversation_id=chat.id,
        channel="web",
        direction=Direction.INBOUND if inbound else Direction.OUTBOUND,
        author_kind=author,
        text=text,
        payload={"buttons": [], "metadata": metadata},
        status=MessageStatus.PROCESSED if inbound else MessageStatus.SENT,
        created_at=at,
    )
    session.add(message)
    session.flush()
    return message


def test_verdicts_read_from_stored_rows(db_session: Session) -> None:
    s = db_session
    now = T0 + 30 * H
    fallback = _conversation(s, "fallback")
    _say(s, fallback, AuthorKind.CUSTOMER, "do you sell replacement zips?", T0)
    _say(s, fallback, AuthorKind.BOT, "I'm sorry, I don't have an answer to that yet. I've noted it.", T0)

    outside = _conversation(s, "outside")
    _say(s, outside, AuthorKind.CUSTOMER, "who won the match?", T0)
    _say(s, outside, AuthorKind.BOT, "Sorry!", T0, outcome="out_of_scope")

    status = _conversation(s, "status")
    _say(s, status, AuthorKind.CUSTOMER, "where is 100001?", T0)
    _say(s, status, AuthorKind.BOT, "Order #100001 is in transit.", T0, outcome="order_status")

    article = KbArticle(slug="return-policy")
    s.add(article)
    s.flush()
    quiet = _conversation(s, "quiet")
    _say(s, quiet, AuthorKind.CUSTOMER, "how do returns work?", T0)
    _say(s, quiet, AuthorKind.BOT, "You have 30 days.", T0, kb_article="return-policy")
    _say(s, quiet, AuthorKind.CUSTOMER, "thanks", T0 + 5 * H)
    _say(s, quiet, AuthorKind.BOT, "You're welcome!", T0 + 5 * H)

    unhelpful = _conversation(s, "unhelpful")
    _say(s, unhelpful, AuthorKind.CUSTOMER, "can i pay with klarna?", T0)
    shown = _say(s, unhelpful, AuthorKind.BOT, "We take cards.", T0, kb_article="return-policy")
    s.add(
        KbFeedback(
            article_id=article.id, conversation_id=unhelpful.id, message_id=shown.id, query="klarna",
            shown_as="answer", score=0.6, helpful=False, created_at=T0, answered_at=T0 + H,
        )
    )  # fmt: skip

    complained = _conversation(s, "complained")
    _say(s, complained, AuthorKind.CUSTOMER, "the lantern arrived broken", T0)
    s.add(Ticket(reference="T-1", kind="complaint", category="product_defect", subject="x",
                 conversation_id=complained.id, created_at=T0, updated_at=T0))  # fmt: skip

    rated = _conversation(s, "rated")
    _say(s, rated, AuthorKind.CUSTOMER, "where is 100002?", T0)
    _say(s, rated, AuthorKind.BOT, "Delivered.", T0, outcome="order_status")
    s.add(CsatSurvey(conversation_id=rated.id, trigger="conversation_end", status=SurveyStatus.ANSWERED,
                     score=2, requested_at=T0, answered_at=T0 + H))  # fmt: skip

    rerated = _conversation(s, "rerated")  # rated 1, then 5 after all: the latest rating counts
    _say(s, rerated, AuthorKind.CUSTOMER, "who won the match?", T0)
    _say(s, rerated, AuthorKind.BOT, "That's outside what I can help with, sorry.", T0)
    for score in (1, 5):
        s.add(CsatSurvey(conversation_id=rerated.id, trigger="customer_offered", status=SurveyStatus.ANSWERED,
                         score=score, requested_at=T0, answered_at=T0 + H))  # fmt: skip
        s.flush()

    handed = _conversation(s, "handed")
    _say(s, handed, AuthorKind.CUSTOMER, "a person please", T0)
    s.add(Handoff(conversation_id=handed.id, reason="customer_asked", requested_at=T0))
    s.add(Ticket(reference="T-2", kind="conversation", category="handoff", subject="x",
                 conversation_id=handed.id, created_at=T0, updated_at=T0))  # fmt: skip
    s.flush()

    chats = [fallback, outside, status, quiet, unhelpful, complained, rated, rerated, handed]
    records = r.load_chats(s, Conversation.id.in_([c.id for c in chats]), now)
    assert [record.conversation_id for record in records] == [c.id for c in chats]
    verdicts = {c.external_id: r.classify(record, now) for c, record in zip(chats, records, strict=True)}

    assert {name: (v.category, v.reason) for name, v in verdicts.items()} == {
        "fallback": (r.NOT_RESOLVED, r.REASON_NO_ANSWER),
        "outside": (r.NOT_RESOLVED, r.REASON_OUT_OF_SCOPE),
        "status": (r.CONFIRMED, None),
        "quiet": (r.ASSUMED, None),
        "unhelpful": (r.NOT_RESOLVED, r.REASON_UNHELPFUL),
        "complained": (r.CONFIRMED, None),
        "rated": (r.NOT_RESOLVED, r.REASON_BAD_RATING),
        "rerated": (r.CONFIRMED, None),
        "handed": (r.HANDED, None),
    }
    assert r.example_for(s, verdicts["fallback"]) == "do you sell replacement zips?"
    assert r.example_for(s, verdicts["unhelpful"]) == "can i pay with klarna?"
    assert r.example_for(s, verdicts["handed"]) == "a person please"
    assert verdicts["complained"].topic == "product defect"
    assert verdicts["status"].topic == "order status"
    # Quiet is counted from the "thanks" 5 h after the article, not from the article.
    for later, category in ((T0 + 29 * H, r.ASSUMED), (T0 + 29 * H - timedelta(minutes=1), r.PENDING)):
        (record,) = r.load_chats(s, Conversation.id == quiet.id, later)
        assert r.classify(record, later).category == category
