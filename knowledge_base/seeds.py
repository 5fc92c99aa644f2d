"""Seed files (knowledge_base/articles/*.yml) in and out of the database, which is the live store.

Import is for content reviewed in git: a new slug becomes a published article; a changed one gets a
new published version; an unchanged one is left alone, so importing twice changes nothing. An
article whose newest version was edited in the console is not overwritten unless `force`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.crm.models import ArticleStatus, KbArticle, KbArticleVersion, VersionStatus
from bot.errors import BadRequest
from knowledge_base import curation
from knowledge_base.curation import Actor

SEED_DIR = Path(__file__).resolve().parent / "articles"
IMPORT_NOTE = "imported from seed file"


@dataclass(frozen=True)
class SeedArticle:
    slug: str
    title: str
    problem: str
    solution: str
    tags: list[str]
    source: str

    def content(self) -> dict[str, Any]:
        return {"title": self.title, "problem": self.problem, "solution": self.solution, "tags": self.tags}


@dataclass
class ImportReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # edited in the console since; see `force`


def read_seed_files(path: Path = SEED_DIR) -> list[SeedArticle]:
    """Every article in a seed file or a directory of them; a malformed one is a clear error."""
    files = sorted(path.glob("*.yml")) if path.is_dir() else [path]
    if not files:
        raise BadRequest(f"no .yml seed files in {path}")
    articles: list[SeedArticle] = []
    seen: dict[str, str] = {}
    for file in files:
        try:
            data = yaml.safe_load(file.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise BadRequest(f"{file}: cannot read it as YAML ({exc})") from exc
        entries = data.get("articles") if isinstance(data, dict) else None
        if not isinstance(entries, list):
            raise BadRequest(f"{file}: expected a mapping with an 'articles' list")
        for position, entry in enumerate(entries, start=1):
            where = f"{file.name}, article {position}"
            if not isinstance(entry, dict):
                raise BadRequest(f"{where}: expected a mapping")
            try:
                slug = curation.clean_slug(str(entry.get("slug", "")))
                content = curation.clean_content(
                    {name: entry.get(name, [] if name == "tags" else "") for name in curation.CONTENT_FIELDS},
                    complete=True,
                )
            except BadRequest as exc:
                raise BadRequest(f"{where}: {exc.message}") from exc
            if slug in seen:
                raise BadRequest(f"{where}: slug {slug!r} is also in {seen[slug]}")
            seen[slug] = file.name
            articles.append(SeedArticle(slug=slug, source=file.name, **content))
    return articles


def _same_content(version: KbArticleVersion, seed: SeedArticle) -> bool:
    return all(getattr(version, name) == value for name, value in seed.content().items())


def import_articles(
    session: Session, articles: list[SeedArticle], actor: Actor = curation.SYSTEM, force: bool = False
) -> ImportReport:
    report = ImportReport()
    existing = {article.slug: article for article in session.scalars(select(KbArticle))}
    for seed in articles:
        article = existing.get(seed.slug)
        if article is None:
            article = KbArticle(slug=seed.slug, status=ArticleStatus.DRAFT, latest_version=1)
            session.add(article)
            session.flush()
            version = KbArticleVersion(
                article_id=article.id,
                number=1,
                status=VersionStatus.DRAFT,
                change_note=IMPORT_NOTE,
                **seed.content(),
            )
            session.add(version)
            session.flush()
            curation.publish_trusted(session, actor, article, version)
            report.created.append(seed.slug)
            continue
        newest = curation.latest(session, article)
        if _same_content(newest, seed) and article.status == ArticleStatus.PUBLISHED:
            report.unchanged.append(seed.slug)
            continue
        if newest.change_note != IMPORT_NOTE and not force:
            report.skipped.append(seed.slug)
            continue
        if article.status == ArticleStatus.ARCHIVED:
            article.status = ArticleStatus.DRAFT
        version = curation.new_version(
            session, actor, article, article.latest_version, seed.content(), IMPORT_NOTE
        )
        curation.publish_trusted(session, actor, article, version)
        report.updated.append(seed.slug)
    return report


def export_articles(session: Session, include_unpublished: bool = False) -> dict[str, Any]:
    """Published articles (or every article's newest version) in the seed-file format."""
    entries = []
    for article in session.scalars(select(KbArticle).order_by(KbArticle.slug)):
        if article.status == ArticleStatus.PUBLISHED and not include_unpublished:
            version = article.published_version
        elif include_unpublished and article.status != ArticleStatus.ARCHIVED:
            version = curation.latest(session, article)
        else:
            continue
        assert version is not None
        entries.append(
            {
                "slug": article.slug,
                "title": version.title,
                "problem": version.problem,
                "solution": version.solution,
                "tags": list(version.tags or []),
            }
        )
    return {"topic": "Exported articles", "articles": entries}


def _literal_block(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


class _SeedDumper(yaml.SafeDumper):
    pass


_SeedDumper.add_representer(str, _literal_block)


def dump_yaml(data: dict[str, Any]) -> str:
    return yaml.dump(data, Dumper=_SeedDumper, sort_keys=False, allow_unicode=True, width=100)
