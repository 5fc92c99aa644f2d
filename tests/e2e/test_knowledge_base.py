"""Questions answered from the knowledge base by the real stack, and an article published live."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from bot.crm.db import make_engine, make_sessionmaker
from bot.crm.models import KbArticle, KbFeedback, KbGap
from bot.demo.seed import DEMO_PASSWORD_LEAD
from tests.support.stack import Stack, running_stack
from tests.support.visitors import named_visitor

pytestmark = pytest.mark.rasa

# How long a published article may take to reach the action server's index ("within seconds").
PUBLISH_DEADLINE_SECONDS = 15.0


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("kb-stack")) as running:
        yield running


def say(stack: Stack, visitor: str, text: str) -> list[dict[str, Any]]:
    response = httpx.post(
        f"{stack.gateway_url}/api/web/messages",
        json={"session": named_visitor(visitor), "text": text},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    messages: list[dict[str, Any]] = response.json()["messages"]
    return messages


def article_of(messages: list[dict[str, Any]]) -> str | None:
    return next((m["metadata"]["kb_article"] for m in messages if "kb_article" in m["metadata"]), None)


@contextmanager
def lead_client(stack: Stack, email: str) -> Iterator[httpx.Client]:
    """A lead logged in to the console API: session cookie plus the CSRF header."""
    with httpx.Client(base_url=stack.gateway_url, timeout=60) as client:
        login = client.post("/api/auth/login", json={"email": email, "password": DEMO_PASSWORD_LEAD})
        assert login.status_code == 200, login.text
        client.headers["X-CSRF-Token"] = login.json()["csrf_token"]
        yield client


def test_a_question_is_answered_with_an_article_and_the_customer_says_it_helped(stack: Stack) -> None:
    visitor = "e2e-kb-helped"
    messages = say(stack, visitor, "how long do I have to send something back?")

    assert article_of(messages) == "return-policy"
    assert "30 days" in messages[0]["text"]
    feedback_question = messages[-1]
    assert feedback_question["text"] == "Did this solve it?"

    thanks = say(stack, visitor, feedback_question["buttons"][0]["payload"])
    assert "glad" in thanks[0]["text"].lower()

    with make_sessionmaker(make_engine(stack.settings))() as session:
        row = session.execute(
            select(KbArticle.slug, KbFeedback.helpful).join(KbArticle, KbArticle.id == KbFeedback.article_id)
        ).one()
        assert tuple(row) == ("return-policy", True)


def test_an_unhelpful_answer_leads_to_another_article_then_a_person(stack: Stack) -> None:
    visitor = "e2e-kb-unhelpful"
    first = article_of(say(stack, visitor, "my voucher code won't work at checkout"))
    assert first == "voucher-not-working"

    second = say(stack, visitor, "no, that didn't help")
    shown = article_of(second)
    offered_person = any(b["payload"] == "/request_human" for m in second for b in m["buttons"])
    assert (shown is not None and shown != first) or offered_person


def test_a_question_nobody_wrote_about_is_noted_for_the_leads(stack: Stack) -> None:
    visitor = "e2e-kb-gap"
    messages = say(stack, visitor, "is the cool box suitable for keeping insulin cold")

    assert article_of(messages) is None
    assert any(b["payload"] == "/request_human" for m in messages for b in m["buttons"])
    with make_sessionmaker(make_engine(stack.settings))() as session:
        questions = session.scalars(select(KbGap.question)).all()
    assert "is the cool box suitable for keeping insulin cold" in questions


def test_an_article_published_through_the_api_is_answered_within_seconds(stack: Stack) -> None:
    question = "do you offer gift wrapping for presents?"
    before = article_of(say(stack, f"e2e-kb-before-{uuid.uuid4().hex[:6]}", question))
    assert before != "gift-wrapping"

    author_login, reviewer_login = (
        lead_client(stack, "lead@kefu.example"),
        lead_client(stack, "rui@kefu.example"),
    )
    with author_login as author, reviewer_login as reviewer:
        created = author.post(
            "/api/kb/articles",
            json={
                "slug": "gift-wrapping",
                "title": "Do you offer gift wrapping?",
                "problem": "Can you wrap my order as a present?\nI'm sending a gift, can you wrap it?",
                "solution": "Yes: tick 'Wrap as a gift' at checkout. It costs EUR 3.50 per parcel.",
                "tags": ["orders", "gifts"],
            },
        )
        assert created.status_code == 201, created.text
        assert author.post("/api/kb/articles/gift-wrapping/submit", json={"version": 1}).status_code == 200
        published = reviewer.post("/api/kb/articles/gift-wrapping/publish", json={"version": 1})
        assert published.status_code == 200, published.text
    published_at = time.monotonic()

    answered = None
    while time.monotonic() - published_at < PUBLISH_DEADLINE_SECONDS:
        messages = say(stack, f"e2e-kb-after-{uuid.uuid4().hex[:6]}", question)
        if article_of(messages) == "gift-wrapping":
            answered = messages
            break
        time.sleep(0.5)
    assert answered is not None, f"not answered with the new article within {PUBLISH_DEADLINE_SECONDS} s"
    assert "EUR 3.50" in answered[0]["text"]
