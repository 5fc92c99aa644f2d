"""python-telegram-bot against the fake Telegram Bot API, in-process and as a subprocess."""

from __future__ import annotations

import asyncio
import datetime as dtm
import json
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Message, Update, User
from telegram.constants import ChatAction, ParseMode
from telegram.error import BadRequest, Conflict, Forbidden, InvalidToken, NetworkError, RetryAfter, TimedOut
from telegram.ext import Application, ContextTypes, MessageHandler, filters
from telegram.request import HTTPXRequest

from tests.support.fakes.telegram_api import (
    BOT_USERNAME,
    SECRET_HEADER,
    CallsTimeout,
    EntityParseError,
    FakeTelegram,
    FakeTelegramProcess,
    callback_query_update,
    command_update,
    parse_html,
    post_update,
    text_update,
    utf16_length,
)

CHAT = 4242

# PTB 22 warns, whenever RetryAfter.retry_after is read, that the int will become a timedelta.
pytestmark = pytest.mark.filterwarnings("ignore:.*retry_after.*:telegram.warnings.PTBDeprecationWarning")


@pytest.fixture
async def bot(fake_telegram: FakeTelegram) -> AsyncIterator[Bot]:
    # Short timeouts keep the "timeout" injection test quick.
    request = HTTPXRequest(connect_timeout=2, read_timeout=2, write_timeout=2)
    async with Bot(fake_telegram.token, base_url=fake_telegram.base_url, request=request) as bot:
        yield bot


def message_of(update: Update) -> Message:
    assert update.message is not None
    return update.message


def message_from(message: Message) -> User:
    assert message.from_user is not None
    return message.from_user


def retry_after_seconds(exc: RetryAfter) -> float:
    """RetryAfter.retry_after is an int or a timedelta depending on PTB's settings (PTB_TIMEDELTA)."""
    value = exc.retry_after
    return value.total_seconds() if isinstance(value, dtm.timedelta) else float(value)


# --- Basic methods -----------------------------------------------------------------------------


async def test_get_me(bot: Bot, fake_telegram: FakeTelegram) -> None:
    me = await bot.get_me()
    assert me.is_bot and me.username == BOT_USERNAME and me.first_name == "Kefu test bot"
    assert me.id == 123456789 and me.can_join_groups is True
    assert bot.username == BOT_USERNAME  # Bot.initialize() called getMe too
    assert [c["method"] for c in fake_telegram.calls()] == ["getMe", "getMe"]


async def test_send_message_returns_a_message_and_is_recorded(bot: Bot, fake_telegram: FakeTelegram) -> None:
    markup = InlineKeyboardMarkup([[InlineKeyboardButton("Yes", callback_data="yes")]])
    first = await bot.send_message(CHAT, "Hello <b>there</b>", parse_mode=ParseMode.HTML, reply_markup=markup)
    second = await bot.send_message(CHAT, "plain")
    assert first.text == "Hello there" and first.chat.id == CHAT and message_from(first).is_bot
    assert first.entities[0].type == "bold" and (first.entities[0].offset, first.entities[0].length) == (6, 5)
    assert first.reply_markup == markup
    assert second.message_id == first.message_id + 1
    (call, _) = fake_telegram.wait_for_calls("sendMessage", 2)
    assert call["params"]["chat_id"] == CHAT and call["params"]["parse_mode"] == "HTML"
    assert call["params"]["text"] == "Hello <b>there</b>"
    assert call["params"]["reply_markup"] == {"inline_keyboard": [[{"text": "Yes", "callback_data": "yes"}]]}
    assert fake_telegram.sent_messages(CHAT)[1]["text"] == "plain"


async def test_other_methods(bot: Bot, fake_telegram: FakeTelegram) -> None:
    markup = InlineKeyboardMarkup([[InlineKeyboardButton("A", callback_data="a")]])
    sent = await bot.send_message(CHAT, "Pick", reply_markup=markup)
    assert await bot.send_chat_action(CHAT, ChatAction.TYPING)
    assert await bot.answer_callback_query("123", text="ok")
    edited = await bot.edit_message_reply_markup(CHAT, sent.message_id, reply_markup=None)
    assert isinstance(edited, type(sent)) and edited.reply_markup is None
    with pytest.raises(BadRequest, match="(?i)message is not modified"):
        await bot.edit_message_reply_markup(CHAT, sent.message_id, reply_markup=None)
    edited = await bot.edit_message_text("Picked <i>A</i>", CHAT, sent.message_id, parse_mode=ParseMode.HTML)
    assert isinstance(edited, Message) and edited.text == "Picked A"
    assert await bot.delete_message(CHAT, sent.message_id)
    with pytest.raises(BadRequest, match="(?i)message to delete not found"):
        await bot.delete_message(CHAT, sent.message_id)
    # A message the fake never sent (from callback_query_update) counts as existing.
    assert await bot.edit_message_reply_markup(CHAT, 999_999, reply_markup=None)
    async with httpx.AsyncClient() as client:
        response = await client.post(
            f"{fake_telegram.api_url}/sendChatAction", data={"chat_id": str(CHAT), "action": "dancing"}
        )
    assert response.json()["description"] == "Bad Request: wrong parameter action in request"


async def test_unknown_method_and_wrong_token(fake_telegram: FakeTelegram) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{fake_telegram.api_url}/sendSticker", json={"chat_id": 1})
        assert response.status_code == 404
        assert response.json() == {
            "ok": False,
            "error_code": 404,
            "description": "Not Found: method not found",
        }
        response = await client.post(f"{fake_telegram.base_url}1:wrong/getMe")
        assert response.status_code == 401
        assert response.json() == {"ok": False, "error_code": 401, "description": "Unauthorized"}
        # JSON bodies work as well as PTB's form bodies; method names are case-insensitive.
        response = await client.post(
            f"{fake_telegram.api_url}/SENDMESSAGE", json={"chat_id": "7", "text": "x"}
        )
        assert response.json()["result"]["chat"] == {"id": 7, "type": "private", "first_name": "Test"}
    with pytest.raises(InvalidToken):
        async with Bot("1:wrong", base_url=fake_telegram.base_url):
            pass
    outcomes = [(c["method"], c["outcome"]) for c in fake_telegram.calls()]
    assert outcomes[:3] == [("sendSticker", "not_found"), ("getMe", "unauthorized"), ("sendMessage", "ok")]


# --- Validation --------------------------------------------------------------------------------


async def test_html_is_checked_like_telegram(bot: Bot) -> None:
    with pytest.raises(BadRequest, match="(?i)can't parse entities"):
        await bot.send_message(CHAT, "<b>unclosed", parse_mode=ParseMode.HTML)
    accepted = await bot.send_message(CHAT, "a &lt; b &amp;&#33;", parse_mode=ParseMode.HTML)
    assert accepted.text == "a < b &!"
    # Without a parse mode the same characters are just text.
    assert (await bot.send_message(CHAT, "<b>unclosed & co")).text == "<b>unclosed & co"


@pytest.mark.parametrize(
    ("html", "error"),
    [
        ("<b>unclosed", 'Can\'t find end tag corresponding to start tag "b"'),
        ("<b>x</i>", 'Unmatched end tag at byte offset 4, expected "</b>", found "</i>"'),
        ("x</b>", "Unexpected end tag at byte offset 1"),
        ("<div>x</div>", 'Unsupported start tag "div" at byte offset 0'),
        ("1 < 2", 'Unsupported start tag "" at byte offset 2'),
        ("fish & chips", 'unescaped "&" at byte offset 5'),
        ("&nbsp;", 'unescaped "&" at byte offset 0'),
        ('<a href="x>y', "Unclosed start tag at byte offset 0"),
        ('<span class="x">y</span>', 'Tag "span" must have class "tg-spoiler"'),
    ],
)
def test_malformed_html_is_rejected(html: str, error: str) -> None:
    with pytest.raises(EntityParseError) as caught:
        parse_html(html)
    assert error in str(caught.value)


def test_html_visible_text_and_entities() -> None:
    text, entities = parse_html(
        '😀 <b>bold <i>both</i></b> <a href="https://x.test/?a=1&amp;b=2">link</a> '
        '<pre><code class="language-python">x = 1</code></pre> 1 &gt; 0'
    )
    assert text == "😀 bold both link x = 1 1 > 0"
    assert entities == [
        {"type": "bold", "offset": 3, "length": 9},  # the emoji is two UTF-16 units
        {"type": "italic", "offset": 8, "length": 4},
        {"type": "text_link", "offset": 13, "length": 4, "url": "https://x.test/?a=1&b=2"},
        {"type": "pre", "offset": 18, "length": 5, "language": "python"},
    ]
    assert parse_html("fish & chips", strict=False)[0] == "fish & chips"


async def test_text_limit_counts_visible_utf16_units(bot: Bot) -> None:
    assert utf16_length("😀a") == 3
    await bot.send_message(CHAT, "<b>" + "x" * 4096 + "</b>", parse_mode=ParseMode.HTML)  # tags don't count
    await bot.send_message(CHAT, "&lt;" * 4096, parse_mode=ParseMode.HTML)
    with pytest.raises(BadRequest, match="(?i)message is too long"):
        await bot.send_message(CHAT, "x" * 4097)
    with pytest.raises(BadRequest, match="(?i)message is too long"):
        await bot.send_message(CHAT, "😀" * 2049)  # 2049 characters, 4098 UTF-16 units
    with pytest.raises(BadRequest, match="(?i)message text is empty"):
        await bot.send_message(CHAT, "<b> </b>", parse_mode=ParseMode.HTML)
    with pytest.raises(BadRequest, match="(?i)BUTTON_DATA_INVALID"):
        too_long = InlineKeyboardMarkup([[InlineKeyboardButton("x", callback_data="d" * 65)]])
        await bot.send_message(CHAT, "x", reply_markup=too_long)


# --- Fault injection ---------------------------------------------------------------------------


async def test_retry_after_then_success(bot: Bot, fake_telegram: FakeTelegram) -> None:
    fake_telegram.fail("sendMessage", "retry_after", retry_after=7)
    with pytest.raises(RetryAfter) as caught:
        await bot.send_message(CHAT, "hi")
    assert retry_after_seconds(caught.value) == 7
    await bot.send_message(CHAT, "hi")
    calls = fake_telegram.calls("sendMessage")
    assert [(c["status"], c["outcome"], c["injected"]) for c in calls] == [
        (429, "retry_after", True),
        (200, "ok", False),
    ]
    assert calls[0]["description"] == "Too Many Requests: retry after 7"
    assert len(fake_telegram.calls("sendMessage", ok=True)) == 1


async def test_server_error_forbidden_bad_request(bot: Bot, fake_telegram: FakeTelegram) -> None:
    fake_telegram.fail("sendMessage", "server_error")
    with pytest.raises(NetworkError) as caught:
        await bot.send_message(CHAT, "hi")
    assert not isinstance(caught.value, (BadRequest, TimedOut))
    fake_telegram.fail("sendMessage", "forbidden", chat_id=CHAT)
    assert await bot.send_message(CHAT + 1, "other chats are unaffected")
    with pytest.raises(Forbidden, match="(?i)bot was blocked by the user"):
        await bot.send_message(CHAT, "hi")
    fake_telegram.fail("*", "bad_request", times=2, description="Bad Request: chat not found")
    for _ in range(2):
        with pytest.raises(BadRequest, match="(?i)chat not found"):
            await bot.send_chat_action(CHAT, ChatAction.TYPING)
    assert await bot.send_chat_action(CHAT, ChatAction.TYPING)


async def test_timeout_hangs_past_the_client_timeout(fake_telegram: FakeTelegram) -> None:
    fake_telegram.fail("sendMessage", "timeout")
    request = HTTPXRequest(read_timeout=0.3)
    async with Bot(fake_telegram.token, base_url=fake_telegram.base_url, request=request) as bot:
        with pytest.raises(TimedOut):
            await bot.send_message(CHAT, "hi")
        await bot.send_message(CHAT, "hi")
    assert [c["outcome"] for c in fake_telegram.calls("sendMessage")] == ["timeout", "ok"]
    # stop() does not wait the 30 s the hanging call would last.


def test_wait_for_calls_reports_what_was_recorded(fake_telegram: FakeTelegram) -> None:
    httpx.post(f"{fake_telegram.api_url}/sendMessage", data={"chat_id": "1"})
    with pytest.raises(CallsTimeout) as caught:
        fake_telegram.wait_for_calls("sendMessage", 1, timeout=0.2)
    assert "sendMessage -> bad_request (400)" in str(caught.value)

    def later() -> None:
        httpx.post(f"{fake_telegram.api_url}/sendMessage", data={"chat_id": "1", "text": "hi"})

    threading.Timer(0.1, later).start()
    assert fake_telegram.wait_for_calls("sendMessage", 1, timeout=5)[0]["result"]["text"] == "hi"


# --- Updates -----------------------------------------------------------------------------------


async def test_get_updates_long_polling(bot: Bot, fake_telegram: FakeTelegram) -> None:
    first = fake_telegram.queue_update(text_update(CHAT, "hello"))
    second = fake_telegram.queue_update(command_update(CHAT, "start"))
    updates = await bot.get_updates(offset=0, timeout=1)
    assert [u.update_id for u in updates] == [first, second]
    assert [message_of(u).text for u in updates] == ["hello", "/start"]
    # Not confirmed yet: the same updates again.
    assert [u.update_id for u in await bot.get_updates(timeout=0)] == [first, second]
    # The offset moves on: confirmed, never returned again; the long poll waits for a new one.
    fake_telegram.queue_update(callback_query_update(CHAT, "yes"))
    third = fake_telegram.pending_updates()[-1]["update_id"]
    assert [u.update_id for u in await bot.get_updates(offset=second + 1, timeout=1)] == [third]
    assert [u["update_id"] for u in fake_telegram.pending_updates()] == [third]

    loop = asyncio.get_running_loop()
    loop.call_later(0.2, fake_telegram.queue_update, text_update(CHAT, "later"))
    started = loop.time()
    late = await bot.get_updates(offset=third + 1, timeout=5)
    assert [message_of(u).text for u in late] == ["later"] and loop.time() - started < 2
    started = loop.time()
    assert await bot.get_updates(offset=late[0].update_id + 1, timeout=dtm.timedelta(seconds=0.3)) == ()
    assert 0.25 < loop.time() - started < 2
    assert fake_telegram.pending_updates() == []


async def test_ptb_application_polls_and_replies(fake_telegram: FakeTelegram) -> None:
    async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.message is not None and update.message.text is not None
        await update.message.reply_text("echo: " + update.message.text)

    app = Application.builder().token(fake_telegram.token).base_url(fake_telegram.base_url).build()
    app.add_handler(MessageHandler(filters.TEXT, echo))
    async with app:
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling(allowed_updates=["message"], timeout=20)
        fake_telegram.queue_updates([text_update(CHAT, "one"), command_update(CHAT, "help")])
        sent = await fake_telegram.async_wait_for_calls("sendMessage", 2)
        await app.updater.stop()
        await app.stop()
    assert [c["result"]["text"] for c in sent] == ["echo: one", "echo: /help"]
    assert fake_telegram.pending_updates() == []  # the updater confirmed them when stopping
    assert [c["method"] for c in fake_telegram.calls()][:3] == ["getMe", "deleteWebhook", "getUpdates"]


async def test_update_builders_parse_in_ptb(bot: Bot) -> None:
    text = Update.de_json(text_update(CHAT, "where is my order?"), bot)
    assert message_of(text).chat.type == "private" and message_from(message_of(text)).id == CHAT
    command = Update.de_json(command_update(CHAT, "/agent", "please"), bot)
    assert message_of(command).text == "/agent please"
    entity = message_of(command).entities[0]
    assert entity.type == "bot_command" and (entity.offset, entity.length) == (0, 6)
    sent = await bot.send_message(
        CHAT, "Pick", reply_markup=InlineKeyboardMarkup([[InlineKeyboardButton("A", callback_data="a")]])
    )
    query = Update.de_json(callback_query_update(CHAT, "a", message=sent.to_dict()), bot).to_dict()
    assert query["callback_query"]["data"] == "a" and query["callback_query"]["from"]["id"] == CHAT
    assert query["callback_query"]["message"]["message_id"] == sent.message_id
    made = Update.de_json(callback_query_update(CHAT, "b", message_id=5, message_text="Hi"), bot).to_dict()
    assert made["callback_query"]["message"]["text"] == "Hi"
    assert made["callback_query"]["message"]["from"]["username"] == BOT_USERNAME
    assert text.update_id < command.update_id


class _Receiver(BaseHTTPRequestHandler):
    received: list[tuple[str | None, dict[str, Any]]] = []

    def do_POST(self) -> None:  # noqa: N802 (the name http.server looks for)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.received.append((self.headers.get(SECRET_HEADER), body))
        self.send_response(200 if self.headers.get(SECRET_HEADER) == "s3cret" else 403)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass


@pytest.fixture
def webhook_receiver() -> Iterator[str]:
    _Receiver.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/telegram/webhook"
    server.shutdown()
    server.server_close()


async def test_webhook(bot: Bot, fake_telegram: FakeTelegram, webhook_receiver: str) -> None:
    assert await bot.set_webhook(webhook_receiver, secret_token="s3cret", allowed_updates=["message"])
    assert fake_telegram.webhook == {
        "url": webhook_receiver,
        "secret_token": "s3cret",
        "allowed_updates": ["message"],
    }
    info = await bot.get_webhook_info()
    assert info.url == webhook_receiver and info.allowed_updates == ("message",)
    with pytest.raises(Conflict, match="(?i)webhook is active"):
        await bot.get_updates(timeout=0)
    update = text_update(CHAT, "hi")
    assert await asyncio.to_thread(fake_telegram.deliver_update, update) == 200
    assert await asyncio.to_thread(post_update, webhook_receiver, update, "wrong") == 403
    assert _Receiver.received == [("s3cret", update), ("wrong", update)]
    with pytest.raises(BadRequest, match="(?i)unallowed characters"):
        await bot.set_webhook(webhook_receiver, secret_token="has space")
    assert await bot.delete_webhook()
    assert (await bot.get_webhook_info()).url == ""


# --- The CLI -----------------------------------------------------------------------------------


async def test_cli_process_and_control_api(fake_telegram_remote: FakeTelegramProcess) -> None:
    tg = fake_telegram_remote
    async with Bot(tg.token, base_url=tg.base_url) as bot:
        tg.fail("sendMessage", "retry_after", retry_after=3)
        with pytest.raises(RetryAfter) as caught:
            await bot.send_message(CHAT, "hi")
        assert retry_after_seconds(caught.value) == 3
        await bot.send_message(CHAT, "hi")
        assert [c["outcome"] for c in tg.calls("sendMessage")] == ["retry_after", "ok"]
        assert (await asyncio.to_thread(tg.wait_for_calls, "sendMessage", 1))[0]["result"]["text"] == "hi"

        update_id = tg.queue_update(text_update(CHAT, "from the test"))
        assert [u.update_id for u in await bot.get_updates(timeout=1)] == [update_id]
        assert (await bot.get_updates(offset=update_id + 1, timeout=0)) == ()

    # The raw control API, as documented.
    async with httpx.AsyncClient(base_url=tg.control_url) as client:
        assert (await client.post("/fail", json={"method": "getMe", "kind": "nope"})).status_code == 400
        assert (await client.post("/updates", json={"message": {"text": "no id"}})).json()["ok"]
        assert [u["message"]["text"] for u in (await client.get("/updates")).json()] == ["no id"]
        calls = (await client.get("/calls", params={"method": "getUpdates", "ok": "true"})).json()
        assert len(calls) == 2
        assert (await client.post("/reset")).json() == {"ok": True}
        assert (await client.get("/calls")).json() == [] and (await client.get("/updates")).json() == []
