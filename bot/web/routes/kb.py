"""The knowledge-base JSON API for the consoles: search for agents, curation and gaps for leads.

All rules live in `knowledge_base.curation`; this module maps HTTP onto it. Every route needs a
console login; changing content needs a lead, and state changes need the CSRF header.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from bot.crm.models import Agent, ArticleStatus
from bot.errors import BadRequest, ServiceUnavailable
from bot.web.deps import (
    MAX_RECORD_ID,
    AnyAgent,
    KbIndexDep,
    Lead,
    LoginFirstRoute,
    RecordId,
    SessionDep,
    SettingsDep,
)
from bot.web.schemas import Text
from knowledge_base import answers, curation, gaps
from knowledge_base.curation import Actor
from knowledge_base.live import wait_until_ready

router = APIRouter(prefix="/api/kb", tags=["knowledge base"], route_class=LoginFirstRoute)


def _actor(agent: Agent, request: Request) -> Actor:
    return Actor(agent=agent, source=request.client.host if request.client else None)


class ArticleIn(BaseModel):
    slug: Text = Field(description="lower-case words joined by hyphens, e.g. 'return-policy'")
    title: Text
    problem: Text = ""
    solution: Text = ""
    tags: list[Text] = Field(default_factory=list)
    change_note: Text = ""


# A version number: 1, 2, ... (bounded, so that a huge one is a bad request, not a database error).
Version = Annotated[int, Field(ge=1, le=MAX_RECORD_ID)]


class EditIn(BaseModel):
    base_version: Version = Field(description="the version this edit started from (the newest one)")
    title: Text | None = None
    problem: Text | None = None
    solution: Text | None = None
    tags: list[Text] | None = None
    change_note: Text = ""


class VersionIn(BaseModel):
    version: Version


class RevertIn(BaseModel):
    to_version: Version
    base_version: Version


@router.get("/search")
async def search(
    _agent: AnyAgent,
    live: KbIndexDep,
    q: Annotated[str, Query(description="the question")] = "",
    k: Annotated[int, Query(ge=1, le=20)] = 5,
) -> dict[str, Any]:
    """The best articles for a question, with their scores (the agent console's suggestions)."""
    query = q.strip()
    if not query:
        raise BadRequest("q must not be empty")
    if len(query) > answers.MAX_QUERY_CHARS:
        raise BadRequest(f"q is {len(query)} characters; the limit is {answers.MAX_QUERY_CHARS}")
    if not await run_in_threadpool(wait_until_ready, live, 30.0):
        raise ServiceUnavailable("the knowledge-base index is still loading; try again in a few seconds")
    hits = await run_in_threadpool(live.search, query, k)
    return {
        "query": query,
        "results": [
            {
                "slug": h.slug,
                "title": h.title,
                "score": round(h.score, 4),
                "dense": round(h.dense, 4),
                "lexical": round(h.lexical, 4),
            }
            for h in hits
        ],
    }


@router.get("/articles")
def list_articles(
    session: SessionDep, _agent: AnyAgent, status: ArticleStatus | None = None, q: str | None = None
) -> dict[str, Any]:
    with session.begin():
        found = curation.list_articles(session, status, q)
        return {"articles": [curation.article_view(session, article) for article in found]}


@router.post("/articles", status_code=201)
def create_article(body: ArticleIn, request: Request, session: SessionDep, lead: Lead) -> dict[str, Any]:
    with session.begin():
        content = body.model_dump(exclude={"slug", "change_note"})
        article = curation.create_draft(session, _actor(lead, request), body.slug, content, body.change_note)
        return curation.article_view(session, article)


@router.get("/articles/{slug}")
def get_article(slug: str, session: SessionDep, _agent: AnyAgent) -> dict[str, Any]:
    with session.begin():
        article = curation.get_article(session, slug)
        view = curation.article_view(session, article)
        if article.published_version is not None and article.status == ArticleStatus.PUBLISHED:
            view["published"] = curation.version_view(article.published_version)
        return view


@router.patch("/articles/{slug}")
def edit_article(
    slug: str, body: EditIn, request: Request, session: SessionDep, lead: Lead
) -> dict[str, Any]:
    changes = body.model_dump(exclude={"base_version", "change_note"}, exclude_none=True)
    with session.begin():
        curation.edit(session, _actor(lead, request), slug, body.base_version, changes, body.change_note)
        return curation.article_view(session, curation.get_article(session, slug))


def _transition(name: str):  # type: ignore[no-untyped-def]
    operation = getattr(curation, name)

    def route(
        slug: str, body: VersionIn, request: Request, session: SessionDep, lead: Lead
    ) -> dict[str, Any]:
        with session.begin():
            operation(session, _actor(lead, request), slug, body.version)
            return curation.article_view(session, curation.get_article(session, slug))

    return route


router.post("/articles/{slug}/submit", summary="Submit the newest version for review")(_transition("submit"))


@router.post("/articles/{slug}/publish", summary="Approve and publish (a lead other than the author)")
def publish_article(
    slug: str,
    body: VersionIn,
    request: Request,
    session: SessionDep,
    lead: Lead,
    live: KbIndexDep,
    settings: SettingsDep,
) -> dict[str, Any]:
    with session.begin():
        curation.publish(session, _actor(lead, request), slug, body.version)
    # Search the listed unanswered questions again with the new article in the index, as the bot
    # will within seconds, so the lead sees at once which ones it answers.
    live.refresh()
    with session.begin():
        article = curation.get_article(session, slug)
        gaps.recheck(session, article, live.search, settings.kb_answer_score)
        return curation.article_view(session, article)


@router.post("/articles/{slug}/archive")
def archive_article(slug: str, request: Request, session: SessionDep, lead: Lead) -> dict[str, Any]:
    with session.begin():
        article = curation.archive(session, _actor(lead, request), slug)
        return curation.article_view(session, article)


@router.post("/articles/{slug}/revert")
def revert_article(
    slug: str, body: RevertIn, request: Request, session: SessionDep, lead: Lead
) -> dict[str, Any]:
    with session.begin():
        curation.revert(session, _actor(lead, request), slug, body.to_version, body.base_version)
        return curation.article_view(session, curation.get_article(session, slug))


@router.get("/articles/{slug}/versions")
def list_versions(slug: str, session: SessionDep, _agent: AnyAgent) -> dict[str, Any]:
    with session.begin():
        return {
            "slug": slug,
            "versions": [curation.version_view(v) for v in curation.list_versions(session, slug)],
        }


@router.get("/articles/{slug}/versions/{number}")
def get_version(slug: str, number: RecordId, session: SessionDep, _agent: AnyAgent) -> dict[str, Any]:
    with session.begin():
        article = curation.get_article(session, slug)
        return curation.version_view(curation.get_version(session, article, number))


@router.get("/articles/{slug}/diff")
def diff_versions(
    slug: str,
    session: SessionDep,
    _agent: AnyAgent,
    from_version: Annotated[int, Query(alias="from", ge=1, le=MAX_RECORD_ID)],
    to_version: Annotated[int, Query(alias="to", ge=1, le=MAX_RECORD_ID)],
) -> dict[str, Any]:
    with session.begin():
        return curation.diff(session, slug, from_version, to_version)


@router.get("/gaps")
def list_gaps(session: SessionDep, _lead: Lead) -> dict[str, Any]:
    """Open unanswered questions: those the bot had no answer for and those whose answer did not
    help, each grouped by meaning, the largest group first; then those an article now answers."""
    with session.begin():
        groups = {
            name: [cluster.view(session) for cluster in gaps.clusters(session, reason)]
            for reason, name in gaps.REASON_GROUPS.items()
        }
        return {
            "clusters": [cluster for name in groups for cluster in groups[name]],
            **groups,
            "answered": gaps.answered(session),
        }


@router.post("/gaps/{cluster_id}/draft", status_code=201)
def draft_from_gap(cluster_id: RecordId, request: Request, session: SessionDep, lead: Lead) -> dict[str, Any]:
    """Make a draft article from a group of unanswered questions."""
    with session.begin():
        article = gaps.draft_from_cluster(session, _actor(lead, request), cluster_id)
        return curation.article_view(session, article)
