"""The Telegram channel's own rules: splitting and escaping, stored updates, and the outbox's delivery
(order, flood limits, network trouble, refusals, two senders) on a real database."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter

from bot.channels.telegram import outbox, updates
from bot.channels.telegram.outbox import TelegramOutbox
from bot.channels.telegram.render import Outgoing, keyboard, render, split_text, utf16_length
from bot.crm.conversations import get_or_create_conversation, store_outbound
from bot.crm.models import Agent, AuthorKind, Message, MessageStatus, TelegramUpdate, utcnow
from bot.live import LiveHub

CHAT = 4242


def outgoing(text: str, author: AuthorKind = AuthorKind.BOT, agent: str | None = None) -> Outgoing:
    return Outgoing(1, CHAT, text, author, agent, [], 0)


# --- splitting and escaping ---------------------------------------------------------------------


def test_a_long_text_is_cut_at_spaces_into_pieces_within_the_limit() -> None:
    words = " ".join(f"word{i}" for i in range(2000))  # 16,889 characters
    pieces = split_text(words, 4096)
    assert len(pieces) == 5
    assert all(utf16_length(piece) <= 4096 for piece in pieces)
    assert " ".join(pieces) == words  # nothing lost, no word cut in two


def test_a_line_break_is_preferred_and_emoji_count_double() -> None:
    text = "😀" * 3000  # 6,000 UTF-16 units with no space at all: cut hard, never inside a pair
    pieces = split_text(text, 4096)
    assert [utf16_length(p) for p in pieces] == [4096, 1904]
    assert "".join(pieces) == text
    assert split_text("first line\nsecond", 12) == ["first line", "second"]


def test_short_text_stays_whole() -> None:
    assert split_text("hello", 4096) == ["hello"]


def test_customer_and_agent_text_is_escaped_for_html() -> None:
    assert render(outgoing("<img src=x onerror=alert(1)> & more")) == [
        "&lt;img src=x onerror=alert(1)&gt; &amp; more"
    ]
    assert render(outgoing("Hi <b>there</b>", AuthorKind.AGENT, "Ada")) == [
        "<b>Ada (support team)</b>\nHi &lt;b&gt;there&lt;/b&gt;"
    ]
    assert render(outgoing("A person will reply", AuthorKind.SYSTEM)) == ["<i>A person will reply</i>"]


def test_an_agents_long_reply_keeps_the_label_on_the_first_part_only() -> None:
    parts = render(outgoing("x " * 3000, AuthorKind.AGENT, "Ada"))
    assert len(parts) == 2
    assert parts[0].startswith("<b>Ada (support team)</b>\n")
    assert not parts[1].startswith("<b>")
    visible = parts[0].replace("<b>", "").replace("</b>", "")
    assert utf16_length(visible) <= 4096


def test_buttons_become_an_inline_keyboard_naming_the_stored_message() -> None:
    item = Outgoing(
        77,
        CHAT,
        "Rate us",
        AuthorKind.BOT,
        None,
        [{"title": f"{n} ★", "payload": str(n)} for n in range(1, 6)],
        0,
    )
    markup = keyboard(item)
    assert markup is not None
    rows = markup.inline_keyboard
    assert [len(row) for row in rows] == [3, 2]
    assert rows[0][0].text == "1 ★" and rows[0][0].callback_data == "b:77:0"
    assert rows[1][1].callback_data == "b:77:4"


# --- stored updates ------------------------------------------------------------------------------


def test_an_update_is_stored_once(db_sessionmaker: sessionmaker[Session]) -> None:
    with db_sessionmaker() as session:
        assert updates.remember_update(session, 1001, {"update_id": 1001})
        assert not updates.remember_update(session, 1001, {"update_id": 1001})
    with db_sessionmaker() as session:
        assert [u["update_id"] for u in updates.unhandled_updates(session, utcnow())] == [1001]
        updates.mark_update_handled(session, 1001)
        assert updates.unhandled_updates(session, utcnow()) == []
        assert session.get_one(TelegramUpdate, 1001).handled_at is not None


# --- the outbox ----------------------------------------------------------------------------------


class ScriptedTelegram:
    """Stands in for Bot.send_message: records what arrives, fails as scripted."""

    def __init__(self, failures: list[Exception] | None = None) -> None:
        self.failures = list(failures or [])
        self.delivered: list[dict[str, Any]] = []
        self.attempts = 0

    async def send_message(self, **kwargs: Any) -> None:
        self.attempts += 1
        if self.failures:
            raise self.failures.pop(0)
        await asyncio.sleep(0)
        self.delivered.append(kwargs)


def queue_messages(
    sessions: sessionmaker[Session], *texts: str, author: AuthorKind = AuthorKind.BOT
) -> list[int]:
    with sessions.begin() as session:
        conversation = get_or_create_conversation(session, "telegram", str(CHAT))
        agent_id = None
        if author == AuthorKind.AGENT:
            agent = Agent(name="Ada Lovelace", email="ada@example.test", password_hash="x")
            session.add(agent)
            session.flush()
            agent_id = agent.id
        return [
            store_outbound(session, conversation, author, text, {"buttons": []}, author_agent_id=agent_id).id
            for text in texts
        ]


def statuses(sessions: sessionmaker[Session]) -> list[tuple[str, MessageStatus]]:
    with sessions() as session:
        return [(m.text, m.status) for m in session.scalars(select(Message).order_by(Message.id))]


def run_outbox(sessions: sessionmaker[Session], fake: ScriptedTelegram, passes: int = 1) -> None:
    async def go() -> None:
        outbox = TelegramOutbox(sessions, LiveHub(), fake.send_message)
        for _ in range(passes):
            await outbox.drain()

    asyncio.run(go())


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Backoff sleeps are recorded rather than slept, so the tests show how long the outbox waits."""
    slept: list[float] = []
    real_sleep = asyncio.sleep

    async def record(seconds: float, *args: Any) -> None:
        slept.append(seconds)
        await real_sleep(0)

    monkeypatch.setattr(outbox.asyncio, "sleep", record)
    return slept


def test_queued_messages_are_sent_once_in_order(db_sessionmaker: sessionmaker[Session]) -> None:
    queue_messages(db_sessionmaker, "one", "two", "three")
    fake = ScriptedTelegram()
    run_outbox(db_sessionmaker, fake, passes=3)
    assert [call["text"] for call in fake.delivered] == ["one", "two", "three"]
    assert all(call["chat_id"] == CHAT and call["parse_mode"] == "HTML" for call in fake.delivered)
    assert statuses(db_sessionmaker) == [(t, MessageStatus.SENT) for t in ("one", "two", "three")]


def test_flood_control_is_waited_out_and_the_message_sent_exactly_once(
    db_sessionmaker: sessionmaker[Session], no_waiting: list[float]
) -> None:
    queue_messages(db_sessionmaker, "after the wait")
    fake = ScriptedTelegram([RetryAfter(3)])
    run_outbox(db_sessionmaker, fake)
    assert [call["text"] for call in fake.delivered] == ["after the wait"]
    assert fake.attempts == 2
    assert 3 in no_waiting  # it waited as long as Telegram asked
    assert statuses(db_sessionmaker) == [("after the wait", MessageStatus.SENT)]


def test_network_trouble_postpones_and_later_messages_wait_their_turn(
    db_sessionmaker: sessionmaker[Session],
) -> None:
    queue_messages(db_sessionmaker, "first", "second")
    fake = ScriptedTelegram([NetworkError("connection refused")] * outbox.QUICK_TRIES)
    run_outbox(db_sessionmaker, fake)
    assert fake.delivered == []
    with db_sessionmaker() as session:
        first, second = session.scalars(select(Message).order_by(Message.id))
        assert first.status == MessageStatus.QUEUED and first.delivery_attempts == 1
        assert first.next_attempt_at is not None and "connection refused" in (first.error or "")
        assert second.status == MessageStatus.QUEUED and second.delivery_attempts == 0
        # Its next try is due: the second message must still not overtake it.
        first.next_attempt_at = None
        session.commit()
    run_outbox(db_sessionmaker, fake, passes=2)
    assert [call["text"] for call in fake.delivered] == ["first", "second"]


def test_a_blocked_bot_marks_the_message_failed_and_goes_on(db_sessionmaker: sessionmaker[Session]) -> None:
    queue_messages(db_sessionmaker, "refused", "next")
    fake = ScriptedTelegram([Forbidden("Forbidden: bot was blocked by the user")])
    run_outbox(db_sessionmaker, fake, passes=2)
    assert statuses(db_sessionmaker) == [("refused", MessageStatus.FAILED), ("next", MessageStatus.SENT)]
    with db_sessionmaker() as session:
        assert "blocked" in (session.scalars(select(Message).order_by(Message.id)).first().error or "")


def test_refused_markup_is_resent_as_plain_text(db_sessionmaker: sessionmaker[Session]) -> None:
    queue_messages(db_sessionmaker, "5 < 6 & 7 > 2")
    fake = ScriptedTelegram([BadRequest("Can't parse entities: unexpected end tag")])
    run_outbox(db_sessionmaker, fake)
    assert fake.delivered == [
        {"chat_id": CHAT, "text": "5 < 6 & 7 > 2", "parse_mode": None, "reply_markup": None}
    ]


def test_a_long_agent_reply_goes_in_parts_and_a_retry_does_not_repeat_a_part(
    db_sessionmaker: sessionmaker[Session],
) -> None:
    queue_messages(db_sessionmaker, "word " * 1500, author=AuthorKind.AGENT)  # 7,500 characters
    # The first part goes through; the second meets a network failure four times in a row.
    fake = ScriptedTelegram()
    original = fake.send_message
    failures_left = outbox.QUICK_TRIES

    async def flaky(**kwargs: Any) -> None:
        nonlocal failures_left
        if fake.delivered and failures_left:
            failures_left -= 1
            raise NetworkError("timed out")
        await original(**kwargs)

    fake_send: Callable[..., Any] = flaky
    asyncio.run(_drain_with(db_sessionmaker, fake_send))
    assert len(fake.delivered) == 1
    with db_sessionmaker() as session:
        message = session.scalars(select(Message)).one()
        assert message.status == MessageStatus.QUEUED
        message.next_attempt_at = None
        session.commit()
    asyncio.run(_drain_with(db_sessionmaker, fake_send))
    texts = [call["text"] for call in fake.delivered]
    assert len(texts) == 2
    assert texts[0].startswith("<b>Ada (support team)</b>\n")
    joined = texts[0].removeprefix("<b>Ada (support team)</b>\n") + " " + texts[1]
    assert joined.split() == ["word"] * 1500
    assert statuses(db_sessionmaker)[0][1] == MessageStatus.SENT


async def _drain_with(sessions: sessionmaker[Session], send: Callable[..., Any]) -> None:
    await TelegramOutbox(sessions, LiveHub(), send).drain()


def test_two_senders_never_send_the_same_message_twice(db_sessionmaker: sessionmaker[Session]) -> None:
    texts = [f"message {i}" for i in range(30)]
    queue_messages(db_sessionmaker, *texts)
    fake = ScriptedTelegram()

    async def two_gateways() -> None:
        first = TelegramOutbox(db_sessionmaker, LiveHub(), fake.send_message)
        second = TelegramOutbox(db_sessionmaker, LiveHub(), fake.send_message)
        for _ in range(5):
            await asyncio.gather(first.drain(), second.drain())

    asyncio.run(two_gateways())
    assert [call["text"] for call in fake.delivered] == texts
