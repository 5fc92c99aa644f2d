"""Translated seed articles (knowledge_base/translations/<language>/*.yml) and their English sources.

Each translation mirrors an English seed file: the same file name, the same slugs, the title,
problem lines and solution in the language, the tags unchanged. The problem lines are written as
customers of that language put things, not word for word; the solution says exactly what the
English one says. `source_hash` is the English version a translation was made from: when the
English title or solution changes, the translation is outdated until someone brings it up to date.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from bot.errors import BadRequest
from knowledge_base import curation
from knowledge_base.seeds import SeedArticle

TRANSLATIONS_DIR = Path(__file__).resolve().parent / "translations"
LANGUAGES = ("de", "nl", "pt", "zh")
# What a translation must carry over unchanged: numbers, e-mail addresses, web addresses.
_FACTS = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+|https?://\S+|\d+(?:[.,]\d+)?")


def source_hash(english: SeedArticle) -> str:
    """The fingerprint of the English text a translation follows (title and solution)."""
    return hashlib.sha256(f"{english.title}\n{english.solution}".encode()).hexdigest()[:12]


def facts(text: str) -> set[str]:
    """The numbers, e-mail and web addresses in a text ("14 days", "EUR 4.95" -> {"14", "4.95"})."""
    return {fact.replace(",", ".").rstrip(".") for fact in _FACTS.findall(text)}


@dataclass(frozen=True)
class Translation:
    language: str
    slug: str
    title: str
    problem: str
    solution: str
    tags: list[str]
    source_hash: str
    source: str  # the file it came from

    def outdated(self, english: SeedArticle) -> bool:
        return self.source_hash != source_hash(english)


def read_translations(language: str, root: Path = TRANSLATIONS_DIR) -> list[Translation]:
    """Every translated article in one language; a malformed one is a clear error."""
    if language not in LANGUAGES:
        raise BadRequest(f"unknown language {language!r}; expected one of {', '.join(LANGUAGES)}")
    translations: list[Translation] = []
    for file in sorted((root / language).glob("*.yml")):
        try:
            data = yaml.safe_load(file.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise BadRequest(f"{file}: cannot read it as YAML ({exc})") from exc
        entries = data.get("articles") if isinstance(data, dict) else None
        if not isinstance(entries, list):
            raise BadRequest(f"{file}: expected a mapping with an 'articles' list")
        for position, entry in enumerate(entries, start=1):
            where = f"{language}/{file.name}, article {position}"
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
            translations.append(
                Translation(
                    language=language,
                    slug=slug,
                    source_hash=str(entry.get("source_hash") or ""),
                    source=file.name,
                    **content,
                )
            )
    return translations


def problems(english: list[SeedArticle], translations: list[Translation]) -> list[str]:
    """What is wrong with a language's translations against the English seeds: missing, unknown or
    doubled slugs, a file other than the English one, facts not carried over, outdated sources."""
    by_slug = {article.slug: article for article in english}
    found: list[str] = []
    seen: set[str] = set()
    for translation in translations:
        where = f"{translation.language}/{translation.source} {translation.slug}"
        source = by_slug.get(translation.slug)
        if source is None:
            found.append(f"{where}: no English article has this slug")
            continue
        if translation.slug in seen:
            found.append(f"{where}: translated twice")
        seen.add(translation.slug)
        if translation.source != source.source:
            found.append(f"{where}: belongs in {source.source}, like the English article")
        if translation.tags != source.tags:
            found.append(f"{where}: tags differ from the English article's")
        if missing := facts(source.solution) - facts(translation.solution):
            found.append(f"{where}: the solution lacks {', '.join(sorted(missing))}")
        if translation.outdated(source):
            found.append(f"{where}: outdated (source_hash should be {source_hash(source)})")
    for slug in sorted(set(by_slug) - seen):
        found.append(f"{translations[0].language if translations else '?'}: {slug} is not translated")
    return found
