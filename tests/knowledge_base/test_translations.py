"""Translated articles follow their English sources: every slug, the same facts, not outdated."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.errors import BadRequest
from knowledge_base.seeds import read_seed_files
from knowledge_base.translations import facts, problems, read_translations, source_hash

ENGLISH = """\
topic: Returns
articles:
  - slug: how-to-return
    title: How do I return something?
    problem: I want to send something back
    solution: You have 30 days. Labels cost EUR 4.95; write to returns@shop.example.
    tags: [returns]
  - slug: refund-timing
    title: When do I get my money back?
    problem: where is my refund
    solution: Within 5 working days of the return arriving.
    tags: [refunds]
"""


def write(root: Path, relative: str, text: str) -> None:
    (root / relative).parent.mkdir(parents=True, exist_ok=True)
    (root / relative).write_text(text, encoding="utf-8")


def german(solution: str, source: str, slug: str = "how-to-return") -> str:
    return f"""\
topic: Rücksendungen
articles:
  - slug: {slug}
    title: Wie schicke ich etwas zurück?
    problem: ich will was zurückschicken
    solution: {solution}
    tags: [returns]
    source_hash: {source}
"""


@pytest.fixture
def english(tmp_path: Path) -> list:
    write(tmp_path, "en/returns.yml", ENGLISH)
    return read_seed_files(tmp_path / "en")


def test_a_faithful_current_translation_has_no_problems_but_the_untranslated_article(
    tmp_path: Path, english: list
) -> None:
    current = source_hash(english[0])
    write(tmp_path, "tr/de/returns.yml", german("30 Tage; Etikett EUR 4,95; returns@shop.example.", current))
    found = problems(english, read_translations("de", tmp_path / "tr"))
    assert found == ["de: refund-timing is not translated"]


def test_a_lost_fact_an_outdated_source_and_an_unknown_slug_are_reported(
    tmp_path: Path, english: list
) -> None:
    write(tmp_path, "tr/de/returns.yml", german("Sie haben 14 Tage.", "0123456789ab"))
    write(tmp_path, "tr/de/other.yml", german("x", "0123456789ab", slug="no-such-article"))
    found = "\n".join(problems(english, read_translations("de", tmp_path / "tr")))
    assert "lacks 30, 4.95, returns@shop.example" in found
    assert f"outdated (source_hash should be {source_hash(english[0])})" in found
    assert "no-such-article: no English article has this slug" in found


def test_changing_the_english_solution_makes_the_translation_outdated(english: list) -> None:
    before = source_hash(english[0])
    changed = type(english[0])(**{**vars(english[0]), "solution": "You have 60 days."})
    assert source_hash(changed) != before


def test_facts_are_numbers_and_addresses_whatever_the_decimal_mark() -> None:
    assert facts("EUR 4,95 within 14 days, see https://x.example/a or mail a.b@c.example.") == {
        "4.95",
        "14",
        "https://x.example/a",
        "a.b@c.example",
    }


def test_an_unknown_language_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BadRequest):
        read_translations("fr", tmp_path)


@pytest.mark.parametrize("language", ["de", "nl", "pt", "zh"])
def test_every_shipped_article_is_translated_faithfully_and_up_to_date(language: str) -> None:
    english = read_seed_files()
    translations = read_translations(language)
    assert problems(english, translations) == []
    assert {t.slug for t in translations} == {a.slug for a in english}
    for translation in translations:
        lines = [line for line in translation.problem.splitlines() if line.strip()]
        assert len(lines) >= 8, f"{language} {translation.slug}: too few ways of asking"
