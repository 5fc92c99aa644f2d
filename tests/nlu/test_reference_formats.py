"""The ticket-reference format is written twice: as a regex in data/ (Rasa extracts the entity with it,
in Rasa's Python) and in bot/crm/tickets.py's parse_reference (the action looks the ticket up with
it, in the app's). These tests keep the two from drifting apart."""

from __future__ import annotations

import re

import pytest
import yaml

from bot.crm.tickets import parse_reference
from bot.settings import PROJECT_ROOT

DATA = PROJECT_ROOT / "data"
ANNOTATION = re.compile(r"\[([^\]]+)\]\(ticket_reference\)")


def rasa_patterns() -> list[re.Pattern[str]]:
    """The ticket_reference regexes of data/, compiled case-insensitive as Rasa's extractor does."""
    found = []
    for path in sorted(DATA.glob("*.yml")):
        for item in yaml.safe_load(path.read_text()).get("nlu", []):
            if item.get("regex") == "ticket_reference":
                for line in item["examples"].splitlines():
                    if line.strip().startswith("- "):
                        found.append(re.compile(line.strip()[2:], re.IGNORECASE))
    return found


def annotated_references() -> list[str]:
    """Every ticket reference a training example marks as one."""
    return sorted({m.group(1) for path in DATA.glob("*.yml") for m in ANNOTATION.finditer(path.read_text())})


@pytest.mark.parametrize(
    "message",
    [
        "KF-000123",
        "status of kf000123 please",
        "ticket KF_000045?",
        "my case is KF 000311",
        "#KF-000019 any news",
        "KF- 000123",
        "KF-12345",
        "KF-1234567",
        "XKF-000123",
        "KF--000123",
        "KF000123X",
        "order 100123",
    ],
)
def test_whatever_rasa_extracts_as_a_reference_is_found_in_the_crm(message: str) -> None:
    patterns = rasa_patterns()
    assert patterns, "no ticket_reference regex in data/"
    for pattern in patterns:
        for match in pattern.finditer(message):
            digits = re.sub(r"\D", "", match.group(0))
            assert parse_reference(match.group(0)) == f"KF-{digits}", (message, match.group(0))


def test_every_annotated_reference_is_extracted_by_rasa_and_found_in_the_crm() -> None:
    references = annotated_references()
    assert len(references) >= 5
    for reference in references:
        assert any(p.fullmatch(reference) for p in rasa_patterns()), reference
        digits = re.sub(r"\D", "", reference)
        assert parse_reference(reference) == f"KF-{digits}", reference


def test_what_is_not_a_reference_is_extracted_by_neither() -> None:
    for text in ("KF-12345", "KF-1234567", "XKF-000123", "ticket 000123", "KF-00012a"):
        assert not any(p.search(text) for p in rasa_patterns()), text
        assert parse_reference(text) is None, text
