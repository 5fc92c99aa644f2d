"""Writing, reviewing and publishing articles: every operation on the knowledge base's content.

The rules, in one place for the JSON API and the CLI alike:
- every edit makes a new version; an edit names the version it started from, and an edit that
  started from anything but the newest version is refused (409), so nobody overwrites a colleague;
- a version goes draft -> in review -> published; the lead who approves it is not its author;
- publishing embeds the version, stores the vectors with it and moves the index generation, which
  every running process picks up within seconds; the version it replaces becomes `superseded`;
- an archived article cannot be edited; reverting to one of its versions brings it back as a draft;
- every change is written to the audit log in the same transaction.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from bot.crm.audit import audit
from bot.crm.models import Agent, AgentRole, ArticleStatus, KbArticle, KbArticleVersion, VersionStatus, utcnow
from bot.errors import BadRequest, Conflict, Forbidden, NotFound
from knowledge_base import store

SLUG_PATTERN = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
MAX_SLUG = 80
MAX_TITLE = 200
MAX_TEXT = 20_000
MAX_TAGS = 12
MAX_TAG = 40
CONTENT_FIELDS = ("title", "problem", "solution", "tags")


@dataclass(frozen=True)
class Actor:
    """Who makes a change: a console account, or the system (seed import, CLI without --by)."""

    agent: Agent | None
    source: str | None = None

    @property
    def name(self) -> str:
        return f"agent:{self.agent.id}" if self.agent is not None else "system"

    @property
    def agent_id(self) -> int | None:
        return self.agent.id if self.agent is not None else None


SYSTEM = Actor(agent=None, source="kefu cli")


# --- validation -------------------------------------------------------------------------------


def clean_slug(slug: str) -> str:
    slug = slug.strip()
    if not slug:
        raise BadRequest("slug must not be empty")
    if len(slug) > MAX_SLUG:
        raise BadRequest(f"slug is {len(slug)} characters; the limit is {MAX_SLUG}")
    if not SLUG_PATTERN.match(slug):
        raise BadRequest(
            "slug may only hold lower-case letters, digits and single hyphens, e.g. 'return-policy'"
        )
    return slug


def _clean_text(name: str, value: Any, limit: int, required: bool) -> str:
    if not isinstance(value, str):
        raise BadRequest(f"{name} must be a string")
    value = value.replace("\r\n", "\n").strip()
    if required and not value:
        raise BadRequest(f"{name} must not be empty")
    if len(value) > limit:
        raise BadRequest(f"{name} is {len(value)} characters; the limit is {limit}")
    return value


def _clean_tags(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(tag, str) for tag in value):
        raise BadRequest("tags must be a list of strings")
    tags: list[str] = []
    for raw in value:
        tag = raw.strip().lower()
        if not tag:
            continue
        if len(tag) > MAX_TAG:
            raise BadRequest(f"tag {tag[:20]!r}... is {len(tag)} characters; the limit is {MAX_TAG}")
        if tag not in tags:
            tags.append(tag)
    if len(tags) > MAX_TAGS:
        raise BadRequest(f"{len(tags)} tags given; the limit is {MAX_TAGS}")
    return tags


def clean_content(fields: dict[str, Any], *, complete: bool) -> dict[str, Any]:
    """Validated content fields. `complete`: everything needed to publish must be there."""
    unknown = set(fields) - set(CONTENT_FIELDS)
    if unknown:
        raise BadRequest(f"unknown field(s): {', '.join(sorted(unknown))}")
    cleaned: dict[str, Any] = {}
    if "title" in fields:
        cleaned["title"] = _clean_text("title", fields["title"], MAX_TITLE, required=True)
    for name in ("problem", "solution"):
        if name in fields:
            cleaned[name] = _clean_text(name, fields[name], MAX_TEXT, required=complete)
    if "tags" in fields:
        cleaned["tags"] = _clean_tags(fields["tags"])
    return cleaned


def _require_publishable(version: KbArticleVersion) -> None:
    missing = [name for name in ("title", "problem", "solution") if not getattr(version, name).strip()]
    if missing:
        raise BadRequest(f"version {version.number} has no {' or '.join(missing)} yet; write it first")


def _require_lead(actor: Actor, what: str) -> None:
    if actor.agent is not None and actor.agent.role not in (AgentRole.LEAD, AgentRole.ADMIN):
        raise Forbidden(f"only support leads can {what}")


# --- reading ----------------------------------------------------------------------------------


def get_article(session: Session, slug: str, *, for_update: bool = False) -> KbArticle:
    query = select(KbArticle).where(KbArticle.slug == slug)
    if for_update:
        query = query.with_for_update()
    article = session.scalar(query)
    if article is None:
        raise NotFound(f"no article with slug {slug!r}")
    return article


def get_version(session: Session, article: KbArticle, number: int) -> KbArticleVersion:
    version = session.scalar(
        select(KbArticleVersion).where(
            KbArticleVersion.article_id == article.id, KbArticleVersion.number == number
        )
    )
    if version is None:
        raise NotFound(f"article {article.slug!r} has no version {number}")
    return version


def latest(session: Session, article: KbArticle) -> KbArticleVersion:
    return get_version(session, article, article.latest_version)


def list_articles(
    session: Session, status: ArticleStatus | None = None, query: str | None = None
) -> list[KbArticle]:
    statement = select(KbArticle).order_by(KbArticle.slug)
    if status is not None:
        statement = statement.where(KbArticle.status == status)
    if query:
        pattern = f"%{query.lower()}%"
        statement = statement.join(
            KbArticleVersion,
            (KbArticleVersion.article_id == KbArticle.id)
            & (KbArticleVersion.number == KbArticle.latest_version),
        ).where(
            or_(func.lower(KbArticle.slug).like(pattern), func.lower(KbArticleVersion.title).like(pattern))
        )
    return list(session.scalars(statement))


def version_view(version: KbArticleVersion) -> dict[str, Any]:
    return {
        "number": version.number,
        "status": version.status.value,
        "title": version.title,
        "problem": version.problem,
        "solution": version.solution,
        "tags": list(version.tags or []),
        "based_on": version.based_on,
        "change_note": version.change_note,
        "author_id": version.author_id,
        "reviewer_id": version.reviewer_id,
        "created_at": version.created_at.isoformat(),
        "submitted_at": version.submitted_at.isoformat() if version.submitted_at else None,
        "published_at": version.published_at.isoformat() if version.published_at else None,
    }


def article_view(session: Session, article: KbArticle) -> dict[str, Any]:
    newest = latest(session, article)
    published = article.published_version if article.status == ArticleStatus.PUBLISHED else None
    return {
        "slug": article.slug,
        "status": article.status.value,
        "latest_version": article.latest_version,
        "published_version": published.number if published else None,
        "created_at": article.created_at.isoformat(),
        "updated_at": article.updated_at.isoformat(),
        "latest": version_view(newest),
    }


def list_versions(session: Session, slug: str) -> list[KbArticleVersion]:
    return list(get_article(session, slug).versions)


def diff(session: Session, slug: str, old: int, new: int) -> dict[str, Any]:
    """What changed between two versions, field by field, as unified diffs."""
    article = get_article(session, slug)
    a, b = get_version(session, article, old), get_version(session, article, new)
    changes: dict[str, str] = {}
    for name in CONTENT_FIELDS:
        before, after = getattr(a, name), getattr(b, name)
        if name == "tags":
            before, after = "\n".join(before or []), "\n".join(after or [])
        if before != after:
            changes[name] = "".join(
                difflib.unified_diff(
                    (before + "\n").splitlines(keepends=True),
                    (after + "\n").splitlines(keepends=True),
                    fromfile=f"v{old}/{name}",
                    tofile=f"v{new}/{name}",
                )
            )
    return {"slug": slug, "from": old, "to": new, "changes": changes}


# --- changes ----------------------------------------------------------------------------------


def create_draft(
    session: Session, actor: Actor, slug: str, content: dict[str, Any], change_note: str = ""
) -> KbArticle:
    """A new article with its first version as a draft. The solution may wait until review."""
    _require_lead(actor, "write articles")
    slug = clean_slug(slug)
    fields = clean_content(content, complete=False)
    if "title" not in fields:
        raise BadRequest("title is missing")
    if session.scalar(select(KbArticle.id).where(KbArticle.slug == slug)) is not None:
        raise Conflict(f"an article with slug {slug!r} already exists; choose another slug or edit that one")
    article = KbArticle(slug=slug, status=ArticleStatus.DRAFT, latest_version=1, created_by_id=actor.agent_id)
    session.add(article)
    session.flush()
    session.add(
        KbArticleVersion(
            article_id=article.id,
            number=1,
            status=VersionStatus.DRAFT,
            title=fields["title"],
            problem=fields.get("problem", ""),
            solution=fields.get("solution", ""),
            tags=fields.get("tags", []),
            change_note=change_note[:300],
            author_id=actor.agent_id,
        )
    )
    session.flush()
    audit(session, actor.name, "kb.create", "kb_article", article.slug, {"version": 1}, actor.source)
    return article


def _check_base(article: KbArticle, base_version: int) -> None:
    if base_version != article.latest_version:
        raise Conflict(
            f"article {article.slug!r} is at version {article.latest_version}, but this change started from "
            f"version {base_version}; reload it, redo the change and try again"
        )


def new_version(
    session: Session, actor: Actor, article: KbArticle, base_version: int, content: dict[str, Any], note: str
) -> KbArticleVersion:
    previous = latest(session, article)
    version = KbArticleVersion(
        article_id=article.id,
        number=article.latest_version + 1,
        status=VersionStatus.DRAFT,
        title=content.get("title", previous.title),
        problem=content.get("problem", previous.problem),
        solution=content.get("solution", previous.solution),
        tags=content.get("tags", list(previous.tags or [])),
        based_on=base_version,
        change_note=note[:300],
        author_id=actor.agent_id,
    )
    # An unpublished draft or review that a newer version replaces is no longer on its way anywhere.
    if previous.status in (VersionStatus.DRAFT, VersionStatus.IN_REVIEW):
        previous.status = VersionStatus.SUPERSEDED
    article.latest_version = version.number
    if article.status != ArticleStatus.PUBLISHED:
        article.status = ArticleStatus.DRAFT
    article.updated_at = utcnow()
    session.add(version)
    session.flush()
    return version


def edit(
    session: Session,
    actor: Actor,
    slug: str,
    base_version: int,
    changes: dict[str, Any],
    change_note: str = "",
) -> KbArticleVersion:
    """A new draft version with `changes` applied to the newest one."""
    _require_lead(actor, "edit articles")
    article = get_article(session, slug, for_update=True)
    if article.status == ArticleStatus.ARCHIVED:
        raise Conflict(
            f"article {slug!r} is archived; revert it to a version to bring it back as a draft first"
        )
    _check_base(article, base_version)
    fields = clean_content(changes, complete=False)
    if not fields:
        raise BadRequest("nothing to change: give at least one of title, problem, solution, tags")
    current = latest(session, article)
    if all(getattr(current, name) == value for name, value in fields.items()):
        raise BadRequest(f"these values are already those of version {current.number}; nothing changed")
    version = new_version(session, actor, article, base_version, fields, change_note)
    audit(
        session,
        actor.name,
        "kb.edit",
        "kb_article",
        slug,
        {"version": version.number, "based_on": base_version, "fields": sorted(fields)},
        actor.source,
    )
    return version


def submit(session: Session, actor: Actor, slug: str, number: int) -> KbArticleVersion:
    """Ask another lead to review the newest version."""
    _require_lead(actor, "submit articles for review")
    article = get_article(session, slug, for_update=True)
    if article.status == ArticleStatus.ARCHIVED:
        raise Conflict(f"article {slug!r} is archived; revert it to bring it back as a draft first")
    _check_base(article, number)
    version = latest(session, article)
    if version.status != VersionStatus.DRAFT:
        raise Conflict(f"version {number} of {slug!r} is {version.status.value}, not a draft")
    _require_publishable(version)
    version.status = VersionStatus.IN_REVIEW
    version.submitted_at = utcnow()
    if article.status != ArticleStatus.PUBLISHED:
        article.status = ArticleStatus.IN_REVIEW
    article.updated_at = utcnow()
    audit(session, actor.name, "kb.submit", "kb_article", slug, {"version": number}, actor.source)
    return version


def _make_live(session: Session, article: KbArticle, version: KbArticleVersion) -> None:
    previous = article.published_version
    if previous is not None and previous.id != version.id and previous.status == VersionStatus.PUBLISHED:
        previous.status = VersionStatus.SUPERSEDED
    store.embed_version(version)
    version.status = VersionStatus.PUBLISHED
    version.published_at = utcnow()
    article.published_version_id = version.id
    article.published_version = version
    article.status = ArticleStatus.PUBLISHED
    article.updated_at = utcnow()
    store.bump_generation(session)


def publish(session: Session, actor: Actor, slug: str, number: int) -> KbArticleVersion:
    """Approve a version in review: customers get answers from it within seconds."""
    _require_lead(actor, "publish articles")
    article = get_article(session, slug, for_update=True)
    if article.status == ArticleStatus.ARCHIVED:
        raise Conflict(f"article {slug!r} is archived; revert it to bring it back as a draft first")
    _check_base(article, number)
    version = latest(session, article)
    if version.status == VersionStatus.DRAFT:
        raise Conflict(f"version {number} of {slug!r} is a draft; submit it for review before publishing")
    if version.status != VersionStatus.IN_REVIEW:
        raise Conflict(
            f"version {number} of {slug!r} is {version.status.value}; "
            "only a version in review can be published"
        )
    if actor.agent is None:
        raise Forbidden("publishing needs a reviewing lead: give one with --by <e-mail>")
    if version.author_id is not None and version.author_id == actor.agent_id:
        raise Forbidden("a different lead must review and publish this version; its author cannot approve it")
    version.reviewer_id = actor.agent_id
    _make_live(session, article, version)
    audit(session, actor.name, "kb.publish", "kb_article", slug, {"version": number}, actor.source)
    return version


def publish_trusted(session: Session, actor: Actor, article: KbArticle, version: KbArticleVersion) -> None:
    """Publish without a review step: only for content reviewed elsewhere (seed files in git)."""
    _require_publishable(version)
    _make_live(session, article, version)
    audit(
        session,
        actor.name,
        "kb.publish",
        "kb_article",
        article.slug,
        {"version": version.number, "reviewed": "seed file"},
        actor.source,
    )


def archive(session: Session, actor: Actor, slug: str) -> KbArticle:
    """Take an article out of answers and out of the editor's working set; history is kept."""
    _require_lead(actor, "archive articles")
    article = get_article(session, slug, for_update=True)
    if article.status == ArticleStatus.ARCHIVED:
        raise Conflict(f"article {slug!r} is already archived")
    was_live = article.status == ArticleStatus.PUBLISHED
    article.status = ArticleStatus.ARCHIVED
    article.updated_at = utcnow()
    if was_live:
        store.bump_generation(session)
    audit(session, actor.name, "kb.archive", "kb_article", slug, {"was_published": was_live}, actor.source)
    return article


def revert(session: Session, actor: Actor, slug: str, to_version: int, base_version: int) -> KbArticleVersion:
    """A new draft whose content is that of an earlier version (also how an archived article returns)."""
    _require_lead(actor, "revert articles")
    article = get_article(session, slug, for_update=True)
    _check_base(article, base_version)
    source = get_version(session, article, to_version)
    content = {name: getattr(source, name) for name in CONTENT_FIELDS}
    if article.status == ArticleStatus.ARCHIVED:
        article.status = ArticleStatus.DRAFT
    version = new_version(session, actor, article, base_version, content, f"revert to version {to_version}")
    audit(
        session,
        actor.name,
        "kb.revert",
        "kb_article",
        slug,
        {"version": version.number, "to_version": to_version},
        actor.source,
    )
    return version
