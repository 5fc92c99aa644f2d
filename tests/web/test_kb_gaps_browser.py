"""Unanswered questions in headless Chromium: a question the bot had no answer for is listed with
the chat before it; a lead drafts an article from it and submits it (and, as its author, is told it
waits for another lead instead of being offered "Approve and publish"); a second lead approves it,
and the question is then shown as answered by the new article.

The gateway runs in this process on the seeded knowledge base, Rasa absent.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy.orm import Session, sessionmaker

from bot.crm.models import AuthorKind
from bot.demo.seed import DEMO_PASSWORD_LEAD
from bot.settings import Settings
from knowledge_base import gaps
from tests.support.browser import new_page
from tests.support.knowledge import chat_with_turns
from tests.web.conftest import gateway_without_rasa

QUESTION = "can I collect my parcel from your warehouse in Kassel"


@pytest.fixture
def gateway(settings: Settings, kb: sessionmaker[Session]) -> Iterator[str]:
    with gateway_without_rasa(settings, kb_poll_seconds=0.5) as url:
        yield url


def _log_in(page: Page, gateway: str, email: str) -> None:
    page.goto(f"{gateway}/console/lead#gaps")
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(DEMO_PASSWORD_LEAD)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#who")).not_to_be_empty()


def test_a_question_without_answer_is_answered_by_an_article_two_leads_publish(
    gateway: str, browser: Browser, kb: sessionmaker[Session]
) -> None:
    with kb.begin() as session:
        chat, asked = chat_with_turns(
            session,
            (AuthorKind.CUSTOMER, "where do you ship from?"),
            (AuthorKind.BOT, "Our warehouse is in Kassel, Germany."),
            (AuthorKind.CUSTOMER, QUESTION),
        )
        gaps.record_gap(session, QUESTION, "no_match", chat, asked)
        gaps.record_gap(session, "my stove does not light after cleaning", "unhelpful")
    author = new_page(browser, 1400, 900)
    reviewer = new_page(browser, 1400, 900)
    try:
        _log_in(author, gateway, "lead@kefu.example")
        author.get_by_role("tab", name="Unanswered questions").click()
        no_answer = author.get_by_role("list", name="No answer")
        expect(no_answer).to_contain_text(QUESTION)
        expect(no_answer).to_contain_text("Bot: Our warehouse is in Kassel, Germany.")
        expect(no_answer).to_contain_text("Customer: where do you ship from?")
        expect(no_answer).not_to_contain_text("stove")
        expect(author.get_by_role("list", name="Didn't help")).to_contain_text(
            "my stove does not light after cleaning"
        )

        no_answer.get_by_role("button", name="Make a draft from this").click()
        expect(author.locator("#flash")).to_contain_text("A draft was made")
        author.get_by_role("textbox", name="Solution").fill("Not yet: every order is delivered by a carrier.")
        author.get_by_role("button", name="Save draft").click()
        expect(author.locator("#flash")).to_contain_text("Draft saved")
        author.get_by_role("button", name="Submit for review").click()
        expect(author.locator("#flash")).to_contain_text("Submitted")
        # The author cannot approve their own version: no button, a note instead.
        expect(author.get_by_text("Waiting for another lead's review")).to_be_visible()
        expect(author.get_by_role("button", name="Approve and publish")).to_be_hidden()

        _log_in(reviewer, gateway, "rui@kefu.example")
        reviewer.get_by_role("tab", name="Knowledge base").click()
        reviewer.get_by_label("Status").select_option("in_review")
        reviewer.get_by_role("button", name="Find").click()
        reviewer.get_by_role("button", name="Can I collect my parcel").click()
        expect(reviewer.get_by_text("Waiting for another lead's review")).to_be_hidden()
        reviewer.get_by_role("button", name="Approve and publish").click()
        expect(reviewer.locator("#flash")).to_contain_text("Published")

        author.get_by_role("tab", name="Unanswered questions").click()
        answered = author.get_by_role("list", name="Answered")
        expect(answered).to_contain_text(QUESTION)
        expect(answered).to_contain_text("answered by Can I collect my parcel from your warehouse in Kassel")
        expect(author.get_by_role("list", name="No answer")).not_to_contain_text(QUESTION)
    finally:
        author.context.close()
        reviewer.context.close()
