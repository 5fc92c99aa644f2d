"""The agent console in headless Chromium: only the owner of a chat can act in it (a colleague reads
along, told who has it, also right after losing a claim race), an agent's own chats are pinned first,
button presses read as what they mean, the customer panel never says "null", and the suggested
articles are about the customer's problem, not about their asking for a person.

The gateway runs in this process (uvicorn in a thread) on the demo data with the seed articles
published (tests/support/knowledge.py), Rasa absent: chats are arranged in the database.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.crm import handoff, sla
from bot.crm.conversations import get_or_create_conversation, store_inbound, store_outbound
from bot.crm.models import Agent, AuthorKind, Customer
from bot.demo.seed import DEMO_PASSWORD_AGENT
from bot.settings import Settings
from tests.support.browser import new_page
from tests.web.conftest import gateway_without_rasa

VOUCHER = "My voucher code WELCOME10 says it is not valid when I check out"
PERSON_ARTICLE = "How do I talk to a person in this chat?"

# What a chat said before its hand-over: (author, text, buttons the bot offered).
Said = list[tuple[AuthorKind, str, list[dict[str, str]]]]


@pytest.fixture
def gateway(settings: Settings, kb: sessionmaker[Session]) -> Iterator[str]:
    with gateway_without_rasa(settings) as url:
        yield url


def _chat(
    kb: sessionmaker[Session],
    settings: Settings,
    visitor: str,
    said: Said,
    reason: str = "customer_asked",
    customer: Customer | None = None,
) -> int:
    """A web chat with what was said in it, handed over to the agents' queue."""
    with kb.begin() as session:
        conversation = get_or_create_conversation(session, "web", visitor)
        if customer is not None:
            session.add(customer)
            session.flush()
            conversation.customer_id = customer.id
        for author, text, buttons in said:
            if author is AuthorKind.CUSTOMER:
                store_inbound(session, conversation, text)
            else:
                store_outbound(session, conversation, author, text, {"buttons": buttons} if buttons else None)
        handoff.escalate(
            session,
            conversation,
            reason,
            policy=sla.load_policy(settings.sla_policy_file),
            minutes_per_chat=4,
        )
        return conversation.id


def _claim_quietly(kb: sessionmaker[Session], chat: int, email: str) -> None:
    """Claim in the database, telling no console: what another agent's console sees in a race."""
    with kb.begin() as session:
        agent = session.scalars(select(Agent).where(Agent.email == email)).one()
        handoff.claim(session, chat, agent)


def _log_in(page: Page, gateway: str, email: str) -> None:
    page.goto(f"{gateway}/console")
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(DEMO_PASSWORD_AGENT)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#who")).not_to_be_empty()
    expect(page.locator("#live-state")).to_have_text("Live")


def _expect_read_only(page: Page, owner: str) -> None:
    expect(page.locator("#chat-readonly")).to_be_visible()
    expect(page.locator("#chat-readonly")).to_contain_text(f"{owner} has this chat")
    expect(page.locator("#chat-readonly")).to_contain_text(f"Ask {owner} to transfer it")
    expect(page.get_by_label("Reply to the customer")).to_be_hidden()
    for name in ("Claim", "Transfer", "Hand back to the bot", "Close chat"):
        expect(page.get_by_role("button", name=name, exact=True)).to_be_hidden()


def test_only_the_owner_can_act_in_a_chat_and_the_loser_of_a_claim_race_sees_who_has_it(
    gateway: str, browser: Browser, kb: sessionmaker[Session], settings: Settings
) -> None:
    said: Said = [(AuthorKind.CUSTOMER, "Where is my parcel? It has been two weeks.", [])]
    first = _chat(kb, settings, "race-1", said)
    second = _chat(kb, settings, "race-2", said)
    ada = new_page(browser, 1400, 900)
    sam = new_page(browser, 1400, 900)
    try:
        _log_in(ada, gateway, "ada@kefu.example")
        _log_in(sam, gateway, "sam@kefu.example")

        # No chat open: nothing to act on.
        for page in (ada, sam):
            expect(page.locator("#chat-actions")).to_be_hidden()
            expect(page.get_by_role("button", name="Claim", exact=True)).to_be_hidden()
            expect(page.get_by_label("Reply to the customer")).to_be_hidden()

        # Ada claims in her console; Sam, who has the chat open, is told at once and cannot act.
        ada.locator(f'[data-conversation="{first}"]').click()
        sam.locator(f'[data-conversation="{first}"]').click()
        expect(sam.get_by_role("button", name="Claim", exact=True)).to_be_visible()
        ada.get_by_role("button", name="Claim", exact=True).click()
        expect(ada.get_by_label("Reply to the customer")).to_be_visible()
        expect(ada.locator("#chat-readonly")).to_be_hidden()
        _expect_read_only(sam, "Ada Agent")
        expect(sam.locator("#chat-meta")).to_contain_text("with Ada Agent")

        # A race: Ada's claim lands while Sam's console still shows the chat waiting.
        sam.locator(f'[data-conversation="{second}"]').click()
        expect(sam.get_by_role("button", name="Claim", exact=True)).to_be_visible()
        _claim_quietly(kb, second, "ada@kefu.example")
        sam.get_by_role("button", name="Claim", exact=True).click()
        expect(sam.locator("#flash")).to_contain_text("Ada Agent has already taken this chat")
        _expect_read_only(sam, "Ada Agent")
    finally:
        ada.context.close()
        sam.context.close()


def test_an_agents_own_chats_are_pinned_above_the_waiting_ones(
    gateway: str, browser: Browser, kb: sessionmaker[Session], settings: Settings
) -> None:
    hers = _chat(kb, settings, "pinned-1", [(AuthorKind.CUSTOMER, "Can I change my address?", [])])
    _claim_quietly(kb, hers, "ada@kefu.example")
    urgent = _chat(
        kb, settings, "pinned-2", [(AuthorKind.CUSTOMER, "This is unacceptable!", [])], "severe_complaint"
    )
    page = new_page(browser, 1400, 900)
    try:
        _log_in(page, gateway, "ada@kefu.example")
        items = page.locator("#queue .queue__open")
        expect(items).to_have_count(2)
        expect(items.nth(0)).to_have_attribute("data-conversation", str(hers))
        expect(items.nth(0)).to_contain_text("yours")
        expect(items.nth(1)).to_have_attribute("data-conversation", str(urgent))
    finally:
        page.context.close()
    sam = new_page(browser, 1400, 900)
    try:
        _log_in(sam, gateway, "sam@kefu.example")
        items = sam.locator("#queue .queue__open")
        expect(items).to_have_count(2)
        expect(items.nth(0)).to_have_attribute("data-conversation", str(urgent))  # waiting first for Sam
        expect(items.nth(1)).to_contain_text("with Ada Agent")
    finally:
        sam.context.close()


def test_suggestions_are_about_the_problem_and_button_presses_read_as_what_they_mean(
    gateway: str, browser: Browser, kb: sessionmaker[Session], settings: Settings
) -> None:
    offered = [{"title": "Yes, that's my question", "payload": "/affirm"}]
    said: Said = [
        (AuthorKind.CUSTOMER, VOUCHER, []),
        (AuthorKind.BOT, "Do you mean a voucher code that is refused?", offered),
        (AuthorKind.CUSTOMER, "/affirm", []),
        (AuthorKind.BOT, "Vouchers work on full-price items only.", []),
        (AuthorKind.CUSTOMER, "/request_human", []),
        (AuthorKind.CUSTOMER, "I want to talk to a person", []),
    ]
    # A customer we know little about: no phone, no scores, no lifetime value.
    noor = Customer(name="Noor Haddad", email="noor.haddad@example.com")
    chat = _chat(kb, settings, "voucher-1", said, customer=noor)
    page = new_page(browser, 1400, 900)
    try:
        _log_in(page, gateway, "ada@kefu.example")
        expect(page.locator(f'[data-conversation="{chat}"]')).to_contain_text("I want to talk to a person")
        page.locator(f'[data-conversation="{chat}"]').click()

        messages = page.locator("#messages")
        expect(messages).to_contain_text("Customer pressed “Talk to a person”")
        expect(messages).to_contain_text("Customer pressed “Yes, that's my question”")
        expect(messages).not_to_contain_text("/request_human")
        expect(messages).not_to_contain_text("/affirm")

        first = page.locator("#suggestions > li").first
        expect(first).to_contain_text("My voucher code doesn't work", timeout=60_000)
        expect(first).to_contain_text(f"matches: “{VOUCHER}”")
        expect(page.locator("#suggestions")).not_to_contain_text(PERSON_ARTICLE)

        panel = page.locator("#customer")
        expect(panel).to_contain_text("Noor Haddad")
        expect(panel).to_contain_text("noor.haddad@example.com")
        text = panel.inner_text()
        assert "null" not in text and "undefined" not in text, text
    finally:
        page.context.close()
