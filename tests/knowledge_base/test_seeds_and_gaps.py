"""Seed files in and out, and unanswered questions grouped into drafts."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.crm.models import ArticleStatus, GapStatus, KbGap
from bot.errors import BadRequest
from knowledge_base import curation, gaps, seeds
from tests.support.knowledge import lead

ARTICLE = {
    "slug": "gift-wrapping",
    "title": "Do you offer gift wrapping?",
    "problem": "Can you wrap my order as a present?",
    "solution": "Not at the moment; every order ships in our plain recycled box.",
    "tags": ["orders"],
}


def write(path: Path, *articles: dict[str, object]) -> Path:
    path.write_text(yaml.safe_dump({"topic": "Test", "articles": list(articles)}), encoding="utf-8")
    return path


def test_the_shipped_seed_files_hold_at_least_80_complete_articles() -> None:
    articles = seeds.read_seed_files()

    assert len(articles) >= 80
    assert len({article.slug for article in articles}) == len(articles)
    assert all(article.problem and article.solution and article.tags for article in articles)


def test_import_twice_changes_nothing_and_a_changed_file_publishes_a_new_version(
    kb: sessionmaker[Session], tmp_path: Path
) -> None:
    first = write(tmp_path / "a.yml", ARTICLE)
    with kb.begin() as session:
        assert seeds.import_articles(session, seeds.read_seed_files(first)).created == ["gift-wrapping"]
        assert seeds.import_articles(session, seeds.read_seed_files(first)).unchanged == ["gift-wrapping"]

        changed = write(tmp_path / "a.yml", {**ARTICLE, "solution": "Yes, for EUR 3.50 at checkout."})
        assert seeds.import_articles(session, seeds.read_seed_files(changed)).updated == ["gift-wrapping"]
        article = curation.get_article(session, "gift-wrapping")
        assert article.status == ArticleStatus.PUBLISHED and article.latest_version == 2
        assert article.published_version is not None and "3.50" in article.published_version.solution


def test_import_leaves_console_edits_alone_unless_forced(kb: sessionmaker[Session], tmp_path: Path) -> None:
    path = write(tmp_path / "a.yml", ARTICLE)
    with kb.begin() as session:
        seeds.import_articles(session, seeds.read_seed_files(path))
        curation.edit(session, lead(session), "gift-wrapping", 1, {"title": "Gift wrapping"})
        changed = seeds.read_seed_files(write(path, {**ARTICLE, "solution": "Changed in git."}))

        assert seeds.import_articles(session, changed).skipped == ["gift-wrapping"]
        assert seeds.import_articles(session, changed, force=True).updated == ["gift-wrapping"]


@pytest.mark.parametrize(
    ("articles", "message"),
    [
        ([{**ARTICLE, "slug": "Gift Wrapping"}], "a.yml, article 1: slug may only hold"),
        ([{**ARTICLE, "solution": ""}], "a.yml, article 1: solution must not be empty"),
        ([ARTICLE, ARTICLE], "a.yml, article 2: slug 'gift-wrapping' is also in a.yml"),
    ],
)
def test_a_bad_seed_file_says_where_and_what(
    tmp_path: Path, articles: list[dict[str, object]], message: str
) -> None:
    with pytest.raises(BadRequest, match=message):
        seeds.read_seed_files(write(tmp_path / "a.yml", *articles))


def test_export_writes_what_import_reads(kb: sessionmaker[Session], tmp_path: Path) -> None:
    with kb.begin() as session:
        exported = seeds.export_articles(session)
    path = tmp_path / "export.yml"
    path.write_text(seeds.dump_yaml(exported), encoding="utf-8")

    again = {article.slug: article for article in seeds.read_seed_files(path)}
    original = {article.slug: article for article in seeds.read_seed_files()}
    assert again.keys() == original.keys()
    assert again["return-policy"].solution == original["return-policy"].solution


def test_similar_unanswered_questions_form_one_group_that_becomes_a_draft(kb: sessionmaker[Session]) -> None:
    questions = [
        "do you sell replacement poles for the tent",
        "can I buy a spare tent pole",
        "where to get new poles for my ridgeway tent",
        "is there a student discount",
    ]
    with kb.begin() as session:
        for question in questions:
            gaps.record_gap(session, question, "no_match")
        found = gaps.clusters(session)

        assert [cluster.count for cluster in found] == [3, 1]
        poles = found[0]
        assert set(poles.view(session)["examples"]) == set(questions[:3])

        article = gaps.draft_from_cluster(session, lead(session), poles.id)

        assert article.status == ArticleStatus.DRAFT
        draft = curation.latest(session, article)
        assert set(draft.problem.splitlines()) == set(questions[:3]) and draft.solution == ""
        statuses = session.scalars(select(KbGap.status).order_by(KbGap.id)).all()
        assert statuses == [GapStatus.DRAFTED] * 3 + [GapStatus.OPEN]
        assert [cluster.count for cluster in gaps.clusters(session)] == [1]
