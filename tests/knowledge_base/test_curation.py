"""Writing, reviewing, publishing and archiving articles, and every running index following along."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from bot.crm.models import (
    Agent,
    ArticleStatus,
    AuditLog,
    KbArticleVersion,
    VersionStatus,
)
from bot.errors import BadRequest, Conflict, Forbidden, NotFound
from knowledge_base import curation, embedding, store
from knowledge_base.live import LiveIndex
from tests.support.knowledge import lead, second_lead

NEW = {
    "title": "Can I collect my order from your warehouse?",
    "problem": "Can I pick up my parcel in Kassel myself?\nIs click and collect possible?",
    "solution": "Not yet: every order is delivered by a carrier. Parcel shops work in Germany.",
    "tags": ["shipping", "collection"],
}


def write_and_publish(kb: sessionmaker[Session], slug: str = "warehouse-collection") -> None:
    with kb.begin() as session:
        curation.create_draft(session, lead(session), slug, NEW)
        curation.submit(session, lead(session), slug, 1)
        curation.publish(session, second_lead(session), slug, 1)


def test_a_published_article_is_found_by_a_running_index_without_a_restart(kb: sessionmaker[Session]) -> None:
    live = LiveIndex(kb)
    live.refresh()
    assert live.search("can i pick up my order at your warehouse")[0].slug != "warehouse-collection"

    write_and_publish(kb)

    assert live.refresh() is True
    assert live.search("can i pick up my order at your warehouse")[0].slug == "warehouse-collection"
    assert live.refresh() is False  # nothing changed since


def test_an_archived_article_leaves_every_index(kb: sessionmaker[Session]) -> None:
    live = LiveIndex(kb)
    live.refresh()
    assert live.search("my voucher code is rejected at checkout")[0].slug == "voucher-not-working"

    with kb.begin() as session:
        curation.archive(session, lead(session), "voucher-not-working")
    live.refresh()

    assert "voucher-not-working" not in [hit.slug for hit in live.search("my voucher code is rejected", k=10)]


def test_a_restarted_process_reads_stored_vectors_instead_of_embedding_again(
    kb: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    encoded: list[str] = []
    real_encode = embedding.encode
    monkeypatch.setattr(
        embedding, "encode", lambda texts, **kw: encoded.extend(texts) or real_encode(texts, **kw)
    )

    LiveIndex(kb).refresh()

    assert encoded == []  # 92 published articles, all from stored vectors


def test_drafts_need_review_by_another_lead_before_customers_see_them(kb: sessionmaker[Session]) -> None:
    with kb.begin() as session:
        curation.create_draft(session, lead(session), "warehouse-collection", NEW)
        with pytest.raises(Conflict, match="submit it for review"):
            curation.publish(session, second_lead(session), "warehouse-collection", 1)
        curation.submit(session, lead(session), "warehouse-collection", 1)
        with pytest.raises(Forbidden, match="different lead"):
            curation.publish(session, lead(session), "warehouse-collection", 1)
        version = curation.publish(session, second_lead(session), "warehouse-collection", 1)

        assert (
            version.status == VersionStatus.PUBLISHED and version.reviewer_id == second_lead(session).agent_id
        )
        assert version.embedding is not None and version.embedding_model == embedding.MODEL_NAME
        actions = session.scalars(
            select(AuditLog.action).where(AuditLog.record_id == "warehouse-collection").order_by(AuditLog.id)
        ).all()
        assert actions == ["kb.create", "kb.submit", "kb.publish"]


def test_an_agent_cannot_write_articles(kb: sessionmaker[Session]) -> None:
    with kb.begin() as session:
        agent = session.scalar(select(Agent).where(Agent.email == "ada@kefu.example"))
        with pytest.raises(Forbidden, match="support leads"):
            curation.create_draft(session, curation.Actor(agent), "anything", NEW)


def test_an_edit_from_an_old_version_is_refused(kb: sessionmaker[Session]) -> None:
    with kb.begin() as session:
        curation.edit(session, lead(session), "return-policy", 1, {"title": "Our 30-day return policy"})
        with pytest.raises(Conflict, match="is at version 2, but this change started from version 1"):
            curation.edit(session, second_lead(session), "return-policy", 1, {"title": "Returns"})


def test_editing_a_published_article_keeps_answering_with_the_published_version(
    kb: sessionmaker[Session],
) -> None:
    with kb.begin() as session:
        curation.edit(session, lead(session), "return-policy", 1, {"solution": "Draft text, not reviewed."})
        article = curation.get_article(session, "return-policy")

        assert article.status == ArticleStatus.PUBLISHED and article.latest_version == 2
        assert article.published_version is not None and article.published_version.number == 1
        assert "Draft text" not in article.published_version.solution

        curation.submit(session, lead(session), "return-policy", 2)
        curation.publish(session, second_lead(session), "return-policy", 2)
        statuses = [v.status for v in curation.list_versions(session, "return-policy")]
        assert statuses == [VersionStatus.SUPERSEDED, VersionStatus.PUBLISHED]


def test_an_archived_article_cannot_be_edited_but_can_be_brought_back(kb: sessionmaker[Session]) -> None:
    with kb.begin() as session:
        curation.archive(session, lead(session), "cookies")
        with pytest.raises(Conflict, match="archived"):
            curation.edit(session, lead(session), "cookies", 1, {"title": "Cookies"})
        with pytest.raises(Conflict, match="already archived"):
            curation.archive(session, lead(session), "cookies")

        version = curation.revert(session, lead(session), "cookies", to_version=1, base_version=1)

        assert version.number == 2 and version.status == VersionStatus.DRAFT
        assert curation.get_article(session, "cookies").status == ArticleStatus.DRAFT


def test_revert_copies_an_old_version_into_a_new_draft_and_diff_shows_changes(
    kb: sessionmaker[Session],
) -> None:
    with kb.begin() as session:
        original = curation.get_version(session, curation.get_article(session, "gift-cards"), 1)
        curation.edit(
            session, lead(session), "gift-cards", 1, {"title": "Gift cards explained", "tags": ["gifts"]}
        )
        reverted = curation.revert(session, lead(session), "gift-cards", to_version=1, base_version=2)

        assert (reverted.number, reverted.title, reverted.tags) == (3, original.title, original.tags)
        changes = curation.diff(session, "gift-cards", 1, 2)["changes"]
        assert set(changes) == {"title", "tags"}
        assert "-How do gift cards work?" in changes["title"] and "+Gift cards explained" in changes["title"]
        assert curation.diff(session, "gift-cards", 1, 3)["changes"] == {}


def test_bad_input_gets_a_clear_error(kb: sessionmaker[Session]) -> None:
    with kb.begin() as session:
        actor = lead(session)
        with pytest.raises(Conflict, match="already exists"):
            curation.create_draft(session, actor, "return-policy", NEW)
        with pytest.raises(BadRequest, match="lower-case letters"):
            curation.create_draft(session, actor, "Return Policy!", NEW)
        with pytest.raises(BadRequest, match="title must not be empty"):
            curation.create_draft(session, actor, "empty-title", {**NEW, "title": "  "})
        with pytest.raises(BadRequest, match="the limit is 20000"):
            curation.create_draft(session, actor, "too-long", {**NEW, "solution": "x" * 20_001})
        with pytest.raises(BadRequest, match="nothing changed"):
            curation.edit(session, actor, "cookies", 1, {"title": "What cookies do you use?"})
        with pytest.raises(NotFound, match="no article"):
            curation.edit(session, actor, "no-such-article", 1, {"title": "x"})
        curation.create_draft(
            session, actor, "half-written", {"title": "Half written", "problem": "", "solution": ""}
        )
        with pytest.raises(BadRequest, match="has no problem or solution yet"):
            curation.submit(session, actor, "half-written", 1)


def test_html_in_an_article_is_stored_as_the_text_it_is(kb: sessionmaker[Session]) -> None:
    hostile = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    with kb.begin() as session:
        curation.create_draft(session, lead(session), "hostile", {**NEW, "solution": hostile})
    with kb.begin() as session:
        stored = session.scalar(
            select(KbArticleVersion.solution)
            .join(KbArticleVersion.article)
            .where(KbArticleVersion.number == 1, KbArticleVersion.article.has(slug="hostile"))
        )
        assert stored == hostile


def test_publishing_moves_the_index_generation_once(kb: sessionmaker[Session]) -> None:
    with kb.begin() as session:
        before = store.generation(session)
    write_and_publish(kb)
    with kb.begin() as session:
        assert store.generation(session) == before + 1
        assert (
            session.scalar(select(func.count()).select_from(AuditLog).where(AuditLog.action == "kb.publish"))
            >= 93
        )
