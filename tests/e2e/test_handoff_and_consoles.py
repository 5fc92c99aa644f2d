"""Hand-over to a person through the running processes, and the consoles in headless Chromium.

One stack (Rasa with the trained model, the action server and the gateway, from the Procfile) serves
every test here. The browser is Debian's Chromium driven by Playwright; `make test` installs it
(scripts/provision_chromium.sh), or set KEFU_CHROMIUM to another Chromium binary.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select

from bot.crm.db import make_engine, make_sessionmaker
from bot.crm.models import Conversation, CsatSurvey, Handoff
from bot.demo.seed import DEMO_PASSWORD_AGENT, DEMO_PASSWORD_LEAD
from tests.support.browser import chromium, log_in
from tests.support.stack import Stack, console, running_stack
from tests.support.visitors import named_visitor

pytestmark = pytest.mark.rasa

XSS = "<img src=x onerror=alert(1)>"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("handoff-stack")) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    opened = context.new_page()
    dialogs: list[str] = []
    opened.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.accept()))
    opened.dialogs = dialogs  # type: ignore[attr-defined]
    yield opened
    context.close()


def say(stack: Stack, visitor: str, text: str) -> dict[str, Any]:
    response = httpx.post(
        f"{stack.gateway_url}/api/web/messages",
        json={"session": named_visitor(visitor), "text": text},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def history(stack: Stack, visitor: str) -> list[dict[str, Any]]:
    response = httpx.get(
        f"{stack.gateway_url}/api/web/history", params={"session": named_visitor(visitor)}, timeout=30
    )
    return list(response.json()["messages"])


# --- through the APIs --------------------------------------------------------------------------------


def test_a_customer_asks_for_a_person_an_agent_answers_and_hands_back(stack: Stack) -> None:
    visitor = f"e2e-handoff-{uuid.uuid4().hex[:8]}"
    say(stack, visitor, "where is my order?")
    asked = say(stack, visitor, "I want to talk to a real person")
    assert asked["mode"] == "pending_agent"
    told = " ".join(m["text"] for m in asked["messages"])
    assert "passing you to a person" in told and (
        "minute" in told or "Nobody from our team is online" in told
    )
    conversation_id = asked["conversation_id"]

    waiting = say(stack, visitor, "my order number is 100004 by the way")
    assert waiting["mode"] == "pending_agent"

    with console(stack, "ada@kefu.example", DEMO_PASSWORD_AGENT) as ada:
        queue = ada.get("/api/console/queue").json()["queue"]
        row = next(r for r in queue if r["conversation_id"] == conversation_id)
        assert (
            row["reason"] == "customer_asked"
            and row["last_message"] == "my order number is 100004 by the way"
        )
        detail = ada.get(f"/api/console/conversations/{conversation_id}").json()
        said = [m["text"] for m in detail["messages"] if m["author"] == "customer"]
        assert said == [
            "where is my order?",
            "I want to talk to a real person",
            "my order number is 100004 by the way",
        ]

        assert ada.post(f"/api/console/conversations/{conversation_id}/claim").status_code == 200
        reply = "Hi, I'm Ada. Order 100004 is held up at the Köln depot; I've asked DPD for a date."
        assert (
            ada.post(
                f"/api/console/conversations/{conversation_id}/messages", json={"text": reply}
            ).status_code
            == 200
        )
        assert history(stack, visitor)[-1]["text"] == reply

        back = ada.post(f"/api/console/conversations/{conversation_id}/handback")
        assert back.status_code == 200, back.text
        asked_rating = " ".join(m["text"] for m in back.json()["bot_messages"])
        assert "rate" in asked_rating.lower() or "how did" in asked_rating.lower(), asked_rating

    rated = say(stack, visitor, "5")
    assert rated["mode"] == "bot"
    say(stack, visitor, "skip")
    answered = say(stack, visitor, "hello")
    assert answered["mode"] == "bot" and answered["messages"] and answered["messages"][0]["author"] == "bot"

    with make_sessionmaker(make_engine(stack.settings))() as session:
        handoff = session.scalars(select(Handoff).where(Handoff.conversation_id == conversation_id)).one()
        assert handoff.outcome == "handed_back" and handoff.first_agent_reply_at is not None
        survey = session.scalars(
            select(CsatSurvey).where(CsatSurvey.conversation_id == conversation_id)
        ).one()
        assert survey.trigger == "agent_handback" and survey.score == 5
        assert session.get_one(Conversation, conversation_id).mode.value == "bot"


# --- in the browser ------------------------------------------------------------------------------------


def test_agent_logs_in_claims_replies_and_hands_back_in_the_browser(stack: Stack, page: Page) -> None:
    visitor = f"e2e-browser-{uuid.uuid4().hex[:8]}"
    asked = say(stack, visitor, "Can I speak to a human please")
    assert asked["mode"] == "pending_agent"
    say(stack, visitor, XSS)

    log_in(page, stack, "/console", "sam@kefu.example", DEMO_PASSWORD_AGENT)
    expect(page.locator("#live-state")).to_have_text("Live")
    item = page.locator(f'[data-conversation="{asked["conversation_id"]}"]')
    expect(item).to_contain_text(XSS)  # the preview shows the markup as text
    item.click()
    expect(page.locator("#messages")).to_contain_text(XSS)
    assert page.locator("#messages img").count() == 0

    page.get_by_role("button", name="Claim").click()
    expect(page.locator("#reply-form")).to_be_visible()
    # A message the customer writes now appears live, without reloading.
    say(stack, visitor, "are you there?")
    expect(page.locator("#messages")).to_contain_text("are you there?")

    page.get_by_label("Reply to the customer").fill("Yes! Sam here, I'll help you now.")
    page.keyboard.press("Enter")
    expect(page.locator("#messages")).to_contain_text("Sam here, I'll help you now.")
    deadline = time.monotonic() + 10
    while (
        time.monotonic() < deadline
        and history(stack, visitor)[-1]["text"] != "Yes! Sam here, I'll help you now."
    ):
        time.sleep(0.2)
    assert history(stack, visitor)[-1]["text"] == "Yes! Sam here, I'll help you now."

    page.get_by_role("button", name="Hand back to the bot").click()
    expect(page.locator("#chat-meta")).to_contain_text("bot")
    texts = [m["text"] for m in history(stack, visitor)]
    assert any(t.startswith("You're back with the Kefu assistant") for t in texts)
    assert say(stack, visitor, "hi")["mode"] == "bot"
    assert page.dialogs == []  # type: ignore[attr-defined]


def test_a_lead_publishes_an_article_and_the_bot_answers_with_it(stack: Stack, page: Page) -> None:
    slug = f"gift-wrapping-{uuid.uuid4().hex[:6]}"
    log_in(page, stack, "/console/lead", "lead@kefu.example", DEMO_PASSWORD_LEAD)
    page.get_by_role("tab", name="Knowledge base").click()
    page.get_by_role("button", name="New article").click()
    page.get_by_role("textbox", name="Slug").fill(slug)
    page.get_by_role("textbox", name="Title").fill("Gift wrapping for orders")
    page.get_by_role("textbox", name="Problem").fill(
        "can you gift wrap my order\ndo you offer gift wrapping\nI want the parcel wrapped as a present"
    )
    page.get_by_role("textbox", name="Solution").fill(
        "Yes: tick 'Gift wrap' at checkout and we wrap every item in recycled paper for EUR 3.50. "
        "The invoice is left out of wrapped parcels."
    )
    page.get_by_role("textbox", name="Tags").fill("gift, wrapping")
    page.get_by_role("button", name="Save draft").click()
    expect(page.locator("#editor-state")).to_contain_text("draft")
    page.get_by_role("button", name="Submit for review").click()
    expect(page.locator("#editor-state")).to_contain_text("in_review")
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(f"{stack.gateway_url}/console/login")

    # The author may not approve their own article: a second lead publishes it.
    log_in(page, stack, "/console/lead", "rui@kefu.example", DEMO_PASSWORD_LEAD)
    page.get_by_role("tab", name="Knowledge base").click()
    page.get_by_label("Search articles").fill("Gift wrapping")
    page.get_by_role("button", name="Find", exact=True).click()
    page.get_by_role("button", name="Gift wrapping for orders").click()
    page.get_by_role("button", name="Approve and publish").click()
    expect(page.locator("#editor-state")).to_contain_text("customers get v1")

    deadline = time.monotonic() + 20
    answered_with = None
    while time.monotonic() < deadline:
        messages = say(stack, f"e2e-gift-{uuid.uuid4().hex[:6]}", "do you offer gift wrapping for my order?")[
            "messages"
        ]
        answered_with = next(
            (m["metadata"].get("kb_article") for m in messages if m["metadata"].get("kb_article")), None
        )
        if answered_with == slug:
            break
        time.sleep(1)
    assert answered_with == slug


def test_the_dashboard_renders_its_charts(stack: Stack, page: Page) -> None:
    log_in(page, stack, "/console/lead", "lead@kefu.example", DEMO_PASSWORD_LEAD)
    charts = page.locator("figure[data-chart]")
    expect(charts.first).to_be_visible()
    ids = charts.evaluate_all("nodes => nodes.map(n => n.dataset.chart)")
    assert set(ids) >= {
        "volume",
        "containment",
        "response_times",
        "sla",
        "csat",
        "complaint_categories",
        "channels",
        "value_tiers",
        "lifecycle",
    }
    for chart_id in ids:
        figure = page.locator(f'figure[data-chart="{chart_id}"]')
        expect(figure.locator("svg")).to_have_count(1)
        assert figure.locator("svg rect, svg polyline").count() > 0, chart_id
        href = figure.locator("a.csv").get_attribute("href") or ""
        assert href.startswith(f"/api/dashboard/{chart_id}.csv?from="), href
    # The customers-by-tier chart counts the demo's 240 customers.
    tiers = page.locator('figure[data-chart="value_tiers"] td')
    numbers = [int(t) for t in tiers.all_text_contents() if t.isdigit()]
    assert sum(numbers) == 240


def test_the_lead_sees_equity_loyalty_and_the_win_back_list(stack: Stack, page: Page) -> None:
    log_in(page, stack, "/console/lead", "lead@kefu.example", DEMO_PASSWORD_LEAD)
    charts = page.locator("figure[data-value-chart]")
    expect(charts).to_have_count(7)
    for chart_id in (
        "equity_tiers",
        "equity_stages",
        "equity_cohorts",
        "equity_trend",  # seeding rescored the base once: one point so far
        "cohort_retention",
        "retention_curve",
        "loyalty",
    ):
        figure = page.locator(f'figure[data-value-chart="{chart_id}"]')
        assert figure.locator("svg rect, svg polyline").count() > 0, chart_id
        assert figure.locator("a.csv").get_attribute("href") == f"/api/value/{chart_id}.csv"
    expect(page.locator('figure[data-value-chart="equity_tiers"]')).to_contain_text("Equity (EUR)")
    expect(page.locator('figure[data-value-chart="loyalty"]')).to_contain_text("Repeat purchase rate")

    rows = page.locator("#winback tbody tr")
    expect(rows.first).to_be_visible()
    everyone = rows.count()
    page.get_by_label("Stage", exact=True).select_option("churned")
    page.locator("#winback-form").get_by_role("button", name="Show").click()
    expect(page.locator("#winback-count")).not_to_have_text(f"{everyone} customers")
    stages = page.locator("#winback tbody tr td:nth-child(2)").all_text_contents()
    assert stages and set(stages) == {"churned"}
    assert page.locator("#winback-csv").get_attribute("href") == "/api/value/winback.csv?stage=churned"
    # A churned customer has been silent for over a year: the reason says so.
    expect(page.locator("#winback tbody tr").first).to_contain_text("no purchase for")
