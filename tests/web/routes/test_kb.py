"""The knowledge-base JSON API through the real gateway app: logins, roles, CSRF, the review flow."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.crm.models import AuditLog, AuthorKind, GapStatus, KbGap
from bot.demo.seed import DEMO_PASSWORD_AGENT, DEMO_PASSWORD_LEAD
from bot.settings import Settings
from bot.web.app import create_app
from knowledge_base import gaps
from tests.support.knowledge import chat_with_turns
from tests.web.conftest import unused_loopback_port

NEW = {
    "slug": "warehouse-collection",
    "title": "Can I collect my order from your warehouse?",
    "problem": "Can I pick up my parcel in Kassel myself?\nIs click and collect possible?",
    "solution": "Not yet: every order is delivered by a carrier.",
    "tags": ["shipping"],
}


@pytest.fixture
async def app(settings: Settings, kb: sessionmaker[Session]) -> AsyncIterator[FastAPI]:
    dead = settings.model_copy(
        update={"rasa_url": f"http://127.0.0.1:{unused_loopback_port()}", "kb_poll_seconds": 0.2}
    )
    application = create_app(dead)
    async with application.router.lifespan_context(application):
        yield application


def client_for(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


@asynccontextmanager
async def logged_in(
    app: FastAPI, email: str, password: str = DEMO_PASSWORD_LEAD
) -> AsyncIterator[httpx.AsyncClient]:
    """A client with the session cookie and the CSRF header, like the console after login."""
    async with client_for(app) as client:
        response = await client.post("/api/auth/login", json={"email": email, "password": password})
        assert response.status_code == 200, response.text
        client.headers["X-CSRF-Token"] = response.json()["csrf_token"]
        yield client


async def test_login_sets_a_locked_down_cookie_and_logout_ends_it(app: FastAPI) -> None:
    async with client_for(app) as client:
        response = await client.post(
            "/api/auth/login", json={"email": "lead@kefu.example", "password": DEMO_PASSWORD_LEAD}
        )
        cookie = response.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        assert (await client.get("/api/auth/me")).json()["agent"]["role"] == "lead"

        client.headers["X-CSRF-Token"] = response.json()["csrf_token"]
        assert (await client.post("/api/auth/logout")).status_code == 200
        assert (await client.get("/api/kb/articles")).status_code == 401


async def test_a_wrong_password_is_refused_and_recorded(app: FastAPI, kb: sessionmaker[Session]) -> None:
    async with client_for(app) as client:
        response = await client.post(
            "/api/auth/login", json={"email": "lead@kefu.example", "password": "guess"}
        )
    assert response.status_code == 401 and response.json() == {"error": "wrong e-mail or password"}
    with kb.begin() as session:
        assert (
            session.scalar(select(AuditLog.action).where(AuditLog.action == "login_failed")) == "login_failed"
        )


async def test_state_changes_need_the_csrf_header(app: FastAPI) -> None:
    async with logged_in(app, "lead@kefu.example") as client:
        del client.headers["X-CSRF-Token"]
        response = await client.post("/api/kb/articles", json=NEW)
    assert response.status_code == 403 and "X-CSRF-Token" in response.json()["error"]


async def test_agents_search_and_read_but_only_leads_write(app: FastAPI) -> None:
    async with logged_in(app, "ada@kefu.example", DEMO_PASSWORD_AGENT) as agent:
        results = (
            await agent.get("/api/kb/search", params={"q": "how long does shipping to austria take"})
        ).json()
        assert results["results"][0]["slug"] == "delivery-times"
        assert (await agent.get("/api/kb/articles/return-policy")).json()["status"] == "published"
        assert (await agent.post("/api/kb/articles", json=NEW)).status_code == 403
        assert (await agent.get("/api/kb/gaps")).status_code == 403
    async with client_for(app) as anonymous:
        assert (await anonymous.get("/api/kb/search", params={"q": "refund"})).status_code == 401


async def test_search_refuses_empty_and_over_long_questions(app: FastAPI) -> None:
    async with logged_in(app, "ada@kefu.example", DEMO_PASSWORD_AGENT) as agent:
        empty = await agent.get("/api/kb/search", params={"q": "   "})
        long = await agent.get("/api/kb/search", params={"q": "refund " * 100})
    assert empty.status_code == 400 and empty.json()["error"] == "q must not be empty"
    assert long.status_code == 400 and "the limit is 500" in long.json()["error"]


async def test_write_review_publish_by_two_leads_then_search_finds_it(app: FastAPI) -> None:
    async with logged_in(app, "lead@kefu.example") as author, logged_in(app, "rui@kefu.example") as reviewer:
        created = await author.post("/api/kb/articles", json=NEW)
        assert created.status_code == 201 and created.json()["status"] == "draft"
        assert (await author.post("/api/kb/articles", json=NEW)).status_code == 409  # duplicate slug

        early = await reviewer.post("/api/kb/articles/warehouse-collection/publish", json={"version": 1})
        assert early.status_code == 409 and "submit it for review" in early.json()["error"]

        edited = await author.patch(
            "/api/kb/articles/warehouse-collection",
            json={"base_version": 1, "solution": NEW["solution"] + " Sorry!"},
        )
        assert edited.json()["latest_version"] == 2
        stale = await reviewer.patch(
            "/api/kb/articles/warehouse-collection", json={"base_version": 1, "title": "x"}
        )
        assert stale.status_code == 409

        assert (
            await author.post("/api/kb/articles/warehouse-collection/submit", json={"version": 2})
        ).status_code == 200
        own = await author.post("/api/kb/articles/warehouse-collection/publish", json={"version": 2})
        assert own.status_code == 403
        published = await reviewer.post("/api/kb/articles/warehouse-collection/publish", json={"version": 2})
        assert published.json()["status"] == "published" and published.json()["published_version"] == 2

        versions = (await author.get("/api/kb/articles/warehouse-collection/versions")).json()["versions"]
        assert [v["status"] for v in versions] == ["superseded", "published"]
        diff = (
            await author.get("/api/kb/articles/warehouse-collection/diff", params={"from": 1, "to": 2})
        ).json()
        assert (
            list(diff["changes"]) == ["solution"]
            and "+Not yet: every order is delivered by a carrier. Sorry!" in diff["changes"]["solution"]
        )

        for _ in range(50):  # the gateway's own index polls every 0.2 s in this test
            results = (
                await author.get("/api/kb/search", params={"q": "can I collect my parcel from the warehouse"})
            ).json()
            if results["results"][0]["slug"] == "warehouse-collection":
                break
            await asyncio.sleep(0.1)
        assert results["results"][0]["slug"] == "warehouse-collection"


async def test_archive_and_revert_through_the_api(app: FastAPI) -> None:
    async with logged_in(app, "lead@kefu.example") as lead:
        assert (await lead.post("/api/kb/articles/cookies/archive")).json()["status"] == "archived"
        blocked = await lead.patch("/api/kb/articles/cookies", json={"base_version": 1, "title": "Cookies"})
        assert blocked.status_code == 409 and "archived" in blocked.json()["error"]
        back = await lead.post("/api/kb/articles/cookies/revert", json={"to_version": 1, "base_version": 1})
        assert back.json()["status"] == "draft" and back.json()["latest_version"] == 2
        listed = (await lead.get("/api/kb/articles", params={"status": "draft"})).json()["articles"]
        assert [article["slug"] for article in listed] == ["cookies"]


async def test_a_group_of_unanswered_questions_becomes_a_draft(
    app: FastAPI, kb: sessionmaker[Session]
) -> None:
    with kb.begin() as session:
        for question in ("do you sell tent poles separately", "can I buy a spare tent pole"):
            gaps.record_gap(session, question, "no_match")
    async with logged_in(app, "lead@kefu.example") as lead:
        clusters = (await lead.get("/api/kb/gaps")).json()["clusters"]
        assert clusters[0]["count"] == 2
        draft = await lead.post(f"/api/kb/gaps/{clusters[0]['id']}/draft")
        assert draft.status_code == 201 and draft.json()["status"] == "draft"
        assert "spare tent pole" in draft.json()["latest"]["problem"]
        assert (await lead.get("/api/kb/gaps")).json()["clusters"] == []


async def test_unanswered_questions_are_split_by_reason_with_the_chat_before_them(
    app: FastAPI, kb: sessionmaker[Session]
) -> None:
    with kb.begin() as session:
        chat, asked = chat_with_turns(
            session,
            (AuthorKind.CUSTOMER, "how long does delivery to Austria take"),
            (AuthorKind.BOT, "Delivery to Austria takes 3-5 working days."),
            (AuthorKind.CUSTOMER, "and the return?"),
        )
        gaps.record_gap(session, "and the return?", "no_match", chat, asked)
        gaps.record_gap(session, "my stove does not light after cleaning", "unhelpful")
    async with logged_in(app, "lead@kefu.example") as lead:
        listed = (await lead.get("/api/kb/gaps")).json()
    assert [c["examples"] for c in listed["no_answer"]] == [["and the return?"]]
    assert [c["examples"] for c in listed["unhelpful"]] == [["my stove does not light after cleaning"]]
    item = listed["no_answer"][0]["items"][0]
    assert [turn["text"] for turn in item["context"]] == [
        "how long does delivery to Austria take",
        "Delivery to Austria takes 3-5 working days.",
    ]
    assert [turn["author"] for turn in item["context"]] == ["customer", "bot"]
    assert listed["answered"] == []


async def test_publishing_an_article_marks_the_questions_it_answers(
    app: FastAPI, kb: sessionmaker[Session]
) -> None:
    with kb.begin() as session:
        gaps.record_gap(session, "can I collect my parcel from your warehouse in Kassel", "no_match")
        gaps.record_gap(session, "do you sell spare tent poles", "no_match")
    async with logged_in(app, "lead@kefu.example") as author, logged_in(app, "rui@kefu.example") as reviewer:
        await author.post("/api/kb/articles", json=NEW)
        await author.post("/api/kb/articles/warehouse-collection/submit", json={"version": 1})
        before = (await reviewer.get("/api/kb/gaps")).json()
        assert len(before["no_answer"]) == 2 and before["answered"] == []

        published = await reviewer.post("/api/kb/articles/warehouse-collection/publish", json={"version": 1})
        assert published.status_code == 200, published.text

        after = (await reviewer.get("/api/kb/gaps")).json()
    assert [c["examples"] for c in after["no_answer"]] == [["do you sell spare tent poles"]]
    assert [(a["question"], a["article"]["title"]) for a in after["answered"]] == [
        ("can I collect my parcel from your warehouse in Kassel", NEW["title"])
    ]
    with kb.begin() as session:
        statuses = dict(session.execute(select(KbGap.question, KbGap.status)).tuples().all())
    assert statuses["do you sell spare tent poles"] == GapStatus.OPEN


async def test_html_in_an_article_comes_back_as_json_text(app: FastAPI) -> None:
    hostile = "<script>alert('x')</script>"
    async with logged_in(app, "lead@kefu.example") as lead:
        await lead.post("/api/kb/articles", json={**NEW, "solution": hostile})
        response = await lead.get("/api/kb/articles/warehouse-collection")
    assert response.headers["content-type"] == "application/json"
    assert response.json()["latest"]["solution"] == hostile
