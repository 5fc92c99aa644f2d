"""Saved replies in headless Chromium: a lead writes one in the lead console; an agent in a claimed
chat types "/" and a shortcut, picks it, sees it filled from the CRM with a marker for the missing
value, cannot send the gap, edits it, sends, and the customer's chat shows the text.

The gateway runs in this process (uvicorn in a thread) on the demo data, Rasa absent: strong language
hands the chat over without the bot, as in tests/web/routes/test_console.py.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import date
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.crm.models import AuthorKind, Conversation, Customer, Handoff, Message, Order, Ticket
from bot.demo.seed import DEMO_PASSWORD_AGENT, DEMO_PASSWORD_LEAD, seed_demo_data
from bot.settings import Settings
from bot.web.app import create_app
from tests.support.browser import new_page
from tests.support.stack import serve
from tests.support.visitors import named_visitor

FURIOUS = "This is absolutely ridiculous, you useless thieves, I am furious!!"
BODY = (
    "Hi {customer.first_name}, I've checked order {order.number}: it is {order.status}. "
    "Track it here: {order.tracking_url} "
)


@pytest.fixture
def gateway(web_settings: Settings, db_sessionmaker: sessionmaker[Session]) -> Iterator[str]:
    with db_sessionmaker.begin() as session:
        seed_demo_data(session, date(2026, 11, 20))
    with serve(create_app(web_settings)) as url:
        yield url


def _log_in(page: Page, gateway: str, path: str, email: str, password: str) -> None:
    page.goto(f"{gateway}{path}")
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#who")).not_to_be_empty()


def _history(gateway: str, visitor: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{gateway}/api/web/history", params={"session": named_visitor(visitor)}, timeout=30)
    return list(response.json()["messages"])


def _anas_chat_about(gateway: str, db: sessionmaker[Session], visitor: str, order_number: str) -> int:
    """Ana, proven, in the queue; her hand-over ticket is about `order_number`."""
    response = httpx.post(
        f"{gateway}/api/web/messages", json={"session": named_visitor(visitor), "text": FURIOUS}, timeout=30
    )
    assert response.json()["mode"] == "pending_agent", response.text
    chat = int(response.json()["conversation_id"])
    with db.begin() as session:
        ana = session.scalars(select(Customer).where(Customer.email == "ana.souza@example.com")).one()
        session.get_one(Conversation, chat).customer_id = ana.id
        ticket = session.get_one(
            Ticket, session.scalars(select(Handoff.ticket_id).where(Handoff.conversation_id == chat)).one()
        )
        ticket.order_id = session.scalars(select(Order.id).where(Order.number == order_number)).one()
    return chat


def test_a_lead_writes_a_saved_reply_and_an_agent_inserts_fills_and_sends_it(
    gateway: str, browser: Browser, db_sessionmaker: sessionmaker[Session]
) -> None:
    lead = new_page(browser, 1400, 900)
    agent = new_page(browser, 1400, 900)
    try:
        # The lead writes it; a typo in a placeholder is refused with the list of real ones.
        _log_in(lead, gateway, "/console/lead", "lead@kefu.example", DEMO_PASSWORD_LEAD)
        lead.get_by_role("tab", name="Saved replies").click()
        lead.get_by_role("button", name="New saved reply").click()
        lead.get_by_role("textbox", name="Shortcut").fill("order-news")
        lead.get_by_role("textbox", name="Title").fill("News about the order")
        lead.get_by_role("textbox", name="Reply text").fill("Order {order.numbr}")
        lead.get_by_role("button", name="Save reply").click()
        expect(lead.locator("#flash")).to_contain_text("unknown placeholder {order.numbr}")
        lead.get_by_role("textbox", name="Reply text").fill(BODY)
        lead.get_by_role("button", name="{agent.first_name}").click()  # inserted at the cursor
        lead.get_by_role("button", name="Save reply").click()
        expect(lead.locator("#flash")).to_contain_text("Saved /order-news")
        expect(lead.locator("#saved-replies")).to_contain_text("/order-news")
        assert lead.get_by_role("textbox", name="Reply text").input_value() == BODY + "{agent.first_name}"

        # Ana's order 100003 is still being prepared: no tracking link yet.
        chat = _anas_chat_about(gateway, db_sessionmaker, "ana-browser", "100003")
        _log_in(agent, gateway, "/console", "ada@kefu.example", DEMO_PASSWORD_AGENT)
        expect(agent.locator("#live-state")).to_have_text("Live")
        box = agent.get_by_label("Reply to the customer")
        claim = agent.get_by_role("button", name="Claim")
        expect(claim).to_be_hidden()  # no chat open: nothing to claim, nowhere to reply
        expect(box).to_be_hidden()
        agent.locator(f'[data-conversation="{chat}"]').click()
        expect(claim).to_be_visible()
        expect(box).to_be_hidden()  # not hers until she claims it
        claim.click()
        expect(box).to_be_visible()

        box.press_sequentially("/order-ne")
        option = agent.get_by_role("option").filter(has_text="/order-news")
        expect(option).to_be_visible()
        expect(option).to_have_attribute("aria-selected", "true")
        agent.keyboard.press("Enter")
        filled = (
            "Hi Ana, I've checked order 100003: it is being prepared in our warehouse. "
            "Track it here: [tracking link?] Ada"
        )
        expect(box).to_have_value(filled)
        expect(agent.locator("#reply-gaps")).to_have_text("Fill in before sending: [tracking link?]")

        agent.keyboard.press("Enter")  # refused while the gap is there
        expect(agent.locator("#flash")).to_contain_text("still has gaps")
        assert filled not in [m["text"] for m in _history(gateway, "ana-browser")]

        # The marker is selected: typing replaces it.
        agent.keyboard.type("you'll get the link by e-mail once it ships.")
        sent = filled.replace("[tracking link?]", "you'll get the link by e-mail once it ships.")
        expect(box).to_have_value(sent)
        expect(agent.locator("#reply-gaps")).to_be_hidden()
        agent.keyboard.press("Enter")
        expect(agent.locator("#messages")).to_contain_text(sent)
        expect(box).to_have_value("")

        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _history(gateway, "ana-browser")[-1]["text"] != sent:
            time.sleep(0.2)
        assert _history(gateway, "ana-browser")[-1]["text"] == sent
        with db_sessionmaker() as session:
            rows = session.scalars(
                select(Message).where(Message.conversation_id == chat).order_by(Message.id)
            )
            row = rows.all()[-1]
            assert row.author_kind is AuthorKind.AGENT and row.text == sent

        # The searchable list inserts too, and Esc closes it.
        agent.get_by_role("button", name="Saved replies").click()
        agent.get_by_role("searchbox", name="Search saved replies").fill("news about")
        expect(agent.get_by_role("option").filter(has_text="/order-news")).to_be_visible()
        agent.keyboard.press("Escape")
        expect(agent.locator("#reply-picker")).to_be_hidden()
        agent.get_by_role("button", name="Saved replies").click()
        agent.get_by_role("searchbox", name="Search saved replies").fill("news about")
        agent.keyboard.press("Tab")
        expect(box).to_have_value(filled)
        assert lead.dialogs == [] and agent.dialogs == []  # type: ignore[attr-defined]
    finally:
        lead.context.close()
        agent.context.close()
