"""The security pass against the real processes: Rasa with the trained model, the action server and the
gateway from the Procfile (supervisord), Telegram in webhook mode against the fake Bot API, and headless
Chromium for the widget and the consoles.

- `/intent{...}` typed by a customer reaches Rasa as words; clicks on the bot's buttons still work.
- Order look-ups pause after five failures, through the gateway.
- A knowledge-base article with `<img onerror>` and `<script>` in it is shown as text in the widget,
  the agent and lead consoles, and on Telegram.
- No secret reaches the logs: the stack runs with distinctive secret values and the gateway logging
  at INFO (as an operator turning up the logs would: httpx then logs every URL it calls, Telegram's
  with the bot token in it, Rasa's with `?token=`), and the logs of all three processes are
  searched for them.
"""

from __future__ import annotations

import functools
import json
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from bot.crm.db import make_engine, make_sessionmaker
from bot.crm.models import AuditLog, Conversation, CsatSurvey
from bot.demo.seed import DEMO_PASSWORD_AGENT, DEMO_PASSWORD_LEAD
from bot.settings import Settings
from tests.support.browser import chromium, log_in, new_page
from tests.support.fakes.telegram_api import FakeTelegram, command_update, text_update
from tests.support.stack import Stack, console, running_stack, stack_settings
from tests.support.visitors import named_visitor
from tests.support.widget import ShopSite, open_shop

pytestmark = pytest.mark.rasa

_RUN = uuid.uuid4().hex[:10]
# Distinctive values, so that any appearance in a log is found.
SECRET_KEY = f"SecretKey{_RUN}Sk"
RASA_TOKEN = f"RasaToken{_RUN}Rt"
TELEGRAM_TOKEN = f"4815162342:TgBotToken{_RUN}Tg"
WEBHOOK_SECRET = f"WebhookSecret{_RUN}Ws"
SECRETS = {
    "SECRET_KEY": SECRET_KEY,
    "RASA_TOKEN": RASA_TOKEN,
    "TELEGRAM_BOT_TOKEN": TELEGRAM_TOKEN,
    "the secret part of TELEGRAM_BOT_TOKEN": TELEGRAM_TOKEN.split(":")[1],
    "TELEGRAM_WEBHOOK_SECRET": WEBHOOK_SECRET,
}
# What a production operator might use to see the gateway's INFO lines.
INFO_LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(levelname)s %(name)s: %(message)s"}},
    "handlers": {
        "stderr": {"class": "logging.StreamHandler", "formatter": "plain", "stream": "ext://sys.stderr"}
    },
    "root": {"level": "INFO", "handlers": ["stderr"]},
}

IMG = '<img src=x onerror="window.__kefuXss=1">'
SCRIPT = "<script>window.__kefuXss=2</script>"
KB_QUESTION = "do you offer engraving on lanterns?"
JONAS_DETAILS = ("DPD", "01505823104472")  # order 100004's carrier and tracking number
_chats = iter(range(770_000_001, 770_999_999))


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeTelegram]:
    with FakeTelegram(token=TELEGRAM_TOKEN) as telegram:
        yield telegram


@pytest.fixture(scope="module")
def stack(fake: FakeTelegram, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("security")
    log_config = workdir / "logging.json"
    log_config.write_text(json.dumps(INFO_LOGGING))
    settings = stack_settings(workdir)
    settings = settings.model_copy(
        update={
            "rasa_token": RASA_TOKEN,
            "secret_key": SECRET_KEY,
            "telegram_bot_token": fake.token,
            "telegram_mode": "webhook",
            "telegram_webhook_url": f"http://127.0.0.1:{settings.gateway_port}/telegram/webhook",
            "telegram_webhook_secret": WEBHOOK_SECRET,
            "telegram_api_url": fake.base_url,
        }
    )
    with pytest.MonkeyPatch.context() as env:
        # The stack's processes inherit these (tests/support/stack.py passes the rest of the environment on).
        env.setenv("SECRET_KEY", SECRET_KEY)
        env.setenv("UVICORN_LOG_CONFIG", str(log_config))
        with running_stack(workdir, settings=settings) as running:
            yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    opened = new_page(browser, 1400, 900)
    yield opened
    opened.context.close()


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ShopSite]:
    site = ShopSite(tmp_path_factory.mktemp("shop"))
    yield site
    site.close()


@functools.cache
def _sessions(database_url: str) -> sessionmaker[Session]:
    return make_sessionmaker(make_engine(Settings(database_url=database_url, _env_file=None)))  # type: ignore[call-arg]


def sessions(stack: Stack) -> sessionmaker[Session]:
    """Sessions on the stack's database (one engine per stack)."""
    return _sessions(stack.settings.database_url)


def say(stack: Stack, visitor: str, text: str) -> dict[str, Any]:
    response = httpx.post(
        f"{stack.gateway_url}/api/web/messages",
        json={"session": named_visitor(visitor, SECRET_KEY), "text": text},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def texts(reply: dict[str, Any]) -> str:
    return "\n".join(m["text"] for m in reply["messages"])


def payloads(reply: dict[str, Any]) -> set[str]:
    return {b["payload"] for m in reply["messages"] for b in m["buttons"]}


def conversation(stack: Stack, channel: str, external_id: str) -> Conversation:
    with sessions(stack)() as session:
        return session.scalars(
            select(Conversation).where(
                Conversation.channel == channel,
                Conversation.external_id
                == (named_visitor(external_id, SECRET_KEY) if channel == "web" else external_id),
            )
        ).one()


def what_rasa_read(stack: Stack, visitor: str) -> list[tuple[str, str | None]]:
    """(text, intent) of every customer message in the chat's Rasa tracker, as Rasa understood it."""
    sender_id = conversation(stack, "web", visitor).sender_id
    tracker = httpx.get(
        f"{stack.settings.rasa_url}/conversations/{sender_id}/tracker",
        params={"token": RASA_TOKEN, "include_events": "ALL"},
        timeout=30,
    ).json()
    return [
        (event["text"], (event.get("parse_data", {}).get("intent") or {}).get("name"))
        for event in tracker["events"]
        if event["event"] == "user"
    ]


def wait_for_mode(stack: Stack, visitor: str, mode: str, timeout: float = 60) -> Conversation:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with sessions(stack)() as session:
            found = session.scalars(
                select(Conversation).where(
                    Conversation.channel == "web",
                    Conversation.external_id == named_visitor(visitor, SECRET_KEY),
                )
            ).one_or_none()
        if found is not None and found.mode.value == mode:
            return found
        time.sleep(0.3)
    raise AssertionError(f"the chat of {visitor} never reached mode {mode}")


def assert_no_script_ran(page: Page, where: str) -> None:
    """The payloads set window.__kefuXss if they run; no <img> or <script> of theirs is in the page."""
    assert page.evaluate("typeof window.__kefuXss") == "undefined"
    assert page.locator(f"{where} img").count() == 0
    assert page.locator(f"{where} script").count() == 0
    assert page.dialogs == []  # type: ignore[attr-defined]


# --- /intent{...} injection -------------------------------------------------------------------------------


def test_an_unverified_customer_cannot_steer_the_bot_with_intent_syntax(stack: Stack) -> None:
    visitor = f"sec-inject-{uuid.uuid4().hex[:8]}"
    forged = [
        '/track_order{"order_number":"100004"}',
        '/track_order{"order_number":"100004","email":"ana.souza@example.com"}',
        ' //inform{"order_number":"100004","contact":"ana.souza@example.com"}',
        "/affirm",
    ]
    for text in forged:
        answer = texts(say(stack, visitor, text))
        assert not any(detail in answer for detail in JONAS_DETAILS), (text, answer)

    # The scheduler's own survey intent: as intent syntax it would start a rating survey in any chat.
    surveyed = say(stack, visitor, "/EXTERNAL_csat_request")
    assert not {"1", "2", "3", "4", "5"} <= payloads(surveyed), texts(surveyed)
    with sessions(stack)() as session:
        chat = conversation(stack, "web", visitor)
        assert session.scalar(select(func.count()).where(CsatSurvey.conversation_id == chat.id)) == 0
        assert chat.customer_id is None  # nobody was verified

    # Rasa was sent every one of them as words, stored as the customer typed them.
    read = what_rasa_read(stack, visitor)
    assert [text for text, _intent in read] == [
        re.sub(r"^[\s/]+", "", text) for text in [*forged, "/EXTERNAL_csat_request"]
    ]
    assert all(intent != "EXTERNAL_csat_request" for _text, intent in read)


def test_a_verified_customer_clicks_the_bots_buttons_but_cannot_forge_one(stack: Stack) -> None:
    visitor = f"sec-buttons-{uuid.uuid4().hex[:8]}"
    assert "e-mail" in texts(say(stack, visitor, "where is my order 100001?"))
    assert "#100001" in texts(say(stack, visitor, "ana.souza@example.com"))
    assert "e-mailed a 6-digit code" in texts(say(stack, visitor, "and my other orders?"))
    listing = say(stack, visitor, stack.latest_code("ana.souza@example.com"))
    click = next(p for p in payloads(listing) if "100003" in p)
    assert "hasn't shipped" in texts(say(stack, visitor, click))

    # Not a button of the latest reply: the syntax does not help, the order is not hers either way.
    answer = texts(say(stack, visitor, '/track_order{"order_number": "100004"}'))
    assert not any(detail in answer for detail in JONAS_DETAILS), answer

    read = what_rasa_read(stack, visitor)
    assert (click, "track_order") in read
    assert read[-1][0] == 'track_order{"order_number": "100004"}'


def test_talk_to_a_person_from_the_widget_still_reaches_a_person(stack: Stack) -> None:
    visitor = f"sec-human-{uuid.uuid4().hex[:8]}"
    say(stack, visitor, "hello")
    assert say(stack, visitor, "/request_human")["mode"] == "pending_agent"


def test_telegram_commands_still_work(stack: Stack, fake: FakeTelegram) -> None:
    chat = next(_chats)
    assert fake.deliver_update(command_update(chat, "/start")) == 200
    greeting = wait_for_telegram(fake, chat, 1)[0]["text"]
    assert "Kefu" in greeting


# --- the verification limit, through the gateway --------------------------------------------------------


def test_five_failures_pause_the_chat_and_the_owner_then_needs_the_code(stack: Stack) -> None:
    visitor = f"sec-guess-{uuid.uuid4().hex[:8]}"
    assert "e-mail" in texts(say(stack, visitor, "where is my order 100007?"))
    answers = [texts(say(stack, visitor, f"guess{n}@example.com")) for n in range(1, 6)]
    assert all("couldn't find an order matching" in a for a in answers[:4])
    assert "paused order look-ups for this chat" in answers[4]
    # The guessing chat gets nothing more, not even with the owner's e-mail.
    say(stack, visitor, "100007")
    assert "paused order look-ups" in texts(say(stack, visitor, "order 100007, mei.chen@example.com"))
    # The owner, in her own chat, is not locked out: the right details now need the code from her mail.
    owner = f"sec-owner-{uuid.uuid4().hex[:8]}"
    asked = texts(say(stack, owner, "where is order 100007? mei.chen@example.com"))
    assert "paused" not in asked and "100007, placed" not in asked
    assert "e-mailed a 6-digit code to m•••@example.com" in asked
    shown = texts(say(stack, owner, stack.latest_code("mei.chen@example.com")))
    assert "100007" in shown and "cancelled" in shown
    with sessions(stack)() as session:
        locked = session.scalars(select(AuditLog).where(AuditLog.action == "verification_locked")).all()
        assert any(row.details.get("order_number") == "100007" for row in locked)
    assert conversation(stack, "web", owner).proof == "code"


# --- markup in a knowledge-base article ----------------------------------------------------------------


@pytest.fixture(scope="module")
def hostile_article(stack: Stack) -> str:
    """An article whose title and solution carry markup, published by two leads, answered with."""
    slug = f"engraving-{uuid.uuid4().hex[:6]}"
    with (
        console(stack, "lead@kefu.example", DEMO_PASSWORD_LEAD) as lena,
        console(stack, "rui@kefu.example", DEMO_PASSWORD_LEAD) as rui,
    ):
        created = lena.post(
            "/api/kb/articles",
            json={
                "slug": slug,
                "title": f"Engraving a name on a lantern {IMG}",
                "problem": "can you engrave a name on my lantern\ndo you offer engraving\n"
                "I want my lantern personalised with an engraving",
                "solution": f"Yes: engraving costs EUR 6 per item {SCRIPT} and adds two days. {IMG}",
                "tags": ["engraving"],
            },
        )
        assert created.status_code == 201, created.text
        version = created.json()["latest_version"]
        assert lena.post(f"/api/kb/articles/{slug}/submit", json={"version": version}).status_code == 200
        assert rui.post(f"/api/kb/articles/{slug}/publish", json={"version": version}).status_code == 200
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        reply = say(stack, f"sec-kb-wait-{uuid.uuid4().hex[:6]}", KB_QUESTION)
        if any(m["metadata"].get("kb_article") == slug for m in reply["messages"]):
            return slug
        time.sleep(1)
    raise AssertionError(f"the bot never answered with {slug}")


def test_the_widget_shows_an_articles_markup_as_text(
    stack: Stack, hostile_article: str, shop: ShopSite, page: Page
) -> None:
    widget = open_shop(page, shop, stack.gateway_url)
    widget.open()
    widget.say(KB_QUESTION)
    answer = widget.messages("bot").filter(has_text="Engraving a name on a lantern")
    expect(answer).to_have_count(1)
    expect(answer.locator(".bubble")).to_contain_text(IMG)
    expect(answer.locator(".bubble")).to_contain_text(SCRIPT)
    assert_no_script_ran(page, "kefu-chat")


def test_an_agents_reply_with_markup_is_text_in_the_widget(stack: Stack, shop: ShopSite, page: Page) -> None:
    widget = open_shop(page, shop, stack.gateway_url)
    widget.open()
    widget.say("I want to talk to a person")
    chat = wait_for_mode(stack, widget.visitor(), "pending_agent")
    with console(stack, "ada@kefu.example", DEMO_PASSWORD_AGENT) as ada:
        assert ada.post(f"/api/console/conversations/{chat.id}/claim").status_code == 200
        reply = f"Here is the fix: {SCRIPT} {IMG}"
        sent = ada.post(f"/api/console/conversations/{chat.id}/messages", json={"text": reply})
        assert sent.status_code == 200, sent.text
    expect(widget.messages("agent").locator(".bubble")).to_have_text([reply])
    assert_no_script_ran(page, "kefu-chat")


def test_the_consoles_show_an_articles_markup_as_text(stack: Stack, hostile_article: str, page: Page) -> None:
    visitor = f"sec-kb-agent-{uuid.uuid4().hex[:8]}"
    assert IMG in texts(say(stack, visitor, KB_QUESTION))  # the bot's answer is in the chat
    chat = say(stack, visitor, "I want to talk to a person")
    assert chat["mode"] == "pending_agent"
    say(stack, visitor, KB_QUESTION)  # the latest message: the console suggests the article for it

    log_in(page, stack, "/console", "ada@kefu.example", DEMO_PASSWORD_AGENT)
    page.locator(f'[data-conversation="{chat["conversation_id"]}"]').click()
    expect(page.locator("#messages")).to_contain_text(IMG)
    expect(page.locator("#messages")).to_contain_text(SCRIPT)
    expect(page.locator("#suggestions")).to_contain_text(f"Engraving a name on a lantern {IMG}")
    expect(page.locator("#suggestions")).to_contain_text(SCRIPT)
    assert_no_script_ran(page, "main")

    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(f"{stack.gateway_url}/console/login")
    log_in(page, stack, "/console/lead", "rui@kefu.example", DEMO_PASSWORD_LEAD)
    page.get_by_role("tab", name="Knowledge base").click()
    page.get_by_label("Search articles").fill("Engraving")
    page.get_by_role("button", name="Find", exact=True).click()
    listed = page.get_by_role("button", name=f"Engraving a name on a lantern {IMG}")
    expect(listed).to_be_visible()
    listed.click()
    expect(page.locator("#editor-title")).to_have_text(f"Engraving a name on a lantern {IMG}")
    expect(page.locator("#ed-solution")).to_have_value(re.compile(re.escape(SCRIPT)))
    assert_no_script_ran(page, "main")


def wait_for_telegram(fake: FakeTelegram, chat: int, count: int, timeout: float = 60) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sent = fake.sent_messages(chat)
        if len(sent) >= count:
            return sent
        time.sleep(0.2)
    raise AssertionError(f"expected {count} messages in chat {chat}, got {fake.sent_messages(chat)}")


def test_telegram_shows_an_articles_markup_as_text(
    stack: Stack, hostile_article: str, fake: FakeTelegram
) -> None:
    chat = next(_chats)
    assert fake.deliver_update(text_update(chat, KB_QUESTION)) == 200
    sent = wait_for_telegram(fake, chat, 2)
    answer = next(m for m in sent if "Engraving a name on a lantern" in m["text"])
    # What the customer reads, after Telegram parsed the HTML we sent: the markup, as text.
    assert IMG in answer["text"] and SCRIPT in answer["text"]
    assert not answer.get("entities")
    # Telegram refuses text with tags it does not know: nothing was refused.
    assert fake.calls("sendMessage", ok=False) == []


# --- secrets and the logs (last: it reads what every test above made the processes log) ----------------


def test_no_secret_value_reaches_any_processs_log(stack: Stack, fake: FakeTelegram) -> None:
    # A Telegram chat, a login, and a web chat handed to an agent and back (Rasa's API, with ?token=).
    chat = next(_chats)
    assert fake.deliver_update(text_update(chat, "where is my order 100002?")) == 200
    wait_for_telegram(fake, chat, 1)
    visitor = f"sec-logs-{uuid.uuid4().hex[:8]}"
    asked = say(stack, visitor, "I want to talk to a person")
    with console(stack, "sam@kefu.example", DEMO_PASSWORD_AGENT) as sam:
        conversation_id = asked["conversation_id"]
        assert sam.post(f"/api/console/conversations/{conversation_id}/claim").status_code == 200
        assert sam.post(f"/api/console/conversations/{conversation_id}/handback").status_code == 200
    time.sleep(1)  # what the processes print reaches their log files a moment later

    log = stack.log()
    found = {name: log.count(value) for name, value in SECRETS.items() if value in log}
    assert found == {}, f"secrets in the log ({found}); lines: " + "\n".join(
        line for line in log.splitlines() if any(value in line for value in SECRETS.values())
    )
    # The test looked where secrets would have been: the gateway logged the Bot API's and Rasa's
    # URLs, with the token and ?token= redacted.
    assert "/bot[redacted]/sendMessage" in log
    assert "token=[redacted]" in log
    for process in ("rasa", "actions", "gateway"):
        assert f"{process} | " in log


def test_no_visitor_id_reaches_the_gateways_log(stack: Stack, page: Page, shop: ShopSite) -> None:
    """A widget chat over the live socket, and a script that puts its id in the socket's URL."""
    widget = open_shop(page, shop, stack.gateway_url)
    widget.open()
    widget.say("do you ship to portugal?")
    widget.wait_until_live()
    expect(widget.messages("bot")).not_to_have_count(0, timeout=60_000)
    visitor = widget.visitor()
    in_url = named_visitor(f"sec-url-{uuid.uuid4().hex[:8]}", SECRET_KEY)
    ws_url = stack.gateway_url.replace("http://", "ws://") + f"/api/web/live?session={in_url}"
    page.evaluate("url => new Promise(done => { const s = new WebSocket(url); s.onclose = done; })", ws_url)
    time.sleep(1)  # what the gateway prints reaches its log file a moment later

    log = stack.log()
    assert visitor not in log and in_url not in log
    # It looked where the ids would have been: uvicorn logged the socket's URL, redacted.
    assert "/api/web/live?session=[redacted]" in log
